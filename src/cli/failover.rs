use super::{print_out, Global, TopologyOpts};
use std::process::ExitCode;
use std::time::Duration;

/// Promote a replica to master through the sentinels, without losing
/// acknowledged writes, and wait until everything follows the new master.
///
/// With the master up, writes are paused on it (CLIENT PAUSE WRITE) until
/// the replicas hold all of them, the sentinels are asked to fail over
/// (SENTINEL FAILOVER), the old master is turned into a replica of the new
/// one and unpaused (its waiting clients get READONLY and reconnect through
/// the sentinels). Prints the old and the new master, then the status.
/// Supported kinds: redis-sentinel.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub topo: TopologyOpts,
    /// The replica to promote (host:port as declared); default: the
    /// sentinels' choice (replica-priority, then replication offset).
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
    /// Deadline in seconds for each wait.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Output format: table (old and new master, then the status), json,
    /// or prometheus (the status after the switch).
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: crate::report::OutputFormat,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, mut ctx) = a.topo.load(g)?;
    ctx.timeout = Duration::from_secs(a.timeout);
    let out = crate::ops::failover(&t, &ctx, a.to.as_deref()).await?;
    tracing::info!(
        "{}: failover {} -> {} in {:.2}s (writes paused {:.2}s)",
        t.name(),
        out.old_master,
        out.new_master,
        out.elapsed.as_secs_f64(),
        out.writes_paused.as_secs_f64()
    );
    match a.output {
        crate::report::OutputFormat::Json => {
            let v = serde_json::json!({
                "topology": t.name(),
                "old_master": out.old_master,
                "new_master": out.new_master,
                "elapsed_ms": out.elapsed.as_millis() as u64,
                "writes_paused_ms": out.writes_paused.as_millis() as u64,
                "status": out.report,
            });
            print_out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        }
        crate::report::OutputFormat::Prometheus => {
            print_out(&out.report.render(crate::report::OutputFormat::Prometheus))
        }
        format => {
            print_out(&format!(
                "old master: {}\nnew master: {}\n\n{}",
                out.old_master,
                out.new_master,
                out.report.render(format)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
