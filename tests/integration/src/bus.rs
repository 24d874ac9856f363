//! The local event bus: hands each published event to the lifecycle handler
//! in-process, retrying failures the way EventBridge retries a failed
//! invocation (backoff, bounded attempts, then a dead-letter list).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::events::{BusEnvelope, DetailType, EventBus, LifecycleEvent, PublishError};
use bridge::lifecycle::{Lifecycle, Report, handle};
use bridge::reconcile::{self, Reconciler};
use bridge::retry::Backoff;
use tokio::sync::Notify;

/// One handled event: its final result, and how many invocations it took.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub detail_type: DetailType,
    pub event: LifecycleEvent,
    pub attempts: u32,
    pub result: Result<Report, String>,
}

#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

struct Inner {
    lifecycle: Arc<Lifecycle>,
    reconciler: Arc<Reconciler>,
    /// How long one reconcile invocation runs before it checkpoints.
    reconcile_slice: Duration,
    retries: Backoff,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Lambda's reserved concurrency: at most this many lifecycle
    /// invocations at once (`None`: unbounded). Waiting events queue.
    concurrency: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    deliveries: Mutex<Vec<Delivery>>,
}

/// EventBridge retries for up to a day; locally a few seconds is enough for
/// a held lease to be released.
pub const LOCAL_RETRIES: Backoff = Backoff {
    attempts: 12,
    base: Duration::from_millis(100),
    max: Duration::from_secs(2),
};

impl InProcessBus {
    /// Lifecycle events go to `lifecycle`, runs to `reconciler`.
    pub fn new(lifecycle: Arc<Lifecycle>, reconciler: Arc<Reconciler>, retries: Backoff) -> Self {
        InProcessBus {
            inner: Arc::new(Inner {
                lifecycle,
                reconciler,
                reconcile_slice: Duration::from_secs(60),
                retries,
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                concurrency: Mutex::new(None),
                deliveries: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Bounds concurrent lifecycle invocations, as a Lambda function's
    /// reserved concurrency does (`None`: unbounded, the default).
    pub fn set_concurrency(&self, limit: Option<usize>) {
        *self.inner.concurrency.lock().unwrap() =
            limit.map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.inner.lifecycle
    }

    pub fn reconciler(&self) -> &Arc<Reconciler> {
        &self.inner.reconciler
    }

    /// Waits until every published event has been handled (or given up on).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().unwrap().clone()
    }

    /// Events that failed every attempt: what would land in the DLQ.
    pub fn dead_letters(&self) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.result.is_err())
            .collect()
    }
}

impl EventBus for InProcessBus {
    async fn publish(
        &self,
        detail_type: DetailType,
        detail: &serde_json::Value,
    ) -> Result<(), PublishError> {
        let inner = self.inner.clone();
        let bus = self.clone();
        let detail = detail.clone();
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if detail_type == DetailType::ReconcileRequested {
                bus.run_reconcile(detail).await;
            } else {
                bus.run_lifecycle(detail_type, detail).await;
            }
            if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
        Ok(())
    }
}

impl InProcessBus {
    async fn run_lifecycle(&self, detail_type: DetailType, detail: serde_json::Value) {
        let inner = &self.inner;
        let Ok(event) = serde_json::from_value::<LifecycleEvent>(detail) else {
            tracing::error!("a device event that is not one; dropped");
            return;
        };
        let mut attempts = 0;
        let result = inner
            .retries
            .retry(
                |_| true,
                || {
                    attempts += 1;
                    let envelope = BusEnvelope {
                        detail_type,
                        detail: event.clone(),
                    };
                    let lifecycle = inner.lifecycle.clone();
                    let limit = inner.concurrency.lock().unwrap().clone();
                    async move {
                        let _invocation = match limit {
                            Some(limit) => Some(limit.acquire_owned().await.expect("never closed")),
                            None => None,
                        };
                        handle(&lifecycle, envelope)
                            .await
                            .map_err(|e| e.to_string())
                    }
                },
            )
            .await;
        if let Err(error) = &result {
            tracing::error!(device_id = event.device_id, %error, "event failed every attempt");
        }
        inner.deliveries.lock().unwrap().push(Delivery {
            detail_type,
            event,
            attempts,
            result,
        });
    }

    /// One invocation of the reconcile function, with a local time slice in
    /// place of Lambda's time limit. Boxed: a run continues by publishing
    /// to this same bus, so the future's type would otherwise contain itself.
    fn run_reconcile(
        &self,
        detail: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let event = serde_json::json!({ "detail-type": DetailType::ReconcileRequested.as_str(), "detail": detail });
            let result = self
                .inner
                .retries
                .retry(
                    |_| true,
                    || {
                        let deadline = Instant::now() + self.inner.reconcile_slice;
                        reconcile::handle(&self.inner.reconciler, self, event.clone(), deadline)
                    },
                )
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "reconcile invocation failed every attempt");
            }
        })
    }
}
