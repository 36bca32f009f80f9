//! SQL-level prepared statements, which sqld keeps itself (SQLite has no
//! PREPARE): `PREPARE name [(type, ...)] AS statement`,
//! `EXECUTE name [(argument, ...)]`, `DEALLOCATE [PREPARE] name | ALL` and
//! `DISCARD ALL`, read from their words.

use super::cursor::{near, statement_body, syntax_error};
use super::{identifier, text_after, words, HEAD_WORDS};
use crate::error::SqlError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedCommand<'a> {
    Prepare {
        name: String,
        /// The declared parameter types, as written (`int`, `numeric(10, 2)`).
        param_types: Vec<&'a str>,
        statement: &'a str,
    },
    /// `arguments`: the text between the parentheses, SQL expressions
    /// separated by commas.
    Execute {
        name: String,
        arguments: Option<&'a str>,
    },
    /// `None`: all of them.
    Deallocate(Option<String>),
    /// Ends everything a session set up, prepared statements among them.
    DiscardAll,
}

/// The prepared-statement command `text` is, if its first word says it is one.
pub(super) fn parse<'a>(
    head: &[&str; HEAD_WORDS],
    text: &'a str,
) -> Option<Result<PreparedCommand<'a>, SqlError>> {
    let verb = head[0];
    Some(if verb.eq_ignore_ascii_case("PREPARE") {
        prepare(text, verb)
    } else if verb.eq_ignore_ascii_case("EXECUTE") {
        execute(text, verb)
    } else if verb.eq_ignore_ascii_case("DEALLOCATE") {
        deallocate(&head[1..])
    } else if verb.eq_ignore_ascii_case("DISCARD")
        && head[1].eq_ignore_ascii_case("ALL")
        && head[2].is_empty()
    {
        Ok(PreparedCommand::DiscardAll)
    } else {
        return None;
    })
}

/// The statement's name after `verb`, and the text after the name.
fn name_after<'a>(text: &'a str, verb: &str) -> Result<(String, &'a str), SqlError> {
    let rest = text_after(text, verb);
    let word = words(rest)
        .next()
        .ok_or_else(|| syntax_error(format!("{verb} needs a statement name")))?;
    let name = identifier(word).ok_or_else(|| near(word))?;
    Ok((name, text_after(rest, word).trim_start()))
}

fn prepare<'a>(text: &'a str, verb: &str) -> Result<PreparedCommand<'a>, SqlError> {
    let (name, mut rest) = name_after(text, verb)?;
    let mut param_types = Vec::new();
    if rest.starts_with('(') {
        let (inside, after) = parenthesized(rest)?;
        param_types = split_top_level(inside);
        if param_types.iter().any(|t| t.is_empty()) {
            return Err(syntax_error("PREPARE: empty parameter type"));
        }
        rest = after;
    }
    let as_word = words(rest)
        .next()
        .filter(|w| w.eq_ignore_ascii_case("AS"))
        .ok_or_else(|| syntax_error("PREPARE needs AS and a statement"))?;
    let statement = statement_body(text_after(rest, as_word));
    if statement.is_empty() {
        return Err(syntax_error("PREPARE needs a statement after AS"));
    }
    Ok(PreparedCommand::Prepare {
        name,
        param_types,
        statement,
    })
}

fn execute<'a>(text: &'a str, verb: &str) -> Result<PreparedCommand<'a>, SqlError> {
    let (name, rest) = name_after(text, verb)?;
    let arguments = if rest.starts_with('(') {
        let (inside, after) = parenthesized(rest)?;
        if !statement_body(after).is_empty() {
            return Err(near(statement_body(after)));
        }
        Some(inside).filter(|a| !a.trim().is_empty())
    } else if statement_body(rest).is_empty() {
        None
    } else {
        return Err(near(statement_body(rest)));
    };
    Ok(PreparedCommand::Execute { name, arguments })
}

fn deallocate(words: &[&str]) -> Result<PreparedCommand<'static>, SqlError> {
    let words = match words {
        [prepare, rest @ ..] if prepare.eq_ignore_ascii_case("PREPARE") => rest,
        _ => words,
    };
    match words {
        [] | ["", ..] => Err(syntax_error("DEALLOCATE needs a statement name or ALL")),
        [_, extra, ..] if !extra.is_empty() => Err(near(extra)),
        [name, ..] if name.eq_ignore_ascii_case("ALL") => Ok(PreparedCommand::Deallocate(None)),
        [name, ..] => identifier(name)
            .map(|n| PreparedCommand::Deallocate(Some(n)))
            .ok_or_else(|| near(name)),
    }
}

/// `text`, which starts with `(`: what is inside the parentheses and what
/// follows them (nested parentheses and quoted text are skipped over).
fn parenthesized(text: &str) -> Result<(&str, &str), SqlError> {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Ok((&text[1..i], &text[i + 1..]));
                }
            }
            _ => {}
        }
    }
    Err(syntax_error("unbalanced parentheses"))
}

/// The comma-separated parts of `text` that are not inside parentheses,
/// trimmed: `int, numeric(10, 2)` is two.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Statement;

    fn command(sql: &str) -> Result<PreparedCommand<'_>, SqlError> {
        Statement::classify(sql)
            .prepared
            .expect("a prepared-statement command")
    }

    #[test]
    fn prepare_reads_name_types_and_statement() {
        assert_eq!(
            command("PREPARE Q1 (int, numeric(10, 2)) AS select $1 + $2;"),
            Ok(PreparedCommand::Prepare {
                name: "q1".into(),
                param_types: vec!["int", "numeric(10, 2)"],
                statement: "select $1 + $2"
            })
        );
        assert_eq!(
            command("prepare \"P\" as insert into t values ($1)"),
            Ok(PreparedCommand::Prepare {
                name: "P".into(),
                param_types: vec![],
                statement: "insert into t values ($1)"
            })
        );
        assert_eq!(
            command("PREPARE p(int) select 1").unwrap_err().code,
            "42601"
        );
        assert_eq!(
            command("PREPARE p(int AS select 1").unwrap_err().code,
            "42601"
        );
        assert_eq!(command("PREPARE p AS").unwrap_err().code, "42601");
        assert_eq!(command("PREPARE").unwrap_err().code, "42601");
    }

    #[test]
    fn execute_keeps_its_arguments_as_text() {
        assert_eq!(
            command("EXECUTE q1 (1, 'a, (b)')"),
            Ok(PreparedCommand::Execute {
                name: "q1".into(),
                arguments: Some("1, 'a, (b)'")
            })
        );
        assert_eq!(
            command("execute q1;"),
            Ok(PreparedCommand::Execute {
                name: "q1".into(),
                arguments: None
            })
        );
        assert_eq!(command("EXECUTE q1 2").unwrap_err().code, "42601");
        assert_eq!(command("EXECUTE q1 (1) x").unwrap_err().code, "42601");
    }

    #[test]
    fn deallocate_and_discard_all() {
        assert_eq!(
            command("DEALLOCATE PREPARE Q1"),
            Ok(PreparedCommand::Deallocate(Some("q1".into())))
        );
        assert_eq!(
            command("deallocate all;"),
            Ok(PreparedCommand::Deallocate(None))
        );
        assert_eq!(command("DISCARD ALL"), Ok(PreparedCommand::DiscardAll));
        assert!(Statement::classify("DISCARD PLANS").prepared.is_none());
        assert_eq!(command("DEALLOCATE").unwrap_err().code, "42601");
    }
}
