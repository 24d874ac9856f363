//! What bulk listings say, held compactly: a run compares each device with
//! them instead of reading the device's own state. Mender's device ids and
//! certificate ids are kept as 128-bit digests in sorted vectors (a
//! certificate's status in a vector beside them), whatever their length;
//! the integration's Things by name, sorted, because the run's Things phase
//! acts on the names Mender's listing lacks. About 10 MB for 100,000
//! devices. A digest collision (about 10⁻²⁹ for 100,000 names) could only
//! hide a device's drift until its deep check.

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
    /// Sorted, without repeats.
    things: Vec<Box<str>>,
    /// Sorted, without repeats.
    certificates: Vec<u128>,
    /// Beside `certificates`: whether each is ACTIVE.
    active: Vec<bool>,
}

impl AwsListing {
    pub fn new<'a>(
        things: impl IntoIterator<Item = &'a str>,
        certificates: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> AwsListing {
        AwsListing::of(
            things.into_iter().map(Box::from).collect(),
            certificates
                .into_iter()
                .map(|(id, active)| (digest(id), active))
                .collect(),
        )
    }

    fn of(mut things: Vec<Box<str>>, mut certificates: Vec<(u128, bool)>) -> AwsListing {
        things.sort_unstable();
        things.dedup();
        things.shrink_to_fit();
        certificates.sort_unstable();
        certificates.dedup_by_key(|(digest, _)| *digest);
        let (certificates, active) = certificates.into_iter().unzip();
        AwsListing {
            things,
            certificates,
            active,
        }
    }

    /// Reads both listings, page by page, side by side (each API has its
    /// own quota): about 2 calls per 250 devices.
    pub async fn read(iot: &IotRegistry) -> Result<AwsListing, IotError> {
        let things = async {
            let mut things = Vec::new();
            let mut next = None;
            loop {
                let (page, token) = iot.managed_things(next, AWS_PAGE_SIZE).await?;
                things.extend(page.into_iter().map(String::into_boxed_str));
                next = token;
                if next.is_none() {
                    return Ok::<_, IotError>(things);
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
                    return Ok(certificates);
                }
            }
        };
        let (things, certificates) = futures::try_join!(things, certificates)?;
        Ok(AwsListing::of(things, certificates))
    }

    /// Whether the Thing of that name is listed as the integration's.
    pub fn has_thing(&self, name: &str) -> bool {
        self.things.binary_search_by(|t| (**t).cmp(name)).is_ok()
    }

    /// The integration's Things as listed.
    pub fn things(&self) -> impl ExactSizeIterator<Item = &str> {
        self.things.iter().map(|t| &**t)
    }

    /// Whether the certificate is ACTIVE; `None` when it is not listed.
    pub fn certificate_active(&self, id: &str) -> Option<bool> {
        let at = self.certificates.binary_search(&digest(id)).ok()?;
        Some(self.active[at])
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
        assert_eq!(listing.things().collect::<Vec<_>>(), ["d1", "d2"]);
        let names = Names::new(["a", "b", "a"]);
        assert_eq!(names.len(), 2);
        assert!(names.contains("a") && !names.contains("c"));
    }
}
