//! Postgres binary COPY, encoded by hand.
//!
//! `tokio_postgres::binary_copy` goes through `ToSql` trait objects per
//! value; writing the wire format straight into one buffer per batch is
//! simpler and faster, and the format is small and stable (documented under
//! `COPY`, "Binary Format"): a header, then per row a 16-bit field count
//! and per field a 32-bit length (-1 for NULL) and the value in the type's
//! binary send format, then a -1 trailer.

use super::types::{PgType, Val};
use bytes::{BufMut, BytesMut};

/// `PGCOPY\n\377\r\n\0`, flags, header extension length.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
}

pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

pub fn row_start(buf: &mut BytesMut, fields: usize) {
    buf.put_i16(fields as i16);
}

/// Microseconds from 1970-01-01 to 2000-01-01, Postgres' epoch.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// Append one field: its length and its binary value for type `ty`.
pub fn field(buf: &mut BytesMut, v: &Val<'_>, ty: &PgType) {
    match v {
        Val::Null => buf.put_i32(-1),
        Val::Bool(b) => {
            buf.put_i32(1);
            buf.put_u8(u8::from(*b));
        }
        Val::Int(n) => match ty {
            PgType::SmallInt => {
                buf.put_i32(2);
                buf.put_i16(*n as i16);
            }
            PgType::Integer => {
                buf.put_i32(4);
                buf.put_i32(*n as i32);
            }
            _ => {
                buf.put_i32(8);
                buf.put_i64(*n);
            }
        },
        Val::Float(x) => {
            buf.put_i32(8);
            buf.put_f64(*x);
        }
        Val::Numeric(d) => numeric(buf, d),
        Val::Text(t) => {
            buf.put_i32(t.len() as i32);
            buf.put_slice(t.as_bytes());
        }
        Val::Bytes(b) => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
        Val::Date(d) => {
            buf.put_i32(4);
            buf.put_i32(d - PG_EPOCH_DAYS);
        }
        Val::Time(us) => {
            buf.put_i32(8);
            buf.put_i64(*us);
        }
        Val::Timestamp(us) => {
            buf.put_i32(8);
            buf.put_i64(us - PG_EPOCH_US);
        }
    }
}

/// Postgres' numeric send format for a normalized decimal (`-12.5`):
/// ndigits, weight, sign, dscale, then base-10000 digits, all 16-bit.
fn numeric(buf: &mut BytesMut, dec: &str) {
    let (neg, body) = match dec.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, dec),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    // Pad the integer part on the left and the fraction on the right to
    // whole groups of four decimal digits.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let mut digits_str = String::with_capacity(int.len() + frac.len() + 8);
    digits_str.extend(std::iter::repeat_n('0', int_pad));
    digits_str.push_str(int);
    digits_str.push_str(frac);
    digits_str.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> = digits_str
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |a, d| a * 10 + (d - b'0') as i16))
        .collect();
    let int_groups = (int.len() + int_pad) / 4;
    let mut weight = int_groups as i32 - 1;
    // strip leading zero groups (each moves the weight down) and trailing ones
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= lead as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let dscale = frac.len() as i16;
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i32(8 + 2 * groups.len() as i32);
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight as i16);
    buf.put_u16(if neg && !groups.is_empty() { 0x4000 } else { 0 });
    buf.put_i16(dscale);
    for g in groups {
        buf.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(d: &str) -> Vec<i16> {
        let mut b = BytesMut::new();
        numeric(&mut b, d);
        let len = i32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        assert_eq!(len, b.len() - 4);
        b[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_wire_format() {
        // [ndigits, weight, sign, dscale, digits...]
        assert_eq!(num("12.34"), vec![2, 0, 0, 2, 12, 3400]);
        assert_eq!(num("0.0001"), vec![1, -1, 0, 4, 1]);
        assert_eq!(num("-10000"), vec![1, 1, 0x4000, 0, 1]);
        assert_eq!(num("0"), vec![0, 0, 0, 0]);
        assert_eq!(num("123456789.5"), vec![4, 2, 0, 1, 1, 2345, 6789, 5000]);
        assert_eq!(num("0.5"), vec![1, -1, 0, 1, 5000]);
        assert_eq!(num("100000000"), vec![1, 2, 0, 0, 1]);
    }

    #[test]
    fn fields_have_lengths_and_pg_epochs() {
        let mut b = BytesMut::new();
        field(&mut b, &Val::Null, &PgType::Text);
        field(&mut b, &Val::Int(1), &PgType::Integer);
        field(
            &mut b,
            &Val::Timestamp(946_684_800_000_001),
            &PgType::Timestamptz,
        );
        field(&mut b, &Val::Date(10_958), &PgType::Date);
        assert_eq!(&b[..4], &(-1i32).to_be_bytes());
        assert_eq!(&b[4..12], &[0, 0, 0, 4, 0, 0, 0, 1]);
        assert_eq!(&b[12..24], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&b[24..32], &[0, 0, 0, 4, 0, 0, 0, 1]);
    }
}
