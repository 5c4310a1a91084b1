//! Structured logs (tracing): text for people, JSON for machines.

use tracing_subscriber::{fmt, EnvFilter};

/// Install the global subscriber once. `RUST_LOG` refines the default
/// filter (`info`, with noisy dependencies turned down).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,apalis=warn,apalis_core=warn,actix_server=warn,hyper=warn,reqwest=warn")
    });
    use std::io::IsTerminal;
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
