//! Test support and the local runner: the AWS emulator harness, the
//! fault-injecting proxy, the in-process event bus, and the HTTP routes.

pub mod app;
pub mod broker;
pub mod bus;
pub mod fault_proxy;
pub mod fixtures;
pub mod moto;
pub mod resilience;
pub mod sam;
pub mod stack;

/// The HTTP client for the tests' own calls (the runner's routes, the
/// stand-in, moto's reset). Building a client loads the system's trust
/// store, which cost more CPU than the localhost calls made with it. No
/// connection is kept idle: a pooled connection belongs to the runtime that
/// opened it, and every test has a runtime of its own.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client with these settings always builds")
    });
    CLIENT.clone()
}
