//! Client errors.

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`not_found`, `lease_lost`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the answer could not be read.
    #[error("cannot reach errand: {0}")]
    Transport(String),
    /// The base URL is not usable.
    #[error("bad server URL: {0}")]
    BadUrl(String),
}

impl ClientError {
    /// The error code when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}
