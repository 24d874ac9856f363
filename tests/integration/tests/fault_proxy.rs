//! Tests of the fault-injecting proxy against a small axum upstream (and, for
//! the error formats, against the real AWS SDK clients).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use integration_tests::fault_proxy::{Fault, FaultProxy, FaultRule, operation_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AWS_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef";

// ---------------------------------------------------------------------------
// Test upstream: echoes the request as JSON; `x-echo-status` picks the status.
// ---------------------------------------------------------------------------

struct Upstream {
    url: String,
    authority: String,
    hits: Arc<AtomicUsize>,
}

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target == "secretsmanager.GetSecretValue" {
        let body = serde_json::json!({
            "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
            "Name": "s",
            "SecretString": "hello",
            "VersionId": "v1",
        });
        return (
            [("content-type", "application/x-amz-json-1.1")],
            body.to_string(),
        )
            .into_response();
    }
    let status = headers
        .get("x-echo-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|v| StatusCode::from_u16(v).ok())
        .unwrap_or(StatusCode::OK);
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let json = serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": header_map,
        "body": String::from_utf8_lossy(&body),
    });
    (
        status,
        [("x-upstream", "echo"), ("content-type", "application/json")],
        json.to_string(),
    )
        .into_response()
}

async fn start_upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(echo).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Upstream {
        url: format!("http://{addr}"),
        authority: addr.to_string(),
        hits,
    }
}

async fn setup() -> (Upstream, FaultProxy) {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(&upstream.url).await.unwrap();
    (upstream, proxy)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A Secrets Manager style AWS JSON request.
fn aws_json(client: &reqwest::Client, proxy: &FaultProxy, target: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{}/", proxy.url()))
        .header("authorization", AWS_AUTH)
        .header("x-amz-target", target)
        .header(
            "content-type",
            if target.starts_with("DynamoDB") {
                "application/x-amz-json-1.0"
            } else {
                "application/x-amz-json-1.1"
            },
        )
        .body(r#"{"SecretId":"s"}"#)
}

/// An STS style AWS Query request.
fn aws_query(client: &reqwest::Client, proxy: &FaultProxy) -> reqwest::RequestBuilder {
    client
        .post(format!("{}/", proxy.url()))
        .header("authorization", AWS_AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Fr")
}

/// An IoT REST-JSON request (DescribeThing).
fn aws_rest(client: &reqwest::Client, proxy: &FaultProxy) -> reqwest::RequestBuilder {
    client
        .get(format!("{}/things/thing-1", proxy.url()))
        .header("authorization", AWS_AUTH)
}

const MENDER_DEVICE: &str = "/api/management/v2/devauth/devices/5f0c1b2a3d4e5f6a7b8c9d0e";
const MENDER_DEVICE_OP: &str = "GET /api/management/v2/devauth/devices/{id}";

fn mender(client: &reqwest::Client, proxy: &FaultProxy) -> reqwest::RequestBuilder {
    client
        .get(format!("{}{MENDER_DEVICE}", proxy.url()))
        .bearer_auth("mender-token")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------------------
// Forwarding
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forwards_method_path_query_headers_body_and_status() {
    let (upstream, proxy) = setup().await;
    let c = client();

    let resp = c
        .put(format!("{}/some/path/x%2Fy?a=1&b=two%20words", proxy.url()))
        .header("x-custom", "custom-value")
        .header("x-echo-status", "201")
        .header("content-type", "text/plain")
        .body("the request body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "x-upstream"), Some("echo"));
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/some/path/x%2Fy");
    assert_eq!(echo["query"], "a=1&b=two%20words");
    assert_eq!(echo["body"], "the request body");
    assert_eq!(echo["headers"]["x-custom"], "custom-value");
    assert_eq!(echo["headers"]["content-type"], "text/plain");
    assert_eq!(echo["headers"]["content-length"], "16");
    assert_eq!(echo["headers"]["host"], upstream.authority.as_str());

    // Other methods and an upstream error status pass through unchanged.
    for (method, status) in [
        (Method::DELETE, 404u16),
        (Method::PATCH, 409),
        (Method::GET, 503),
        (Method::POST, 200),
    ] {
        let resp = c
            .request(method.clone(), format!("{}/m?x=1", proxy.url()))
            .header("x-echo-status", status.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method}");
        let echo: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], "/m");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 5);

    let calls = proxy.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(calls[0].path, "/some/path/x%2Fy");
    assert_eq!(calls[0].operation, "PUT /some/path/x%2Fy");
    assert_eq!(calls[0].status, Some(201));
    assert!(calls[0].fault.is_none());
    assert_eq!(calls[1].status, Some(404));
    assert_eq!(calls[3].status, Some(503));
}

#[tokio::test]
async fn forwards_large_bodies_and_many_concurrent_requests() {
    let (upstream, proxy) = setup().await;
    let c = client();
    let big = "x".repeat(300_000);
    let resp = c
        .post(format!("{}/big", proxy.url()))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["body"].as_str().map(str::len), Some(big.len()));

    let futs = (0..64).map(|i| {
        let c = c.clone();
        let url = format!("{}/concurrent/{i}", proxy.url());
        async move { c.get(url).send().await.map(|r| r.status()) }
    });
    let results = futures::future::join_all(futs).await;
    for r in &results {
        assert_eq!(r.as_ref().ok().copied(), Some(StatusCode::OK), "{r:?}");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 65);
    assert_eq!(proxy.count("*"), 65);
}

#[tokio::test]
async fn unreachable_upstream_gives_502() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let resp = client()
        .get(format!("{}/x", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(proxy.calls()[0].status, Some(502));
}

#[tokio::test]
async fn rejects_bad_upstream_urls() {
    assert!(FaultProxy::start("not a url").await.is_err());
    assert!(FaultProxy::start("https://127.0.0.1:1").await.is_err());
    assert!(FaultProxy::start("/just/a/path").await.is_err());
}

// ---------------------------------------------------------------------------
// Throttle and ServerError
// ---------------------------------------------------------------------------

#[tokio::test]
async fn throttle_aws_json_protocol() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("GetSecretValue", Fault::Throttle));
    let resp = aws_json(&client(), &proxy, "AWSSecretsManager.GetSecretValue")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&resp, "x-amzn-errortype"),
        Some("ThrottlingException")
    );
    assert_eq!(
        header(&resp, "content-type"),
        Some("application/x-amz-json-1.1")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "ThrottlingException");
    assert_eq!(body["message"], "Rate exceeded (injected)");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn throttle_aws_rest_protocol() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("DescribeThing", Fault::Throttle));
    let resp = aws_rest(&client(), &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&resp, "x-amzn-errortype"),
        Some("ThrottlingException")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "ThrottlingException");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn throttle_aws_query_protocol() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("AssumeRole", Fault::Throttle));
    let resp = aws_query(&client(), &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&resp, "content-type"), Some("text/xml"));
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<ErrorResponse"), "{body}");
    assert!(body.contains("<Code>Throttling</Code>"), "{body}");
    assert!(body.contains("<Type>Sender</Type>"), "{body}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn throttle_mender() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always(MENDER_DEVICE_OP, Fault::Throttle));
    let resp = mender(&client(), &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&resp, "x-amzn-errortype"), None);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too many requests (injected)");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rate_limit_passes_its_burst_then_throttles() {
    let (upstream, proxy) = setup().await;
    // A refill so slow that no token comes back during the test.
    proxy.inject(FaultRule::rate_limit(MENDER_DEVICE_OP, 0.001, 2.0));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(mender(&client(), &proxy).send().await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
    let throttled = proxy
        .calls()
        .iter()
        .filter(|c| matches!(c.fault, Some(Fault::Throttle)))
        .count();
    assert_eq!(throttled, 2);
}

#[tokio::test]
async fn server_error_in_every_form() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("*", Fault::ServerError));
    let c = client();

    let resp = aws_json(&c, &proxy, "DynamoDB_20120810.PutItem")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        header(&resp, "x-amzn-errortype"),
        Some("InternalFailureException")
    );
    assert_eq!(
        header(&resp, "content-type"),
        Some("application/x-amz-json-1.0")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "InternalFailureException");

    let resp = aws_rest(&c, &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        header(&resp, "x-amzn-errortype"),
        Some("InternalFailureException")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "InternalFailureException");

    let resp = aws_query(&c, &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Code>InternalFailure</Code>"), "{body}");

    let resp = mender(&c, &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "internal error (injected)");

    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
    let statuses: Vec<_> = proxy.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![Some(500); 4]);
    let ops: Vec<_> = proxy.calls().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        ["PutItem", "DescribeThing", "AssumeRole", MENDER_DEVICE_OP]
    );
}

// ---------------------------------------------------------------------------
// Timeout, Reset, Latency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn timeout_makes_the_client_time_out_without_blocking_others() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("GET /hold", Fault::Timeout));
    let short = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let held = {
        let short = short.clone();
        let url = format!("{}/hold", proxy.url());
        tokio::spawn(async move {
            let start = Instant::now();
            (short.get(url).send().await, start.elapsed())
        })
    };
    // While that request is held, others go through.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = short
        .get(format!("{}/free", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (result, elapsed) = held.await.unwrap();
    let err = result.expect_err("held request must not get a response");
    assert!(err.is_timeout(), "{err:?}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.count("GET /hold"), 1);
    let held_call = &proxy.calls()[0];
    assert_eq!(held_call.operation, "GET /hold");
    assert!(matches!(held_call.fault, Some(Fault::Timeout)));
    assert_eq!(held_call.status, None);
}

#[tokio::test]
async fn timeout_holds_the_connection_until_the_proxy_is_dropped() {
    let (_upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("*", Fault::Timeout));
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream
        .write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let first = tokio::time::timeout(Duration::from_millis(400), stream.read(&mut buf)).await;
    assert!(first.is_err(), "expected no answer, got {first:?}");

    let clone = proxy.clone();
    drop(proxy);
    // A clone keeps it alive.
    let still = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(still.is_err(), "expected no answer, got {still:?}");

    drop(clone);
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("connection must close when the proxy is dropped");
    match closed {
        Ok(n) => assert_eq!(n, 0, "unexpected data: {:?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[tokio::test]
async fn reset_gives_the_client_a_connection_error() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("DescribeThing", Fault::Reset));
    let start = Instant::now();
    let err = aws_rest(&client(), &proxy)
        .send()
        .await
        .expect_err("reset must not produce a response");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
    assert!(proxy.count("DescribeThing") >= 1);
    let call = &proxy.calls()[0];
    assert!(matches!(call.fault, Some(Fault::Reset)));
    assert_eq!(call.status, None);
}

#[tokio::test]
async fn reset_sends_a_tcp_rst() {
    let (_upstream, proxy) = setup().await;
    proxy.inject(FaultRule::once("POST /upload", Fault::Reset));
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("proxy must close the connection");
    let err = read.expect_err("expected a connection reset, not a clean end of stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    // The rule was used up: the next request on a new connection is forwarded.
    let resp = client()
        .post(format!("{}/upload", proxy.url()))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(proxy.count("POST /upload"), 2);
}

#[tokio::test]
async fn latency_delays_then_forwards() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::once(
        "GET /slow",
        Fault::Latency(Duration::from_millis(250)),
    ));
    let c = client();
    let start = Instant::now();
    let resp = c.get(format!("{}/slow", proxy.url())).send().await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "x-upstream"), Some("echo"));
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);
    let call = &proxy.calls()[0];
    assert!(matches!(call.fault, Some(Fault::Latency(d)) if d == Duration::from_millis(250)));
    assert_eq!(call.status, Some(200));
}

#[tokio::test]
async fn global_latency_applies_to_every_call_concurrently() {
    let (upstream, proxy) = setup().await;
    let latency = Duration::from_millis(150);
    proxy.set_latency(latency);
    let c = client();
    let start = Instant::now();
    let futs = (0..10).map(|i| {
        let c = c.clone();
        let url = format!("{}/g/{i}", proxy.url());
        async move {
            let t = Instant::now();
            let status = c.get(url).send().await.map(|r| r.status());
            (status, t.elapsed())
        }
    });
    let results = futures::future::join_all(futs).await;
    let total = start.elapsed();
    for (status, elapsed) in &results {
        assert_eq!(status.as_ref().ok().copied(), Some(StatusCode::OK));
        assert!(*elapsed >= latency, "{elapsed:?}");
    }
    // Ten sequential delays would take 1.5 s.
    assert!(total < latency * 10, "calls were serialised: {total:?}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 10);
    assert!(proxy.calls().iter().all(|c| c.fault.is_none()));

    proxy.set_latency(Duration::ZERO);
    let start = Instant::now();
    c.get(format!("{}/g/fast", proxy.url()))
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() < latency * 3);
}

// ---------------------------------------------------------------------------
// Rule budgets, order, bookkeeping
// ---------------------------------------------------------------------------

#[tokio::test]
async fn once_applies_once_then_forwards() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::once("DescribeThing", Fault::Throttle));
    let c = client();
    let first = aws_rest(&c, &proxy).send().await.unwrap();
    let second = aws_rest(&c, &proxy).send().await.unwrap();
    let third = aws_rest(&c, &proxy).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
    assert_eq!(proxy.count("DescribeThing"), 3);
    let faults: Vec<bool> = proxy.calls().iter().map(|c| c.fault.is_some()).collect();
    assert_eq!(faults, [true, false, false]);
}

#[tokio::test]
async fn times_n_applies_n_times() {
    let (_upstream, proxy) = setup().await;
    proxy.inject(FaultRule {
        operation: "GET /n".into(),
        fault: Fault::ServerError,
        times: Some(2),
        every: 1,
    });
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            c.get(format!("{}/n", proxy.url()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [500, 500, 200, 200]);
}

#[tokio::test]
async fn always_applies_every_time_until_cleared() {
    let (upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always(MENDER_DEVICE_OP, Fault::Throttle));
    let c = client();
    for _ in 0..5 {
        let resp = mender(&c, &proxy).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // A different operation is not affected.
    let other = c
        .get(format!("{}/api/management/v1/other", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);

    proxy.clear();
    let resp = mender(&c, &proxy).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(proxy.count(MENDER_DEVICE_OP), 6);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn first_matching_rule_with_budget_wins() {
    let (_upstream, proxy) = setup().await;
    proxy.inject(FaultRule::once("GetSecretValue", Fault::Throttle));
    proxy.inject(FaultRule::times("*", Fault::ServerError, 2));
    proxy.inject(FaultRule::always("GetSecretValue", Fault::Throttle));
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = aws_json(&c, &proxy, "AWSSecretsManager.GetSecretValue")
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    // once(Throttle) → 400; "*" ServerError ×2 → 500, 500; then always(Throttle).
    assert_eq!(statuses, [400, 500, 500, 400]);
    // The wildcard's budget is spent, so other operations are forwarded.
    let resp = c.get(format!("{}/x", proxy.url())).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn calls_and_count_record_operations() {
    let (_upstream, proxy) = setup().await;
    let c = client();
    aws_json(&c, &proxy, "AWSSecretsManager.GetSecretValue")
        .send()
        .await
        .unwrap();
    aws_query(&c, &proxy).send().await.unwrap();
    aws_rest(&c, &proxy).send().await.unwrap();
    aws_rest(&c, &proxy).send().await.unwrap();
    mender(&c, &proxy).send().await.unwrap();
    c.get(format!("{}/plain/path?q=1", proxy.url()))
        .send()
        .await
        .unwrap();

    let calls = proxy.calls();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(
        ops,
        [
            "GetSecretValue",
            "AssumeRole",
            "DescribeThing",
            "DescribeThing",
            MENDER_DEVICE_OP,
            "GET /plain/path",
        ]
    );
    assert_eq!(calls[4].path, MENDER_DEVICE);
    assert_eq!(calls[5].path, "/plain/path");
    assert_eq!(calls[1].method, "POST");
    assert!(calls.iter().all(|c| c.status == Some(200)));
    assert_eq!(proxy.count("DescribeThing"), 2);
    assert_eq!(proxy.count("GetSecretValue"), 1);
    assert_eq!(proxy.count("PutItem"), 0);
    assert_eq!(proxy.count("*"), 6);

    proxy.reset_calls();
    assert!(proxy.calls().is_empty());
    assert_eq!(proxy.count("DescribeThing"), 0);
    aws_rest(&c, &proxy).send().await.unwrap();
    assert_eq!(proxy.count("DescribeThing"), 1);
}

#[tokio::test]
async fn survives_garbage_input() {
    let (_upstream, proxy) = setup().await;
    proxy.inject(FaultRule::always("*", Fault::Throttle));
    for junk in [
        &b"\x00\x01\x02 NOT HTTP\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nx-amz-target: \r\nauthorization: AWS4-HMAC-SHA256\r\nContent-Length: 12\r\n\r\nAction=%zz&&",
    ] {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let _ = s.write_all(junk).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    }
    proxy.clear();
    let resp = client()
        .get(format!("{}/after", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// The real AWS SDK understands the injected errors.
// ---------------------------------------------------------------------------

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test")
}

fn secrets_client(proxy: &FaultProxy, max_attempts: u32) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Region, retry::RetryConfig};
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .http_client(bridge::aws_http::client())
        .endpoint_url(proxy.url())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

fn iot_client(proxy: &FaultProxy) -> aws_sdk_iot::Client {
    use aws_sdk_iot::config::{BehaviorVersion, Region, retry::RetryConfig};
    let conf = aws_sdk_iot::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .http_client(bridge::aws_http::client())
        .endpoint_url(proxy.url())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_iot::Client::from_conf(conf)
}

#[tokio::test]
async fn sdk_sees_throttling_exception_and_retries_it() {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    let (_upstream, proxy) = setup().await;

    // Retried: one throttle, then the upstream answers.
    proxy.inject(FaultRule::once("GetSecretValue", Fault::Throttle));
    let out = secrets_client(&proxy, 3)
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_string(), Some("hello"));
    let statuses: Vec<_> = proxy.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(400), Some(200)]);

    // Not retried: the error code reaches the caller.
    proxy.reset_calls();
    proxy.inject(FaultRule::always("GetSecretValue", Fault::Throttle));
    let err = secrets_client(&proxy, 1)
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert_eq!(err.message(), Some("Rate exceeded (injected)"));
    assert_eq!(proxy.count("GetSecretValue"), 1);
}

#[tokio::test]
async fn sdk_parses_rest_json_errors() {
    use aws_sdk_iot::error::ProvideErrorMetadata;
    let (upstream, proxy) = setup().await;
    let iot = iot_client(&proxy);

    proxy.inject(FaultRule::once("DescribeThing", Fault::Throttle));
    let err = iot
        .describe_thing()
        .thing_name("thing-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));

    proxy.inject(FaultRule::once("DescribeThing", Fault::ServerError));
    let err = iot
        .describe_thing()
        .thing_name("thing-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalFailureException"), "{err:?}");
    assert_eq!(proxy.count("DescribeThing"), 2);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// operation_name
// ---------------------------------------------------------------------------

fn op(method: Method, path: &str) -> String {
    operation_name(&method, path, &HeaderMap::new(), b"")
}

#[test]
fn operation_name_aws_json_targets() {
    for (target, expected) in [
        ("AWSSecretsManager.GetSecretValue", "GetSecretValue"),
        ("secretsmanager.GetSecretValue", "GetSecretValue"),
        ("DynamoDB_20120810.PutItem", "PutItem"),
        ("DynamoDB_20120810.TransactWriteItems", "TransactWriteItems"),
        ("AWSEvents.PutEvents", "PutEvents"),
        ("NoDot", "NoDot"),
    ] {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_static(target));
        assert_eq!(
            operation_name(&Method::POST, "/", &h, br#"{"a":1}"#),
            expected
        );
    }
}

#[test]
fn operation_name_aws_query_action() {
    let h = HeaderMap::new();
    assert_eq!(
        operation_name(
            &Method::POST,
            "/",
            &h,
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws"
        ),
        "AssumeRole"
    );
    assert_eq!(
        operation_name(
            &Method::POST,
            "/",
            &h,
            b"Version=2011-06-15&Action=GetCallerIdentity"
        ),
        "GetCallerIdentity"
    );
    assert_eq!(
        operation_name(
            &Method::GET,
            "/?Action=GetCallerIdentity&Version=2011-06-15",
            &h,
            b""
        ),
        "GetCallerIdentity"
    );
    // A JSON body mentioning Action= is not the Query protocol.
    assert_eq!(
        operation_name(&Method::POST, "/hook", &h, br#"{"x":"Action=Nope"}"#),
        "POST /hook"
    );
}

#[test]
fn operation_name_iot_table() {
    use Method as M;
    let cases: &[(Method, &str, &str)] = &[
        (M::GET, "/things/my-thing", "DescribeThing"),
        (M::POST, "/things/my-thing", "CreateThing"),
        (M::PATCH, "/things/my-thing", "UpdateThing"),
        (M::DELETE, "/things/my-thing", "DeleteThing"),
        (M::GET, "/things", "ListThings"),
        (M::GET, "/things?maxResults=10&nextToken=abc", "ListThings"),
        (M::GET, "/things/my-thing/principals", "ListThingPrincipals"),
        (
            M::GET,
            "/things/my-thing/principals-v2",
            "ListThingPrincipalsV2",
        ),
        (
            M::PUT,
            "/things/my-thing/principals",
            "AttachThingPrincipal",
        ),
        (
            M::DELETE,
            "/things/my-thing/principals",
            "DetachThingPrincipal",
        ),
        (M::POST, "/certificates", "CreateCertificateFromCsr"),
        (
            M::POST,
            "/certificates?setAsActive=true",
            "CreateCertificateFromCsr",
        ),
        (M::GET, "/certificates/0123abcdef", "DescribeCertificate"),
        (
            M::PUT,
            "/certificates/0123abcdef?newStatus=INACTIVE",
            "UpdateCertificate",
        ),
        (M::DELETE, "/certificates/0123abcdef", "DeleteCertificate"),
        (M::GET, "/certificates", "ListCertificates"),
        (M::PUT, "/target-policies/device-policy", "AttachPolicy"),
        (M::POST, "/target-policies/device-policy", "DetachPolicy"),
        (
            M::POST,
            "/attached-policies/arn%3Aaws%3Aiot%3Aus-east-1%3A123456789012%3Acert%2F0123abcdef",
            "ListAttachedPolicies",
        ),
        (
            M::POST,
            "/attached-policies/arn:aws:iot:us-east-1:123456789012:cert/0123abcdef?recursive=false",
            "ListAttachedPolicies",
        ),
        (
            M::POST,
            "/policy-targets/device-policy",
            "ListTargetsForPolicy",
        ),
        (M::GET, "/endpoint", "DescribeEndpoint"),
        (
            M::GET,
            "/endpoint?endpointType=iot%3AData-ATS",
            "DescribeEndpoint",
        ),
        (M::GET, "/policies/device-policy", "GetPolicy"),
        (M::POST, "/policies/device-policy", "CreatePolicy"),
        (M::GET, "/things/my-thing/shadow", "GetThingShadow"),
        (
            M::GET,
            "/things/my-thing/shadow?name=config",
            "GetThingShadow",
        ),
        (M::POST, "/things/my-thing/shadow", "UpdateThingShadow"),
        (M::DELETE, "/things/my-thing/shadow", "DeleteThingShadow"),
        (
            M::GET,
            "/api/things/shadow/ListNamedShadowsForThing/my-thing",
            "ListNamedShadowsForThing",
        ),
        (M::POST, "/topics/a%2Fb", "Publish"),
    ];
    for (method, path, expected) in cases {
        assert_eq!(&op(method.clone(), path), expected, "{method} {path}");
    }
    // With signed AWS headers the answer is the same.
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static(AWS_AUTH));
    assert_eq!(
        operation_name(&Method::GET, "/things/t1", &h, b""),
        "DescribeThing"
    );
    // Methods outside the table fall through.
    assert_eq!(op(Method::PUT, "/things/t1"), "PUT /things/t1");
    assert_eq!(op(Method::GET, "/things/t1/other"), "GET /things/t1/other");
    assert_eq!(op(Method::GET, "/things/"), "GET /things/");
}

#[test]
fn operation_name_mender() {
    let cases = [
        (
            Method::GET,
            "/api/management/v2/devauth/devices/5f0c1b2a3d4e5f6a7b8c9d0e",
            "GET /api/management/v2/devauth/devices/{id}",
        ),
        (
            Method::GET,
            "/api/management/v2/devauth/devices/abcdefabcdefabcdefabcdef",
            "GET /api/management/v2/devauth/devices/{id}",
        ),
        (
            Method::PUT,
            "/api/management/v1/deviceconfig/configurations/device/5f0c1b2a3d4e5f6a7b8c9d0e",
            "PUT /api/management/v1/deviceconfig/configurations/device/{id}",
        ),
        (
            Method::DELETE,
            "/api/management/v2/devauth/devices/5f0c1b2a3d4e5f6a7b8c9d0e/auth/e4f2c5a0-8d1b-4c3e-9f7a-0b1c2d3e4f5a",
            "DELETE /api/management/v2/devauth/devices/{id}/auth/{id}",
        ),
        (
            Method::PUT,
            "/api/management/v2/devauth/devices/dev1/auth/set1/status",
            "PUT /api/management/v2/devauth/devices/{id}/auth/{id}/status",
        ),
        (
            Method::GET,
            "/api/management/v2/inventory/devices?page=2&per_page=500",
            "GET /api/management/v2/inventory/devices",
        ),
        (
            Method::POST,
            "/api/management/v1/useradm/auth/login",
            "POST /api/management/v1/useradm/auth/login",
        ),
        (
            Method::GET,
            "/api/management/v1/deployments/deployments/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "GET /api/management/v1/deployments/deployments/{id}",
        ),
    ];
    for (method, path, expected) in cases {
        assert_eq!(op(method.clone(), path), expected, "{method} {path}");
    }
    // A Mender body with Action= in it is still a Mender operation.
    assert_eq!(
        operation_name(
            &Method::POST,
            "/api/devices/v1/authentication/auth_requests",
            &HeaderMap::new(),
            b"Action=AssumeRole"
        ),
        "POST /api/devices/v1/authentication/auth_requests"
    );
}

#[test]
fn operation_name_fallback() {
    assert_eq!(op(Method::GET, "/"), "GET /");
    assert_eq!(op(Method::POST, "/moto-api/reset"), "POST /moto-api/reset");
    assert_eq!(op(Method::GET, "/a/b?c=d"), "GET /a/b");
    assert_eq!(op(Method::GET, "/device/123"), "GET /device/123");
    assert_eq!(op(Method::GET, ""), "GET /");
    assert_eq!(
        operation_name(&Method::POST, "/x", &HeaderMap::new(), &[0xff, 0xfe, b'&']),
        "POST /x"
    );
}
