//! Reconcile runs: started by the schedule for every organization, or by
//! `POST /integration/reconcile`; continued through the bus until done.
//! See `bridge::reconcile`.

use std::sync::Arc;

use bridge::reconcile::{handle, invocation_deadline};
use bridge::wiring::Wiring;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let wiring = Wiring::from_env().await;
    let reconciler = wiring.reconciler(Arc::new(wiring.lifecycle()));
    let bus = wiring.event_bus();
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deadline = invocation_deadline(event.context.deadline);
        let (reconciler, bus) = (&reconciler, &bus);
        async move { Ok::<_, Error>(handle(reconciler, bus, event.payload, deadline).await?) }
    }))
    .await
}
