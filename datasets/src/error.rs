//! Errors of the dataset generator, writers and sender.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An unparsable command-line value (size, format, endpoint, start).
    #[error("invalid value {value:?}: expected {expected}")]
    InvalidValue {
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Reading or writing files.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Encoding OTLP/JSON.
    #[error("encoding OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Connecting to the server.
    #[error("connecting to {endpoint}: {message}")]
    Connect {
        /// The server.
        endpoint: String,
        /// The cause.
        message: String,
    },
    /// The generator thread stopped unexpectedly.
    #[error("the generator thread panicked")]
    GeneratorPanicked,
}

impl Error {
    /// A closure wrapping an I/O error with `context`, for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
