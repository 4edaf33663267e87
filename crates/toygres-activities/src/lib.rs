//! Every side effect of Toygres, and nothing else.
//!
//! - [`backend`]: where instances run (the local backend: one `postgres` process per instance).
//! - [`metadata`]: the control-plane metadata store (instances, operations, events).
//! - [`activities`]: the Duroxide activities that the workflows compose, one module each.
//! - [`registry`]: [`registry::create_activity_registry`] with its dependencies injected.
//!
//! Shared vocabulary lives in [`model`] (states, kinds, transition rules), [`validation`] (what a
//! valid instance name is), [`error`] (typed activity errors) and [`seal`] (sealed secrets).

pub mod activities;
pub mod backend;
pub mod embedded;
pub mod error;
pub mod fslock;
pub mod metadata;
pub mod model;
pub mod pgcluster;
pub mod privilege;
pub mod probe;
pub mod registry;
pub mod seal;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod types;
pub mod validation;
