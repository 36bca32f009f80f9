//! A small SQLite tokenizer, enough to do on the client what
//! `sqlite3_prepare` promises without a round trip: find where the first
//! statement of a script ends (the tail pointer), whether it is empty,
//! its parameters (`?`, `?NNN`, `:name`, `@name`, `$name`) numbered the
//! way SQLite numbers them, whether it only reads, and `sqlite3_complete`.

/// What the scanner learns about the first statement of some SQL.
#[derive(Debug, Default, PartialEq)]
pub struct Scanned {
    /// Byte offset just past the statement (and its `;`, if any).
    pub end: usize,
    /// Only whitespace, comments and semicolons.
    pub empty: bool,
    /// The statement ended at a `;` (not at the end of the text).
    pub terminated: bool,
    /// Parameter names by index - 1 (`None` for an anonymous `?`); the
    /// length is `sqlite3_bind_parameter_count`.
    pub params: Vec<Option<String>>,
    /// Upper-cased leading keywords (up to a few).
    pub keywords: Vec<String>,
    /// A keyword that writes or changes the schema appears (for `WITH ... INSERT`).
    pub writes: bool,
}

const WRITE_WORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "VACUUM", "REINDEX",
    "ANALYZE", "ATTACH", "DETACH",
];

/// Scans the first statement of `sql`.
pub fn first_statement(sql: &[u8]) -> Scanned {
    let mut out = Scanned {
        empty: true,
        ..Scanned::default()
    };
    let mut i = 0;
    let mut trigger = false;
    let mut last_word = String::new();
    let mut named: Vec<(String, usize)> = Vec::new();
    while i < sql.len() {
        let c = sql[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                while i < sql.len() && sql[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < sql.len() && !(sql[i] == b'*' && sql.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(sql.len());
            }
            b';' => {
                i += 1;
                if out.empty {
                    continue;
                }
                if !trigger || last_word == "END" {
                    out.end = i;
                    out.terminated = true;
                    return out;
                }
                last_word.clear();
            }
            b'\'' | b'"' | b'`' | b'[' => {
                out.empty = false;
                let close = if c == b'[' { b']' } else { c };
                i += 1;
                while i < sql.len() {
                    if sql[i] == close {
                        if close != b']' && sql.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(sql.len());
                last_word.clear();
            }
            b'?' => {
                out.empty = false;
                i += 1;
                let start = i;
                while i < sql.len() && sql[i].is_ascii_digit() {
                    i += 1;
                }
                if start == i {
                    out.params.push(None);
                } else {
                    let text = String::from_utf8_lossy(&sql[start..i]);
                    let n: usize = text.parse().unwrap_or(0).max(1);
                    if out.params.len() < n {
                        out.params.resize(n, None);
                    }
                    out.params[n - 1] = Some(format!("?{text}"));
                }
                last_word.clear();
            }
            b':' | b'@' | b'$' if sql.get(i + 1).is_some_and(|b| is_ident(*b)) => {
                out.empty = false;
                let start = i;
                i += 1;
                while i < sql.len() && is_ident(sql[i]) {
                    i += 1;
                }
                let name = String::from_utf8_lossy(&sql[start..i]).into_owned();
                if !named.iter().any(|(n, _)| *n == name) {
                    out.params.push(Some(name.clone()));
                    named.push((name, out.params.len()));
                }
                last_word.clear();
            }
            _ if is_ident(c) && !c.is_ascii_digit() => {
                out.empty = false;
                let start = i;
                while i < sql.len() && is_ident(sql[i]) {
                    i += 1;
                }
                let word = String::from_utf8_lossy(&sql[start..i]).to_ascii_uppercase();
                if out.keywords.len() < 4 {
                    out.keywords.push(word.clone());
                    if out.keywords.len() <= 3 && out.keywords[0] == "CREATE" && word == "TRIGGER" {
                        trigger = true;
                    }
                }
                out.writes |= WRITE_WORDS.contains(&word.as_str());
                last_word = word;
            }
            _ => {
                out.empty = false;
                i += 1;
                if !c.is_ascii_whitespace() {
                    last_word.clear();
                }
            }
        }
    }
    out.end = sql.len();
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Scanned {
    /// `sqlite3_stmt_readonly`: SQLite calls transaction control and
    /// queries read-only; anything that writes or changes the schema not.
    pub fn readonly(&self) -> bool {
        let first = self.keywords.first().map(String::as_str).unwrap_or("");
        match first {
            "PRAGMA" => false,
            "SELECT" | "VALUES" | "WITH" | "EXPLAIN" => !self.writes,
            _ => !self.writes,
        }
    }
}

/// `sqlite3_complete`: the text ends with a finished statement.
pub fn complete(sql: &[u8]) -> bool {
    let mut rest = sql;
    let mut any = false;
    loop {
        let s = first_statement(rest);
        if s.empty {
            return any;
        }
        if !s.terminated {
            return false;
        }
        any = true;
        rest = &rest[s.end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_statement() {
        let sql = b"SELECT 'a;b' -- c;\n; INSERT INTO t VALUES (1);";
        let s = first_statement(sql);
        assert_eq!(&sql[..s.end], b"SELECT 'a;b' -- c;\n;");
        assert!(!s.empty);
        assert!(first_statement(b"  -- only a comment\n ;").empty);
        let trig = b"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END; SELECT 1";
        let s = first_statement(trig);
        assert_eq!(&trig[..s.end], &trig[..trig.len() - 9]);
    }

    #[test]
    fn numbers_parameters_like_sqlite() {
        let s = first_statement(b"SELECT ?, ?5, :a, @b, :a, $c, ?");
        assert_eq!(s.params.len(), 9);
        assert_eq!(s.params[0], None);
        assert_eq!(s.params[4].as_deref(), Some("?5"));
        assert_eq!(s.params[5].as_deref(), Some(":a"));
        assert_eq!(s.params[6].as_deref(), Some("@b"));
        assert_eq!(s.params[7].as_deref(), Some("$c"));
        assert_eq!(s.params[8], None);
    }

    #[test]
    fn readonly_and_complete() {
        assert!(first_statement(b"select 1").readonly());
        assert!(first_statement(b"BEGIN").readonly());
        assert!(!first_statement(b"insert into t values(1)").readonly());
        assert!(!first_statement(b"WITH x AS (SELECT 1) DELETE FROM t").readonly());
        assert!(complete(b"select 1;"));
        assert!(!complete(b"select 1"));
        assert!(!complete(b"select 'a;"));
        assert!(!complete(
            b"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;"
        ));
    }
}
