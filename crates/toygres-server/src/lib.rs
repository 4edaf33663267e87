//! The Toygres server: the REST API, the Duroxide runtime on duroxide-pg, the embedded
//! control-plane database, and the CLI that talks to a running server.
//!
//! - [`config`]: settings from flags, the environment and `.env`.
//! - [`runtime`]: the Duroxide store, runtime options and start-up.
//! - [`service`]: accepting create/delete requests and reading operations (used by the API).
//! - [`metrics`]: Prometheus metrics.
//! - [`reconciler`]: starts accepted operations whose workflow is missing.
//! - [`api`]: the axum routes.
//! - [`server`]: wiring it all together for `toygres serve`.
//! - [`cli`]: the client subcommands (`create`, `list`, `get`, `delete`, `op`) over HTTP.

pub mod api;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod reconciler;
pub mod runtime;
pub mod server;
pub mod service;
