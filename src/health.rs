//! Findings and severities: what a health check says, and how that becomes
//! the `status` exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
//!
//! Checks never stop at the first problem: each engine checks every node it
//! can reach, records a finding per check (passed checks too, so a report
//! proves what was verified), and the worst severity decides the exit code.

use serde::Serialize;
use std::fmt;

/// How bad a finding is. Ordered: `Ok < Warning < Critical < Unknown` for
/// the purpose of picking the overall status (an UNKNOWN status means we
/// could not even tell, which outranks everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Severity {
    /// The Nagios-style exit code used by `datatier status`.
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
            Severity::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().to_uppercase())
    }
}

/// One result of one check, on one node (or on the whole topology when
/// `node` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable machine name of the check, e.g. `slots_covered`.
    pub check: String,
    /// `host:port` of the node concerned, or `None` for topology-wide checks.
    pub node: Option<String>,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(
        check: impl Into<String>,
        node: Option<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            check: check.into(),
            node,
            severity,
            message: message.into(),
        }
    }
    pub fn ok(check: impl Into<String>, node: Option<String>, msg: impl Into<String>) -> Self {
        Self::new(check, node, Severity::Ok, msg)
    }
    pub fn warn(check: impl Into<String>, node: Option<String>, msg: impl Into<String>) -> Self {
        Self::new(check, node, Severity::Warning, msg)
    }
    pub fn crit(check: impl Into<String>, node: Option<String>, msg: impl Into<String>) -> Self {
        Self::new(check, node, Severity::Critical, msg)
    }
}

/// The worst severity among findings; `Ok` when there are none.
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_picks_the_highest_severity() {
        let f = vec![
            Finding::ok("a", None, "fine"),
            Finding::crit("b", Some("n:1".into()), "down"),
            Finding::warn("c", None, "meh"),
        ];
        assert_eq!(worst(&f), Severity::Critical);
        assert_eq!(worst(&f).exit_code(), 2);
        assert_eq!(worst(&[]), Severity::Ok);
        assert!(Severity::Unknown > Severity::Critical);
    }
}
