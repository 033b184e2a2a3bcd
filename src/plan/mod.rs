//! The plan: a list of named, idempotent steps that turns observed state into
//! declared state. Engines compute it with a pure function of
//! `(&Topology, &Observed)`, so it is unit-testable without servers; `plan`
//! prints it and `init` executes it.

use serde::Serialize;
use std::fmt;

/// One step of a plan: what to do, and on which node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step<A> {
    /// `host:port` (or a role like `cluster`) the step acts on.
    pub target: String,
    pub action: A,
}

/// An ordered list of steps. Empty means "already as declared".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan<A> {
    pub steps: Vec<Step<A>>,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Plan { steps: Vec::new() }
    }
}

impl<A> Plan<A> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, target: impl Into<String>, action: A) {
        self.steps.push(Step {
            target: target.into(),
            action,
        });
    }
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
    pub fn len(&self) -> usize {
        self.steps.len()
    }
}

impl<A: fmt::Display> Plan<A> {
    /// Human rendering: a numbered list, or a one-line "nothing to do".
    pub fn render(&self, topology: &str) -> String {
        if self.steps.is_empty() {
            return format!(
                "{topology}: nothing to do, every node matches the declared topology\n"
            );
        }
        let width = self.steps.iter().map(|s| s.target.len()).max().unwrap_or(0);
        let mut out = format!("{topology}: {} step(s)\n", self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}. {:<width$}  {}\n",
                i + 1,
                s.target,
                s.action,
                width = width
            ));
        }
        out
    }
}

/// A plan as JSON: `{"topology": .., "steps": [{"target", "action"}]}` where
/// `action` is the human description (engines' action enums also serialize,
/// but the description is the stable contract).
pub fn to_json<A: fmt::Display>(topology: &str, plan: &Plan<A>) -> serde_json::Value {
    serde_json::json!({
        "topology": topology,
        "steps": plan.steps.iter().map(|s| serde_json::json!({
            "target": s.target,
            "action": s.action.to_string(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_numbered_steps_and_empty_plans() {
        let mut p: Plan<String> = Plan::new();
        assert!(p.render("t").contains("nothing to do"));
        p.push("127.0.0.1:7000", "start redis-server".to_string());
        p.push("cluster", "meet".to_string());
        let r = p.render("t");
        assert!(r.contains("  1. 127.0.0.1:7000  start redis-server"), "{r}");
        assert!(r.contains("  2. cluster         meet"), "{r}");
        assert_eq!(to_json("t", &p)["steps"][1]["action"], "meet");
    }
}
