//! A fault-injecting HTTP/1 proxy for tests.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every request to one
//! upstream (moto, the Mender stand-in, or any plain-HTTP server). Tests point
//! a client at [`FaultProxy::url`] and inject faults per *operation*: the AWS
//! operation name (`GetSecretValue`, `PutItem`, `DescribeThing`, …), or for
//! Mender and anything else a normalised `"{METHOD} {path}"` (see
//! [`operation_name`]).
//!
//! Faults ([`Fault`]):
//! - `Throttle` / `ServerError`: an error response in the wire format the
//!   client expects (AWS JSON, AWS Query XML, AWS REST-JSON, or a Mender-style
//!   JSON error). The upstream is not called.
//! - `Timeout`: the request is read and never answered; the connection is held
//!   until the client hangs up or the proxy is dropped. Other connections are
//!   unaffected.
//! - `Reset`: the request is read, then the TCP connection is aborted with
//!   `SO_LINGER` 0 (Tokio's `set_zero_linger`), so the peer receives an RST and
//!   sees "connection reset" rather than a clean end of stream.
//! - `Latency(d)`: sleep `d`, then forward normally.
//! - `Crash`: forward, then never answer, and wake [`FaultProxy::crashed`]:
//!   the upstream acted and the caller never learns it, as when a process
//!   stops right after its call reached AWS or Mender.
//! - `RateLimit { per_second, burst }`: a token bucket, as AWS enforces its
//!   per-API request rate quotas; calls beyond it get `Throttle`.
//!
//! Bodies are buffered, not streamed. The `Host` header is rewritten to the
//! upstream's authority (which invalidates a real SigV4 signature; moto does
//! not check signatures). Hop-by-hop headers are dropped in both directions.
//!
//! Dropping the last clone of a [`FaultProxy`] stops the listener and closes
//! every connection, including those held by `Timeout`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// A fault to inject instead of (or before) forwarding a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// AWS: `ThrottlingException` (400 for JSON/Query protocols, 429 for REST).
    /// Mender and others: 429.
    Throttle,
    /// 500; AWS: `InternalFailureException` (`InternalFailure` for Query).
    ServerError,
    /// Read the request and never answer.
    Timeout,
    /// Read the request, then abort the TCP connection (RST).
    Reset,
    /// Sleep, then forward normally.
    Latency(Duration),
    /// Answer with this status and AWS error code (Mender: this status), as
    /// AWS does for wrong keys (`UnrecognizedClientException`, 403), say.
    Refuse(u16, &'static str),
    /// Forward, then never answer; wakes [`FaultProxy::crashed`].
    Crash,
    /// A token bucket, as AWS enforces its per-API request rate quotas: it
    /// holds up to `burst` calls and refills at `per_second`. A call that
    /// finds it empty is answered `Throttle` (and recorded so); a call within
    /// the rate goes on to the next rule. See [`FaultRule::rate_limit`].
    RateLimit { per_second: f64, burst: f64 },
}

/// Which requests a fault applies to, and how often.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Exact operation name (see [`operation_name`]) or `"*"` for any.
    pub operation: String,
    pub fault: Fault,
    /// `Some(n)`: the first `n` matching calls; `None`: every matching call.
    pub times: Option<u32>,
    /// Faults one matching call in this many (the n-th, 2n-th, …); 1: each.
    pub every: u32,
}

impl FaultRule {
    /// The fault applies to the next matching call only.
    pub fn once(op: &str, fault: Fault) -> Self {
        Self::times(op, fault, 1)
    }

    /// The fault applies to every matching call until [`FaultProxy::clear`].
    pub fn always(op: &str, fault: Fault) -> Self {
        FaultRule {
            operation: op.to_owned(),
            fault,
            times: None,
            every: 1,
        }
    }

    /// The fault applies to the next `n` matching calls.
    pub fn times(op: &str, fault: Fault, n: u32) -> Self {
        FaultRule {
            operation: op.to_owned(),
            fault,
            times: Some(n),
            every: 1,
        }
    }

    /// The fault applies to one matching call in `n`, until cleared: a
    /// steady rate of throttling, say.
    pub fn one_in(op: &str, fault: Fault, n: u32) -> Self {
        FaultRule {
            operation: op.to_owned(),
            fault,
            times: None,
            every: n.max(1),
        }
    }

    /// At most `per_second` matching calls per second (bursts of up to
    /// `burst`); the rest are throttled, until cleared.
    pub fn rate_limit(op: &str, per_second: f64, burst: f64) -> Self {
        Self::always(op, Fault::RateLimit { per_second, burst })
    }

    fn matches(&self, operation: &str) -> bool {
        self.operation == "*" || self.operation == operation
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// See [`operation_name`].
    pub operation: String,
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    /// The injected fault, if a rule applied (global latency is not recorded here).
    pub fault: Option<Fault>,
    /// The status returned to the client: `None` while in flight, and for
    /// `Timeout` and `Reset`. Upstream connection failures are reported as 502.
    pub status: Option<u16>,
    /// The request body, as sent (tests read what the bridge sent AWS).
    pub body: bytes::Bytes,
    /// When the proxy received the request.
    pub at: std::time::Instant,
}

impl Call {
    /// The DynamoDB table a call names (`TableName` in its JSON body).
    pub fn table(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        body.get("TableName")?.as_str().map(str::to_owned)
    }
}

struct RuleState {
    rule: FaultRule,
    /// Calls that matched the rule.
    seen: u32,
    /// Calls the rule faulted.
    used: u32,
    /// `RateLimit` only: tokens left, and when they were counted.
    bucket: (f64, std::time::Instant),
}

impl RuleState {
    /// Refills the bucket for the time since it was last counted, then takes
    /// one token if there is one.
    fn take_token(&mut self, per_second: f64, burst: f64) -> bool {
        let now = std::time::Instant::now();
        let (tokens, then) = self.bucket;
        let tokens = (tokens + now.duration_since(then).as_secs_f64() * per_second).min(burst);
        let taken = tokens >= 1.0;
        self.bucket = (if taken { tokens - 1.0 } else { tokens }, now);
        taken
    }
}

#[derive(Default)]
struct Record {
    next_seq: u64,
    calls: Vec<(u64, Call)>,
}

struct State {
    upstream_scheme: http::uri::Scheme,
    upstream_authority: http::uri::Authority,
    /// Upstream path prefix without trailing '/', usually empty.
    upstream_base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<RuleState>>,
    record: Mutex<Record>,
    latency_nanos: AtomicU64,
    request_ids: AtomicU64,
    /// Whether recorded calls keep their request bodies (see
    /// [`FaultProxy::keep_bodies`]).
    keep_bodies: AtomicBool,
    /// Woken when a `Crash` fault has forwarded its call.
    crashed: Notify,
}

/// Poison-tolerant lock: a panic elsewhere (say, a failed assertion in a test
/// task) must not make the proxy panic too.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    state: Arc<State>,
    addr: SocketAddr,
    /// Dropped together with the last `FaultProxy` clone; every task watches it.
    _shutdown: watch::Sender<()>,
}

/// A fault-injecting HTTP proxy in front of one upstream. Cheap to clone.
#[derive(Clone)]
pub struct FaultProxy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url())
            .field(
                "upstream",
                &format!(
                    "{}://{}{}",
                    self.inner.state.upstream_scheme,
                    self.inner.state.upstream_authority,
                    self.inner.state.upstream_base
                ),
            )
            .finish()
    }
}

impl FaultProxy {
    /// Start a proxy on `127.0.0.1:0` forwarding to `upstream`
    /// (`"http://127.0.0.1:PORT"`, optionally with a base path).
    pub async fn start(upstream: &str) -> io::Result<FaultProxy> {
        FaultProxy::start_on(std::net::Ipv4Addr::LOCALHOST.into(), upstream).await
    }

    /// As [`FaultProxy::start`], listening on `ip` (a free port).
    pub async fn start_on(ip: std::net::IpAddr, upstream: &str) -> io::Result<FaultProxy> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fault proxy: bad upstream {upstream:?}: {why}"),
            )
        };
        let uri: Uri = upstream.parse().map_err(|_| invalid("not a URI"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("no scheme"))?;
        if scheme != http::uri::Scheme::HTTP {
            return Err(invalid("only http:// is supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        let base = uri.path().trim_end_matches('/').to_owned();

        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());

        let state = Arc::new(State {
            upstream_scheme: scheme,
            upstream_authority: authority,
            upstream_base: base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            rules: Mutex::new(Vec::new()),
            record: Mutex::new(Record::default()),
            latency_nanos: AtomicU64::new(0),
            request_ids: AtomicU64::new(0),
            keep_bodies: AtomicBool::new(true),
            crashed: Notify::new(),
        });

        tokio::spawn(accept_loop(listener, state.clone(), shutdown_rx));

        Ok(FaultProxy {
            inner: Arc::new(Inner {
                state,
                addr,
                _shutdown: shutdown_tx,
            }),
        })
    }

    /// `http://<ip>:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Add a rule. Rules are checked in insertion order; the first matching
    /// rule with remaining budget applies.
    pub fn inject(&self, rule: FaultRule) {
        let tokens = match rule.fault {
            Fault::RateLimit { burst, .. } => burst,
            _ => 0.0,
        };
        lock(&self.inner.state.rules).push(RuleState {
            rule,
            seen: 0,
            used: 0,
            bucket: (tokens, std::time::Instant::now()),
        });
    }

    /// Resolves once a `Crash` fault has forwarded its call (at once if one
    /// already has since the last wait).
    pub async fn crashed(&self) {
        self.inner.state.crashed.notified().await;
    }

    /// Remove all rules (global latency is kept; see [`FaultProxy::set_latency`]).
    pub fn clear(&self) {
        lock(&self.inner.state.rules).clear();
    }

    /// Fixed extra latency before every request is handled (forwarded or
    /// faulted); `Duration::ZERO` turns it off. Adds to any `Latency` fault.
    pub fn set_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.inner
            .state
            .latency_nanos
            .store(nanos, Ordering::Relaxed);
    }

    /// Every request seen since start (or the last [`FaultProxy::reset_calls`]), in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.state.record)
            .calls
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// How many requests had this operation name, faulted or not; `"*"` counts all.
    pub fn count(&self, operation: &str) -> usize {
        lock(&self.inner.state.record)
            .calls
            .iter()
            .filter(|(_, c)| operation == "*" || c.operation == operation)
            .count()
    }

    /// Whether recorded calls keep their request bodies: a bench of
    /// thousands of calls measures the process's memory, and reads only
    /// the calls' names.
    pub fn keep_bodies(&self, keep: bool) {
        self.inner.state.keep_bodies.store(keep, Ordering::Relaxed);
    }

    /// Forget recorded calls (rules are kept).
    pub fn reset_calls(&self) {
        lock(&self.inner.state.record).calls.clear();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, state.clone(), shutdown.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A TCP stream that is closed abortively (RST) on drop once `abort` is set.
struct AbortableStream {
    stream: TcpStream,
    abort: Arc<AtomicBool>,
}

impl Drop for AbortableStream {
    fn drop(&mut self) {
        if self.abort.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST and discards buffered data.
            if let Err(e) = self.stream.set_zero_linger() {
                tracing::warn!(error = %e, "fault proxy: SO_LINGER 0 failed; closing normally");
            }
        }
    }
}

impl AsyncRead for AbortableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Per-connection handles the request handler uses to abort the connection.
#[derive(Clone)]
struct ConnCtx {
    state: Arc<State>,
    abort: Arc<AtomicBool>,
    reset: Arc<Notify>,
}

async fn serve_connection(stream: TcpStream, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    let abort = Arc::new(AtomicBool::new(false));
    let reset = Arc::new(Notify::new());
    let io = TokioIo::new(AbortableStream {
        stream,
        abort: abort.clone(),
    });
    let ctx = ConnCtx {
        state,
        abort,
        reset: reset.clone(),
    };
    let service = service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(ctx, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    // Dropping `conn` drops the socket: normally a FIN, after `Reset` an RST.
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "fault proxy: connection ended with an error");
            }
        }
        _ = reset.notified() => {}
        _ = shutdown.changed() => {}
    }
}

fn global_latency(state: &State) -> Duration {
    Duration::from_nanos(state.latency_nanos.load(Ordering::Relaxed))
}

async fn handle(ctx: ConnCtx, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain_response(
                StatusCode::BAD_REQUEST,
                format!("fault proxy: could not read request body: {e}"),
            );
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let operation = operation_name(&parts.method, path_and_query, &parts.headers, &body);

    let state = &ctx.state;
    let fault = {
        let mut rules = lock(&state.rules);
        let mut applies = None;
        for r in rules.iter_mut() {
            if !r.rule.matches(&operation) || r.rule.times.is_some_and(|n| r.used >= n) {
                continue;
            }
            r.seen = r.seen.saturating_add(1);
            if let Fault::RateLimit { per_second, burst } = r.rule.fault {
                if r.take_token(per_second, burst) {
                    continue;
                }
                r.used = r.used.saturating_add(1);
                applies = Some(Fault::Throttle);
                break;
            }
            if r.seen % r.rule.every.max(1) == 0 {
                r.used = r.used.saturating_add(1);
                applies = Some(r.rule.fault.clone());
                break;
            }
        }
        applies
    };
    let seq = {
        let mut rec = lock(&state.record);
        let seq = rec.next_seq;
        rec.next_seq += 1;
        rec.calls.push((
            seq,
            Call {
                operation: operation.clone(),
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                fault: fault.clone(),
                status: None,
                body: if state.keep_bodies.load(Ordering::Relaxed) {
                    body.clone()
                } else {
                    Bytes::new()
                },
                at: std::time::Instant::now(),
            },
        ));
        seq
    };
    tracing::debug!(
        %operation,
        method = %parts.method,
        path = %parts.uri.path(),
        ?fault,
        "fault proxy: request"
    );

    let latency = global_latency(state);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let response = match fault {
        Some(Fault::Throttle) => error_response(
            state,
            &parts.method,
            path_and_query,
            &parts.headers,
            &body,
            ErrorKind::Throttle,
        ),
        Some(Fault::ServerError) => error_response(
            state,
            &parts.method,
            path_and_query,
            &parts.headers,
            &body,
            ErrorKind::ServerError,
        ),
        Some(Fault::Refuse(status, code)) => error_response(
            state,
            &parts.method,
            path_and_query,
            &parts.headers,
            &body,
            ErrorKind::Refuse(status, code),
        ),
        Some(Fault::Timeout) => {
            // Hyper drops this future when the connection ends (client hang-up
            // or proxy shutdown).
            std::future::pending::<()>().await;
            unreachable_response()
        }
        Some(Fault::Reset) => {
            ctx.abort.store(true, Ordering::SeqCst);
            ctx.reset.notify_one();
            std::future::pending::<()>().await;
            unreachable_response()
        }
        Some(Fault::Latency(d)) => {
            tokio::time::sleep(d).await;
            forward(state, parts, body).await
        }
        Some(Fault::Crash) => {
            let _ = forward(state, parts, body).await;
            state.crashed.notify_one();
            std::future::pending::<()>().await;
            unreachable_response()
        }
        // A rate limit is recorded as the `Throttle` it answers with.
        None | Some(Fault::RateLimit { .. }) => forward(state, parts, body).await,
    };

    let status = response.status().as_u16();
    let mut rec = lock(&state.record);
    if let Some((_, call)) = rec.calls.iter_mut().rev().find(|(s, _)| *s == seq) {
        call.status = Some(status);
    }
    response
}

/// Never produced (the futures before it never complete); keeps the types simple.
fn unreachable_response() -> Response<Full<Bytes>> {
    plain_response(StatusCode::INTERNAL_SERVER_ERROR, "unreachable".to_owned())
}

fn plain_response(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

async fn forward(state: &State, parts: http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let pq = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let target = format!(
        "{}://{}{}{}",
        state.upstream_scheme, state.upstream_authority, state.upstream_base, pq
    );
    let uri: Uri = match target.parse() {
        Ok(u) => u,
        Err(e) => {
            return plain_response(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: bad upstream URI {target:?}: {e}"),
            );
        }
    };

    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // The body is buffered and sent in one piece, so the client's
    // `Expect: 100-continue` has already been dealt with.
    headers.remove(header::EXPECT);
    if headers.contains_key(header::CONTENT_LENGTH) || !body.is_empty() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if let Ok(host) = HeaderValue::from_str(state.upstream_authority.as_str()) {
        headers.insert(header::HOST, host);
    }

    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;

    let resp = match state.client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            return plain_response(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream request failed: {e}"),
            );
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    let rbody = match rbody.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain_response(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream response body failed: {e}"),
            );
        }
    };
    strip_hop_by_hop(&mut rparts.headers);
    Response::from_parts(rparts, Full::new(rbody))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ErrorKind {
    Throttle,
    ServerError,
    Refuse(u16, &'static str),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    AwsJson,
    AwsQuery,
    AwsRest,
    /// Mender and anything else that is not AWS.
    Plain,
}

fn is_aws(headers: &HeaderMap) -> bool {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("AWS4-HMAC-SHA256"));
    signed || headers.contains_key("x-amz-target")
}

fn protocol(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Protocol {
    if !is_aws(headers) {
        Protocol::Plain
    } else if amz_target_operation(headers).is_some() {
        Protocol::AwsJson
    } else if query_action(method, path, body).is_some() {
        Protocol::AwsQuery
    } else {
        Protocol::AwsRest
    }
}

fn error_response(
    state: &State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    kind: ErrorKind,
) -> Response<Full<Bytes>> {
    let n = state.request_ids.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("00000000-fa17-0000-0000-{n:012x}");
    let proto = protocol(method, path, headers, body);

    let (status, error_type, message) = match (kind, proto) {
        (ErrorKind::Throttle, Protocol::AwsRest) => (
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Rate exceeded (injected)",
        ),
        (ErrorKind::Throttle, Protocol::Plain) => (
            StatusCode::TOO_MANY_REQUESTS,
            "",
            "too many requests (injected)",
        ),
        (ErrorKind::Throttle, _) => (
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded (injected)",
        ),
        (ErrorKind::ServerError, Protocol::Plain) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "",
            "internal error (injected)",
        ),
        (ErrorKind::ServerError, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            "Internal failure (injected)",
        ),
        (ErrorKind::Refuse(status, code), _) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            "Refused (injected)",
        ),
    };

    let (content_type, text) = match proto {
        Protocol::Plain => (
            HeaderValue::from_static("application/json"),
            serde_json::json!({ "error": message, "request_id": request_id }).to_string(),
        ),
        Protocol::AwsJson => {
            // Echo the request's JSON protocol version (DynamoDB is 1.0, most others 1.1).
            let ct = headers
                .get(header::CONTENT_TYPE)
                .filter(|v| v.as_bytes().starts_with(b"application/x-amz-json"))
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/x-amz-json-1.1"));
            (
                ct,
                serde_json::json!({ "__type": error_type, "message": message }).to_string(),
            )
        }
        Protocol::AwsRest => (
            HeaderValue::from_static("application/json"),
            serde_json::json!({ "__type": error_type, "message": message }).to_string(),
        ),
        Protocol::AwsQuery => {
            let (fault_type, code) = match kind {
                ErrorKind::Throttle => ("Sender", "Throttling"),
                ErrorKind::ServerError => ("Receiver", "InternalFailure"),
                ErrorKind::Refuse(_, code) => ("Sender", code),
            };
            (
                HeaderValue::from_static("text/xml"),
                format!(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                     <Error><Type>{fault_type}</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error>\
                     <RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            )
        }
    };

    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    if proto != Protocol::Plain {
        h.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amzn-requestid", v);
        }
    }
    h.insert("x-fault-proxy", HeaderValue::from_static("injected"));
    resp
}

// ---------------------------------------------------------------------------
// Operation names
// ---------------------------------------------------------------------------

/// AWS IoT Core registry operations that change something.
pub const IOT_REGISTRY_WRITES: &[&str] = &[
    "CreateThing",
    "UpdateThing",
    "DeleteThing",
    "CreateCertificateFromCsr",
    "UpdateCertificate",
    "DeleteCertificate",
    "AttachPolicy",
    "DetachPolicy",
    "AttachThingPrincipal",
    "DetachThingPrincipal",
];

/// AWS IoT Core registry operations the bridge reads with.
pub const IOT_REGISTRY_READS: &[&str] = &[
    "DescribeThing",
    "ListThings",
    "ListThingPrincipals",
    "DescribeCertificate",
    "ListCertificates",
    "ListAttachedPolicies",
    "ListTargetsForPolicy",
    "DescribeEndpoint",
];

/// The operation a request belongs to, used to match [`FaultRule`]s:
///
/// 1. AWS JSON protocols: the `X-Amz-Target` header after its last `.`
///    (`AWSSecretsManager.GetSecretValue` → `GetSecretValue`).
/// 2. AWS IoT control plane and data plane (REST-JSON): the operation from a
///    method + path table (`GET /things/{n}` → `DescribeThing`, …).
/// 3. Mender (paths starting `/api/`): `"{METHOD} {path}"` with id-like
///    segments replaced by `{id}`
///    (`GET /api/management/v2/devauth/devices/{id}`).
/// 4. AWS Query protocol: the `Action` form field of the body (or of the
///    query string) (`Action=AssumeRole&…` → `AssumeRole`).
/// 5. Anything else: `"{METHOD} {path}"`.
///
/// `path` may carry a query string; it is never part of the name.
pub fn operation_name(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(op) = amz_target_operation(headers) {
        return op;
    }
    let bare = path.split(['?', '#']).next().unwrap_or("");
    if let Some(op) = iot_operation(method, bare) {
        return op.to_owned();
    }
    if bare.starts_with("/api/") {
        return format!("{} {}", method, normalise_mender_path(bare));
    }
    if let Some(action) = query_action(method, path, body) {
        return action;
    }
    let bare = if bare.is_empty() { "/" } else { bare };
    format!("{method} {bare}")
}

fn amz_target_operation(headers: &HeaderMap) -> Option<String> {
    let target = headers.get("x-amz-target")?.to_str().ok()?.trim();
    let op = target.rsplit('.').next().unwrap_or(target);
    (!op.is_empty()).then(|| op.to_owned())
}

/// `Action` from a form-encoded body (POST) or from the query string.
fn query_action(method: &Method, path: &str, body: &[u8]) -> Option<String> {
    let from_form = |form: &str| {
        form_urlencoded::parse(form.as_bytes())
            .find(|(k, v)| k == "Action" && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    };
    let looks_like_form = !body.is_empty()
        && !matches!(body.first(), Some(b'{') | Some(b'[') | Some(b'<'))
        && body.len() <= 1 << 20;
    if looks_like_form
        && let Ok(text) = std::str::from_utf8(body)
        && let Some(a) = from_form(text.trim())
    {
        return Some(a);
    }
    if matches!(*method, Method::GET | Method::POST)
        && let Some((_, query)) = path.split_once('?')
    {
        return from_form(query);
    }
    None
}

/// AWS IoT (control plane) and IoT data plane operations, by method and path.
fn iot_operation(method: &Method, path: &str) -> Option<&'static str> {
    let trimmed = path.strip_prefix('/')?;
    let segs: Vec<&str> = trimmed.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let op = match (method.as_str(), segs.as_slice()) {
        ("GET", ["things"]) => "ListThings",
        ("GET", ["things", _]) => "DescribeThing",
        ("POST", ["things", _]) => "CreateThing",
        ("PATCH", ["things", _]) => "UpdateThing",
        ("DELETE", ["things", _]) => "DeleteThing",
        ("GET", ["things", _, "principals"]) => "ListThingPrincipals",
        ("PUT", ["things", _, "principals"]) => "AttachThingPrincipal",
        ("DELETE", ["things", _, "principals"]) => "DetachThingPrincipal",
        ("GET", ["things", _, "principals-v2"]) => "ListThingPrincipalsV2",
        ("GET", ["things", _, "shadow"]) => "GetThingShadow",
        ("POST", ["things", _, "shadow"]) => "UpdateThingShadow",
        ("DELETE", ["things", _, "shadow"]) => "DeleteThingShadow",
        ("GET", ["api", "things", "shadow", "ListNamedShadowsForThing", _]) => {
            "ListNamedShadowsForThing"
        }
        ("POST", ["topics", ..]) if segs.len() > 1 => "Publish",
        ("GET", ["certificates"]) => "ListCertificates",
        ("POST", ["certificates"]) => "CreateCertificateFromCsr",
        ("GET", ["certificates", _]) => "DescribeCertificate",
        ("PUT", ["certificates", _]) => "UpdateCertificate",
        ("DELETE", ["certificates", _]) => "DeleteCertificate",
        ("PUT", ["target-policies", _]) => "AttachPolicy",
        ("POST", ["target-policies", _]) => "DetachPolicy",
        // The target is a URL-encoded ARN; tolerate an unencoded '/' in it.
        ("POST", ["attached-policies", ..]) if segs.len() > 1 => "ListAttachedPolicies",
        ("POST", ["policy-targets", _]) => "ListTargetsForPolicy",
        ("GET", ["endpoint"]) => "DescribeEndpoint",
        ("GET", ["policies"]) => "ListPolicies",
        ("GET", ["policies", _]) => "GetPolicy",
        ("POST", ["policies", _]) => "CreatePolicy",
        ("DELETE", ["policies", _]) => "DeletePolicy",
        _ => return None,
    };
    Some(op)
}

fn normalise_mender_path(path: &str) -> String {
    path.split('/')
        .map(|seg| if is_id_segment(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_version_segment(seg: &str) -> bool {
    seg.strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

fn is_uuid(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() || is_version_segment(seg) {
        return false;
    }
    is_uuid(seg)
        || (seg.len() == 24 && seg.bytes().all(|b| b.is_ascii_hexdigit()))
        || seg.bytes().any(|b| b.is_ascii_digit())
}
