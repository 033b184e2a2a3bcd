use super::Global;
use std::process::ExitCode;

/// Guided migration runs: preflight, plan, journal, verification.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {}

pub async fn exec(a: Args, _g: &Global) -> anyhow::Result<ExitCode> {
    match a.what {}
}
