use super::{print_out, Global};
use crate::provider::ProviderKind;
use crate::report::{OutputFormat, StatusReport};
use std::process::ExitCode;
use std::time::Duration;

/// Check health: every node in parallel, every check, one verdict.
///
/// Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Without a topology,
/// checks every topology recorded in the state dir.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topology file, recorded name or built-in kind (default: all recorded).
    pub topology: Vec<String>,
    /// table for people, json (one object per topology), or prometheus
    /// text exposition (for a textfile collector or a scrape wrapper).
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Re-check every N seconds until interrupted (default 2).
    #[arg(long, num_args = 0..=1, default_missing_value = "2", value_name = "SECS")]
    pub watch: Option<u64>,
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
}

async fn once(a: &Args, g: &Global) -> anyhow::Result<Vec<StatusReport>> {
    let names: Vec<String> = if a.topology.is_empty() {
        recorded(&g.state_dir)?
    } else {
        a.topology.clone()
    };
    if names.is_empty() {
        anyhow::bail!(
            "no topology given and none recorded in {}; run `datatier init ...` first or name one",
            g.state_dir.display()
        );
    }
    let mut reports = Vec::new();
    for n in &names {
        let (t, ctx) = super::load(n, a.provider, g)?;
        reports.push(crate::ops::status(&t, &ctx).await?);
    }
    Ok(reports)
}

fn render(reports: &[StatusReport], format: OutputFormat) -> String {
    match format {
        OutputFormat::Prometheus => crate::report::render_prometheus(reports),
        OutputFormat::Json if reports.len() == 1 => reports[0].render(format),
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(reports).expect("serializes")
        ),
        OutputFormat::Table => reports
            .iter()
            .map(|r| r.render(format))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    loop {
        let reports = once(&a, g).await?;
        let worst = reports
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(crate::health::Severity::Unknown);
        match a.watch {
            None => {
                print_out(&render(&reports, a.output));
                return Ok(ExitCode::from(worst.exit_code()));
            }
            Some(secs) => {
                if a.output == OutputFormat::Table {
                    print_out("\x1b[2J\x1b[H");
                }
                print_out(&render(&reports, a.output));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs.max(1))) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(worst.exit_code())),
                }
            }
        }
    }
}

/// Names of topologies recorded in the state root.
fn recorded(root: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        if e.path()
            .join(crate::provider::local::TOPOLOGY_FILE)
            .is_file()
        {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}
