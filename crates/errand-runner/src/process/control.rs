//! The control channel: how a run talks back to errand while it runs.
//!
//! Each run gets a private directory (mode 0700, owned by the run's user) holding a FIFO.
//! `$ERRAND_CONTROL` names the FIFO; `$ERRAND_SHUTDOWN_FILE` names a file in the same
//! directory that errand creates when it asks the run to stop.
//!
//! # The control lines
//!
//! The run writes JSON lines to `$ERRAND_CONTROL`, one object per line, UTF-8, each
//! ending with a newline (a last line without one is read when the run ends). A script may
//! open and close the FIFO for every line (`echo '...' > "$ERRAND_CONTROL"`) or keep it open.
//! The object's key says what the line is:
//!
//! | line | meaning |
//! |---|---|
//! | `{"progress": 50}` | done so far, in percent: a number from 0 to 100 (fractions allowed) |
//! | `{"progress": 50, "message": "half"}` | the same, with what it is doing now |
//! | `{"message": "copying"}` | only what it is doing now |
//! | `{"checkpoint": <any JSON>}` | saved durably before the next control line is read; the next attempt finds it in `$ERRAND_CHECKPOINT` |
//! | `{"result": <any JSON>}` | the job's result (the last one sent wins) |
//! | `{"fail": "reason"}` | the attempt fails without retry, however the process then exits; `"retry": false` may be added and says the same |
//!
//! Any other line (not JSON, not an object, an unknown or extra key, a progress outside
//! 0–100, a message with a NUL character, `"retry": true`, a line over
//! [`MAX_CONTROL_LINE_BYTES`]) is reported as a bad control line and logged as an ERROR
//! line; the run goes on. Blank lines are ignored. When several processes of a run write to
//! the FIFO at once, lines of up to 4096 bytes written with one `write` never interleave.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use errand_core::Progress;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::RunEvent;

/// The variable naming the control FIFO.
pub const CONTROL_ENV: &str = "ERRAND_CONTROL";
/// The variable naming the file errand creates when it asks the run to stop.
pub const SHUTDOWN_FILE_ENV: &str = "ERRAND_SHUTDOWN_FILE";
/// The longest control line read (1 MiB); a longer one is a bad control line.
pub const MAX_CONTROL_LINE_BYTES: usize = 1024 * 1024;

/// How much of a bad line a report quotes.
const EXCERPT_BYTES: usize = 300;

/// One understood control line.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlMessage {
    /// `{"progress": ..., "message": ...}` or `{"message": ...}`.
    Progress(Progress),
    /// `{"checkpoint": ...}`.
    Checkpoint(Value),
    /// `{"result": ...}`.
    Result(Value),
    /// `{"fail": "reason"}`.
    FailNoRetry(String),
}

/// Why a control line was not understood, in words for the run's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlLineError {
    /// Not JSON at all.
    #[error("not JSON ({0})")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// An object with none of the known keys.
    #[error("no `progress`, `message`, `checkpoint`, `result` or `fail` key")]
    NoKind,
    /// An object with keys of two kinds, or a key no kind has.
    #[error("unexpected key `{key}` in a `{kind}` line")]
    UnexpectedKey {
        /// The kind the line was read as.
        kind: &'static str,
        /// The key that does not belong.
        key: String,
    },
    /// `progress` is not a number from 0 to 100.
    #[error("`progress` must be a number from 0 to 100")]
    BadPercent,
    /// `message` is not a string without NUL characters.
    #[error("`message` must be a string without NUL characters")]
    BadMessage,
    /// `fail` is not a string.
    #[error("`fail` must be a string: the reason")]
    BadFail,
    /// `retry` is something other than `false`.
    #[error("`retry` can only be false (to fail with retries, exit with a non-zero code)")]
    RetryNotFalse,
    /// Longer than [`MAX_CONTROL_LINE_BYTES`].
    #[error("longer than {MAX_CONTROL_LINE_BYTES} bytes")]
    TooLong,
}

/// Reads one control line (without its newline).
///
/// # Errors
/// [`ControlLineError`] saying what is wrong with it.
pub fn parse_control_line(line: &[u8]) -> Result<ControlMessage, ControlLineError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| ControlLineError::NotJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ControlLineError::NotAnObject);
    };
    if let Some(value) = object.remove("checkpoint") {
        only_keys(&object, "checkpoint", &[])?;
        return Ok(ControlMessage::Checkpoint(value));
    }
    if let Some(value) = object.remove("result") {
        only_keys(&object, "result", &[])?;
        return Ok(ControlMessage::Result(value));
    }
    if let Some(reason) = object.remove("fail") {
        only_keys(&object, "fail", &["retry"])?;
        match object.get("retry") {
            None | Some(Value::Bool(false)) => {}
            Some(_) => return Err(ControlLineError::RetryNotFalse),
        }
        return match reason {
            Value::String(reason) => Ok(ControlMessage::FailNoRetry(reason)),
            _ => Err(ControlLineError::BadFail),
        };
    }
    if object.contains_key("progress") || object.contains_key("message") {
        only_keys(&object, "progress", &["progress", "message"])?;
        let percent = match object.get("progress") {
            None => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                _ => return Err(ControlLineError::BadPercent),
            },
            Some(_) => return Err(ControlLineError::BadPercent),
        };
        let message = match object.remove("message") {
            None => None,
            Some(Value::String(m)) if !m.contains('\0') => Some(m),
            Some(_) => return Err(ControlLineError::BadMessage),
        };
        return Ok(ControlMessage::Progress(Progress { percent, message }));
    }
    Err(ControlLineError::NoKind)
}

fn only_keys(
    object: &Map<String, Value>,
    kind: &'static str,
    allowed: &[&str],
) -> Result<(), ControlLineError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ControlLineError::UnexpectedKey {
            kind,
            key: key.clone(),
        }),
        None => Ok(()),
    }
}

/// The text of a [`RunEvent::BadControlLine`]: why, then the whole line. It is cut to an
/// excerpt ([`bad_line_excerpt`]) only after the runner has redacted it, so no secret is
/// cut in two and half kept.
fn bad_line_text(error: &ControlLineError, line: &[u8]) -> String {
    if line.is_empty() {
        return format!("bad control line: {error}");
    }
    format!(
        "bad control line: {error}: {}",
        String::from_utf8_lossy(line)
    )
}

/// The start of a bad control line's text, as it is logged.
pub fn bad_line_excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut cut = EXCERPT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// A run's private directory: the control FIFO and the place of the shutdown file. It is
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct ControlDir {
    dir: tempfile::TempDir,
    fifo: PathBuf,
    shutdown: PathBuf,
}

impl ControlDir {
    /// Makes the directory (0700) and the FIFO (0600) under [`run_dir_base`], owned by
    /// `owner` when the run runs as another user.
    pub(crate) fn create(owner: Option<(Uid, Gid)>) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("errand-run-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(run_dir_base())?;
        let fifo = dir.path().join("control");
        nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR)?;
        if let Some((uid, gid)) = owner {
            nix::unistd::chown(dir.path(), Some(uid), Some(gid))?;
            nix::unistd::chown(&fifo, Some(uid), Some(gid))?;
        }
        let shutdown = dir.path().join("shutdown");
        Ok(Self {
            dir,
            fifo,
            shutdown,
        })
    }

    /// The FIFO, for `$ERRAND_CONTROL`.
    pub(crate) fn fifo(&self) -> &Path {
        &self.fifo
    }

    /// The shutdown file, for `$ERRAND_SHUTDOWN_FILE`.
    pub(crate) fn shutdown_file(&self) -> &Path {
        &self.shutdown
    }

    /// Opens the FIFO for reading. It is opened read-write so that it never reports end of
    /// file while no writer has it open: a script may open and close it for every line.
    pub(crate) fn open_reader(&self) -> io::Result<pipe::Receiver> {
        pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&self.fifo)
    }

    /// Creates the shutdown file, telling the run errand wants it to stop.
    pub(crate) fn create_shutdown_file(&self) -> io::Result<()> {
        std::fs::File::create(&self.shutdown).map(drop)
    }

    /// Removes the directory, saying so when that fails. The two known entries and the
    /// directory go with three calls; only a directory the run put more into is walked.
    pub(crate) fn remove(self) {
        let path = self.dir.keep();
        let _ = std::fs::remove_file(&self.fifo);
        let _ = std::fs::remove_file(&self.shutdown);
        if let Err(e) = std::fs::remove_dir(&path).or_else(|_| std::fs::remove_dir_all(&path)) {
            tracing::warn!(dir = %path.display(), error = %e, "could not remove a run's control directory");
        }
    }
}

/// Where runs' private directories are made: `/dev/shm` where it is a directory (a tmpfs
/// on Linux: making and removing a directory and a FIFO there costs microseconds, against
/// milliseconds on a journalled disk, and a run pays it every time), else the system's
/// temp directory.
pub fn run_dir_base() -> &'static Path {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// Bytes read from the FIFO, cut into lines, with over-long lines skipped to their end.
struct LineBuffer {
    buf: Vec<u8>,
    start: usize,
    skipping: bool,
}

/// What [`LineBuffer::next_line`] found.
enum Piece<'a> {
    Line(&'a [u8]),
    TooLong,
}

impl LineBuffer {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(4096),
            start: 0,
            skipping: false,
        }
    }

    fn extend(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, if one is buffered.
    fn next_line(&mut self) -> Option<Piece<'_>> {
        let rest = &self.buf[self.start..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = self.start..self.start + end;
                self.start += end + 1;
                if std::mem::take(&mut self.skipping) || end > MAX_CONTROL_LINE_BYTES {
                    Some(Piece::TooLong)
                } else {
                    Some(Piece::Line(&self.buf[line]))
                }
            }
            None => {
                if self.skipping || rest.len() > MAX_CONTROL_LINE_BYTES {
                    self.skipping = true;
                    self.buf.clear();
                    self.start = 0;
                }
                None
            }
        }
    }

    /// What is left without a newline, once nothing more can come.
    fn rest(&mut self) -> Option<Piece<'_>> {
        if std::mem::take(&mut self.skipping) {
            return Some(Piece::TooLong);
        }
        let rest = &self.buf[self.start..];
        self.start = self.buf.len();
        (!rest.is_empty()).then_some(Piece::Line(rest))
    }
}

/// Turns one piece into the event it stands for; `None` for a blank line.
fn event_for(piece: Piece<'_>) -> Option<Result<ControlMessage, String>> {
    match piece {
        Piece::TooLong => Some(Err(bad_line_text(&ControlLineError::TooLong, b""))),
        Piece::Line(line) => {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(parse_control_line(line).map_err(|e| bad_line_text(&e, line)))
        }
    }
}

/// Hands one control line to the dispatcher; a checkpoint waits until it is saved.
/// Returns `false` once the dispatcher is gone (nothing more is worth sending).
async fn deliver(events: &mpsc::Sender<RunEvent>, parsed: Result<ControlMessage, String>) -> bool {
    let event = match parsed {
        Err(text) => RunEvent::BadControlLine(text),
        Ok(ControlMessage::Progress(p)) => RunEvent::Progress(p),
        Ok(ControlMessage::Result(v)) => RunEvent::Result(v),
        Ok(ControlMessage::FailNoRetry(r)) => RunEvent::FailNoRetry(r),
        Ok(ControlMessage::Checkpoint(value)) => {
            let (saved, answer) = oneshot::channel();
            if events
                .send(RunEvent::Checkpoint { value, saved })
                .await
                .is_err()
            {
                return false;
            }
            if !answer.await.unwrap_or(false) {
                tracing::warn!("a run's checkpoint was not saved");
            }
            return true;
        }
    };
    events.send(event).await.is_ok()
}

/// Reads control lines until `finish` is cancelled (the run's processes are gone), then
/// reads what is still in the FIFO, and returns once every line has been delivered.
pub(crate) async fn read_control(
    mut fifo: pipe::Receiver,
    events: mpsc::Sender<RunEvent>,
    finish: CancellationToken,
) {
    let mut lines = LineBuffer::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut listening = true;
    loop {
        let read = tokio::select! {
            biased;
            read = fifo.read(&mut chunk) => read,
            () = finish.cancelled() => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => lines.extend(&chunk[..n]),
            Err(e) => {
                tracing::warn!(error = %e, "reading a run's control channel failed");
                break;
            }
        }
        while let Some(parsed) = lines.next_line().map(event_for) {
            if let Some(parsed) = parsed {
                listening = listening && deliver(&events, parsed).await;
            }
        }
    }
    // The writers are gone: what they wrote is in the FIFO, and nothing more comes.
    loop {
        match fifo.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => lines.extend(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    while let Some(parsed) = lines.next_line().map(event_for) {
        if let Some(parsed) = parsed {
            listening = listening && deliver(&events, parsed).await;
        }
    }
    if let Some(Some(parsed)) = lines.rest().map(event_for) {
        if listening {
            deliver(&events, parsed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Result<ControlMessage, ControlLineError> {
        parse_control_line(s.as_bytes())
    }

    #[test]
    fn reads_every_kind_of_line() {
        assert_eq!(
            parse(r#"{"progress": 50, "message": "half"}"#),
            Ok(ControlMessage::Progress(Progress {
                percent: Some(50.0),
                message: Some("half".into())
            }))
        );
        assert_eq!(
            parse(r#"{"message": "copying"}"#),
            Ok(ControlMessage::Progress(Progress {
                percent: None,
                message: Some("copying".into())
            }))
        );
        assert_eq!(
            parse(r#"{"checkpoint": {"page": 3}}"#),
            Ok(ControlMessage::Checkpoint(json!({"page": 3})))
        );
        assert_eq!(
            parse(r#"{"result": [1, 2]}"#),
            Ok(ControlMessage::Result(json!([1, 2])))
        );
        assert_eq!(
            parse(r#"{"fail": "bad input", "retry": false}"#),
            Ok(ControlMessage::FailNoRetry("bad input".into()))
        );
        assert_eq!(
            parse(r#"{"fail": "bad input"}"#),
            Ok(ControlMessage::FailNoRetry("bad input".into()))
        );
    }

    #[test]
    fn refuses_what_is_not_a_control_line() {
        assert!(matches!(parse("hello"), Err(ControlLineError::NotJson(_))));
        assert_eq!(parse("[1]"), Err(ControlLineError::NotAnObject));
        assert_eq!(parse(r#"{"x": 1}"#), Err(ControlLineError::NoKind));
        assert_eq!(
            parse(r#"{"result": 1, "progress": 2}"#),
            Err(ControlLineError::UnexpectedKey {
                kind: "result",
                key: "progress".into()
            })
        );
        assert_eq!(
            parse(r#"{"progress": 101}"#),
            Err(ControlLineError::BadPercent)
        );
        assert_eq!(
            parse(r#"{"progress": "5"}"#),
            Err(ControlLineError::BadPercent)
        );
        assert_eq!(
            parse(r#"{"message": "a\u0000b"}"#),
            Err(ControlLineError::BadMessage)
        );
        assert_eq!(
            parse(r#"{"fail": "x", "retry": true}"#),
            Err(ControlLineError::RetryNotFalse)
        );
        assert_eq!(parse(r#"{"fail": 3}"#), Err(ControlLineError::BadFail));
    }

    #[test]
    fn cuts_lines_and_skips_an_over_long_one() {
        let mut lines = LineBuffer::new();
        lines.extend(b"a\nb");
        assert!(matches!(lines.next_line(), Some(Piece::Line(b"a"))));
        assert!(lines.next_line().is_none());
        lines.extend(&vec![b'x'; MAX_CONTROL_LINE_BYTES + 1]);
        assert!(lines.next_line().is_none());
        lines.extend(b"yyy\nc\n");
        assert!(matches!(lines.next_line(), Some(Piece::TooLong)));
        assert!(matches!(lines.next_line(), Some(Piece::Line(b"c"))));
        assert!(lines.next_line().is_none());
        lines.extend(b"tail");
        assert!(matches!(lines.rest(), Some(Piece::Line(b"tail"))));
        assert!(lines.rest().is_none());
    }
}
