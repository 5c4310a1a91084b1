//! `heimdall sandbox`: a local stand-in for Twilio, Meta and Discord.

use std::net::SocketAddr;

use heimdall_domain::Settings;

pub async fn run_standalone(_settings: Settings, bind: SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!("the sandbox is not built yet (asked to listen on {bind})")
}
