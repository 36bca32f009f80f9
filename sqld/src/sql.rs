//! Light lexical work on SQL text, done before (or instead of) handing it to
//! libsql: splitting a simple-query string into statements, classifying each
//! once into a `Statement` (transaction control, the Postgres-only commands
//! clients send on their own such as SET and SHOW, write intent, command
//! tag), and guessing parameter types.
//!
//! Nothing here parses SQL for meaning; libsql does that. These helpers only
//! read leading keywords and simple token patterns; a statement that shows
//! a marker of Postgres-only syntax is handed to `compat` once, when it is
//! classified.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::CString;

use libsql_sys::ffi;

use crate::compat;
use crate::error::SqlError;

mod cursor;
mod prepare;

pub use cursor::{CursorCommand, Direction};
pub use prepare::PreparedCommand;

/// Splits `sql` into complete statements, the way SQLite's shell does: a
/// `;` ends a statement when `sqlite3_complete` agrees (so semicolons inside
/// strings, comments and trigger bodies do not split). Blank pieces are
/// dropped; a trailing piece without `;` is kept.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in sql.match_indices(';') {
        let candidate = &sql[start..=i];
        if is_complete(candidate) {
            if !is_blank(candidate) {
                out.push(candidate);
            }
            start = i + 1;
        }
    }
    let rest = &sql[start..];
    if !is_blank(rest) {
        out.push(rest);
    }
    out
}

fn is_complete(sql: &str) -> bool {
    match CString::new(sql) {
        Ok(c) => unsafe { ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// True when `sql` holds nothing but whitespace, semicolons and comments.
pub fn is_blank(sql: &str) -> bool {
    uncommented(sql).all(|c| c.is_whitespace() || c == ';')
}

/// `sql` without `--` and `/* */` comments (strings are left alone).
fn strip_comments(sql: &str) -> String {
    uncommented(sql).collect()
}

/// The characters of `sql` with each comment replaced by one space, lazily:
/// `is_blank` stops at the first character that is not blank.
fn uncommented(sql: &str) -> impl Iterator<Item = char> + '_ {
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    std::iter::from_fn(move || {
        let c = chars.next()?;
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            return Some(c);
        }
        Some(match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                c
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                ' '
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                ' '
            }
            _ => c,
        })
    })
}

/// The words of a statement, lazily, as slices of it: comments are
/// skipped, quoted parts stay inside their word, and whitespace, `;` and
/// `(` separate words. The classifiers below read only the first few, per
/// statement executed, so this allocates nothing.
fn words(sql: &str) -> impl Iterator<Item = &str> + '_ {
    let bytes = sql.as_bytes();
    let separator = |c: u8| c.is_ascii_whitespace() || c == b';' || c == b'(';
    let comment_at = move |i: usize| match (bytes.get(i), bytes.get(i + 1)) {
        (Some(b'-'), Some(b'-')) => Some(b"\n".as_slice()),
        (Some(b'/'), Some(b'*')) => Some(b"*/".as_slice()),
        _ => None,
    };
    let mut i = 0;
    std::iter::from_fn(move || {
        loop {
            if let Some(end) = comment_at(i) {
                i = find(bytes, i + 2, end).map_or(bytes.len(), |at| at + end.len());
            } else if separator(*bytes.get(i)?) {
                i += 1;
            } else {
                break;
            }
        }
        let start = i;
        let mut quote = None;
        while let Some(&c) = bytes.get(i) {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if separator(c) || comment_at(i).is_some() => break,
                None if matches!(c, b'\'' | b'"' | b'`') => quote = Some(c),
                None => {}
            }
            i += 1;
        }
        // Separators are ASCII, so `start` and `i` fall on char boundaries.
        Some(&sql[start..i])
    })
}

/// Where `needle` next occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at)
}

/// Whether `word` is one of `keywords` (upper case), ignoring its case.
fn is_one_of(word: &str, keywords: &[&str]) -> bool {
    keywords.iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// What sqld needs to know about one statement before libsql sees it,
/// read once from its leading words and carried along, so the text is
/// scanned once however many decisions depend on it (in the spirit of
/// mini-redis's `Command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement as the client sent it.
    pub text: &'a str,
    /// What SQLite runs: Postgres-only spellings of transaction control
    /// rewritten, Postgres syntax translated by the compatibility layer
    /// (only for statements that show a marker of it), anything else as
    /// sent.
    pub runnable: Cow<'a, str>,
    pub control: Option<TxnControl>,
    /// `BEGIN IMMEDIATE` and `BEGIN EXCLUSIVE` take SQLite's write lock at
    /// once (for `sqlite3_stmt_readonly` they are read-only, like all
    /// transaction control).
    pub takes_write_lock: bool,
    /// A Postgres command sqld answers itself (SET, SHOW, ...).
    pub session: Option<SessionCommand>,
    /// DECLARE, FETCH, MOVE, CLOSE (or why the command cannot run).
    pub cursor: Option<Result<CursorCommand<'a>, SqlError>>,
    /// PREPARE, EXECUTE, DEALLOCATE, DISCARD ALL.
    pub prepared: Option<Result<PreparedCommand<'a>, SqlError>>,
    /// `VACUUM ... INTO 'file'`, which writes a copy of the database to a
    /// path of the client's choosing.
    pub vacuum_into: bool,
    /// The first word and, for DDL, the kind of object: the command tag.
    verb: &'a str,
    object: &'a str,
}

/// How many leading words any classification reads.
const HEAD_WORDS: usize = 8;

impl<'a> Statement<'a> {
    pub fn classify(text: &'a str) -> Self {
        let mut head = [""; HEAD_WORDS];
        for (slot, word) in head.iter_mut().zip(words(text)) {
            *slot = word;
        }
        let control = txn_control(&head);
        let cursor = cursor::parse(&head, text);
        let prepared = prepare::parse(&head, text);
        // sqld runs these itself: SQLite never sees their text.
        let own_command = cursor.is_some() || prepared.is_some();
        let runnable = match control.and_then(|c| rewrite_txn_control(&head, c)) {
            Some(sqlite) => Cow::Borrowed(sqlite),
            None if !own_command && compat::may_need_rewrite(text) => {
                compat::rewrite(text).map_or(Cow::Borrowed(text), Cow::Owned)
            }
            None => Cow::Borrowed(text),
        };
        let verb = head[0];
        let object = if is_one_of(verb, &["CREATE", "DROP", "ALTER"]) {
            const MODIFIERS: &[&str] = &["UNIQUE", "TEMP", "TEMPORARY", "VIRTUAL", "OR"];
            head[1..4]
                .iter()
                .find(|x| !is_one_of(x, MODIFIERS))
                .copied()
                .unwrap_or_default()
        } else {
            ""
        };
        Statement {
            text,
            runnable,
            control,
            takes_write_lock: verb.eq_ignore_ascii_case("BEGIN")
                && is_one_of(head[1], &["IMMEDIATE", "EXCLUSIVE"]),
            session: (!own_command)
                .then(|| session_command(&head, text))
                .flatten(),
            cursor,
            prepared,
            vacuum_into: verb.eq_ignore_ascii_case("VACUUM")
                && head[1..4].iter().any(|x| x.eq_ignore_ascii_case("INTO")),
            verb,
            object,
        }
    }

    /// The CommandComplete tag Postgres would send for this statement.
    pub fn tag(&self, rows: usize, changes: u64, returned_rows: bool) -> String {
        let first = self.verb.to_ascii_uppercase();
        let first = first.as_str();
        let count = if returned_rows { rows as u64 } else { changes };
        match first {
            "INSERT" | "REPLACE" => format!("INSERT 0 {count}"),
            "UPDATE" | "DELETE" => format!("{first} {count}"),
            "CREATE" | "DROP" | "ALTER" => format!("{first} {}", self.object.to_ascii_uppercase()),
            "BEGIN" | "START" => "BEGIN".into(),
            "COMMIT" | "END" => "COMMIT".into(),
            "ROLLBACK" | "ABORT" => "ROLLBACK".into(),
            "SAVEPOINT" | "RELEASE" | "VACUUM" | "ANALYZE" | "REINDEX" => first.into(),
            _ if returned_rows => format!("SELECT {rows}"),
            "" => String::new(),
            other => other.to_string(),
        }
    }
}

/// Transaction control, which sqld tracks itself to report `T`/`E` in
/// ReadyForQuery and to refuse statements in a failed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnControl {
    Begin,
    Commit,
    Rollback,
    RollbackToSavepoint,
    Savepoint,
    Release,
}

fn txn_control(head: &[&str; HEAD_WORDS]) -> Option<TxnControl> {
    let first = head[0];
    Some(if is_one_of(first, &["BEGIN", "START"]) {
        TxnControl::Begin
    } else if is_one_of(first, &["COMMIT", "END"]) {
        TxnControl::Commit
    } else if is_one_of(first, &["ROLLBACK", "ABORT"]) {
        if head[1..3].iter().any(|x| x.eq_ignore_ascii_case("TO")) {
            TxnControl::RollbackToSavepoint
        } else {
            TxnControl::Rollback
        }
    } else if first.eq_ignore_ascii_case("SAVEPOINT") {
        TxnControl::Savepoint
    } else if first.eq_ignore_ascii_case("RELEASE") {
        TxnControl::Release
    } else {
        return None;
    })
}

/// Rewrites the Postgres spellings of transaction control that SQLite does
/// not know (`START TRANSACTION`, `BEGIN ISOLATION LEVEL ...`, `COMMIT WORK`,
/// `ABORT`) into SQLite's. Isolation options are dropped: every transaction
/// is serializable.
fn rewrite_txn_control(head: &[&str; HEAD_WORDS], control: TxnControl) -> Option<&'static str> {
    let first = head[0];
    let rest = head[1..].iter().filter(|w| !w.is_empty());
    let sqlite_native = |allowed: &[&str]| rest.clone().all(|x| is_one_of(x, allowed));
    match control {
        TxnControl::Begin => {
            if first.eq_ignore_ascii_case("BEGIN")
                && sqlite_native(&["DEFERRED", "IMMEDIATE", "EXCLUSIVE", "TRANSACTION"])
            {
                None
            } else {
                Some("BEGIN")
            }
        }
        TxnControl::Commit => (!sqlite_native(&["TRANSACTION"])).then_some("COMMIT"),
        TxnControl::Rollback => (first.eq_ignore_ascii_case("ABORT")
            || !sqlite_native(&["TRANSACTION"]))
        .then_some("ROLLBACK"),
        _ => None,
    }
}

/// Postgres commands that SQLite lacks but clients send unprompted; sqld
/// answers them itself from per-session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    Set {
        name: String,
        value: String,
    },
    Show(String),
    Reset(String),
    /// Accepted and ignored, with the given command tag.
    NoOp(&'static str),
}

fn session_command(head: &[&str; HEAD_WORDS], sql: &str) -> Option<SessionCommand> {
    // Most statements are not session commands: decide on the first word.
    const COMMANDS: &[&str] = &[
        "SET", "SHOW", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "LOCK", "ALTER",
    ];
    if !is_one_of(head[0], COMMANDS) {
        return None;
    }
    let text = strip_comments(sql);
    let text = text.trim().trim_end_matches(';').trim();
    let mut parts = text.splitn(2, char::is_whitespace);
    let head = parts.next()?.to_ascii_uppercase();
    let rest = parts.next().unwrap_or("").trim();
    match head.as_str() {
        "SET" => {
            let rest = strip_word(rest, "SESSION")
                .or_else(|| strip_word(rest, "LOCAL"))
                .unwrap_or(rest);
            if let Some(tz) = strip_word(rest, "TIME").and_then(|r| strip_word(r, "ZONE")) {
                return Some(SessionCommand::Set {
                    name: "TimeZone".into(),
                    value: unquote(tz),
                });
            }
            let upper = rest.to_ascii_uppercase();
            if upper.starts_with("TRANSACTION") || upper.starts_with("CHARACTERISTICS") {
                return Some(SessionCommand::NoOp("SET"));
            }
            let (name, value) = match rest.find(['=', ' ', '\t', '\n']) {
                Some(i) => {
                    let (n, v) = rest.split_at(i);
                    let v = v.trim_start();
                    let v = v
                        .strip_prefix('=')
                        .map(str::trim_start)
                        .unwrap_or_else(|| strip_word(v, "TO").unwrap_or(v));
                    (n.trim(), v.trim())
                }
                None => return None,
            };
            Some(SessionCommand::Set {
                name: name.to_owned(),
                value: unquote(value),
            })
        }
        "SHOW" if !rest.is_empty() => Some(SessionCommand::Show(setting_name(rest))),
        "RESET" => Some(SessionCommand::Reset(rest.to_owned())),
        // DISCARD ALL is a prepared-statement command (see `prepare`).
        "DISCARD" => Some(SessionCommand::NoOp("DISCARD")),
        "LISTEN" => Some(SessionCommand::NoOp("LISTEN")),
        "UNLISTEN" => Some(SessionCommand::NoOp("UNLISTEN")),
        // pg_dump locks the tables it dumps: its transaction's snapshot
        // already keeps them as they are.
        "LOCK" => Some(SessionCommand::NoOp("LOCK TABLE")),
        // Every object has the one owner already (pg_dump sets it).
        "ALTER" if rest.to_ascii_uppercase().contains(" OWNER TO ") => Some(SessionCommand::NoOp(
            match first_word_upper(rest).as_str() {
                "SCHEMA" => "ALTER SCHEMA",
                "VIEW" => "ALTER VIEW",
                _ => "ALTER TABLE",
            },
        )),
        _ => None,
    }
}

fn first_word_upper(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// The setting a SHOW names: Postgres' multi-word spellings
/// (`TRANSACTION ISOLATION LEVEL`, `TIME ZONE`, ...) as the parameter
/// they show.
fn setting_name(shown: &str) -> String {
    let words: Vec<String> = shown
        .trim_matches('"')
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    match words.join(" ").as_str() {
        "transaction isolation level" => "transaction_isolation".to_owned(),
        "time zone" => "timezone".to_owned(),
        _ => words.join("_"),
    }
}

/// Protocol-level prepared statements a simple-query statement releases.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// `DEALLOCATE [PREPARE] name`
    One(String),
    /// `DEALLOCATE [PREPARE] ALL`, `DISCARD ALL`
    All,
}

/// Whether `sql` starts with a statement that may release prepared
/// statements: a cheap test before splitting a query to look closer
/// (drivers send `DEALLOCATE name` as a query of its own).
pub fn may_release_statements(sql: &str) -> bool {
    words(sql)
        .next()
        .is_some_and(|f| is_one_of(f, &["DEALLOCATE", "DISCARD"]))
}

pub fn released_statements(sql: &str) -> Option<Released> {
    if !may_release_statements(sql) {
        return None;
    }
    let text = strip_comments(sql);
    let text = text.trim().trim_end_matches(';').trim();
    if let Some(rest) = strip_word(text, "DISCARD") {
        return rest.eq_ignore_ascii_case("ALL").then_some(Released::All);
    }
    let rest = strip_word(text, "DEALLOCATE")?;
    let rest = strip_word(rest, "PREPARE").unwrap_or(rest).trim();
    if rest.is_empty() {
        return None;
    }
    Some(if rest.eq_ignore_ascii_case("ALL") {
        Released::All
    } else {
        Released::One(unquote(rest))
    })
}

/// A name as Postgres reads it: folded to lower case, unless quoted.
fn identifier(word: &str) -> Option<String> {
    if let Some(quoted) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        return (!quoted.is_empty()).then(|| quoted.replace("\"\"", "\""));
    }
    let plain = word.starts_with(|c: char| c.is_alphabetic() || c == '_')
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    plain.then(|| word.to_lowercase())
}

/// The text of `sql` after `word`, which is one of its `words`.
fn text_after<'a>(sql: &'a str, word: &str) -> &'a str {
    let end = (word.as_ptr() as usize).wrapping_sub(sql.as_ptr() as usize) + word.len();
    sql.get(end..).unwrap_or("")
}

fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let next = s[word.len()..].chars().next();
    (head.eq_ignore_ascii_case(word) && next.is_none_or(char::is_whitespace))
        .then(|| s[word.len()..].trim_start())
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2
        && (v.starts_with('\'') && v.ends_with('\'') || v.starts_with('"') && v.ends_with('"'))
    {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_owned()
    }
}

/// What the text of a statement says about the type of each parameter,
/// keyed by 1-based parameter number: the column it is compared with or
/// assigned to, or an explicit SQL type.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParamHints {
    pub columns: HashMap<usize, String>,
    pub types: HashMap<usize, String>,
    /// For `INSERT INTO t VALUES (...)` without a column list: the table,
    /// and for each parameter the position of the column it fills.
    pub insert_table: Option<String>,
    pub positions: HashMap<usize, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Param(usize),
    Op(String),
    Open,
    Close,
    Comma,
}

fn tokenize(sql: &str) -> Vec<Token> {
    let sql = strip_comments(sql);
    let mut tokens = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let mut positional = 0;
    while let Some((_, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' => {
                // string literal: skip, '' escapes included
                while let Some((_, c)) = chars.next() {
                    if c == '\'' {
                        if chars.peek().map(|p| p.1) == Some('\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                tokens.push(Token::Word(String::new()));
            }
            '$' | '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let n = if digits.is_empty() {
                    positional += 1;
                    positional
                } else {
                    digits.parse().unwrap_or(0)
                };
                positional = positional.max(n);
                tokens.push(Token::Param(n));
            }
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            ',' => tokens.push(Token::Comma),
            c if c.is_alphanumeric() || c == '_' || c == '"' || c == '`' || c == '[' => {
                let mut word = String::new();
                word.push(c);
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_alphanumeric()
                        || d == '_'
                        || d == '.'
                        || d == '"'
                        || d == '`'
                        || d == ']'
                    {
                        word.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                let mut op = c.to_string();
                while let Some(&(_, d)) = chars.peek() {
                    if "=<>!|".contains(d) {
                        op.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Op(op));
            }
        }
    }
    tokens
}

fn column_name(word: &str) -> String {
    let last = word.rsplit('.').next().unwrap_or(word);
    last.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
        .to_ascii_lowercase()
}

fn is_comparison(t: &Token) -> bool {
    match t {
        // Arithmetic counts too: in `bal + $1` the parameter is a number.
        Token::Op(op) => matches!(
            op.as_str(),
            "=" | "==" | "<>" | "!=" | "<" | "<=" | ">" | ">=" | "+" | "-" | "*" | "/"
        ),
        Token::Word(w) => matches!(w.to_ascii_uppercase().as_str(), "LIKE" | "GLOB" | "IS"),
        _ => false,
    }
}

fn is_identifier(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if !w.is_empty() && !w.chars().next().unwrap().is_ascii_digit() => {
            let upper = w.to_ascii_uppercase();
            (!matches!(
                upper.as_str(),
                "AND" | "OR" | "NOT" | "WHERE" | "SET" | "ON" | "SELECT" | "NULL"
            ))
            .then(|| column_name(w))
        }
        _ => None,
    }
}

/// Reads parameter hints from `col = $1`, `$1 < col`, `col IN ($1, $2)`,
/// `col BETWEEN $1 AND $2`, `LIMIT $1`, `CAST($1 AS type)` and
/// `INSERT INTO t (a, b) VALUES ($1, $2)`.
pub fn param_hints(sql: &str) -> ParamHints {
    let tokens = tokenize(sql);
    let mut hints = ParamHints::default();
    let word_is = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    for (i, token) in tokens.iter().enumerate() {
        let Token::Param(n) = *token else { continue };
        let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
        // LIMIT/OFFSET take integers.
        if i > 0 && (word_is(i - 1, "LIMIT") || word_is(i - 1, "OFFSET")) {
            hints.types.insert(n, "INTEGER".into());
            continue;
        }
        // CAST($n AS type)
        if i >= 2 && word_is(i - 2, "CAST") && word_is(i + 1, "AS") {
            if let Some(Token::Word(ty)) = tokens.get(i + 2) {
                hints.types.insert(n, ty.clone());
                continue;
            }
        }
        // col <op> $n
        if let (Some(op), Some(col)) = (prev, i.checked_sub(2).and_then(|p| tokens.get(p))) {
            if is_comparison(op) {
                if let Some(c) = is_identifier(col) {
                    hints.columns.entry(n).or_insert(c);
                    continue;
                }
            }
        }
        // $n <op> col
        if let (Some(op), Some(col)) = (tokens.get(i + 1), tokens.get(i + 2)) {
            if is_comparison(op) {
                if let Some(c) = is_identifier(col) {
                    hints.columns.entry(n).or_insert(c);
                    continue;
                }
            }
        }
        // col BETWEEN $a AND $b, col IN ($a, $b, ...): walk back to the keyword.
        let mut j = i;
        while j > 0 && matches!(tokens[j - 1], Token::Comma | Token::Param(_) | Token::Open) {
            j -= 1;
        }
        if j >= 2 && (word_is(j - 1, "IN") || word_is(j - 1, "BETWEEN")) {
            if let Some(c) = is_identifier(&tokens[j - 2]) {
                hints.columns.entry(n).or_insert(c);
                continue;
            }
        }
        if i >= 4
            && word_is(i - 1, "AND")
            && matches!(tokens[i - 2], Token::Param(_))
            && word_is(i - 3, "BETWEEN")
        {
            if let Some(c) = is_identifier(&tokens[i - 4]) {
                hints.columns.entry(n).or_insert(c);
            }
        }
    }
    insert_column_hints(&tokens, &mut hints);
    hints
}

fn insert_column_hints(tokens: &[Token], hints: &mut ParamHints) {
    let Some(Token::Word(first)) = tokens.first() else {
        return;
    };
    if !matches!(first.to_ascii_uppercase().as_str(), "INSERT" | "REPLACE") {
        return;
    }
    let Some(open) = tokens.iter().position(|t| *t == Token::Open) else {
        return;
    };
    let values_first =
        matches!(&tokens[open - 1], Token::Word(w) if w.eq_ignore_ascii_case("VALUES"));
    let mut columns = Vec::new();
    let mut i = open + 1;
    if values_first {
        // No column list: parameters fill the table's columns in order.
        if let Some(Token::Word(table)) = tokens.get(open.wrapping_sub(2)) {
            hints.insert_table = Some(column_name(table));
        }
        i = open - 1;
    } else {
        while let Some(t) = tokens.get(i) {
            match t {
                Token::Word(w) => columns.push(column_name(w)),
                Token::Close => break,
                _ => {}
            }
            i += 1;
        }
    }
    let Some(values) = tokens[i..]
        .iter()
        .position(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("VALUES")))
    else {
        return;
    };
    // Each VALUES tuple maps position k to columns[k].
    let mut k = 0;
    let mut depth = 0;
    for t in &tokens[i + values + 1..] {
        match t {
            Token::Open => {
                depth += 1;
                if depth == 1 {
                    k = 0;
                }
            }
            Token::Close => depth -= 1,
            Token::Comma if depth == 1 => k += 1,
            Token::Param(n) if depth == 1 => {
                if hints.insert_table.is_some() {
                    hints.positions.entry(*n).or_insert(k);
                } else if let Some(c) = columns.get(k) {
                    hints.columns.entry(*n).or_insert_with(|| c.clone());
                }
            }
            Token::Word(w) if depth == 0 && !w.is_empty() => break,
            _ => {}
        }
    }
}

/// The name Postgres gives a result column that SQLite named after its
/// expression's text: a function call is named after the function
/// (`count(*)` is `count`), any other expression `?column?`. A plain name
/// (a column, an alias) is kept, and so is one the statement spells in
/// quotes (an alias such as `AS "total (USD)"`). `None`: keep `name`.
pub fn postgres_column_name(name: &str, sql: &str) -> Option<String> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain || !spelled_unquoted(name, sql) {
        return None;
    }
    Some(match function_called(name) {
        Some(function) => function.to_ascii_lowercase(),
        None => "?column?".to_owned(),
    })
}

/// Whether `text` occurs in `sql` other than right inside quotes.
fn spelled_unquoted(text: &str, sql: &str) -> bool {
    sql.match_indices(text).any(|(at, _)| {
        let before = sql[..at].chars().next_back();
        !matches!(before, Some('"' | '`' | '['))
    })
}

/// `f` for an expression that is one call `f(...)`.
fn function_called(expr: &str) -> Option<&str> {
    let open = expr.find('(')?;
    let function = expr[..open].trim_end();
    let is_name = !function.is_empty()
        && function
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if !is_name || !expr.ends_with(')') {
        return None;
    }
    // The bracket opened after the name must be the one that closes last.
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in expr.char_indices().skip(open) {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 && i + 1 != expr.len() {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(function.rsplit('.').next().unwrap_or(function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_columns_are_named_as_postgres_names_them() {
        let name = |n: &str, sql: &str| postgres_column_name(n, sql);
        assert_eq!(
            name("count(*)", "select count(*) from t").as_deref(),
            Some("count")
        );
        assert_eq!(
            name("COALESCE(a, 1)", "select COALESCE(a, 1)").as_deref(),
            Some("coalesce")
        );
        assert_eq!(name("$1 + 1", "select $1 + 1").as_deref(), Some("?column?"));
        assert_eq!(name("1", "select 1").as_deref(), Some("?column?"));
        assert_eq!(
            name("max(a) + min(b)", "select max(a) + min(b)").as_deref(),
            Some("?column?")
        );
        assert_eq!(name("f(')')", "select f(')')").as_deref(), Some("f"));
        assert_eq!(name("id", "select id from t"), None);
        assert_eq!(name("count(*)", "select 1 as \"count(*)\""), None);
        assert_eq!(name("total (USD)", "select 1 as \"total (USD)\""), None);
    }

    #[test]
    fn splits_on_complete_statements_only() {
        let sql = "select 'a;b'; create trigger t after insert on x begin select 1; end; select 2";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[1].contains("end;"));
        assert!(split_statements(" ; ;; ").is_empty());
        assert_eq!(split_statements("select 1; -- trailing").len(), 1);
    }

    #[test]
    fn words_skip_comments_and_keep_quotes_whole() {
        let sql = "/* lead */ -- line\n  Begin/*x*/Immediate;('a b' \"c;d\"--tail\nnäive";
        let w: Vec<&str> = words(sql).collect();
        assert_eq!(w, ["Begin", "Immediate", "'a b'", "\"c;d\"", "näive"]);
        assert!(Statement::classify("/* why */ begin immediate").takes_write_lock);
        assert!(!Statement::classify("begin -- immediate").takes_write_lock);
        assert_eq!(words("-- only a comment").count(), 0);
        assert_eq!(words("/* unterminated").count(), 0);
        assert!(Statement::classify("vacuum main into '/tmp/x'").vacuum_into);
        assert_eq!(
            Statement::classify("create temp table t(x)").tag(0, 0, false),
            "CREATE TABLE"
        );
        assert_eq!(
            Statement::classify("update t set x = 1").tag(0, 3, false),
            "UPDATE 3"
        );
    }

    /// What SQLite is given instead, if anything.
    fn rewritten(sql: &str) -> Option<String> {
        let s = Statement::classify(sql);
        (s.runnable != sql).then(|| s.runnable.into_owned())
    }

    #[test]
    fn transaction_control() {
        assert_eq!(
            Statement::classify("begin").control,
            Some(TxnControl::Begin)
        );
        assert_eq!(
            Statement::classify("START TRANSACTION ISOLATION LEVEL SERIALIZABLE").control,
            Some(TxnControl::Begin)
        );
        assert_eq!(
            Statement::classify("rollback to savepoint a").control,
            Some(TxnControl::RollbackToSavepoint)
        );
        assert_eq!(Statement::classify("select 1").control, None);
        assert_eq!(rewritten("START TRANSACTION").as_deref(), Some("BEGIN"));
        assert_eq!(rewritten("BEGIN IMMEDIATE").as_deref(), None);
        assert_eq!(rewritten("COMMIT WORK").as_deref(), Some("COMMIT"));
    }

    #[test]
    fn session_commands() {
        assert_eq!(
            Statement::classify("SET extra_float_digits = 3").session,
            Some(SessionCommand::Set {
                name: "extra_float_digits".into(),
                value: "3".into()
            })
        );
        assert_eq!(
            Statement::classify("set application_name to 'my app';").session,
            Some(SessionCommand::Set {
                name: "application_name".into(),
                value: "my app".into()
            })
        );
        assert_eq!(
            Statement::classify("SET TIME ZONE 'UTC'").session,
            Some(SessionCommand::Set {
                name: "TimeZone".into(),
                value: "UTC".into()
            })
        );
        assert_eq!(
            Statement::classify("show server_version").session,
            Some(SessionCommand::Show("server_version".into()))
        );
        assert_eq!(Statement::classify("select 1").session, None);
    }

    #[test]
    fn command_tags() {
        assert_eq!(
            Statement::classify("insert into t values (1)").tag(0, 1, false),
            "INSERT 0 1"
        );
        assert_eq!(
            Statement::classify("UPDATE t SET a = 1").tag(0, 3, false),
            "UPDATE 3"
        );
        assert_eq!(
            Statement::classify("select * from t").tag(5, 0, true),
            "SELECT 5"
        );
        assert_eq!(
            Statement::classify("create unique index i on t(a)").tag(0, 0, false),
            "CREATE INDEX"
        );
        assert_eq!(
            Statement::classify("/* c */ delete from t").tag(0, 2, false),
            "DELETE 2"
        );
    }

    #[test]
    fn parameter_hints() {
        let h = param_hints("SELECT * FROM t WHERE t.id = $1 AND $2 < \"score\" LIMIT $3");
        assert_eq!(h.columns[&1], "id");
        assert_eq!(h.columns[&2], "score");
        assert_eq!(h.types[&3], "INTEGER");
        let h = param_hints("INSERT INTO t (a, b, c) VALUES ($1, 'x', $2)");
        assert_eq!(h.columns[&1], "a");
        assert_eq!(h.columns[&2], "c");
        let h = param_hints("insert into t values (1, $1, $2)");
        assert_eq!(h.insert_table.as_deref(), Some("t"));
        assert_eq!(h.positions[&1], 1);
        assert_eq!(h.positions[&2], 2);
        let h = param_hints("SELECT 1 FROM t WHERE a IN ($1, $2) OR b BETWEEN $3 AND $4");
        assert_eq!(h.columns[&2], "a");
        assert_eq!(h.columns[&3], "b");
        assert_eq!(h.columns[&4], "b");
        let h = param_hints("UPDATE t SET bal = bal + $1 WHERE id = $2");
        assert_eq!(h.columns[&1], "bal");
        assert_eq!(h.columns[&2], "id");
    }

    #[test]
    fn deallocate_and_discard_all_name_what_they_release() {
        use super::Released;
        assert_eq!(
            released_statements("DEALLOCATE _pg3_7"),
            Some(Released::One("_pg3_7".into()))
        );
        assert_eq!(
            released_statements("deallocate prepare \"S 1\";"),
            Some(Released::One("S 1".into()))
        );
        assert_eq!(released_statements("DEALLOCATE ALL"), Some(Released::All));
        assert_eq!(released_statements("discard all"), Some(Released::All));
        assert_eq!(released_statements("DISCARD PLANS"), None);
        assert_eq!(released_statements("DEALLOCATE"), None);
        assert_eq!(released_statements("select 1"), None);
    }
}
