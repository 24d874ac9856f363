//! What bulk listings say: a run compares each device with them instead of
//! reading the device's own state. Names (Mender's device ids, the
//! integration's Things) and certificate ids are kept as 128-bit digests,
//! whatever their length, on disk ([`spill`]): 16 bytes a device for each
//! listing, about 5 MB under /tmp for 100,000 devices, and a run's memory
//! the same for any organization. For a page of devices, what the listings
//! say about them is read into a [`PageListing`], on which triage decides.
//! A digest collision (about 10⁻²⁹ for 100,000 names) could only hide a
//! device's drift until its deep check.

use std::io;

use sha2::{Digest, Sha256};

use super::ReconcileError;
use super::spill::{Sorted, Spilling};
use crate::iot::{IotError, IotRegistry};
use crate::mender::{MenderClient, MenderError};

/// AWS's listing pages: `ListThings` and `ListCertificates` give 250 at most.
pub const AWS_PAGE_SIZE: i32 = 250;

fn digest(text: &str) -> u128 {
    let hash = Sha256::digest(text.as_bytes());
    u128::from_be_bytes(hash[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// A set of names, by digest.
pub struct Names(Sorted);

impl Names {
    pub fn contains(&self, name: &str) -> io::Result<bool> {
        Ok(self.0.find(digest(name))?.is_some())
    }

    pub fn len(&self) -> usize {
        self.0.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every name of this set is in `other` too.
    pub fn all_in(&self, other: &Names) -> io::Result<bool> {
        self.0.all_in(&other.0)
    }
}

/// Names gathered page by page, a [`Names`] once all are in.
#[derive(Default)]
pub struct Gathered(Spilling);

impl Gathered {
    pub fn add<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        names.into_iter().for_each(|name| self.0.push(digest(name)));
    }

    pub fn into_names(self) -> io::Result<Names> {
        Ok(Names(self.0.sorted(|digest| digest)?))
    }

    /// The ids of every device of the organization in Mender, listed `page_size` a page.
    pub async fn of_mender(mender: &MenderClient, page_size: u32) -> Result<Gathered, MenderError> {
        let mut names = Gathered::default();
        for page in 1.. {
            let devices = mender.list_devices(page, page_size).await?;
            names.add(devices.iter().map(|d| d.id.as_str()));
            if devices.len() < page_size as usize {
                break;
            }
        }
        Ok(names)
    }
}

/// A certificate as listed: its digest with the lowest bit replaced by
/// whether it is ACTIVE, so that one sorted set holds both.
fn certificate_entry(id: &str, active: bool) -> u128 {
    digest(id) & !1 | u128::from(active)
}

/// What orders and identifies a certificate entry (or the digest of its
/// id): the digest without its lowest bit.
fn certificate_key(entry: u128) -> u128 {
    entry >> 1
}

/// What AWS IoT Core's listings say: the integration's Things (by their
/// marker attribute) and the status of every certificate in the account.
pub struct AwsListing {
    things: Names,
    certificates: Sorted,
}

impl AwsListing {
    /// Reads both listings, page by page, side by side (each API has its
    /// own quota): about 2 calls per 250 devices.
    pub async fn read(iot: &IotRegistry) -> Result<AwsListing, ReconcileError> {
        let things = async {
            let mut things = Gathered::default();
            let mut next = None;
            loop {
                let (page, token) = iot.managed_things(next, AWS_PAGE_SIZE).await?;
                things.add(page.iter().map(String::as_str));
                next = token;
                if next.is_none() {
                    return Ok::<_, IotError>(things);
                }
            }
        };
        let certificates = async {
            let mut certificates = Spilling::default();
            let mut marker = None;
            loop {
                let (page, next) = iot.certificates_page(marker).await?;
                for certificate in &page {
                    certificates.push(certificate_entry(&certificate.id, certificate.active));
                }
                marker = next;
                if marker.is_none() {
                    return Ok(certificates);
                }
            }
        };
        let (things, certificates) = futures::try_join!(things, certificates)?;
        Ok(AwsListing::of(things, certificates)?)
    }

    /// The listing of the Things and certificates gathered, sorted.
    fn of(things: Gathered, certificates: Spilling) -> io::Result<AwsListing> {
        Ok(AwsListing {
            things: things.into_names()?,
            certificates: certificates.sorted(certificate_key)?,
        })
    }

    /// The integration's Things as listed.
    pub fn things(&self) -> &Names {
        &self.things
    }

    /// What the listings say about these Things and certificates (a page's
    /// devices and the certificates their records name).
    pub fn about<'a>(
        &self,
        things: impl IntoIterator<Item = &'a str>,
        certificate_ids: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<PageListing> {
        let mut page = PageListing::default();
        for name in things {
            let name = digest(name);
            if self.things.0.find(name)?.is_some() {
                page.things.push(name);
            }
        }
        for id in certificate_ids {
            if let Some(entry) = self.certificates.find(certificate_key(digest(id)))? {
                page.certificates.push(entry);
            }
        }
        page.things.sort_unstable();
        page.certificates.sort_unstable();
        Ok(page)
    }
}

/// What the listings say about a page of devices, in memory.
#[derive(Debug, Default)]
pub struct PageListing {
    things: Vec<u128>,
    certificates: Vec<u128>,
}

impl PageListing {
    /// A page's listing as given (tests build what triage decides on).
    #[cfg(test)]
    pub fn new<'a>(
        things: impl IntoIterator<Item = &'a str>,
        certificates: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> PageListing {
        let mut things: Vec<u128> = things.into_iter().map(digest).collect();
        let mut certificates: Vec<u128> = certificates
            .into_iter()
            .map(|(id, active)| certificate_entry(id, active))
            .collect();
        things.sort_unstable();
        certificates.sort_unstable();
        PageListing {
            things,
            certificates,
        }
    }

    /// Whether the Thing of that name is listed as the integration's.
    pub fn has_thing(&self, name: &str) -> bool {
        self.things.binary_search(&digest(name)).is_ok()
    }

    /// Whether the certificate is ACTIVE; `None` when it is not listed.
    pub fn certificate_active(&self, id: &str) -> Option<bool> {
        let key = certificate_key(digest(id));
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

    fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> Names {
        let mut gathered = Gathered::default();
        gathered.add(names);
        gathered.into_names().unwrap()
    }

    fn listing<'a>(
        things: impl IntoIterator<Item = &'a str>,
        certificates: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> AwsListing {
        let mut gathered = Gathered::default();
        gathered.add(things);
        let mut spilling = Spilling::default();
        for (id, active) in certificates {
            spilling.push(certificate_entry(id, active));
        }
        AwsListing::of(gathered, spilling).unwrap()
    }

    #[test]
    fn listings_answer_for_what_they_listed_and_nothing_else() {
        let listing = listing(["d1", "d2"], [("c1", true), ("c2", false), ("c1", true)]);
        assert_eq!(listing.things().len(), 2);
        let page = listing
            .about(["d1", "d2", "d3"], ["c1", "c2", "c3"])
            .unwrap();
        assert!(page.has_thing("d1") && page.has_thing("d2"));
        assert!(!page.has_thing("d3"));
        assert_eq!(page.certificate_active("c1"), Some(true));
        assert_eq!(page.certificate_active("c2"), Some(false));
        assert_eq!(page.certificate_active("c3"), None);
        // Only what was asked about is on the page.
        let asked = listing.about(["d1"], ["c2"]).unwrap();
        assert!(asked.has_thing("d1") && !asked.has_thing("d2"));
        assert_eq!(asked.certificate_active("c1"), None);

        let set = names(["a", "b", "a"]);
        assert_eq!(set.len(), 2);
        assert!(set.contains("a").unwrap() && !set.contains("c").unwrap());
        assert!(names(["b"]).all_in(&set).unwrap());
        assert!(!names(["b", "c"]).all_in(&set).unwrap());
        assert!(names([]).all_in(&set).unwrap());
    }

    #[test]
    fn a_certificate_status_never_changes_which_certificate_it_is() {
        // Whatever the lowest bit of a digest, both statuses of an id find it.
        for id in (0..64).map(|n| format!("certificate-{n}")) {
            for active in [true, false] {
                let page = listing([], [(id.as_str(), active)])
                    .about([], [id.as_str()])
                    .unwrap();
                assert_eq!(page.certificate_active(&id), Some(active), "{id}");
            }
        }
    }
}
