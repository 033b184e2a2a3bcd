//! The MongoDB wire protocol, as much as a server needs: read OP_MSG (2013)
//! and the legacy OP_QUERY (2004) handshake, write OP_MSG and OP_REPLY (1).
//!
//! The Rust driver (3.x) sends OP_MSG only — its handshake is `isMaster`
//! with `helloOk: true` inside an OP_MSG — but other clients (old shells,
//! tools) still open with an OP_QUERY `isMaster` on `admin.$cmd`, so the
//! double answers that too.

use bson::Document;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_MSG: i32 = 2013;

const CHECKSUM_PRESENT: u32 = 1;
/// Flags a client sets on an awaitable `hello` it allows to be streamed.
pub const EXHAUST_ALLOWED: u32 = 1 << 16;

/// A request: the command document (document sequences folded in as
/// arrays), who it answers to, and how it came.
#[derive(Debug)]
pub struct Request {
    pub request_id: i32,
    pub op_code: i32,
    pub flags: u32,
    pub body: Document,
}

fn cstring(buf: &[u8]) -> std::io::Result<(&str, &[u8])> {
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| bad("unterminated cstring"))?;
    let s = std::str::from_utf8(&buf[..end]).map_err(|_| bad("cstring is not UTF-8"))?;
    Ok((s, &buf[end + 1..]))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn i32_at(b: &[u8]) -> std::io::Result<i32> {
    Ok(i32::from_le_bytes(
        b.get(..4)
            .ok_or_else(|| bad("short message"))?
            .try_into()
            .unwrap(),
    ))
}

/// One BSON document from the front of `buf`, and the rest.
fn document(buf: &[u8]) -> std::io::Result<(Document, &[u8])> {
    let len = i32_at(buf)? as usize;
    if len < 5 || len > buf.len() {
        return Err(bad("bad document length"));
    }
    let d = Document::from_reader(&mut &buf[..len]).map_err(|e| bad(&e.to_string()))?;
    Ok((d, &buf[len..]))
}

/// Read one message; `Ok(None)` on a clean end of stream.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Request>> {
    let mut header = [0u8; 16];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32_at(&header[0..])? as usize;
    let request_id = i32_at(&header[4..])?;
    let op_code = i32_at(&header[12..])?;
    if !(16..=48_000_000).contains(&len) {
        return Err(bad("bad message length"));
    }
    let mut body = vec![0u8; len - 16];
    r.read_exact(&mut body).await?;
    match op_code {
        OP_MSG => {
            let flags = u32::from_le_bytes(body[..4].try_into().unwrap());
            let mut rest = &body[4..];
            if flags & CHECKSUM_PRESENT != 0 {
                rest = &rest[..rest.len().saturating_sub(4)];
            }
            let mut main: Option<Document> = None;
            let mut sequences: Vec<(String, Vec<Document>)> = Vec::new();
            while !rest.is_empty() {
                let kind = rest[0];
                rest = &rest[1..];
                match kind {
                    0 => {
                        let (d, r2) = document(rest)?;
                        main = Some(d);
                        rest = r2;
                    }
                    1 => {
                        let size = i32_at(rest)? as usize;
                        if size < 4 || size > rest.len() {
                            return Err(bad("bad document sequence size"));
                        }
                        let mut seq = &rest[4..size];
                        rest = &rest[size..];
                        let (id, r2) = cstring(seq)?;
                        let id = id.to_string();
                        seq = r2;
                        let mut docs = Vec::new();
                        while !seq.is_empty() {
                            let (d, r3) = document(seq)?;
                            docs.push(d);
                            seq = r3;
                        }
                        sequences.push((id, docs));
                    }
                    _ => return Err(bad("unknown OP_MSG section kind")),
                }
            }
            let mut body = main.ok_or_else(|| bad("OP_MSG without a body section"))?;
            for (id, docs) in sequences {
                body.insert(id, docs);
            }
            Ok(Some(Request {
                request_id,
                op_code,
                flags,
                body,
            }))
        }
        OP_QUERY => {
            let flags = i32_at(&body)? as u32;
            let (collection, rest) = cstring(&body[4..])?;
            let collection = collection.to_string();
            let rest = &rest[8..]; // numberToSkip, numberToReturn
            let (mut q, _) = document(rest)?;
            // Legacy commands may wrap the command in $query.
            if let Ok(inner) = q.get_document("$query") {
                q = inner.clone();
            }
            let db = collection.split('.').next().unwrap_or("admin").to_string();
            q.insert("$db", db);
            Ok(Some(Request {
                request_id,
                op_code,
                flags,
                body: q,
            }))
        }
        other => Err(bad(&format!("unsupported opCode {other}"))),
    }
}

static NEXT_ID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Answer `req` with `reply` in the form it asked in (OP_MSG or OP_REPLY).
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    req: &Request,
    reply: &Document,
) -> std::io::Result<()> {
    let mut doc = Vec::new();
    reply.to_writer(&mut doc).map_err(|e| bad(&e.to_string()))?;
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = Vec::with_capacity(doc.len() + 40);
    match req.op_code {
        OP_QUERY => {
            let len = 16 + 4 + 8 + 4 + 4 + doc.len();
            out.extend((len as i32).to_le_bytes());
            out.extend(id.to_le_bytes());
            out.extend(req.request_id.to_le_bytes());
            out.extend(OP_REPLY.to_le_bytes());
            out.extend(0i32.to_le_bytes()); // responseFlags
            out.extend(0i64.to_le_bytes()); // cursorID
            out.extend(0i32.to_le_bytes()); // startingFrom
            out.extend(1i32.to_le_bytes()); // numberReturned
            out.extend(&doc);
        }
        _ => {
            let len = 16 + 4 + 1 + doc.len();
            out.extend((len as i32).to_le_bytes());
            out.extend(id.to_le_bytes());
            out.extend(req.request_id.to_le_bytes());
            out.extend(OP_MSG.to_le_bytes());
            out.extend(0u32.to_le_bytes()); // flags: never moreToCome
            out.push(0);
            out.extend(&doc);
        }
    }
    w.write_all(&out).await?;
    w.flush().await
}

/// Encode an OP_QUERY (for the double's own tests of the legacy path).
pub fn encode_query(request_id: i32, collection: &str, query: &Document) -> Vec<u8> {
    let mut doc = Vec::new();
    query.to_writer(&mut doc).unwrap();
    let len = 16 + 4 + collection.len() + 1 + 8 + doc.len();
    let mut out = Vec::with_capacity(len);
    out.extend((len as i32).to_le_bytes());
    out.extend(request_id.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(OP_QUERY.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(collection.as_bytes());
    out.push(0);
    out.extend(0i32.to_le_bytes());
    out.extend((-1i32).to_le_bytes());
    out.extend(&doc);
    out
}

/// Decode an OP_REPLY's first document.
pub fn decode_reply(buf: &[u8]) -> std::io::Result<(i32, Document)> {
    let response_to = i32_at(&buf[8..])?;
    if i32_at(&buf[12..])? != OP_REPLY {
        return Err(bad("not an OP_REPLY"));
    }
    let (d, _) = document(&buf[16 + 20..])?;
    Ok((response_to, d))
}
