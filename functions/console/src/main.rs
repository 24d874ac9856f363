//! `GET /` and `GET /console/{asset}`: the web console's page, style sheet
//! and script, embedded in the binary. It holds no secret and calls
//! nothing: the page calls the bridge's API itself. See `bridge::console`.

use bridge::console::handle;
use bridge::http::AsBuilt;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|request| async move {
        Ok::<_, Error>(AsBuilt(handle(&request)))
    }))
    .await
}
