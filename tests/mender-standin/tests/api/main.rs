//! Tests of the Mender stand-in, one module per subject, in one test binary.

mod binary;
mod common;
mod conformance;
mod devauth;
mod deviceconfig;
mod inventory;
mod iot_manager;
mod openapi;
mod useradm;
mod webhooks;
