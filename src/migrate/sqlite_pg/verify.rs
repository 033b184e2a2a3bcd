//! Verification: proof that what is in Postgres is what is in SQLite.
//!
//! Per table, both sides compute the row count and an order-independent
//! checksum of every value. The source side reads SQLite and takes each
//! value as the target column's type holds it (`types::convert`); the
//! target side reads the table back from Postgres with binary COPY and
//! decodes the stored values with a decoder written apart from the
//! encoder. Both become the same canonical values (integers, IEEE bits,
//! normalized decimals, UTF-8 text, bytes, days, microseconds), each row is
//! hashed, and the table checksum is the sum of the row hashes. Reading
//! back with COPY keeps the work in this process (Postgres' per-row
//! expression evaluation and MD5 cost several times more). Rows the run
//! rejected (`--on-error skip`) are left out of the source side and
//! reported. When a table differs, a second pass checksums each column
//! separately to name the columns that differ.
//!
//! Then the schema: every primary key, unique, check, index, foreign key
//! and view of the plan exists (and is validated), and every identity
//! continues after the highest id and SQLite's `sqlite_sequence`.

use super::plan::{ObjKind, Plan, TablePlan};
use super::scan::{key_select, RowKey};
use super::sql::quote_ident;
use super::target::{pg_error, Target};
use super::types::{convert, PgType, Val};
use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Rejected rows per source table (by [`RowKey::id`]).
pub type Rejected = HashMap<String, HashSet<String>>;

/// Read a rejects file written by the loader.
pub fn read_rejects(path: &Path) -> Result<Rejected> {
    let mut out: Rejected = HashMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).map_err(|e| anyhow!("cannot read {}: {e}", path.display())),
    };
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow!("{}:{}: not a rejects line: {e}", path.display(), n + 1))?;
        let table = v["table"].as_str().unwrap_or_default().to_string();
        let id = if let Some(r) = v["rowid"].as_i64() {
            r.to_string()
        } else {
            v["key"]
                .as_object()
                .map(|m| {
                    m.values()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect::<Vec<_>>()
                        .join("\u{1f}")
                })
                .unwrap_or_default()
        };
        out.entry(table).or_default().insert(id);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub target: String,
    pub source_rows: u64,
    pub rejected: u64,
    pub target_rows: Option<u64>,
    pub source_checksum: String,
    pub target_checksum: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectCheck {
    pub kind: String,
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Present but worth knowing (a constraint the copied rows violate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub source: String,
    pub target: String,
    pub ok: bool,
    pub tables: Vec<TableCheck>,
    pub objects: Vec<ObjectCheck>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_migrated: Vec<String>,
    pub seconds: f64,
}

/// Counts and order-independent sums of row and column hashes, one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    pub rows: u64,
    pub skipped: u64,
    pub sum: u128,
    /// One sum per column, to name the columns that differ.
    pub cols: Vec<u128>,
    pub first_misfit: Option<String>,
}

impl Sums {
    pub fn new(columns: usize) -> Sums {
        Sums {
            cols: vec![0; columns],
            ..Default::default()
        }
    }

    /// Add another part of the same table (a chunk).
    pub fn merge(&mut self, o: &Sums) {
        self.rows += o.rows;
        self.skipped += o.skipped;
        self.sum = self.sum.wrapping_add(o.sum);
        if self.cols.len() < o.cols.len() {
            self.cols.resize(o.cols.len(), 0);
        }
        for (a, b) in self.cols.iter_mut().zip(&o.cols) {
            *a = a.wrapping_add(*b);
        }
        if self.first_misfit.is_none() {
            self.first_misfit = o.first_misfit.clone();
        }
    }

    /// For the journal: {"rows", "sum", "cols"} with sums in hex.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rows": self.rows,
            "sum": format!("{:032x}", self.sum),
            "cols": self.cols.iter().map(|c| format!("{c:032x}")).collect::<Vec<_>>(),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Option<Sums> {
        let hex = |x: &serde_json::Value| u128::from_str_radix(x.as_str()?, 16).ok();
        Some(Sums {
            rows: v["rows"].as_u64()?,
            sum: hex(&v["sum"])?,
            cols: v["cols"]
                .as_array()?
                .iter()
                .map(hex)
                .collect::<Option<_>>()?,
            ..Default::default()
        })
    }
}

/// Hashes one row: a hash per column (each value hashed once), chained
/// in column order into the row's hash; added to [`Sums`] only when the
/// whole row made it (a rejected row adds nothing).
pub struct RowHasher {
    row: u64,
    cols: Vec<u64>,
}

impl RowHasher {
    pub fn new(columns: usize) -> RowHasher {
        RowHasher {
            row: K0,
            cols: Vec::with_capacity(columns),
        }
    }

    #[inline]
    fn push(&mut self, col: u64) {
        self.row = mix(self.row ^ col, K0);
        self.cols.push(col);
    }

    #[inline]
    pub fn value(&mut self, v: &Val<'_>) {
        let mut c = hasher();
        feed(&mut c, v);
        self.push(c.finish());
    }

    /// A text value given as bytes: hashed exactly as `Val::Text`.
    #[inline]
    pub fn text_bytes(&mut self, b: &[u8]) {
        let mut c = hasher();
        c.write_u8(5);
        c.write_usize(b.len());
        c.write(b);
        self.push(c.finish());
    }

    /// Start the next row (dropping a partial one).
    #[inline]
    pub fn reset(&mut self) {
        self.row = K0;
        self.cols.clear();
    }

    /// The row is complete: add it.
    #[inline]
    pub fn add_to(&mut self, s: &mut Sums) {
        s.sum = s.sum.wrapping_add(mix(self.row ^ K1, K0 ^ K1) as u128);
        for (a, c) in s.cols.iter_mut().zip(&self.cols) {
            *a = a.wrapping_add(*c as u128);
        }
        s.rows += 1;
        self.reset();
    }
}

/// Feed one canonical value to a hasher: a tag per kind, then the value
/// (lengths first, so concatenations cannot collide).
fn feed(h: &mut impl Hasher, v: &Val<'_>) {
    match v {
        Val::Null => h.write_u8(0),
        Val::Bool(b) => {
            h.write_u8(1);
            h.write_u8(u8::from(*b));
        }
        Val::Int(n) => {
            h.write_u8(2);
            h.write_i64(*n);
        }
        Val::Float(x) => {
            h.write_u8(3);
            h.write_u64(x.to_bits());
        }
        Val::Numeric(d) => {
            h.write_u8(4);
            h.write_usize(d.len());
            h.write(d.as_bytes());
        }
        Val::Text(t) => {
            h.write_u8(5);
            h.write_usize(t.len());
            h.write(t.as_bytes());
        }
        Val::Bytes(b) => {
            h.write_u8(6);
            h.write_usize(b.len());
            h.write(b);
        }
        Val::Date(d) => {
            h.write_u8(7);
            h.write_i32(*d);
        }
        Val::Time(us) => {
            h.write_u8(8);
            h.write_i64(*us);
        }
        Val::Timestamp(us) => {
            h.write_u8(9);
            h.write_i64(*us);
        }
    }
}

/// The hasher of rows and columns: both sides are hashed in this process,
/// so it only needs to be fixed, fast and well mixed (not cryptographic).
/// Eight bytes at a time through a folded 64x64->128-bit multiply (the
/// wyhash mixer); SipHash cost several times more per row here.
#[derive(Clone, Copy)]
struct Fold {
    h: u64,
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

impl Hasher for Fold {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.h = mix(self.h ^ w, K0);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            self.h = mix(
                self.h ^ u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56),
                K1,
            );
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.h = mix(self.h ^ n as u64, K1);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.h = mix(self.h ^ n, K0);
    }
    #[inline]
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64)
    }
    #[inline]
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64)
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64)
    }
    fn finish(&self) -> u64 {
        mix(self.h ^ K1, K0 ^ K1)
    }
}

fn hasher() -> Fold {
    Fold { h: K0 }
}

/// The source side of one table, read again: every row not rejected, each
/// value read as the target's column type holds it.
fn source_sums(
    source: &Path,
    t: &TablePlan,
    types: &[Option<PgType>],
    rejected: Option<&HashSet<String>>,
) -> Result<Sums> {
    let conn = super::source::open(source)?;
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.source)).collect();
    let q = format!(
        "SELECT {}, {} FROM main.{}",
        key_select(&t.key),
        cols.join(", "),
        quote_ident(&t.source)
    );
    let mut st = conn.prepare(&q)?;
    let mut rows = st.query([])?;
    let nk = t.key.len().max(1);
    let mut s = Sums::new(t.columns.len());
    let mut h = RowHasher::new(t.columns.len());
    while let Some(row) = rows.next()? {
        if let Some(rej) = rejected {
            if !rej.is_empty() && rej.contains(&RowKey::read(row, &t.key)?.id()) {
                s.skipped += 1;
                continue;
            }
        }
        for (i, ty) in types.iter().enumerate() {
            let v = row.get_ref(nk + i)?;
            // a type datatier does not write is compared as text
            let ty = ty.as_ref().unwrap_or(&PgType::Text);
            match convert(v, ty, true) {
                Ok(val) => h.value(&val),
                Err(e) => {
                    if s.first_misfit.is_none() {
                        s.first_misfit = Some(format!(
                            "{}, column {}: {e}",
                            RowKey::read(row, &t.key)?,
                            t.columns[i].source
                        ));
                    }
                    // a value no target row can have
                    h.value(&Val::Text(std::borrow::Cow::Borrowed("\u{0}misfit")));
                }
            }
        }
        h.add_to(&mut s);
    }
    Ok(s)
}

/// Decode one field of Postgres' binary format into its canonical value.
/// Written apart from the encoder (`copy`), from the documented send
/// formats, so an encoding mistake cannot cancel itself out.
fn decode<'a>(b: &'a [u8], ty: Option<&PgType>) -> Result<Val<'a>> {
    let be_i16 = |o: usize| i16::from_be_bytes([b[o], b[o + 1]]);
    let need = |n: usize| {
        if b.len() == n {
            Ok(())
        } else {
            Err(anyhow!(
                "field of {} bytes where {n} were expected",
                b.len()
            ))
        }
    };
    // Postgres counts dates and times from 2000-01-01.
    let pg_epoch_days = super::types::days_from_civil(2000, 1, 1);
    Ok(match ty {
        Some(PgType::Boolean) => {
            need(1)?;
            Val::Bool(b[0] != 0)
        }
        Some(PgType::SmallInt) => {
            need(2)?;
            Val::Int(be_i16(0) as i64)
        }
        Some(PgType::Integer) => {
            need(4)?;
            Val::Int(i32::from_be_bytes(b.try_into()?) as i64)
        }
        Some(PgType::BigInt) => {
            need(8)?;
            Val::Int(i64::from_be_bytes(b.try_into()?))
        }
        Some(PgType::Double) => {
            need(8)?;
            Val::Float(f64::from_be_bytes(b.try_into()?))
        }
        Some(PgType::Numeric { .. }) => {
            let n = be_i16(0) as usize;
            need(8 + 2 * n)?;
            let weight = be_i16(2) as i64;
            let sign = u16::from_be_bytes([b[4], b[5]]);
            let digits: Vec<i16> = (0..n).map(|i| be_i16(8 + 2 * i)).collect();
            match sign {
                0xC000 => Val::Numeric("NaN".into()),
                0xD000 => Val::Numeric("Infinity".into()),
                0xF000 => Val::Numeric("-Infinity".into()),
                _ => {
                    let mut int = String::new();
                    for g in 0..=weight.max(-1) {
                        let d = digits.get(g as usize).copied().unwrap_or(0);
                        if int.is_empty() {
                            if d != 0 {
                                int.push_str(&d.to_string());
                            }
                        } else {
                            int.push_str(&format!("{d:04}"));
                        }
                    }
                    let mut frac = String::new();
                    for g in (weight + 1)..(digits.len() as i64) {
                        let d = if g < 0 { 0 } else { digits[g as usize] };
                        frac.push_str(&format!("{d:04}"));
                    }
                    let frac = frac.trim_end_matches('0');
                    let int = if int.is_empty() { "0" } else { int.as_str() };
                    let zero = int == "0" && frac.is_empty();
                    let mut s = String::new();
                    if sign == 0x4000 && !zero {
                        s.push('-');
                    }
                    s.push_str(int);
                    if !frac.is_empty() {
                        s.push('.');
                        s.push_str(frac);
                    }
                    Val::Numeric(s)
                }
            }
        }
        Some(PgType::Bytea) => Val::Bytes(std::borrow::Cow::Borrowed(b)),
        Some(PgType::Date) => {
            need(4)?;
            Val::Date((i32::from_be_bytes(b.try_into()?) as i64 + pg_epoch_days) as i32)
        }
        Some(PgType::Time) => {
            need(8)?;
            Val::Time(i64::from_be_bytes(b.try_into()?))
        }
        Some(PgType::Timestamp | PgType::Timestamptz) => {
            need(8)?;
            Val::Timestamp(i64::from_be_bytes(b.try_into()?) + pg_epoch_days * 86_400_000_000)
        }
        // text, varchar, json, and other types selected as ::text
        _ => match std::str::from_utf8(b) {
            Ok(t) => Val::Text(std::borrow::Cow::Borrowed(t)),
            Err(_) => Val::Text(String::from_utf8_lossy(b)),
        },
    })
}

/// Parse complete tuples of a binary COPY stream from the front of `buf`,
/// adding them to `s`; returns the bytes consumed. Header and trailer are
/// recognised; a partial tuple is left for the next call.
fn parse_tuples(
    buf: &[u8],
    header_seen: &mut bool,
    types: &[Option<PgType>],
    s: &mut Sums,
) -> Result<usize> {
    let mut at = 0;
    if !*header_seen {
        if buf.len() < 19 {
            return Ok(0);
        }
        if &buf[..11] != b"PGCOPY\n\xff\r\n\0" {
            bail!("not a binary COPY stream");
        }
        let ext = u32::from_be_bytes(buf[15..19].try_into()?) as usize;
        if buf.len() < 19 + ext {
            return Ok(0);
        }
        at = 19 + ext;
        *header_seen = true;
    }
    let mut h = RowHasher::new(types.len());
    let mut fields: Vec<Option<&[u8]>> = Vec::with_capacity(types.len());
    loop {
        if buf.len() < at + 2 {
            return Ok(at);
        }
        let nf = i16::from_be_bytes([buf[at], buf[at + 1]]);
        if nf == -1 {
            return Ok(buf.len()); // trailer
        }
        if nf as usize != types.len() {
            bail!("COPY tuple with {nf} fields, expected {}", types.len());
        }
        // find the end of the tuple before decoding anything
        let mut p = at + 2;
        fields.clear();
        for _ in 0..nf {
            if buf.len() < p + 4 {
                return Ok(at);
            }
            let len = i32::from_be_bytes(buf[p..p + 4].try_into()?);
            p += 4;
            if len < 0 {
                fields.push(None);
            } else {
                let len = len as usize;
                if buf.len() < p + len {
                    return Ok(at);
                }
                fields.push(Some(&buf[p..p + len]));
                p += len;
            }
        }
        for (f, ty) in fields.iter().zip(types) {
            match (f, ty) {
                (None, _) => h.value(&Val::Null),
                // text as Postgres stores it is valid UTF-8: hash the bytes
                (Some(b), None | Some(PgType::Text | PgType::Varchar(_) | PgType::Json)) => {
                    h.text_bytes(b)
                }
                (Some(b), Some(ty)) => h.value(&decode(b, Some(ty))?),
            }
        }
        h.add_to(s);
        at = p;
    }
}

/// Bytes handed from the COPY stream to the decoder at a time.
const BATCH: usize = 512 * 1024;

/// The target side: the table read back with binary COPY and decoded.
async fn target_sums(target: &Target, t: &TablePlan, types: &[Option<PgType>]) -> Result<Sums> {
    let client = target.connect().await?;
    let cols: Vec<String> = t
        .columns
        .iter()
        .zip(types)
        .map(|(c, ty)| match ty {
            Some(_) => quote_ident(&c.target),
            None => format!("{}::text", quote_ident(&c.target)),
        })
        .collect();
    let q = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)",
        if cols.is_empty() {
            "".into()
        } else {
            cols.join(", ")
        },
        target.q(&t.target)
    );
    let stream = client
        .copy_out(q.as_str())
        .await
        .map_err(|e| anyhow!("reading {} back: {}", t.target, pg_error(&e)))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let types2 = types.to_vec();
    let n = t.columns.len();
    let decoder = tokio::task::spawn_blocking(move || -> Result<Sums> {
        let mut s = Sums::new(n);
        let mut pending = bytes::BytesMut::new();
        let mut header = false;
        while let Some(chunk) = rx.blocking_recv() {
            if pending.is_empty() {
                let used = parse_tuples(&chunk, &mut header, &types2, &mut s)?;
                pending.extend_from_slice(&chunk[used..]);
            } else {
                pending.extend_from_slice(&chunk);
                let used = parse_tuples(&pending, &mut header, &types2, &mut s)?;
                let _ = pending.split_to(used);
            }
        }
        if !pending.is_empty() {
            bail!("the COPY stream ended inside a row");
        }
        Ok(s)
    });
    futures::pin_mut!(stream);
    let mut err = None;
    // Postgres sends one message per row: hand them over in big batches,
    // not one channel send (and wake-up) per row.
    let mut batch = bytes::BytesMut::with_capacity(BATCH);
    loop {
        let next = stream.next().await;
        let flush = match &next {
            Some(Ok(_)) => batch.len() >= BATCH,
            _ => !batch.is_empty(),
        };
        if flush && tx.send(batch.split().freeze()).await.is_err() {
            break; // the decoder failed; its error is reported below
        }
        match next {
            None => break,
            Some(Ok(c)) => batch.extend_from_slice(&c),
            Some(Err(e)) => {
                err = Some(anyhow!("reading {} back: {}", t.target, pg_error(&e)));
                break;
            }
        }
    }
    drop(tx);
    let s = decoder
        .await
        .map_err(|e| anyhow!("decoder panicked: {e}"))?;
    if let Some(e) = err {
        return Err(e);
    }
    s.map_err(|e| anyhow!("reading {} back: {e}", t.target))
}

/// Column types read from the target: table -> [(column, type)]
/// (`None` for a type datatier does not write).
pub type TargetTypes = BTreeMap<String, Vec<(String, Option<PgType>)>>;

/// Column types of the target tables.
pub async fn target_types(client: &tokio_postgres::Client, schema: &str) -> Result<TargetTypes> {
    let cols = super::target::table_columns(client, schema).await?;
    Ok(cols
        .into_iter()
        .map(|(t, cs)| {
            (
                t,
                cs.into_iter()
                    .map(|(c, ty)| {
                        let parsed = PgType::parse(&ty);
                        (c, parsed)
                    })
                    .collect(),
            )
        })
        .collect())
}

/// What the source side of a table is.
#[derive(Debug, Clone)]
pub enum Expected {
    /// Hashed while the loader read it (`--verify fast`), with the row count
    /// SQLite gave at preflight and the rows rejected, to catch a load that
    /// read too few or too many rows.
    Loaded {
        sums: Sums,
        source_rows: u64,
        rejected: u64,
    },
    /// Read again, independently of the load.
    Reread {
        source: PathBuf,
        rejected: Option<HashSet<String>>,
    },
}

/// Verify one table: row counts and checksums, and which columns differ.
pub async fn check_table(
    target: &Target,
    t: &TablePlan,
    have: Option<&Vec<(String, Option<PgType>)>>,
    expected: Expected,
) -> Result<TableCheck> {
    let mut check = TableCheck {
        table: t.source.clone(),
        target: t.target.clone(),
        source_rows: 0,
        rejected: 0,
        target_rows: None,
        source_checksum: String::new(),
        target_checksum: None,
        ok: false,
        problems: Vec::new(),
    };
    let Some(have) = have else {
        check
            .problems
            .push(format!("table {} does not exist in Postgres", t.target));
        return Ok(check);
    };
    let names: Vec<&str> = have.iter().map(|(c, _)| c.as_str()).collect();
    let want: Vec<&str> = t.columns.iter().map(|c| c.target.as_str()).collect();
    if names != want {
        check.problems.push(format!(
            "columns differ: Postgres has ({}), SQLite ({})",
            names.join(", "),
            want.join(", ")
        ));
        return Ok(check);
    }
    // Read each source value as the target column holds it.
    let types: Vec<Option<PgType>> = have.iter().map(|(_, ty)| ty.clone()).collect();
    let dst = target_sums(target, t, &types);
    let (src, dst, source_rows) = match expected {
        Expected::Loaded {
            sums,
            source_rows,
            rejected,
        } => {
            check.rejected = rejected;
            (sums, dst.await?, source_rows)
        }
        Expected::Reread { source, rejected } => {
            let (t2, types2) = (t.clone(), types.clone());
            let src = tokio::task::spawn_blocking(move || {
                source_sums(&source, &t2, &types2, rejected.as_ref())
            });
            let (src, dst) = tokio::join!(src, dst);
            let src = src.map_err(|e| anyhow!("checksum reader panicked: {e}"))??;
            check.rejected = src.skipped;
            let n = src.rows + src.skipped;
            (src, dst?, n)
        }
    };
    check.source_rows = source_rows;
    check.target_rows = Some(dst.rows);
    check.source_checksum = format!("{:032x}", src.sum);
    check.target_checksum = Some(format!("{:032x}", dst.sum));
    if let Some(m) = &src.first_misfit {
        check.problems.push(format!(
            "a source value does not fit the Postgres column: {m}"
        ));
    }
    let rejected_note = if check.rejected > 0 {
        format!(" ({} rejected)", check.rejected)
    } else {
        String::new()
    };
    if source_rows != src.rows + check.rejected {
        check.problems.push(format!(
            "SQLite counts {source_rows} rows but {} were read{rejected_note}: the source changed during the run?",
            src.rows
        ));
    }
    if src.rows != dst.rows {
        check.problems.push(format!(
            "{} rows in SQLite{rejected_note}, {} in Postgres",
            src.rows, dst.rows
        ));
    }
    if src.sum != dst.sum {
        let differ: Vec<&str> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| src.cols.get(*i) != dst.cols.get(*i))
            .map(|(_, c)| c.target.as_str())
            .collect();
        check.problems.push(if differ.is_empty() {
            "checksums differ (rows are distributed differently across columns)".into()
        } else {
            format!("values differ in column(s): {}", differ.join(", "))
        });
    }
    check.ok = check.problems.is_empty();
    Ok(check)
}

/// Check that every object of the plan exists on the target.
pub async fn check_objects(
    client: &tokio_postgres::Client,
    plan: &Plan,
) -> Result<Vec<ObjectCheck>> {
    let schema = &plan.schema;
    let cons: HashMap<(String, String), (String, bool)> = client
        .query(
            "SELECT c.relname, k.conname, k.contype::text, k.convalidated FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1",
            &[schema],
        )
        .await?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    let rels: HashSet<(String, String)> = client
        .query(
            "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1",
            &[schema],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Vec::new();
    for o in plan.objects() {
        let name = if o.table.is_empty() {
            o.name.clone()
        } else {
            format!("{}.{}", o.table, o.name)
        };
        let mut problem = None;
        let mut warning = None;
        match o.kind {
            ObjKind::PrimaryKey | ObjKind::Unique | ObjKind::Check | ObjKind::ForeignKey => {
                let want = match o.kind {
                    ObjKind::PrimaryKey => "p",
                    ObjKind::Unique => "u",
                    ObjKind::Check => "c",
                    _ => "f",
                };
                let found = if o.kind == ObjKind::PrimaryKey {
                    cons.iter()
                        .find(|((t, _), (k, _))| *t == o.table && k == "p")
                        .map(|(_, v)| v.clone())
                } else {
                    cons.get(&(o.table.clone(), o.name.clone())).cloned()
                };
                match found {
                    None => problem = Some("missing".to_string()),
                    Some((k, _)) if k != want => problem = Some(format!("is a constraint of another kind ({k})")),
                    Some((_, false)) => {
                        warning = Some(
                            "NOT VALID: rows copied from SQLite (which did not enforce it) violate it; it holds for new rows"
                                .into(),
                        )
                    }
                    _ => {}
                }
            }
            ObjKind::Index => {
                if !rels.contains(&(o.name.clone(), "i".into())) {
                    problem = Some("missing".into());
                }
            }
            ObjKind::View => {
                if !rels.contains(&(o.name.clone(), "v".into())) {
                    problem = Some("missing".into());
                }
            }
            ObjKind::Identity => {
                problem = check_identity(client, plan, o.table.as_str(), o.name.as_str()).await?;
            }
        }
        out.push(ObjectCheck {
            kind: o.kind.label().into(),
            name,
            ok: problem.is_none(),
            problem,
            warning,
        });
    }
    Ok(out)
}

async fn check_identity(
    client: &tokio_postgres::Client,
    plan: &Plan,
    table: &str,
    column: &str,
) -> Result<Option<String>> {
    let Some(t) = plan.table(table) else {
        return Ok(Some("no such table in the plan".into()));
    };
    let Some(id) = &t.identity else {
        return Ok(None);
    };
    let qt = super::plan::qualified(&plan.schema, table);
    let seq: Option<String> = client
        .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&qt, &column])
        .await
        .map_err(|e| anyhow!("{}", pg_error(&e)))?
        .get(0);
    let Some(seq) = seq else {
        return Ok(Some(format!("{column} is not an identity column")));
    };
    let row = client
        .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
        .await?;
    let (last, called): (i64, bool) = (row.get(0), row.get(1));
    let next = if called { last + 1 } else { last };
    let max: Option<i64> = client
        .query_one(
            &format!("SELECT max({}) FROM {qt}", quote_ident(column)),
            &[],
        )
        .await?
        .get(0);
    if next < id.next {
        return Ok(Some(format!(
            "next value is {next}, but ids up to {} were used in SQLite (sqlite_sequence {:?})",
            id.next - 1,
            id.sqlite_sequence
        )));
    }
    if let Some(m) = max {
        if next <= m {
            return Ok(Some(format!("next value {next} would collide with id {m}")));
        }
    }
    Ok(None)
}

/// Verify `plan` on the target against the source.
pub async fn verify(
    source: &Path,
    target: &Target,
    plan: &Plan,
    rejected: &Rejected,
    jobs: usize,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let client = target.connect().await?;
    let have = target_types(&client, &plan.schema).await?;
    let mut order: Vec<&TablePlan> = plan.tables.iter().collect();
    order.sort_by_key(|t| std::cmp::Reverse(t.rows));
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let checks = futures::future::join_all(order.iter().map(|t| {
        let sem = sem.clone();
        let have = have.get(&t.target);
        let expected = Expected::Reread {
            source: source.to_path_buf(),
            rejected: rejected.get(&t.source).cloned(),
        };
        async move {
            let _permit = sem.acquire().await;
            check_table(target, t, have, expected).await
        }
    }))
    .await;
    let mut tables: Vec<TableCheck> = checks.into_iter().collect::<Result<_>>()?;
    let pos: HashMap<&str, usize> = plan
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.source.as_str(), i))
        .collect();
    tables.sort_by_key(|c| pos.get(c.table.as_str()).copied().unwrap_or(usize::MAX));
    let objects = check_objects(&client, plan).await?;
    Ok(VerifyReport::new(plan, tables, objects, started))
}

impl VerifyReport {
    pub fn new(
        plan: &Plan,
        tables: Vec<TableCheck>,
        objects: Vec<ObjectCheck>,
        started: Instant,
    ) -> VerifyReport {
        VerifyReport {
            source: plan.source.clone(),
            target: plan.target.clone(),
            ok: tables.iter().all(|t| t.ok) && objects.iter().all(|o| o.ok),
            tables,
            objects,
            not_migrated: plan
                .not_migrated
                .iter()
                .map(|n| format!("{} {}: {}", n.kind, n.name, n.reason))
                .collect(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

impl VerifyReport {
    pub fn render_table(&self) -> String {
        use crate::migrate::thousands;
        use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, CellAlignment, Table};
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Verification: {} -> {}: {}",
            self.source,
            self.target,
            if self.ok { "OK" } else { "DIFFERENCES" }
        );
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        t.set_header(vec![
            "TABLE",
            "ROWS SQLITE",
            "REJECTED",
            "ROWS POSTGRES",
            "CHECKSUM",
            "STATUS",
        ]);
        for c in &self.tables {
            let sum_ok = c.target_checksum.as_deref() == Some(c.source_checksum.as_str());
            t.add_row(vec![
                Cell::new(&c.target),
                Cell::new(thousands(c.source_rows)).set_alignment(CellAlignment::Right),
                Cell::new(thousands(c.rejected)).set_alignment(CellAlignment::Right),
                Cell::new(c.target_rows.map(thousands).unwrap_or_else(|| "-".into()))
                    .set_alignment(CellAlignment::Right),
                Cell::new(if c.target_checksum.is_none() {
                    "-"
                } else if sum_ok {
                    "equal"
                } else {
                    "DIFFERENT"
                }),
                Cell::new(if c.ok { "ok" } else { "DIFFERS" }),
            ]);
        }
        let _ = writeln!(out, "{t}");
        for c in self.tables.iter().filter(|c| !c.ok) {
            for p in &c.problems {
                let _ = writeln!(out, "DIFFERS  {}: {p}", c.target);
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &self.objects {
            if let Some(w) = &o.warning {
                let _ = writeln!(out, "WARNING  {} {}: {w}", o.kind, o.name);
            }
            if o.ok {
                *counts.entry(o.kind.as_str()).or_default() += 1;
            } else {
                let _ = writeln!(
                    out,
                    "DIFFERS  {} {}: {}",
                    o.kind,
                    o.name,
                    o.problem.as_deref().unwrap_or("")
                );
            }
        }
        if !counts.is_empty() {
            let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(out, "OK       present: {}", list.join(", "));
        }
        for n in &self.not_migrated {
            let _ = writeln!(out, "note     not migrated (listed in the plan): {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::sqlite_pg::copy;

    fn round_trip(v: &Val<'_>, ty: &PgType) -> Val<'static> {
        let mut b = bytes::BytesMut::new();
        copy::field(&mut b, v, ty);
        let len = i32::from_be_bytes(b[..4].try_into().unwrap());
        if len < 0 {
            return Val::Null;
        }
        match decode(&b[4..], Some(ty)).unwrap() {
            Val::Text(t) => Val::Text(std::borrow::Cow::Owned(t.into_owned())),
            Val::Bytes(x) => Val::Bytes(std::borrow::Cow::Owned(x.into_owned())),
            Val::Numeric(n) => Val::Numeric(n),
            Val::Null => Val::Null,
            Val::Bool(x) => Val::Bool(x),
            Val::Int(x) => Val::Int(x),
            Val::Float(x) => Val::Float(x),
            Val::Date(x) => Val::Date(x),
            Val::Time(x) => Val::Time(x),
            Val::Timestamp(x) => Val::Timestamp(x),
        }
    }

    #[test]
    fn the_decoder_reads_what_the_encoder_writes() {
        let num = PgType::Numeric {
            precision: None,
            scale: 0,
        };
        for d in [
            "0",
            "1",
            "-1",
            "12.34",
            "0.0001",
            "-10000",
            "123456789.5",
            "0.5",
            "100000000",
            "99999999.99",
            "0.00001234",
            "123456789012345678901234567890.000000001",
        ] {
            assert_eq!(
                round_trip(&Val::Numeric(d.into()), &num),
                Val::Numeric(d.into()),
                "{d}"
            );
        }
        for (v, ty) in [
            (Val::Int(-5), PgType::SmallInt),
            (Val::Int(70_000), PgType::Integer),
            (Val::Int(i64::MIN), PgType::BigInt),
            (Val::Float(-0.0), PgType::Double),
            (Val::Bool(true), PgType::Boolean),
            (Val::Date(-1), PgType::Date),
            (Val::Timestamp(1_614_834_367_123_456), PgType::Timestamptz),
            (Val::Time(86_399_999_999), PgType::Time),
            (Val::Text("ünï🚀".into()), PgType::Text),
            (
                Val::Bytes(std::borrow::Cow::Borrowed(&[0, 255])),
                PgType::Bytea,
            ),
        ] {
            assert_eq!(round_trip(&v, &ty), v, "{ty}");
        }
    }

    #[test]
    fn the_row_hash_sees_every_byte_and_the_boundaries() {
        let h = |vals: &[Val<'_>]| {
            let mut f = hasher();
            for v in vals {
                feed(&mut f, v);
            }
            f.finish()
        };
        let t = |s: &'static str| Val::Text(s.into());
        assert_ne!(h(&[t("ab"), t("c")]), h(&[t("a"), t("bc")]));
        assert_ne!(h(&[t("abcdefgh1")]), h(&[t("abcdefgh2")]));
        assert_ne!(h(&[Val::Int(1)]), h(&[Val::Float(f64::from_bits(1))]));
        assert_ne!(h(&[Val::Null, Val::Int(0)]), h(&[Val::Int(0), Val::Null]));
        assert_ne!(h(&[t("")]), h(&[Val::Null]));
        assert_eq!(h(&[t("same")]), h(&[t("same")]));
        let (mut a, mut b) = (RowHasher::new(2), RowHasher::new(2));
        let (mut sa, mut sb) = (Sums::new(2), Sums::new(2));
        a.value(&t("héllo"));
        a.value(&Val::Int(3));
        b.text_bytes("héllo".as_bytes());
        b.value(&Val::Int(3));
        a.add_to(&mut sa);
        b.add_to(&mut sb);
        assert_eq!(sa, sb);
    }

    #[test]
    fn copy_streams_parse_across_chunk_boundaries() {
        let types = vec![Some(PgType::BigInt), Some(PgType::Text)];
        let mut b = bytes::BytesMut::new();
        copy::header(&mut b);
        for i in 0..50 {
            copy::row_start(&mut b, 2);
            copy::field(&mut b, &Val::Int(i), &PgType::BigInt);
            copy::field(
                &mut b,
                &if i % 7 == 0 {
                    Val::Null
                } else {
                    Val::Text(format!("row {i}").into())
                },
                &PgType::Text,
            );
        }
        copy::trailer(&mut b);
        let mut whole = Sums::new(2);
        let mut h = false;
        assert_eq!(
            parse_tuples(&b, &mut h, &types, &mut whole).unwrap(),
            b.len()
        );
        assert_eq!(whole.rows, 50);
        // the same bytes in 7-byte pieces give the same sums
        let mut pieces = Sums::new(2);
        let (mut h, mut pending) = (false, Vec::new());
        for chunk in b.chunks(7) {
            pending.extend_from_slice(chunk);
            let used = parse_tuples(&pending, &mut h, &types, &mut pieces).unwrap();
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!(pieces, whole);
        assert_eq!(Sums::from_json(&whole.to_json()).unwrap(), whole);
    }
}
