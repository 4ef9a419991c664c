"""What the server answers, as typed read-only views over the JSON.

Each view keeps the whole answer in ``raw`` so fields the library does not name are
still at hand (``job.raw["lease_expires_at"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

#: States after which a job changes no more (unless retried by hand).
FINAL_STATES = frozenset({"succeeded", "dead", "cancelled"})


@dataclass(frozen=True)
class Job:
    """A job as ``GET /v1/jobs/{id}`` shows it."""

    id: str
    kind: str
    queue: str
    state: str
    payload: Any
    attempt: int
    max_attempts: int
    result: Any = None
    error: Optional[str] = None
    progress: Optional[Dict[str, Any]] = None
    checkpoint: Any = None
    tags: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job is ``succeeded``, ``dead`` or ``cancelled``."""
        return self.state in FINAL_STATES

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Job":
        """Build from the server's JSON object."""
        return cls(
            id=data["id"],
            kind=data["kind"],
            queue=data["queue"],
            state=data["state"],
            payload=data.get("payload"),
            attempt=data.get("attempt", 0),
            max_attempts=data.get("max_attempts", 0),
            result=data.get("result"),
            error=data.get("error"),
            progress=data.get("progress"),
            checkpoint=data.get("checkpoint"),
            tags=list(data.get("tags") or []),
            raw=data,
        )


@dataclass(frozen=True)
class EnqueuedJob:
    """One entry of a batch enqueue's answer."""

    id: str
    state: str
    inserted: bool


@dataclass(frozen=True)
class BatchResult:
    """``POST /v1/jobs/batch``: the jobs in request order and how many were new."""

    jobs: List[EnqueuedJob]
    inserted: int


@dataclass(frozen=True)
class ClaimedJob:
    """A job handed to a worker by a claim. ``lease_token`` is the fencing token."""

    id: str
    kind: str
    queue: str
    payload: Any
    attempt: int
    max_attempts: int
    lease_token: str
    checkpoint: Any = None
    timeout_ms: Optional[int] = None
    tags: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "ClaimedJob":
        """Build from one entry of a claim's ``jobs``."""
        return cls(
            id=data["id"],
            kind=data["kind"],
            queue=data["queue"],
            payload=data.get("payload"),
            attempt=data["attempt"],
            max_attempts=data["max_attempts"],
            lease_token=data["lease_token"],
            checkpoint=data.get("checkpoint"),
            timeout_ms=data.get("timeout_ms"),
            tags=list(data.get("tags") or []),
            raw=data,
        )


@dataclass(frozen=True)
class SettleResult:
    """One entry of ``POST /v1/jobs/settle``'s answer: a new ``state`` or an error."""

    id: str
    state: Optional[str] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the settlement took effect (or was an idempotent repeat)."""
        return self.error_code is None
