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
