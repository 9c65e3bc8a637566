//! The wire format of the tus 1.0 resumable-upload protocol
//! (<https://tus.io/protocols/resumable-upload>): the version and extensions
//! Gyri speaks, and the `Upload-Metadata` and `Upload-Checksum` headers.
//! Pure parsing, no I/O: the upload endpoints build on it.

use std::collections::BTreeMap;

use base64::Engine;

/// The protocol version spoken (`Tus-Resumable`, `Tus-Version`).
pub const VERSION: &str = "1.0.0";
/// `Tus-Extension`: what an `OPTIONS` request is told.
pub const EXTENSIONS: &str = "creation,termination,checksum";
/// `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha256";
/// The status tus defines for a body whose checksum does not match.
pub const CHECKSUM_MISMATCH: u16 = 460;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("this server speaks tus {VERSION} (Tus-Resumable: {0:?})")]
    Version(String),
    #[error("Upload-Metadata: {0}")]
    Metadata(String),
    #[error("Upload-Checksum: {0}")]
    Checksum(String),
}

/// `Tus-Resumable` must name the version spoken.
pub fn check_version(header: Option<&str>) -> Result<(), HeaderError> {
    match header {
        Some(VERSION) => Ok(()),
        other => Err(HeaderError::Version(other.unwrap_or("").to_string())),
    }
}

/// `Upload-Metadata`: comma-separated pairs of a key and its value in
/// base64, the value optional. Keys are unique, non-empty and have no
/// spaces or commas; Gyri's values are text, so they must be UTF-8. A key
/// without a value maps to the empty string.
pub fn parse_metadata(header: &str) -> Result<BTreeMap<String, String>, HeaderError> {
    let bad = |m: String| HeaderError::Metadata(m);
    let mut out = BTreeMap::new();
    if header.trim().is_empty() {
        return Ok(out);
    }
    for pair in header.split(',') {
        let mut parts = pair.trim().split(' ');
        let key = parts.next().unwrap_or("");
        if key.is_empty() || !key.is_ascii() {
            return Err(bad(format!("{pair:?} has no ASCII key")));
        }
        let value = match (parts.next(), parts.next()) {
            (None, _) => String::new(),
            (Some(v), None) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| bad(format!("the value of {key:?} is not base64")))?;
                String::from_utf8(bytes)
                    .map_err(|_| bad(format!("the value of {key:?} is not UTF-8 text")))?
            }
            (Some(_), Some(_)) => return Err(bad(format!("{pair:?} is not `key value`"))),
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(bad(format!("{key:?} appears twice")));
        }
    }
    Ok(out)
}

/// `Upload-Checksum: sha256 <digest in base64>`, the digest of the request's
/// body. Other algorithms are refused (tus: 400).
pub fn parse_checksum(header: &str) -> Result<[u8; 32], HeaderError> {
    let bad = |m: &str| HeaderError::Checksum(m.to_string());
    let (algorithm, digest) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("expected `sha256 <base64 digest>`"))?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(HeaderError::Checksum(format!(
            "{algorithm:?} is not supported; use sha256"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| bad("the digest is not base64"))?;
    bytes
        .try_into()
        .map_err(|_| bad("a SHA-256 digest is 32 bytes"))
}

/// A whole file's SHA-256 given in metadata (`sha256`), as 64 hex digits.
pub fn parse_sha256_hex(value: &str) -> Result<[u8; 32], HeaderError> {
    let bad = || HeaderError::Metadata("sha256 must be 64 hex digits".to_string());
    let bytes = hex::decode(value.trim()).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn metadata_pairs_decode_and_bad_ones_are_refused() {
        let header = format!(
            "filename {},study_upload {}, sequence {},is_confidential",
            b64("T1 ü.nii.gz"),
            b64("0b6e…"),
            b64("t1")
        );
        let m = parse_metadata(&header).unwrap();
        assert_eq!(m["filename"], "T1 ü.nii.gz");
        assert_eq!(m["study_upload"], "0b6e…");
        assert_eq!(m["sequence"], "t1");
        assert_eq!(m["is_confidential"], "");
        assert_eq!(m.len(), 4);
        assert!(parse_metadata("").unwrap().is_empty());

        for header in [
            format!("filename {},filename {}", b64("a"), b64("b")),
            "filename not*base64".to_string(),
            format!("filename {} extra", b64("a")),
            format!(",filename {}", b64("a")),
            format!(
                "name {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])
            ),
        ] {
            assert!(
                matches!(parse_metadata(&header), Err(HeaderError::Metadata(_))),
                "{header:?}"
            );
        }
    }

    #[test]
    fn checksums_are_sha256_in_base64() {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(b"hello").into();
        let header = format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(parse_checksum(&header).unwrap(), digest);
        assert_eq!(
            parse_checksum(&header.replace("sha256", "SHA256")).unwrap(),
            digest
        );
        let md5 = parse_checksum("md5 XUFAKrxLKna5cZ2REBfFkg==").unwrap_err();
        assert!(md5.to_string().contains("not supported"), "{md5}");
        assert!(parse_checksum("sha256").is_err());
        assert!(parse_checksum("sha256 !!!").is_err());
        assert!(parse_checksum(&format!("sha256 {}", b64("short"))).is_err());

        let hex_digest = hex::encode(digest);
        assert_eq!(parse_sha256_hex(&hex_digest).unwrap(), digest);
        assert!(parse_sha256_hex(&hex_digest[..62]).is_err());
        assert!(parse_sha256_hex("zz").is_err());
    }

    #[test]
    fn only_version_1_0_0_is_spoken() {
        assert!(check_version(Some("1.0.0")).is_ok());
        assert!(check_version(Some("0.2.2")).is_err());
        assert!(check_version(None).is_err());
    }
}
