//! The rules of generated files (the `OUTPUTS` R2 bucket): upload names, allowed content types,
//! what an upload's signature covers, the upload size cap, and `Range` requests on download.
//!
//! An upload is streamed into R2 and never held in the Worker, so its signature cannot cover the
//! raw body the way the pipeline's JSON calls do. It covers a canonical description of the upload
//! instead ([`upload_signing_input`]): method, path, `Content-Length`, `Content-Type`, the SHA-256
//! the pipeline declares, worker id and attempt. R2 checks the stored bytes against the declared
//! SHA-256 and refuses the write on a mismatch, so a verified signature binds the exact bytes.

use crate::ApiError;

/// The default cap on one upload (100 MiB, the request body limit of Workers' Free and Pro plans).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// Whether `name` is a valid file name within a job: 1-128 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with `.`, `_` or `-` (the database checks the same rule).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The content types an upload may have, and the asset kind each one is recorded as (the success
/// event may refine the kind, e.g. `image/jpeg` as `thumbnail`). Nothing a browser would run as a
/// page or script (HTML, SVG, JavaScript) is on the list: downloads are served from the API's origin.
pub const CONTENT_TYPES: &[(&str, &str)] = &[
    ("video/mp4", "video"),
    ("video/webm", "video"),
    ("video/quicktime", "video"),
    ("audio/mpeg", "audio"),
    ("audio/mp4", "audio"),
    ("audio/wav", "audio"),
    ("audio/ogg", "audio"),
    ("audio/webm", "audio"),
    ("image/png", "image"),
    ("image/jpeg", "image"),
    ("image/webp", "image"),
    ("text/vtt", "subtitle"),
    ("application/x-subrip", "subtitle"),
    ("text/plain", "script"),
    ("application/json", "other"),
    ("application/zip", "other"),
];

/// The allowed content type (lower-case, without parameters) of a `Content-Type` header, with its
/// kind; `None` when it is not on the list.
pub fn content_type(header: Option<&str>) -> Option<(&'static str, &'static str)> {
    let media = header?.split(';').next()?.trim();
    CONTENT_TYPES.iter().find(|(ct, _)| ct.eq_ignore_ascii_case(media)).copied()
}

/// Whether `s` is a SHA-256 in lower-case hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The first line of every upload's signed description. The pipeline's other signed messages are
/// JSON documents (they start with `{`), so no signature of one can be presented as the other's.
pub const UPLOAD_SIGNATURE_DOMAIN: &str = "outputs-upload-v1";

/// What the pipeline signs for an upload (with the usual `t=<unix>,v1=<hex>` header, as
/// `"{t}.{this}"`): the domain line [`UPLOAD_SIGNATURE_DOMAIN`], then one line each for method,
/// path, Content-Length, Content-Type (as sent), declared SHA-256, worker id and attempt.
pub fn upload_signing_input(
    path: &str,
    length: u64,
    content_type: &str,
    sha256: &str,
    worker_id: &str,
    attempt: i64,
) -> String {
    format!("{UPLOAD_SIGNATURE_DOMAIN}\nPUT\n{path}\n{length}\n{content_type}\n{sha256}\n{worker_id}\n{attempt}")
}

/// The reference under which the database takes a signed upload once: the hex SHA-256 of
/// `"{t}.{signed description}"`, the message the signature covers. It is derived from what was
/// signed, never from the header's text, so the same signed upload always has the same reference
/// (whichever of several `v1` values or secrets verified it).
pub fn upload_signature_ref(t: i64, signed: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(t.to_string().as_bytes());
    hash.update(b".");
    hash.update(signed);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The upload cap from `OUTPUTS_MAX_UPLOAD_BYTES` (1 byte to 5 GiB, R2's single-upload limit).
pub fn max_upload_bytes(binding: Option<&str>) -> Result<u64, String> {
    match binding {
        None => Ok(DEFAULT_MAX_UPLOAD_BYTES),
        Some(v) => {
            v.trim().parse::<u64>().ok().filter(|n| (1..=5 * 1024 * 1024 * 1024).contains(n)).ok_or_else(|| {
                "binding OUTPUTS_MAX_UPLOAD_BYTES must be a whole number from 1 to 5368709120".to_owned()
            })
        }
    }
}

/// What a download answers for its `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) range: the whole object, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// A single range that does not overlap the object: 416.
    Unsatisfiable,
}

/// Reads a `Range` header for an object of `size` bytes (RFC 9110, 14.2). One `bytes=` range is
/// served: `a-b`, `a-` and `-n` (the last n bytes). A header that is not a single byte range
/// (another unit, several ranges, bad syntax) is ignored and the whole object is sent, as the RFC
/// allows; a valid range that starts at or past the end is unsatisfiable.
pub fn byte_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.map(str::trim).and_then(|h| h.strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.split_once('-') else { return ByteRange::Full };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part { start: size.saturating_sub(n), end: size - 1 },
        },
        (a, "") => match number(a) {
            None => ByteRange::Full,
            Some(start) if start >= size => ByteRange::Unsatisfiable,
            Some(start) => ByteRange::Part { start, end: size - 1 },
        },
        (a, b) => match (number(a), number(b)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Part { start, end: end.min(size - 1) }
                }
            }
            _ => ByteRange::Full,
        },
    }
}

/// The strong ETag of a stored file: its SHA-256 (lower-case hex), quoted.
pub fn strong_etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-Range` header lets `Range` apply (RFC 9110, 13.1.5): only an entity tag that is
/// strongly equal to the file's current `etag`. A weak tag (`W/"..."`) never matches; an HTTP date
/// is not used either: one asset can be given another file within the same second, so its upload
/// time is not a strong validator; with no ETag nothing matches. No match: the whole file.
pub fn if_range_matches(header: &str, etag: Option<&str>) -> bool {
    let value = header.trim();
    let Some(etag) = etag else { return false };
    value.starts_with('"') && value.len() >= 2 && value.ends_with('"') && value == etag
}

/// 404 for an asset the caller cannot see (unknown, another user's, or deleted).
pub fn asset_not_found() -> ApiError {
    ApiError::new(404, "not_found", "No such asset.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_content_types() {
        for ok in ["final.mp4", "a", "Thumb_01.jpg", "x-y.z", &"a".repeat(128)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "-x", "_x", "a/b", "..", "a b", "é.mp4", "a%2Fb", &"a".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(content_type(Some("video/mp4")), Some(("video/mp4", "video")));
        assert_eq!(content_type(Some("Video/MP4; codecs=avc1")), Some(("video/mp4", "video")));
        assert_eq!(content_type(Some("text/html")), None);
        assert_eq!(content_type(Some("image/svg+xml")), None);
        assert_eq!(content_type(None), None);
        assert!(is_sha256_hex(&"ab".repeat(32)));
        assert!(!is_sha256_hex(&"AB".repeat(32)));
        assert!(!is_sha256_hex("abc"));
    }

    #[test]
    fn upload_cap_and_signing_input() {
        assert_eq!(max_upload_bytes(None), Ok(DEFAULT_MAX_UPLOAD_BYTES));
        assert_eq!(max_upload_bytes(Some("1024")), Ok(1024));
        assert!(max_upload_bytes(Some("0")).is_err());
        assert!(max_upload_bytes(Some("lots")).is_err());
        assert_eq!(
            upload_signing_input("/v1/pipeline/jobs/j/assets/a.mp4", 3, "video/mp4", "ff", "w", 2),
            "outputs-upload-v1\nPUT\n/v1/pipeline/jobs/j/assets/a.mp4\n3\nvideo/mp4\nff\nw\n2"
        );
        // SHA-256 of "1700000000.abc".
        let reference = upload_signature_ref(1_700_000_000, b"abc");
        assert_eq!(reference, "4dd9fa96e260d4d3dd1384a3a056562fe0ca24979cb8e3cc45d850c7ac1ff757");
        assert_ne!(reference, upload_signature_ref(1_700_000_001, b"abc"), "another time is another upload");
        assert_ne!(reference, upload_signature_ref(1_700_000_000, b"abd"));
    }

    #[test]
    fn if_range_needs_the_same_strong_etag() {
        let etag = strong_etag(&"ab".repeat(32));
        assert_eq!(etag, format!("\"{}\"", "ab".repeat(32)));
        assert!(if_range_matches(&etag, Some(&etag)));
        assert!(if_range_matches(&format!(" {etag} "), Some(&etag)), "surrounding spaces are not part of the value");
        assert!(!if_range_matches(&format!("W/{etag}"), Some(&etag)), "a weak tag never matches");
        assert!(!if_range_matches(&strong_etag(&"cd".repeat(32)), Some(&etag)), "another file");
        assert!(!if_range_matches("Wed, 02 Dec 2026 07:00:00 GMT", Some(&etag)), "a date is not used");
        assert!(!if_range_matches(&"ab".repeat(32), Some(&etag)), "an unquoted tag is not an entity tag");
        assert!(!if_range_matches(&etag, None), "no ETag: no match");
        assert!(!if_range_matches("\"", Some("\"")), "a lone quote is not a tag");
    }

    #[test]
    fn reads_range_headers() {
        use ByteRange::*;
        assert_eq!(byte_range(None, 10), Full);
        assert_eq!(byte_range(Some("bytes=0-3"), 10), Part { start: 0, end: 3 });
        assert_eq!(byte_range(Some("bytes=4-"), 10), Part { start: 4, end: 9 });
        assert_eq!(byte_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(byte_range(Some("bytes=-30"), 10), Part { start: 0, end: 9 });
        assert_eq!(byte_range(Some("bytes=5-100"), 10), Part { start: 5, end: 9 });
        assert_eq!(byte_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Full, "an invalid range is ignored");
        assert_eq!(byte_range(Some("bytes=0-1,4-5"), 10), Full, "several ranges: the whole object");
        assert_eq!(byte_range(Some("items=0-1"), 10), Full);
        assert_eq!(byte_range(Some("bytes=x-1"), 10), Full);
    }
}
