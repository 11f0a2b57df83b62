//! Strict base64url (RFC 4648 section 5, no padding) as JWS compact serialization requires, and
//! strict standard base64 with padding (section 4) for X.509 certificates (`x5c`, the App Store
//! root). Hand-written: the `base64` crate's engines cost more wasm than these few lines.
//!
//! Padding, the standard alphabet's `+` and `/`, whitespace and non-canonical trailing bits are
//! all refused: a token that is not byte-for-byte canonical is not a token we accept.

const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of `c` in the url-safe (`-_`) or standard (`+/`) alphabet.
fn value(c: u8, url: bool) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' if url => 62,
        b'_' if url => 63,
        b'+' if !url => 62,
        b'/' if !url => 63,
        _ => return None,
    } as u32)
}

/// Decodes unpadded input in one alphabet, refusing a length of 1 mod 4 and non-zero trailing bits.
fn decode_unpadded(bytes: &[u8], url: bool) -> Option<Vec<u8>> {
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c, url)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1; // bytes this chunk encodes
        if acc & (0xff_ffff >> (8 * n)) != 0 {
            return None; // non-canonical trailing bits
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

fn encode_with(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let acc = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((acc >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes unpadded base64url, refusing anything non-canonical.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    decode_unpadded(input.as_bytes(), true)
}

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    encode_with(bytes, URL, false)
}

/// Decodes standard base64 (`+/`) with canonical padding: the length must be a multiple of 4,
/// with exactly the `=` the data needs, and the trailing bits zero. No whitespace, no url-safe
/// characters.
pub fn decode_standard(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let pads = bytes.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    decode_unpadded(&bytes[..bytes.len() - pads], false)
}

/// Encodes bytes as standard base64 with padding.
pub fn encode_standard(bytes: &[u8]) -> String {
    encode_with(bytes, STD, true)
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

    #[test]
    fn rfc4648_vectors() {
        for (plain, url, std) in [
            ("", "", ""),
            ("f", "Zg", "Zg=="),
            ("fo", "Zm8", "Zm8="),
            ("foo", "Zm9v", "Zm9v"),
            ("foob", "Zm9vYg", "Zm9vYg=="),
            ("fooba", "Zm9vYmE", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), url);
            assert_eq!(decode(url).as_deref(), Some(plain.as_bytes()));
            assert_eq!(encode_standard(plain.as_bytes()), std);
            assert_eq!(decode_standard(std).as_deref(), Some(plain.as_bytes()));
        }
        // Both 62 and 63 in each alphabet.
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(encode_standard(&[0xfb, 0xff]), "+/8=");
        assert_eq!(decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(decode_standard("+/8=").as_deref(), Some(&[0xfb, 0xff][..]));
    }

    #[test]
    fn refuses_non_zero_trailing_bits() {
        // "Zg" is 'f' (0x66): the last character carries 4 unused bits. "Zh".."Zv" set them.
        assert_eq!(decode("Zg").as_deref(), Some(&b"f"[..]));
        for bad in ["Zh", "Zi", "Zp", "Zv"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        // "Zm8" is "fo": 2 unused bits in the last character.
        assert_eq!(decode("Zm8").as_deref(), Some(&b"fo"[..]));
        for bad in ["Zm9", "Zm-", "Zm_"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        for bad in ["Zh==", "Zm9=", "Zm/="] {
            assert_eq!(decode_standard(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn standard_refuses_what_is_not_canonical() {
        for bad in [
            "Zg", "Zg=", "Zg===", "Zm8", "Zm9vYg", "Zm9v====", "=Zm9", "Zg==Zg==", "Z===", "Zm=v", "-_8=", "Zm9v\n", " Zm9v", "Zm9 v",
        ] {
            assert_eq!(decode_standard(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn random_round_trips() {
        // xorshift64*: deterministic, no dependency.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for _ in 0..2000 {
            let len = (next() % 70) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let url = encode(&data);
            assert_eq!(url.len(), (len * 4).div_ceil(3));
            assert!(!url.contains(['=', '+', '/']));
            assert_eq!(decode(&url), Some(data.clone()));
            let std = encode_standard(&data);
            assert_eq!(std.len() % 4, 0);
            assert_eq!(decode_standard(&std), Some(data.clone()));
            assert_eq!(decode(&std), if len.is_multiple_of(3) && !std.contains(['+', '/']) { Some(data.clone()) } else { None });
            // Any single-character change to a canonical encoding decodes to other bytes or not at all.
            if !url.is_empty() {
                let i = (next() as usize) % url.len();
                let mut b = url.clone().into_bytes();
                b[i] = URL[(URL.iter().position(|&c| c == b[i]).unwrap() + 1 + (next() % 63) as usize) % 64];
                assert_ne!(decode(std::str::from_utf8(&b).unwrap()), Some(data.clone()));
            }
        }
    }
}
