//! The command line: thin commands. Each subcommand module holds its clap
//! arguments and an `exec` that builds options and calls one operation in
//! [`crate::ops`] (or [`crate::migrate`]).
//!
//! Exit codes: `status` returns 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; every
//! other command returns 0 on success and 1 on failure, with a one-line
//! cause and a hint on stderr. Bad arguments exit 3 (UNKNOWN) everywhere, so
//! a monitoring system never mistakes a typo for CRITICAL.

mod down;
mod env;
mod failover;
mod init;
mod migrate;
mod plan;
mod render;
mod status;
mod switchover;

use crate::engine::Ctx;
use crate::provider::local::StateDir;
use crate::provider::ProviderKind;
use crate::topology::Topology;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Bootstrap, verify and migrate the data tier.
///
/// A topology is a TOML file (see topologies/ in the repository) or the name
/// of a built-in default: redis-cluster, redis-sentinel, postgres,
/// mongo-sharded. Logs and progress go to stderr; data (tables, JSON) goes to
/// stdout.
#[derive(Debug, Parser)]
#[command(
    name = "datatier",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Format of log lines on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Where topologies keep their state (one folder per topology name).
    #[arg(
        long,
        env = "DATATIER_STATE_DIR",
        default_value = ".datatier",
        global = true
    )]
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Plan(plan::Args),
    Status(status::Args),
    Down(down::Args),
    Failover(failover::Args),
    Env(env::Args),
    Render(render::Args),
    Migrate(migrate::Args),
    Switchover(switchover::Args),
    /// Print shell completions (bash, zsh, fish, ...) to stdout.
    Completions {
        shell: clap_complete::Shell,
    },
}

/// Options shared by commands that act on a topology's nodes.
#[derive(Debug, Args, Clone)]
pub struct TopologyOpts {
    /// Topology file, name recorded by a previous init, or built-in kind.
    pub topology: String,
    /// Override the topology's provider: local (start processes) or
    /// existing (nodes run elsewhere; only configure and verify).
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
}

impl TopologyOpts {
    /// Load, and print the topology's warnings (risky layouts) on stderr.
    pub fn load(&self, g: &Global) -> anyhow::Result<(Topology, Ctx)> {
        let (t, ctx) = load(&self.topology, self.provider, g)?;
        for w in t.warnings() {
            tracing::warn!("{w}");
            if let Some(h) = &w.help {
                tracing::warn!("hint: {h}");
            }
        }
        Ok((t, ctx))
    }
}

/// Resolve a topology argument and build the context for it.
pub fn load(
    arg: &str,
    provider: Option<ProviderKind>,
    g: &Global,
) -> anyhow::Result<(Topology, Ctx)> {
    let mut t = crate::topology::resolve(arg, &g.state_dir)?;
    if let Some(p) = provider {
        t.meta_mut().provider = p;
    }
    let ctx = Ctx {
        state_root: g.state_dir.clone(),
        state: StateDir::new(&g.state_dir, t.name()),
        provider: t.meta().provider,
        force: false,
        timeout: Duration::from_secs(60),
    };
    Ok((t, ctx))
}

fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env("DATATIER_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,datatier={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().compact().init(),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(3),
            };
        }
    };
    init_logging(&cli.global);
    let is_status = matches!(cli.command, Command::Status(_));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            ExitCode::from(if is_status { 3 } else { 1 })
        }
    }
}

/// Print an error chain: the cause on the first line, context after.
fn report_error(e: &anyhow::Error) {
    if let Some(te) = e.downcast_ref::<crate::topology::TopologyErrors>() {
        eprintln!("error: {te}");
        return;
    }
    let mut chain = e.chain();
    if let Some(first) = chain.next() {
        eprintln!("error: {first}");
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::exec(a, g).await,
        Command::Plan(a) => plan::exec(a, g).await,
        Command::Status(a) => status::exec(a, g).await,
        Command::Down(a) => down::exec(a, g).await,
        Command::Failover(a) => failover::exec(a, g).await,
        Command::Env(a) => env::exec(a, g),
        Command::Render(a) => render::exec(a, g),
        Command::Migrate(a) => migrate::exec(a, g).await,
        Command::Switchover(a) => switchover::exec(a, g).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "datatier",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Write to stdout; a closed pipe (`datatier status | head`) is not an error.
pub fn print_out(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}
