//! Providers make the declared nodes exist; engines then configure them.
//!
//! - [`local`]: child processes on this machine (127.0.0.x), each with its
//!   own directory, log and pid file under the state dir, found again by
//!   `status` and `down` and after a crash of datatier itself.
//! - `existing`: nodes already run elsewhere; datatier only talks to them
//!   over the network and spawns nothing (no module: engines simply skip
//!   the provider steps).
//! - [`compose`]: renders a docker compose file for the same topology.

pub mod compose;
pub mod local;

use std::fmt;
use std::str::FromStr;

/// Which provider a topology uses (`provider = "..."`, `--provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProviderKind {
    /// Start processes on this machine.
    #[default]
    Local,
    /// Configure and verify nodes someone else started.
    Existing,
}

impl FromStr for ProviderKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "local" => Ok(ProviderKind::Local),
            "existing" => Ok(ProviderKind::Existing),
            _ => Err(()),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Local => "local",
            ProviderKind::Existing => "existing",
        })
    }
}
