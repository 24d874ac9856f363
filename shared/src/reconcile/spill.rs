//! Sets of 128-bit digests too large to hold for a big organization, kept
//! in a file under the temp dir (Lambda's /tmp) instead: written as they
//! are listed, then sorted into a second file that lookups read a block at
//! a time. What stays in memory does not grow with the set: a write buffer,
//! one slice of the digests while they are sorted, and the first key of
//! each block (1/64 of the set's size).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};

const ENTRY_BYTES: usize = 16;
/// Entries a lookup reads at once (1 KiB).
const BLOCK: usize = 64;
/// Entries written, or read while sorting, at once (64 KiB).
const CHUNK: usize = 4096;
/// Entries sorted in memory at once, about (256 KiB): the file is read
/// once for each slice of the digest range.
const SLICE: u64 = 16_384;

/// How a set orders and identifies its entries: the entry itself, or part
/// of it when the rest is data about it (see `listing`'s certificates).
pub type KeyOf = fn(u128) -> u128;

/// Digests being gathered, in any order, until [`Spilling::sorted`].
/// Adding cannot fail: the first write that does is kept and reported by
/// `sorted`, so that listings can be gathered inside calls that have
/// errors of their own.
#[derive(Default)]
pub struct Spilling {
    file: Option<File>,
    buffer: Vec<u8>,
    len: u64,
    error: Option<io::Error>,
}

impl Spilling {
    pub fn push(&mut self, entry: u128) {
        self.buffer.extend_from_slice(&entry.to_le_bytes());
        self.len += 1;
        if self.buffer.len() >= CHUNK * ENTRY_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && !self.buffer.is_empty()
            && let Err(error) = self.write_buffer()
        {
            self.error = Some(error);
        }
        self.buffer.clear();
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(scratch_file()?),
        };
        file.write_all(&self.buffer)
    }

    /// The set, sorted by `key_of`: of entries with the same key, the
    /// lowest is kept.
    pub fn sorted(self, key_of: KeyOf) -> io::Result<Sorted> {
        self.sorted_in_slices(key_of, SLICE)
    }

    fn sorted_in_slices(self, key_of: KeyOf, slice: u64) -> io::Result<Sorted> {
        let (unsorted, len) = self.written()?;
        // Digests are uniform: 2^bits slices of the range by their top bits
        // hold about `slice` each, and entries of one key share a slice.
        let bits = (0..64).find(|bits| len >> bits <= slice).unwrap_or(64);
        let mut out = Spilling::default();
        let mut firsts = Vec::new();
        let mut entries = Vec::new();
        for part in 0..1u128 << bits {
            entries.clear();
            each_entry(unsorted.as_ref(), len, |entry| {
                if bits == 0 || entry >> (128 - bits) == part {
                    entries.push(entry);
                }
            })?;
            entries.sort_unstable();
            entries.dedup_by_key(|entry| key_of(*entry));
            for &entry in &entries {
                if out.len % BLOCK as u64 == 0 {
                    firsts.push(key_of(entry));
                }
                out.push(entry);
            }
        }
        let (file, len) = out.written()?;
        Ok(Sorted {
            file,
            len,
            firsts,
            key_of,
        })
    }

    /// Everything pushed, written out: the file (none when nothing was
    /// pushed) and how many entries it holds; or the first write's failure.
    fn written(mut self) -> io::Result<(Option<File>, u64)> {
        self.flush();
        match self.error {
            Some(error) => Err(error),
            None => Ok((self.file, self.len)),
        }
    }
}

/// Each of the `len` entries of `file`, in the order written.
fn each_entry(file: Option<&File>, len: u64, mut visit: impl FnMut(u128)) -> io::Result<()> {
    let Some(file) = file else {
        return Ok(());
    };
    let mut chunk = vec![0; CHUNK * ENTRY_BYTES];
    let mut at = 0;
    while at < len {
        let count = (len - at).min(CHUNK as u64) as usize;
        let bytes = &mut chunk[..count * ENTRY_BYTES];
        file.read_exact_at(bytes, at * ENTRY_BYTES as u64)?;
        bytes
            .chunks_exact(ENTRY_BYTES)
            .map(entry_of)
            .for_each(&mut visit);
        at += count as u64;
    }
    Ok(())
}

fn entry_of(bytes: &[u8]) -> u128 {
    u128::from_le_bytes(bytes.try_into().expect("chunks of ENTRY_BYTES"))
}

/// A sorted set of digests on disk, each key once.
pub struct Sorted {
    file: Option<File>,
    len: u64,
    /// The key of each block's first entry.
    firsts: Vec<u128>,
    key_of: KeyOf,
}

impl Sorted {
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The entry of that key, if the set has one.
    pub fn find(&self, key: u128) -> io::Result<Option<u128>> {
        let Some(block) = self
            .firsts
            .partition_point(|first| *first <= key)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        let entries = self.block(block)?;
        let at = entries.binary_search_by_key(&key, |entry| (self.key_of)(*entry));
        Ok(at.ok().map(|at| entries[at]))
    }

    /// Whether every key of this set is one of `other`'s.
    pub fn all_in(&self, other: &Sorted) -> io::Result<bool> {
        for block in 0..self.firsts.len() {
            for entry in self.block(block)? {
                if other.find((self.key_of)(entry))?.is_none() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn block(&self, block: usize) -> io::Result<Vec<u128>> {
        let Some(file) = &self.file else {
            return Ok(Vec::new());
        };
        let start = (block * BLOCK) as u64;
        let count = (self.len - start).min(BLOCK as u64) as usize;
        let mut bytes = [0; BLOCK * ENTRY_BYTES];
        let bytes = &mut bytes[..count * ENTRY_BYTES];
        file.read_exact_at(bytes, start * ENTRY_BYTES as u64)?;
        Ok(bytes.chunks_exact(ENTRY_BYTES).map(entry_of).collect())
    }
}

/// A new file under the temp dir, readable by this process only. Its name
/// is removed at once, so the file goes with its handle, however the
/// process ends. (What the `tempfile` crate does, in the few lines this
/// needs, without adding its dependencies to the function.)
fn scratch_file() -> io::Result<File> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    loop {
        let path = std::env::temp_dir().join(format!(
            "mender-iot-bridge-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        // `create_new` never opens what is there already, a link included.
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spread like digests: the top bits of a multiplicative hash.
    fn entry(n: u64) -> u128 {
        u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1
    }

    fn sorted(entries: impl IntoIterator<Item = u128>, slice: u64) -> Sorted {
        let mut spilling = Spilling::default();
        entries.into_iter().for_each(|e| spilling.push(e));
        spilling.sorted_in_slices(|entry| entry, slice).unwrap()
    }

    #[test]
    fn sorting_in_slices_finds_each_entry_once_and_nothing_else() {
        // 10,000 entries (three chunks), each twice, sorted 1,000 at a time
        // (16 slices), against one slice.
        let entries = (0..10_000).chain(0..10_000).map(entry);
        for slice in [1_000, u64::MAX] {
            let set = sorted(entries.clone(), slice);
            assert_eq!(set.len(), 10_000, "slice {slice}");
            assert_eq!(set.firsts.len(), 10_000usize.div_ceil(BLOCK));
            let mut all = Vec::new();
            for block in 0..set.firsts.len() {
                all.extend(set.block(block).unwrap());
            }
            assert!(
                all.windows(2).all(|pair| pair[0] < pair[1]),
                "sorted, once each"
            );
            for n in [0, 1, 63, 64, 4095, 4096, 9_999] {
                assert_eq!(set.find(entry(n)).unwrap(), Some(entry(n)), "{n}");
            }
            for missing in [0, 2, u128::MAX, entry(10_000)] {
                assert_eq!(set.find(missing).unwrap(), None, "{missing}");
            }
        }
    }

    #[test]
    fn a_key_finds_its_entry_whatever_the_data_beside_it() {
        // Keys are all but the lowest bit; of two entries of a key, the
        // lowest (bit clear) is kept, in any slice.
        let mut spilling = Spilling::default();
        for n in 0..5_000 {
            spilling.push(entry(n) & !1 | u128::from(n % 3 == 0));
            if n % 7 == 0 {
                spilling.push(entry(n) & !1);
            }
        }
        let set = spilling.sorted_in_slices(|entry| entry >> 1, 500).unwrap();
        assert_eq!(set.len(), 5_000);
        for n in 0..5_000 {
            let active = n % 3 == 0 && n % 7 != 0;
            let found = set.find(entry(n) >> 1).unwrap();
            assert_eq!(found, Some(entry(n) & !1 | u128::from(active)), "{n}");
        }
    }

    #[test]
    fn subsets_are_told_from_sets_that_are_not() {
        let all = sorted((0..3_000).map(entry), 200);
        let some = sorted((0..3_000).step_by(7).map(entry), 200);
        let one_more = sorted((0..3_000).step_by(7).chain([3_000]).map(entry), 200);
        let empty = sorted([], 200);
        assert!(some.all_in(&all).unwrap());
        assert!(!one_more.all_in(&all).unwrap());
        assert!(!all.all_in(&some).unwrap());
        assert!(empty.all_in(&all).unwrap() && empty.all_in(&empty).unwrap());
        assert!(!some.all_in(&empty).unwrap());
        assert_eq!(empty.find(entry(0)).unwrap(), None);
    }

    #[test]
    fn a_write_that_failed_is_reported_when_the_set_is_sorted() {
        // A handle that cannot be written: the first full buffer fails to
        // go out, and sorting says so rather than answer from what was kept.
        let mut spilling = Spilling {
            file: Some(File::open("/dev/null").unwrap()),
            ..Spilling::default()
        };
        (0..2 * CHUNK as u64)
            .map(entry)
            .for_each(|e| spilling.push(e));
        assert!(spilling.error.is_some(), "kept from the first flush");
        assert!(spilling.sorted(|entry| entry).is_err());
    }

    #[test]
    fn a_scratch_file_has_no_name_to_leave_behind() {
        use std::os::unix::fs::MetadataExt;
        let file = scratch_file().unwrap();
        assert_eq!(file.metadata().unwrap().nlink(), 0);
    }
}
