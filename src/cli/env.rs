use super::{print_out, Global, TopologyOpts};
use std::process::ExitCode;

/// Print connection settings for applications (`eval "$(datatier env ...)"`).
/// Passwords are never printed: their variable or file is named instead.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub topo: TopologyOpts,
    /// shell (export lines), dotenv (KEY=value) or json.
    #[arg(long, value_enum, default_value = "shell")]
    pub format: EnvFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EnvFormat {
    Shell,
    Dotenv,
    Json,
}

pub fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (t, ctx) = a.topo.load(g)?;
    let vars = crate::ops::env(&t, &ctx)?;
    let text = match a.format {
        EnvFormat::Shell => vars
            .iter()
            .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
            .collect(),
        EnvFormat::Dotenv => vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        EnvFormat::Json => {
            let m: serde_json::Map<String, serde_json::Value> =
                vars.into_iter().map(|(k, v)| (k, v.into())).collect();
            format!("{}\n", serde_json::to_string_pretty(&m)?)
        }
    };
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}
