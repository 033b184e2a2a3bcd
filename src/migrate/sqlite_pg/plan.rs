//! The plan: everything the migration will create, as Postgres DDL, built
//! from the source schema, the value scan and the options — pure, so it is
//! unit-tested without servers, printed before anything is written, and
//! stored in the journal so a resumed run does exactly what was confirmed.
//!
//! Order on the target (see `load` and `target`): tables (columns, NOT
//! NULL, DEFAULT, identity) -> data -> per table primary key, UNIQUE,
//! CHECK, indexes, identity restart -> foreign keys -> views. Building
//! constraints after the load is what lets COPY run at full speed.

use super::source::{Schema, Table};
use super::sql::{self, quote_ident, ExprCtx, Literal, NowDefault, Tok};
use super::types::{self, convert, Mapped, Owned, PgType, TimestampType};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// Postgres truncates identifiers longer than this many bytes.
pub const NAMEDATALEN: usize = 63;

/// A `--cast table.column=TYPE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub table: String,
    pub column: String,
    pub ty: PgType,
}

impl std::str::FromStr for Cast {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (col, ty) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected TABLE.COLUMN=TYPE"))?;
        let (table, column) = col
            .rsplit_once('.')
            .ok_or_else(|| format!("`{s}`: expected TABLE.COLUMN=TYPE"))?;
        let ty = PgType::parse(ty).ok_or_else(|| {
            format!(
                "`{s}`: unknown type `{ty}`; use one of {}",
                types::CAST_TYPES
            )
        })?;
        Ok(Cast {
            table: table.to_string(),
            column: column.to_string(),
            ty,
        })
    }
}

/// What kind of object a post-load statement creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjKind {
    PrimaryKey,
    Unique,
    Check,
    Index,
    Identity,
    ForeignKey,
    View,
}

impl ObjKind {
    pub fn label(self) -> &'static str {
        match self {
            ObjKind::PrimaryKey => "primary key",
            ObjKind::Unique => "unique",
            ObjKind::Check => "check",
            ObjKind::Index => "index",
            ObjKind::Identity => "identity",
            ObjKind::ForeignKey => "foreign key",
            ObjKind::View => "view",
        }
    }
}

/// One statement of the plan, with the name it creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Obj {
    pub kind: ObjKind,
    /// Name of the constraint, index or view (the column for identity).
    pub name: String,
    /// Target table (empty for views).
    pub table: String,
    pub sql: String,
    /// What it is, for the plan ("(order_id, product_id)", "ON DELETE CASCADE" ...).
    pub what: String,
    /// The referenced table of a foreign key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// A primary key or unique constraint built in two statements: the
    /// unique index (which other index builds and reads of the table do not
    /// wait for), then the constraint on it (brief). Same result as `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<(String, String)>,
}

impl Obj {
    /// Journal step name.
    pub fn step(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind.label().replace(' ', "_"),
            self.table,
            self.name
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPlan {
    pub source: String,
    pub target: String,
    pub declared: String,
    pub ty: PgType,
    /// From a `--cast`: representation-changing conversions are allowed.
    pub lenient: bool,
    pub not_null: bool,
    /// DEFAULT as Postgres SQL.
    pub default: Option<String>,
    pub identity: bool,
    /// How the type was chosen, for the plan.
    pub why: String,
}

/// Where the identity of an `INTEGER PRIMARY KEY` continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub column: String,
    pub next: i64,
    pub max_id: Option<i64>,
    pub sqlite_sequence: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub source: String,
    pub target: String,
    pub rows: u64,
    pub rowid_range: Option<(i64, i64)>,
    /// Source columns that identify a row in reports; empty means rowid.
    pub key: Vec<String>,
    pub columns: Vec<ColumnPlan>,
    pub identity: Option<Identity>,
    /// PK, UNIQUE, CHECK, indexes and identity restart, built after the load.
    pub objects: Vec<Obj>,
    /// `--if-exists truncate`: the table exists and is reused.
    #[serde(default)]
    pub reuse: bool,
}

impl TablePlan {
    pub fn create_sql(&self, schema: &str) -> String {
        let mut s = format!("CREATE TABLE {} (\n", qualified(schema, &self.target));
        for (i, c) in self.columns.iter().enumerate() {
            let _ = write!(s, "    {} {}", quote_ident(&c.target), c.ty);
            if c.identity {
                s.push_str(" GENERATED BY DEFAULT AS IDENTITY");
            } else {
                if c.not_null {
                    s.push_str(" NOT NULL");
                }
                if let Some(d) = &c.default {
                    let _ = write!(s, " DEFAULT {d}");
                }
            }
            s.push_str(if i + 1 < self.columns.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        s.push(')');
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotMigrated {
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// The whole migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub source: String,
    /// The target, password redacted.
    pub target: String,
    pub schema: String,
    pub keep_case: bool,
    pub timestamp_type: TimestampType,
    pub tables: Vec<TablePlan>,
    pub foreign_keys: Vec<Obj>,
    pub views: Vec<Obj>,
    pub not_migrated: Vec<NotMigrated>,
    /// SQLite's internal tables, never copied.
    pub internal: Vec<String>,
    /// Remarks worth reading (collations, generated columns...).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn table(&self, target: &str) -> Option<&TablePlan> {
        self.tables.iter().find(|t| t.target == target)
    }

    /// Every post-load object, in execution order.
    pub fn objects(&self) -> impl Iterator<Item = &Obj> {
        self.tables
            .iter()
            .flat_map(|t| t.objects.iter())
            .chain(self.foreign_keys.iter())
            .chain(self.views.iter())
    }

    /// Drop objects that failed the rehearsal, listing them with the reason.
    pub fn drop_failed(&mut self, failed: &BTreeMap<String, String>) {
        let mut gone = Vec::new();
        let mut keep = |o: &Obj| match failed.get(&o.step()) {
            Some(reason) => {
                gone.push(NotMigrated {
                    kind: o.kind.label().into(),
                    name: if o.table.is_empty() || o.kind == ObjKind::View {
                        o.name.clone()
                    } else {
                        format!("{}.{}", o.table, o.name)
                    },
                    reason: format!("Postgres rejected it: {reason}"),
                });
                false
            }
            None => true,
        };
        for t in &mut self.tables {
            t.objects.retain(&mut keep);
        }
        self.foreign_keys.retain(&mut keep);
        self.views.retain(&mut keep);
        self.not_migrated.extend(gone);
    }
}

/// `schema.name`, each part quoted as needed.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The type decided for a column before the values are seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `None`: decided by the values (typeless or unknown declared type).
    pub ty: Option<PgType>,
    pub lenient: bool,
    pub why: String,
}

/// Declared types and `--cast`s, per table (source name) and column index.
pub fn decide_types(
    schema: &Schema,
    casts: &[Cast],
    ts: TimestampType,
) -> Result<BTreeMap<String, Vec<Decision>>> {
    for c in casts {
        let Some(t) = schema.table(&c.table) else {
            bail!(
                "--cast {}.{}: the source has no table `{}` (tables: {})",
                c.table,
                c.column,
                c.table,
                schema
                    .tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if t.column(&c.column).is_none() {
            bail!(
                "--cast {}.{}: table `{}` has no column `{}` (columns: {})",
                c.table,
                c.column,
                t.name,
                c.column,
                t.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut out = BTreeMap::new();
    for t in &schema.tables {
        let mut cols = Vec::new();
        for c in &t.columns {
            let cast = casts.iter().find(|k| {
                k.table.eq_ignore_ascii_case(&t.name) && k.column.eq_ignore_ascii_case(&c.name)
            });
            let d = if let Some(k) = cast {
                Decision {
                    ty: Some(k.ty.clone()),
                    lenient: true,
                    why: "--cast".into(),
                }
            } else if t.rowid_alias.as_deref() == Some(c.name.as_str()) {
                Decision {
                    ty: Some(PgType::BigInt),
                    lenient: false,
                    why: "INTEGER PRIMARY KEY (the rowid)".into(),
                }
            } else {
                match types::map_declared(&c.declared, ts) {
                    Mapped::Fixed(ty) => Decision {
                        ty: Some(ty),
                        lenient: false,
                        why: String::new(),
                    },
                    Mapped::Infer => Decision {
                        ty: None,
                        lenient: false,
                        why: if c.declared.trim().is_empty() {
                            "no declared type".into()
                        } else {
                            format!("{} has no Postgres counterpart", c.declared)
                        },
                    },
                }
            };
            cols.push(d);
        }
        out.insert(t.name.clone(), cols);
    }
    Ok(out)
}

/// Options that shape the plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub source: String,
    pub target: String,
    pub schema: String,
    pub keep_case: bool,
    pub timestamp_type: TimestampType,
}

/// Facts about one table's data.
#[derive(Debug, Clone, Default)]
pub struct TableFacts {
    pub rows: u64,
    pub rowid_range: Option<(i64, i64)>,
}

/// Generates names unique in the target schema, within Postgres' limit.
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn unique(&mut self, parts: &[&str], suffix: &str) -> String {
        // like Postgres: shorten the parts, keep the suffix
        let room = NAMEDATALEN.saturating_sub(suffix.len() + 1);
        let mut base = parts.join("_");
        while base.len() > room {
            base.pop();
        }
        let mut name = format!("{base}_{suffix}");
        let mut n = 1;
        while !self.used.insert(name.clone()) {
            let s = format!("{suffix}{n}");
            let room = NAMEDATALEN.saturating_sub(s.len() + 1);
            let mut b = parts.join("_");
            while b.len() > room {
                b.pop();
            }
            name = format!("{b}_{s}");
            n += 1;
        }
        name
    }
}

/// Build the plan. `types` are final (scan done); `facts` by source table.
pub fn build(
    schema: &Schema,
    types: &BTreeMap<String, Vec<(PgType, bool, String)>>,
    facts: &BTreeMap<String, TableFacts>,
    opts: &PlanOptions,
) -> Result<Plan> {
    let fold = |s: &str| {
        if opts.keep_case {
            s.to_string()
        } else {
            s.to_ascii_lowercase()
        }
    };
    // Names longer than Postgres keeps would be truncated silently: refuse.
    let mut long = Vec::new();
    for t in &schema.tables {
        if t.name.len() > NAMEDATALEN {
            long.push(format!("table {}", t.name));
        }
        for c in &t.columns {
            if c.name.len() > NAMEDATALEN {
                long.push(format!("column {}.{}", t.name, c.name));
            }
        }
    }
    if !long.is_empty() {
        bail!(
            "Postgres truncates names to {NAMEDATALEN} bytes, which would silently rename: {}",
            long.join(", ")
        );
    }
    let table_names: HashMap<String, String> = schema
        .tables
        .iter()
        .map(|t| (t.name.to_ascii_lowercase(), fold(&t.name)))
        .chain(
            schema
                .views
                .iter()
                .map(|v| (v.name.to_ascii_lowercase(), fold(&v.name))),
        )
        .collect();
    let mut names = Names {
        used: table_names.values().cloned().collect(),
    };
    let mut plan = Plan {
        source: opts.source.clone(),
        target: opts.target.clone(),
        schema: opts.schema.clone(),
        keep_case: opts.keep_case,
        timestamp_type: opts.timestamp_type,
        tables: Vec::new(),
        foreign_keys: Vec::new(),
        views: Vec::new(),
        not_migrated: schema
            .skipped
            .iter()
            .map(|s| NotMigrated {
                kind: s.kind.into(),
                name: s.name.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
        internal: schema.internal.clone(),
        notes: Vec::new(),
    };
    // Index names first: they are the user's, generated names yield to them.
    for t in &schema.tables {
        for i in &t.indexes {
            names.used.insert(fold(&i.name));
        }
    }
    let mut bool_cols: HashMap<String, HashSet<String>> = HashMap::new();
    for t in &schema.tables {
        let ty = &types[&t.name];
        bool_cols.insert(
            t.name.to_ascii_lowercase(),
            t.columns
                .iter()
                .zip(ty)
                .filter(|(_, (ty, _, _))| *ty == PgType::Boolean)
                .map(|(c, _)| c.name.to_ascii_lowercase())
                .collect(),
        );
    }
    for t in &schema.tables {
        let tp = build_table(
            t,
            &types[&t.name],
            facts.get(&t.name),
            opts,
            &fold,
            &bool_cols,
            &table_names,
            &mut names,
            &mut plan,
        )?;
        plan.tables.push(tp);
    }
    // Foreign keys, once every table is known.
    for t in &schema.tables {
        let target = fold(&t.name);
        for fk in &t.fks {
            let Some(parent) = schema.table(&fk.table) else {
                plan.not_migrated.push(NotMigrated {
                    kind: "foreign key".into(),
                    name: format!("{target} ({})", fk.from.join(", ")),
                    reason: format!("it references table `{}`, which does not exist", fk.table),
                });
                continue;
            };
            let from: Vec<String> = fk
                .from
                .iter()
                .map(|c| fold(&t.column(c).map(|c| c.name.clone()).unwrap_or(c.clone())))
                .collect();
            let to: Vec<String> = fk
                .to
                .iter()
                .map(|c| {
                    fold(
                        &parent
                            .column(c)
                            .map(|c| c.name.clone())
                            .unwrap_or(c.clone()),
                    )
                })
                .collect();
            if to.is_empty() || to.iter().any(|c| c.is_empty()) {
                plan.not_migrated.push(NotMigrated {
                    kind: "foreign key".into(),
                    name: format!("{target} ({})", from.join(", ")),
                    reason: format!("table `{}` has no primary key to reference", fk.table),
                });
                continue;
            }
            let name = match &fk.name {
                Some(n) if names.used.insert(fold(n)) => fold(n),
                _ => names.unique(&[&target, &from.join("_")], "fkey"),
            };
            let mut actions = String::new();
            for (what, act) in [("DELETE", &fk.on_delete), ("UPDATE", &fk.on_update)] {
                let act = act.to_ascii_uppercase();
                if act != "NO ACTION" && !act.is_empty() {
                    let _ = write!(actions, " ON {what} {act}");
                }
            }
            if fk.deferred {
                actions.push_str(" DEFERRABLE INITIALLY DEFERRED");
            }
            let parent_t = fold(&parent.name);
            plan.foreign_keys.push(Obj {
                kind: ObjKind::ForeignKey,
                name: name.clone(),
                table: target.clone(),
                sql: format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){actions}",
                    qualified(&opts.schema, &target),
                    quote_ident(&name),
                    sql::ident_list(&from),
                    qualified(&opts.schema, &parent_t),
                    sql::ident_list(&to),
                ),
                what: format!(
                    "({}) -> {parent_t} ({}){actions}",
                    from.join(", "),
                    to.join(", ")
                ),
                references: Some(parent_t.clone()),
                staged: None,
            });
        }
    }
    // Views, translated where possible.
    let all_bool: HashSet<String> = bool_cols.values().flatten().cloned().collect();
    let mut col_names: HashMap<String, String> = HashMap::new();
    for t in &schema.tables {
        for c in &t.columns {
            col_names
                .entry(c.name.to_ascii_lowercase())
                .or_insert_with(|| fold(&c.name));
        }
    }
    for v in &schema.views {
        let target = fold(&v.name);
        let ident = |s: &str| {
            let k = s.to_ascii_lowercase();
            table_names
                .get(&k)
                .or_else(|| col_names.get(&k))
                .cloned()
                .unwrap_or_else(|| fold(s))
        };
        let is_bool = |s: &str| all_bool.contains(&s.to_ascii_lowercase());
        let cx = ExprCtx {
            ident: &ident,
            is_bool: &is_bool,
        };
        let translated = sql::parse_create_view(&v.sql)
            .and_then(|pv| Ok((pv.columns.clone(), sql::translate(&pv.select, &cx)?)));
        match translated {
            Ok((cols, select)) => {
                let cols = if cols.is_empty() {
                    String::new()
                } else {
                    let c: Vec<String> = cols.iter().map(|c| fold(c)).collect();
                    format!(" ({})", sql::ident_list(&c))
                };
                plan.views.push(Obj {
                    kind: ObjKind::View,
                    name: target.clone(),
                    table: String::new(),
                    sql: format!(
                        "CREATE VIEW {}{cols} AS {select}",
                        qualified(&opts.schema, &target)
                    ),
                    what: "translated".into(),
                    references: None,
                    staged: None,
                });
            }
            Err(why) => plan.not_migrated.push(NotMigrated {
                kind: "view".into(),
                name: v.name.clone(),
                reason: why,
            }),
        }
    }
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
fn build_table(
    t: &Table,
    types: &[(PgType, bool, String)],
    facts: Option<&TableFacts>,
    opts: &PlanOptions,
    fold: &dyn Fn(&str) -> String,
    bool_cols: &HashMap<String, HashSet<String>>,
    table_names: &HashMap<String, String>,
    names: &mut Names,
    plan: &mut Plan,
) -> Result<TablePlan> {
    let target = fold(&t.name);
    let facts = facts.cloned().unwrap_or_default();
    let qt = qualified(&opts.schema, &target);
    let my_bools = bool_cols
        .get(&t.name.to_ascii_lowercase())
        .cloned()
        .unwrap_or_default();
    let col_target = |name: &str| -> String {
        t.column(name)
            .map(|c| fold(&c.name))
            .unwrap_or_else(|| fold(name))
    };
    let ident = |s: &str| {
        if t.column(s).is_some() {
            col_target(s)
        } else {
            table_names
                .get(&s.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| fold(s))
        }
    };
    let is_bool = |s: &str| my_bools.contains(&s.to_ascii_lowercase());
    let cx = ExprCtx {
        ident: &ident,
        is_bool: &is_bool,
    };
    let mut columns = Vec::new();
    for (c, (ty, lenient, why)) in t.columns.iter().zip(types) {
        let identity = t.rowid_alias.as_deref() == Some(c.name.as_str());
        let default = match (&c.default, identity) {
            (Some(d), false) => match translate_default(d, &c.declared, ty, &cx) {
                Ok(d) => d,
                Err(why) => bail!(
                    "table {}, column {}: DEFAULT {d} cannot be kept: {why}",
                    t.name,
                    c.name
                ),
            },
            _ => None,
        };
        if c.generated {
            plan.notes.push(format!(
                "{}.{} is a generated column in SQLite; its values are copied into a plain column",
                t.name, c.name
            ));
        }
        if let Some(coll) = &c.collation {
            if !coll.eq_ignore_ascii_case("BINARY") {
                plan.notes.push(format!(
                    "{}.{} uses COLLATE {coll}; Postgres compares it byte-wise (case-sensitive)",
                    t.name, c.name
                ));
            }
        }
        columns.push(ColumnPlan {
            source: c.name.clone(),
            target: fold(&c.name),
            declared: c.declared.clone(),
            ty: ty.clone(),
            lenient: *lenient,
            // primary key columns are NOT NULL in Postgres
            not_null: c.notnull || c.pk > 0,
            default,
            identity,
            why: why.clone(),
        });
    }
    let mut objects = Vec::new();
    if !t.pk.is_empty() {
        let cols: Vec<String> = t.pk.iter().map(|c| col_target(c)).collect();
        let name = names.unique(&[&target], "pkey");
        objects.push(Obj {
            kind: ObjKind::PrimaryKey,
            name: name.clone(),
            table: target.clone(),
            sql: format!(
                "ALTER TABLE {qt} ADD CONSTRAINT {} PRIMARY KEY ({})",
                quote_ident(&name),
                sql::ident_list(&cols)
            ),
            what: format!("({})", cols.join(", ")),
            references: None,
            staged: Some(staged(&qt, &name, &cols, "PRIMARY KEY")),
        });
    }
    for u in &t.uniques {
        let cols: Vec<String> = u.iter().map(|c| col_target(c)).collect();
        let name = names.unique(&[&target, &cols.join("_")], "key");
        objects.push(Obj {
            kind: ObjKind::Unique,
            name: name.clone(),
            table: target.clone(),
            sql: format!(
                "ALTER TABLE {qt} ADD CONSTRAINT {} UNIQUE ({})",
                quote_ident(&name),
                sql::ident_list(&cols)
            ),
            what: format!("({})", cols.join(", ")),
            references: None,
            staged: Some(staged(&qt, &name, &cols, "UNIQUE")),
        });
    }
    for ch in &t.checks {
        match sql::translate(&ch.expr, &cx) {
            Ok(expr) => {
                let name = match &ch.name {
                    Some(n) if names.used.insert(fold(n)) => fold(n),
                    _ => match &ch.column {
                        Some(col) => names.unique(&[&target, &col_target(col)], "check"),
                        None => names.unique(&[&target], "check"),
                    },
                };
                objects.push(Obj {
                    kind: ObjKind::Check,
                    name: name.clone(),
                    table: target.clone(),
                    sql: format!(
                        "ALTER TABLE {qt} ADD CONSTRAINT {} CHECK ({expr})",
                        quote_ident(&name)
                    ),
                    what: format!("({expr})"),
                    references: None,
                    staged: None,
                });
            }
            Err(why) => plan.not_migrated.push(NotMigrated {
                kind: "check".into(),
                name: format!("{target}: CHECK ({})", sql::render(&ch.expr)),
                reason: why,
            }),
        }
    }
    for ix in &t.indexes {
        let name = fold(&ix.name);
        match translate_index(&ix.sql, &cx, &col_target) {
            Ok((unique, items, where_)) => {
                let w = where_.map(|w| format!(" WHERE {w}")).unwrap_or_default();
                objects.push(Obj {
                    kind: ObjKind::Index,
                    name: name.clone(),
                    table: target.clone(),
                    sql: format!(
                        "CREATE {}INDEX {} ON {qt} ({items}){w}",
                        if unique { "UNIQUE " } else { "" },
                        quote_ident(&name)
                    ),
                    what: format!("{}({items}){w}", if unique { "unique " } else { "" }),
                    references: None,
                    staged: None,
                });
            }
            Err(why) => plan.not_migrated.push(NotMigrated {
                kind: "index".into(),
                name: ix.name.clone(),
                reason: why,
            }),
        }
    }
    let identity = t.rowid_alias.as_ref().map(|col| {
        let max_id = facts.rowid_range.map(|(_, hi)| hi);
        let next = max_id.unwrap_or(0).max(t.seq.unwrap_or(0)).max(0) + 1;
        Identity {
            column: col_target(col),
            next,
            max_id,
            sqlite_sequence: t.seq,
        }
    });
    if let Some(id) = &identity {
        objects.push(Obj {
            kind: ObjKind::Identity,
            name: id.column.clone(),
            table: target.clone(),
            sql: format!(
                "ALTER TABLE {qt} ALTER COLUMN {} RESTART WITH {}",
                quote_ident(&id.column),
                id.next
            ),
            what: format!("next value {}", id.next),
            references: None,
            staged: None,
        });
    }
    Ok(TablePlan {
        source: t.name.clone(),
        target,
        rows: facts.rows,
        rowid_range: facts.rowid_range,
        key: if t.without_rowid {
            t.pk.clone()
        } else {
            Vec::new()
        },
        columns,
        identity,
        objects,
        reuse: false,
    })
}

/// The two statements of a staged PRIMARY KEY or UNIQUE constraint.
fn staged(qt: &str, name: &str, cols: &[String], what: &str) -> (String, String) {
    let n = quote_ident(name);
    (
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {n} ON {qt} ({})",
            sql::ident_list(cols)
        ),
        format!("ALTER TABLE {qt} ADD CONSTRAINT {n} {what} USING INDEX {n}"),
    )
}

/// Translate an index: (unique, items, WHERE).
fn translate_index(
    text: &str,
    cx: &ExprCtx,
    col_target: &dyn Fn(&str) -> String,
) -> Result<(bool, String, Option<String>), String> {
    let ix = sql::parse_create_index(text)?;
    let mut items = Vec::new();
    for it in &ix.items {
        let nocase = it
            .collate
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("NOCASE"));
        if let Some(c) = &it.collate {
            if !nocase && !c.eq_ignore_ascii_case("BINARY") {
                return Err(format!("COLLATE {c} has no Postgres equivalent"));
            }
        }
        let single = match it.expr.as_slice() {
            [t @ (Tok::Word(_) | Tok::Quoted(_))] => t.name().map(col_target),
            _ => None,
        };
        let mut s = match (&single, nocase) {
            (Some(col), false) => quote_ident(col),
            (Some(col), true) => format!("(lower({}))", quote_ident(col)),
            (None, _) => {
                let e = sql::translate(&it.expr, cx)?;
                if nocase {
                    format!("(lower({e}))")
                } else {
                    format!("({e})")
                }
            }
        };
        if it.desc {
            s.push_str(" DESC");
        }
        items.push(s);
    }
    let where_ = match &ix.where_ {
        Some(w) => Some(sql::translate(w, cx)?),
        None => None,
    };
    Ok((ix.unique, items.join(", "), where_))
}

/// A DEFAULT clause in Postgres terms for a column of type `ty`.
fn translate_default(
    raw: &str,
    declared: &str,
    ty: &PgType,
    cx: &ExprCtx,
) -> Result<Option<String>, String> {
    let toks = sql::tokenize(raw)?;
    if let Some(now) = sql::now_default(&toks) {
        let utc = "now() AT TIME ZONE 'UTC'";
        let text = |fmt: &str| format!("to_char({utc}, '{fmt}')");
        return Ok(Some(match (now, ty) {
            (NowDefault::Timestamp, PgType::Timestamptz) => "CURRENT_TIMESTAMP".into(),
            (NowDefault::Timestamp, PgType::Timestamp) => format!("({utc})"),
            (NowDefault::Date | NowDefault::Timestamp, PgType::Date) => {
                format!("(({utc})::date)")
            }
            (NowDefault::Date, PgType::Timestamptz) => {
                format!("(date_trunc('day', {utc}) AT TIME ZONE 'UTC')")
            }
            (NowDefault::Date, PgType::Timestamp) => format!("date_trunc('day', {utc})"),
            (NowDefault::Time, PgType::Time) => format!("(({utc})::time(0))"),
            (NowDefault::Epoch, PgType::BigInt | PgType::Integer) => {
                "floor(extract(epoch FROM now()))::bigint".into()
            }
            (NowDefault::Epoch, PgType::Timestamptz) => {
                "date_trunc('second', CURRENT_TIMESTAMP)".into()
            }
            (NowDefault::Timestamp, t) if t.is_text() => text("YYYY-MM-DD HH24:MI:SS"),
            (NowDefault::Date, t) if t.is_text() => text("YYYY-MM-DD"),
            (NowDefault::Time, t) if t.is_text() => text("HH24:MI:SS"),
            (NowDefault::Epoch, t) if t.is_text() => {
                "floor(extract(epoch FROM now()))::bigint::text".into()
            }
            (now, ty) => return Err(format!("a {now:?} default does not fit type {ty}")),
        }));
    }
    if let Some(lit) = sql::literal(&toks) {
        let owned = match lit {
            Literal::Null => return Ok(None),
            Literal::Integer(n) => Owned::Integer(n),
            Literal::Real(x) => Owned::Real(x),
            Literal::Text(s) => Owned::Text(s),
            Literal::Blob(b) => Owned::Blob(b),
        }
        .with_affinity(types::affinity(declared));
        let v = convert(owned.as_ref(), ty, false).map_err(|e| format!("the default {e}"))?;
        return Ok(Some(types::pg_literal(&v, ty)));
    }
    let e = sql::translate(&toks, cx)?;
    Ok(Some(format!("({e})")))
}

/// A misfit: a value that does not fit its column's type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Misfit {
    pub table: String,
    pub column: String,
    /// `rowid 17` or `(a, b) = (1, 'x')`.
    pub row: String,
    pub problem: String,
}

/// Misfits of one column: how many, and the first few.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MisfitGroup {
    pub table: String,
    pub column: String,
    pub count: u64,
    pub examples: Vec<Misfit>,
    pub ty: PgType,
}

/// The plan for humans.
pub fn render(plan: &Plan, misfits: &[MisfitGroup], skip: bool) -> String {
    use crate::migrate::thousands;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan: {} -> {} (schema {})",
        plan.source, plan.target, plan.schema
    );
    let _ = writeln!(
        s,
        "  {} tables, {} rows; names {}; DATETIME/TIMESTAMP as {}",
        plan.tables.len(),
        thousands(plan.rows()),
        if plan.keep_case {
            "kept as they are (--keep-case)"
        } else {
            "folded to lower case"
        },
        match plan.timestamp_type {
            TimestampType::Timestamptz =>
                "timestamptz (ISO text or unix seconds; text without an offset is UTC)",
            TimestampType::Timestamp =>
                "timestamp (ISO text or unix seconds; offsets converted to UTC)",
        }
    );
    if !plan.internal.is_empty() {
        let _ = writeln!(
            s,
            "  not copied (SQLite internals): {}",
            plan.internal.join(", ")
        );
    }
    for t in &plan.tables {
        let _ = writeln!(
            s,
            "\n  table {} -> {}.{}  ({} rows{})",
            t.source,
            plan.schema,
            t.target,
            thousands(t.rows),
            if t.reuse {
                ", existing table truncated and reused"
            } else {
                ""
            }
        );
        let w = t.columns.iter().map(|c| c.target.len()).max().unwrap_or(0);
        let wd = t
            .columns
            .iter()
            .map(|c| c.declared.len().max(6))
            .max()
            .unwrap_or(6);
        for c in &t.columns {
            let mut extra = String::new();
            if c.identity {
                extra.push_str(" identity");
            } else if c.not_null {
                extra.push_str(" NOT NULL");
            }
            if let Some(d) = &c.default {
                let _ = write!(extra, " DEFAULT {d}");
            }
            if !c.why.is_empty() {
                let _ = write!(extra, "  [{}]", c.why);
            }
            let decl = if c.declared.is_empty() {
                "(none)"
            } else {
                &c.declared
            };
            let _ = writeln!(s, "    {:<w$}  {:<wd$} -> {}{extra}", c.target, decl, c.ty);
        }
        for o in t.objects.iter().filter(|o| o.kind != ObjKind::Identity) {
            let _ = writeln!(s, "    {} {} {}", o.kind.label(), o.name, o.what);
        }
        if let Some(id) = &t.identity {
            let why = match (id.max_id, id.sqlite_sequence) {
                (m, Some(q)) if q > m.unwrap_or(0) => format!(
                    " (sqlite_sequence {q} > max({}) {})",
                    id.column,
                    m.unwrap_or(0)
                ),
                (Some(m), _) => format!(" (after max({}) {m})", id.column),
                _ => String::new(),
            };
            let _ = writeln!(s, "    {} continues at {}{why}", id.column, id.next);
        }
    }
    if !plan.foreign_keys.is_empty() {
        let _ = writeln!(s, "\n  foreign keys:");
        for f in &plan.foreign_keys {
            let _ = writeln!(s, "    {}.{} {}", f.table, f.name, f.what);
        }
    }
    if !plan.views.is_empty() {
        let _ = writeln!(s, "\n  views:");
        for v in &plan.views {
            let _ = writeln!(s, "    {} ({})", v.name, v.what);
        }
    }
    if !plan.not_migrated.is_empty() {
        let _ = writeln!(s, "\n  NOT migrated:");
        for n in &plan.not_migrated {
            let _ = writeln!(s, "    {} {}: {}", n.kind, n.name, n.reason);
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(s, "\n  notes:");
        for n in &plan.notes {
            let _ = writeln!(s, "    {n}");
        }
    }
    if !misfits.is_empty() {
        let total: u64 = misfits.iter().map(|m| m.count).sum();
        let _ = writeln!(
            s,
            "\n  values that do not fit their column ({} in {} column(s)){}:",
            thousands(total),
            misfits.len(),
            if skip {
                "; their rows will be REJECTED (--on-error skip)"
            } else {
                ""
            }
        );
        for g in misfits {
            let _ = writeln!(
                s,
                "    {}.{} ({}): {} value(s)",
                g.table,
                g.column,
                g.ty,
                thousands(g.count)
            );
            for m in &g.examples {
                let _ = writeln!(s, "      {}: {}", m.row, m.problem);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::sqlite_pg::source;

    fn schema_of(sql: &str) -> Schema {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(sql).unwrap();
        source::read_schema(&c).unwrap()
    }

    fn plan_of(sql: &str, keep_case: bool) -> Plan {
        let schema = schema_of(sql);
        let decisions = decide_types(&schema, &[], TimestampType::Timestamptz).unwrap();
        let types = decisions
            .into_iter()
            .map(|(t, ds)| {
                (
                    t,
                    ds.into_iter()
                        .map(|d| (d.ty.unwrap_or(PgType::Text), d.lenient, d.why))
                        .collect(),
                )
            })
            .collect();
        let facts = schema
            .tables
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    TableFacts {
                        rows: 10,
                        rowid_range: Some((1, 10)),
                    },
                )
            })
            .collect();
        build(
            &schema,
            &types,
            &facts,
            &PlanOptions {
                source: "a.db".into(),
                target: "postgres://u:***@h/db".into(),
                schema: "public".into(),
                keep_case,
                timestamp_type: TimestampType::Timestamptz,
            },
        )
        .unwrap()
    }

    const SHOP: &str = r#"
        CREATE TABLE "User Accounts" (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            Email TEXT NOT NULL UNIQUE,
            is_active BOOLEAN NOT NULL DEFAULT 1,
            created DATETIME DEFAULT CURRENT_TIMESTAMP,
            created_txt TEXT DEFAULT (datetime('now')),
            "select" INTEGER CHECK ("select" >= 0),
            CHECK (is_active IN (0, 1))
        );
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES "User Accounts"(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES orders,
            status TEXT DEFAULT 'new' CHECK (typeof(status) = 'text')
        );
        CREATE TABLE items (a INTEGER, b TEXT, qty INT DEFAULT 1, PRIMARY KEY (a, b)) WITHOUT ROWID;
        CREATE INDEX ix_live ON orders(user_id) WHERE status != 'gone';
        CREATE UNIQUE INDEX ix_email_ci ON "User Accounts"(Email COLLATE NOCASE);
        CREATE INDEX ix_expr ON orders(lower(status), id DESC);
        CREATE VIEW active AS SELECT id, Email FROM "User Accounts" WHERE is_active = 1;
        CREATE VIEW bad AS SELECT strftime('%Y', created) FROM "User Accounts";
        CREATE TRIGGER trg AFTER INSERT ON orders BEGIN SELECT 1; END;
        INSERT INTO "User Accounts"(id, Email) VALUES (5, 'a');
        DELETE FROM "User Accounts";
    "#;

    #[test]
    fn tables_columns_defaults_and_identity() {
        let p = plan_of(SHOP, false);
        let u = p.table("user accounts").unwrap();
        let ddl = u.create_sql("public");
        assert!(
            ddl.starts_with("CREATE TABLE public.\"user accounts\" ("),
            "{ddl}"
        );
        assert!(
            ddl.contains("id bigint GENERATED BY DEFAULT AS IDENTITY"),
            "{ddl}"
        );
        assert!(ddl.contains("email text NOT NULL"), "{ddl}");
        assert!(
            ddl.contains("is_active boolean NOT NULL DEFAULT true"),
            "{ddl}"
        );
        assert!(
            ddl.contains("created timestamptz DEFAULT CURRENT_TIMESTAMP"),
            "{ddl}"
        );
        assert!(
            ddl.contains("created_txt text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"),
            "{ddl}"
        );
        assert!(ddl.contains("\"select\" bigint"), "{ddl}");
        // sqlite_sequence (5) is past max(id) (10 in the facts) -> max wins
        let id = u.identity.as_ref().unwrap();
        assert_eq!((id.next, id.sqlite_sequence), (11, Some(5)));
        let kinds: Vec<(ObjKind, &str)> = u
            .objects
            .iter()
            .map(|o| (o.kind, o.name.as_str()))
            .collect();
        assert!(
            kinds.contains(&(ObjKind::PrimaryKey, "user accounts_pkey")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(ObjKind::Unique, "user accounts_email_key")),
            "{kinds:?}"
        );
        let checks: Vec<&str> = u
            .objects
            .iter()
            .filter(|o| o.kind == ObjKind::Check)
            .map(|o| o.sql.as_str())
            .collect();
        assert!(
            checks
                .iter()
                .any(|c| c.ends_with("CHECK (\"select\" >= 0)")),
            "{checks:?}"
        );
        assert!(
            checks
                .iter()
                .any(|c| c.ends_with("CHECK ((is_active)::integer IN (0, 1))")),
            "{checks:?}"
        );
        let ix = u.objects.iter().find(|o| o.name == "ix_email_ci").unwrap();
        assert_eq!(
            ix.sql,
            "CREATE UNIQUE INDEX ix_email_ci ON public.\"user accounts\" ((lower(email)))"
        );
    }

    #[test]
    fn keys_indexes_fks_views_and_what_is_left_out() {
        let p = plan_of(SHOP, false);
        let o = p.table("orders").unwrap();
        let sqls: Vec<&str> = o.objects.iter().map(|o| o.sql.as_str()).collect();
        assert!(
            sqls.contains(
                &"CREATE INDEX ix_live ON public.orders (user_id) WHERE status != 'gone'"
            ),
            "{sqls:?}"
        );
        assert!(
            sqls.contains(&"CREATE INDEX ix_expr ON public.orders ((lower(status)), id DESC)"),
            "{sqls:?}"
        );
        let items = p.table("items").unwrap();
        assert_eq!(items.key, vec!["a", "b"]);
        assert!(items
            .objects
            .iter()
            .any(|o| o.sql.ends_with("PRIMARY KEY (a, b)")));
        assert!(items.identity.is_none());
        let fks: Vec<&str> = p.foreign_keys.iter().map(|f| f.sql.as_str()).collect();
        assert!(fks.contains(&"ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.\"user accounts\" (id) ON DELETE CASCADE"), "{fks:?}");
        assert!(fks.contains(&"ALTER TABLE public.orders ADD CONSTRAINT orders_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.orders (id)"), "{fks:?}");
        assert_eq!(p.views.len(), 1);
        assert_eq!(
            p.views[0].sql,
            "CREATE VIEW public.active AS SELECT id, email FROM \"user accounts\" WHERE (is_active)::integer = 1"
        );
        let left: Vec<(&str, &str)> = p
            .not_migrated
            .iter()
            .map(|n| (n.kind.as_str(), n.reason.as_str()))
            .collect();
        assert!(
            left.iter()
                .any(|(k, r)| *k == "view" && r.contains("strftime")),
            "{left:?}"
        );
        assert!(
            left.iter()
                .any(|(k, r)| *k == "check" && r.contains("typeof")),
            "{left:?}"
        );
        assert!(left.iter().any(|(k, _)| *k == "trigger"), "{left:?}");
        assert_eq!(p.internal, vec!["sqlite_sequence"]);
        let text = render(&p, &[], false);
        assert!(text.contains("NOT migrated:"), "{text}");
    }

    #[test]
    fn keep_case_and_casts() {
        let p = plan_of(SHOP, true);
        assert!(p.table("User Accounts").is_some());
        assert!(p
            .table("User Accounts")
            .unwrap()
            .create_sql("s")
            .contains("\"Email\" text"));
        let schema = schema_of(SHOP);
        let e = decide_types(
            &schema,
            &["nope.x=text".parse().unwrap()],
            TimestampType::Timestamptz,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no table `nope`"), "{e}");
        let d = decide_types(
            &schema,
            &["orders.STATUS=varchar(10)".parse().unwrap()],
            TimestampType::Timestamptz,
        )
        .unwrap();
        assert_eq!(d["orders"][3].ty, Some(PgType::Varchar(10)));
        assert!(d["orders"][3].lenient);
        assert!("a.b=uuid"
            .parse::<Cast>()
            .unwrap_err()
            .contains("unknown type"));
        assert!("ab=text".parse::<Cast>().is_err());
    }

    #[test]
    fn failed_objects_move_to_not_migrated() {
        let mut p = plan_of(SHOP, false);
        let step = p.views[0].step();
        let mut failed = BTreeMap::new();
        failed.insert(step, "boom".to_string());
        p.drop_failed(&failed);
        assert!(p.views.is_empty());
        assert!(p
            .not_migrated
            .iter()
            .any(|n| n.name == "active" && n.reason.contains("boom")));
    }
}
