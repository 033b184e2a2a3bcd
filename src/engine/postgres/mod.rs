//! The Postgres engine: a primary, streaming replicas and PgBouncer.
//!
//! - [`server`]: the local provider's side (initdb, pg_basebackup,
//!   pg_rewind, the files datatier writes into a data dir).
//! - [`scram`], [`sql`]: SCRAM secrets; connections and quoting.

pub mod scram;
pub mod server;
pub mod sql;
