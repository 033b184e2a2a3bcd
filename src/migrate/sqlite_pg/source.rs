//! Reading the SQLite side: the schema (through pragmas, plus the `CREATE`
//! text for what pragmas do not expose) and the facts the plan needs (row
//! counts, rowid ranges, `sqlite_sequence`).
//!
//! The source is always opened read-only; nothing here writes to it.

use super::sql;
use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;

/// Open the source read-only (and never create it).
pub fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        bail!("source {} does not exist or is not a file", path.display());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} as SQLite", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // A read-only reader: a bigger page cache helps scans, nothing else.
    conn.execute_batch("PRAGMA cache_size = -16000")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .with_context(|| format!("{} is not a readable SQLite database", path.display()))?;
    Ok(conn)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type as written (may be empty).
    pub declared: String,
    pub notnull: bool,
    /// The DEFAULT clause as SQL text.
    pub default: Option<String>,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub pk: u32,
    /// A generated column (its values are copied as plain data).
    pub generated: bool,
    pub collation: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub from: Vec<String>,
    pub table: String,
    /// Parent columns; filled from the parent's primary key when omitted.
    pub to: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
    pub deferred: bool,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: Option<String>,
    pub column: Option<String>,
    pub expr: Vec<sql::Tok>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub sql: String,
    pub columns: Vec<Column>,
    /// Primary key columns in key order.
    pub pk: Vec<String>,
    /// The `INTEGER PRIMARY KEY` column that aliases the rowid.
    pub rowid_alias: Option<String>,
    pub autoincrement: bool,
    pub without_rowid: bool,
    /// UNIQUE constraints (not `CREATE UNIQUE INDEX`): column lists.
    pub uniques: Vec<Vec<String>>,
    /// `CREATE INDEX` statements on this table.
    pub indexes: Vec<Index>,
    pub fks: Vec<ForeignKey>,
    pub checks: Vec<Check>,
    /// `sqlite_sequence` high-water mark (AUTOINCREMENT tables).
    pub seq: Option<i64>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub sql: String,
}

/// Something in the source that is not migrated, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub kind: &'static str,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    /// Internal tables (`sqlite_sequence`, `sqlite_stat1`, ...), never copied.
    pub internal: Vec<String>,
    /// Triggers, virtual tables: listed in the plan with the reason.
    pub skipped: Vec<Skipped>,
    pub sqlite_version: String,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// Read the whole schema.
pub fn read_schema(conn: &Connection) -> Result<Schema> {
    let mut schema = Schema {
        sqlite_version: conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?,
        ..Default::default()
    };
    // table_list says which tables are WITHOUT ROWID, virtual or shadow.
    let mut kinds: BTreeMap<String, (String, bool)> = BTreeMap::new();
    {
        let mut st =
            conn.prepare("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? != 0,
            ))
        })?;
        for row in rows {
            let (name, kind, wr) = row?;
            kinds.insert(name, (kind, wr));
        }
    }
    let mut seqs: BTreeMap<String, i64> = BTreeMap::new();
    let has_seq: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if has_seq {
        let mut st = conn.prepare("SELECT name, seq FROM sqlite_sequence")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (n, s) = row?;
            seqs.insert(n.to_lowercase(), s);
        }
    }

    let mut objects = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY rowid",
        )?;
        for row in st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            objects.push(row?);
        }
    }
    for (kind, name, _tbl, text) in &objects {
        match kind.as_str() {
            "table" if name.starts_with("sqlite_") => schema.internal.push(name.clone()),
            "table" => {
                let (tkind, wr) = kinds
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| ("table".into(), false));
                match tkind.as_str() {
                    "virtual" => schema.skipped.push(Skipped {
                        kind: "virtual table",
                        name: name.clone(),
                        reason: "virtual tables (FTS, R*Tree, ...) have no Postgres equivalent; recreate it with Postgres' full-text search or an extension".into(),
                    }),
                    "shadow" => {} // belongs to a virtual table listed above
                    _ => {
                        let mut t = read_table(conn, name, text, wr)
                            .with_context(|| format!("cannot read the schema of table {name}"))?;
                        t.seq = seqs.get(&name.to_lowercase()).copied();
                        schema.tables.push(t);
                    }
                }
            }
            "view" => schema.views.push(View {
                name: name.clone(),
                sql: text.clone(),
            }),
            "trigger" => schema.skipped.push(Skipped {
                kind: "trigger",
                name: name.clone(),
                reason: "SQLite trigger bodies are not translated to PL/pgSQL; recreate it by hand"
                    .into(),
            }),
            _ => {}
        }
    }
    // CREATE INDEX statements, attached to their tables.
    for (kind, name, tbl, text) in &objects {
        if kind != "index" || text.is_empty() {
            continue; // autoindexes have no SQL: they are UNIQUE/PK constraints
        }
        if let Some(t) = schema
            .tables
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(tbl))
        {
            let unique = sql::parse_create_index(text)
                .map(|i| i.unique)
                .unwrap_or(false);
            t.indexes.push(Index {
                name: name.clone(),
                unique,
                sql: text.clone(),
            });
        }
    }
    // Foreign keys that omit the parent columns mean the parent's primary key.
    let pks: BTreeMap<String, Vec<String>> = schema
        .tables
        .iter()
        .map(|t| (t.name.to_lowercase(), t.pk.clone()))
        .collect();
    for t in &mut schema.tables {
        for fk in &mut t.fks {
            if fk.to.iter().all(|c| c.is_empty()) {
                if let Some(pk) = pks.get(&fk.table.to_lowercase()) {
                    fk.to = pk.clone();
                }
            }
        }
    }
    Ok(schema)
}

fn read_table(conn: &Connection, name: &str, text: &str, without_rowid: bool) -> Result<Table> {
    let parsed = sql::parse_create_table(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut columns = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
        )?;
        let rows = st.query_map([name], |r| {
            Ok(Column {
                name: r.get(0)?,
                declared: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                notnull: r.get::<_, i64>(2)? != 0,
                default: r.get(3)?,
                pk: r.get::<_, i64>(4)? as u32,
                generated: matches!(r.get::<_, i64>(5)?, 2 | 3),
                collation: None,
            })
        })?;
        for c in rows {
            let mut c = c?;
            c.collation = parsed
                .collations
                .iter()
                .find(|(col, _)| col.eq_ignore_ascii_case(&c.name))
                .map(|(_, coll)| coll.clone());
            columns.push(c);
        }
    }
    let mut pk_cols: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    pk_cols.sort_by_key(|c| c.pk);
    let pk: Vec<String> = pk_cols.iter().map(|c| c.name.clone()).collect();
    let rowid_alias = if !without_rowid && pk_cols.len() == 1 {
        let c = pk_cols[0];
        let is_integer = c.declared.trim().eq_ignore_ascii_case("INTEGER");
        let desc = sql::tokenize(text)
            .map(|toks| {
                toks.windows(3)
                    .any(|w| w[0].is("PRIMARY") && w[1].is("KEY") && w[2].is("DESC"))
            })
            .unwrap_or(false);
        (is_integer && !desc).then(|| c.name.clone())
    } else {
        None
    };
    let autoincrement = sql::tokenize(text)
        .map(|toks| toks.iter().any(|t| t.is("AUTOINCREMENT")))
        .unwrap_or(false);

    let mut uniques = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY seq DESC",
        )?;
        let list: Vec<(String, bool, String)> = st
            .query_map([name], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (idx, unique, origin) in list {
            if origin == "u" && unique {
                let mut st2 =
                    conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
                let cols: Vec<String> = st2
                    .query_map([&idx], |r| r.get::<_, Option<String>>(0))?
                    .filter_map(|c| c.ok().flatten())
                    .collect();
                if !cols.is_empty() && !uniques.contains(&cols) && cols != pk {
                    uniques.push(cols);
                }
            }
        }
    }

    let mut fks: Vec<ForeignKey> = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id DESC, seq",
        )?;
        let mut cur_id = None;
        let rows: Vec<(i64, String, String, Option<String>, String, String)> = st
            .query_map([name], |r| {
                Ok((
                    r.get(0)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (id, parent, from, to, on_update, on_delete) in rows {
            if cur_id != Some(id) {
                cur_id = Some(id);
                fks.push(ForeignKey {
                    from: Vec::new(),
                    table: parent,
                    to: Vec::new(),
                    on_update,
                    on_delete,
                    deferred: false,
                    name: None,
                });
            }
            let fk = fks.last_mut().expect("pushed above");
            fk.from.push(from);
            fk.to.push(to.unwrap_or_default());
        }
    }
    let same = |a: &[String], b: &[String]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
    };
    for fk in &mut fks {
        fk.deferred = parsed
            .deferred_fks
            .iter()
            .any(|(cols, parent)| same(cols, &fk.from) && parent.eq_ignore_ascii_case(&fk.table));
        fk.name = parsed
            .fk_names
            .iter()
            .find(|(cols, parent, _)| {
                same(cols, &fk.from) && parent.eq_ignore_ascii_case(&fk.table)
            })
            .map(|(_, _, n)| n.clone());
    }
    let checks = parsed
        .checks
        .into_iter()
        .map(|c| Check {
            name: c.name,
            column: c.column,
            expr: c.expr,
        })
        .collect();
    Ok(Table {
        name: name.to_string(),
        sql: text.to_string(),
        columns,
        pk,
        rowid_alias,
        autoincrement,
        without_rowid,
        uniques,
        indexes: Vec::new(),
        fks,
        checks,
        seq: None,
    })
}

/// Row count and rowid range of a table (`None` range for WITHOUT ROWID or
/// empty tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    pub rows: u64,
    pub rowid_range: Option<(i64, i64)>,
}

pub fn table_stats(conn: &Connection, t: &Table) -> Result<TableStats> {
    let q = sql::quote_ident(&t.name);
    let rows: i64 = conn.query_row(&format!("SELECT count(*) FROM main.{q}"), [], |r| r.get(0))?;
    let rowid_range = if t.without_rowid || rows == 0 {
        None
    } else {
        conn.query_row(
            &format!("SELECT min(_rowid_), max(_rowid_) FROM main.{q}"),
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .ok()
    };
    Ok(TableStats {
        rows: rows as u64,
        rowid_range,
    })
}

/// `PRAGMA quick_check` (or `integrity_check` when `full`): `Ok(())` or
/// the problems SQLite reports.
pub fn check_integrity(conn: &Connection, full: bool) -> Result<(), Vec<String>> {
    let pragma = if full {
        "PRAGMA integrity_check(20)"
    } else {
        "PRAGMA quick_check(20)"
    };
    let res: rusqlite::Result<Vec<String>> = conn
        .prepare(pragma)
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match res {
        Ok(lines) if lines == ["ok"] => Ok(()),
        Ok(lines) => Err(lines),
        Err(e) => Err(vec![e.to_string()]),
    }
}
