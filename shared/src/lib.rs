//! The Mender → AWS IoT Core bridge: everything the Lambda functions share.
//!
//! Organised by subject: the deployment's configuration and the one place
//! that builds everything from it ([`config`], [`wiring`]); what Mender
//! says ([`mender`], [`device`]); what arrives from it ([`webhook`],
//! [`ingress`]); what travels on the bus ([`events`]); what AWS IoT Core
//! holds ([`iot`], [`certificates`]); how one device is made to agree
//! ([`converge`], under a [`lease`], from [`lifecycle`] events) and how a
//! whole organization is walked ([`reconcile`]); the per-organization
//! setup ([`integration`], [`settings`], [`index`], [`tenant`], [`aws`]).
//! Users read and write the Device Shadow through [`shadow`]. [`http`] maps
//! errors to responses; [`table`] and [`clock`] serve the rest.

pub mod auth;
pub mod aws;
pub mod aws_http;
pub mod certificates;
pub mod clock;
pub mod config;
pub mod console;
pub mod converge;
pub mod device;
pub mod event_log;
pub mod events;
pub mod http;
pub mod index;
pub mod ingress;
pub mod integration;
pub mod intent;
pub mod iot;
pub mod lease;
pub mod lifecycle;
pub mod logging;
pub mod mender;
pub mod metrics;
pub mod pace;
pub mod reconcile;
pub mod retry;
pub mod rotation;
pub mod settings;
pub mod shadow;
pub mod stage;
pub mod table;
pub mod tenant;
pub mod throttling;
pub mod tls;
pub mod token_renewal;
pub mod webhook;
pub mod wiring;
