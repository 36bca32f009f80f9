//! COPY's text and CSV formats, as Postgres writes and reads them: an
//! incremental decoder that cuts rows out of CopyData bytes as they come
//! (holding at most one unfinished row), and an encoder of one row.

use crate::error::sqlstate;

/// The format options of one COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub csv: bool,
    /// Postgres' binary format (`binary.rs`): none of the others apply.
    pub binary: bool,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
}

impl Options {
    pub fn text() -> Self {
        Options {
            csv: false,
            binary: false,
            delimiter: b'\t',
            null: "\\N".to_owned(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }

    pub fn binary() -> Self {
        Options {
            binary: true,
            ..Options::text()
        }
    }

    pub fn csv() -> Self {
        Options {
            csv: true,
            delimiter: b',',
            null: String::new(),
            ..Options::text()
        }
    }
}

/// Why input could not be read: a SQLSTATE and Postgres' wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub code: &'static str,
    pub message: String,
}

fn bad_format(message: impl Into<String>) -> FormatError {
    FormatError {
        code: sqlstate::BAD_COPY_FILE_FORMAT,
        message: message.into(),
    }
}

/// One field of a row: `None` is NULL.
pub type Field = Option<String>;

/// Cuts rows out of the bytes of COPY FROM STDIN as they arrive.
pub struct Decoder {
    options: Options,
    pending: Vec<u8>,
    /// Where the unfinished row starts in `pending`.
    start: usize,
    /// How far past `start` has been scanned for the row's end.
    scanned: usize,
    /// CSV: the scan is inside a quoted field.
    in_quotes: bool,
    header_left: bool,
    /// The end-of-data marker `\.` was read: the rest is ignored.
    ended: bool,
    /// Lines read so far, for error messages.
    pub line: u64,
}

impl Decoder {
    pub fn new(options: Options) -> Self {
        Decoder {
            header_left: options.header,
            options,
            pending: Vec::new(),
            start: 0,
            scanned: 0,
            in_quotes: false,
            ended: false,
            line: 0,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.ended {
            return;
        }
        // Rows already read are dropped before more is held.
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes held of a row not yet complete.
    pub fn held(&self) -> usize {
        self.pending.len() - self.start
    }

    /// The next complete row, if one has arrived.
    pub fn next_row(&mut self) -> Result<Option<Vec<Field>>, FormatError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            let Some(end) = self.scan() else {
                return Ok(None);
            };
            let line_start = self.start;
            self.start = end + 1;
            self.scanned = self.start;
            if let Some(row) = self.take_line(line_start, end)? {
                return Ok(Some(row));
            }
        }
    }

    /// At the end of input: the last row, if it had no newline.
    pub fn finish(&mut self) -> Result<Option<Vec<Field>>, FormatError> {
        if self.ended || self.start >= self.pending.len() {
            return Ok(None);
        }
        if self.in_quotes {
            return Err(bad_format("unterminated CSV quoted field"));
        }
        let (start, end) = (self.start, self.pending.len());
        self.start = end;
        self.scanned = end;
        self.take_line(start, end)
    }

    /// The end of the row that starts at `start`, scanning on from where
    /// the last call stopped.
    fn scan(&mut self) -> Option<usize> {
        let bytes = &self.pending;
        let mut i = self.scanned;
        while i < bytes.len() {
            let b = bytes[i];
            if self.options.csv {
                if self.in_quotes
                    && b == self.options.escape
                    && self.options.escape != self.options.quote
                {
                    if i + 1 >= bytes.len() {
                        break;
                    }
                    i += 2;
                    continue;
                }
                if b == self.options.quote {
                    self.in_quotes = !self.in_quotes;
                } else if b == b'\n' && !self.in_quotes {
                    self.scanned = i;
                    return Some(i);
                }
            } else if b == b'\\' {
                // An escaped byte is data, even a newline.
                if i + 1 >= bytes.len() {
                    break;
                }
                i += 1;
            } else if b == b'\n' {
                self.scanned = i;
                return Some(i);
            }
            i += 1;
        }
        self.scanned = i;
        None
    }

    /// Reads the line `pending[start..end]`: `None` for the header and the
    /// end-of-data marker.
    fn take_line(&mut self, start: usize, end: usize) -> Result<Option<Vec<Field>>, FormatError> {
        self.line += 1;
        let mut line = &self.pending[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        if self.header_left {
            self.header_left = false;
            return Ok(None);
        }
        let row = if self.options.csv {
            split_csv(line, &self.options)?
        } else {
            split_text(line, &self.options)?
        };
        Ok(Some(row))
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, FormatError> {
    String::from_utf8(bytes).map_err(|e| FormatError {
        code: sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
        message: format!(
            "invalid byte sequence for encoding \"UTF8\": 0x{:02x}",
            e.as_bytes()
                .get(e.utf8_error().valid_up_to())
                .copied()
                .unwrap_or_default()
        ),
    })
}

fn split_text(line: &[u8], options: &Options) -> Result<Vec<Field>, FormatError> {
    let mut fields = Vec::new();
    let mut field_start = 0;
    let mut i = 0;
    loop {
        if i == line.len() || line[i] == options.delimiter {
            let raw = &line[field_start..i];
            fields.push(if raw == options.null.as_bytes() {
                None
            } else {
                Some(utf8(unescape_text(raw)?)?)
            });
            if i == line.len() {
                return Ok(fields);
            }
            field_start = i + 1;
        } else if line[i] == b'\\' {
            i += 1;
        }
        i += 1;
        i = i.min(line.len());
    }
}

/// Postgres' text-format escapes: `\b \f \n \r \t \v \\`, octal `\123`,
/// hex `\x4f`; any other escaped byte is itself.
fn unescape_text(raw: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = raw.get(i) else {
            return Err(bad_format("unterminated backslash escape at end of line"));
        };
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let digits: Vec<u8> = raw[i..]
                    .iter()
                    .take(2)
                    .take_while(|d| d.is_ascii_hexdigit())
                    .copied()
                    .collect();
                if digits.is_empty() {
                    out.push(b'x');
                } else {
                    i += digits.len();
                    let text = std::str::from_utf8(&digits).unwrap_or("0");
                    out.push(u8::from_str_radix(text, 16).unwrap_or(0));
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn split_csv(line: &[u8], options: &Options) -> Result<Vec<Field>, FormatError> {
    let (quote, escape, delimiter) = (options.quote, options.escape, options.delimiter);
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut value = Vec::new();
        let mut quoted = false;
        while i < line.len() && line[i] != delimiter {
            if line[i] != quote {
                value.push(line[i]);
                i += 1;
                continue;
            }
            quoted = true;
            i += 1;
            loop {
                let Some(&c) = line.get(i) else {
                    return Err(bad_format("unterminated CSV quoted field"));
                };
                let next = line.get(i + 1).copied();
                if c == escape && (next == Some(quote) || (escape != quote && next == Some(escape)))
                {
                    value.push(line[i + 1]);
                    i += 2;
                } else if c == quote {
                    i += 1;
                    break;
                } else {
                    value.push(c);
                    i += 1;
                }
            }
        }
        // An unquoted field equal to the NULL string is NULL; a quoted one
        // is that text.
        fields.push(if !quoted && value == options.null.as_bytes() {
            None
        } else {
            Some(utf8(value)?)
        });
        if i >= line.len() {
            return Ok(fields);
        }
        i += 1;
    }
}

/// Appends one row, with its newline, as COPY TO writes it.
pub fn encode_row<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = Option<&'a [u8]>>,
    options: &Options,
) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(options.delimiter);
        }
        match field {
            None => out.extend_from_slice(options.null.as_bytes()),
            Some(value) if options.csv => encode_csv(out, value, options),
            Some(value) => encode_text(out, value, options.delimiter),
        }
    }
    out.push(b'\n');
}

fn encode_text(out: &mut Vec<u8>, value: &[u8], delimiter: u8) {
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            11 => out.extend_from_slice(b"\\v"),
            b if b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn encode_csv(out: &mut Vec<u8>, value: &[u8], options: &Options) {
    let needs_quotes = value == options.null.as_bytes()
        || value.starts_with(b"\\.")
        || value.iter().any(|&b| {
            b == options.delimiter
                || b == options.quote
                || b == options.escape
                || b == b'\n'
                || b == b'\r'
        });
    if !needs_quotes {
        out.extend_from_slice(value);
        return;
    }
    out.push(options.quote);
    for &b in value {
        if b == options.quote || b == options.escape {
            out.push(options.escape);
        }
        out.push(b);
    }
    out.push(options.quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(options: Options, chunks: &[&[u8]]) -> Result<Vec<Vec<Field>>, FormatError> {
        let mut decoder = Decoder::new(options);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(row) = decoder.next_row()? {
                out.push(row);
            }
        }
        if let Some(row) = decoder.finish()? {
            out.push(row);
        }
        Ok(out)
    }

    fn s(v: &str) -> Field {
        Some(v.to_owned())
    }

    #[test]
    fn text_rows_with_escapes_and_nulls() {
        let got = rows(
            Options::text(),
            &[b"1\ta\\tb\\nc\t\\N\n2\t\\\\x\\x41\\101", b"\t\xc3\xa9\r\n"],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                vec![s("1"), s("a\tb\nc"), None],
                vec![s("2"), s("\\xAA"), s("é")],
            ]
        );
    }

    #[test]
    fn rows_split_anywhere_across_chunks() {
        let input = b"a\\\tb\tc\nd\te\n\\.\nignored\n";
        let whole = rows(Options::text(), &[input]).unwrap();
        for cut in 0..input.len() {
            let (x, y) = input.split_at(cut);
            assert_eq!(
                rows(Options::text(), &[x, y]).unwrap(),
                whole,
                "cut at {cut}"
            );
        }
        assert_eq!(whole, vec![vec![s("a\tb"), s("c")], vec![s("d"), s("e")]]);
    }

    #[test]
    fn csv_quotes_newlines_and_nulls() {
        let mut options = Options::csv();
        options.header = true;
        let input = b"id,name\n1,\"a,\"\"b\"\"\nc\"\n2,,\"\"\n";
        let whole = rows(options.clone(), &[input]).unwrap();
        assert_eq!(
            whole,
            vec![vec![s("1"), s("a,\"b\"\nc")], vec![s("2"), None, s("")]]
        );
        for cut in 0..input.len() {
            let (x, y) = input.split_at(cut);
            assert_eq!(rows(options.clone(), &[x, y]).unwrap(), whole);
        }
    }

    #[test]
    fn csv_with_a_distinct_escape() {
        let mut options = Options::csv();
        options.escape = b'\\';
        let got = rows(options, &[b"\"a\\\"b\\\\\",x"]).unwrap();
        assert_eq!(got, vec![vec![s("a\"b\\"), s("x")]]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let e = rows(Options::csv(), &[b"1,\"open\n"]).unwrap_err();
        assert_eq!(e.code, sqlstate::BAD_COPY_FILE_FORMAT);
        let e = rows(Options::text(), &[b"a\\"]).unwrap_err();
        assert_eq!(e.code, sqlstate::BAD_COPY_FILE_FORMAT);
        let e = rows(Options::text(), &[b"\xff\n"]).unwrap_err();
        assert_eq!(e.code, sqlstate::CHARACTER_NOT_IN_REPERTOIRE);
    }

    #[test]
    fn encoded_rows_read_back() {
        for options in [Options::text(), Options::csv()] {
            let values: Vec<Option<&[u8]>> = vec![
                Some(b"a\tb\nc\\d"),
                None,
                Some(b""),
                Some(b"x,\"y\""),
                Some("ü".as_bytes()),
            ];
            let mut out = Vec::new();
            encode_row(&mut out, values.clone(), &options);
            let got = rows(options.clone(), &[&out]).unwrap();
            let want: Vec<Field> = values
                .iter()
                .map(|v| v.map(|b| String::from_utf8(b.to_vec()).unwrap()))
                .collect();
            assert_eq!(got, vec![want], "{options:?}");
        }
        let mut out = Vec::new();
        encode_row(&mut out, [Some(&b"1"[..]), None], &Options::text());
        assert_eq!(out, b"1\t\\N\n");
    }
}
