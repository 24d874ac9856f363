//! Reconcile runs: started by the schedule for every organization, or by
//! `POST /integration/sync`; continued through the bus until done. See
//! `bridge::sync`.

use bridge::sync::{Reconciler, handle, invocation_deadline};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge::logging::init();
    let (reconciler, bus) = Reconciler::from_env().await;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deadline = invocation_deadline(event.context.deadline);
        let (reconciler, bus) = (&reconciler, &bus);
        async move { Ok::<_, Error>(handle(reconciler, bus, event.payload, deadline).await?) }
    }))
    .await
}
