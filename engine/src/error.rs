//! The engine's error type, and the one place where error kinds map to HTTP
//! status codes and gRPC codes (every receiver and endpoint uses
//! [`ErrorKind`], so bad input is answered the same way everywhere).

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What class of failure an error is: decides the HTTP status and gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something malformed or invalid.
    InvalidArgument,
    /// The request does not say who it is from (no tenant, multi-tenant mode).
    Unauthenticated,
    /// The thing asked for does not exist.
    NotFound,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// The request's content type is not one we decode.
    UnsupportedMediaType,
    /// A limit was hit (memory, rate); retry later.
    ResourceExhausted,
    /// The server is shutting down or not ready.
    Unavailable,
    /// A bug or a storage failure on our side.
    Internal,
}

impl ErrorKind {
    /// HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// gRPC status code for this kind.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::PayloadTooLarge | ErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A payload that does not decode (malformed OTLP protobuf).
    #[error("malformed {format} payload: {message}")]
    Malformed { format: &'static str, message: String },
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("shutting down")]
    ShuttingDown,
    /// A part of the server that this process does not run (e.g. the compactor when disabled).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An internal error with a message.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// An invalid-argument error with a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::Malformed { .. } => ErrorKind::InvalidArgument,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::ShuttingDown | Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::DataFusion(e) => match e.find_root() {
                datafusion::error::DataFusionError::Plan(_)
                | datafusion::error::DataFusionError::SQL(..)
                | datafusion::error::DataFusionError::SchemaError(..) => ErrorKind::InvalidArgument,
                datafusion::error::DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }
}
