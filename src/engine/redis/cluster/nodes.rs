//! `CLUSTER NODES` parsing: one [`NodeLine`] per node a server knows.
//!
//! Format (Redis 7): `<id> <ip:port@cport[,hostname]> <flags> <master>
//! <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...`, where a
//! slot entry is `N`, `A-B`, `[N->-id]` (migrating) or `[N-<-id]` (importing).

use crate::topology::redis_cluster::SlotRange;
use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// `ip:port` (empty for `noaddr` nodes).
    pub addr: String,
    pub flags: Vec<String>,
    /// The master's id when this node is a replica.
    pub master: Option<String>,
    pub config_epoch: u64,
    pub connected: bool,
    pub slots: Vec<SlotRange>,
    pub migrating: Vec<(u16, String)>,
    pub importing: Vec<(u16, String)>,
}

impl NodeLine {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
    pub fn is_myself(&self) -> bool {
        self.has("myself")
    }
    pub fn is_master(&self) -> bool {
        self.has("master")
    }
    pub fn is_replica(&self) -> bool {
        self.has("slave") || self.has("replica")
    }
    /// In a state that makes it not (yet) a full member.
    pub fn is_transient(&self) -> bool {
        self.has("handshake") || self.has("noaddr")
    }
    pub fn failed(&self) -> bool {
        self.has("fail")
    }
    pub fn pfailed(&self) -> bool {
        self.has("fail?")
    }
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(|r| r.len()).sum()
    }
}

/// Parse the whole `CLUSTER NODES` reply.
pub fn parse(text: &str) -> Result<Vec<NodeLine>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_line(l).with_context(|| format!("unexpected CLUSTER NODES line `{l}`")))
        .collect()
}

fn parse_line(line: &str) -> Result<NodeLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        bail!("too few fields");
    }
    let addr = f[1].split('@').next().unwrap_or("").to_string();
    let addr = if addr.starts_with(':') {
        String::new()
    } else {
        addr
    };
    let mut slots = Vec::new();
    let mut migrating = Vec::new();
    let mut importing = Vec::new();
    for s in &f[8..] {
        if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if let Some((slot, id)) = inner.split_once("->-") {
                migrating.push((slot.parse()?, id.to_string()));
            } else if let Some((slot, id)) = inner.split_once("-<-") {
                importing.push((slot.parse()?, id.to_string()));
            }
            continue;
        }
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.parse()?, b.parse()?),
            None => {
                let n = s.parse()?;
                (n, n)
            }
        };
        slots.push(SlotRange { start: a, end: b });
    }
    Ok(NodeLine {
        id: f[0].to_string(),
        addr,
        flags: f[2].split(',').map(str::to_string).collect(),
        master: (f[3] != "-").then(|| f[3].to_string()),
        config_epoch: f[6].parse()?,
        connected: f[7] == "connected",
        slots,
        migrating,
        importing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masters_replicas_and_open_slots() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,hostname4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922 [5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 myself,master - 0 0 3 connected 10923-16383 17 [5461-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,fail?,noaddr - 1426238316232 1426238316232 5 disconnected
";
        let n = parse(text).unwrap();
        assert_eq!(n.len(), 4);
        assert!(n[0].is_replica());
        assert_eq!(
            n[0].master.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert_eq!(n[0].addr, "127.0.0.1:30004");
        assert_eq!(n[1].slot_count(), 5462);
        assert_eq!(
            n[1].migrating,
            vec![(5461, "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f".to_string())]
        );
        assert!(n[2].is_myself() && n[2].is_master());
        assert_eq!(n[2].slots.len(), 2);
        assert_eq!(n[2].importing.len(), 1);
        assert!(n[3].pfailed() && n[3].is_transient() && !n[3].connected && n[3].addr.is_empty());
    }
}
