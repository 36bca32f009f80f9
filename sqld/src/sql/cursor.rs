//! The cursor commands, which sqld runs itself (SQLite has no cursors):
//! `DECLARE`, `FETCH`, `MOVE` and `CLOSE`, read from their words.

use super::{identifier, is_one_of, text_after, words, HEAD_WORDS};
use crate::error::{sqlstate, SqlError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorCommand<'a> {
    /// `DECLARE name ... CURSOR ... FOR query`
    Declare { name: String, query: &'a str },
    /// `FETCH`, or `MOVE` (`moves`): the same motion, without the rows.
    Fetch {
        name: String,
        direction: Direction,
        moves: bool,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
}

/// Where a FETCH or MOVE goes. Cursors only go forward; the other
/// directions are read so that they can be refused clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The next `n` rows; `None`: all that remain.
    Forward(Option<u64>),
    /// Row `n` of the result, counting from 1 (negative: from the end).
    Absolute(i64),
    /// The row `n` after the current one (0: the current one again).
    Relative(i64),
    Last,
    /// `PRIOR`, `BACKWARD`, negative counts.
    Backward,
}

/// The cursor command `text` is, if its first word says it is one.
pub(super) fn parse<'a>(
    head: &[&str; HEAD_WORDS],
    text: &'a str,
) -> Option<Result<CursorCommand<'a>, SqlError>> {
    let verb = head[0];
    Some(if verb.eq_ignore_ascii_case("DECLARE") {
        declare(text)
    } else if is_one_of(verb, &["FETCH", "MOVE"]) {
        fetch(&head[1..], verb.eq_ignore_ascii_case("MOVE"))
    } else if verb.eq_ignore_ascii_case("CLOSE") {
        close(&head[1..])
    } else {
        return None;
    })
}

fn declare(text: &str) -> Result<CursorCommand<'_>, SqlError> {
    let mut words = words(text).skip(1);
    let name = words
        .next()
        .and_then(identifier)
        .ok_or_else(|| syntax_error("DECLARE needs a cursor name"))?;
    let mut next = || {
        words
            .next()
            .ok_or_else(|| syntax_error("DECLARE needs CURSOR FOR and a query"))
    };
    loop {
        let word = next()?;
        if word.eq_ignore_ascii_case("CURSOR") {
            break;
        } else if word.eq_ignore_ascii_case("BINARY") {
            return Err(unsupported(
                "BINARY cursors are not supported: fetch in text, or ask for binary results \
                 through the extended protocol",
            ));
        } else if !is_one_of(word, &["ASENSITIVE", "INSENSITIVE", "NO", "SCROLL"]) {
            return Err(near(word));
        }
    }
    let mut word = next()?;
    if is_one_of(word, &["WITH", "WITHOUT"]) {
        let with = word.eq_ignore_ascii_case("WITH");
        let hold = next()?;
        if !hold.eq_ignore_ascii_case("HOLD") {
            return Err(near(hold));
        }
        if with {
            return Err(unsupported(
                "WITH HOLD cursors are not supported: a cursor lives until its transaction ends",
            ));
        }
        word = next()?;
    }
    if !word.eq_ignore_ascii_case("FOR") {
        return Err(near(word));
    }
    let query = statement_body(text_after(text, word));
    if query.is_empty() {
        return Err(syntax_error("DECLARE CURSOR needs a query after FOR"));
    }
    Ok(CursorCommand::Declare { name, query })
}

/// `FETCH [direction] [FROM | IN] name`, the words after the verb.
fn fetch(words: &[&str], moves: bool) -> Result<CursorCommand<'static>, SqlError> {
    let words: Vec<&str> = words
        .iter()
        .copied()
        .take_while(|w| !w.is_empty())
        .collect();
    let Some((name, mut motion)) = words.split_last() else {
        return Err(syntax_error("FETCH and MOVE need a cursor name"));
    };
    if let [before @ .., from] = motion {
        if is_one_of(from, &["FROM", "IN"]) {
            motion = before;
        }
    }
    let upper: Vec<String> = motion.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let direction = match upper.as_slice() {
        [] | ["NEXT"] | ["FORWARD"] => Direction::Forward(Some(1)),
        ["PRIOR"] | ["BACKWARD"] | ["BACKWARD", _] => Direction::Backward,
        ["FIRST"] => Direction::Absolute(1),
        ["LAST"] => Direction::Last,
        ["ALL"] | ["FORWARD", "ALL"] => Direction::Forward(None),
        ["ABSOLUTE", n] => Direction::Absolute(count(n)?),
        ["RELATIVE", n] => Direction::Relative(count(n)?),
        [n] | ["FORWARD", n] => match count(n)? {
            0 => Direction::Relative(0),
            n if n < 0 => Direction::Backward,
            n => Direction::Forward(Some(n.unsigned_abs())),
        },
        _ => return Err(near(motion.first().copied().unwrap_or(name))),
    };
    let name = identifier(name).ok_or_else(|| near(name))?;
    Ok(CursorCommand::Fetch {
        name,
        direction,
        moves,
    })
}

fn count(word: &str) -> Result<i64, SqlError> {
    word.parse().map_err(|_| near(word))
}

fn close(words: &[&str]) -> Result<CursorCommand<'static>, SqlError> {
    match words {
        [] | ["", ..] => Err(syntax_error("CLOSE needs a cursor name or ALL")),
        [_, extra, ..] if !extra.is_empty() => Err(near(extra)),
        [name, ..] if name.eq_ignore_ascii_case("ALL") => Ok(CursorCommand::Close(None)),
        [name, ..] => identifier(name)
            .map(|n| CursorCommand::Close(Some(n)))
            .ok_or_else(|| near(name)),
    }
}

/// The statement a command carries at its end, without the `;` that ends
/// the command.
pub(super) fn statement_body(rest: &str) -> &str {
    rest.trim_start()
        .trim_end_matches(|c: char| c.is_whitespace() || c == ';')
}

pub(super) fn syntax_error(message: impl Into<String>) -> SqlError {
    SqlError::new(sqlstate::SYNTAX_ERROR, message)
}

pub(super) fn near(word: &str) -> SqlError {
    syntax_error(format!("syntax error at or near \"{word}\""))
}

fn unsupported(message: &str) -> SqlError {
    SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Statement;

    fn cursor(sql: &str) -> Result<CursorCommand<'_>, SqlError> {
        Statement::classify(sql).cursor.expect("a cursor command")
    }

    #[test]
    fn declare_reads_the_name_options_and_query() {
        assert_eq!(
            cursor("DECLARE \"My C\" NO SCROLL CURSOR WITHOUT HOLD FOR select (1) ;"),
            Ok(CursorCommand::Declare {
                name: "My C".into(),
                query: "select (1)"
            })
        );
        assert_eq!(
            cursor("declare C insensitive cursor for\n select * from t"),
            Ok(CursorCommand::Declare {
                name: "c".into(),
                query: "select * from t"
            })
        );
        assert_eq!(
            cursor("DECLARE c CURSOR WITH HOLD FOR select 1")
                .unwrap_err()
                .code,
            "0A000"
        );
        assert_eq!(
            cursor("DECLARE c BINARY CURSOR FOR select 1")
                .unwrap_err()
                .code,
            "0A000"
        );
        assert_eq!(cursor("DECLARE c CURSOR FOR").unwrap_err().code, "42601");
        assert_eq!(
            cursor("DECLARE c CURSOR select 1").unwrap_err().code,
            "42601"
        );
    }

    #[test]
    fn fetch_and_move_read_their_direction() {
        let direction = |sql| match cursor(sql) {
            Ok(CursorCommand::Fetch { direction, .. }) => direction,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(direction("FETCH c"), Direction::Forward(Some(1)));
        assert_eq!(direction("fetch next from c"), Direction::Forward(Some(1)));
        assert_eq!(direction("FETCH 10 IN c"), Direction::Forward(Some(10)));
        assert_eq!(
            direction("FETCH FORWARD 3 FROM c;"),
            Direction::Forward(Some(3))
        );
        assert_eq!(direction("FETCH ALL c"), Direction::Forward(None));
        assert_eq!(
            direction("FETCH FORWARD ALL FROM c"),
            Direction::Forward(None)
        );
        assert_eq!(direction("FETCH ABSOLUTE 5 FROM c"), Direction::Absolute(5));
        assert_eq!(direction("FETCH FIRST FROM c"), Direction::Absolute(1));
        assert_eq!(direction("FETCH RELATIVE 2 FROM c"), Direction::Relative(2));
        assert_eq!(direction("FETCH 0 FROM c"), Direction::Relative(0));
        assert_eq!(direction("FETCH LAST FROM c"), Direction::Last);
        assert_eq!(direction("FETCH PRIOR FROM c"), Direction::Backward);
        assert_eq!(direction("FETCH -2 FROM c"), Direction::Backward);
        assert_eq!(direction("FETCH BACKWARD 2 FROM c"), Direction::Backward);
        assert_eq!(
            cursor("MOVE FORWARD 2 FROM \"C\""),
            Ok(CursorCommand::Fetch {
                name: "C".into(),
                direction: Direction::Forward(Some(2)),
                moves: true
            })
        );
        assert_eq!(cursor("FETCH").unwrap_err().code, "42601");
        assert_eq!(cursor("FETCH SIDEWAYS 2 FROM c").unwrap_err().code, "42601");
        assert_eq!(cursor("FETCH 1x FROM c").unwrap_err().code, "42601");
    }

    #[test]
    fn close_names_one_cursor_or_all() {
        assert_eq!(cursor("CLOSE ALL"), Ok(CursorCommand::Close(None)));
        assert_eq!(
            cursor("close Cur;"),
            Ok(CursorCommand::Close(Some("cur".into())))
        );
        assert_eq!(cursor("CLOSE").unwrap_err().code, "42601");
        assert_eq!(cursor("CLOSE a b").unwrap_err().code, "42601");
    }
}
