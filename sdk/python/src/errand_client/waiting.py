"""The deadline arithmetic of waiting for a job, shared by both clients."""

from __future__ import annotations

import time
from typing import Any, Optional

from .errors import JobFailed, WaitTimeout
from .models import Job
from .protocol import MAX_WAIT_MS


class WaitDeadline:
    """Splits a total wait into long polls of at most the server's 60 s."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s

    def remaining_ms(self) -> int:
        """Milliseconds left (0 once passed)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def next_wait_ms(self) -> int:
        """The next long poll's ``wait``: what is left, capped at 60 s, at least 1 ms."""
        return max(1, min(self.remaining_ms(), MAX_WAIT_MS))

    def check(self, job: Job) -> Optional[Job]:
        """The job when it ended; ``None`` to poll again; raises once the deadline passed."""
        if job.finished:
            return job
        if self.remaining_ms() <= 0:
            raise WaitTimeout(f"job {job.id} still {job.state} at the deadline", job)
        return None


def result_of(job: Job) -> Any:
    """A finished job's result; raises :class:`JobFailed` unless it succeeded."""
    if job.state == "succeeded":
        return job.result
    raise JobFailed(f"job {job.id} ended {job.state}: {job.error}", job)
