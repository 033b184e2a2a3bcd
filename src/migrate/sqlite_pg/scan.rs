//! The value scan, before anything is written: columns without a usable
//! declared type get their Postgres type from the values they hold, and
//! columns whose type constrains values (boolean, dates, numeric(p,s),
//! varchar(n), json — or every column with `--scan full`) are checked value
//! by value with the same conversion the loader uses, so misfits are listed
//! in the plan with table, column, rowid and value.
//!
//! Columns whose type accepts their SQLite storage class as is (text in
//! text, integers in bigint, ...) are not scanned by default: reading them
//! is the loader's job, and the loader applies the same checks (a value it
//! cannot convert stops the run or is rejected, per `--on-error`).

use super::source::Table;
use super::sql::quote_ident;
use super::types::{self, convert, PgType};
use anyhow::Result;
use rusqlite::types::ValueRef;
use std::fmt;
use std::path::Path;

/// How a row is identified in reports: its rowid, or its primary key
/// values in a WITHOUT ROWID table.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKey {
    Rowid(i64),
    Pk(Vec<String>, Vec<String>),
}

impl fmt::Display for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowKey::Rowid(r) => write!(f, "rowid {r}"),
            RowKey::Pk(cols, vals) => write!(f, "({}) = ({})", cols.join(", "), vals.join(", ")),
        }
    }
}

impl RowKey {
    /// Read the key from the first columns of a row selected with
    /// [`key_select`].
    pub fn read(row: &rusqlite::Row<'_>, key_cols: &[String]) -> rusqlite::Result<RowKey> {
        if key_cols.is_empty() {
            return Ok(RowKey::Rowid(row.get(0)?));
        }
        let mut vals = Vec::with_capacity(key_cols.len());
        for i in 0..key_cols.len() {
            vals.push(key_text(row.get_ref(i)?));
        }
        Ok(RowKey::Pk(key_cols.to_vec(), vals))
    }

    /// As JSON for the rejects file.
    pub fn json(&self) -> (&'static str, serde_json::Value) {
        match self {
            RowKey::Rowid(r) => ("rowid", (*r).into()),
            RowKey::Pk(cols, vals) => (
                "key",
                serde_json::Value::Object(
                    cols.iter()
                        .cloned()
                        .zip(vals.iter().map(|v| serde_json::Value::String(v.clone())))
                        .collect(),
                ),
            ),
        }
    }

    /// A stable text form, to match rejected rows again in verification.
    pub fn id(&self) -> String {
        match self {
            RowKey::Rowid(r) => r.to_string(),
            RowKey::Pk(_, vals) => vals.join("\u{1f}"),
        }
    }
}

/// A key value as text (SQL-literal-like).
pub fn key_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => types::real_text(x),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
    }
}

/// The leading select-list items that identify a row.
pub fn key_select(key_cols: &[String]) -> String {
    if key_cols.is_empty() {
        "_rowid_".into()
    } else {
        key_cols
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What to do with one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanKind {
    /// Decide the type from the values.
    Infer,
    /// Check every value against this type.
    Check(PgType, bool),
}

pub const EXAMPLES: usize = 5;

/// Storage classes, in SQLite's order.
const CLASSES: [&str; 5] = ["null", "integer", "real", "text", "blob"];

fn class(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Null => 0,
        ValueRef::Integer(_) => 1,
        ValueRef::Real(_) => 2,
        ValueRef::Text(_) => 3,
        ValueRef::Blob(_) => 4,
    }
}

/// What the scan saw in one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnScan {
    pub counts: [u64; 5],
    /// Largest |integer| seen.
    pub max_abs_int: u64,
    /// First few (row, value) per storage class.
    pub samples: [Vec<(String, String)>; 5],
    /// Text values that are not valid as Postgres text (invalid UTF-8, NUL).
    pub bad_text: u64,
    pub bad_text_samples: Vec<(String, String)>,
    /// For [`ScanKind::Check`]: values that do not fit.
    pub misfits: u64,
    pub misfit_samples: Vec<(String, String)>,
}

/// Scan `cols` (indexes into `t.columns`) of one table.
pub fn scan_table(path: &Path, t: &Table, cols: &[(usize, ScanKind)]) -> Result<Vec<ColumnScan>> {
    let conn = super::source::open(path)?;
    let key_cols = if t.without_rowid {
        t.pk.clone()
    } else {
        Vec::new()
    };
    let nk = key_cols.len().max(1);
    let list: Vec<String> = cols
        .iter()
        .map(|(i, _)| quote_ident(&t.columns[*i].name))
        .collect();
    let q = format!(
        "SELECT {}, {} FROM main.{}",
        key_select(&key_cols),
        list.join(", "),
        quote_ident(&t.name)
    );
    let mut st = conn.prepare(&q)?;
    let mut rows = st.query([])?;
    let mut out = vec![ColumnScan::default(); cols.len()];
    while let Some(row) = rows.next()? {
        for (j, (_, kind)) in cols.iter().enumerate() {
            let v = row.get_ref(nk + j)?;
            let cs = &mut out[j];
            let c = class(v);
            cs.counts[c] += 1;
            match kind {
                ScanKind::Infer => {
                    if let ValueRef::Integer(n) = v {
                        cs.max_abs_int = cs.max_abs_int.max(n.unsigned_abs());
                    }
                    if cs.samples[c].len() < EXAMPLES {
                        let key = RowKey::read(row, &key_cols)?.to_string();
                        cs.samples[c].push((key, types::describe(v)));
                    }
                    if let ValueRef::Text(_) = v {
                        if let Err(e) = convert(v, &PgType::Text, false) {
                            cs.bad_text += 1;
                            if cs.bad_text_samples.len() < EXAMPLES {
                                let key = RowKey::read(row, &key_cols)?.to_string();
                                cs.bad_text_samples.push((key, e));
                            }
                        }
                    }
                }
                ScanKind::Check(ty, lenient) => {
                    if let Err(e) = convert(v, ty, *lenient) {
                        cs.misfits += 1;
                        if cs.misfit_samples.len() < EXAMPLES {
                            let key = RowKey::read(row, &key_cols)?.to_string();
                            cs.misfit_samples.push((key, e));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The type the values of a typeless column call for, why, and the
/// values that do not fit it: (count, examples).
pub fn infer(cs: &ColumnScan, declared: &str) -> (PgType, String, u64, Vec<(String, String)>) {
    let [_, ints, reals, texts, blobs] = cs.counts;
    let nonnull = ints + reals + texts + blobs;
    let mut mix: Vec<String> = (1..5)
        .filter(|&c| cs.counts[c] > 0)
        .map(|c| {
            format!(
                "{} {:.0}%",
                CLASSES[c],
                cs.counts[c] as f64 * 100.0 / nonnull.max(1) as f64
            )
        })
        .collect();
    if cs.counts[0] > 0 {
        mix.push(format!("{} NULL", crate::migrate::thousands(cs.counts[0])));
    }
    let what = if declared.trim().is_empty() {
        "no declared type".to_string()
    } else {
        format!("declared {declared}")
    };
    let values = if mix.is_empty() {
        "no values".to_string()
    } else {
        mix.join(", ")
    };
    let misfits_of = |classes: &[usize]| -> (u64, Vec<(String, String)>) {
        let n = classes.iter().map(|&c| cs.counts[c]).sum();
        let ex = classes
            .iter()
            .flat_map(|&c| {
                cs.samples[c]
                    .iter()
                    .map(move |(k, v)| (k.clone(), format!("{v} does not fit ({})", CLASSES[c])))
            })
            .take(EXAMPLES)
            .collect();
        (n, ex)
    };
    if nonnull == 0 {
        return (PgType::Text, format!("{what}; {values}"), 0, Vec::new());
    }
    if blobs > 0 && blobs >= ints + reals + texts {
        let (n, ex) = misfits_of(&[1, 2, 3]);
        return (PgType::Bytea, format!("{what}; {values}"), n, ex);
    }
    if texts == 0 && blobs == 0 {
        if reals == 0 {
            return (PgType::BigInt, format!("{what}; {values}"), 0, Vec::new());
        }
        if cs.max_abs_int <= 1 << 53 {
            return (PgType::Double, format!("{what}; {values}"), 0, Vec::new());
        }
    }
    // text, or numbers mixed with text: text, numbers written exactly
    let (mut n, mut ex) = misfits_of(&[4]);
    n += cs.bad_text;
    ex.extend(
        cs.bad_text_samples
            .iter()
            .take(EXAMPLES - ex.len().min(EXAMPLES))
            .cloned(),
    );
    let numbers = if ints + reals > 0 && (texts > 0 || blobs > 0 || cs.max_abs_int > 1 << 53) {
        "; numbers become their exact decimal text"
    } else {
        ""
    };
    (PgType::Text, format!("{what}; {values}{numbers}"), n, ex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(sql: &str, table: &str, kinds: Vec<(usize, ScanKind)>) -> Vec<ColumnScan> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let schema =
            super::super::source::read_schema(&super::super::source::open(&p).unwrap()).unwrap();
        scan_table(&p, schema.table(table).unwrap(), &kinds).unwrap()
    }

    #[test]
    fn typeless_columns_get_their_type_from_values() {
        let s = scan(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c, d, e);
             INSERT INTO t VALUES (1, 1, 1, 'x', X'00', NULL), (2, 2, 2.5, 3, X'01', NULL),
                                  (3, NULL, NULL, 4.5, 'txt', NULL);",
            "t",
            (1..6).map(|i| (i, ScanKind::Infer)).collect(),
        );
        assert_eq!(infer(&s[0], "").0, PgType::BigInt);
        assert_eq!(infer(&s[1], "").0, PgType::Double);
        let (ty, why, n, _) = infer(&s[2], "");
        assert_eq!((ty, n), (PgType::Text, 0));
        assert!(why.contains("exact decimal text"), "{why}");
        let (ty, _, n, ex) = infer(&s[3], "");
        assert_eq!((ty, n), (PgType::Bytea, 1));
        assert_eq!(ex[0].0, "rowid 3");
        assert_eq!(infer(&s[4], "").0, PgType::Text);
    }

    #[test]
    fn checked_columns_report_misfits_with_their_rows() {
        let s = scan(
            "CREATE TABLE t (k TEXT, j INTEGER, flag BOOLEAN, PRIMARY KEY (k, j)) WITHOUT ROWID;
             INSERT INTO t VALUES ('a', 1, 1), ('b''s', 2, 2), ('c', 3, 'yes');",
            "t",
            vec![(2, ScanKind::Check(PgType::Boolean, false))],
        );
        assert_eq!(s[0].misfits, 2);
        assert_eq!(s[0].misfit_samples[0].0, "(k, j) = ('b''s', 2)");
        assert!(s[0].misfit_samples[0].1.contains("integer 2 is not 0 or 1"));
    }
}
