//! MIME types: parsing, bucket allow-lists with wildcards, sniffing, and
//! which types may be served inline.

use crate::error::{Result, StorageError};

/// Bytes looked at when sniffing the real type of an upload.
pub const SNIFF_LEN: usize = 8192;

/// The essence (`type/subtype`, lower-case, parameters dropped) of a content
/// type header value.
///
/// # Errors
/// [`StorageError::InvalidMimeType`] when it is not `token/token`.
pub fn essence(content_type: &str) -> Result<String> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let valid_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((ty, sub)) if valid_token(ty) && valid_token(sub) => Ok(essence),
        _ => Err(StorageError::InvalidMimeType(content_type.to_owned())),
    }
}

/// Validates one allow-list entry: `type/subtype`, `type/*` or `*/*`.
///
/// # Errors
/// [`StorageError::InvalidRequest`].
pub fn validate_pattern(pattern: &str) -> Result<String> {
    let p = pattern.trim().to_ascii_lowercase();
    let ok = match p.split_once('/') {
        Some(("*", "*")) => true,
        Some((ty, "*")) => essence(&format!("{ty}/x")).is_ok(),
        Some(_) => essence(&p).is_ok_and(|e| e == p),
        None => false,
    };
    if ok {
        Ok(p)
    } else {
        Err(StorageError::InvalidRequest(format!(
            "allowed_mime_types: {pattern:?} is not a MIME type or wildcard like image/*"
        )))
    }
}

/// Whether `essence` is matched by one of `allowed` (`None`: everything is allowed).
pub fn is_allowed(allowed: Option<&[String]>, essence: &str) -> bool {
    let Some(allowed) = allowed else {
        return true;
    };
    let (ty, _) = essence.split_once('/').unwrap_or((essence, ""));
    allowed.iter().any(|p| match p.split_once('/') {
        Some(("*", "*")) => true,
        Some((pty, "*")) => pty == ty,
        _ => p == essence,
    })
}

/// The type the first bytes of a file reveal, when recognisable.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    infer::get(head).map(|t| t.mime_type())
}

/// Checks a declared type and, when a bucket restricts types, the sniffed
/// type of the first bytes too (so a script renamed `.png` with
/// `content-type: image/png` but a different signature is refused).
///
/// # Errors
/// [`StorageError::InvalidMimeType`].
pub fn check_upload(allowed: Option<&[String]>, declared: &str, head: &[u8]) -> Result<()> {
    if !is_allowed(allowed, declared) {
        return Err(StorageError::InvalidMimeType(declared.to_owned()));
    }
    if allowed.is_some() {
        if let Some(sniffed) = sniff(head) {
            if !is_allowed(allowed, sniffed) {
                return Err(StorageError::InvalidMimeType(sniffed.to_owned()));
            }
        } else if looks_like_markup(head) && !is_markup_type(declared) {
            return Err(StorageError::InvalidMimeType("text/html".to_owned()));
        }
    }
    Ok(())
}

fn is_markup_type(essence: &str) -> bool {
    matches!(
        essence,
        "text/html" | "image/svg+xml" | "application/xml" | "text/xml" | "application/xhtml+xml"
    )
}

/// HTML/SVG/XML markup that a browser could render as a document.
fn looks_like_markup(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).to_ascii_lowercase();
    let t = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    [
        "<!doctype",
        "<html",
        "<svg",
        "<?xml",
        "<script",
        "<head",
        "<body",
        "<iframe",
    ]
    .iter()
    .any(|tag| t.starts_with(tag))
}

/// Types safe to render inline in a browser (no scripts): raster images,
/// audio, video, plain text, PDF, JSON. Everything else — notably HTML and
/// SVG — is served as an attachment.
pub fn inline_safe(essence: &str) -> bool {
    let (ty, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match ty {
        "image" => matches!(
            sub,
            "png"
                | "jpeg"
                | "jpg"
                | "gif"
                | "webp"
                | "avif"
                | "bmp"
                | "x-icon"
                | "vnd.microsoft.icon"
                | "heic"
                | "heif"
                | "tiff"
        ),
        "audio" | "video" => true,
        "text" => sub == "plain" || sub == "csv",
        "application" => matches!(sub, "pdf" | "json" | "octet-stream"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_essence() {
        let allowed = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(is_allowed(Some(&allowed), "image/png"));
        assert!(is_allowed(Some(&allowed), "application/pdf"));
        assert!(!is_allowed(Some(&allowed), "text/html"));
        assert!(is_allowed(None, "text/html"));
        assert_eq!(essence("Text/Plain; charset=UTF-8").unwrap(), "text/plain");
        assert!(essence("nonsense").is_err());
        assert!(validate_pattern("image/*").is_ok());
        assert!(validate_pattern("*/*").is_ok());
        assert!(validate_pattern("image").is_err());
    }

    #[test]
    fn sniffing_refuses_disguised_content() {
        let allowed = vec!["image/*".to_owned()];
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
        assert!(check_upload(Some(&allowed), "image/png", &png).is_ok());
        assert!(check_upload(Some(&allowed), "image/png", b"<html><script>x</script>").is_err());
        assert!(check_upload(Some(&allowed), "image/png", b"%PDF-1.4 ....").is_err());
        assert!(check_upload(Some(&allowed), "text/plain", b"hi").is_err());
        assert!(check_upload(None, "text/html", b"<html>").is_ok());
        let svg = vec!["image/svg+xml".to_owned()];
        assert!(check_upload(Some(&svg), "image/svg+xml", b"<svg></svg>").is_ok());
        assert!(check_upload(Some(&allowed), "image/webp", b"<svg onload=x>").is_err());
    }

    #[test]
    fn markup_is_never_inline() {
        assert!(!inline_safe("text/html"));
        assert!(!inline_safe("image/svg+xml"));
        assert!(inline_safe("image/png"));
    }
}
