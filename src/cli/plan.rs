use super::{print_out, Global, TopologyOpts};
use std::process::ExitCode;

/// Show the steps `init` would take. Changes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub topo: TopologyOpts,
    /// table (numbered steps) or json.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: crate::report::OutputFormat,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, ctx) = a.topo.load(g)?;
    let (text, json) = crate::ops::plan(&t, &ctx).await?;
    match a.output {
        crate::report::OutputFormat::Json => {
            print_out(&format!("{}\n", serde_json::to_string_pretty(&json)?))
        }
        _ => print_out(&text),
    }
    Ok(ExitCode::SUCCESS)
}
