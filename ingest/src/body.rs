//! Reading HTTP request bodies with a size limit (before and after gzip),
//! so a huge or zip-bomb body is refused without being held in memory.

use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::error::{Error, Result};

/// Limits on request bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body on the wire.
    pub max_request_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { max_request_bytes: 4 * 1024 * 1024, max_decompressed_bytes: 16 * 1024 * 1024 }
    }
}

/// How much of an oversized body is read and discarded before answering 413:
/// clients that are still sending when the connection closes see a reset
/// instead of our answer.
const OVERSIZE_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads the whole body (chunked or not) and undoes `Content-Encoding: gzip`.
pub async fn read_body(headers: &HeaderMap, mut body: Body, limits: BodyLimits) -> Result<Bytes> {
    let mut raw = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::decode("http", format!("reading request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > limits.max_request_bytes {
            if seen > OVERSIZE_DRAIN_BYTES {
                break;
            }
            continue;
        }
        raw.extend_from_slice(&data);
    }
    if seen > limits.max_request_bytes {
        return Err(Error::PayloadTooLarge { limit: limits.max_request_bytes });
    }
    let raw = raw.freeze();
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => gunzip(&raw, limits.max_decompressed_bytes),
        other => Err(Error::UnsupportedEncoding(other.to_owned())),
    }
}

/// Decompresses gzip, refusing output larger than `limit`.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Bytes> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(data);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode("gzip", e))?;
    if out.len() > limit {
        return Err(Error::PayloadTooLarge { limit });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gunzip_refuses_bombs_and_garbage() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let zipped = enc.finish().unwrap();
        assert!(matches!(gunzip(&zipped, 1000), Err(Error::PayloadTooLarge { .. })));
        assert_eq!(gunzip(&zipped, 2 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(gunzip(b"not gzip", 1000), Err(Error::Decode { .. })));
    }
}
