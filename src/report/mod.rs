//! Renderings of a [`StatusReport`]: a human table, one JSON object, or
//! Prometheus text exposition. stdout carries only this data; logs go to
//! stderr.

use crate::health::{Finding, Severity};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, ContentArrangement, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How `status` (and other data-producing commands) print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Prometheus,
}

/// One node as observed: where it is, what it is, whether it answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeStatus {
    /// `host:port`.
    pub address: String,
    /// Engine-specific role: `master`, `replica`, `sentinel`, `primary`, ...
    pub role: String,
    /// `up`, `down`, `fail`, `syncing`, ... (`unreachable` when it did not answer).
    pub state: String,
    pub reachable: bool,
    /// Extra engine-specific columns (slots, lag, master, ...), in order.
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

impl NodeStatus {
    pub fn new(
        address: impl Into<String>,
        role: impl Into<String>,
        state: impl Into<String>,
    ) -> Self {
        let state = state.into();
        NodeStatus {
            address: address.into(),
            role: role.into(),
            reachable: state != "unreachable",
            state,
            details: BTreeMap::new(),
        }
    }
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// A numeric sample for the Prometheus output (and JSON `metrics`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metric {
    /// Without the `datatier_` prefix, e.g. `replica_lag_seconds`.
    pub name: String,
    pub help: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Metric {
    pub fn new(name: &str, help: &str, labels: &[(&str, &str)], value: f64) -> Self {
        Metric {
            name: name.to_string(),
            help: help.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
}

/// Everything `datatier status` knows about one topology.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub topology: String,
    pub kind: String,
    pub status: Severity,
    pub nodes: Vec<NodeStatus>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Free-form remarks worth showing (e.g. "balancer window is evaluated
    /// in the config primary's local time").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl StatusReport {
    pub fn new(topology: &str, kind: &str, nodes: Vec<NodeStatus>, findings: Vec<Finding>) -> Self {
        StatusReport {
            topology: topology.to_string(),
            kind: kind.to_string(),
            status: crate::health::worst(&findings),
            nodes,
            findings,
            metrics: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Table => render_table(self),
            OutputFormat::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("report serializes");
                s.push('\n');
                s
            }
            OutputFormat::Prometheus => render_prometheus(std::slice::from_ref(self)),
        }
    }
}

fn render_table(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}): {}", r.topology, r.kind, r.status);
    let detail_keys: Vec<String> = {
        let mut keys: Vec<String> = Vec::new();
        for n in &r.nodes {
            for k in n.details.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys
    };
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let mut header = vec!["NODE".to_string(), "ROLE".to_string(), "STATE".to_string()];
    header.extend(detail_keys.iter().map(|k| k.to_uppercase()));
    t.set_header(header);
    for n in &r.nodes {
        let mut row = vec![
            Cell::new(&n.address),
            Cell::new(&n.role),
            Cell::new(&n.state),
        ];
        for k in &detail_keys {
            let v = match n.details.get(k) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            row.push(Cell::new(v));
        }
        t.add_row(row);
    }
    let _ = writeln!(out, "{t}");

    // Problems one per line; passed checks folded per check name.
    let mut passed: Vec<(&str, usize)> = Vec::new();
    let mut problems = Vec::new();
    for f in &r.findings {
        if f.severity == Severity::Ok {
            match passed.iter_mut().find(|(c, _)| *c == f.check) {
                Some((_, n)) => *n += 1,
                None => passed.push((&f.check, 1)),
            }
        } else {
            problems.push(f);
        }
    }
    problems.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in &problems {
        let node = f
            .node
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let _ = writeln!(out, "{:<8} {}{}: {}", f.severity, f.check, node, f.message);
    }
    if !passed.is_empty() {
        let list: Vec<String> = passed
            .iter()
            .map(|(c, n)| {
                if *n > 1 {
                    format!("{c} (x{n})")
                } else {
                    c.to_string()
                }
            })
            .collect();
        let _ = writeln!(out, "OK       {}", list.join(", "));
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Prometheus text exposition (version 0.0.4) for one or more reports.
pub fn render_prometheus(reports: &[StatusReport]) -> String {
    // name -> (help, samples)
    let mut families: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut push = |name: &str, help: &str, l: Vec<(String, String)>, v: f64| {
        let fam = families
            .entry(format!("datatier_{name}"))
            .or_insert_with(|| (help.to_string(), Vec::new()));
        fam.1.push(format!("datatier_{name}{} {}", labels(&l), v));
    };
    for r in reports {
        let topo = ("topology".to_string(), r.topology.clone());
        let kind = ("kind".to_string(), r.kind.clone());
        push(
            "status",
            "Overall status: 0 ok, 1 warning, 2 critical, 3 unknown.",
            vec![topo.clone(), kind],
            r.status.exit_code() as f64,
        );
        for n in &r.nodes {
            push(
                "node_up",
                "1 when the node answered, 0 when it did not.",
                vec![
                    topo.clone(),
                    ("node".into(), n.address.clone()),
                    ("role".into(), n.role.clone()),
                ],
                if n.reachable { 1.0 } else { 0.0 },
            );
        }
        for f in &r.findings {
            push(
                "check_severity",
                "Severity of each check: 0 ok, 1 warning, 2 critical, 3 unknown.",
                vec![
                    topo.clone(),
                    ("check".into(), f.check.clone()),
                    ("node".into(), f.node.clone().unwrap_or_default()),
                ],
                f.severity.exit_code() as f64,
            );
        }
        for m in &r.metrics {
            let mut l = vec![topo.clone()];
            l.extend(m.labels.iter().cloned());
            push(&m.name, &m.help, l, m.value);
        }
    }
    let mut out = String::new();
    for (name, (help, samples)) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in samples {
            let _ = writeln!(out, "{s}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StatusReport {
        let mut r = StatusReport::new(
            "shop",
            "redis-cluster",
            vec![
                NodeStatus::new("127.0.0.1:7000", "master", "up").detail("slots", "0-5460"),
                NodeStatus::new("127.0.0.1:7001", "master", "unreachable"),
            ],
            vec![
                Finding::ok("slots_covered", None, "16384 slots covered once"),
                Finding::crit(
                    "node_reachable",
                    Some("127.0.0.1:7001".into()),
                    "connection refused",
                ),
            ],
        );
        r.metrics.push(Metric::new(
            "replica_lag_seconds",
            "Lag",
            &[("node", "a\"b")],
            0.5,
        ));
        r
    }

    #[test]
    fn json_has_contract_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&sample().render(OutputFormat::Json)).unwrap();
        assert_eq!(v["topology"], "shop");
        assert_eq!(v["status"], "critical");
        assert_eq!(v["nodes"][0]["address"], "127.0.0.1:7000");
        assert_eq!(v["nodes"][0]["slots"], "0-5460");
        assert_eq!(v["nodes"][1]["reachable"], false);
        assert_eq!(v["findings"][1]["severity"], "critical");
        assert_eq!(v["findings"][1]["node"], "127.0.0.1:7001");
    }

    #[test]
    fn prometheus_is_well_formed() {
        let text = sample().render(OutputFormat::Prometheus);
        assert!(text.contains("# TYPE datatier_status gauge"));
        assert!(text.contains("datatier_status{topology=\"shop\",kind=\"redis-cluster\"} 2"));
        assert!(text.contains(
            "datatier_node_up{topology=\"shop\",node=\"127.0.0.1:7001\",role=\"master\"} 0"
        ));
        assert!(text.contains("node=\"a\\\"b\""));
        // every sample line belongs to a family announced before it
        let mut announced = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split('{').next().unwrap();
                assert!(announced.contains(name), "{line}");
            }
        }
    }

    #[test]
    fn table_lists_problems_and_folds_passed_checks() {
        let t = sample().render(OutputFormat::Table);
        assert!(t.starts_with("shop (redis-cluster): CRITICAL"));
        assert!(t.contains("CRITICAL node_reachable 127.0.0.1:7001: connection refused"));
        assert!(t.contains("OK       slots_covered"));
    }
}
