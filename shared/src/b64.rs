//! Strict base64url (RFC 4648 section 5, no padding) as JWS compact serialization requires.
//!
//! Padding, the standard alphabet's `+` and `/`, whitespace and non-canonical trailing bits are
//! all refused: a token that is not byte-for-byte canonical is not a token we accept.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes unpadded base64url, refusing anything non-canonical.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    STRICT.decode(input).ok()
}

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_non_canonical_input() {
        assert_eq!(decode(&encode(b"hello?>")).as_deref(), Some(&b"hello?>"[..]));
        for bad in ["aGVsbG8=", "a+b/", "aGVs bG8", "aGVsbG9", "a"] {
            assert_eq!(decode(bad), None, "{bad:?} must be refused");
        }
    }
}
