//! Every side effect of Toygres, and nothing else.
//!
//! - [`backend`]: where instances run (the local backend: one `postgres` process per instance).
//! - [`metadata`]: the control-plane metadata store (instances, operations, events).
//! - [`activities`]: the Duroxide activities that the workflows compose, one module each.
//! - [`registry`]: [`registry::create_activity_registry`] with its dependencies injected.
//! - [`parameters`]: server parameters owners may set, checked against `pg_settings`.
//!
//! Shared vocabulary lives in [`model`] (states, kinds, transition rules), [`validation`] (what a
//! valid instance name is), [`error`] (typed activity errors), [`seal`] (sealed secrets) and
//! [`subkey`] (purpose-bound keys derived from the sealing key).

pub mod activities;
pub mod backend;
pub mod backup;
pub mod embedded;
pub mod error;
pub mod fslock;
pub mod ids;
pub mod metadata;
pub mod model;
pub mod parameters;
pub mod pgcluster;
pub mod privilege;
pub mod probe;
pub mod registry;
pub mod roles;
pub mod seal;
pub mod socket_dir;
pub mod subkey;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod types;
pub mod validation;
