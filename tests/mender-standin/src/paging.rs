//! Mender's paging: `page` and `per_page` query parameters, checked as
//! Mender's `rest.ParsePagingParameters` does, and the `Link` headers of a
//! page.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::http::ApiError;

const PER_PAGE_DEFAULT: u64 = 20;
const PER_PAGE_MAX: u64 = 500;

/// The page a listing asked for (pages start at 1).
pub(crate) struct Paging {
    pub page: u64,
    pub per_page: u64,
}

impl Paging {
    /// The paging of a query; other parameters are the caller's.
    pub fn parse(pairs: &[(String, String)]) -> Result<Paging, ApiError> {
        let mut paging = Paging {
            page: 1,
            per_page: PER_PAGE_DEFAULT,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "page" if !value.is_empty() => {
                    paging.page = positive(value).ok_or_else(|| {
                        ApiError::bad_request(format!("invalid page query: \"{value}\""))
                    })?;
                }
                "per_page" if !value.is_empty() => {
                    paging.per_page = positive(value).ok_or_else(|| {
                        ApiError::bad_request(format!("invalid per_page query: \"{value}\""))
                    })?;
                    if paging.per_page > PER_PAGE_MAX {
                        return Err(ApiError::bad_request(format!(
                            "parameter \"per_page\" above limit (max: {PER_PAGE_MAX})"
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(paging)
    }

    /// This page of what `all` yields, and whether a next one exists,
    /// without holding the pages before it or after it.
    pub fn page_of<T>(&self, all: impl Iterator<Item = T>) -> (Vec<T>, bool) {
        let skip =
            usize::try_from((self.page - 1).saturating_mul(self.per_page)).unwrap_or(usize::MAX);
        let per_page = usize::try_from(self.per_page).unwrap_or(usize::MAX);
        let mut page: Vec<T> = all.skip(skip).take(per_page.saturating_add(1)).collect();
        let has_next = page.len() > per_page;
        page.truncate(per_page);
        (page, has_next)
    }

    /// Adds the page's `Link` headers to `response`.
    pub fn add_links(
        &self,
        response: &mut Response,
        path: &str,
        pairs: &[(String, String)],
        has_next: bool,
    ) {
        for link in links(path, pairs, self.page, self.per_page, has_next) {
            if let Ok(value) = HeaderValue::from_str(&link) {
                response.headers_mut().append(header::LINK, value);
            }
        }
    }
}

fn positive(value: &str) -> Option<u64> {
    value.parse::<u64>().ok().filter(|n| *n >= 1)
}

/// Mender's paging `Link` headers (one header per link, in this order):
/// `<path?query>; rel="first"`, then `rel="prev"` and `rel="next"` when they
/// exist. The query keeps the request's parameters, keys sorted, with
/// `page` and `per_page` set.
fn links(
    path: &str,
    pairs: &[(String, String)],
    page: u64,
    per_page: u64,
    has_next: bool,
) -> Vec<String> {
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        query.entry(k.clone()).or_default().push(v.clone());
    }
    query.insert("per_page".into(), vec![per_page.to_string()]);
    let link = |page: u64, rel: &str| {
        let mut q = query.clone();
        q.insert("page".into(), vec![page.to_string()]);
        format!("<{path}?{}>; rel=\"{rel}\"", encode_query(&q))
    };
    let mut links = vec![link(1, "first")];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if has_next {
        links.push(link(page + 1, "next"));
    }
    links
}

/// Go's `url.Values.Encode`: keys sorted, `QueryEscape`d.
fn encode_query(query: &BTreeMap<String, Vec<String>>) -> String {
    let mut parts = Vec::new();
    for (k, values) in query {
        for v in values {
            parts.push(format!("{}={}", query_escape(k), query_escape(v)));
        }
    }
    parts.join("&")
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_its_share_and_knows_whether_more_follow() {
        // (items, page, per_page) → (the page, whether a next one exists)
        let cases: [(u64, u64, u64, &[u64], bool); 6] = [
            (7, 1, 3, &[0, 1, 2], true),
            (7, 3, 3, &[6], false),
            (6, 2, 3, &[3, 4, 5], false),
            (6, 4, 3, &[], false),
            (0, 1, 20, &[], false),
            (7, 1, 500, &[0, 1, 2, 3, 4, 5, 6], false),
        ];
        for (items, page, per_page, expected, next) in cases {
            let paging = Paging { page, per_page };
            assert_eq!(
                paging.page_of(0..items),
                (expected.to_vec(), next),
                "{items} items, page {page} of {per_page}"
            );
        }
    }
}
