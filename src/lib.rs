//! # datatier — the data tier, declared, bootstrapped, verified
//!
//! A topology file (or an embedded default) declares a data tier: a Redis
//! Cluster, a Redis Sentinel set, Postgres streaming replicas behind
//! PgBouncer, or a MongoDB sharded cluster. datatier makes it exist, proves
//! it is healthy, and walks users through migrations between layouts.
//!
//! ## How data flows (and where each step lives)
//!
//! ```text
//! topology file --parse/validate--> Topology            topology/
//! Provider makes nodes exist (local processes | existing hosts | compose)
//!                                                        provider/
//! Engine::observe  -> Observed state, read in parallel   engine/<kind>/
//! Engine::plan(&Topology, &Observed) -> Plan { steps }   plan/ (pure)
//! Engine::apply(Plan) -> each step idempotent, polled    engine/<kind>/
//! Engine::health   -> Vec<Finding>                       health
//! Reporter         -> table | json | prometheus          report/
//! ```
//!
//! Planning is pure and separate from doing: `datatier plan` prints the plan,
//! `datatier init` runs it, and a second `init` finds an empty plan. Nothing
//! sleeps a fixed time: waits poll the real condition with short backoff and
//! a deadline ([`wait`]), and say what is still missing when it passes.
//!
//! ## Modules
//! - [`cli`]: thin commands — parse flags, build options, call one operation.
//! - [`topology`]: the declarative file format, its validation and the
//!   embedded defaults; errors carry file, line and field.
//! - [`plan`]: the generic `Plan` of named steps and its rendering.
//! - [`provider`]: where nodes come from: `local` child processes with a
//!   state dir, `existing` nodes reached over the network, `compose` files.
//! - [`engine`]: one module per kind (`redis`, `postgres`, `mongo`); each
//!   owns observe / plan / apply / health for its kind. Engines never reach
//!   into each other; shared needs live in small common modules.
//! - [`health`]: findings and severities, the status exit-code contract.
//! - [`report`]: table, JSON and Prometheus renderings of a status report.
//! - [`ops`]: the operations behind the commands, dispatched on the kind.
//! - [`migrate`]: guided migration runs with journals and verification.
//! - [`secret`]: passwords from env vars or files, never printed.
//! - [`wait`]: polling with backoff and deadlines.

pub mod cli;
pub mod engine;
pub mod health;
pub mod migrate;
pub mod ops;
pub mod plan;
pub mod provider;
pub mod report;
pub mod secret;
pub mod topology;
pub mod wait;
