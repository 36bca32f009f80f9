//! SQLite values as this library holds them: what a result row carries
//! (decoded from sqld's storage-class tags) and what is bound to a
//! parameter. `sqlite3_value` wraps one with the text rendering SQLite's
//! type conversions hand out, so returned pointers stay valid until the
//! row changes.

use crate::codes::*;

/// Storage-class tags sqld sends under the SQLite API dialect (sqld's
/// `types::storage_class`).
mod tag {
    pub const INTEGER: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const BLOB: u8 = 4;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 bytes, without a terminating NUL.
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Value {
    /// Decodes one tagged DataRow field (`None` is SQL NULL).
    pub fn from_tagged(field: Option<&[u8]>) -> Value {
        let Some(field) = field else {
            return Value::Null;
        };
        let (tag, payload) = match field.split_first() {
            Some((t, p)) => (*t, p),
            None => return Value::Text(Vec::new()),
        };
        let eight = || <[u8; 8]>::try_from(payload).ok();
        match tag {
            tag::INTEGER => eight().map_or(Value::Null, |b| Value::Integer(i64::from_be_bytes(b))),
            tag::FLOAT => eight().map_or(Value::Null, |b| Value::Real(f64::from_be_bytes(b))),
            tag::TEXT => Value::Text(payload.to_vec()),
            tag::BLOB => Value::Blob(payload.to_vec()),
            // A server without the dialect: keep the bytes as text.
            _ => Value::Text(field.to_vec()),
        }
    }

    pub fn type_code(&self) -> i32 {
        match self {
            Value::Null => SQLITE_NULL,
            Value::Integer(_) => SQLITE_INTEGER,
            Value::Real(_) => SQLITE_FLOAT,
            Value::Text(_) => SQLITE_TEXT,
            Value::Blob(_) => SQLITE_BLOB,
        }
    }

    pub fn as_i64(&self) -> i64 {
        match self {
            Value::Null => 0,
            Value::Integer(i) => *i,
            Value::Real(f) => real_to_i64(*f),
            Value::Text(b) | Value::Blob(b) => parse_numeric_prefix(b)
                .map(|n| match n {
                    Numeric::Int(i) => i,
                    Numeric::Real(f) => real_to_i64(f),
                })
                .unwrap_or(0),
        }
    }

    pub fn as_f64(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Integer(i) => *i as f64,
            Value::Real(f) => *f,
            Value::Text(b) | Value::Blob(b) => parse_numeric_prefix(b)
                .map(|n| match n {
                    Numeric::Int(i) => i as f64,
                    Numeric::Real(f) => f,
                })
                .unwrap_or(0.0),
        }
    }

    /// The value as text (SQLite's rendering of numbers); `None` for NULL.
    pub fn to_text(&self) -> Option<Vec<u8>> {
        match self {
            Value::Null => None,
            Value::Integer(i) => Some(i.to_string().into_bytes()),
            Value::Real(f) => Some(real_to_text(*f).into_bytes()),
            Value::Text(b) | Value::Blob(b) => Some(b.clone()),
        }
    }

    /// The value as SQL text, for `sqlite3_expanded_sql`.
    pub fn to_sql_literal(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => real_to_text(*f),
            Value::Text(b) => format!("'{}'", String::from_utf8_lossy(b).replace('\'', "''")),
            Value::Blob(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("x'{hex}'")
            }
        }
    }
}

fn real_to_i64(f: f64) -> i64 {
    // `as` saturates, as SQLite does for out-of-range reals.
    f as i64
}

enum Numeric {
    Int(i64),
    Real(f64),
}

/// SQLite's text-to-number conversion: the longest numeric prefix after
/// leading spaces; nothing numeric converts to zero.
fn parse_numeric_prefix(bytes: &[u8]) -> Option<Numeric> {
    let s = std::str::from_utf8(bytes).ok()?.trim_start();
    let end = s
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_digit() || *c == '.' || ((*c == '-' || *c == '+') && *i == 0)
        })
        .map(|(i, c)| i + c.len_utf8())
        .last()?;
    let mut end = end;
    // An exponent belongs to the number when digits follow it.
    let rest = &s[end..];
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let digits = exp.strip_prefix(['-', '+']).unwrap_or(exp);
        let n = digits.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 {
            end += 1 + (exp.len() - digits.len()) + n;
        }
    }
    let num = &s[..end];
    if let Ok(i) = num.parse::<i64>() {
        return Some(Numeric::Int(i));
    }
    num.parse::<f64>().ok().map(Numeric::Real)
}

/// SQLite's rendering of a real: 15 significant digits, always with a
/// decimal point or an exponent.
pub fn real_to_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    let sci = format!("{f:.14e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if !(-5..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        return format!(
            "{sign}{first}.{rest}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exp as usize + 1;
    if digits.len() <= point {
        format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

/// `sqlite3_value`: a value plus the NUL-terminated rendering handed out by
/// `sqlite3_value_text`/`_blob` (kept so the pointer stays valid).
#[derive(Debug, Clone)]
pub struct SqliteValue {
    pub value: Value,
    rendered: Option<Box<[u8]>>,
}

impl SqliteValue {
    pub fn new(value: Value) -> SqliteValue {
        SqliteValue {
            value,
            rendered: None,
        }
    }

    /// The value's bytes as text or blob, NUL-terminated; `None` for NULL.
    fn rendered(&mut self) -> Option<&[u8]> {
        if self.rendered.is_none() {
            let mut bytes = self.value.to_text()?;
            bytes.push(0);
            self.rendered = Some(bytes.into_boxed_slice());
        }
        self.rendered.as_deref()
    }

    pub fn text_ptr(&mut self) -> *const u8 {
        self.rendered().map_or(std::ptr::null(), |b| b.as_ptr())
    }

    pub fn blob_ptr(&mut self) -> *const u8 {
        match self.rendered() {
            Some(b) if b.len() > 1 => b.as_ptr(),
            _ => std::ptr::null(),
        }
    }

    pub fn bytes(&mut self) -> i32 {
        self.rendered().map_or(0, |b| (b.len() - 1) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_render_like_sqlite() {
        assert_eq!(real_to_text(1.5), "1.5");
        assert_eq!(real_to_text(2.0), "2.0");
        assert_eq!(real_to_text(-0.25), "-0.25");
        assert_eq!(real_to_text(1.0 / 3.0), "0.333333333333333");
        assert_eq!(real_to_text(1e20), "1.0e+20");
        assert_eq!(real_to_text(0.0001), "0.0001");
        assert_eq!(real_to_text(100.0), "100.0");
    }

    #[test]
    fn text_converts_by_numeric_prefix() {
        assert_eq!(Value::Text(b" 42abc".to_vec()).as_i64(), 42);
        assert_eq!(Value::Text(b"2.5e1x".to_vec()).as_f64(), 25.0);
        assert_eq!(Value::Text(b"x".to_vec()).as_i64(), 0);
        assert_eq!(Value::Real(3.9).as_i64(), 3);
    }

    #[test]
    fn tagged_fields_decode() {
        let mut f = vec![1];
        f.extend_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(Value::from_tagged(Some(&f)), Value::Integer(i64::MAX));
        assert_eq!(
            Value::from_tagged(Some(&[3, b'a'])),
            Value::Text(b"a".to_vec())
        );
        assert_eq!(Value::from_tagged(Some(&[4])), Value::Blob(vec![]));
        assert_eq!(Value::from_tagged(None), Value::Null);
    }
}
