"""What to enqueue: :class:`JobSpec` carries every option of ``POST /v1/jobs``."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Union

#: A duration: milliseconds, a text the server parses (``"30s"``, ``"1h 30m"``) or a timedelta.
Duration = Union[int, str, _dt.timedelta]


def duration_json(value: Duration) -> Union[int, str]:
    """A duration as the API takes it (timedeltas become whole milliseconds)."""
    if isinstance(value, _dt.timedelta):
        return int(value.total_seconds() * 1000)
    return value


def instant_json(value: Union[str, _dt.datetime]) -> str:
    """An instant as RFC 3339 text (a naive datetime is taken as UTC)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.isoformat()


@dataclass
class JobSpec:
    """One job to enqueue, with every option of the API.

    Fields left ``None`` are not sent, so the server's (or the queue's) defaults apply.
    ``delay`` and ``run_at`` are exclusive; so are ``lock_key``, ``concurrency_key`` and
    ``session_key``.
    """

    kind: str
    payload: Any = None
    queue: Optional[str] = None
    priority: Optional[int] = None
    delay: Optional[Duration] = None
    run_at: Optional[Union[str, _dt.datetime]] = None
    max_attempts: Optional[int] = None
    timeout: Optional[Duration] = None
    tags: Optional[Sequence[str]] = None
    idempotency_key: Optional[str] = None
    reply_to: Optional[str] = None
    correlation_id: Optional[str] = None
    callback_url: Optional[str] = None
    lock_key: Optional[str] = None
    concurrency_key: Optional[str] = None
    concurrency_limit: Optional[int] = None
    session_key: Optional[str] = None
    session_on_dead: Optional[str] = None
    fairness_key: Optional[str] = None
    fairness_weight: Optional[int] = None
    rate_key: Optional[str] = None
    after: Optional[Sequence[str]] = None
    after_any_end: Optional[bool] = None

    def to_json(self) -> Dict[str, Any]:
        """The enqueue body: only the fields that are set."""
        body: Dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in ("delay", "timeout"):
                value = duration_json(value)
            elif f.name == "run_at":
                value = instant_json(value)
            elif f.name in ("tags", "after"):
                value = list(value)
            body[f.name] = value
        return body



def make_spec(kind: Union[str, JobSpec], payload: Any, options: Dict[str, Any]) -> JobSpec:
    """A :class:`JobSpec` from ``enqueue``'s arguments (or the spec itself)."""
    if isinstance(kind, JobSpec):
        if payload is not None or options:
            raise TypeError("pass either a JobSpec or kind, payload and options")
        return kind
    return JobSpec(kind, payload, **options)
