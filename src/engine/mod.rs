//! Engines: one per kind, each owning observe / plan / apply / health.
//!
//! Every engine implements [`Engine`]; the operations in this module
//! ([`init`], [`plan`], [`status`]) are the same for all of them and keep the
//! data flow of the crate docs visible:
//!
//! ```text
//! observe -> plan (pure) -> apply -> observe again ... -> report
//! ```
//!
//! `init` loops until the plan is empty (a bounded number of rounds), so a
//! plan that starts processes can be followed by one computed from what the
//! started nodes really hold, and a second `init` does nothing.

pub mod mongo;
pub mod postgres;
pub mod redis;

use crate::plan::Plan;
use crate::provider::local::StateDir;
use crate::provider::ProviderKind;
use crate::report::StatusReport;
use anyhow::Result;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What every operation needs besides the topology.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The root of all state dirs (`.datatier` by default).
    pub state_root: PathBuf,
    /// This topology's state dir.
    pub state: StateDir,
    pub provider: ProviderKind,
    /// Use nodes that hold data or belong elsewhere (destroys their data).
    pub force: bool,
    /// Deadline for each wait on a real condition.
    pub timeout: Duration,
}

/// Whether `apply` finished its plan or wants a fresh observation first
/// (e.g. after starting processes whose state it could not know before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    Replan,
}

/// The contract of an engine. Dispatch is static (`match` on the topology
/// kind), so these are plain async fns.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Everything read from the nodes; unreachable nodes are recorded in
    /// it, never turned into errors.
    type Observed;
    /// One step of this engine's plans.
    type Action: fmt::Display;

    /// The topology's name, for messages.
    fn name(&self) -> &str;
    /// Read every node, in parallel.
    async fn observe(&self, ctx: &Ctx) -> Result<Self::Observed>;
    /// Pure: the steps that turn `observed` into the declared state. An
    /// error means "refused" (e.g. a node holds data): nothing has changed.
    fn plan(&self, ctx: &Ctx, observed: &Self::Observed) -> Result<Plan<Self::Action>>;
    /// Execute a plan; each step is idempotent.
    async fn apply(&self, ctx: &Ctx, plan: Plan<Self::Action>) -> Result<Applied>;
    /// Health findings and the node table.
    fn report(&self, ctx: &Ctx, observed: &Self::Observed) -> StatusReport;
}

/// How many observe/plan/apply rounds `init` tries before it gives up.
const MAX_ROUNDS: usize = 4;

/// What `datatier failover` did (kinds with a primary and replicas).
#[derive(Debug)]
pub struct FailoverOutcome {
    pub old_master: String,
    pub new_master: String,
    pub elapsed: Duration,
    /// How long writes were held on the old master (zero when it was down).
    pub writes_paused: Duration,
    /// Status right after the switch.
    pub report: StatusReport,
}

/// What `init` did.
#[derive(Debug)]
pub struct InitOutcome {
    /// Steps executed, rendered; empty when nothing had to change.
    pub executed: Vec<String>,
    pub report: StatusReport,
    pub elapsed: Duration,
}

/// Make the declared state real: observe, plan, apply until the plan is
/// empty, then report health.
pub async fn init<E: Engine>(engine: &E, ctx: &Ctx) -> Result<InitOutcome> {
    let started = Instant::now();
    let mut executed = Vec::new();
    for round in 0..MAX_ROUNDS {
        let observed = engine.observe(ctx).await?;
        let plan = engine.plan(ctx, &observed)?;
        if plan.is_empty() {
            let report = engine.report(ctx, &observed);
            return Ok(InitOutcome {
                executed,
                report,
                elapsed: started.elapsed(),
            });
        }
        if round == 0 {
            tracing::info!("applying plan:\n{}", plan.render(engine.name()).trim_end());
        } else {
            tracing::info!("observed again; {} step(s) left", plan.len());
            tracing::debug!("plan:\n{}", plan.render(engine.name()).trim_end());
        }
        executed.extend(
            plan.steps
                .iter()
                .map(|s| format!("{}  {}", s.target, s.action)),
        );
        engine.apply(ctx, plan).await?;
    }
    let observed = engine.observe(ctx).await?;
    let plan = engine.plan(ctx, &observed)?;
    anyhow::bail!(
        "{}: the plan did not converge after {MAX_ROUNDS} rounds; still to do:\n{}",
        engine.name(),
        plan.render(engine.name())
    )
}

/// What `init` would do, without changing anything.
pub async fn plan<E: Engine>(engine: &E, ctx: &Ctx) -> Result<Plan<E::Action>> {
    let observed = engine.observe(ctx).await?;
    engine.plan(ctx, &observed)
}

/// Observe and report.
pub async fn status<E: Engine>(engine: &E, ctx: &Ctx) -> Result<StatusReport> {
    let observed = engine.observe(ctx).await?;
    Ok(engine.report(ctx, &observed))
}
