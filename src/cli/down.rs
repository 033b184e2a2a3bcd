use super::{print_out, Global};
use std::process::ExitCode;
use std::time::Duration;

/// Stop every process `init` started for a topology (last started first);
/// with --purge also delete its state dir (data, logs, config).
///
/// Only processes datatier started are touched; for `--provider existing`
/// topologies there is nothing to stop.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topology file, recorded name or built-in kind.
    pub topology: String,
    /// Also delete the state dir: all data of the topology's nodes.
    #[arg(long)]
    pub purge: bool,
    /// Seconds to wait for each process to exit before SIGKILL.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, ctx) = super::load(&a.topology, None, g)?;
    if !ctx.state.exists() {
        print_out(&format!(
            "{}: nothing to stop (no state in {})\n",
            t.name(),
            ctx.state.dir.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = ctx.state.lock()?;
    let stopped =
        crate::provider::local::stop_all(&ctx.state, Duration::from_secs(a.timeout)).await?;
    print_out(&format!(
        "{}: stopped {} process(es){}\n",
        t.name(),
        stopped.len(),
        if stopped.is_empty() {
            String::new()
        } else {
            format!(": {}", stopped.join(", "))
        }
    ));
    if a.purge {
        drop(_lock);
        std::fs::remove_dir_all(&ctx.state.dir)?;
        print_out(&format!(
            "{}: removed {}\n",
            t.name(),
            ctx.state.dir.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
