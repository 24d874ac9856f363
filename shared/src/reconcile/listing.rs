//! What bulk listings say, held compactly: a run compares each device with
//! them instead of reading the device's own state. Names (Mender's device
//! ids, the integration's Things) and certificate ids are kept as 128-bit
//! digests in sorted vectors, whatever their length: 16 bytes a device for
//! each listing, about 5 MB for 100,000 devices in all. A digest collision
//! (about 10⁻²⁹ for 100,000 names) could only hide a device's drift until
//! its deep check.

use sha2::{Digest, Sha256};

use crate::iot::{IotError, IotRegistry};
use crate::mender::{MenderClient, MenderError};

/// AWS's listing pages: `ListThings` and `ListCertificates` give 250 at most.
pub const AWS_PAGE_SIZE: i32 = 250;

fn digest(text: &str) -> u128 {
    let hash = Sha256::digest(text.as_bytes());
    u128::from_be_bytes(hash[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// A set of names, by digest.
#[derive(Debug, Default)]
pub struct Names(Vec<u128>);

impl Names {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Names {
        let mut gathered = Gathered::default();
        gathered.add(names);
        gathered.into_names()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search(&digest(name)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every name of this set is in `other` too.
    pub fn all_in(&self, other: &Names) -> bool {
        self.0
            .iter()
            .all(|name| other.0.binary_search(name).is_ok())
    }

    /// The ids of every device of the organization in Mender, listed `page_size` a page.
    pub async fn of_mender(mender: &MenderClient, page_size: u32) -> Result<Names, MenderError> {
        let mut names = Gathered::default();
        for page in 1.. {
            let devices = mender.list_devices(page, page_size).await?;
            names.add(devices.iter().map(|d| d.id.as_str()));
            if devices.len() < page_size as usize {
                break;
            }
        }
        Ok(names.into_names())
    }
}

/// Names gathered page by page, a [`Names`] once all are in.
#[derive(Debug, Default)]
pub struct Gathered(Vec<u128>);

impl Gathered {
    /// Room for `expected` names (a count read before), so that gathering
    /// them does not grow the vector past twice what it needs.
    pub fn expecting(expected: Option<u64>) -> Gathered {
        Gathered(Vec::with_capacity(room_for(expected)))
    }

    pub fn add<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.0.extend(names.into_iter().map(digest));
    }

    pub fn into_names(mut self) -> Names {
        self.0.sort_unstable();
        self.0.dedup();
        self.0.shrink_to_fit();
        Names(self.0)
    }
}

/// What AWS IoT Core's listings say: the integration's Things (by their
/// marker attribute) and the status of every certificate in the account.
#[derive(Debug, Default)]
pub struct AwsListing {
    things: Names,
    /// Each certificate's digest with its lowest bit replaced by whether it
    /// is ACTIVE: one sorted vector rather than a second one beside it, or
    /// pairs twice its size while the listing is read.
    certificates: Vec<u128>,
}

/// Room for a count read before, if any.
fn room_for(expected: Option<u64>) -> usize {
    expected.and_then(|n| usize::try_from(n).ok()).unwrap_or(0)
}

/// A certificate's entry in [`AwsListing::certificates`].
fn certificate_entry(id: &str, active: bool) -> u128 {
    digest(id) & !1 | u128::from(active)
}

/// What orders and identifies an entry: its digest without the status bit.
fn certificate_key(entry: u128) -> u128 {
    entry >> 1
}

impl AwsListing {
    pub fn new<'a>(
        things: impl IntoIterator<Item = &'a str>,
        certificates: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> AwsListing {
        AwsListing::of(
            Names::new(things),
            certificates
                .into_iter()
                .map(|(id, active)| certificate_entry(id, active))
                .collect(),
        )
    }

    fn of(things: Names, mut certificates: Vec<u128>) -> AwsListing {
        certificates.sort_unstable();
        certificates.dedup_by_key(|entry| certificate_key(*entry));
        certificates.shrink_to_fit();
        AwsListing {
            things,
            certificates,
        }
    }

    /// Reads both listings, page by page, side by side (each API has its
    /// own quota): about 2 calls per 250 devices. `expected`, Mender's
    /// count of devices when known, makes room for about as many of each.
    pub async fn read(iot: &IotRegistry, expected: Option<u64>) -> Result<AwsListing, IotError> {
        let things = async {
            let mut things = Gathered::expecting(expected);
            let mut next = None;
            loop {
                let (page, token) = iot.managed_things(next, AWS_PAGE_SIZE).await?;
                things.add(page.iter().map(String::as_str));
                next = token;
                if next.is_none() {
                    return Ok::<_, IotError>(things.into_names());
                }
            }
        };
        let certificates = async {
            let mut certificates = Vec::with_capacity(room_for(expected));
            let mut marker = None;
            loop {
                let (page, next) = iot.certificates_page(marker).await?;
                certificates.extend(page.iter().map(|c| certificate_entry(&c.id, c.active)));
                marker = next;
                if marker.is_none() {
                    return Ok(certificates);
                }
            }
        };
        let (things, certificates) = futures::try_join!(things, certificates)?;
        Ok(AwsListing::of(things, certificates))
    }

    /// Whether the Thing of that name is listed as the integration's.
    pub fn has_thing(&self, name: &str) -> bool {
        self.things.contains(name)
    }

    /// The integration's Things as listed.
    pub fn things(&self) -> &Names {
        &self.things
    }

    /// Whether the certificate is ACTIVE; `None` when it is not listed.
    pub fn certificate_active(&self, id: &str) -> Option<bool> {
        let key = certificate_key(certificate_entry(id, false));
        let at = self
            .certificates
            .binary_search_by_key(&key, |entry| certificate_key(*entry))
            .ok()?;
        Some(self.certificates[at] & 1 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_answer_for_what_they_listed_and_nothing_else() {
        let listing = AwsListing::new(["d1", "d2"], [("c1", true), ("c2", false), ("c1", true)]);
        assert!(listing.has_thing("d1") && listing.has_thing("d2"));
        assert!(!listing.has_thing("d3"));
        assert_eq!(listing.certificate_active("c1"), Some(true));
        assert_eq!(listing.certificate_active("c2"), Some(false));
        assert_eq!(listing.certificate_active("c3"), None);
        assert_eq!(listing.things().len(), 2);
        let names = Names::new(["a", "b", "a"]);
        assert_eq!(names.len(), 2);
        assert!(names.contains("a") && !names.contains("c"));
        assert!(Names::new(["b"]).all_in(&names));
        assert!(!Names::new(["b", "c"]).all_in(&names));
        assert!(Names::default().all_in(&names));
    }

    #[test]
    fn a_certificate_status_never_changes_which_certificate_it_is() {
        // Whatever the lowest bit of a digest, both statuses of an id find it.
        for id in (0..64).map(|n| format!("certificate-{n}")) {
            for active in [true, false] {
                let listing = AwsListing::new([], [(id.as_str(), active)]);
                assert_eq!(listing.certificate_active(&id), Some(active), "{id}");
            }
        }
    }
}
