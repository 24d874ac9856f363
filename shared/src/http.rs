//! The HTTP boundary: one error type for every API route, mapped once to a
//! JSON response.

use lambda_http::{Body, Response};
use serde_json::json;

use crate::settings::SettingsError;

/// Where the API lives: Mender's iot-manager management API's prefix, so
/// that a script written for Mender's API works by changing the host.
pub const API_PREFIX: &str = "/api/management/v1/iot-manager";

/// A response handed to Lambda as it was built: what every HTTP function
/// returns. For a bare `Response<Body>`, lambda_http reads a text body again
/// and decodes it by the charset its content type names, which links
/// encoding_rs and its tables (0.2 MB of each binary). Ours are UTF-8 JSON
/// and assets already: there is nothing to convert.
pub struct AsBuilt(pub Response<Body>);

impl lambda_http::IntoResponse for AsBuilt {
    fn into_response(self) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(std::future::ready(self.0))
    }
}

/// Mender's paging of a listing: 1-based `page`, `per_page` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub per_page: u32,
}

impl Paging {
    /// Mender's default page size.
    pub const DEFAULT_PER_PAGE: u32 = 20;
    /// Mender's largest page.
    pub const MAX_PER_PAGE: u32 = 500;

    /// Pure: the paging a query string asks for, or a 400 that names the
    /// parameter.
    pub fn parse<'a>(query: impl Fn(&str) -> Option<&'a str>) -> Result<Paging, ApiError> {
        let number = |name: &str, default: u32, max: u32| match query(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{name} must be a whole number from 1 to {max}, not {text:?}"
                    ))
                }),
        };
        Ok(Paging {
            page: number("page", 1, u32::MAX / Self::MAX_PER_PAGE)?,
            per_page: number("per_page", Self::DEFAULT_PER_PAGE, Self::MAX_PER_PAGE)?,
        })
    }

    /// How many items come before the page.
    pub fn skip(&self) -> usize {
        (self.page as usize - 1) * self.per_page as usize
    }
}

/// Everything an API route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// 400 naming every field that is wrong, not just the first.
    #[error("invalid fields: {}", .0.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "))]
    InvalidFields(Vec<FieldProblem>),
    /// 422: the organization's Mender cannot serve the bridge as it is.
    #[error("{0}")]
    MenderUnsuitable(String),
    /// 422: AWS refused the organization's credentials or settings.
    #[error("AWS refused the integration's credentials: {explanation}")]
    AwsRejected {
        aws_error_code: String,
        explanation: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` that no longer holds.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// What the request would store is over a limit of the store.
    #[error("{0}")]
    DocumentTooLarge(String),
    /// 429 with `Retry-After`: the caller must wait this long.
    #[error("{message}; try again in {retry_after_seconds} seconds")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Details go to the log, never to the caller.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidFields(_) => 400,
            ApiError::AwsRejected { .. } | ApiError::MenderUnsuitable(_) => 422,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict(_) => 409,
            ApiError::PreconditionFailed(_) => 412,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::DocumentTooLarge(_) => 413,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::BadGateway(_) => 502,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Internal => 500,
        }
    }

    /// A short machine-readable code beside the human message.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidFields(_) => "invalid_fields",
            ApiError::AwsRejected { .. } => "aws_rejected",
            ApiError::MenderUnsuitable(_) => "mender_unsuitable",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::DocumentTooLarge(_) => "document_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::BadGateway(_) => "bad_gateway",
            ApiError::ServiceUnavailable(_) => "service_unavailable",
            ApiError::Internal => "internal",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        self.into_response_with_id(&uuid::Uuid::new_v4().to_string())
    }

    /// The error as JSON: Mender's `error` and `request_id`, the bridge's
    /// `code` and details.
    pub fn into_response_with_id(self, request_id: &str) -> Response<Body> {
        let mut body =
            json!({ "error": self.to_string(), "request_id": request_id, "code": self.code() });
        let mut retry_after = None;
        match &self {
            ApiError::InvalidFields(fields) => body["fields"] = json!(fields),
            ApiError::AwsRejected { aws_error_code, .. } => {
                body["aws_error_code"] = json!(aws_error_code)
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => {
                body["retry_after_seconds"] = json!(retry_after_seconds);
                retry_after = Some(*retry_after_seconds);
            }
            _ => {}
        }
        let mut response = json_response(self.status(), &body);
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

/// What an unreadable integration means to an API caller; the details go
/// to the log.
impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        match error {
            SettingsError::NotFound(_) => {
                ApiError::NotFound("this organization has no integration".into())
            }
            SettingsError::Unavailable(reason) => {
                tracing::error!(reason, "integration settings could not be read");
                ApiError::ServiceUnavailable(
                    "the integration's settings are unavailable; try again".into(),
                )
            }
            SettingsError::Invalid(_) => {
                tracing::error!(%error, "integration settings are unusable");
                ApiError::Internal
            }
        }
    }
}

/// One invalid field of a request body, by its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Mender's request id header: echoed when the caller sent one, made up
/// otherwise, on every answer (and in every error body, as Mender does).
pub const REQUEST_ID_HEADER: &str = "x-men-requestid";

/// The request id of an answer to `headers`: the caller's, when it is one
/// (1-128 of `[A-Za-z0-9._:-]`), else a new UUID. Pure but for the UUID.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The answer to `request`: the response, or the error's JSON body with
/// `request_id`; either way with the `X-MEN-RequestID` header, and read
/// only as the type it says it is (`nosniff`): the web console shares the
/// API's origin, so no answer may ever be taken for a page or a script.
pub fn answer(
    request: &lambda_http::Request,
    result: Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let id = request_id(request.headers());
    let mut response = result.unwrap_or_else(|error| error.into_response_with_id(&id));
    let headers = response.headers_mut();
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The `{device_id}` of a device's route. An id that cannot name a Thing
/// cannot have `what` the route is about: 404, before any call.
pub fn device_id(request: &lambda_http::Request, what: &str) -> Result<String, ApiError> {
    use lambda_http::RequestExt;
    let device_id = request
        .path_parameters_ref()
        .and_then(|p| p.first("device_id"))
        .unwrap_or_default();
    if !crate::iot::is_valid_thing_name(device_id) {
        return Err(ApiError::NotFound(format!(
            "no device with id `{device_id}` can have {what}"
        )));
    }
    Ok(device_id.to_owned())
}

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("status and header are valid")
}

/// The request body's bytes, whatever encoding API Gateway chose.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_menders_one_based_pages_of_at_most_500() {
        let parse = |pairs: &[(&'static str, &'static str)]| {
            Paging::parse(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
                .map(|paging| (paging.page, paging.per_page, paging.skip()))
                .map_err(|error| error.status())
        };
        for (pairs, expected) in [
            (&[][..], Ok((1, 20, 0))),
            (&[("page", "3"), ("per_page", "50")][..], Ok((3, 50, 100))),
            (&[("per_page", "500")][..], Ok((1, 500, 0))),
            (&[("per_page", "501")][..], Err(400)),
            (&[("per_page", "0")][..], Err(400)),
            (&[("page", "0")][..], Err(400)),
            (&[("page", "8589935")][..], Err(400)),
            (&[("page", "1.5")][..], Err(400)),
        ] {
            assert_eq!(parse(pairs), expected, "{pairs:?}");
        }
    }

    #[test]
    fn every_answer_is_read_only_as_its_type() {
        let request = http::Request::builder().body(Body::Empty).unwrap();
        for result in [
            Ok(json_response(200, &serde_json::json!({}))),
            Err(ApiError::NotFound("no".into())),
        ] {
            let response = answer(&request, result);
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }

    #[tokio::test]
    async fn a_response_reaches_lambda_as_it_was_built() {
        use lambda_http::IntoResponse;
        // lambda_http's own conversion would turn each of these into text.
        for (content_type, body) in [
            (None, Body::Empty),
            (Some("application/json"), Body::Binary(b"{}".to_vec())),
            (Some("text/plain; charset=latin1"), Body::Binary(vec![0xe9])),
        ] {
            let mut built = Response::builder().status(204);
            if let Some(content_type) = content_type {
                built = built.header("content-type", content_type);
            }
            let sent = AsBuilt(built.body(body.clone()).unwrap())
                .into_response()
                .await;
            assert_eq!(sent.status(), 204);
            assert_eq!(sent.body(), &body, "{content_type:?}");
        }
    }

    #[test]
    fn a_request_id_is_the_callers_when_it_can_be_one() {
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                REQUEST_ID_HEADER,
                http::HeaderValue::from_str(value).unwrap(),
            );
            request_id(&headers)
        };
        assert_eq!(
            with("7d8b5a0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
            "7d8b5a0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(with("trace.42:a_b"), "trace.42:a_b");
        for made_up in [
            with("a b"),
            with(&"x".repeat(129)),
            with("<script>"),
            request_id(&http::HeaderMap::new()),
        ] {
            assert!(uuid::Uuid::parse_str(&made_up).is_ok(), "{made_up}");
        }
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let response = ApiError::TooManyRequests {
            message: "too many failed setups".into(),
            retry_after_seconds: 42,
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "42");
        let Body::Text(text) = response.body() else {
            panic!("a JSON body");
        };
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["code"], "too_many_requests");
        assert!(uuid::Uuid::parse_str(body["request_id"].as_str().unwrap()).is_ok());
        assert_eq!(body["retry_after_seconds"], 42);
        assert_eq!(
            body["error"],
            "too many failed setups; try again in 42 seconds"
        );
    }
}
