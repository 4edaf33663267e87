//! Everything HTTP: the accept loop ([`server`]), the REST API ([`api`]) and the Prometheus
//! metrics with their request middleware ([`metrics`]).

pub mod api;
pub mod metrics;
pub mod server;
