//! `heimdall sandbox`: the local stand-in for Twilio, Meta and Discord, on
//! its own (for demos, and for pointing an official client library at).

use std::net::{SocketAddr, TcpListener};

use heimdall_domain::Settings;

pub async fn run_standalone(settings: Settings, bind: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("--bind: could not listen on {bind}: {e}"))?;
    let config = heimdall_sandbox::SandboxConfig::from_settings(&settings);
    let handle = heimdall_sandbox::start(config, listener).await?;
    tracing::info!("sandbox listening on {}", handle.base_url());
    crate::startup::wait_for_stop(None).await;
    handle.stop().await;
    Ok(())
}
