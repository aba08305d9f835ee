//! The query API's error type and its HTTP answer (status from
//! [`ErrorKind`], the one mapping shared with the receivers; plain-text body
//! as Tempo answers).

use axum::response::{IntoResponse, Response};
use spanlake_engine::ErrorKind;

/// Errors of the query API and the binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] spanlake_engine::Error),
    #[error(transparent)]
    Ingest(#[from] spanlake_ingest::Error),
}

/// Result alias of the API crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A 400 with `msg`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) | Error::Config(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Internal,
            Error::Engine(e) => e.kind(),
            Error::Ingest(e) => e.kind(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.kind().http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{self}\n")).into_response()
    }
}
