//! How long commands that reach a peer (ping, sync, get, drop) wait for it;
//! the dialing itself is the node service's (`harmony::node::dial`).

use std::time::Duration;

use clap::Args;

/// How long commands wait for a peer by default. A handshake, even over a
/// 300 ms round trip, takes about a second; waiting longer for a peer that
/// does not answer only delays the message saying so.
const DEFAULT_CONNECT_TIMEOUT: &str = "3";

#[derive(Args, Debug, Clone, Copy)]
pub struct DialArgs {
    /// Seconds to wait for a peer to answer before reporting it unreachable
    /// (a closed port is reported at once).
    #[arg(long, value_name = "SECS", default_value = DEFAULT_CONNECT_TIMEOUT, value_parser = parse_timeout)]
    pub connect_timeout: Duration,
}

/// Whole seconds: the messages count them so, and a peer worth waiting for
/// answers well within one.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "`{text}` is not a whole number of seconds from 1 to 3600"
        )),
    }
}
