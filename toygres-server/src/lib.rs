//! The Toygres server: the REST API, the Duroxide runtime on duroxide-pg, the embedded
//! control-plane database, and the CLI that talks to a running server.
//!
//! - [`serve`]: `toygres serve`, wiring it all together, and its settings ([`serve::config`]).
//! - [`http`]: the HTTP server (bounded request heads, TLS), the REST API routes
//!   ([`http::api`]) and the Prometheus metrics.
//! - [`security`]: what protects the API (tokens, TLS, the listen rule) and `toygres
//!   rotate-key`, re-sealing stored passwords with a new key.
//! - [`plane`]: the service layer below HTTP (accepting operations, reading them with live
//!   progress) and the reconciler that settles what was recorded but not started or finished.
//! - [`runtime`]: the Duroxide store, runtime options and start-up.
//! - [`console`]: the web console (server-rendered pages under `/console/`), on the same
//!   service layer as the API.
//! - [`cli`]: the client subcommands (`create`, `list`, `get`, `delete`, `op`) over HTTP.

pub mod cli;
pub mod console;
pub mod http;
pub mod plane;
pub mod runtime;
pub mod security;
pub mod serve;
