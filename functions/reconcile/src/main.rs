//! Runs: sync runs started by the schedule for every organization or by
//! `POST …/integrations/{integration_id}/reconcile`, rotation runs by
//! `POST …/integrations/{integration_id}/rotation`; continued through the bus until done, their
//! AWS IoT Core writes paced. See `bridge::reconcile`.

use bridge::reconcile::{handle, invocation_deadline};
use bridge::wiring::Wiring;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let wiring = Wiring::from_env().await;
    let reconciler = wiring.reconciler(&wiring.lifecycle());
    let bus = wiring.event_bus();
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deadline = invocation_deadline(event.context.deadline);
        let (reconciler, bus) = (&reconciler, &bus);
        async move { Ok::<_, Error>(handle(reconciler, bus, event.payload, deadline).await?) }
    }))
    .await
}
