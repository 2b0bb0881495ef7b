//! Identifier validation for names the client proposes (new tables, columns,
//! constraints). Names of existing objects are instead looked up in the
//! introspected schema. Every identifier is quoted in SQL, so reserved words
//! and unicode are fine.

use super::error::{MetaError, Result};

/// Longest identifier in bytes (PostgreSQL's `NAMEDATALEN - 1`).
pub const MAX_IDENT_BYTES: usize = 63;

/// Checks a new identifier: 1–63 bytes; no control characters (NUL
/// included); none of `" ' ; \` . , ( ) :` (they would be unusable through
/// the REST grammar or look like an injection attempt); no leading or
/// trailing whitespace; not in a reserved namespace (`goforward_`,
/// `sqlite_`, `pg_`).
///
/// # Errors
/// [`MetaError::InvalidIdentifier`] naming the problem.
pub fn validate(name: &str) -> Result<&str> {
    let bad = |problem| {
        Err(MetaError::InvalidIdentifier {
            name: name.chars().take(80).collect(),
            problem,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > MAX_IDENT_BYTES {
        return bad("must be at most 63 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if name.chars().any(|c| {
        matches!(
            c,
            '"' | '\'' | ';' | '\\' | '`' | '.' | ',' | '(' | ')' | ':'
        )
    }) {
        return bad(
            "must not contain quotes, semicolons, backslashes, dots, commas, parentheses or colons",
        );
    }
    if name.trim() != name {
        return bad("must not start or end with whitespace");
    }
    let lower = name.to_lowercase();
    if lower.starts_with("goforward_") || lower.starts_with("sqlite_") || lower.starts_with("pg_") {
        return bad("the prefixes goforward_, sqlite_ and pg_ are reserved");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_reserved_words_and_unicode() {
        for ok in [
            "select",
            "order",
            "user",
            "Größe",
            "名前",
            "with space",
            "a-b",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        let long = "x".repeat(64);
        for bad in [
            "",
            "a\"b",
            "a;drop",
            "a'b",
            "a\0b",
            "a.b",
            " a",
            "a\n",
            &long,
            "goforward_x",
            "sqlite_master",
            "pg_class",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&"é".repeat(31)).is_ok());
        assert!(validate(&"é".repeat(32)).is_err());
    }
}
