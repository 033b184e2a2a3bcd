//! `datatier migrate sqlite-to-postgres` against a real Postgres started by
//! the test (tests/support/pg.rs), on SQLite fixtures the tests build.
//! Results are checked independently: values read back with psql and
//! compared with what rusqlite reads from the source, the catalog queried
//! for types, constraints, indexes and identities — not only through
//! datatier's own verification.
//!
//! Ports: 24000-24499 (see tests/support/mod.rs).

mod support;

use md5::{Digest, Md5};
use rusqlite::types::ValueRef;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::pg::Pg;
use support::{eventually, Scratch};

fn sqlite(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap_or_else(|e| panic!("fixture: {e}"));
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Everything the issue lists, in one database.
const FIXTURE: &str = r#"
PRAGMA foreign_keys = ON;
CREATE TABLE "Order" (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    "customer name" TEXT NOT NULL,
    "select"      INTEGER NOT NULL DEFAULT 0 CHECK ("select" >= 0),
    total         NUMERIC(10,2) NOT NULL DEFAULT 0,
    paid          BOOLEAN NOT NULL DEFAULT 0,
    placed        DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    placed_unix   DATETIME,
    due           DATE,
    ratio         REAL,
    note          TEXT COLLATE NOCASE,
    payload       BLOB,
    misc,
    raw
);
CREATE TABLE line_items (
    order_id INTEGER NOT NULL REFERENCES "Order"(id) ON DELETE CASCADE ON UPDATE CASCADE,
    line     INTEGER NOT NULL,
    sku      VARCHAR(16) NOT NULL,
    qty      INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, line)
);
CREATE TABLE categories (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES categories(id) ON DELETE SET NULL,
    name      TEXT NOT NULL UNIQUE
);
CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, updated INTEGER) WITHOUT ROWID;
CREATE INDEX ix_order_customer ON "Order"("customer name", placed DESC);
CREATE INDEX ix_unpaid ON "Order"(placed) WHERE paid = 0;
CREATE UNIQUE INDEX ix_lower_name ON categories(lower(name));
CREATE VIEW unpaid_orders AS SELECT id, "customer name" FROM "Order" WHERE paid = 0;
CREATE VIEW misc_types AS SELECT typeof(misc) AS t FROM "Order";
CREATE TRIGGER touch AFTER UPDATE ON kv BEGIN UPDATE kv SET updated = 1 WHERE k = NEW.k; END;
"#;

/// Build the fixture: rows with unicode, NULLs, mixed-affinity values,
/// ISO and unix dates, a multi-megabyte blob; deleted rows so that
/// sqlite_sequence is past max(id); ANALYZE for sqlite_stat1.
fn build_fixture(path: &Path) {
    sqlite(path, FIXTURE);
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let tx = c.transaction().unwrap();
    let names = [
        "Zoë Ødegaard",
        "李 王",
        "O'Brien; DROP",
        "emoji 🚀 ✓",
        "Иван",
        "plain",
    ];
    for i in 1..=600i64 {
        let misc: rusqlite::types::Value = match i % 4 {
            0 => rusqlite::types::Value::Integer(i * 7),
            1 => rusqlite::types::Value::Real(i as f64 / 3.0),
            2 => rusqlite::types::Value::Text(format!("{{\"n\": {i}}}")),
            _ => rusqlite::types::Value::Null,
        };
        let payload: Option<Vec<u8>> = match i {
            1 => Some((0..3_000_000u32).map(|x| (x * 7 % 251) as u8).collect()),
            _ if i % 3 == 0 => Some(vec![(i % 256) as u8; (i % 50) as usize]),
            _ => None,
        };
        tx.execute(
            r#"INSERT INTO "Order" ("customer name", "select", total, paid, placed, placed_unix, due, ratio, note, payload, misc, raw)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"#,
            rusqlite::params![
                format!("{} #{i}", names[i as usize % names.len()]),
                i % 5,
                (i as f64 * 1.25 + 0.1).round() / 100.0 * 100.0 / 100.0,
                i % 2,
                if i % 5 == 0 {
                    format!("2021-03-{:02}T10:{:02}:07.123Z", i % 28 + 1, i % 60)
                } else {
                    format!("2020-{:02}-{:02} 08:00:{:02}", i % 12 + 1, i % 28 + 1, i % 60)
                },
                if i % 4 == 0 { None } else { Some(1_600_000_000 + i * 3600) },
                if i % 7 == 0 { None } else { Some(format!("2022-{:02}-{:02}", i % 12 + 1, i % 28 + 1)) },
                if i % 6 == 0 { None } else { Some(i as f64 * 0.1 + 1e-9) },
                if i % 2 == 0 { Some(format!("note ünïcödé {i}")) } else { None },
                payload,
                misc,
                vec![(i % 256) as u8, 0, 255],
            ],
        )
        .unwrap();
        for line in 1..=(i % 3 + 1) {
            tx.execute(
                "INSERT INTO line_items VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![i, line, format!("SKU-{i}-{line}"), line * 2],
            )
            .unwrap();
        }
    }
    for i in 1..=30i64 {
        let parent = if i <= 3 { None } else { Some(i / 3) };
        tx.execute(
            "INSERT INTO categories VALUES (?1, ?2, ?3)",
            rusqlite::params![i, parent, format!("Category {i}")],
        )
        .unwrap();
    }
    for i in 0..50i64 {
        tx.execute(
            "INSERT INTO kv VALUES (?1, ?2, ?3)",
            rusqlite::params![format!("key-{i:03}"), vec![i as u8; (i * 13) as usize], i],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    // history: the newest orders were deleted (cascading to their lines)
    c.execute_batch(r#"DELETE FROM "Order" WHERE id > 590; ANALYZE;"#)
        .unwrap();
}

/// Compare every row of a table field by field: SQLite through rusqlite,
/// Postgres through psql, with `pg_exprs` rendering each column so that
/// `same` can compare it with the SQLite value.
fn compare_table(
    pg: &Pg,
    db: &str,
    src: &Path,
    sqlite_sql: &str,
    pg_sql: &str,
    same: &dyn Fn(usize, ValueRef<'_>, &str) -> bool,
) -> usize {
    let conn = rusqlite::Connection::open(src).unwrap();
    let mut st = conn.prepare(sqlite_sql).unwrap();
    let n = st.column_count();
    let mut rows = st.query([]).unwrap();
    let theirs = pg.rows(db, pg_sql);
    let mut count = 0;
    while let Some(r) = rows.next().unwrap() {
        let p = theirs
            .get(count)
            .unwrap_or_else(|| panic!("Postgres has fewer rows than SQLite ({count})"));
        assert_eq!(p.len(), n, "row {count}: Postgres has {} fields", p.len());
        for (i, field) in p.iter().enumerate() {
            let v = r.get_ref(i).unwrap();
            assert!(
                same(i, v, field),
                "row {count}, column {i}: SQLite {v:?} vs Postgres {field:?}"
            );
        }
        count += 1;
    }
    assert_eq!(count, theirs.len(), "row counts differ");
    count
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

#[test]
fn migrates_every_kind_of_schema_object_and_value_exactly() {
    let s = Scratch::new();
    let Some(pg) = Pg::start(&s, 24001, None) else {
        return;
    };
    pg.create_db("app");
    let src = s.path().join("app.db");
    build_fixture(&src);
    let url = pg.url("app");
    let srcs = src.to_str().unwrap();

    // --dry-run: the plan, and nothing written
    let plan = s.ok(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--dry-run",
    ]);
    assert!(plan.contains("table Order -> public.order"), "{plan}");
    assert!(
        plan.contains("misc_types") && plan.contains("typeof"),
        "{plan}"
    );
    assert!(plan.contains("trigger touch"), "{plan}");
    assert!(
        plan.contains("id continues at 601 (sqlite_sequence 600 > max(id) 590)"),
        "{plan}"
    );
    assert_eq!(
        pg.one(
            "app",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    // without --yes and without a terminal: refused, nothing written
    let o = s
        .cmd(&[
            "migrate",
            "sqlite-to-postgres",
            "--from",
            srcs,
            "--to",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        out(&o).contains("stdin is not a terminal") && out(&o).contains("--yes"),
        "{}",
        out(&o)
    );
    assert_eq!(
        pg.one(
            "app",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    let report = s.ok(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
    ]);
    assert!(
        report.contains("Verification") && report.contains(": OK"),
        "{report}"
    );

    // tables: ours only, never sqlite_* internals
    assert_eq!(
        pg.psql(
            "app",
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ),
        "categories\nkv\nline_items\norder\n"
    );
    // types and NOT NULL, as the catalog says
    let cols = pg.psql(
        "app",
        "SELECT column_name || ' ' || data_type || coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '') \
         || ' ' || is_nullable FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'order' ORDER BY ordinal_position",
    );
    for want in [
        "id bigint(64,0) NO",
        "customer name text NO",
        "select bigint(64,0) NO",
        "total numeric(10,2) NO",
        "paid boolean NO",
        "placed timestamp with time zone NO",
        "placed_unix timestamp with time zone YES",
        "due date YES",
        "ratio double precision YES",
        "payload bytea YES",
        "misc text YES",
        "raw bytea YES",
    ] {
        assert!(
            cols.lines().any(|l| l == want),
            "missing `{want}` in:\n{cols}"
        );
    }
    let notnull_sqlite: i64 = rusqlite::Connection::open(&src)
        .unwrap()
        .query_row(
            "SELECT sum(\"notnull\" OR pk > 0) FROM pragma_table_list t, pragma_table_info(t.name) \
             WHERE t.schema = 'main' AND t.type = 'table' AND t.name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        pg.one("app", "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND is_nullable = 'NO'"),
        notnull_sqlite.to_string()
    );
    // defaults translated
    let defaults = pg.psql(
        "app",
        "SELECT column_name || '=' || column_default FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'order' AND column_default IS NOT NULL ORDER BY 1",
    );
    assert!(defaults.contains("paid=false"), "{defaults}");
    assert!(defaults.contains("placed=CURRENT_TIMESTAMP"), "{defaults}");
    assert!(defaults.contains("select=0"), "{defaults}");
    // constraints: composite PK, UNIQUE, CHECKs, FK actions (c = cascade, n = set null)
    let cons = pg.psql(
        "app",
        "SELECT conrelid::regclass::text || ' ' || contype::text || ' ' || confdeltype::text || confupdtype::text || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
    );
    for want in [
        "line_items p    PRIMARY KEY (order_id, line)",
        "categories u    UNIQUE (name)",
        "line_items c    CHECK ((qty > 0))",
        "\"order\" c    CHECK ((\"select\" >= 0))",
        "line_items f cc FOREIGN KEY (order_id) REFERENCES \"order\"(id) ON UPDATE CASCADE ON DELETE CASCADE",
        "categories f na FOREIGN KEY (parent_id) REFERENCES categories(id) ON DELETE SET NULL",
        "kv p    PRIMARY KEY (k)",
    ] {
        assert!(cons.lines().any(|l| l == want), "missing `{want}` in:\n{cons}");
    }
    // indexes: multi-column with DESC, partial, expression; no duplicate of the PK
    let idx = pg.psql("app", "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1");
    assert!(idx.contains("ix_order_customer: CREATE INDEX ix_order_customer ON public.\"order\" USING btree (\"customer name\", placed DESC)"), "{idx}");
    assert!(idx.contains("ix_unpaid: CREATE INDEX ix_unpaid ON public.\"order\" USING btree (placed) WHERE ((paid)::integer = 0)"), "{idx}");
    assert!(idx.contains("ix_lower_name: CREATE UNIQUE INDEX ix_lower_name ON public.categories USING btree (lower(name))"), "{idx}");
    assert_eq!(
        pg.one(
            "app",
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
        ),
        "8", // 4 primary keys + 1 unique constraint + 3 indexes
        "{idx}"
    );
    // views: translated one works, untranslatable one is not there
    assert_eq!(
        pg.one("app", "SELECT count(*) FROM unpaid_orders"),
        rusqlite::Connection::open(&src)
            .unwrap()
            .query_row("SELECT count(*) FROM unpaid_orders", [], |r| r
                .get::<_, i64>(0))
            .unwrap()
            .to_string()
    );
    assert_eq!(
        pg.one(
            "app",
            "SELECT count(*) FROM pg_views WHERE viewname = 'misc_types'"
        ),
        "0"
    );
    // identity continues after the AUTOINCREMENT high-water mark, not max(id)
    assert_eq!(
        pg.one(
            "app",
            "INSERT INTO \"order\" (\"customer name\") VALUES ('new') RETURNING id"
        ),
        "601"
    );
    pg.psql("app", "DELETE FROM \"order\" WHERE id = 601");
    assert_eq!(
        pg.one(
            "app",
            "INSERT INTO categories (name) VALUES ('new') RETURNING id"
        ),
        "31"
    );
    pg.psql("app", "DELETE FROM categories WHERE id = 31");

    // every value, compared with what rusqlite reads
    let float_eq = |v: ValueRef<'_>, p: &str| match v {
        ValueRef::Null => p.is_empty(),
        ValueRef::Real(x) => p.parse::<f64>().unwrap() == x,
        ValueRef::Integer(n) => p.parse::<f64>().unwrap() == n as f64,
        _ => false,
    };
    let n = compare_table(
        &pg,
        "app",
        &src,
        r#"SELECT id, "customer name", "select", printf('%.2f', total), paid,
                  CAST(strftime('%s', placed) AS INTEGER) * 1000 + CAST(substr(strftime('%f', placed), 4) AS INTEGER),
                  placed_unix, due, ratio, note, payload, misc, raw
           FROM "Order" ORDER BY id"#,
        r#"SELECT id, "customer name", "select", total, paid::int,
                  (extract(epoch FROM placed) * 1000)::bigint,
                  extract(epoch FROM placed_unix)::bigint, due, ratio, note,
                  md5(payload), misc, encode(raw, 'hex')
           FROM "order" ORDER BY id"#,
        &|i, v, p| match (i, v) {
            (8, v) => float_eq(v, p),
            (10, ValueRef::Blob(b)) => md5_hex(b) == p,
            (11, ValueRef::Real(x)) => p.parse::<f64>().unwrap() == x && p.contains('.'),
            (12, ValueRef::Blob(b)) => hex::encode(b) == p,
            (_, ValueRef::Null) => p.is_empty(),
            (_, ValueRef::Integer(n)) => n.to_string() == p,
            (_, ValueRef::Text(t)) => std::str::from_utf8(t).unwrap() == p,
            _ => false,
        },
    );
    assert_eq!(n, 590);
    let n = compare_table(
        &pg,
        "app",
        &src,
        "SELECT k, v, updated FROM kv ORDER BY k",
        "SELECT k, encode(v, 'hex'), updated FROM kv ORDER BY k COLLATE \"C\"",
        &|_, v, p| match v {
            ValueRef::Text(t) => std::str::from_utf8(t).unwrap() == p,
            ValueRef::Blob(b) => hex::encode(b) == p,
            ValueRef::Integer(n) => n.to_string() == p,
            _ => false,
        },
    );
    assert_eq!(n, 50);
    assert_eq!(
        pg.one("app", "SELECT count(*) || ' ' || sum(qty) FROM line_items"),
        rusqlite::Connection::open(&src)
            .unwrap()
            .query_row(
                "SELECT count(*) || ' ' || sum(qty) FROM line_items",
                [],
                |r| r.get::<_, String>(0)
            )
            .unwrap()
    );

    // verification on its own: OK, in JSON too
    let v = s.ok(&[
        "migrate", "verify", "--from", srcs, "--to", &url, "-o", "json",
    ]);
    let j: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(j["ok"], true, "{v}");
    assert_eq!(j["tables"].as_array().unwrap().len(), 4);
    assert!(!v.contains("\"problem\""), "{v}");

    // one changed value is found, named by table and column, exit 1
    pg.psql(
        "app",
        "UPDATE \"order\" SET ratio = ratio + 1e-12 WHERE id = 7",
    );
    let o = s.run(&["migrate", "verify", "--from", srcs, "--to", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("order: values differ in column(s): ratio"),
        "{}",
        out(&o)
    );
    // and a missing row
    pg.psql(
        "app",
        "DELETE FROM line_items WHERE order_id = 3 AND line = 1",
    );
    let lines: i64 = rusqlite::Connection::open(&src)
        .unwrap()
        .query_row("SELECT count(*) FROM line_items", [], |r| r.get(0))
        .unwrap();
    let o = s.run(&["migrate", "verify", "--from", srcs, "--to", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "line_items: {lines} rows in SQLite, {} in Postgres",
            lines - 1
        )),
        "{}",
        out(&o)
    );
}

#[test]
fn misfits_abort_before_writing_or_are_rejected_or_cast() {
    let s = Scratch::new();
    let Some(pg) = Pg::start(&s, 24011, None) else {
        return;
    };
    pg.create_db("m");
    let src = s.path().join("m.db");
    sqlite(
        &src,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, flag BOOLEAN, n INTEGER, label TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100)
         INSERT INTO t SELECT i, i % 2, i * 10, 'row ' || i FROM c;
         UPDATE t SET flag = 2 WHERE id = 7;
         UPDATE t SET n = 'N/A' WHERE id = 9;",
    );
    let url = pg.url("m");
    let srcs = src.to_str().unwrap();
    let base = [
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
    ];

    // abort (default): preflight finds both, names them, writes nothing
    let o = s.run(&base);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("t.flag (boolean): 1 value(s)")
            && text.contains("rowid 7: integer 2 is not 0 or 1"),
        "{text}"
    );
    assert!(
        text.contains("t.n (bigint): 1 value(s)")
            && text.contains("rowid 9: text \"N/A\" is not an integer"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(
        pg.one(
            "m",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    // abort found while loading (preflight told to check only typed columns)
    let mut args = base.to_vec();
    args.extend([
        "--schema",
        "load_abort",
        "--scan",
        "constrained",
        "--cast",
        "t.flag=text",
    ]);
    let o = s.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("table t, column n, rowid 9: text \"N/A\" is not an integer"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("--resume"), "{}", out(&o));
    assert_eq!(
        pg.one("m", "SELECT count(*) FROM load_abort.t"),
        "0",
        "a failed COPY leaves nothing"
    );
    // resume the same run, now skipping bad rows
    let mut resume = args.clone();
    resume.extend(["--resume", "--on-error", "skip"]);
    let o = s.run(&resume);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(pg.one("m", "SELECT count(*) FROM load_abort.t"), "99");

    // skip: the rows are left out and listed with table, rowid and reason
    let rejects = s.path().join("rejects.jsonl");
    let mut args = base.to_vec();
    args.extend(["--on-error", "skip", "--rejects", rejects.to_str().unwrap()]);
    let report = s.ok(&args);
    assert!(report.contains("2 rows rejected"), "{report}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (
            lines[0]["table"].as_str(),
            lines[0]["rowid"].as_i64(),
            lines[0]["column"].as_str()
        ),
        (Some("t"), Some(7), Some("flag"))
    );
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("integer 2 is not 0 or 1"));
    assert_eq!(
        (lines[1]["rowid"].as_i64(), lines[1]["column"].as_str()),
        (Some(9), Some("n"))
    );
    assert_eq!(
        pg.one("m", "SELECT count(*) || ' ' || sum(id) FROM t"),
        format!("98 {}", 5050 - 7 - 9)
    );
    assert_eq!(
        pg.one("m", "SELECT count(*) FROM t WHERE id IN (7, 9)"),
        "0"
    );
    // verification accounts for the rejected rows
    let v = s.ok(&[
        "migrate",
        "verify",
        "--from",
        srcs,
        "--to",
        &url,
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(v.contains(": OK"), "{v}");

    // --cast: the values keep their exact form in the chosen type
    let mut args = base.to_vec();
    args.extend([
        "--schema",
        "casted",
        "--cast",
        "t.flag=smallint",
        "--cast",
        "t.n=text",
    ]);
    s.ok(&args);
    assert_eq!(
        pg.one("m", "SELECT flag || ' ' || n FROM casted.t WHERE id = 7"),
        "2 70"
    );
    assert_eq!(pg.one("m", "SELECT n FROM casted.t WHERE id = 9"), "N/A");
    assert_eq!(pg.one("m", "SELECT count(*) FROM casted.t"), "100");
}

#[test]
fn a_non_empty_target_is_refused_unless_told_what_to_do() {
    let s = Scratch::new();
    let Some(pg) = Pg::start(&s, 24021, None) else {
        return;
    };
    pg.create_db("busy");
    pg.psql(
        "busy",
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)",
    );
    let src = s.path().join("a.db");
    sqlite(&src, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items VALUES (1, 'a'), (2, 'b');");
    let url = pg.url("busy");
    let srcs = src.to_str().unwrap();
    let o = s.run(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("not empty (table precious)") && out(&o).contains("nothing was changed"),
        "{}",
        out(&o)
    );
    assert_eq!(
        pg.one(
            "busy",
            "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
        ),
        "precious"
    );
    assert_eq!(pg.one("busy", "SELECT x FROM precious"), "42");

    // --if-exists drop: only same-named objects are replaced
    pg.psql(
        "busy",
        "CREATE TABLE items (old text); INSERT INTO items VALUES ('stale')",
    );
    s.ok(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
        "--if-exists",
        "drop",
    ]);
    assert_eq!(
        pg.one(
            "busy",
            "SELECT string_agg(name, ',' ORDER BY id) FROM items"
        ),
        "a,b"
    );
    assert_eq!(pg.one("busy", "SELECT x FROM precious"), "42");
    // --truncate: the existing table is emptied and loaded again, no duplicates
    sqlite(&src, "INSERT INTO items VALUES (3, 'c');");
    s.ok(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
        "--truncate",
    ]);
    assert_eq!(
        pg.one(
            "busy",
            "SELECT string_agg(name, ',' ORDER BY id) FROM items"
        ),
        "a,b,c"
    );
}

/// Start a migration as a child process we can kill.
fn spawn(s: &Scratch, args: &[&str]) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("datatier"))
        .current_dir(s.path())
        .args(args)
        .env_remove("DATATIER_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn journal(s: &Scratch) -> Option<serde_json::Value> {
    let dir = s.path().join(".datatier/migrate");
    let d = std::fs::read_dir(dir).ok()?.flatten().next()?;
    serde_json::from_str(&std::fs::read_to_string(d.path().join("journal.json")).ok()?).ok()
}

#[test]
fn kill_9_at_any_point_then_resume_loses_and_duplicates_nothing() {
    let s = Scratch::new();
    let Some(pg) = Pg::start(&s, 24031, None) else {
        return;
    };
    pg.create_db("k");
    let src = s.path().join("k.db");
    sqlite(
        &src,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT NOT NULL, x REAL, b BLOB);
         CREATE TABLE small (id INTEGER PRIMARY KEY, big_id INTEGER REFERENCES big(id), t TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 600000)
         INSERT INTO big SELECT i, printf('%0100d-%s', i, hex(randomblob(24))), i / 7.0, randomblob(40) FROM c;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
         INSERT INTO small SELECT i, i * 3, 's' || i FROM c;
         CREATE INDEX big_body ON big(body);
         CREATE INDEX big_x ON big(x);",
    );
    let url = pg.url("k");
    let srcs = src.to_str().unwrap();
    let args = [
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
        "-j",
        "2",
    ];

    // 1: kill -9 while `big` is being copied
    let mut child = spawn(&s, &args);
    eventually(
        "COPY into big to be under way",
        Duration::from_secs(120),
        || {
            let n: u64 = pg
            .try_psql("k", "SELECT coalesce(sum(p.tuples_processed), 0) FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid WHERE c.relname = 'big'")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
            (n > 0).then_some(())
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let j = journal(&s).expect("a journal");
    assert_eq!(j["status"]["state"], "running");
    assert!(
        j["steps"].get("load:big").is_none(),
        "big must not be marked loaded: {j}"
    );

    // without --resume, the interrupted run is not silently restarted
    let o = s.run(&args);
    assert!(
        !o.status.success() && out(&o).contains("--resume"),
        "{}",
        out(&o)
    );

    // 2: resume, and kill again once big is loaded (keys/indexes being built)
    let mut resume = args.to_vec();
    resume.push("--resume");
    let mut child = spawn(&s, &resume);
    let killed_late = eventually("big to be loaded", Duration::from_secs(180), || {
        if child.try_wait().unwrap().is_some() {
            return Some(false); // it finished first: nothing to kill
        }
        journal(&s)
            .filter(|j| j["steps"].get("load:big").is_some())
            .map(|_| true)
    });
    if killed_late {
        child.kill().unwrap();
        child.wait().unwrap();
        let j = journal(&s).unwrap();
        eprintln!(
            "second kill after load:big, journal steps: {:?}",
            j["steps"].as_object().unwrap().keys().collect::<Vec<_>>()
        );
    }

    // 3: resume to the end
    let report = s.ok(&resume);
    assert!(report.contains(": OK"), "{report}");

    // independent check: every row exactly once, every value equal
    assert_eq!(
        pg.one(
            "k",
            "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || sum(id) FROM big"
        ),
        "600000 600000 180000300000"
    );
    let conn = rusqlite::Connection::open(&src).unwrap();
    let mut h = Md5::new();
    let mut st = conn.prepare("SELECT body, b FROM big ORDER BY id").unwrap();
    let mut rows = st.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        h.update(r.get_ref(0).unwrap().as_str().unwrap().as_bytes());
        h.update(r.get_ref(1).unwrap().as_blob().unwrap());
    }
    let ours = hex::encode(h.finalize());
    let theirs = pg.one(
        "k",
        "SELECT md5(string_agg(convert_to(body, 'UTF8') || b, ''::bytea ORDER BY id)) FROM big",
    );
    assert_eq!(ours, theirs);
    assert_eq!(pg.one("k", "SELECT count(*) FROM small"), "5000");
    assert_eq!(
        pg.one(
            "k",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'big'"
        ),
        "3"
    );
    assert_eq!(
        pg.one("k", "SELECT count(*) FROM pg_constraint WHERE conname = 'small_big_id_fkey' AND convalidated"),
        "1"
    );
    let j = journal(&s).unwrap();
    assert_eq!(j["status"]["state"], "done");
}

#[test]
fn the_password_is_never_printed_and_comes_from_a_file_or_the_environment() {
    let s = Scratch::new();
    let pw = "Sup3r-S3cret-pw";
    let Some(pg) = Pg::start(&s, 24041, Some(pw)) else {
        return;
    };
    pg.create_db("sec");
    let src = s.path().join("s.db");
    sqlite(
        &src,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x');",
    );
    let srcs = src.to_str().unwrap();

    // in the URL: shown as ***
    let o = s.run(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &pg.url("sec"),
        "--dry-run",
        "-v",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains(pw), "{}", out(&o));
    assert!(
        out(&o).contains("postgres://postgres:***@127.0.0.1:24041/sec"),
        "{}",
        out(&o)
    );

    // a wrong password: the error says so and shows neither password
    let bad = pg.url("sec").replace(pw, "Wrong-Guess-77");
    let o = s.run(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &bad,
        "--yes",
    ]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("password authentication failed"),
        "{}",
        out(&o)
    );
    assert!(
        !out(&o).contains("Wrong-Guess-77") && !out(&o).contains(pw),
        "{}",
        out(&o)
    );

    // from a file (0600), with the journal and everything else free of it
    let pwfile = s.path().join("pw");
    datatier::secret::write_private(&pwfile, format!("{pw}\n").as_bytes()).unwrap();
    let o = s.run(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &pg.url_without_password("sec"),
        "--password-file",
        pwfile.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains(pw), "{}", out(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["verify"]["ok"], true);
    let journal_text = std::fs::read_to_string(j["journal"].as_str().unwrap()).unwrap();
    assert!(!journal_text.contains(pw));

    // from PGPASSWORD
    let o = s
        .cmd(&[
            "migrate",
            "verify",
            "--from",
            srcs,
            "--to",
            &pg.url_without_password("sec"),
        ])
        .env("PGPASSWORD", pw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains(pw));
}

/// The quirks database of ../shared/bench/gen_sqlite.py (SQLite's loose
/// typing at its worst), when the generator is available.
#[test]
fn quirks_database_every_oddity_is_loaded_exactly_or_rejected_with_its_reason() {
    let gen = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_sqlite.py");
    let gen = if gen.is_file() {
        gen
    } else {
        PathBuf::from("/work/shared/bench/gen_sqlite.py")
    };
    if !gen.is_file() {
        eprintln!("SKIPPED: gen_sqlite.py not found at ../shared/bench/");
        return;
    }
    let s = Scratch::new();
    let Some(pg) = Pg::start(&s, 24051, None) else {
        return;
    };
    pg.create_db("q");
    let src = s.path().join("quirks.db");
    support::sh(
        "python3",
        &[gen.to_str().unwrap(), src.to_str().unwrap(), "--quirks"],
    );
    let url = pg.url("q");
    let srcs = src.to_str().unwrap();
    let rejects = s.path().join("q.jsonl");
    let o = s.run(&[
        "migrate",
        "sqlite-to-postgres",
        "--from",
        srcs,
        "--to",
        &url,
        "--yes",
        "--on-error",
        "skip",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let text = out(&o);
    // every rejected row is listed with its column and reason
    let got: Vec<(i64, String)> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["rowid"].as_i64().unwrap(),
                v["column"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = [
        (5, "d_datetime"),
        (7, "d_datetime"),
        (8, "d_datetime"),
        (9, "b_bool"),
        (10, "b_bool"),
        (11, "b_bool"),
        (12, "n_int"),
        (13, "n_real"),
        (16, "n_numeric"),
        (17, "v_varchar"),
        (19, "t_text"),
        (20, "typeless"),
        (21, "t_text"),
        (22, "blob_col"),
    ]
    .iter()
    .map(|(r, c)| (*r, c.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(text.contains("14 rows rejected"), "{text}");
    // the orphan child row is kept; its foreign key holds for new rows
    assert!(
        text.contains("NOT VALID") && text.contains("(parent_id)=(999)"),
        "{text}"
    );
    assert_eq!(pg.one("q", "SELECT count(*) FROM child"), "2");
    // values that fit are exact: precision, unicode, offsets, huge blobs
    assert_eq!(
        pg.one(
            "q",
            "SELECT n_real FROM quirks WHERE label = 'real_precision'"
        ),
        "1234567.891"
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT typeless FROM quirks WHERE label = 'real_precision'"
        ),
        "52.520008"
    );
    assert_eq!(
        pg.one("q", "SELECT n_int FROM quirks WHERE label = 'int64_max'"),
        "9223372036854775807"
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT n_numeric FROM quirks WHERE label = 'int64_max'"
        ),
        "99999999.99"
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT extract(epoch FROM d_datetime) FROM quirks WHERE label = 'iso_offset'"
        ),
        "1614827167.000000"
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT t_text FROM quirks WHERE label = 'unicode' ORDER BY id LIMIT 1"
        ),
        "emoji🚀 ünïcödé 中文"
    );
    let conn = rusqlite::Connection::open(&src).unwrap();
    let big: Vec<u8> = conn
        .query_row("SELECT payload FROM big WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        pg.one("q", "SELECT md5(payload) FROM big WHERE id = 1"),
        md5_hex(&big)
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT \"weird col\" || ' ' || \"select\" FROM \"mixed case table\""
        ),
        "x 1"
    );
    assert_eq!(
        pg.one(
            "q",
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sqlite%'"
        ),
        "0"
    );
}
