//! How the independent calls of one stage run.

/// The deployed functions always run a stage's calls concurrently: a stage
/// then costs one round trip instead of one per call. `Sequential` makes
/// the same calls one after another, in the order written; it exists only
/// as the baseline the provisioning benchmark compares against
/// (`make bench`, `docs/performance.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    #[default]
    Concurrent,
    Sequential,
}

/// Awaits the futures of one stage together, or one by one in order when
/// `$concurrency` is `Sequential`; either way, their outputs as a tuple.
macro_rules! stage {
    ($concurrency:expr; $($future:expr),+ $(,)?) => {
        match $concurrency {
            $crate::stage::Concurrency::Concurrent => futures::join!($($future),+),
            $crate::stage::Concurrency::Sequential => ($($future.await,)+),
        }
    };
}
pub(crate) use stage;
