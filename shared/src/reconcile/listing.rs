//! What bulk listings say, held compactly: a run compares each device with
//! them instead of reading the device's own state. Names and ids are kept
//! as 128-bit digests in sorted vectors, so 100,000 devices take about
//! 5 MB, whatever the names' length. A digest collision (about 10⁻²⁹ for
//! 100,000 names) could only hide a device's drift until its deep check.

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
    /// Sorted by digest; `true` for ACTIVE.
    certificates: Vec<(u128, bool)>,
}

impl AwsListing {
    pub fn new<'a>(
        things: impl IntoIterator<Item = &'a str>,
        certificates: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> AwsListing {
        let mut certificates: Vec<(u128, bool)> = certificates
            .into_iter()
            .map(|(id, active)| (digest(id), active))
            .collect();
        certificates.sort_unstable();
        certificates.shrink_to_fit();
        AwsListing {
            things: Names::new(things),
            certificates,
        }
    }

    /// Reads both listings, page by page, side by side (each API has its
    /// own quota): about 2 calls per 250 devices.
    pub async fn read(iot: &IotRegistry) -> Result<AwsListing, IotError> {
        let things = async {
            let mut things = Gathered::default();
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
            let mut certificates = Vec::new();
            let mut marker = None;
            loop {
                let (page, next) = iot.certificates_page(marker).await?;
                certificates.extend(page.iter().map(|c| (digest(&c.id), c.active)));
                marker = next;
                if marker.is_none() {
                    certificates.sort_unstable();
                    return Ok(certificates);
                }
            }
        };
        let (things, certificates) = futures::try_join!(things, certificates)?;
        Ok(AwsListing {
            things,
            certificates,
        })
    }

    /// Whether the Thing of that name is listed as the integration's.
    pub fn has_thing(&self, name: &str) -> bool {
        self.things.contains(name)
    }

    /// Whether the certificate is ACTIVE; `None` when it is not listed.
    pub fn certificate_active(&self, id: &str) -> Option<bool> {
        let key = digest(id);
        let at = self.certificates.partition_point(|(d, _)| *d < key);
        self.certificates
            .get(at)
            .filter(|(d, _)| *d == key)
            .map(|(_, active)| *active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_answer_for_what_they_listed_and_nothing_else() {
        let listing = AwsListing::new(["d1", "d2"], [("c1", true), ("c2", false)]);
        assert!(listing.has_thing("d1") && listing.has_thing("d2"));
        assert!(!listing.has_thing("d3"));
        assert_eq!(listing.certificate_active("c1"), Some(true));
        assert_eq!(listing.certificate_active("c2"), Some(false));
        assert_eq!(listing.certificate_active("c3"), None);
        let names = Names::new(["a", "b", "a"]);
        assert_eq!(names.len(), 2);
        assert!(names.contains("a") && !names.contains("c"));
    }
}
