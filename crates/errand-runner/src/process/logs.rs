//! A run's stdout and stderr as log lines: each line is timestamped when read, has its
//! line ending removed and invalid UTF-8 replaced, and a line longer than the bound is split.
//! Lines go into the bounded events channel one by one: a full channel stops the reading,
//! the pipe fills and the run waits, so memory never grows with the output.

use std::time::Duration;

use errand_core::{LogStream, NewLogLine};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RunEvent;

/// How much is read from a pipe at once.
const READ_CHUNK: usize = 64 * 1024;
/// The smallest line bound: room for any one UTF-8 character.
const MIN_LINE_BYTES: usize = 4;

/// Cuts a byte stream into log lines.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
}

impl LineSplitter {
    /// A splitter whose lines have at most `max_line_bytes` bytes (at least 4).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max: max_line_bytes.max(MIN_LINE_BYTES),
            buf: Vec::with_capacity(READ_CHUNK),
        }
    }

    /// The buffer to read into: what follows the partial line kept from the last read.
    fn buffer(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// Calls `line` for every complete line in what was read (and for full-length pieces
    /// of a line longer than the bound), keeping a partial last line for the next read.
    pub fn split(&mut self, mut line: impl FnMut(&[u8])) {
        let mut start = 0;
        while let Some(end) = self.buf[start..].iter().position(|&b| b == b'\n') {
            self.emit(start, start + end, &mut line);
            start += end + 1;
        }
        while self.buf.len() - start > self.max {
            let cut = char_boundary(&self.buf[start..], self.max);
            line(&self.buf[start..start + cut]);
            start += cut;
        }
        self.buf.drain(..start);
    }

    /// Calls `line` for what is left once the stream has ended (a last line without a
    /// newline).
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            let end = self.buf.len();
            self.emit(0, end, &mut line);
            self.buf.clear();
        }
    }

    /// One line from `buf[start..end]`, without its `\r`, split when longer than the bound.
    fn emit(&self, mut start: usize, end: usize, line: &mut impl FnMut(&[u8])) {
        let end = if end > start && self.buf[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        while end - start > self.max {
            let cut = char_boundary(&self.buf[start..end], self.max);
            line(&self.buf[start..start + cut]);
            start += cut;
        }
        line(&self.buf[start..end]);
    }
}

/// The longest prefix of `bytes` of at most `max` bytes that does not cut a UTF-8
/// character in two (just `max` when the bytes there are not UTF-8 anyway).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max;
    while cut > max.saturating_sub(3) && cut > 0 && is_continuation(bytes[cut]) {
        cut -= 1;
    }
    if cut == 0 || is_continuation(bytes[cut]) {
        max
    } else {
        cut
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Reads `pipe` to its end and sends each line as a [`RunEvent::Log`] of `stream`.
///
/// Once `finish` is cancelled (the run's process group is gone) a read that brings
/// nothing for `idle` ends the capture: only a process that left the group can still hold
/// the pipe open, and the run must not wait for it.
pub(crate) async fn capture(
    mut pipe: impl AsyncRead + Unpin,
    stream: LogStream,
    max_line_bytes: usize,
    events: mpsc::Sender<RunEvent>,
    finish: CancellationToken,
    idle: Duration,
) {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut lines: Vec<NewLogLine> = Vec::new();
    let mut listening = true;
    loop {
        let read = if finish.is_cancelled() {
            match tokio::time::timeout(idle, pipe.read_buf(splitter.buffer())).await {
                Ok(read) => read,
                Err(_) => {
                    tracing::warn!(
                        stream = stream.as_str(),
                        "a process that left the run's group still holds its output open; \
                         not waiting for it"
                    );
                    break;
                }
            }
        } else {
            tokio::select! {
                biased;
                read = pipe.read_buf(splitter.buffer()) => read,
                () = finish.cancelled() => continue,
            }
        };
        let at = errand_core::time::system_now();
        match read {
            Ok(0) => break,
            Ok(_) => splitter.split(|l| lines.push(log_line(at, stream, l))),
            Err(e) => {
                tracing::warn!(stream = stream.as_str(), error = %e, "reading a run's output failed");
                break;
            }
        }
        listening = send_all(&events, &mut lines, listening).await;
    }
    let at = errand_core::time::system_now();
    splitter.finish(|l| lines.push(log_line(at, stream, l)));
    send_all(&events, &mut lines, listening).await;
}

fn log_line(at: errand_core::Millis, stream: LogStream, bytes: &[u8]) -> NewLogLine {
    NewLogLine {
        at,
        stream,
        line: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Sends the lines in order; once the receiver is gone they are dropped (the output is
/// still read, so the run does not block on a full pipe).
async fn send_all(
    events: &mpsc::Sender<RunEvent>,
    lines: &mut Vec<NewLogLine>,
    listening: bool,
) -> bool {
    let mut listening = listening;
    for line in lines.drain(..) {
        if listening {
            listening = events.send(RunEvent::Log(line)).await.is_ok();
        }
    }
    listening
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.buffer().extend_from_slice(chunk);
            splitter.split(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        }
        splitter.finish(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn lines_across_reads_with_crlf_and_a_last_line_without_newline() {
        assert_eq!(
            split_all(100, &[b"one\r\ntw", b"o\n\nthr", b"ee"]),
            vec!["one", "two", "", "three"]
        );
    }

    #[test]
    fn long_lines_split_at_the_bound_and_at_character_boundaries() {
        assert_eq!(split_all(4, &[b"abcdefghij\n"]), vec!["abcd", "efgh", "ij"]);
        // "é" is two bytes: a cut at 5 would split the third one.
        assert_eq!(split_all(5, &["ééé\n".as_bytes()]), vec!["éé", "é"]);
        // A line with no newline yet is split as it grows.
        assert_eq!(split_all(4, &[b"abcdef", b"gh"]), vec!["abcd", "efgh"]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(split_all(100, &[b"a\xffb\n"]), vec!["a\u{fffd}b"]);
    }
}
