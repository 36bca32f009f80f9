//! Where SQLite values become Postgres values, and back: the one place that
//! decides the Postgres type of a result column, encodes values in text and
//! binary formats, and decodes bind parameters.
//!
//! SQLite types values, not columns. A Postgres client wants one type per
//! column, stable across rows, so a column's type comes from its declared
//! type when it has one, and otherwise from the storage classes of the
//! values it returned (see the README's type table).

use bytes::{BufMut, BytesMut};
use libsql_sys::rusqlite::types::{Value, ValueRef};
use pgwire::api::Type;

use crate::error::{sqlstate, SqlError};

/// Days from 1970-01-01 to 2000-01-01, the Postgres epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// The Postgres type for a declared SQLite column type, or `None` when the
/// declaration says nothing useful (no declaration, or an unknown name with
/// NUMERIC affinity): then the values decide.
pub fn type_for_decltype(decltype: &str) -> Option<Type> {
    let upper = decltype.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let exact = match base {
        "BOOLEAN" | "BOOL" => Some(Type::BOOL),
        "BYTEA" => Some(Type::BYTEA),
        "DATE" => Some(Type::DATE),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => Some(Type::TIMESTAMP),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => Some(Type::TIMESTAMPTZ),
        "TIME" | "TIME WITHOUT TIME ZONE" => Some(Type::TIME),
        "JSON" => Some(Type::JSON),
        "JSONB" => Some(Type::JSONB),
        "NUMERIC" | "DECIMAL" => Some(Type::NUMERIC),
        "OID" => Some(Type::OID),
        // Postgres' sized integers, by the names only Postgres uses (an
        // `INTEGER` column is SQLite's 64-bit integer, int8).
        "INT4" => Some(Type::INT4),
        "INT2" | "SMALLINT" => Some(Type::INT2),
        "VARCHAR" | "CHARACTER VARYING" => Some(Type::VARCHAR),
        _ => None,
    };
    if exact.is_some() {
        return exact;
    }
    // SQLite's own affinity rules (section 3.1 of its datatype document).
    if base.contains("INT") {
        Some(Type::INT8)
    } else if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") {
        Some(Type::TEXT)
    } else if base.contains("BLOB") {
        Some(Type::BYTEA)
    } else if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") {
        Some(Type::FLOAT8)
    } else {
        None
    }
}

/// The type a column gets from the storage classes of its values: one class
/// gives its own type, integers mixed with reals give float8, anything else
/// mixed (or nothing but NULLs) gives text.
pub fn type_for_values<'a>(values: impl Iterator<Item = &'a Value>) -> Type {
    let mut seen: Option<Type> = None;
    for value in values {
        let ty = match value {
            Value::Null => continue,
            Value::Integer(_) => Type::INT8,
            Value::Real(_) => Type::FLOAT8,
            Value::Text(_) => Type::TEXT,
            Value::Blob(_) => Type::BYTEA,
        };
        seen = Some(match seen {
            None => ty,
            Some(prev) if prev == ty => prev,
            Some(prev)
                if (prev == Type::INT8 && ty == Type::FLOAT8)
                    || (prev == Type::FLOAT8 && ty == Type::INT8) =>
            {
                Type::FLOAT8
            }
            Some(_) => return Type::TEXT,
        });
    }
    seen.unwrap_or(Type::TEXT)
}

/// Appends one DataRow field (length prefix and bytes) for `value` encoded as
/// `ty` in text or binary format.
pub fn encode_field(
    buf: &mut BytesMut,
    value: &Value,
    ty: &Type,
    binary: bool,
) -> Result<(), SqlError> {
    if let Value::Null = value {
        buf.put_i32(-1);
        return Ok(());
    }
    let len_at = buf.len();
    buf.put_i32(0);
    if binary {
        encode_binary(buf, value, ty)?;
    } else {
        encode_text(buf, value, ty);
    }
    let len = (buf.len() - len_at - 4) as i32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Storage-class tags of the SQLite API dialect (`pg::sqlite_api`), SQLite's
/// own numbering of its fundamental datatypes.
pub mod storage_class {
    pub const INTEGER: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const BLOB: u8 = 4;
}

/// What becomes of a TEXT value that is not valid UTF-8, which SQLite
/// stores as readily as any other bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidText {
    /// Refused with 22021, as Postgres refuses such bytes in a UTF8
    /// database; the error says how to read the value as bytes.
    Refuse,
    /// Kept as the bytes it is (a blob): the SQLite API dialect, whose
    /// applications may store text in any encoding.
    AsBytes,
}

/// Copies a value out of SQLite, checking that text is UTF-8.
pub fn owned_value(value: ValueRef<'_>, invalid: InvalidText) -> Result<Value, SqlError> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Text(t) => match (std::str::from_utf8(t), invalid) {
            (Ok(s), _) => Value::Text(s.to_owned()),
            (Err(_), InvalidText::AsBytes) => Value::Blob(t.to_vec()),
            (Err(e), InvalidText::Refuse) => {
                let at = e.valid_up_to();
                let bad = &t[at..(at + e.error_len().unwrap_or(t.len() - at)).min(t.len())];
                let hex: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
                return Err(SqlError::new(
                    sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                    format!(
                        "invalid byte sequence for encoding \"UTF8\": {} (a stored TEXT value that is not UTF-8; read it as bytes with CAST(... AS BLOB) or hex(...))",
                        hex.join(" ")
                    ),
                ));
            }
        },
    })
}

/// Appends one DataRow field in the SQLite API dialect, whatever the
/// column's Postgres type: a storage-class tag byte, then the value as
/// SQLite holds it (a big-endian i64 or f64, UTF-8 text, raw blob bytes).
/// NULL is the usual -1 length. Each value keeps its own storage class,
/// which one Postgres type per column cannot say.
pub fn encode_tagged_field(buf: &mut BytesMut, value: &Value) {
    let (tag, payload): (u8, &[u8]) = match value {
        Value::Null => {
            buf.put_i32(-1);
            return;
        }
        Value::Integer(i) => {
            buf.put_i32(9);
            buf.put_u8(storage_class::INTEGER);
            buf.put_i64(*i);
            return;
        }
        Value::Real(f) => {
            buf.put_i32(9);
            buf.put_u8(storage_class::FLOAT);
            buf.put_f64(*f);
            return;
        }
        Value::Text(s) => (storage_class::TEXT, s.as_bytes()),
        Value::Blob(b) => (storage_class::BLOB, b),
    };
    buf.put_i32(payload.len() as i32 + 1);
    buf.put_u8(tag);
    buf.put_slice(payload);
}

fn encode_text(buf: &mut BytesMut, value: &Value, ty: &Type) {
    match (value, ty) {
        (Value::Integer(i), &Type::BOOL) => buf.put_slice(if *i != 0 { b"t" } else { b"f" }),
        (Value::Text(s), &Type::BOOL) => buf.put_slice(if truthy(s) { b"t" } else { b"f" }),
        (Value::Integer(i), &Type::DATE | &Type::TIMESTAMP | &Type::TIMESTAMPTZ) => {
            // Past the representable range the number is sent as stored.
            let text = format_unix_seconds(*i, ty).unwrap_or_else(|| i.to_string());
            buf.put_slice(text.as_bytes())
        }
        (Value::Text(s), &Type::DATE | &Type::TIMESTAMP | &Type::TIMESTAMPTZ) => {
            // Spelled as Postgres spells it, whatever SQLite stored (`T`,
            // `Z`, `+01:00`, milliseconds), so every driver parses it back;
            // text that is no date at all is sent as stored.
            match format_stored_datetime(s, ty) {
                Some(text) => buf.put_slice(text.as_bytes()),
                None => buf.put_slice(s.as_bytes()),
            }
        }
        (Value::Integer(i), _) => buf.put_slice(i.to_string().as_bytes()),
        (Value::Real(f), _) => buf.put_slice(format_float(*f).as_bytes()),
        (Value::Text(s), _) => buf.put_slice(s.as_bytes()),
        (Value::Blob(b), _) => put_hex(buf, b),
        (Value::Null, _) => {}
    }
}

fn encode_binary(buf: &mut BytesMut, value: &Value, ty: &Type) -> Result<(), SqlError> {
    let mismatch = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!(
                "cannot send {} as {} in binary format",
                describe(value),
                ty.name()
            ),
        )
    };
    match *ty {
        Type::INT8 => buf.put_i64(as_i64(value).ok_or_else(mismatch)?),
        Type::INT4 => buf.put_i32(sized(value)?),
        Type::OID => buf.put_u32(as_i64(value).ok_or_else(mismatch)? as u32),
        Type::INT2 => buf.put_i16(sized(value)?),
        Type::FLOAT8 => buf.put_f64(as_f64(value).ok_or_else(mismatch)?),
        Type::FLOAT4 => buf.put_f32(as_f64(value).ok_or_else(mismatch)? as f32),
        Type::BOOL => buf.put_u8(match value {
            Value::Integer(i) => (*i != 0) as u8,
            Value::Real(f) => (*f != 0.0) as u8,
            Value::Text(s) => truthy(s) as u8,
            _ => return Err(mismatch()),
        }),
        Type::BYTEA => match value {
            Value::Blob(b) => buf.put_slice(b),
            other => encode_text(buf, other, &Type::TEXT),
        },
        Type::NUMERIC => {
            let text = match value {
                Value::Integer(i) => i.to_string(),
                Value::Real(f) => format_float(*f),
                Value::Text(s) => s.clone(),
                _ => return Err(mismatch()),
            };
            encode_numeric(buf, &text).ok_or_else(mismatch)?
        }
        Type::DATE => {
            let micros = as_timestamp_micros(value, ty).ok_or_else(mismatch)?;
            buf.put_i32(micros.div_euclid(MICROS_PER_DAY) as i32)
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            buf.put_i64(as_timestamp_micros(value, ty).ok_or_else(mismatch)?)
        }
        Type::TIME => match value {
            Value::Text(s) => buf.put_i64(parse_time(s.trim()).ok_or_else(mismatch)?),
            _ => return Err(mismatch()),
        },
        Type::JSONB => {
            buf.put_u8(1);
            encode_text(buf, value, &Type::TEXT)
        }
        // text, varchar, json and anything else textual
        _ => encode_text(buf, value, ty),
    }
    Ok(())
}

/// Decodes one bind parameter sent as `ty` in text or binary format.
pub fn decode_param(bytes: Option<&[u8]>, ty: &Type, binary: bool) -> Result<Value, SqlError> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    let invalid = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input for parameter of type {}", ty.name()),
        )
    };
    if !binary {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid())?;
        return Ok(match *ty {
            Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
                Value::Integer(text.trim().parse().map_err(|_| invalid())?)
            }
            Type::FLOAT4 | Type::FLOAT8 => {
                Value::Real(parse_float(text.trim()).ok_or_else(invalid)?)
            }
            Type::BOOL => Value::Integer(truthy(text) as i64),
            Type::BYTEA => Value::Blob(parse_bytea_text(text).ok_or_else(invalid)?),
            _ => Value::Text(text.to_owned()),
        });
    }
    let fixed = |n: usize| -> Result<&[u8], SqlError> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(invalid())
        }
    };
    Ok(match *ty {
        Type::BOOL => Value::Integer((fixed(1)?[0] != 0) as i64),
        Type::INT2 => Value::Integer(i16::from_be_bytes(fixed(2)?.try_into().unwrap()) as i64),
        Type::INT4 => Value::Integer(i32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i64),
        Type::OID => Value::Integer(u32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i64),
        Type::INT8 => Value::Integer(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        Type::FLOAT4 => Value::Real(f32::from_be_bytes(fixed(4)?.try_into().unwrap()) as f64),
        Type::FLOAT8 => Value::Real(f64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        Type::BYTEA => Value::Blob(bytes.to_vec()),
        Type::DATE => {
            let days = i32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i64;
            Value::Text(format_date(days + PG_EPOCH_DAYS))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().unwrap());
            Value::Text(format_timestamp_micros(micros).ok_or_else(invalid)?)
        }
        Type::JSONB => {
            let text = bytes.get(1..).ok_or_else(invalid)?;
            Value::Text(String::from_utf8(text.to_vec()).map_err(|_| invalid())?)
        }
        Type::NUMERIC => Value::Text(decode_numeric(bytes).ok_or_else(invalid)?),
        _ => Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| invalid())?),
    })
}

/// An integer for a sized integer type: out of its range is an error, not
/// a truncation.
fn sized<T: TryFrom<i64>>(value: &Value) -> Result<T, SqlError> {
    let wide = as_i64(value).ok_or_else(|| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!(
                "cannot send {} as an integer in binary format",
                describe(value)
            ),
        )
    })?;
    T::try_from(wide).map_err(|_| {
        SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{wide} is out of range for the column's integer type"),
        )
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "t" | "true" | "1" | "yes" | "y" | "on"
    )
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(*i),
        Value::Real(f) if f.fract() == 0.0 => Some(*f as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(f) => Some(*f),
        Value::Text(s) => parse_float(s.trim()),
        _ => None,
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "infinity" | "inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// Postgres' float8 output: shortest round-trip digits, with its spellings
/// of the special values.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        let s = f.to_string();
        if s.len() > 17 && f.abs() >= 1e16 {
            format!("{f:e}").replace('e', "e+")
        } else {
            s
        }
    }
}

fn put_hex(buf: &mut BytesMut, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.reserve(2 + bytes.len() * 2);
    buf.put_slice(b"\\x");
    for b in bytes {
        buf.put_u8(HEX[(b >> 4) as usize]);
        buf.put_u8(HEX[(b & 0xf) as usize]);
    }
}

fn parse_bytea_text(text: &str) -> Option<Vec<u8>> {
    let Some(hex) = text.strip_prefix("\\x") else {
        return Some(text.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

fn format_date(unix_days: i64) -> String {
    let (y, m, d) = civil_from_days(unix_days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `None` past the range an i64 of Unix microseconds holds.
fn format_timestamp_micros(pg_micros: i64) -> Option<String> {
    let unix_micros = pg_micros.checked_add(PG_EPOCH_DAYS * MICROS_PER_DAY)?;
    let days = unix_micros.div_euclid(MICROS_PER_DAY);
    let of_day = unix_micros.rem_euclid(MICROS_PER_DAY);
    let (secs, frac) = (of_day / MICROS_PER_SECOND, of_day % MICROS_PER_SECOND);
    let mut s = format!(
        "{} {:02}:{:02}:{:02}",
        format_date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    Some(s)
}

fn format_unix_seconds(secs: i64, ty: &Type) -> Option<String> {
    if *ty == Type::DATE {
        return Some(format_date(secs.div_euclid(86_400)));
    }
    let pg_micros = secs
        .checked_sub(PG_EPOCH_DAYS * 86_400)?
        .checked_mul(MICROS_PER_SECOND)?;
    format_timestamp_micros(pg_micros)
}

/// Parses `HH:MM[:SS[.ffffff]]` into microseconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (sec, frac) = match parts.next() {
        None => (0, 0),
        Some(rest) => {
            let (whole, frac) = rest.split_once('.').unwrap_or((rest, ""));
            let digits: String = frac.chars().take(6).collect();
            let frac_us = if digits.is_empty() {
                0
            } else {
                digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
            };
            (whole.parse::<i64>().ok()?, frac_us)
        }
    };
    h.checked_mul(60)?
        .checked_add(m)?
        .checked_mul(60)?
        .checked_add(sec)?
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(frac)
}

/// Microseconds since the Postgres epoch for a stored date or timestamp:
/// text as SQLite's date functions write it (`YYYY-MM-DD[ T]HH:MM:SS[.fff]`
/// with an optional `Z` or `±HH:MM`), or an integer of Unix seconds. A
/// `timestamptz` is the instant (the offset applied); a `timestamp` or
/// `date` keeps the wall-clock time it was written with, as Postgres
/// ignores an offset given for a type without a time zone.
fn as_timestamp_micros(value: &Value, ty: &Type) -> Option<i64> {
    let unix_micros = match value {
        Value::Integer(secs) => secs.checked_mul(MICROS_PER_SECOND)?,
        Value::Real(secs) => (secs * MICROS_PER_SECOND as f64) as i64,
        Value::Text(s) => return text_timestamp_micros(s, ty),
        _ => return None,
    };
    unix_micros.checked_sub(PG_EPOCH_DAYS * MICROS_PER_DAY)
}

fn text_timestamp_micros(s: &str, ty: &Type) -> Option<i64> {
    let (wall, offset) = parse_timestamp(s.trim())?;
    let unix_micros = match *ty {
        Type::TIMESTAMPTZ => wall.checked_sub(offset)?,
        _ => wall,
    };
    unix_micros.checked_sub(PG_EPOCH_DAYS * MICROS_PER_DAY)
}

/// Stored date or timestamp text in Postgres' output format for `ty`:
/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]`, and for `timestamptz`
/// the instant in UTC with `+00`.
fn format_stored_datetime(stored: &str, ty: &Type) -> Option<String> {
    let micros = text_timestamp_micros(stored, ty)?;
    Some(match *ty {
        Type::DATE => format_date(micros.div_euclid(MICROS_PER_DAY) + PG_EPOCH_DAYS),
        Type::TIMESTAMPTZ => format_timestamp_micros(micros)? + "+00",
        _ => format_timestamp_micros(micros)?,
    })
}

/// Unix microseconds of the wall-clock time written, and the offset
/// written with it (zero when there is none).
fn parse_timestamp(s: &str) -> Option<(i64, i64)> {
    let date = s.get(..10)?;
    let mut fields = date.splitn(3, '-');
    let y: i64 = fields.next()?.parse().ok()?;
    let m: i64 = fields.next()?.parse().ok()?;
    let d: i64 = fields.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut micros = days_from_civil(y, m, d).checked_mul(MICROS_PER_DAY)?;
    let rest = s[10..].trim_start_matches(['T', ' ']);
    if rest.is_empty() {
        return Some((micros, 0));
    }
    let (time, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    micros = micros.checked_add(parse_time(time.trim())?)?;
    let mut offset_micros = 0;
    if let Some(sign_and_offset) = offset.strip_prefix(['+', '-']) {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = match sign_and_offset.split_once(':') {
            Some(parts) => parts,
            None if sign_and_offset.len() == 4 => sign_and_offset.split_at(2),
            None => (sign_and_offset, "0"),
        };
        offset_micros = sign
            * oh.parse::<i64>()
                .ok()?
                .checked_mul(60)?
                .checked_add(om.parse::<i64>().ok()?)?
                .checked_mul(60 * MICROS_PER_SECOND)?;
    }
    Some((micros, offset_micros))
}

/// Largest display scale of a NUMERIC (Postgres' NUMERIC_DSCALE_MASK).
const NUMERIC_MAX_DSCALE: usize = 0x3FFF;
/// Integer digits a NUMERIC's i16 weight can place: 32767 groups of four.
const NUMERIC_MAX_INT_DIGITS: usize = 4 * i16::MAX as usize;

/// Postgres' binary NUMERIC: base-10000 digit groups with a weight, a sign
/// and a display scale.
fn encode_numeric(buf: &mut BytesMut, text: &str) -> Option<()> {
    const NUMERIC_POS: u16 = 0x0000;
    const NUMERIC_NEG: u16 = 0x4000;
    const NUMERIC_NAN: u16 = 0xC000;
    let text = text.trim();
    if text.eq_ignore_ascii_case("nan") {
        buf.put_slice(&[0, 0, 0, 0]);
        buf.put_u16(NUMERIC_NAN);
        buf.put_u16(0);
        return Some(());
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int_part = int_part.trim_start_matches('0');
    let scale = frac_part.len();
    if scale > NUMERIC_MAX_DSCALE || int_part.len() > NUMERIC_MAX_INT_DIGITS {
        return None;
    }
    // Pad the integer part on the left and the fraction on the right to
    // whole groups of four digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let all: String = "0".repeat(int_pad) + int_part + frac_part + &"0".repeat(frac_pad);
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    // In range: the integer part has at most NUMERIC_MAX_INT_DIGITS digits.
    let mut weight = ((int_pad + int_part.len()) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = i16::try_from(groups.len()).ok()?;
    buf.put_i16(ndigits);
    buf.put_i16(weight);
    buf.put_u16(if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    });
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
    Some(())
}

fn decode_numeric(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(bytes.get(i..i + 2)?.try_into().ok()?))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(2)? as i64;
    let sign = word(4)? as u16;
    // Postgres' display scale is 14 bits; a larger (or negative) one would
    // have the loop below write digits without end.
    let scale = usize::try_from(word(6)?)
        .ok()
        .filter(|s| *s <= NUMERIC_MAX_DSCALE)?;
    if sign == 0xC000 {
        return Some("NaN".to_owned());
    }
    let groups: Vec<i64> = (0..ndigits)
        .map(|i| word(8 + 2 * i).map(i64::from))
        .collect::<Option<_>>()?;
    let mut int = String::new();
    for w in 0..=weight.max(-1) {
        let g = groups.get(w as usize).copied().unwrap_or(0);
        if int.is_empty() {
            int = g.to_string();
        } else {
            int.push_str(&format!("{g:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < scale {
        let g = if idx < 0 {
            0
        } else {
            groups.get(idx as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{g:04}"));
        idx += 1;
    }
    frac.truncate(scale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if scale > 0 {
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}{int}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity() {
        assert_eq!(type_for_decltype("INTEGER"), Some(Type::INT8));
        assert_eq!(type_for_decltype("bigint"), Some(Type::INT8));
        assert_eq!(type_for_decltype("VARCHAR(20)"), Some(Type::VARCHAR));
        assert_eq!(type_for_decltype("text"), Some(Type::TEXT));
        assert_eq!(type_for_decltype("BLOB"), Some(Type::BYTEA));
        assert_eq!(type_for_decltype("double precision"), Some(Type::FLOAT8));
        assert_eq!(type_for_decltype("boolean"), Some(Type::BOOL));
        assert_eq!(type_for_decltype("timestamp"), Some(Type::TIMESTAMP));
        assert_eq!(type_for_decltype("NUMERIC(10,2)"), Some(Type::NUMERIC));
        assert_eq!(type_for_decltype("money"), None);
    }

    #[test]
    fn undeclared_columns_take_the_type_of_their_values() {
        let ints = [Value::Integer(1), Value::Null, Value::Integer(2)];
        assert_eq!(type_for_values(ints.iter()), Type::INT8);
        let nums = [Value::Integer(1), Value::Real(2.5)];
        assert_eq!(type_for_values(nums.iter()), Type::FLOAT8);
        let mixed = [Value::Integer(1), Value::Text("a".into())];
        assert_eq!(type_for_values(mixed.iter()), Type::TEXT);
        assert_eq!(type_for_values([Value::Null].iter()), Type::TEXT);
    }

    fn text(value: Value, ty: Type) -> String {
        let mut buf = BytesMut::new();
        encode_field(&mut buf, &value, &ty, false).unwrap();
        String::from_utf8(buf[4..].to_vec()).unwrap()
    }

    #[test]
    fn text_encoding() {
        assert_eq!(text(Value::Integer(1), Type::BOOL), "t");
        assert_eq!(text(Value::Real(1.5), Type::FLOAT8), "1.5");
        assert_eq!(text(Value::Real(f64::INFINITY), Type::FLOAT8), "Infinity");
        assert_eq!(text(Value::Blob(vec![0xde, 0xad]), Type::BYTEA), "\\xdead");
        assert_eq!(text(Value::Integer(86_400), Type::DATE), "1970-01-02");
    }

    #[test]
    fn stored_datetimes_are_sent_as_postgres_writes_them() {
        let stored = |s: &str| Value::Text(s.to_owned());
        // What node-postgres writes for a JavaScript Date.
        let js = stored("2024-01-02T03:04:05.123+01:00");
        assert_eq!(text(js.clone(), Type::TIMESTAMP), "2024-01-02 03:04:05.123");
        assert_eq!(
            text(js.clone(), Type::TIMESTAMPTZ),
            "2024-01-02 02:04:05.123+00"
        );
        assert_eq!(text(js, Type::DATE), "2024-01-02");
        assert_eq!(
            text(stored("2024-01-02T03:04:05Z"), Type::TIMESTAMPTZ),
            "2024-01-02 03:04:05+00"
        );
        assert_eq!(
            text(stored("2024-01-02 03:04:05-0230"), Type::TIMESTAMPTZ),
            "2024-01-02 05:34:05+00"
        );
        assert_eq!(
            text(stored("2024-01-02"), Type::TIMESTAMP),
            "2024-01-02 00:00:00"
        );
        // Not a date: as stored.
        assert_eq!(text(stored("soon"), Type::TIMESTAMP), "soon");
        assert_eq!(text(stored("2024-13-02"), Type::DATE), "2024-13-02");
    }

    #[test]
    fn tagged_fields_keep_each_storage_class() {
        let mut buf = BytesMut::new();
        encode_tagged_field(&mut buf, &Value::Integer(i64::MIN));
        encode_tagged_field(&mut buf, &Value::Real(1.5));
        encode_tagged_field(&mut buf, &Value::Text("a".into()));
        encode_tagged_field(&mut buf, &Value::Blob(vec![0]));
        encode_tagged_field(&mut buf, &Value::Null);
        let mut expected = Vec::new();
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.push(storage_class::INTEGER);
        expected.extend_from_slice(&i64::MIN.to_be_bytes());
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.push(storage_class::FLOAT);
        expected.extend_from_slice(&1.5f64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, storage_class::TEXT, b'a']);
        expected.extend_from_slice(&[0, 0, 0, 2, storage_class::BLOB, 0]);
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(&buf[..], &expected[..]);
    }

    #[test]
    fn timestamps_round_trip_through_binary() {
        let v = Value::Text("2024-02-29 13:14:15.25".into());
        let mut buf = BytesMut::new();
        encode_field(&mut buf, &v, &Type::TIMESTAMP, true).unwrap();
        let back = decode_param(Some(&buf[4..]), &Type::TIMESTAMP, true).unwrap();
        assert_eq!(back, Value::Text("2024-02-29 13:14:15.25".into()));
        assert_eq!(format_date(days_from_civil(1999, 12, 31)), "1999-12-31");
    }

    #[test]
    fn numerics_round_trip_through_binary() {
        for n in [
            "0",
            "1",
            "-12345.678",
            "0.0001",
            "100000000",
            "3.14159265358979",
        ] {
            let mut buf = BytesMut::new();
            encode_numeric(&mut buf, n).unwrap();
            let back = decode_numeric(&buf).unwrap();
            assert_eq!(
                back.parse::<f64>().unwrap(),
                n.parse::<f64>().unwrap(),
                "{n} -> {back}"
            );
        }
        assert!(encode_numeric(&mut BytesMut::new(), "12a").is_none());
    }

    #[test]
    fn params_decode_in_both_formats() {
        assert_eq!(
            decode_param(Some(b"42"), &Type::INT8, false).unwrap(),
            Value::Integer(42)
        );
        assert_eq!(
            decode_param(Some(&7i32.to_be_bytes()), &Type::INT4, true).unwrap(),
            Value::Integer(7)
        );
        assert_eq!(decode_param(None, &Type::TEXT, false).unwrap(), Value::Null);
        assert_eq!(
            decode_param(Some(b"\\x0102"), &Type::BYTEA, false).unwrap(),
            Value::Blob(vec![1, 2])
        );
        assert!(decode_param(Some(b"x"), &Type::INT8, false).is_err());
    }
}
