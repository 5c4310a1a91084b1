//! The `heimdall` binary as a library: start-up, routes, commands and the
//! sandbox, so tests can start the real application on port 0.

pub mod cli;
pub mod console;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
