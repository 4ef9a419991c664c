//! hyper answers a request head it cannot parse itself, before any handler sees it, with
//! an empty body (`400`, `414`, `431`). It has no hook to change that answer, so the
//! connection's IO recognises it on its way out and writes the API's JSON error shape in
//! its place (`io.rs`).
//!
//! The answer is recognised by its exact form: a whole write that is only a response head
//! with one of those statuses and `content-length: 0`, written while no request is in
//! service. No handler of ours produces that form (every error we answer carries a JSON
//! body), so the bytes of our own responses are never touched.

use errand_api::{ErrorBody, ErrorDetail};

/// The code and message for each status hyper answers by itself.
fn error_for(status: &[u8]) -> Option<(&'static str, &'static str)> {
    Some(match status {
        b"400" => (
            "invalid_request",
            "the request is not valid HTTP/1.1: a bad request line, or a header with a forbidden byte",
        ),
        b"414" => ("uri_too_long", "the request target is longer than the server accepts"),
        b"431" => (
            "headers_too_large",
            "the request has more headers, or a longer header block, than the server accepts",
        ),
        _ => return None,
    })
}

/// The JSON answer to write instead of `written`, when `written` is hyper's own
/// bodiless error answer; `None` for anything else.
pub(crate) fn replacement(written: &[u8]) -> Option<Vec<u8>> {
    let head = written.strip_suffix(b"\r\n\r\n")?;
    if head.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (code, message) = error_for(status)?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next()?;
    let mut kept = Vec::new();
    let mut empty_body = false;
    for line in lines {
        if line.eq_ignore_ascii_case(b"content-length: 0") {
            empty_body = true;
        } else {
            kept.push(line);
        }
    }
    if !empty_body {
        return None;
    }
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
        },
    })
    .ok()?;
    let mut out = Vec::with_capacity(written.len() + body.len() + 64);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\n");
    for line in kept {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 25 Nov 2026 16:13:57 GMT\r\n\r\n";

    #[test]
    fn hypers_own_answer_becomes_json() {
        let out = replacement(HYPER_431).expect("replaced");
        let text = String::from_utf8(out).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("connection: close\r\n"));
        assert!(head.contains("date: Wed"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"]["code"], "headers_too_large");
    }

    #[test]
    fn other_writes_are_left_alone() {
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(replacement(ours), None, "a head followed by a body");
        let ours_head_only = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n";
        assert_eq!(
            replacement(ours_head_only),
            None,
            "a head announcing a body"
        );
        let no_content = b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n";
        assert_eq!(replacement(no_content), None, "other statuses");
        let two = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(replacement(two), None, "more than one message");
    }
}
