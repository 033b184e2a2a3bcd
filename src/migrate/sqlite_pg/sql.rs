//! Reading SQLite's SQL and writing Postgres SQL.
//!
//! SQLite exposes columns, keys, indexes and foreign keys through pragmas,
//! but CHECK constraints, collations, DEFERRABLE, index expressions, partial
//! index predicates and view bodies exist only in the `CREATE` text kept in
//! `sqlite_master`. This module tokenizes that text (SQLite's lexical rules:
//! `"x"`, `[x]` and `` `x` `` identifiers, `''` escapes, `X'..'` blobs,
//! comments), extracts what the pragmas do not give, and translates
//! expressions token by token into Postgres.
//!
//! Translation is deliberately conservative: identifiers are re-quoted for
//! Postgres, operators and a list of functions with the same meaning are
//! mapped (`ifnull` -> `coalesce`, `instr` -> `strpos`, `LIKE` -> `ILIKE`
//! since SQLite's LIKE ignores ASCII case, ...), and anything whose meaning
//! differs (`typeof`, `strftime`, `GLOB`, `->>`...) is refused with a reason
//! rather than guessed. Whatever is translated is then rehearsed on the
//! target inside a rolled-back transaction (see `ddl`), so the plan says
//! exactly what Postgres accepts.

use std::fmt::Write as _;

/// One SQLite token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An unquoted word: keyword or identifier.
    Word(String),
    /// A quoted identifier (`"x"`, `[x]`, `` `x` ``), unescaped.
    Quoted(String),
    /// A string literal, unescaped.
    Str(String),
    /// A blob literal: its hex digits.
    Blob(String),
    Num(String),
    /// `?`, `?1`, `:name`, `@name`, `$name`.
    Param(String),
    /// Operators and punctuation: `(`, `)`, `,`, `.`, `;`, `||`, `==`, ...
    Op(String),
}

impl Tok {
    /// Is this the keyword `kw` (case-insensitive)?
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    pub fn is_op(&self, op: &str) -> bool {
        matches!(self, Tok::Op(o) if o == op)
    }
    /// The name this token stands for, when it can be a name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) | Tok::Str(w) => Some(w),
            _ => None,
        }
    }
}

/// Split SQL text into tokens; comments and whitespace are dropped.
pub fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |start: usize, close: u8| -> Result<(String, usize), String> {
        let mut s = Vec::new();
        let mut j = start + 1;
        loop {
            if j >= b.len() {
                return Err(format!(
                    "unterminated quote starting at byte {start} in: {}",
                    excerpt(sql)
                ));
            }
            if b[j] == close {
                if close != b']' && j + 1 < b.len() && b[j + 1] == close {
                    s.push(close);
                    j += 2;
                    continue;
                }
                return Ok((String::from_utf8_lossy(&s).into_owned(), j + 1));
            }
            s.push(b[j]);
            j += 1;
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            b'\'' => {
                let (s, j) = quoted(i, b'\'')?;
                out.push(Tok::Str(s));
                i = j;
            }
            b'"' | b'`' => {
                let (s, j) = quoted(i, c)?;
                out.push(Tok::Quoted(s));
                i = j;
            }
            b'[' => {
                let (s, j) = quoted(i, b']')?;
                out.push(Tok::Quoted(s));
                i = j;
            }
            b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => {
                let (s, j) = quoted(i + 1, b'\'')?;
                if s.len() % 2 != 0 || !s.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(format!("malformed blob literal X'{s}'"));
                }
                out.push(Tok::Blob(s.to_ascii_lowercase()));
                i = j;
            }
            b'0'..=b'9' | b'.' if c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
                    i += 2;
                    while i < b.len() && b[i].is_ascii_hexdigit() {
                        i += 1;
                    }
                } else {
                    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                        let mut j = i + 1;
                        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                            j += 1;
                        }
                        if j < b.len() && b[j].is_ascii_digit() {
                            i = j;
                            while i < b.len() && b[i].is_ascii_digit() {
                                i += 1;
                            }
                        }
                    }
                }
                out.push(Tok::Num(sql[start..i].to_string()));
            }
            b'?' | b':' | b'@' | b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Param(sql[start..i].to_string()));
            }
            _ if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i] == b'_'
                        || b[i] == b'$'
                        || b[i].is_ascii_alphanumeric()
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                out.push(Tok::Word(sql[start..i].to_string()));
            }
            _ => {
                let two = sql.get(i..i + 2).unwrap_or("");
                let three = sql.get(i..i + 3).unwrap_or("");
                let op = if three == "->>" {
                    three
                } else if matches!(
                    two,
                    "||" | "==" | "!=" | "<>" | "<=" | ">=" | "<<" | ">>" | "->"
                ) {
                    two
                } else {
                    match c {
                        b'(' | b')' | b',' | b';' | b'.' | b'=' | b'<' | b'>' | b'+' | b'-'
                        | b'*' | b'/' | b'%' | b'&' | b'|' | b'~' => &sql[i..i + 1],
                        _ => {
                            return Err(format!(
                                "unexpected character {:?} in: {}",
                                c as char,
                                excerpt(sql)
                            ))
                        }
                    }
                };
                out.push(Tok::Op(op.to_string()));
                i += op.len();
            }
        }
    }
    Ok(out)
}

fn excerpt(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}...", one_line.chars().take(80).collect::<String>())
    } else {
        one_line
    }
}

/// Index of the `)` matching the `(` at `open`.
pub fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Split at top-level commas.
pub fn split_commas(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
        } else if depth == 0 && t.is_op(",") {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    if start < toks.len() {
        parts.push(&toks[start..]);
    }
    parts
}

/// Render tokens back as SQLite text (for messages and plans).
pub fn render(toks: &[Tok]) -> String {
    let mut s = String::new();
    let mut prev_open = true;
    let mut prev_word = false;
    for t in toks {
        let text = match t {
            Tok::Word(w) | Tok::Num(w) | Tok::Param(w) => w.clone(),
            Tok::Quoted(q) => format!("\"{}\"", q.replace('"', "\"\"")),
            Tok::Str(v) => format!("'{}'", v.replace('\'', "''")),
            Tok::Blob(h) => format!("X'{h}'"),
            Tok::Op(o) => o.clone(),
        };
        let call = t.is_op("(") && prev_word;
        let tight = call || matches!(t, Tok::Op(o) if o == ")" || o == "," || o == ".");
        if !s.is_empty() && !prev_open && !tight {
            s.push(' ');
        }
        prev_open = matches!(t, Tok::Op(o) if o == "(" || o == ".");
        prev_word = matches!(t, Tok::Word(w) if !is_pass_keyword(w));
        s.push_str(&text);
    }
    s
}

/// A CHECK constraint found in a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDef {
    pub name: Option<String>,
    /// Set for a column constraint.
    pub column: Option<String>,
    pub expr: Vec<Tok>,
}

/// A generated column (`GENERATED ALWAYS AS (expr) [STORED|VIRTUAL]`).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedDef {
    pub column: String,
    pub expr: Vec<Tok>,
}

/// What a `CREATE TABLE` says that the pragmas do not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableSql {
    pub checks: Vec<CheckDef>,
    /// (column, collation) for columns with an explicit COLLATE.
    pub collations: Vec<(String, String)>,
    /// Foreign keys declared DEFERRABLE INITIALLY DEFERRED: (from columns, parent table).
    pub deferred_fks: Vec<(Vec<String>, String)>,
    /// Named foreign keys: (from columns, parent table, constraint name).
    pub fk_names: Vec<(Vec<String>, String, String)>,
    pub generated: Vec<GeneratedDef>,
}

const CONSTRAINT_START: &[&str] = &[
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];

/// Parse the column and constraint list of a `CREATE TABLE` statement.
pub fn parse_create_table(sql: &str) -> Result<TableSql, String> {
    let toks = tokenize(sql)?;
    let mut out = TableSql::default();
    let Some(open) = toks.iter().position(|t| t.is_op("(")) else {
        return Ok(out); // CREATE TABLE ... AS SELECT: nothing declared
    };
    if toks[..open].iter().any(|t| t.is("AS")) {
        return Ok(out);
    }
    let close = matching_paren(&toks, open).ok_or("unbalanced parentheses")?;
    for item in split_commas(&toks[open + 1..close]) {
        if item.is_empty() {
            continue;
        }
        let is_table_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|k| item[0].is(k));
        if is_table_constraint {
            parse_constraints(item, None, &mut out);
        } else {
            let col = item[0].name().unwrap_or_default().to_string();
            let first = item[1..]
                .iter()
                .position(|t| CONSTRAINT_START.iter().any(|k| t.is(k)))
                .map(|p| p + 1)
                .unwrap_or(item.len());
            parse_constraints(&item[first..], Some(&col), &mut out);
        }
    }
    Ok(out)
}

fn paren_group(toks: &[Tok], at: usize) -> Option<(&[Tok], usize)> {
    if !toks.get(at)?.is_op("(") {
        return None;
    }
    let close = matching_paren(toks, at)?;
    Some((&toks[at + 1..close], close + 1))
}

fn names_in(toks: &[Tok]) -> Vec<String> {
    split_commas(toks)
        .iter()
        .filter_map(|p| p.first().and_then(|t| t.name()).map(str::to_string))
        .collect()
}

/// Walk a run of constraints (of a column when `column` is set).
fn parse_constraints(toks: &[Tok], column: Option<&str>, out: &mut TableSql) {
    let mut i = 0;
    let mut name: Option<String> = None;
    let mut fk_cols: Vec<String> = column.map(|c| vec![c.to_string()]).unwrap_or_default();
    while i < toks.len() {
        let t = &toks[i];
        if t.is("CONSTRAINT") {
            name = toks.get(i + 1).and_then(|t| t.name()).map(str::to_string);
            i += 2;
            continue;
        }
        if t.is("CHECK") {
            if let Some((expr, next)) = paren_group(toks, i + 1) {
                out.checks.push(CheckDef {
                    name: name.take(),
                    column: column.map(str::to_string),
                    expr: expr.to_vec(),
                });
                i = next;
                continue;
            }
        }
        if t.is("COLLATE") {
            if let (Some(c), Some(coll)) = (column, toks.get(i + 1).and_then(|t| t.name())) {
                out.collations.push((c.to_string(), coll.to_string()));
            }
            i += 2;
            continue;
        }
        if t.is("FOREIGN") && toks.get(i + 1).is_some_and(|t| t.is("KEY")) {
            if let Some((cols, next)) = paren_group(toks, i + 2) {
                fk_cols = names_in(cols);
                i = next;
                continue;
            }
        }
        if t.is("REFERENCES") {
            let parent = toks
                .get(i + 1)
                .and_then(|t| t.name())
                .unwrap_or_default()
                .to_string();
            if let Some(n) = name.take() {
                out.fk_names.push((fk_cols.clone(), parent.clone(), n));
            }
            // the clause runs until the next constraint keyword
            let mut j = i + 2;
            let mut deferred = false;
            // NOT starts the next constraint unless it is NOT DEFERRABLE
            let ends_clause = |j: usize| {
                [
                    "CONSTRAINT",
                    "CHECK",
                    "PRIMARY",
                    "UNIQUE",
                    "COLLATE",
                    "DEFAULT",
                    "NULL",
                ]
                .iter()
                .any(|k| toks[j].is(k))
                    || (toks[j].is("NOT") && !toks.get(j + 1).is_some_and(|t| t.is("DEFERRABLE")))
            };
            while j < toks.len() && !ends_clause(j) {
                if toks[j].is("DEFERRABLE")
                    && toks.get(j + 1).is_some_and(|t| t.is("INITIALLY"))
                    && toks.get(j + 2).is_some_and(|t| t.is("DEFERRED"))
                    && !toks.get(j.wrapping_sub(1)).is_some_and(|t| t.is("NOT"))
                {
                    deferred = true;
                }
                j += 1;
            }
            if deferred {
                out.deferred_fks.push((fk_cols.clone(), parent));
            }
            i = j;
            continue;
        }
        if t.is("GENERATED") || t.is("AS") {
            let mut j = i;
            while j < toks.len() && !toks[j].is_op("(") {
                j += 1;
            }
            if let (Some(c), Some((expr, next))) = (column, paren_group(toks, j)) {
                out.generated.push(GeneratedDef {
                    column: c.to_string(),
                    expr: expr.to_vec(),
                });
                i = next;
                continue;
            }
        }
        if t.is("DEFAULT") {
            // skip the default value (a literal, a signed number or a group)
            i += 1;
            if toks.get(i).is_some_and(|t| t.is_op("(")) {
                i = matching_paren(toks, i).map(|c| c + 1).unwrap_or(toks.len());
            } else {
                if toks.get(i).is_some_and(|t| t.is_op("-") || t.is_op("+")) {
                    i += 1;
                }
                i += 1;
            }
            continue;
        }
        if t.is_op("(") {
            i = matching_paren(toks, i).map(|c| c + 1).unwrap_or(toks.len());
            continue;
        }
        if t.is("PRIMARY") || t.is("UNIQUE") || t.is("NOT") || t.is("NULL") {
            name = None;
        }
        i += 1;
    }
}

/// One column or expression of an index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexItem {
    pub expr: Vec<Tok>,
    pub collate: Option<String>,
    pub desc: bool,
}

/// A `CREATE INDEX` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSql {
    pub unique: bool,
    pub items: Vec<IndexItem>,
    pub where_: Option<Vec<Tok>>,
}

/// Parse `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (items) [WHERE expr]`.
pub fn parse_create_index(sql: &str) -> Result<IndexSql, String> {
    let toks = tokenize(sql)?;
    let unique = toks.get(1).is_some_and(|t| t.is("UNIQUE"));
    let on = toks
        .iter()
        .position(|t| t.is("ON"))
        .ok_or("no ON in CREATE INDEX")?;
    let open = toks[on..]
        .iter()
        .position(|t| t.is_op("("))
        .map(|p| p + on)
        .ok_or("no column list in CREATE INDEX")?;
    let close = matching_paren(&toks, open).ok_or("unbalanced parentheses")?;
    let mut items = Vec::new();
    for part in split_commas(&toks[open + 1..close]) {
        let mut expr = part.to_vec();
        let mut desc = false;
        let mut collate = None;
        if expr.last().is_some_and(|t| t.is("DESC") || t.is("ASC")) {
            desc = expr.last().is_some_and(|t| t.is("DESC"));
            expr.pop();
        }
        if expr.len() >= 2 && expr[expr.len() - 2].is("COLLATE") {
            collate = expr.last().and_then(|t| t.name()).map(str::to_string);
            expr.truncate(expr.len() - 2);
        }
        items.push(IndexItem {
            expr,
            collate,
            desc,
        });
    }
    let where_ = toks[close + 1..]
        .iter()
        .position(|t| t.is("WHERE"))
        .map(|p| {
            let mut w = toks[close + 2 + p..].to_vec();
            if w.last().is_some_and(|t| t.is_op(";")) {
                w.pop();
            }
            w
        });
    Ok(IndexSql {
        unique,
        items,
        where_,
    })
}

/// A `CREATE VIEW` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSql {
    pub columns: Vec<String>,
    pub select: Vec<Tok>,
}

pub fn parse_create_view(sql: &str) -> Result<ViewSql, String> {
    let toks = tokenize(sql)?;
    let view = toks
        .iter()
        .position(|t| t.is("VIEW"))
        .ok_or("no VIEW keyword")?;
    let as_ = toks[view..]
        .iter()
        .position(|t| t.is("AS"))
        .map(|p| p + view)
        .ok_or("no AS in CREATE VIEW")?;
    let columns = toks[view..as_]
        .iter()
        .position(|t| t.is_op("("))
        .and_then(|p| paren_group(&toks[view..as_], p))
        .map(|(cols, _)| names_in(cols))
        .unwrap_or_default();
    let mut select = toks[as_ + 1..].to_vec();
    if select.last().is_some_and(|t| t.is_op(";")) {
        select.pop();
    }
    Ok(ViewSql { columns, select })
}

/// Postgres keywords that cannot be used as bare column or table names
/// (reserved, type/function-name and column-name keywords of Postgres 15).
const PG_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Quote a Postgres identifier when it needs it (like Postgres'
/// `quote_ident`): anything but `[a-z_][a-z0-9_$]*` that is not a keyword.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !PG_KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A Postgres string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What a translated expression may refer to.
pub struct ExprCtx<'a> {
    /// Map a source identifier (as written, any case) to the target name.
    pub ident: &'a dyn Fn(&str) -> String,
    /// Is this source column (any case) stored as boolean in the target?
    /// Such references are cast back to integer, the way SQLite sees them,
    /// so `flag IN (0, 1)` or `flag = 1` keep their meaning.
    pub is_bool: &'a dyn Fn(&str) -> bool,
}

/// SQL keywords that pass through unchanged (upper-cased).
const PASS_KEYWORDS: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AS",
    "DISTINCT",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "CROSS",
    "NATURAL",
    "ON",
    "USING",
    "UNION",
    "ALL",
    "INTERSECT",
    "EXCEPT",
    "ASC",
    "DESC",
    "EXISTS",
    "TRUE",
    "FALSE",
    "ESCAPE",
    "ISNULL",
    "NOTNULL",
    "WITH",
    "RECURSIVE",
    "VALUES",
    "NULLS",
    "FIRST",
    "LAST",
    "COLLATE",
    "OVER",
    "PARTITION",
    "ROWS",
    "RANGE",
    "UNBOUNDED",
    "PRECEDING",
    "FOLLOWING",
    "CURRENT",
    "ROW",
    "FILTER",
];

/// Functions with the same name and meaning in both databases.
const SAME_FUNCTIONS: &[&str] = &[
    "abs", "coalesce", "nullif", "lower", "upper", "length", "trim", "ltrim", "rtrim", "replace",
    "substr", "count", "sum", "avg", "sign",
];

/// Translate a SQLite expression (or SELECT) into Postgres SQL, or say why
/// it cannot be.
pub fn translate(toks: &[Tok], cx: &ExprCtx) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let next_is_paren = toks.get(i + 1).is_some_and(|n| n.is_op("("));
        let prev_is_dot = i > 0 && toks[i - 1].is_op(".");
        let next_is_dot = toks.get(i + 1).is_some_and(|n| n.is_op("."));
        match t {
            Tok::Word(w) if next_is_paren && !is_pass_keyword(w) && !prev_is_dot => {
                let close = matching_paren(toks, i + 1).ok_or("unbalanced parentheses")?;
                let args = &toks[i + 2..close];
                out.push(translate_call(w, args, cx)?);
                i = close + 1;
                continue;
            }
            Tok::Word(w) if !prev_is_dot && !next_is_dot && is_pass_keyword(w) => {
                let kw = w.to_ascii_uppercase();
                match kw.as_str() {
                    "IS" => {
                        let not = toks.get(i + 1).is_some_and(|n| n.is("NOT"));
                        let after = toks.get(i + 1 + usize::from(not));
                        let plain = after
                            .is_some_and(|a| a.is("NULL") || a.is("TRUE") || a.is("FALSE"))
                            || after.is_some_and(|a| a.is("DISTINCT"));
                        if plain {
                            out.push("IS".into());
                        } else {
                            out.push(if not {
                                "IS DISTINCT FROM".into()
                            } else {
                                "IS NOT DISTINCT FROM".into()
                            });
                            i += 1 + usize::from(not);
                            continue;
                        }
                    }
                    "NOT"
                        if toks.get(i + 1).is_some_and(|n| n.is("NULL"))
                            && !(i > 0 && toks[i - 1].is("IS")) =>
                    {
                        out.push("IS NOT NULL".into());
                        i += 2;
                        continue;
                    }
                    "COLLATE" => {
                        let coll = toks.get(i + 1).and_then(|c| c.name()).unwrap_or_default();
                        if coll.eq_ignore_ascii_case("BINARY") {
                            out.push("COLLATE \"C\"".into());
                        } else {
                            return Err(format!("COLLATE {coll} has no Postgres equivalent"));
                        }
                        i += 2;
                        continue;
                    }
                    _ => out.push(kw),
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("LIKE") => out.push("ILIKE".into()),
            Tok::Word(w)
                if ["GLOB", "REGEXP", "MATCH"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                return Err(format!(
                    "operator {} has no Postgres equivalent",
                    w.to_uppercase()
                ))
            }
            Tok::Word(w)
                if !prev_is_dot
                    && ["CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                // SQLite yields UTC text in these formats.
                let fmt = match w.to_ascii_uppercase().as_str() {
                    "CURRENT_TIMESTAMP" => "YYYY-MM-DD HH24:MI:SS",
                    "CURRENT_DATE" => "YYYY-MM-DD",
                    _ => "HH24:MI:SS",
                };
                out.push(format!("to_char(now() AT TIME ZONE 'UTC', '{fmt}')"));
            }
            Tok::Word(w) | Tok::Quoted(w) => {
                let name = (cx.ident)(w);
                let q = quote_ident(&name);
                if !next_is_dot && (cx.is_bool)(w) {
                    // qualified or not, the column is a boolean in Postgres
                    if prev_is_dot {
                        // wrap the whole qualified reference
                        let qual = out.pop().unwrap_or_default(); // "."
                        let table = out.pop().unwrap_or_default();
                        out.push(format!("({table}{qual}{q})::integer"));
                    } else {
                        out.push(format!("({q})::integer"));
                    }
                } else {
                    out.push(q);
                }
            }
            Tok::Str(s) => out.push(quote_literal(s)),
            Tok::Blob(h) => out.push(format!("'\\x{h}'::bytea")),
            Tok::Num(n) => {
                if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
                    let v = u64::from_str_radix(hex, 16)
                        .map_err(|_| format!("hex literal {n} is out of range"))?;
                    out.push((v as i64).to_string());
                } else {
                    out.push(n.clone());
                }
            }
            Tok::Param(p) => return Err(format!("parameter {p} in a schema expression")),
            Tok::Op(o) => match o.as_str() {
                "==" => out.push("=".into()),
                "->" | "->>" => return Err(format!("JSON operator {o} differs in Postgres")),
                ";" => {}
                _ => out.push(o.clone()),
            },
        }
        i += 1;
    }
    Ok(join_sql(&out))
}

fn is_pass_keyword(w: &str) -> bool {
    PASS_KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// Join translated pieces with spaces, tight around `.`, `(` and before `)`/`,`.
fn join_sql(parts: &[String]) -> String {
    let mut s = String::new();
    let mut prev = "";
    for p in parts {
        let tight =
            p == ")" || p == "," || p == "." || prev == "(" || prev == "." || prev.is_empty();
        if !tight {
            s.push(' ');
        }
        s.push_str(p);
        prev = p;
    }
    s
}

fn translate_args(args: &[Tok], cx: &ExprCtx) -> Result<Vec<String>, String> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    split_commas(args)
        .into_iter()
        .map(|a| translate(a, cx))
        .collect()
}

/// A SQLite type name in `CAST(x AS type)` as the Postgres type SQLite's
/// affinity rules make of it.
fn cast_type(words: &[Tok]) -> Result<String, String> {
    let name: String = words
        .iter()
        .filter_map(|t| t.name())
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    Ok(if name.contains("INT") {
        "bigint"
    } else if name.contains("CHAR") || name.contains("CLOB") || name.contains("TEXT") {
        "text"
    } else if name.contains("BLOB") {
        "bytea"
    } else if name.contains("REAL") || name.contains("FLOA") || name.contains("DOUB") {
        "double precision"
    } else if name.contains("NUMERIC") || name.contains("DECIMAL") {
        "numeric"
    } else {
        return Err(format!("CAST to {name} has no exact Postgres equivalent"));
    }
    .to_string())
}

fn translate_call(name: &str, args: &[Tok], cx: &ExprCtx) -> Result<String, String> {
    let lname = name.to_ascii_lowercase();
    let now_arg = |args: &[Tok]| {
        args.len() == 1 && matches!(&args[0], Tok::Str(s) if s.eq_ignore_ascii_case("now"))
    };
    match lname.as_str() {
        "cast" => {
            let as_ = args
                .iter()
                .rposition(|t| t.is("AS"))
                .ok_or("CAST without AS")?;
            let inner = translate(&args[..as_], cx)?;
            Ok(format!("CAST({inner} AS {})", cast_type(&args[as_ + 1..])?))
        }
        _ if SAME_FUNCTIONS.contains(&lname.as_str()) => {
            let a = translate_args(args, cx)?;
            let distinct = args.first().is_some_and(|t| t.is("DISTINCT"));
            if distinct {
                // count(DISTINCT x): translate() keeps DISTINCT inside the first arg
                return Ok(format!("{lname}({})", a.join(", ")));
            }
            if args.len() == 1 && args[0].is_op("*") {
                return Ok(format!("{lname}(*)"));
            }
            Ok(format!("{lname}({})", a.join(", ")))
        }
        "ifnull" => Ok(format!(
            "coalesce({})",
            translate_args(args, cx)?.join(", ")
        )),
        "instr" => {
            let a = translate_args(args, cx)?;
            if a.len() != 2 {
                return Err("instr() takes two arguments".into());
            }
            Ok(format!("strpos({}, {})", a[0], a[1]))
        }
        "substring" => Ok(format!("substr({})", translate_args(args, cx)?.join(", "))),
        "max" | "min" => {
            let a = translate_args(args, cx)?;
            if a.len() >= 2 {
                let f = if lname == "max" { "greatest" } else { "least" };
                Ok(format!("{f}({})", a.join(", ")))
            } else {
                Ok(format!("{lname}({})", a.join(", ")))
            }
        }
        "round" => {
            let a = translate_args(args, cx)?;
            match a.len() {
                1 => Ok(format!("round({})", a[0])),
                2 => Ok(format!("round(({})::numeric, {})", a[0], a[1])),
                _ => Err("round() takes one or two arguments".into()),
            }
        }
        "group_concat" => {
            let a = translate_args(args, cx)?;
            match a.len() {
                1 => Ok(format!("string_agg(({})::text, ',')", a[0])),
                2 => Ok(format!("string_agg(({})::text, {})", a[0], a[1])),
                _ => Err("group_concat() takes one or two arguments".into()),
            }
        }
        "total" => {
            let a = translate_args(args, cx)?;
            Ok(format!(
                "coalesce(sum({})::double precision, 0.0)",
                a.join(", ")
            ))
        }
        "datetime" if now_arg(args) => {
            Ok("to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')".into())
        }
        "date" if now_arg(args) => Ok("to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')".into()),
        "time" if now_arg(args) => Ok("to_char(now() AT TIME ZONE 'UTC', 'HH24:MI:SS')".into()),
        "unixepoch" if args.is_empty() || now_arg(args) => {
            Ok("floor(extract(epoch FROM now()))::bigint".into())
        }
        "strftime"
            if args.len() == 2
                && matches!(&args[0], Tok::Str(f) if f == "%s")
                && matches!(&args[1], Tok::Str(s) if s.eq_ignore_ascii_case("now")) =>
        {
            // strftime('%s','now') is text in SQLite
            Ok("floor(extract(epoch FROM now()))::bigint::text".into())
        }
        _ => Err(format!("function {lname}() has no Postgres translation")),
    }
}

/// A DEFAULT that is "now" in one of SQLite's spellings, and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NowDefault {
    /// CURRENT_TIMESTAMP, datetime('now'): 'YYYY-MM-DD HH:MM:SS' UTC
    Timestamp,
    /// CURRENT_DATE, date('now')
    Date,
    /// CURRENT_TIME, time('now')
    Time,
    /// strftime('%s','now'), unixepoch(): seconds since 1970
    Epoch,
}

/// Recognise the "now" defaults (optionally parenthesised).
pub fn now_default(toks: &[Tok]) -> Option<NowDefault> {
    let mut t = toks;
    while t.len() >= 2 && t[0].is_op("(") && matching_paren(t, 0) == Some(t.len() - 1) {
        t = &t[1..t.len() - 1];
    }
    let is_now =
        |a: &[Tok]| a.len() == 1 && matches!(&a[0], Tok::Str(s) if s.eq_ignore_ascii_case("now"));
    match t {
        [w] if w.is("CURRENT_TIMESTAMP") => Some(NowDefault::Timestamp),
        [w] if w.is("CURRENT_DATE") => Some(NowDefault::Date),
        [w] if w.is("CURRENT_TIME") => Some(NowDefault::Time),
        [f, open, rest @ ..] if open.is_op("(") && rest.last().is_some_and(|c| c.is_op(")")) => {
            let args = &rest[..rest.len() - 1];
            if f.is("datetime") && is_now(args) {
                Some(NowDefault::Timestamp)
            } else if f.is("date") && is_now(args) {
                Some(NowDefault::Date)
            } else if f.is("time") && is_now(args) {
                Some(NowDefault::Time)
            } else if (f.is("unixepoch") && (args.is_empty() || is_now(args)))
                || (f.is("strftime")
                    && args.len() == 3
                    && matches!(&args[0], Tok::Str(s) if s == "%s")
                    && is_now(&args[2..]))
            {
                Some(NowDefault::Epoch)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A literal DEFAULT: what SQLite stores for it before affinity applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Recognise a literal default: `NULL`, `TRUE`/`FALSE`, a signed number, a
/// string or a blob, optionally parenthesised.
pub fn literal(toks: &[Tok]) -> Option<Literal> {
    let mut t = toks;
    while t.len() >= 2 && t[0].is_op("(") && matching_paren(t, 0) == Some(t.len() - 1) {
        t = &t[1..t.len() - 1];
    }
    let (neg, t) = match t {
        [s, rest @ ..] if s.is_op("-") => (true, rest),
        [s, rest @ ..] if s.is_op("+") => (false, rest),
        _ => (false, t),
    };
    match t {
        [w] if w.is("NULL") && !neg => Some(Literal::Null),
        [w] if w.is("TRUE") && !neg => Some(Literal::Integer(1)),
        [w] if w.is("FALSE") && !neg => Some(Literal::Integer(0)),
        [Tok::Str(s)] if !neg => Some(Literal::Text(s.clone())),
        [Tok::Blob(h)] if !neg => hex::decode(h).ok().map(Literal::Blob),
        [Tok::Num(n)] => {
            let sign = if neg { "-" } else { "" };
            if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
                let v = u64::from_str_radix(hex, 16).ok()? as i64;
                return Some(Literal::Integer(if neg { v.wrapping_neg() } else { v }));
            }
            let text = format!("{sign}{n}");
            if let Ok(v) = text.parse::<i64>() {
                Some(Literal::Integer(v))
            } else {
                text.parse::<f64>().ok().map(Literal::Real)
            }
        }
        _ => None,
    }
}

/// `"a", "b"` for a column list.
pub fn ident_list(names: &[String]) -> String {
    let mut s = String::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{}", quote_ident(n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx_lower() -> (impl Fn(&str) -> String, impl Fn(&str) -> bool) {
        (
            |s: &str| s.to_lowercase(),
            |s: &str| s.eq_ignore_ascii_case("is_active"),
        )
    }

    fn tr(sql: &str) -> Result<String, String> {
        let (ident, is_bool) = cx_lower();
        translate(
            &tokenize(sql).unwrap(),
            &ExprCtx {
                ident: &ident,
                is_bool: &is_bool,
            },
        )
    }

    #[test]
    fn tokenizes_sqlite_quoting_rules() {
        let t = tokenize(
            r#"SELECT "a""b", [c d], `e`, 'it''s', X'0aFF', 1.5e3, .5 -- x
            /* y */ FROM t WHERE a == ?1"#,
        )
        .unwrap();
        assert_eq!(t[1], Tok::Quoted("a\"b".into()));
        assert_eq!(t[3], Tok::Quoted("c d".into()));
        assert_eq!(t[5], Tok::Quoted("e".into()));
        assert_eq!(t[7], Tok::Str("it's".into()));
        assert_eq!(t[9], Tok::Blob("0aff".into()));
        assert_eq!(t[11], Tok::Num("1.5e3".into()));
        assert_eq!(t[13], Tok::Num(".5".into()));
        assert!(t[14].is("FROM"));
        assert_eq!(t[18], Tok::Op("==".into()));
        assert_eq!(t[19], Tok::Param("?1".into()));
        assert!(tokenize("'open").is_err());
    }

    #[test]
    fn create_table_checks_collations_and_fks() {
        let sql = r#"CREATE TABLE "Order Items" (
            id INTEGER PRIMARY KEY,
            "select" TEXT NOT NULL DEFAULT (datetime('now')) CHECK (length("select") > 0),
            status TEXT COLLATE NOCASE CONSTRAINT status_ok CHECK (status IN ('a','b')),
            parent INTEGER REFERENCES "Order Items"(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            total AS (id * 2) STORED,
            CONSTRAINT fk_other FOREIGN KEY (parent, id) REFERENCES other(a, b),
            CHECK (id > 0)
        )"#;
        let t = parse_create_table(sql).unwrap();
        assert_eq!(t.checks.len(), 3);
        assert_eq!(t.checks[0].column.as_deref(), Some("select"));
        assert_eq!(t.checks[1].name.as_deref(), Some("status_ok"));
        assert_eq!(t.checks[2].column, None);
        assert_eq!(render(&t.checks[2].expr), "id > 0");
        assert_eq!(t.collations, vec![("status".into(), "NOCASE".into())]);
        assert_eq!(
            t.deferred_fks,
            vec![(vec!["parent".to_string()], "Order Items".to_string())]
        );
        assert_eq!(
            t.fk_names,
            vec![(
                vec!["parent".to_string(), "id".to_string()],
                "other".to_string(),
                "fk_other".to_string()
            )]
        );
        assert_eq!(t.generated[0].column, "total");
        assert_eq!(render(&t.generated[0].expr), "id * 2");
    }

    #[test]
    fn create_index_items_and_where() {
        let i = parse_create_index(
            "CREATE UNIQUE INDEX IF NOT EXISTS ix ON t (lower(email), b COLLATE NOCASE DESC) WHERE deleted IS NULL",
        )
        .unwrap();
        assert!(i.unique);
        assert_eq!(render(&i.items[0].expr), "lower(email)");
        assert_eq!(i.items[1].collate.as_deref(), Some("NOCASE"));
        assert!(i.items[1].desc);
        assert_eq!(render(i.where_.as_ref().unwrap()), "deleted IS NULL");
    }

    #[test]
    fn views_parse_with_column_lists() {
        let v = parse_create_view("CREATE VIEW v (a, b) AS SELECT x, y FROM t;").unwrap();
        assert_eq!(v.columns, vec!["a", "b"]);
        assert_eq!(render(&v.select), "SELECT x, y FROM t");
    }

    #[test]
    fn expressions_translate_or_say_why_not() {
        assert_eq!(
            tr("status IN ('a','b') AND qty == 1").unwrap(),
            "status IN ('a', 'b') AND qty = 1"
        );
        assert_eq!(
            tr("is_active IN (0,1)").unwrap(),
            "(is_active)::integer IN (0, 1)"
        );
        assert_eq!(tr("u.is_active = 1").unwrap(), "(u.is_active)::integer = 1");
        assert_eq!(tr("\"Select\" > 0").unwrap(), "\"select\" > 0");
        assert_eq!(tr("\"my col\" > 0").unwrap(), "\"my col\" > 0");
        assert_eq!(
            tr("ifnull(a, 0) + instr(b, 'x')").unwrap(),
            "coalesce(a, 0) + strpos(b, 'x')"
        );
        assert_eq!(tr("max(a, b)").unwrap(), "greatest(a, b)");
        assert_eq!(tr("a IS b").unwrap(), "a IS NOT DISTINCT FROM b");
        assert_eq!(tr("a IS NOT NULL").unwrap(), "a IS NOT NULL");
        assert_eq!(tr("a NOT NULL").unwrap(), "a IS NOT NULL");
        assert_eq!(tr("email LIKE '%@%'").unwrap(), "email ILIKE '%@%'");
        assert_eq!(tr("CAST(a AS INTEGER)").unwrap(), "CAST(a AS bigint)");
        assert_eq!(tr("x = X'00ff'").unwrap(), "x = '\\x00ff'::bytea");
        assert_eq!(tr("count(*)").unwrap(), "count(*)");
        assert!(tr("typeof(a) = 'integer'").unwrap_err().contains("typeof"));
        assert!(tr("a GLOB 'x*'").unwrap_err().contains("GLOB"));
        assert!(tr("strftime('%Y', d)").unwrap_err().contains("strftime"));
    }

    #[test]
    fn defaults_are_recognised() {
        let t = |s: &str| tokenize(s).unwrap();
        assert_eq!(
            now_default(&t("CURRENT_TIMESTAMP")),
            Some(NowDefault::Timestamp)
        );
        assert_eq!(
            now_default(&t("(datetime('now'))")),
            Some(NowDefault::Timestamp)
        );
        assert_eq!(
            now_default(&t("(strftime('%s','now'))")),
            Some(NowDefault::Epoch)
        );
        assert_eq!(now_default(&t("'now'")), None);
        assert_eq!(literal(&t("-1")), Some(Literal::Integer(-1)));
        assert_eq!(literal(&t("(1.5)")), Some(Literal::Real(1.5)));
        assert_eq!(literal(&t("'it''s'")), Some(Literal::Text("it's".into())));
        assert_eq!(literal(&t("X'00'")), Some(Literal::Blob(vec![0])));
        assert_eq!(literal(&t("NULL")), Some(Literal::Null));
        assert_eq!(literal(&t("TRUE")), Some(Literal::Integer(1)));
        assert_eq!(literal(&t("a + 1")), None);
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("Mixed"), "\"Mixed\"");
        assert_eq!(quote_ident("my col"), "\"my col\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1abc"), "\"1abc\"");
        assert_eq!(quote_ident("user"), "\"user\"");
    }
}
