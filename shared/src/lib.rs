//! The Mender → AWS IoT Core bridge: everything the Lambda functions share.
//!
//! Organised by subject: what Mender says ([`mender`]), what arrives from it
//! ([`webhook`], [`ingress`]), what travels on the bus ([`events`]), what AWS
//! IoT Core holds ([`iot`], [`certificates`]), how the two are made to agree
//! ([`reconcile`], [`lease`], [`lifecycle`]), and the per-organization
//! configuration ([`settings`], [`aws`]). Users read and write the Device
//! Shadow through [`shadow`]. [`http`] maps errors to responses; [`logging`]
//! sets up the functions' logs.

pub mod auth;
pub mod aws;
pub mod certificates;
pub mod events;
pub mod http;
pub mod index;
pub mod ingress;
pub mod integration;
pub mod iot;
pub mod lease;
pub mod lifecycle;
pub mod logging;
pub mod mender;
pub mod reconcile;
pub mod retry;
pub mod settings;
pub mod shadow;
pub mod sync;
pub mod tenant;
pub mod webhook;
