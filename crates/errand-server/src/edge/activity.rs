//! What one connection is doing, so its watchdog knows which deadline applies: a request
//! in service has none here (its body has its own, long polls have none), a request head
//! being read has the header deadline, and a connection with nothing in progress has the
//! idle deadline. Whatever it is doing, a connection whose writes to the client have found
//! no room for the idle timeout is closed: a stream (events, a followed log, the
//! dashboard's feed) to a client that stopped reading would otherwise hold its slot, its
//! buffers and a graceful shutdown for ever once the buffers between them are full, since
//! hyper polls a body only while its write buffer has room.
//!
//! Every change comes from inside the connection's own future (its IO reads and writes,
//! hyper calling the service, hyper dropping a finished response body), so the watchdog
//! reads the state after each poll of that future and needs no notification. A notification from inside
//! the task woke the task during its own poll, which queued it again behind the others and
//! woke the other runtime thread: three times per request.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct State {
    /// Requests handed to the service whose responses have not finished.
    in_flight: usize,
    /// When the first byte of the next request head arrived, if it has.
    head_started: Option<Instant>,
    /// When the connection last had nothing in progress.
    idle_since: Instant,
    /// When a write to the client last found no room, if none has made progress since.
    write_stalled_since: Option<Instant>,
}

/// One connection's activity, shared by its IO, its requests and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                head_started: None,
                idle_since: Instant::now(),
                write_stalled_since: None,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: with nothing in service they begin a request head.
    pub(crate) fn bytes_read(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
        }
    }

    /// Bytes left for the client: a response still draining to a slow reader after its
    /// request's guard dropped is progress, so the idle deadline counts from here (only a
    /// connection that moves no bytes either way for `idle_timeout` is closed), and so
    /// does the header deadline of a next request sent meanwhile (pipelined), which is
    /// not read until the answer before it has gone out. The watchdog reads the new
    /// deadline after the poll that wrote them.
    pub(crate) fn bytes_written(&self) {
        let mut s = self.state();
        if s.in_flight == 0 {
            let now = Instant::now();
            match s.head_started.as_mut() {
                Some(started) => *started = now,
                None => s.idle_since = now,
            }
        }
    }

    /// A write found no room (the client is not taking what it was sent): the stall
    /// deadline counts from here until [`Activity::write_resumed`].
    pub(crate) fn write_stalled(&self) {
        self.state().write_stalled_since = Some(Instant::now());
    }

    /// A write that had found no room went through.
    pub(crate) fn write_resumed(&self) {
        self.state().write_stalled_since = None;
    }

    /// A request was handed to the service; it is in progress until the guard drops
    /// (when its response body has been sent or abandoned).
    pub(crate) fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut s = self.state();
        s.in_flight += 1;
        s.head_started = None;
        drop(s);
        RequestGuard {
            activity: self.clone(),
        }
    }

    /// True while the connection's writes find no room: its client is not taking them.
    pub(crate) fn stalled(&self) -> bool {
        self.state().write_stalled_since.is_some()
    }

    /// True while a request is in service on this connection.
    pub(crate) fn in_service(&self) -> bool {
        self.state().in_flight > 0
    }

    /// When the connection is to be closed if nothing changes: `None` while a request is in
    /// service and its answer (if any yet) is being taken.
    pub(crate) fn deadline(
        &self,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<Instant> {
        let s = self.state();
        let stalled = s.write_stalled_since.map(|since| since + idle_timeout);
        if s.in_flight > 0 {
            return stalled;
        }
        let waiting = match s.head_started {
            Some(started) => started + header_timeout,
            None => s.idle_since + idle_timeout,
        };
        Some(stalled.map_or(waiting, |stalled| stalled.min(waiting)))
    }
}

/// Marks one request in progress; dropped when its response is done.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut s = self.activity.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(2);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn deadline_follows_what_the_connection_is_doing() {
        let a = Activity::new();
        let idle = a.deadline(HEADER, IDLE).expect("idle deadline");
        a.bytes_read();
        let head = a.deadline(HEADER, IDLE).expect("header deadline");
        assert!(
            head < idle,
            "a started head gets the shorter header deadline"
        );
        let guard = a.request_started();
        assert_eq!(
            a.deadline(HEADER, IDLE),
            None,
            "no deadline while in service"
        );
        a.bytes_read();
        assert_eq!(
            a.deadline(HEADER, IDLE),
            None,
            "body bytes do not start a head"
        );
        drop(guard);
        assert!(a.deadline(HEADER, IDLE).expect("idle again") >= idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_behind_a_draining_answer_counts_from_its_last_bytes() {
        let a = Activity::new();
        drop(a.request_started());
        a.bytes_read();
        let head = a.deadline(HEADER, IDLE).expect("header deadline");
        // The answer before it drains for a while.
        tokio::time::advance(Duration::from_millis(500)).await;
        a.bytes_written();
        assert_eq!(
            a.deadline(HEADER, IDLE),
            Some(head + Duration::from_millis(500)),
            "the answer before it was still going out"
        );
    }

    #[tokio::test]
    async fn an_answer_the_client_stops_taking_has_a_deadline_even_in_service() {
        let a = Activity::new();
        let _guard = a.request_started();
        a.write_stalled();
        assert!(
            a.deadline(HEADER, IDLE).is_some(),
            "a stalled write has a deadline"
        );
        a.write_resumed();
        assert_eq!(
            a.deadline(HEADER, IDLE),
            None,
            "a write that makes progress ends the stall"
        );
    }
}
