//! Validation of bucket ids and object names, and parsing of size strings.
//!
//! Object names never become filesystem paths (bytes live under opaque
//! version keys), but they are still held to strict
//! rules so that no client, proxy or future backend can be confused by them.

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Result, StorageError};

/// Longest object name, in bytes (after NFC normalisation).
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest path segment of an object name, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest bucket id, in bytes.
pub const MAX_BUCKET_ID_BYTES: usize = 100;

/// Bucket ids that would collide with the object routes (`/object/public/…`).
const RESERVED_BUCKET_IDS: &[&str] = &[
    "public",
    "authenticated",
    "sign",
    "info",
    "list",
    "list-v2",
    "move",
    "copy",
    "upload",
    "render",
    "versions",
];

/// Checks a bucket id: 1–100 bytes of `[A-Za-z0-9_.-]`, not starting with a
/// dot, not a reserved route word.
///
/// # Errors
/// [`StorageError::InvalidBucketName`] naming the problem.
pub fn validate_bucket_id(id: &str) -> Result<()> {
    let bad = |why: &str| Err(StorageError::InvalidBucketName(format!("{id:?}: {why}")));
    if id.is_empty() || id.len() > MAX_BUCKET_ID_BYTES {
        return bad("must be 1 to 100 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return bad("only letters, digits, '_', '-' and '.' are allowed");
    }
    if id.starts_with('.') {
        return bad("must not start with '.'");
    }
    if RESERVED_BUCKET_IDS.contains(&id) {
        return bad("is a reserved word");
    }
    Ok(())
}

/// Validates an object name and returns it NFC-normalised.
///
/// Refused: empty names, names over [`MAX_NAME_BYTES`], empty segments
/// (leading `/`, `//`), `.` and `..` segments, backslashes, NUL and other
/// control characters, drive prefixes (`C:`), segments over
/// [`MAX_SEGMENT_BYTES`] — checked on the name as given **and** once more
/// percent-decoded, so `%2e%2e` cannot smuggle a `..` past a proxy that
/// decodes again.
///
/// # Errors
/// [`StorageError::InvalidKey`].
pub fn validate_object_name(raw: &str) -> Result<String> {
    let name: String = raw.nfc().collect();
    check_name(&name)?;
    let decoded = percent_decode_str(&name).decode_utf8_lossy();
    if decoded != name {
        check_name(&decoded)?;
    }
    Ok(name)
}

fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(StorageError::InvalidKey(why.to_owned()));
    if name.is_empty() {
        return bad("the object name is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("the object name is longer than 1024 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("the object name contains control characters");
    }
    if name.contains('\\') {
        return bad("the object name contains a backslash");
    }
    if name.starts_with('/') {
        return bad("the object name must be relative");
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return bad("the object name must not start with a drive prefix");
    }
    for segment in name.split('/') {
        match segment {
            "" => return bad("the object name contains an empty path segment"),
            "." | ".." => return bad("the object name contains a '.' or '..' segment"),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return bad("a path segment is longer than 255 bytes");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates a list prefix: empty, or an object-name-like path, with or
/// without a trailing `/`. Returns it normalised with a trailing `/` (or empty).
///
/// # Errors
/// [`StorageError::InvalidKey`].
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let mut name = validate_object_name(trimmed)?;
    name.push('/');
    Ok(name)
}

/// Parses a size: a JSON number of bytes, or a string `"<n>"`, `"<n>B"`,
/// `"<n>KB"`, `"<n>MB"`, `"<n>GB"` (decimal, as Supabase Storage parses
/// them) or `"<n>KiB"`/`"<n>MiB"`/`"<n>GiB"` (binary), case-insensitive,
/// spaces allowed between number and unit.
///
/// # Errors
/// [`StorageError::InvalidRequest`] for anything else (negative numbers, fractions, unknown units).
pub fn parse_size(value: &serde_json::Value) -> Result<Option<u64>> {
    let bad = || {
        Err(StorageError::InvalidRequest(format!(
            "file_size_limit {value}: expected a number of bytes or a string like \"5MB\""
        )))
    };
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(n) => Ok(Some(n)),
            None => bad(),
        },
        serde_json::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (digits, unit) = s.split_at(split);
            let Ok(n) = digits.parse::<u64>() else {
                return bad();
            };
            let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
                "" | "B" => 1,
                "KB" => 1_000,
                "MB" => 1_000_000,
                "GB" => 1_000_000_000,
                "KIB" => 1 << 10,
                "MIB" => 1 << 20,
                "GIB" => 1 << 30,
                _ => return bad(),
            };
            match n.checked_mul(factor) {
                Some(0) => Ok(None),
                Some(bytes) => Ok(Some(bytes)),
                None => bad(),
            }
        }
        _ => bad(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traversal_and_junk_names_are_refused() {
        for name in [
            "",
            "..",
            "../x",
            "a/../b",
            "a/./b",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "C:x",
            "%2e%2e/x",
            "a/%2E%2E/b",
            "%2fetc",
            "a%00b",
            "a%5cb",
        ] {
            assert!(validate_object_name(name).is_err(), "{name:?} accepted");
        }
        assert!(validate_object_name(&"a".repeat(1025)).is_err());
        assert!(validate_object_name(&format!("{}/b", "a".repeat(256))).is_err());
    }

    #[test]
    fn good_names_pass_and_are_nfc() {
        assert_eq!(validate_object_name("a/b c.png").unwrap(), "a/b c.png");
        assert_eq!(validate_object_name("x..y").unwrap(), "x..y");
        // "e" + combining acute → "é"
        assert_eq!(
            validate_object_name("caf\u{65}\u{301}").unwrap(),
            "caf\u{e9}"
        );
    }

    #[test]
    fn bucket_ids() {
        assert!(validate_bucket_id("avatars").is_ok());
        assert!(validate_bucket_id("my-bucket_1.x").is_ok());
        for id in [
            "",
            ".hidden",
            "a/b",
            "public",
            "a b",
            "..",
            &"a".repeat(101),
        ] {
            assert!(validate_bucket_id(id).is_err(), "{id:?} accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&json!(10)).unwrap(), Some(10));
        assert_eq!(parse_size(&json!("5MB")).unwrap(), Some(5_000_000));
        assert_eq!(parse_size(&json!("5 mb")).unwrap(), Some(5_000_000));
        assert_eq!(parse_size(&json!("1GiB")).unwrap(), Some(1 << 30));
        assert_eq!(parse_size(&json!("100")).unwrap(), Some(100));
        assert_eq!(parse_size(&json!(null)).unwrap(), None);
        for v in [
            json!(-1),
            json!(1.5),
            json!("5XB"),
            json!("MB"),
            json!(true),
        ] {
            assert!(parse_size(&v).is_err(), "{v} accepted");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("a/b").unwrap(), "a/b/");
        assert_eq!(normalize_prefix("a/b/").unwrap(), "a/b/");
        assert!(normalize_prefix("../a").is_err());
    }

    /// Checklist 22, fuzzed: names drawn from an alphabet rich in traversal
    /// material (`.`, `/`, `\\`, `%`, hex digits, `:`, NUL, controls, non-ASCII);
    /// every accepted name, as given and percent-decoded once, is relative, has
    /// no empty, `.` or `..` segment, no backslash, no control character.
    #[test]
    fn fuzzed_names_never_escape() {
        const ALPHABET: &[&str] = &[
            ".", ".", "/", "/", "%", "2", "e", "E", "f", "F", "5", "c", "C", "a", "\\", ":", "\0",
            "\n", "\u{7f}", "é", "e\u{301}", "～", " ", "%2e", "%2E", "%2f", "%2F", "%5c", "%00",
            "%0a", "%25", "..", "./", "/..",
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let safe = |n: &str| {
            !n.is_empty()
                && !n.starts_with('/')
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..50_000 {
            let len = 1 + (next() % 12) as usize;
            let raw: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            match validate_object_name(&raw) {
                Ok(name) => {
                    accepted += 1;
                    assert!(safe(&name), "{raw:?} accepted as {name:?}");
                    let decoded = percent_decode_str(&name).decode_utf8_lossy();
                    assert!(safe(&decoded), "{raw:?} decodes to {decoded:?}");
                }
                Err(StorageError::InvalidKey(_)) => refused += 1,
                Err(other) => panic!("{raw:?}: unexpected {other:?}"),
            }
        }
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} accepted, {refused} refused"
        );
    }
}
