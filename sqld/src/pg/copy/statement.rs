//! Reading a COPY statement (with `sqlparser`'s PostgreSQL dialect): what
//! is copied, which way, and in which format. COPY to or from a server file
//! or program is refused: the server's file system is not the client's.

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::format::Options;
use crate::error::{sqlstate, SqlError};

/// What a COPY reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A table (as SQL), with the columns named, if any (as SQL).
    Table { name: String, columns: Vec<String> },
    /// `COPY (SELECT ...) TO STDOUT`.
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStatement {
    pub source: Source,
    /// COPY TO STDOUT; otherwise COPY FROM STDIN.
    pub to: bool,
    pub options: Options,
}

impl CopyStatement {
    /// The table's name as Postgres prints it in CONTEXT lines.
    pub fn label(&self) -> &str {
        match &self.source {
            Source::Table { name, .. } => name,
            Source::Query(_) => "query",
        }
    }
}

/// Whether `sql` is a COPY statement (its first word), without parsing.
pub fn is_copy(sql: &str) -> bool {
    let sql = sql.trim_start();
    sql.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("copy"))
        && sql[4..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '(')
}

fn not_supported(what: &str) -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("COPY {what} is not supported"),
    )
}

/// `FREEZE ON`, `HEADER OFF`: Postgres' booleans, which the parser reads
/// only as TRUE and FALSE.
fn spell_booleans(sql: &str) -> String {
    let mut out = sql.to_owned();
    for option in ["FREEZE", "HEADER"] {
        for (word, value) in [("ON", "TRUE"), ("OFF", "FALSE")] {
            let pattern = format!("{option} {word}");
            let mut from = 0;
            while let Some(at) = out[from..].to_ascii_uppercase().find(&pattern) {
                let at = from + at;
                let end = at + pattern.len();
                let boundary = out[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                if boundary {
                    out.replace_range(at + option.len() + 1..end, value);
                }
                from = end;
            }
        }
    }
    out
}

pub fn parse(sql: &str) -> Result<CopyStatement, SqlError> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &spell_booleans(sql))
        .map_err(|e| SqlError::new(sqlstate::SYNTAX_ERROR, e.to_string()))?;
    let (Some(statement), None) = (statements.pop(), statements.pop()) else {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "COPY must be the only statement of its query",
        ));
    };
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "not a COPY statement",
        ));
    };
    match (&target, to) {
        (CopyTarget::Stdin, false) | (CopyTarget::Stdout, true) => {}
        (CopyTarget::File { .. } | CopyTarget::Program { .. }, _) => {
            return Err(SqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                "permission denied: COPY to or from a file or program on the server is not allowed; use COPY ... FROM STDIN or TO STDOUT (psql's \\copy)",
            ))
        }
        _ => return Err(SqlError::new(sqlstate::SYNTAX_ERROR, "COPY FROM needs STDIN, COPY TO needs STDOUT")),
    }
    let source = match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let parts = &table_name.0;
            let name = match parts.len() {
                2 if parts[0].to_string().eq_ignore_ascii_case("public") => parts[1].to_string(),
                _ => table_name.to_string(),
            };
            Source::Table {
                name,
                columns: columns.iter().map(ToString::to_string).collect(),
            }
        }
        CopySource::Query(_) if !to => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "COPY FROM takes a table, not a query",
            ))
        }
        CopySource::Query(query) => Source::Query(query.to_string()),
    };
    Ok(CopyStatement {
        source,
        to,
        options: read_options(&options, &legacy_options)?,
    })
}

/// What the statement set, before defaults that depend on the format.
#[derive(Default)]
struct Given {
    csv: bool,
    binary: bool,
    delimiter: Option<char>,
    null: Option<String>,
    header: bool,
    quote: Option<char>,
    escape: Option<char>,
}

fn read_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Options, SqlError> {
    let mut given = Given::default();
    for option in options {
        match option {
            CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                "text" => given.csv = false,
                "csv" => given.csv = true,
                "binary" => given.binary = true,
                other => {
                    return Err(SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("COPY format \"{other}\" not recognized"),
                    ))
                }
            },
            // Freezing rows is a Postgres storage matter: nothing to do.
            CopyOption::Freeze(_) => {}
            CopyOption::Delimiter(c) => given.delimiter = Some(*c),
            CopyOption::Null(s) => given.null = Some(s.clone()),
            CopyOption::Header(h) => given.header = *h,
            CopyOption::Quote(c) => given.quote = Some(*c),
            CopyOption::Escape(c) => given.escape = Some(*c),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(not_supported(&format!("option {other}"))),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => given.binary = true,
            CopyLegacyOption::Delimiter(c) => given.delimiter = Some(*c),
            CopyLegacyOption::Null(s) => given.null = Some(s.clone()),
            CopyLegacyOption::Csv(csv) => {
                given.csv = true;
                for option in csv {
                    match option {
                        CopyLegacyCsvOption::Header => given.header = true,
                        CopyLegacyCsvOption::Quote(c) => given.quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => given.escape = Some(*c),
                        other => return Err(not_supported(&format!("option {other}"))),
                    }
                }
            }
            other => return Err(not_supported(&format!("option {other}"))),
        }
    }
    if given.binary {
        return binary_options(&given);
    }
    let mut options = if given.csv {
        Options::csv()
    } else {
        Options::text()
    };
    if !given.csv && (given.quote.is_some() || given.escape.is_some()) {
        return Err(SqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "COPY QUOTE and ESCAPE are available only in CSV mode",
        ));
    }
    let byte = |c: char, what: &str| -> Result<u8, SqlError> {
        match u8::try_from(c) {
            Ok(b) if b.is_ascii() && b != b'\n' && b != b'\r' => Ok(b),
            _ => Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("COPY {what} must be a single one-byte character, not a newline"),
            )),
        }
    };
    if let Some(c) = given.delimiter {
        options.delimiter = byte(c, "delimiter")?;
        if !options.csv && options.delimiter == b'\\' {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "COPY delimiter cannot be backslash",
            ));
        }
    }
    if let Some(c) = given.quote {
        options.quote = byte(c, "quote")?;
        options.escape = options.quote;
    }
    if let Some(c) = given.escape {
        options.escape = byte(c, "escape")?;
    }
    if let Some(null) = given.null {
        options.null = null;
    }
    options.header = given.header;
    Ok(options)
}

/// The binary format takes none of the text formats' options.
fn binary_options(given: &Given) -> Result<Options, SqlError> {
    let conflicting = [
        (given.csv, "CSV"),
        (given.delimiter.is_some(), "DELIMITER"),
        (given.null.is_some(), "NULL"),
        (given.header, "HEADER"),
        (given.quote.is_some(), "QUOTE"),
        (given.escape.is_some(), "ESCAPE"),
    ];
    if let Some((_, name)) = conflicting.iter().find(|(given, _)| *given) {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("cannot specify {name} in BINARY mode"),
        ));
    }
    Ok(Options::binary())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str) -> &'static str {
        parse(sql).unwrap_err().code
    }

    #[test]
    fn recognises_copy_cheaply() {
        assert!(is_copy("  COPY t FROM STDIN"));
        assert!(is_copy("copy(select 1) to stdout"));
        assert!(!is_copy("copyright"));
        assert!(!is_copy("select 1"));
    }

    #[test]
    fn reads_the_forms_clients_send() {
        let c = parse("COPY public.t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'nil')").unwrap();
        assert_eq!(
            c.source,
            Source::Table {
                name: "t".into(),
                columns: vec!["a".into(), "\"B\"".into()]
            }
        );
        assert!(!c.to && c.options.csv && c.options.header);
        assert_eq!(
            (c.options.delimiter, c.options.null.as_str()),
            (b';', "nil")
        );

        let c = parse("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert_eq!(c.options, Options::text());
        let c = parse("copy pgbench_accounts from stdin").unwrap();
        assert_eq!(c.options, Options::text());
        let c = parse("COPY t FROM STDIN WITH CSV HEADER").unwrap();
        assert!(c.options.csv && c.options.header);
        let c = parse("COPY t FROM STDIN DELIMITER ','").unwrap();
        assert_eq!(c.options.delimiter, b',');
        let c = parse("COPY (SELECT a FROM t) TO STDOUT WITH (FORMAT csv)").unwrap();
        assert!(c.to && matches!(c.source, Source::Query(_)));
    }

    #[test]
    fn refuses_files_and_programs() {
        assert_eq!(
            code("COPY t FROM '/etc/passwd'"),
            sqlstate::INSUFFICIENT_PRIVILEGE
        );
        assert_eq!(code("COPY t TO '/tmp/x'"), sqlstate::INSUFFICIENT_PRIVILEGE);
        assert_eq!(
            code("COPY t TO PROGRAM 'id'"),
            sqlstate::INSUFFICIENT_PRIVILEGE
        );
    }

    #[test]
    fn binary_takes_no_text_options() {
        assert!(
            parse("COPY t FROM STDIN WITH (FORMAT binary)")
                .unwrap()
                .options
                .binary
        );
        assert!(parse("COPY t FROM STDIN BINARY").unwrap().options.binary);
        assert!(
            parse("COPY (SELECT 1) TO STDOUT (FORMAT BINARY)")
                .unwrap()
                .options
                .binary
        );
        assert_eq!(
            code("COPY t FROM STDIN WITH (FORMAT binary, DELIMITER ',')"),
            sqlstate::SYNTAX_ERROR
        );
    }
}
