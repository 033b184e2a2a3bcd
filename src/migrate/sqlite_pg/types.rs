//! Types: which Postgres type a SQLite column becomes, whether each stored
//! value fits it, and the canonical form both sides are checksummed in.
//!
//! SQLite stores values loosely: a declared type is only an *affinity*, and
//! any column can hold an integer, a real, text or a blob. So a mapping is
//! a promise about values, and every value is checked against it
//! ([`convert`]); one that does not fit is a *misfit*, reported with its
//! table, column and rowid, never coerced silently. The user then picks a
//! type (`--cast table.column=TYPE`) or rejects the row (`--on-error skip`).
//!
//! Mapping of declared types (SQLite's own affinity rules decide first):
//!
//! | declared                         | Postgres                             |
//! |----------------------------------|--------------------------------------|
//! | contains INT                     | bigint (SQLite integers are 64-bit)  |
//! | VARCHAR(n), CHAR(n), NCHAR(n)... | varchar(n) (char(n) would pad)       |
//! | other CHAR/CLOB/TEXT             | text                                 |
//! | BLOB                             | bytea                                |
//! | REAL, FLOAT, DOUBLE              | double precision                     |
//! | BOOLEAN, BOOL                    | boolean (from 0/1)                   |
//! | DATE                             | date (from YYYY-MM-DD)               |
//! | DATETIME, TIMESTAMP              | timestamptz (ISO text or unix seconds; no offset = UTC) |
//! | TIME                             | time                                 |
//! | NUMERIC(p,s), DECIMAL(p,s)       | numeric(p,s)                         |
//! | NUMERIC, DECIMAL                 | numeric                              |
//! | JSON                             | json (text kept byte for byte)       |
//! | none, or any other name          | decided by the values: text, bytea, bigint, double precision |
//!
//! A converted value ([`Val`]) is also the canonical form verification
//! compares with what Postgres sends back.

use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The Postgres types datatier writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Double,
    /// `numeric(p,s)`, or unconstrained `numeric` when `precision` is None.
    Numeric {
        precision: Option<u32>,
        scale: u32,
    },
    Text,
    Varchar(u32),
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Json,
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgType::Boolean => f.write_str("boolean"),
            PgType::SmallInt => f.write_str("smallint"),
            PgType::Integer => f.write_str("integer"),
            PgType::BigInt => f.write_str("bigint"),
            PgType::Double => f.write_str("double precision"),
            PgType::Numeric {
                precision: Some(p),
                scale,
            } => write!(f, "numeric({p},{scale})"),
            PgType::Numeric {
                precision: None, ..
            } => f.write_str("numeric"),
            PgType::Text => f.write_str("text"),
            PgType::Varchar(n) => write!(f, "varchar({n})"),
            PgType::Bytea => f.write_str("bytea"),
            PgType::Date => f.write_str("date"),
            PgType::Time => f.write_str("time"),
            PgType::Timestamp => f.write_str("timestamp"),
            PgType::Timestamptz => f.write_str("timestamptz"),
            PgType::Json => f.write_str("json"),
        }
    }
}

/// The names `--cast` accepts, for error messages.
pub const CAST_TYPES: &str = "text, varchar(N), bytea, boolean, smallint, integer, bigint, double precision, numeric, numeric(P,S), date, time, timestamp, timestamptz, json";

impl PgType {
    /// Parse a type name as `--cast` takes it, or as Postgres' `format_type`
    /// prints it. `None` for types datatier does not write.
    pub fn parse(s: &str) -> Option<PgType> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let (base, args) = match s.find('(') {
            Some(p) if s.ends_with(')') => {
                let args: Vec<u32> = s[p + 1..s.len() - 1]
                    .split(',')
                    .map(|a| a.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .ok()?;
                (s[..p].trim().to_string(), args)
            }
            Some(_) => return None,
            None => (s.clone(), Vec::new()),
        };
        Some(match (base.as_str(), args.as_slice()) {
            ("boolean" | "bool", []) => PgType::Boolean,
            ("smallint" | "int2", []) => PgType::SmallInt,
            ("integer" | "int" | "int4", []) => PgType::Integer,
            ("bigint" | "int8", []) => PgType::BigInt,
            ("double precision" | "double" | "float8" | "float", []) => PgType::Double,
            ("numeric" | "decimal", []) => PgType::Numeric {
                precision: None,
                scale: 0,
            },
            ("numeric" | "decimal", [p]) if (1..=1000).contains(p) => PgType::Numeric {
                precision: Some(*p),
                scale: 0,
            },
            ("numeric" | "decimal", [p, sc]) if (1..=1000).contains(p) && sc <= p => {
                PgType::Numeric {
                    precision: Some(*p),
                    scale: *sc,
                }
            }
            ("text", []) => PgType::Text,
            ("varchar" | "character varying", [n]) if *n >= 1 => PgType::Varchar(*n),
            ("varchar" | "character varying", []) => PgType::Text,
            ("bytea", []) => PgType::Bytea,
            ("date", []) => PgType::Date,
            ("time" | "time without time zone", []) => PgType::Time,
            ("timestamp" | "timestamp without time zone", []) => PgType::Timestamp,
            ("timestamptz" | "timestamp with time zone", []) => PgType::Timestamptz,
            ("json", []) => PgType::Json,
            _ => return None,
        })
    }

    /// The text types (values become text; numbers are written out).
    pub fn is_text(&self) -> bool {
        matches!(self, PgType::Text | PgType::Varchar(_))
    }
}

/// How DATETIME/TIMESTAMP columns are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
pub enum TimestampType {
    /// timestamp with time zone: values without an offset are taken as UTC.
    #[default]
    Timestamptz,
    /// timestamp without time zone: values with an offset are converted to UTC.
    Timestamp,
}

/// What a declared type maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    Fixed(PgType),
    /// No usable declared type: the values decide.
    Infer,
}

/// Map a declared SQLite type (see the module table).
pub fn map_declared(declared: &str, ts: TimestampType) -> Mapped {
    let up = declared.trim().to_ascii_uppercase();
    if up.is_empty() {
        return Mapped::Infer;
    }
    let base = up
        .split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_string();
    let args: Vec<u32> = up
        .find('(')
        .and_then(|p| up[p + 1..].split(')').next())
        .map(|a| a.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    // SQLite's affinity rules, in SQLite's order.
    if up.contains("INT") {
        return Mapped::Fixed(PgType::BigInt);
    }
    if up.contains("CHAR") || up.contains("CLOB") || up.contains("TEXT") {
        let sized = matches!(
            base.as_str(),
            "VARCHAR" | "CHAR" | "NCHAR" | "NVARCHAR" | "CHARACTER" | "VARYING" | "NATIVE"
        );
        return match (sized, args.first()) {
            (true, Some(&n)) if n >= 1 => Mapped::Fixed(PgType::Varchar(n)),
            _ => Mapped::Fixed(PgType::Text),
        };
    }
    if up.contains("BLOB") {
        return Mapped::Fixed(PgType::Bytea);
    }
    if up.contains("REAL") || up.contains("FLOA") || up.contains("DOUB") {
        return Mapped::Fixed(PgType::Double);
    }
    match base.as_str() {
        "BOOLEAN" | "BOOL" => Mapped::Fixed(PgType::Boolean),
        "DATE" => Mapped::Fixed(PgType::Date),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMPTZ" => Mapped::Fixed(match ts {
            TimestampType::Timestamptz => PgType::Timestamptz,
            TimestampType::Timestamp => PgType::Timestamp,
        }),
        "TIME" => Mapped::Fixed(PgType::Time),
        "NUMERIC" | "DECIMAL" => Mapped::Fixed(match args.as_slice() {
            [p] if *p >= 1 => PgType::Numeric {
                precision: Some(*p),
                scale: 0,
            },
            [p, s] if *p >= 1 && s <= p => PgType::Numeric {
                precision: Some(*p),
                scale: *s,
            },
            _ => PgType::Numeric {
                precision: None,
                scale: 0,
            },
        }),
        "JSON" => Mapped::Fixed(PgType::Json),
        _ => Mapped::Infer,
    }
}

/// SQLite's column affinity (what it does to a value on insert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

/// The affinity SQLite gives a declared type (section 3.1 of its datatype docs).
pub fn affinity(declared: &str) -> Affinity {
    let up = declared.to_ascii_uppercase();
    if up.contains("INT") {
        Affinity::Integer
    } else if up.contains("CHAR") || up.contains("CLOB") || up.contains("TEXT") {
        Affinity::Text
    } else if up.trim().is_empty() || up.contains("BLOB") {
        Affinity::Blob
    } else if up.contains("REAL") || up.contains("FLOA") || up.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// A standalone SQLite value (a default, a sample).
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Owned::Null => ValueRef::Null,
            Owned::Integer(n) => ValueRef::Integer(*n),
            Owned::Real(x) => ValueRef::Real(*x),
            Owned::Text(t) => ValueRef::Text(t.as_bytes()),
            Owned::Blob(b) => ValueRef::Blob(b),
        }
    }

    /// What SQLite stores for this value in a column of affinity `a`.
    pub fn with_affinity(self, a: Affinity) -> Owned {
        match (a, self) {
            (Affinity::Text, Owned::Integer(n)) => Owned::Text(n.to_string()),
            (Affinity::Text, Owned::Real(x)) => Owned::Text(real_text(x)),
            (Affinity::Integer | Affinity::Numeric | Affinity::Real, Owned::Text(t)) => {
                match (t.trim().parse::<i64>(), t.trim().parse::<f64>()) {
                    (Ok(n), _) if a != Affinity::Real => Owned::Integer(n),
                    (Ok(n), _) => Owned::Real(n as f64),
                    (_, Ok(x)) if a == Affinity::Real => Owned::Real(x),
                    (_, Ok(x)) if x.fract() == 0.0 && x.abs() < 9.2e18 => Owned::Integer(x as i64),
                    (_, Ok(x)) => Owned::Real(x),
                    _ => Owned::Text(t),
                }
            }
            (Affinity::Real, Owned::Integer(n)) => Owned::Real(n as f64),
            (Affinity::Integer | Affinity::Numeric, Owned::Real(x))
                if x.fract() == 0.0 && x.abs() < 9.2e18 =>
            {
                Owned::Integer(x as i64)
            }
            (_, v) => v,
        }
    }
}

/// Days since 1970-01-01 -> (year, month, day) (H. Hinnant).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A converted value as a Postgres literal of type `ty` (for DEFAULTs).
pub fn pg_literal(v: &Val<'_>, ty: &PgType) -> String {
    let clock = |us: i64| {
        let secs = us.div_euclid(1_000_000);
        let frac = us.rem_euclid(1_000_000);
        let s = secs.rem_euclid(86_400);
        let mut t = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
        if frac != 0 {
            t.push_str(&format!(".{frac:06}"));
        }
        (secs.div_euclid(86_400), t)
    };
    match v {
        Val::Null => "NULL".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(n) => n.to_string(),
        Val::Float(x) if x.is_infinite() => {
            format!(
                "'{}Infinity'::double precision",
                if *x < 0.0 { "-" } else { "" }
            )
        }
        Val::Float(x) => format!("'{x:?}'::double precision"),
        Val::Numeric(d) => d.clone(),
        Val::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Val::Bytes(b) => format!("'\\x{}'::bytea", hex::encode(b)),
        Val::Date(d) => {
            let (y, m, dd) = civil_from_days(*d as i64);
            format!("'{y:04}-{m:02}-{dd:02}'::date")
        }
        Val::Time(us) => format!("'{}'::time", clock(*us).1),
        Val::Timestamp(us) => {
            let (days, t) = clock(*us);
            let (y, m, d) = civil_from_days(days);
            match ty {
                PgType::Timestamp => format!("'{y:04}-{m:02}-{d:02} {t}'::timestamp"),
                _ => format!("'{y:04}-{m:02}-{d:02} {t}+00'::timestamptz"),
            }
        }
    }
}

/// A value converted for Postgres (borrowing from SQLite where it can).
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Normalized decimal text: no exponent, no trailing fraction zeros.
    Numeric(String),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
}

/// Convert a SQLite value to `ty`, or say why it does not fit.
///
/// `lenient` admits conversions that change a value's representation but
/// not its content (text to bytea as UTF-8, UTF-8 blobs to text, numeric
/// text to numbers); it is used for explicit `--cast`s and by verification,
/// which compares whatever the target holds with the source.
pub fn convert<'a>(v: ValueRef<'a>, ty: &PgType, lenient: bool) -> Result<Val<'a>, String> {
    use ValueRef::*;
    if let Null = v {
        return Ok(Val::Null);
    }
    match ty {
        PgType::Boolean => match v {
            Integer(0) => Ok(Val::Bool(false)),
            Integer(1) => Ok(Val::Bool(true)),
            Text(t) if lenient => match t.to_ascii_lowercase().as_slice() {
                b"true" | b"t" | b"1" => Ok(Val::Bool(true)),
                b"false" | b"f" | b"0" => Ok(Val::Bool(false)),
                _ => Err(misfit(v, "is not a boolean")),
            },
            _ => Err(misfit(v, "is not 0 or 1")),
        },
        PgType::SmallInt | PgType::Integer | PgType::BigInt => {
            let (lo, hi) = match ty {
                PgType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                PgType::Integer => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            let n = match v {
                Integer(n) => n,
                Real(x) if lenient && x.fract() == 0.0 && x.abs() < 9.2e18 => x as i64,
                Text(t) if lenient => std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|n| n.to_string().as_bytes() == t)
                    .ok_or_else(|| misfit(v, "is not an integer"))?,
                _ => return Err(misfit(v, "is not an integer")),
            };
            if n < lo || n > hi {
                return Err(misfit(v, &format!("is out of range for {ty}")));
            }
            Ok(Val::Int(n))
        }
        PgType::Double => match v {
            Real(x) => Ok(Val::Float(x)),
            Integer(n) if (n as f64) as i64 == n && n != i64::MAX => Ok(Val::Float(n as f64)),
            Integer(_) => Err(misfit(v, "cannot be stored exactly as double precision")),
            Text(t) if lenient => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .map(Val::Float)
                .ok_or_else(|| misfit(v, "is not a number")),
            _ => Err(misfit(v, "is not a number")),
        },
        PgType::Numeric { precision, scale } => {
            let dec = match v {
                Integer(n) => n.to_string(),
                Real(x) if x.is_finite() => normalize_decimal(&format!("{x}")),
                Real(_) => return Err(misfit(v, "is infinite")),
                Text(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(parse_decimal)
                    .ok_or_else(|| misfit(v, "is not a number"))?,
                Blob(_) => return Err(misfit(v, "is not a number")),
                Null => unreachable!(),
            };
            if let Some(p) = precision {
                let (int, frac) = split_decimal(&dec);
                let int_digits = int.trim_start_matches('0').len() as u32;
                if frac.len() as u32 > *scale {
                    return Err(misfit(
                        v,
                        &format!("has more than {scale} decimal places ({ty} would round it)"),
                    ));
                }
                if int_digits > p - scale {
                    return Err(misfit(v, &format!("does not fit {ty}")));
                }
            }
            Ok(Val::Numeric(dec))
        }
        PgType::Text | PgType::Varchar(_) | PgType::Json => {
            let text: Cow<'a, str> = match v {
                Text(t) => Cow::Borrowed(text_of(v, t)?),
                Integer(n) => Cow::Owned(n.to_string()),
                Real(x) => Cow::Owned(real_text(x)),
                Blob(b) if lenient => Cow::Borrowed(text_of(v, b)?),
                Blob(_) => return Err(misfit(v, "is a blob, not text")),
                Null => unreachable!(),
            };
            if let PgType::Varchar(n) = ty {
                let len = text.chars().count();
                if len > *n as usize {
                    return Err(misfit(
                        v,
                        &format!("has {len} characters, more than {ty} allows"),
                    ));
                }
            }
            if *ty == PgType::Json && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err()
            {
                return Err(misfit(v, "is not valid JSON"));
            }
            Ok(Val::Text(text))
        }
        PgType::Bytea => match v {
            Blob(b) => Ok(Val::Bytes(Cow::Borrowed(b))),
            Text(t) if lenient => Ok(Val::Bytes(Cow::Borrowed(t))),
            _ => Err(misfit(v, "is not a blob")),
        },
        PgType::Date => match v {
            Text(t) => parse_date(t)
                .map(Val::Date)
                .ok_or_else(|| misfit(v, "is not a date (YYYY-MM-DD)")),
            _ => Err(misfit(v, "is not a date (YYYY-MM-DD)")),
        },
        PgType::Time => match v {
            Text(t) => parse_time(t)
                .map(Val::Time)
                .ok_or_else(|| misfit(v, "is not a time of day (HH:MM[:SS[.ffffff]])")),
            _ => Err(misfit(v, "is not a time of day (HH:MM[:SS[.ffffff]])")),
        },
        PgType::Timestamp | PgType::Timestamptz => match v {
            Text(t) => parse_timestamp(t)
                .map(Val::Timestamp)
                .map_err(|why| misfit(v, why)),
            Integer(n) if (MIN_UNIX..=MAX_UNIX).contains(&n) => {
                Ok(Val::Timestamp(n * 1_000_000))
            }
            Integer(_) => Err(misfit(
                v,
                "is out of range for unix seconds (milliseconds? use --cast ...=bigint)",
            )),
            Real(_) => Err(misfit(
                v,
                "is a real number, not a timestamp (a Julian day number? use --cast ...=double precision)",
            )),
            _ => Err(misfit(v, "is not a timestamp")),
        },
    }
}

/// 0001-01-01 and 9999-12-31T23:59:59 in unix seconds.
const MIN_UNIX: i64 = -62_135_596_800;
const MAX_UNIX: i64 = 253_402_300_799;

fn text_of<'a>(v: ValueRef<'_>, b: &'a [u8]) -> Result<&'a str, String> {
    let s = std::str::from_utf8(b).map_err(|_| misfit(v, "is not valid UTF-8"))?;
    if b.contains(&0) {
        return Err(misfit(v, "contains a NUL character (Postgres text cannot)"));
    }
    Ok(s)
}

/// "integer 7 is not 0 or 1", "text 'abc' is not a number", ...
fn misfit(v: ValueRef<'_>, why: &str) -> String {
    format!("{} {why}", describe(v))
}

/// A value as a report shows it: its storage class and a shortened rendering.
pub fn describe(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => format!("integer {n}"),
        ValueRef::Real(x) => format!("real {}", real_text(x)),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let short: String = s.chars().take(40).collect();
            let more = if s.chars().count() > 40 { "..." } else { "" };
            format!("text {short:?}{more}")
        }
        ValueRef::Blob(b) => {
            let head = hex::encode(&b[..b.len().min(16)]);
            let more = if b.len() > 16 { "..." } else { "" };
            format!("blob of {} bytes x'{head}{more}'", b.len())
        }
    }
}

/// A real as text: shortest form that reads back to the same double, and
/// always recognisable as a real (`5.0`, `1e300`), like SQLite prints it.
pub fn real_text(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    format!("{x:?}")
}

/// Strip fraction zeros and a negative zero: `12.30` -> `12.3`, `-0` -> `0`.
fn normalize_decimal(s: &str) -> String {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::new();
    if neg && (int != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Parse decimal text (`-12.5`, `1e3`, `.5`) exactly into normalized form.
pub fn parse_decimal(s: &str) -> Option<String> {
    let s = s.trim();
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(p) => (&s[..p], s[p + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, m) = match mant.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || exp.unsigned_abs() > 1000
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp as i64; // position of the decimal point in `digits`
    let (i, f) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    };
    let sign = if neg { "-" } else { "" };
    Some(normalize_decimal(&format!("{sign}{i}.{f}")))
}

/// ("123", "45") for "-123.45".
fn split_decimal(d: &str) -> (&str, &str) {
    let d = d.strip_prefix('-').unwrap_or(d);
    d.split_once('.').unwrap_or((d, ""))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, d| a * 10 + (d - b'0') as u32))
}

/// `YYYY-MM-DD` -> days since 1970-01-01 (years 0001-9999, real dates only).
fn parse_date(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[..4])?, digits(&b[5..7])?, digits(&b[8..])?);
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    Some(days_from_civil(y as i64, m, d) as i32)
}

/// `HH:MM[:SS[.f...]]` -> microseconds since midnight.
fn parse_time(b: &[u8]) -> Option<i64> {
    parse_clock(b)
        .ok()
        .filter(|(_, rest)| rest.is_empty())
        .map(|(us, _)| us)
}

/// Parse `HH:MM[:SS[.f...]]` at the start of `b`: (microseconds, rest).
fn parse_clock(b: &[u8]) -> Result<(i64, &[u8]), &'static str> {
    const BAD: &str = "has an invalid time of day";
    if b.len() < 5 || b[2] != b':' {
        return Err(BAD);
    }
    let h = digits(&b[..2]).ok_or(BAD)?;
    let mi = digits(&b[3..5]).ok_or(BAD)?;
    let mut rest = &b[5..];
    let mut s = 0;
    let mut us = 0i64;
    if rest.first() == Some(&b':') {
        s = digits(rest.get(1..3).ok_or(BAD)?).ok_or(BAD)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(BAD);
            }
            let frac = &rest[1..1 + n];
            if n > 6 && frac[6..].iter().any(|&c| c != b'0') {
                return Err("has sub-microsecond precision Postgres would round");
            }
            for i in 0..6 {
                us = us * 10 + frac.get(i).map(|c| (c - b'0') as i64).unwrap_or(0);
            }
            rest = &rest[1 + n..];
        }
    }
    if h > 23 || mi > 59 || s > 59 {
        return Err(BAD);
    }
    Ok((
        ((h as i64 * 60 + mi as i64) * 60 + s as i64) * 1_000_000 + us,
        rest,
    ))
}

/// ISO 8601 text -> microseconds since 1970 UTC. Accepts `YYYY-MM-DD`,
/// then optionally ` ` or `T`, `HH:MM[:SS[.f]]`, then optionally `Z`,
/// `±HH:MM`, `±HHMM` or `±HH`. Text without an offset is UTC (what
/// SQLite's own `CURRENT_TIMESTAMP` and date functions write).
pub fn parse_timestamp(b: &[u8]) -> Result<i64, &'static str> {
    const BAD: &str = "is not an ISO 8601 date/time";
    if b.len() < 10 {
        return Err(BAD);
    }
    let days = parse_date(&b[..10]).ok_or(BAD)? as i64;
    let mut rest = &b[10..];
    let mut us = 0;
    if let Some(&sep) = rest.first() {
        if sep != b' ' && sep != b'T' {
            return Err(BAD);
        }
        let (t, r) = parse_clock(&rest[1..])?;
        us = t;
        rest = r;
    }
    let offset_s: i64 = match rest {
        [] => 0,
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (digits(&[*h1, *h2]).ok_or(BAD)?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (
                    digits(&[*h1, *h2]).ok_or(BAD)?,
                    digits(&[*m1, *m2]).ok_or(BAD)?,
                ),
                _ => return Err(BAD),
            };
            if h > 23 || m > 59 {
                return Err(BAD);
            }
            let s = (h * 3600 + m * 60) as i64;
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return Err(BAD),
    };
    Ok((days * 86_400 - offset_s) * 1_000_000 + us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ValueRef::*;

    fn conv<'a>(v: ValueRef<'a>, ty: &PgType) -> Result<Val<'a>, String> {
        convert(v, ty, false)
    }

    #[test]
    fn declared_types_follow_affinity_rules() {
        let ts = TimestampType::Timestamptz;
        let m = |d: &str| map_declared(d, ts);
        assert_eq!(m("INTEGER"), Mapped::Fixed(PgType::BigInt));
        assert_eq!(m("TINYINT(1)"), Mapped::Fixed(PgType::BigInt));
        assert_eq!(m("VARCHAR(64)"), Mapped::Fixed(PgType::Varchar(64)));
        assert_eq!(m("CHAR(2)"), Mapped::Fixed(PgType::Varchar(2)));
        assert_eq!(m("TEXT"), Mapped::Fixed(PgType::Text));
        assert_eq!(m("BLOB"), Mapped::Fixed(PgType::Bytea));
        assert_eq!(m("REAL"), Mapped::Fixed(PgType::Double));
        assert_eq!(m("DOUBLE PRECISION"), Mapped::Fixed(PgType::Double));
        assert_eq!(m("BOOLEAN"), Mapped::Fixed(PgType::Boolean));
        assert_eq!(m("DATE"), Mapped::Fixed(PgType::Date));
        assert_eq!(m("DATETIME"), Mapped::Fixed(PgType::Timestamptz));
        assert_eq!(
            map_declared("TIMESTAMP", TimestampType::Timestamp),
            Mapped::Fixed(PgType::Timestamp)
        );
        assert_eq!(
            m("NUMERIC(10,2)"),
            Mapped::Fixed(PgType::Numeric {
                precision: Some(10),
                scale: 2
            })
        );
        assert_eq!(
            m("DECIMAL"),
            Mapped::Fixed(PgType::Numeric {
                precision: None,
                scale: 0
            })
        );
        assert_eq!(m(""), Mapped::Infer);
        assert_eq!(m("STRING"), Mapped::Infer);
        // "POINT" contains INT: SQLite gives it integer affinity, so do we.
        assert_eq!(m("POINT"), Mapped::Fixed(PgType::BigInt));
    }

    #[test]
    fn cast_names_parse_including_format_type_output() {
        for (s, t) in [
            ("text", PgType::Text),
            ("double precision", PgType::Double),
            ("character varying(64)", PgType::Varchar(64)),
            ("timestamp with time zone", PgType::Timestamptz),
            (
                "numeric(10,2)",
                PgType::Numeric {
                    precision: Some(10),
                    scale: 2,
                },
            ),
            ("BIGINT", PgType::BigInt),
        ] {
            assert_eq!(PgType::parse(s), Some(t.clone()), "{s}");
            assert_eq!(PgType::parse(&t.to_string()), Some(t));
        }
        assert_eq!(PgType::parse("uuid"), None);
        assert_eq!(PgType::parse("numeric(2,3)"), None);
    }

    #[test]
    fn values_fit_or_are_misfits_with_a_reason() {
        assert_eq!(conv(Integer(1), &PgType::Boolean), Ok(Val::Bool(true)));
        assert!(conv(Integer(2), &PgType::Boolean)
            .unwrap_err()
            .contains("integer 2 is not 0 or 1"));
        assert!(conv(Text(b"true"), &PgType::Boolean).is_err());
        assert_eq!(
            convert(Text(b"true"), &PgType::Boolean, true),
            Ok(Val::Bool(true))
        );
        assert!(conv(Text(b"N/A"), &PgType::BigInt)
            .unwrap_err()
            .contains("text \"N/A\" is not an integer"));
        assert!(conv(Integer(70000), &PgType::SmallInt).is_err());
        assert_eq!(conv(Integer(3), &PgType::Double), Ok(Val::Float(3.0)));
        assert!(conv(Integer(i64::MAX), &PgType::Double).is_err());
        assert!(conv(Text(b"abc"), &PgType::Double).is_err());
        let n102 = PgType::Numeric {
            precision: Some(10),
            scale: 2,
        };
        assert_eq!(conv(Real(12.34), &n102), Ok(Val::Numeric("12.34".into())));
        assert_eq!(conv(Real(12.3), &n102), Ok(Val::Numeric("12.3".into())));
        assert_eq!(conv(Integer(-5), &n102), Ok(Val::Numeric("-5".into())));
        assert!(conv(Real(12.345), &n102)
            .unwrap_err()
            .contains("decimal places"));
        assert!(conv(Real(123456789012.5), &n102)
            .unwrap_err()
            .contains("does not fit"));
        assert_eq!(
            conv(Real(99999999.99), &n102),
            Ok(Val::Numeric("99999999.99".into()))
        );
        assert!(conv(Real(f64::INFINITY), &n102).is_err());
        assert_eq!(
            conv(
                Text(b"123456789012345678901234567890"),
                &PgType::Numeric {
                    precision: None,
                    scale: 0
                }
            ),
            Ok(Val::Numeric("123456789012345678901234567890".into()))
        );
        assert!(conv(Text(b"a\0b"), &PgType::Text)
            .unwrap_err()
            .contains("NUL"));
        assert!(conv(Text(b"\xc3\x28abc"), &PgType::Text)
            .unwrap_err()
            .contains("UTF-8"));
        assert!(conv(Blob(b"\xff\xfe"), &PgType::Text)
            .unwrap_err()
            .contains("blob of 2 bytes"));
        assert_eq!(conv(Real(5.0), &PgType::Text), Ok(Val::Text("5.0".into())));
        assert_eq!(
            conv(Real(52.520008), &PgType::Text),
            Ok(Val::Text("52.520008".into()))
        );
        assert_eq!(conv(Integer(7), &PgType::Text), Ok(Val::Text("7".into())));
        assert!(conv(Text("ünï🚀x".as_bytes()), &PgType::Varchar(4))
            .unwrap_err()
            .contains("5 characters"));
        assert!(conv(Text("ünï🚀".as_bytes()), &PgType::Varchar(4)).is_ok());
        assert!(conv(Text(b"{\"a\":1"), &PgType::Json).is_err());
        assert!(conv(Text(b"i am text"), &PgType::Bytea).is_err());
        assert!(convert(Text(b"i am text"), &PgType::Bytea, true).is_ok());
        assert_eq!(conv(Null, &PgType::Date), Ok(Val::Null));
    }

    #[test]
    fn dates_and_times() {
        let ts = PgType::Timestamptz;
        assert_eq!(conv(Text(b"1970-01-01"), &PgType::Date), Ok(Val::Date(0)));
        assert_eq!(
            conv(Text(b"2000-03-01"), &PgType::Date),
            Ok(Val::Date(11017))
        );
        assert!(conv(Text(b"2021-02-29"), &PgType::Date).is_err());
        assert!(conv(Text(b"0000-00-00"), &PgType::Date).is_err());
        assert!(conv(Text(b""), &PgType::Date).is_err());
        assert_eq!(
            conv(Text(b"2021-03-04 05:06:07"), &ts),
            Ok(Val::Timestamp(1_614_834_367_000_000))
        );
        assert_eq!(
            conv(Text(b"2021-03-04T05:06:07.123Z"), &ts),
            Ok(Val::Timestamp(1_614_834_367_123_000))
        );
        assert_eq!(
            conv(Text(b"2021-03-04T07:06:07+02:00"), &ts),
            Ok(Val::Timestamp(1_614_834_367_000_000))
        );
        assert_eq!(
            conv(Text(b"2021-03-04T05:06:07.1234560"), &ts),
            Ok(Val::Timestamp(1_614_834_367_123_456))
        );
        assert!(conv(Text(b"2021-03-04T05:06:07.1234567"), &ts)
            .unwrap_err()
            .contains("sub-microsecond"));
        assert_eq!(
            conv(Integer(1_614_834_367), &ts),
            Ok(Val::Timestamp(1_614_834_367_000_000))
        );
        assert!(conv(Integer(1_614_834_367_123), &ts)
            .unwrap_err()
            .contains("milliseconds"));
        assert!(conv(Real(2459277.75), &ts).unwrap_err().contains("Julian"));
        assert!(conv(Text(b"0000-00-00 00:00:00"), &ts).is_err());
        assert!(conv(Text(b"2021-03-04 24:00:00"), &ts).is_err());
        assert_eq!(
            conv(Text(b"05:06:07.5"), &PgType::Time),
            Ok(Val::Time(18_367_500_000))
        );
    }

    #[test]
    fn affinity_and_literals() {
        assert_eq!(affinity("BOOLEAN"), Affinity::Numeric);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(
            Owned::Text("1".into()).with_affinity(Affinity::Numeric),
            Owned::Integer(1)
        );
        assert_eq!(
            Owned::Integer(1).with_affinity(Affinity::Text),
            Owned::Text("1".into())
        );
        assert_eq!(
            Owned::Integer(1).with_affinity(Affinity::Real),
            Owned::Real(1.0)
        );
        assert_eq!(
            Owned::Text("abc".into()).with_affinity(Affinity::Integer),
            Owned::Text("abc".into())
        );
        for d in [-719_468i64, -1, 0, 10_957, 11_016, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            pg_literal(&Val::Timestamp(1_614_834_367_500_000), &PgType::Timestamptz),
            "'2021-03-04 05:06:07.500000+00'::timestamptz"
        );
        assert_eq!(
            pg_literal(&Val::Date(0), &PgType::Date),
            "'1970-01-01'::date"
        );
        assert_eq!(
            pg_literal(&Val::Text("it's".into()), &PgType::Text),
            "'it''s'"
        );
        assert_eq!(
            pg_literal(&Val::Bytes(Cow::Borrowed(b"\x01")), &PgType::Bytea),
            "'\\x01'::bytea"
        );
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("1e3").unwrap(), "1000");
        assert_eq!(parse_decimal("-0.00").unwrap(), "0");
        assert_eq!(parse_decimal(".5").unwrap(), "0.5");
        assert_eq!(parse_decimal("12.50E-3").unwrap(), "0.0125");
        assert_eq!(parse_decimal("+007.10").unwrap(), "7.1");
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("1.2.3"), None);
        assert_eq!(parse_decimal(""), None);
    }

    proptest! {
        // Our ISO parser against SQLite's own date functions.
        #[test]
        fn timestamps_agree_with_sqlite(secs in -62_135_596_800i64..253_402_300_799, ms in 0u32..1000,
                                        form in 0usize..4, off_min in -840i32..840) {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            let base: String = conn.query_row(
                "SELECT strftime('%Y-%m-%d %H:%M:%S', ?1, 'unixepoch')", [secs], |r| r.get(0)).unwrap();
            let text = match form {
                0 => base.clone(),
                1 => format!("{}.{ms:03}", base.replacen(' ', "T", 1)),
                2 => format!("{base}.{ms:03}Z"),
                _ => format!("{base}{}{:02}:{:02}", if off_min < 0 {'-'} else {'+'}, off_min.abs() / 60, off_min.abs() % 60),
            };
            let ours = parse_timestamp(text.as_bytes()).unwrap();
            let theirs: f64 = conn.query_row("SELECT unixepoch(?1, 'subsec')", [&text], |r| r.get(0)).unwrap();
            prop_assert_eq!((ours as f64 / 1000.0).round() as i64, (theirs * 1000.0).round() as i64, "{}", text);
        }

        // Reals written to numeric read back as the same double.
        #[test]
        fn numeric_from_real_round_trips(x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
            let Val::Numeric(d) = convert(Real(x), &PgType::Numeric { precision: None, scale: 0 }, false).unwrap() else { unreachable!() };
            prop_assert_eq!(d.parse::<f64>().unwrap(), x);
            prop_assert!(!d.ends_with('.'));
            prop_assert!(!(d.contains('.') && d.ends_with('0')));
        }
    }
}
