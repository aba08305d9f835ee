//! Errors of the receivers. Each maps to an [`ErrorKind`], which decides the
//! HTTP status and gRPC code in one place (`spanlake_engine::error`).

use spanlake_engine::ErrorKind;

/// Result alias of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors answering a write request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed {format} payload: {message}")]
    Decode { format: &'static str, message: String },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type {0:?}; use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// A content type a receiver does not take, with the ones it does.
    #[error("unsupported content type {found:?}; use {expected}")]
    UnsupportedMediaTypeOf { found: String, expected: &'static str },
    #[error("unsupported content encoding {0:?}; use gzip or none")]
    UnsupportedEncoding(String),
    #[error(transparent)]
    Engine(#[from] spanlake_engine::Error),
}

impl Error {
    /// A decode error for `format`.
    pub fn decode(format: &'static str, message: impl ToString) -> Self {
        Error::Decode { format, message: message.to_string() }
    }

    /// Is this a payload that did not decode?
    pub fn is_malformed(&self) -> bool {
        matches!(self, Error::Decode { .. } | Error::Engine(spanlake_engine::Error::Malformed { .. }))
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Decode { .. } | Error::UnsupportedEncoding(_) => ErrorKind::InvalidArgument,
            Error::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Error::UnsupportedMediaType(_) | Error::UnsupportedMediaTypeOf { .. } => ErrorKind::UnsupportedMediaType,
            Error::Engine(e) => e.kind(),
        }
    }

    /// HTTP status code of this error.
    pub fn http_status(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.kind().http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        tonic::Status::new(e.kind().grpc_code(), e.to_string())
    }
}
