//! Deterministic Toygres workflows. They compose the activities of `toygres-activities` and do
//! no I/O, read no clock and draw no randomness except through the Duroxide context.
//!
//! - [`names`]: orchestration names (`toygres-orchestrations::orchestration::{name}`).
//! - [`types`]: typed inputs, outputs and the progress custom status.
//! - [`orchestrations`]: one module per workflow.
//! - [`registry`]: builds the registry with `create_orchestration_registry`.
//!
//! Every operation on an existing instance runs through one shape (`change.rs`): begin, its
//! steps under the operation's deadline, and a failure recorded with the state the backend
//! shows afterwards.

mod change;
pub mod names;
pub mod orchestrations;
pub mod registry;
mod steps;
pub mod types;
