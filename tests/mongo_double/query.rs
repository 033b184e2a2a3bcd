//! The slice of MongoDB's query language the double understands: filters
//! with equality, `$in`, `$eq`, `$ne`, `$exists`, `$or`, `$and`; inclusion
//! and exclusion projections; updates with `$set`, `$unset` or a
//! replacement. Anything else is refused with BadValue, so a test never
//! passes because the double silently ignored part of a query.

use bson::{Bson, Document};

/// Look up a dotted path.
pub fn get_path<'a>(d: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut cur = d;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let v = cur.get(p)?;
        if parts.peek().is_none() {
            return Some(v);
        }
        cur = v.as_document()?;
    }
    None
}

/// BSON equality with numbers compared by value.
pub fn bson_eq(a: &Bson, b: &Bson) -> bool {
    fn num(v: &Bson) -> Option<f64> {
        match v {
            Bson::Int32(i) => Some(*i as f64),
            Bson::Int64(i) => Some(*i as f64),
            Bson::Double(d) => Some(*d),
            _ => None,
        }
    }
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Bson::Document(x), Bson::Document(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && bson_eq(v1, v2))
            }
            (Bson::Array(x), Bson::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| bson_eq(p, q))
            }
            _ => a == b,
        },
    }
}

/// Does `d` match `filter`?
pub fn matches(d: &Document, filter: &Document) -> Result<bool, String> {
    for (k, cond) in filter {
        let ok = match k.as_str() {
            "$or" | "$and" => {
                let subs = cond
                    .as_array()
                    .ok_or_else(|| format!("{k} needs an array"))?;
                let mut results = Vec::new();
                for s in subs {
                    let s = s
                        .as_document()
                        .ok_or_else(|| format!("{k} entries must be documents"))?;
                    results.push(matches(d, s)?);
                }
                if k == "$or" {
                    results.iter().any(|r| *r)
                } else {
                    results.iter().all(|r| *r)
                }
            }
            op if op.starts_with('$') => return Err(format!("unknown top level operator: {op}")),
            path => {
                let v = get_path(d, path);
                match cond {
                    Bson::Document(c) if c.keys().next().is_some_and(|k| k.starts_with('$')) => {
                        let mut all = true;
                        for (op, arg) in c {
                            let r = match op.as_str() {
                                "$eq" => v.is_some_and(|v| bson_eq(v, arg)),
                                "$ne" => !v.is_some_and(|v| bson_eq(v, arg)),
                                "$in" => {
                                    let list =
                                        arg.as_array().ok_or("$in needs an array".to_string())?;
                                    match v {
                                        Some(v) => list.iter().any(|x| bson_eq(v, x)),
                                        None => list.iter().any(|x| matches!(x, Bson::Null)),
                                    }
                                }
                                "$exists" => v.is_some() == arg.as_bool().unwrap_or(true),
                                other => {
                                    return Err(format!(
                                    "the test double does not support the query operator {other}"
                                ))
                                }
                            };
                            all &= r;
                        }
                        all
                    }
                    Bson::Null => v.is_none() || matches!(v, Some(Bson::Null)),
                    other => v.is_some_and(|v| bson_eq(v, other)),
                }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Apply a projection (`{a: 1, b: 1}` keeps those and `_id`; `{a: 0}` drops).
pub fn project(d: &Document, p: Option<&Document>) -> Document {
    let Some(p) = p.filter(|p| !p.is_empty()) else {
        return d.clone();
    };
    let include = p.iter().any(|(k, v)| {
        k != "_id" && !matches!(v, Bson::Int32(0) | Bson::Int64(0) | Bson::Boolean(false))
    });
    if include {
        let mut out = Document::new();
        let keep_id = !matches!(
            p.get("_id"),
            Some(Bson::Int32(0) | Bson::Int64(0) | Bson::Boolean(false))
        );
        for (k, v) in d {
            if (k == "_id" && keep_id) || (k != "_id" && p.contains_key(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    } else {
        let mut out = d.clone();
        for k in p.keys() {
            out.remove(k);
        }
        out
    }
}

fn set_path(d: &mut Document, path: &str, v: Bson) {
    match path.split_once('.') {
        None => {
            d.insert(path, v);
        }
        Some((head, tail)) => {
            if !matches!(d.get(head), Some(Bson::Document(_))) {
                d.insert(head, Document::new());
            }
            if let Some(Bson::Document(inner)) = d.get_mut(head) {
                set_path(inner, tail, v);
            }
        }
    }
}

fn unset_path(d: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            d.remove(path);
        }
        Some((head, tail)) => {
            if let Some(Bson::Document(inner)) = d.get_mut(head) {
                unset_path(inner, tail);
            }
        }
    }
}

/// Apply an update document to `d` (operators or a replacement).
pub fn apply_update(d: &mut Document, u: &Document) -> Result<(), String> {
    let ops = u.keys().next().is_some_and(|k| k.starts_with('$'));
    if !ops {
        let id = d.get("_id").cloned();
        *d = u.clone();
        if let Some(id) = id {
            d.insert("_id", id);
        }
        return Ok(());
    }
    for (op, arg) in u {
        let arg = arg
            .as_document()
            .ok_or_else(|| format!("{op} needs a document"))?;
        match op.as_str() {
            "$set" => {
                for (k, v) in arg {
                    set_path(d, k, v.clone());
                }
            }
            "$unset" => {
                for k in arg.keys() {
                    unset_path(d, k);
                }
            }
            other => {
                return Err(format!(
                    "the test double does not support the update operator {other}"
                ))
            }
        }
    }
    Ok(())
}

/// The document an upsert starts from: the filter's equality fields.
pub fn upsert_seed(filter: &Document) -> Document {
    let mut d = Document::new();
    for (k, v) in filter {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Bson::Document(c) if c.keys().next().is_some_and(|k| k.starts_with('$')) => {
                if let Some(eq) = c.get("$eq") {
                    set_path(&mut d, k, eq.clone());
                }
            }
            other => set_path(&mut d, k, other.clone()),
        }
    }
    d
}
