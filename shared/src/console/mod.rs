//! The web console: one page, its style sheet and its script, embedded in
//! the binary and served as they are (`GET /`, `GET /console/{asset}`).
//! Everything it shows it reads from the bridge's own API, with the
//! signed-in user's Mender token, so it can do nothing the API would not
//! let that user do; see docs/console.md.
//!
//! The page loads nothing from anywhere else, and its Content-Security-Policy
//! says so: no inline script or style, no other origin, no framing.

use lambda_http::{Body, Request, Response};

use crate::http::ApiError;

/// Where the page's own files are served from.
pub const ASSET_PREFIX: &str = "/console/";

/// Only this origin's script, style and API; nothing inline, no framing, no
/// form posted anywhere (the script sends every request itself).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console.css"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console.js"),
    },
];

/// `GET /` and `GET /console/{asset}` (with `nosniff`, as every answer:
/// `crate::http::answer`).
pub fn handle(request: &Request) -> Response<Body> {
    let result = match ASSETS.iter().find(|a| a.path == request.uri().path()) {
        Some(asset) if request.method() == http::Method::GET => Ok(serve(asset)),
        Some(_) => Err(ApiError::MethodNotAllowed(
            "the console's files are read with GET".into(),
        )),
        None => Err(ApiError::NotFound(format!(
            "the console has no file {}",
            request.uri().path()
        ))),
    };
    crate::http::answer(request, result)
}

fn serve(asset: &Asset) -> Response<Body> {
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, asset.content_type)
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        // The files change only with a deployment; the page is checked
        // each time, so a new deployment is seen at once.
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::Text(asset.body.to_owned()))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<Body> {
        let request = http::Request::builder()
            .uri(path)
            .body(Body::Empty)
            .unwrap();
        handle(&request)
    }

    #[test]
    fn each_file_is_served_with_its_type_and_the_policy() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
        ] {
            let response = get(path);
            assert_eq!(response.status(), 200, "{path}");
            let headers = response.headers();
            assert_eq!(headers["content-type"], content_type, "{path}");
            assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["x-frame-options"], "DENY");
        }
    }

    #[test]
    fn anything_else_is_a_json_error() {
        for (path, method, status) in [
            ("/console/other.js", "GET", 404),
            ("/index.html", "GET", 404),
            ("/", "POST", 405),
        ] {
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .body(Body::Empty)
                .unwrap();
            let response = handle(&request);
            assert_eq!(response.status(), status, "{method} {path}");
            let body: serde_json::Value =
                serde_json::from_slice(crate::http::body_bytes(response.body())).unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
    }

    /// What the policy forbids would be refused by the browser; this keeps
    /// the files within it, and the page within this origin.
    #[test]
    fn the_page_needs_nothing_the_policy_forbids() {
        let page = ASSETS[0].body;
        for forbidden in [
            "<script>",
            "style=",
            " onclick",
            " onload",
            " onsubmit",
            "<style",
        ] {
            assert!(!page.contains(forbidden), "the page has {forbidden}");
        }
        for asset in ASSETS {
            for external in ["http://", "https://", "//fonts", "@import", "url("] {
                assert!(
                    !asset.body.contains(external),
                    "{} refers to {external}",
                    asset.path
                );
            }
        }
        for asset in &ASSETS[1..] {
            assert!(page.contains(asset.path), "the page loads {}", asset.path);
        }
        let script = ASSETS[2].body;
        for forbidden in ["eval(", "new Function", "innerHTML", "document.write"] {
            assert!(!script.contains(forbidden), "the script uses {forbidden}");
        }
    }
}
