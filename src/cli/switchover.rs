use super::{print_out, Global, TopologyOpts};
use crate::ops::Switchover;
use crate::report::OutputFormat;
use std::process::ExitCode;
use std::time::Duration;

/// Make a replica the Postgres primary with no acknowledged write lost.
///
/// PgBouncer pauses the read-write databases, the old primary shuts down
/// cleanly, the target replays up to its last WAL record and is promoted,
/// PgBouncer is re-pointed and resumes. Then the other replicas follow the
/// new primary and the old one rejoins as a replica (pg_rewind, or a fresh
/// base backup). Prints how long writes were paused and the new layout.
///
/// Without --to, the streaming replica with the least lag is chosen.
/// Before the promotion any failure restarts the old primary and resumes
/// clients; `init` afterwards keeps the new primary.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub topo: TopologyOpts,
    /// The replica to promote: host:port, or just its port.
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
    /// Seconds PAUSE may wait for running transactions before giving up
    /// (clients are then resumed and nothing changes).
    #[arg(long, default_value_t = 10)]
    pub pause_timeout: u64,
    /// Deadline in seconds for each wait (shutdown, catch-up, promotion, streaming).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Show the steps for the live topology; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// table (summary and new layout) or json.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, mut ctx) = a.topo.load(g)?;
    ctx.timeout = Duration::from_secs(a.timeout);
    let out = crate::ops::switchover(
        &t,
        &ctx,
        a.to.as_deref(),
        Duration::from_secs(a.pause_timeout),
        a.dry_run,
    )
    .await?;
    match out {
        Switchover::DryRun(text) => print_out(&text),
        Switchover::Done(done) => {
            let (o, report) = *done;
            match a.output {
                OutputFormat::Json => {
                    let v = serde_json::json!({
                        "switchover": o,
                        "status": report,
                    });
                    print_out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
                }
                _ => {
                    let phases: Vec<String> = o
                        .phases
                        .iter()
                        .map(|(n, s)| format!("{n} {:.1} ms", s * 1000.0))
                        .collect();
                    print_out(&format!(
                    "switchover {} -> {}: writes paused {:.1} ms, done in {:.2}s (final LSN of {}: {})\n  {}\n\n{}",
                    o.from,
                    o.to,
                    o.write_pause_seconds * 1000.0,
                    o.total_seconds,
                    o.from,
                    o.final_lsn,
                    phases.join(", "),
                    report.render(OutputFormat::Table)
                ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
