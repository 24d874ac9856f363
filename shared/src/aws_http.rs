//! The AWS SDK's HTTP client: reqwest, over the same TLS configuration as
//! the bridge's Mender calls ([`crate::tls`]).
//!
//! The SDK's own client takes extra roots only as PEM text, which it
//! decodes with rustls' constant-time base64 (made for private keys) and
//! parses again for every connector it builds: about 5 ms of CPU at a
//! function's first AWS call, per set of timeouts, and a panic there if a
//! certificate of the store does not parse. With reqwest, the store parsed
//! once at init serves every call, to Mender and to AWS, over one TLS and
//! HTTP stack.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The SDK's timeouts for a connection: connect, and between reads.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The HTTP client every AWS SDK client of a process is built with. The
/// trust store is read here, at init, not at the first call.
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::new())
}

/// One reqwest client (one connection pool) per set of timeouts the SDK
/// asks for; the SDK asks at every attempt of every call.
#[derive(Debug)]
struct ReqwestHttpClient {
    tls: rustls::ClientConfig,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Connector(self.reqwest(timeouts))))
            .clone()
    }
}

impl ReqwestHttpClient {
    fn new() -> ReqwestHttpClient {
        ReqwestHttpClient {
            tls: crate::tls::client_config(),
            connectors: Mutex::default(),
        }
    }

    fn reqwest(&self, (connect, read): Timeouts) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            // The SDK follows nothing: a redirect is an answer to deserialize.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(connect) = connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        builder
            .build()
            .expect("a client with a preconfigured TLS and timeouts always builds")
    }
}

#[derive(Debug)]
struct Connector(reqwest::Client);

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|error| ConnectorError::user(error.into()))?
                .map(reqwest::Body::wrap);
            let request = reqwest::Request::try_from(request).map_err(connector_error)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            HttpResponse::try_from(http::Response::from(response).map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// How the SDK's retries see a failed exchange: a timeout, a request that
/// could not be built, or (anything else: refused, reset, closed, cut
/// short) a broken connection, which they retry like a timeout.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_builder() {
        ConnectorError::user(error.into())
    } else {
        ConnectorError::io(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::byte_stream::ByteStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on loopback that reads a request and then does `answer`.
    async fn server(answer: &'static [u8], close: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0; 4096];
                    let _ = socket.read(&mut request).await;
                    let _ = socket.write_all(answer).await;
                    if !close {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                });
            }
        });
        format!("http://{address}/")
    }

    /// The SDK's parts a call runs with, which the transport does not use.
    fn components() -> RuntimeComponents {
        RuntimeComponentsBuilder::for_tests().build().unwrap()
    }

    fn connector(read: Option<Duration>) -> SharedHttpConnector {
        let client = ReqwestHttpClient::new();
        let mut settings = HttpConnectorSettings::builder();
        settings
            .set_connect_timeout(Some(Duration::from_secs(1)))
            .set_read_timeout(read);
        let settings = settings.build();
        client.http_connector(&settings, &components())
    }

    async fn post(
        connector: &SharedHttpConnector,
        url: &str,
    ) -> Result<HttpResponse, ConnectorError> {
        let request = http::Request::post(url)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from("{}"))
            .unwrap();
        connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
    }

    #[tokio::test]
    async fn an_answer_reaches_the_sdk_as_it_was_sent() {
        let url = server(
            b"HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\nx-amzn-requestid: r-1\r\ncontent-length: 2\r\n\r\n{}",
            false,
        )
        .await;
        let response = post(&connector(None), &url).await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "not followed");
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(response.body().bytes(), None, "streamed, not read ahead");
        let body = ByteStream::new(response.into_body()).collect().await;
        assert_eq!(body.unwrap().into_bytes().as_ref(), b"{}");
    }

    #[tokio::test]
    async fn failed_exchanges_are_told_apart_for_the_retries() {
        let refused = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", listener.local_addr().unwrap())
        };
        let silent = server(b"", false).await;
        let cut_short = server(b"HTTP/1.1 200 OK\r\ncontent-le", true).await;
        let read = Some(Duration::from_millis(200));
        for (name, url, expected) in [
            ("refused", refused, "io"),
            ("no answer within the read timeout", silent, "timeout"),
            ("closed mid-answer", cut_short, "io"),
        ] {
            let error = post(&connector(read), &url).await.unwrap_err();
            let kind = if error.is_timeout() {
                "timeout"
            } else if error.is_io() {
                "io"
            } else {
                "other"
            };
            assert_eq!(kind, expected, "{name}: {error:?}");
        }
    }

    #[test]
    fn one_connection_pool_per_set_of_timeouts() {
        let client = ReqwestHttpClient::new();
        let components = components();
        let settings = |connect: u64| {
            HttpConnectorSettings::builder()
                .connect_timeout(Duration::from_secs(connect))
                .build()
        };
        for connect in [3, 3, 5, 3] {
            client.http_connector(&settings(connect), &components);
        }
        assert_eq!(client.connectors.lock().unwrap().len(), 2);
    }
}
