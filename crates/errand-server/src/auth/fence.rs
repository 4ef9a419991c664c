//! What a token limited to some queues may name in a new job besides its queue.
//!
//! Some fields reach past the job's own queue: the keys every queue shares (a session, a
//! lock, a concurrency or rate limit), the queue its end notice is sent to, and the jobs it
//! waits for. A queue-limited token names keys only under its queues (`mail/user-42`), a
//! reply queue only among its queues, and parents only in its queues; otherwise it could
//! stall or throttle other queues' jobs, or learn when their jobs end.

use std::time::Duration;

use axum::http::StatusCode;
use errand_core::{JobId, NewJob, QueueName};
use errand_engine::Engine;

use super::Principal;
use crate::ApiError;

impl Principal {
    /// `Ok` when this caller may enqueue `job`: its queue, its reply queue and its shared
    /// keys are within the caller's queues (parents are checked by [`check_parents`]).
    pub(crate) fn check_new_job(&self, job: &NewJob) -> Result<(), ApiError> {
        self.check_queue(job.queue.as_str())?;
        if self.queues.is_empty() {
            return Ok(());
        }
        if let Some(reply_to) = &job.notify.reply_to {
            if !self.allows_queue(reply_to.as_str()) {
                return Err(forbidden(format!(
                    "reply_to: this token is limited to the queues {}; `{reply_to}` is not one of them",
                    self.queue_list()
                )));
            }
        }
        let o = &job.ordering;
        for (field, key) in [
            ("session_key", &o.session_key),
            ("lock_key", &o.lock_key),
            ("concurrency_key", &o.concurrency_key),
            ("rate_key", &o.rate_key),
        ] {
            let Some(key) = key else { continue };
            if !self.queues.iter().any(|q| under_queue(key, q)) {
                return Err(forbidden(format!(
                    "{field}: keys are shared by every queue, so a token limited to the queues {} \
                     may only use keys that start with one of them and a slash (`{}/{key}`)",
                    self.queue_list(),
                    self.queues[0]
                )));
            }
        }
        Ok(())
    }

    fn queue_list(&self) -> String {
        let names: Vec<&str> = self.queues.iter().map(QueueName::as_str).collect();
        names.join(", ")
    }
}

/// Whether `key` is `<queue>/...`. The slash is a character no queue name holds, so the
/// keys of queue `a` are never those of queue `a:b`.
fn under_queue(key: &str, queue: &QueueName) -> bool {
    key.strip_prefix(queue.as_str())
        .is_some_and(|rest| rest.starts_with('/'))
}

/// `Ok` when every job that `jobs` wait for (outside the call itself) is in the caller's
/// queues. A parent in another queue answers exactly as a parent that does not exist (both
/// here, first in the order given), so a queue-limited token learns nothing of other
/// queues' jobs.
///
/// # Errors
/// `404` for a foreign or missing parent; the store's error when it cannot be read.
pub(crate) async fn check_parents(
    caller: &Principal,
    engine: &Engine,
    jobs: &[NewJob],
) -> Result<(), ApiError> {
    if caller.queues.is_empty() {
        return Ok(());
    }
    let own: std::collections::HashSet<JobId> = jobs.iter().map(|j| j.id).collect();
    let mut seen = std::collections::HashSet::new();
    for parent in jobs.iter().flat_map(|j| j.flow.after.iter()) {
        if own.contains(parent) || !seen.insert(*parent) {
            continue;
        }
        // A missing parent is answered here too, the same way and before anything else
        // (an idempotent repeat, the callback check) could tell the two apart.
        match engine.job(*parent, Duration::ZERO).await {
            Ok(job) if caller.allows_queue(job.queue.as_str()) => {}
            Ok(_) | Err(errand_store::StoreError::NotFound { .. }) => {
                return Err(errand_store::StoreError::job_not_found(parent).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(queues: &[&str]) -> Principal {
        Principal {
            name: "t".into(),
            scopes: vec![errand_core::Scope::Enqueue],
            queues: queues
                .iter()
                .map(|q| QueueName::parse(q).unwrap())
                .collect(),
            session: None,
        }
    }

    fn job(queue: &str) -> NewJob {
        errand_api::EnqueueRequest {
            queue: Some(queue.into()),
            ..errand_api::EnqueueRequest::new("k")
        }
        .into_new_job(&errand_api::EnqueueLimits {
            max_payload_bytes: 1024,
        })
        .unwrap()
    }

    #[test]
    fn keys_must_sit_under_one_of_the_tokens_queues() {
        let caller = limited(&["mail", "sms"]);
        // Queue names may hold `:`: queue `a`'s keys are not queue `a:b`'s.
        let a = limited(&["a"]);
        let mut ab = job("a");
        ab.ordering.lock_key = Some("a:b/x".into());
        assert!(a.check_new_job(&ab).is_err());
        let mut j = job("mail");
        assert!(caller.check_new_job(&j).is_ok());
        for set in [
            |j: &mut NewJob, k: String| j.ordering.session_key = Some(k),
            |j: &mut NewJob, k: String| j.ordering.lock_key = Some(k),
            |j: &mut NewJob, k: String| j.ordering.concurrency_key = Some(k),
            |j: &mut NewJob, k: String| j.ordering.rate_key = Some(k),
        ] {
            j.ordering = Default::default();
            set(&mut j, "sms/user-1".into());
            assert!(caller.check_new_job(&j).is_ok());
            for bad in ["user-1", "mailer/x", "mail", "mail:x", "other/mail/x"] {
                set(&mut j, bad.into());
                let err = caller.check_new_job(&j).unwrap_err();
                assert_eq!(err.status, StatusCode::FORBIDDEN, "{bad}");
            }
        }
        // An unlimited token names any key.
        assert!(limited(&[]).check_new_job(&j).is_ok());
    }

    #[test]
    fn a_reply_queue_must_be_one_of_the_tokens_queues() {
        let caller = limited(&["mail"]);
        let mut j = job("mail");
        j.notify.reply_to = Some(QueueName::parse("mail").unwrap());
        assert!(caller.check_new_job(&j).is_ok());
        j.notify.reply_to = Some(QueueName::parse("billing").unwrap());
        assert_eq!(
            caller.check_new_job(&j).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
