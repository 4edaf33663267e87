//! The Toygres server: the REST API, the Duroxide runtime on duroxide-pg, the embedded
//! control-plane database, and the CLI that talks to a running server.
//!
//! - [`config`]: settings from flags, the environment and `.env`.
//! - [`runtime`]: the Duroxide store, runtime options and start-up.
//! - [`service`]: accepting create/delete requests and reading operations (used by the API).
//! - [`metrics`]: Prometheus metrics.
//! - [`reconciler`]: starts accepted operations whose workflow is missing.
//! - [`api`]: the axum routes.
//! - [`api_security`]: tokens, TLS and the listen rule, decided at start-up.
//! - [`tokens`]: the API tokens of `TOYGRES_API_TOKENS`, kept as hashes.
//! - [`tls`]: the rustls configuration of the API.
//! - [`http_server`]: serving the router over HTTP/1.1 or TLS, with bounded request heads.
//! - [`server`]: wiring it all together for `toygres serve`.
//! - [`key_rotation`]: `toygres rotate-key`, re-sealing stored passwords with a new key.
//! - [`cli`]: the client subcommands (`create`, `list`, `get`, `delete`, `op`) over HTTP.

pub mod api;
pub mod api_security;
pub mod cli;
pub mod config;
pub mod http_server;
pub mod key_rotation;
pub mod metrics;
pub mod reconciler;
pub mod runtime;
pub mod server;
pub mod service;
pub mod tls;
pub mod tokens;
