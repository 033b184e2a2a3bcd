//! Guided migration runs: named steps with preflight checks, a journal on
//! disk so an interrupted run resumes where it stopped, confirmations unless
//! `--yes`, progress on stderr, and a final verification that proves nothing
//! was lost.

pub mod mongo_to_sharded;
