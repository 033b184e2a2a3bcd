use super::{print_out, Global, TopologyOpts};
use std::process::ExitCode;
use std::time::Duration;

/// Create (or converge) a topology: start what is missing, configure it,
/// wait until it is healthy, and print its status.
///
/// Safe to run again: a second run on a healthy topology changes nothing.
/// Nodes that hold data or belong to another cluster are refused unless
/// --force is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub topo: TopologyOpts,
    /// Use nodes that hold keys or belong to another cluster (DESTROYS their data).
    #[arg(long)]
    pub force: bool,
    /// Deadline in seconds for each wait (nodes starting, cluster converging).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Output format of the final status.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: crate::report::OutputFormat,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, mut ctx) = a.topo.load(g)?;
    ctx.force = a.force;
    ctx.timeout = Duration::from_secs(a.timeout);
    let out = crate::ops::init(&t, &ctx).await?;
    if out.executed.is_empty() {
        tracing::info!("{}: nothing to do, already as declared", t.name());
    } else {
        tracing::info!(
            "{}: {} step(s) applied in {:.2}s",
            t.name(),
            out.executed.len(),
            out.elapsed.as_secs_f64()
        );
    }
    print_out(&out.report.render(a.output));
    Ok(if out.report.status >= crate::health::Severity::Critical {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
