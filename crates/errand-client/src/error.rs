//! Client errors.

use errand_api::ErrorBody;

/// The longest part of a non-JSON error body kept in a message (an HTML page from a proxy
/// would otherwise fill the screen).
const BODY_EXCERPT_CHARS: usize = 200;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body. Shown as `MESSAGE (STATUS CODE)`, e.g.
    /// `schedule nightly already exists (409 already_exists)`.
    #[error("{message} ({status} {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`not_found`, `lease_lost`, ...); `http` when the body was not
        /// errand's JSON error.
        code: String,
        /// The server's message.
        message: String,
    },
    /// No answer: the server could not be reached, the connection broke, or the answer did
    /// not come in time.
    #[error("cannot reach errand at {url}: {cause}")]
    Transport {
        /// The URL called (without its query).
        url: String,
        /// The innermost cause, e.g. `connection refused`.
        cause: String,
    },
    /// The server answered, but with something that is not what the endpoint sends.
    #[error("{0}")]
    Unreadable(String),
    /// The base URL is not usable.
    #[error("bad server URL: {0}")]
    BadUrl(String),
    /// `ERRAND_CA_CERT` names a file that cannot be read or holds no certificate.
    #[error("ERRAND_CA_CERT {path}: {reason}")]
    CaCert {
        /// The file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A typed job's payload does not serialise to JSON (nothing was sent).
    #[error("{0}")]
    Payload(String),
}

impl ClientError {
    /// The error code when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the same call may well succeed if made again shortly: no answer came (the
    /// server is down, restarting or unreachable), or the server or a proxy before it said
    /// it cannot serve now (429, 502, 503, 504). Waits ride these out; any other error
    /// would come back the same.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            ClientError::Unreadable(_)
            | ClientError::BadUrl(_)
            | ClientError::CaCert { .. }
            | ClientError::Payload(_) => false,
        }
    }

    /// The HTTP status when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error an answer with a non-success `status` and `body` means: errand's JSON
    /// error when the body is one, else an excerpt of the body (or the status's reason).
    pub(crate) fn from_answer(status: reqwest::StatusCode, body: &[u8]) -> Self {
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(body) {
            return ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let mut message: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
        if message.len() < text.len() {
            message.push_str("...");
        }
        if message.is_empty() {
            message = status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_string();
        }
        ClientError::Api {
            status: status.as_u16(),
            code: "http".into(),
            message,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        let url = match e.url() {
            Some(url) => {
                let mut url = url.clone();
                url.set_query(None);
                url.to_string()
            }
            None => "the server".into(),
        };
        ClientError::Transport {
            url,
            cause: transport_cause(&e),
        }
    }
}

/// What went wrong under reqwest's "error sending request": the innermost cause, in words
/// for the usual socket errors.
fn transport_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (timed out)".into();
    }
    let mut innermost: &(dyn std::error::Error + 'static) = e;
    let mut io_kind = None;
    while let Some(next) = innermost.source() {
        innermost = next;
        if let Some(io) = innermost.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
    }
    use std::io::ErrorKind;
    match io_kind {
        Some(ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(ErrorKind::ConnectionReset) => "connection reset by the server".into(),
        Some(ErrorKind::ConnectionAborted) => "connection aborted".into(),
        Some(ErrorKind::TimedOut) => "timed out".into(),
        Some(ErrorKind::UnexpectedEof) => "the server closed the connection".into(),
        _ => innermost.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_message_first() {
        let e = ClientError::from_answer(
            reqwest::StatusCode::CONFLICT,
            br#"{"error":{"code":"already_exists","message":"schedule n already exists"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "schedule n already exists (409 already_exists)"
        );
    }

    #[test]
    fn only_no_answer_and_unavailable_answers_are_transient() {
        let api = |status: u16, code: &str| ClientError::Api {
            status,
            code: code.into(),
            message: "m".into(),
        };
        let transport = ClientError::Transport {
            url: "http://127.0.0.1:1/v1/jobs/x".into(),
            cause: "connection refused".into(),
        };
        for e in [
            transport,
            api(429, "http"),
            api(502, "http"),
            api(503, "unavailable"),
            api(504, "http"),
        ] {
            assert!(e.is_transient(), "{e}");
        }
        for e in [
            api(400, "invalid_request"),
            api(404, "not_found"),
            api(409, "conflict"),
            api(500, "internal"),
            ClientError::Unreadable("x".into()),
            ClientError::BadUrl("x".into()),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn a_non_json_body_is_cut_short() {
        let page = format!("<html>{}</html>", "x".repeat(1000));
        let e = ClientError::from_answer(reqwest::StatusCode::BAD_GATEWAY, page.as_bytes());
        let text = e.to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.ends_with("... (502 http)"), "{text}");
        let empty = ClientError::from_answer(reqwest::StatusCode::BAD_GATEWAY, b"");
        assert_eq!(empty.to_string(), "Bad Gateway (502 http)");
    }
}
