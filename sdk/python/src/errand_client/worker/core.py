"""What both workers share: options, handler errors, outcomes, backoff, the running set.

The threaded and the asyncio worker differ only in how they wait and run things; what they
decide (how many jobs to claim, when to heartbeat, how a handler's end becomes a settle
entry, how to read a settle's answer, how long to back off) lives here.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import protocol
from ..models import ClaimedJob, SettleResult

log = logging.getLogger("errand_client.worker")

#: On stop, a claim in flight for less than this is let finish (its jobs may already be on
#: the way: cancelling it then would leave them leased until their lease lapses); one in
#: flight longer is waiting for work, and is cancelled (the server gives back what it had
#: leased for it, uncounted).
CLAIM_SETTLE_S = 0.25

#: After the grace period, how long a stopping worker keeps retrying its settlements.
FLUSH_S = 15.0


class JobError(Exception):
    """Raise from a handler to fail the attempt with a chosen retry delay.

    ``retry_in_ms`` left ``None`` uses the server's backoff (as any other exception does);
    ``dead=True`` ends the job at once, attempts left or not.
    """

    def __init__(self, message: str, *, retry_in_ms: Optional[int] = None, dead: bool = False):
        super().__init__(message)
        self.retry_in_ms = retry_in_ms
        self.dead = dead


class NonRetryableError(JobError):
    """Raise from a handler when retrying cannot help: the job goes ``dead`` at once."""

    def __init__(self, message: str) -> None:
        super().__init__(message, dead=True)


@dataclass
class WorkerOptions:
    """How a worker claims, heartbeats, settles and stops.

    - ``concurrency``: jobs run at once; a claim asks for at most the free slots.
    - ``lease_ms``: the lease each claim asks for; heartbeats renew it every
      ``lease_ms * heartbeat_fraction``.
    - ``claim_wait_ms``: how long one claim long-polls for work.
    - ``grace_s``: on stop, how long running handlers may finish before their jobs are
      given back (failed with ``retry_in_ms: 0``, so they are ready again at once).
    - ``reconnect_base_s``/``reconnect_max_s``: backoff (full jitter) while the server is away.
    """

    concurrency: int = 16
    lease_ms: int = 30_000
    heartbeat_fraction: float = 1 / 3
    claim_wait_ms: int = 5_000
    max_claim: int = 100
    settle_batch_max: int = 1_000
    grace_s: float = 30.0
    reconnect_base_s: float = 0.05
    reconnect_max_s: float = 5.0
    name: Optional[str] = None

    @property
    def heartbeat_interval_s(self) -> float:
        """Seconds between two heartbeats of one job."""
        return max(0.05, self.lease_ms * self.heartbeat_fraction / 1000)

    def worker_name(self) -> str:
        """The ``worker`` name sent with claims."""
        return self.name or f"py-{socket.gethostname()}-{os.getpid()}"


class Backoff:
    """Exponential backoff with full jitter, capped; :meth:`reset` after a success."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The next pause: uniform in [0, min(max, base * 2^failures)]."""
        ceiling = min(self.max_s, self.base_s * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Forget earlier failures."""
        self.failures = 0


def claim_size(free_slots: int, options: WorkerOptions) -> int:
    """How many jobs to ask for: the free slots, at most ``max_claim`` (server cap 1,000)."""
    return max(0, min(free_slots, options.max_claim, 1000))


@dataclass
class Running:
    """A job a worker holds: its lease, when it heartbeats next, and how it ended."""

    job: ClaimedJob
    next_beat: float
    lost: bool = False
    given_back: bool = False
    progress: Optional[Dict[str, Any]] = None

    @property
    def settled_elsewhere(self) -> bool:
        """True when the handler's outcome must be dropped (lease lost or given back)."""
        return self.lost or self.given_back


@dataclass
class Outcome:
    """A settle entry for one job, ``kind`` ``"complete"`` or ``"fail"``."""

    kind: str
    entry: Dict[str, Any]


def success(job: ClaimedJob, result: Any) -> Outcome:
    """The completion of a job whose handler returned ``result``."""
    return Outcome("complete", protocol.completion_entry(job.id, job.lease_token, result))


def failure(job: ClaimedJob, exc: BaseException) -> Outcome:
    """The failure of a job whose handler raised ``exc``.

    A :class:`JobError` chooses its retry delay or death; any other exception retries
    with the server's backoff.
    """
    message = f"{type(exc).__name__}: {exc}"[:4000]
    if isinstance(exc, JobError):
        entry = protocol.failure_entry(
            job.id, job.lease_token, message, retry_in_ms=exc.retry_in_ms, dead=exc.dead
        )
    else:
        entry = protocol.failure_entry(job.id, job.lease_token, message)
    return Outcome("fail", entry)


def give_back(job: ClaimedJob, why: str) -> Outcome:
    """Returning a job at stop: a failure with ``retry_in_ms: 0`` (ready again at once)."""
    return Outcome("fail", protocol.failure_entry(job.id, job.lease_token, why, retry_in_ms=0))


def no_handler(job: ClaimedJob) -> Outcome:
    """A job of a kind with no handler: dead, since no retry here could run it."""
    return Outcome(
        "fail",
        protocol.failure_entry(
            job.id, job.lease_token, f"no handler for kind {job.kind!r}", dead=True
        ),
    )


def settle_call(batch: Sequence[Outcome]) -> "protocol.Call[List[SettleResult]]":
    """One ``POST /v1/jobs/settle`` for a batch of outcomes."""
    completions = [o.entry for o in batch if o.kind == "complete"]
    failures = [o.entry for o in batch if o.kind == "fail"]
    return protocol.settle(completions, failures)


def report_settled(results: Sequence[SettleResult]) -> None:
    """Log entries the server refused (``lease_lost``: someone else holds the job now)."""
    for r in results:
        if not r.ok:
            log.info("settle of job %s refused: %s %s", r.id, r.error_code, r.error_message)


Handler = Callable[..., Any]


class Registry:
    """Handlers by job kind."""

    def __init__(self) -> None:
        self.handlers: Dict[str, Handler] = {}

    def add(self, kind: str, fn: Handler) -> None:
        """Register ``fn`` for ``kind`` (one handler per kind)."""
        if kind in self.handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self.handlers[kind] = fn

    def kinds(self) -> List[str]:
        """The kinds to claim."""
        return sorted(self.handlers)


def now() -> float:
    """The monotonic clock all deadlines use."""
    return time.monotonic()


@dataclass
class Stats:
    """Counters a worker keeps (for logs, tests and the benchmark)."""

    claims: int = 0
    claimed: int = 0
    settles: int = 0
    succeeded: int = 0
    failed: int = 0
    given_back: int = 0
    lease_lost: int = 0
    errors: List[Tuple[str, str]] = field(default_factory=list)


def ordered(batch: Sequence[Outcome]) -> List[Outcome]:
    """The batch in the order of the settle answer: completions first, then failures."""
    return [o for o in batch if o.kind == "complete"] + [o for o in batch if o.kind == "fail"]


def count(stats: Stats, outcome: Outcome, result: SettleResult) -> None:
    """Update counters for one settled entry."""
    if not result.ok:
        if result.error_code == "lease_lost":
            stats.lease_lost += 1
        return
    if outcome.kind == "complete":
        stats.succeeded += 1
    else:
        stats.failed += 1
