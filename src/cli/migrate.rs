use super::{print_out, Global};
use crate::provider::ProviderKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Guided migration runs: preflight, plan, journal, verification.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    MongoToSharded(MongoToSharded),
}

/// Turn a MongoDB replica set into a shard of a new sharded cluster,
/// following MongoDB's own procedure, step by step.
///
/// Steps: preflight (versions, health, free disk, document counts) ->
/// backup (mongodump --oplog) -> every member runs with --shardsvr
/// (restarted where datatier started it; otherwise the rolling-restart
/// procedure is printed and the run stops) -> deploy config servers, new
/// shards and mongos -> addShard -> shard the declared collections, set
/// chunk size and balancer window -> verify that every collection holds as
/// many documents through mongos as before.
///
/// Each step that changes something is confirmed unless --yes. A journal in
/// the target's state dir records finished steps: after an interruption run
/// the same command again and it resumes. Exit status: 0 verified, 1 any
/// failure or difference.
#[derive(Debug, clap::Args)]
pub struct MongoToSharded {
    /// The replica set: mongodb://HOST:PORT[,...]/?replicaSet=NAME. A
    /// password in it is never printed.
    #[arg(long, value_name = "URI")]
    pub from: String,
    /// Target topology (kind "mongo-sharded") that declares the replica set
    /// as one of its shards, with its members. Default: the built-in
    /// mongo-sharded layout with its first shard replaced by the set.
    #[arg(long, value_name = "FILE")]
    pub to: Option<String>,
    /// Override the target's provider (local: start the new nodes here;
    /// existing: they run elsewhere, only configure them).
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// Do not ask before each step (needed without a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Skip the mongodump backup (only when you have your own).
    #[arg(long)]
    pub skip_backup: bool,
    /// Where mongodump writes (default: the target's state dir).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Forget an unfinished run recorded in the journal and start over.
    #[arg(long)]
    pub restart: bool,
    /// Deadline in seconds for each wait (elections, mongos, commands).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    match a.what {
        What::MongoToSharded(m) => {
            let opts = crate::migrate::mongo_to_sharded::Options {
                from: m.from,
                to: m.to,
                provider: m.provider,
                yes: m.yes,
                skip_backup: m.skip_backup,
                backup_dir: m.backup_dir,
                restart: m.restart,
                timeout: Duration::from_secs(m.timeout),
                state_root: g.state_dir.clone(),
            };
            let out = crate::migrate::mongo_to_sharded::run(&opts).await?;
            print_out(&out.render());
            Ok(if out.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
