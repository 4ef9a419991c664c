"""Request building and response parsing, shared by the sync and asyncio clients.

Nothing here does I/O: each API call is a :class:`Call` (what to send, and how to read the
answer); the clients only send it. Errors are decoded here too, so both clients raise the
same typed errors for the same answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    List,
    Mapping,
    Optional,
    Sequence,
    TypedDict,
    TypeVar,
    Union,
)

import httpx

from . import routes
from .errors import ApiError, ErrandError, Timeout, Unavailable, error_for
from .models import BatchResult, ClaimedJob, EnqueuedJob, Job, SettleResult
from .spec import JobSpec

T = TypeVar("T")

#: Added to a long poll's wait to make its call timeout.
LONG_POLL_MARGIN_S = 10.0
#: Sent as User-Agent.
USER_AGENT = "errand-client-python/0.1"
#: The longest wait the server takes on ``GET /v1/jobs/{id}?wait=`` and on a claim.
MAX_WAIT_MS = 60_000

class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Not given" where ``None`` is a value (a checkpoint may be JSON ``null``).
UNSET: Any = _Unset()


@dataclass
class Call(Generic[T]):
    """One API call: the request and the parser of a successful answer's JSON.

    ``timeout`` is in seconds; ``None`` means the client's default.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    body: Optional[Dict[str, Any]] = None
    params: Dict[str, str] = field(default_factory=dict)
    timeout: Optional[float] = None


def _drop_none(body: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _identity(data: Any) -> Any:
    return data


def headers(token: Optional[str], user_agent: str) -> Dict[str, str]:
    """Headers sent with every request (the token as ``Authorization: Bearer``)."""
    out = {"Accept": "application/json", "User-Agent": user_agent}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


class HttpSettings(TypedDict):
    """The settings of the ``httpx`` client under a sync or an asyncio client."""

    base_url: str
    headers: Dict[str, str]
    timeout: float
    limits: httpx.Limits


def http_settings(
    base_url: str, token: Optional[str], timeout: float, max_connections: int
) -> HttpSettings:
    """What both clients pass to ``httpx.Client``/``httpx.AsyncClient`` (besides the
    transport): every connection of the pool is kept alive."""
    return HttpSettings(
        base_url=base_url,
        headers=headers(token, USER_AGENT),
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


def encode_body(body: Optional[Dict[str, Any]]) -> Optional[bytes]:
    """The JSON bytes of a body (sent with ``Content-Type: application/json``)."""
    if body is None:
        return None
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def build_request(
    http: Union[httpx.Client, httpx.AsyncClient], call: "Call[Any]", default_timeout: float
) -> httpx.Request:
    """The HTTP request of a call, on ``http``'s base URL and headers (no I/O: send it with
    ``http.send``). ``default_timeout`` applies unless the call has its own."""
    content = encode_body(call.body)
    return http.build_request(
        call.method,
        call.path,
        params=call.params or None,
        content=content,
        headers={"Content-Type": "application/json"} if content is not None else None,
        timeout=call.timeout if call.timeout is not None else default_timeout,
    )


def read_response(call: "Call[T]", resp: httpx.Response) -> T:
    """A call's parsed answer; raises the typed error for an error answer."""
    return call.parse(decode(resp.status_code, resp.headers, resp.content))


def decode(status: int, resp_headers: Mapping[str, str], content: bytes) -> Any:
    """The JSON of a 2xx answer; raises the typed error for any other."""
    if 200 <= status < 300:
        return json.loads(content) if content else None
    code: Optional[str] = None
    message = content.decode("utf-8", "replace")[:500] or f"HTTP {status}"
    try:
        err = json.loads(content)["error"]
        code, message = err.get("code"), err.get("message", message)
    except (ValueError, KeyError, TypeError):
        pass
    retry_after: Optional[float] = None
    raw = resp_headers.get("retry-after")
    if raw is not None:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None
    raise error_for(status, code, message, retry_after)


def transport_error(exc: Exception) -> ErrandError:
    """The typed error for a failure below HTTP (connect, read, timeout)."""
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"no answer in time: {exc!r}")
    return Unavailable(f"server unreachable: {exc!r}")


# --- the calls -------------------------------------------------------------------------


def enqueue(spec: JobSpec) -> Call[Job]:
    """``POST /v1/jobs``."""
    return Call(routes.ENQUEUE.method, routes.ENQUEUE.path, Job.from_json, spec.to_json())


def _batch_result(data: Any) -> BatchResult:
    return BatchResult(
        jobs=[EnqueuedJob(j["id"], j["state"], bool(j["inserted"])) for j in data["jobs"]],
        inserted=int(data["inserted"]),
    )


def enqueue_batch(specs: Sequence[JobSpec]) -> Call[BatchResult]:
    """``POST /v1/jobs/batch``: all stored or none."""
    body = {"jobs": [s.to_json() for s in specs]}
    return Call(routes.ENQUEUE_BATCH.method, routes.ENQUEUE_BATCH.path, _batch_result, body)


def get_job(job_id: str, wait_ms: Optional[int] = None) -> Call[Job]:
    """``GET /v1/jobs/{id}``, with ``?wait=`` (capped at the server's 60 s) when given."""
    path = routes.GET_JOB.format(id=job_id)
    if wait_ms is None:
        return Call(routes.GET_JOB.method, path, Job.from_json)
    wait_ms = max(1, min(int(wait_ms), MAX_WAIT_MS))
    return Call(
        routes.GET_JOB.method,
        path,
        Job.from_json,
        params={"wait": str(wait_ms)},
        timeout=wait_ms / 1000 + LONG_POLL_MARGIN_S,
    )


def list_jobs(**query: Any) -> Call[Dict[str, Any]]:
    """``GET /v1/jobs`` with its filters (``queue``, ``state``, ``kind``, ``tag``, ...)."""
    params = {k: str(v) for k, v in query.items() if v is not None}
    return Call(routes.LIST_JOBS.method, routes.LIST_JOBS.path, _identity, params=params)


def cancel(job_id: str) -> Call[Job]:
    """``POST /v1/jobs/{id}/cancel``."""
    return Call(routes.CANCEL.method, routes.CANCEL.format(id=job_id), Job.from_json)


def retry(job_id: str) -> Call[Job]:
    """``POST /v1/jobs/{id}/retry``."""
    return Call(routes.RETRY.method, routes.RETRY.format(id=job_id), Job.from_json)


def _claimed(data: Any) -> List[ClaimedJob]:
    return [ClaimedJob.from_json(j) for j in data["jobs"]]


def claim(
    queue: str,
    *,
    worker: Optional[str] = None,
    max_jobs: int = 1,
    wait_ms: int = 0,
    lease_ms: Optional[int] = None,
    kinds: Optional[Sequence[str]] = None,
) -> Call[List[ClaimedJob]]:
    """``POST /v1/queues/{queue}/claim``; a long poll when ``wait_ms`` > 0."""
    body = _drop_none(
        {
            "worker": worker,
            "max": max_jobs,
            "wait_ms": wait_ms,
            "lease_ms": lease_ms,
            "kinds": list(kinds) if kinds else None,
        }
    )
    return Call(
        routes.CLAIM.method,
        routes.CLAIM.format(queue=queue),
        _claimed,
        body,
        timeout=(wait_ms / 1000 + LONG_POLL_MARGIN_S) if wait_ms else None,
    )


def heartbeat(
    job_id: str,
    lease_token: str,
    *,
    lease_ms: Optional[int] = None,
    progress: Optional[Dict[str, Any]] = None,
    checkpoint: Any = UNSET,
) -> Call[Dict[str, Any]]:
    """``POST /v1/jobs/{id}/heartbeat`` (``checkpoint`` is sent unless :data:`UNSET`)."""
    body: Dict[str, Any] = _drop_none(
        {"lease_token": lease_token, "lease_ms": lease_ms, "progress": progress}
    )
    if checkpoint is not UNSET:
        body["checkpoint"] = checkpoint
    return Call(routes.HEARTBEAT.method, routes.HEARTBEAT.format(id=job_id), _identity, body)


def release(job_id: str, lease_token: str) -> Call[Job]:
    """``POST /v1/jobs/{id}/release``: give a held job back uncounted (the attempt is
    forgotten and the job is ``available`` at once), for a worker stopping before the job
    ends; a ``fail`` would count the attempt and, on the last one, make the job dead."""
    body = {"lease_token": lease_token}
    return Call(routes.RELEASE.method, routes.RELEASE.format(id=job_id), Job.from_json, body)


def _completion(lease_token: str, result: Any) -> Dict[str, Any]:
    return _drop_none({"lease_token": lease_token, "result": result})


def _failure(
    lease_token: str, error: str, retry_in_ms: Optional[int], dead: bool
) -> Dict[str, Any]:
    return _drop_none(
        {"lease_token": lease_token, "error": error, "retry_in_ms": retry_in_ms, "dead": dead}
    )


def complete(job_id: str, lease_token: str, result: Any = None) -> Call[Job]:
    """``POST /v1/jobs/{id}/complete``."""
    body = _completion(lease_token, result)
    return Call(routes.COMPLETE.method, routes.COMPLETE.format(id=job_id), Job.from_json, body)


def fail(
    job_id: str,
    lease_token: str,
    error: str,
    *,
    retry_in_ms: Optional[int] = None,
    dead: bool = False,
) -> Call[Job]:
    """``POST /v1/jobs/{id}/fail``; without ``retry_in_ms`` the server's backoff applies."""
    body = _failure(lease_token, error, retry_in_ms, dead)
    return Call(routes.FAIL.method, routes.FAIL.format(id=job_id), Job.from_json, body)


def completion_entry(job_id: str, lease_token: str, result: Any = None) -> Dict[str, Any]:
    """One ``completions`` entry of a settle: the body of :func:`complete` with the id."""
    return {"id": job_id, **_completion(lease_token, result)}


def failure_entry(
    job_id: str,
    lease_token: str,
    error: str,
    *,
    retry_in_ms: Optional[int] = None,
    dead: bool = False,
) -> Dict[str, Any]:
    """One ``failures`` entry of a settle: the body of :func:`fail` with the id."""
    return {"id": job_id, **_failure(lease_token, error, retry_in_ms, dead)}


def _settled(data: Any) -> List[SettleResult]:
    out = []
    for r in data["results"]:
        err = r.get("error") or {}
        out.append(SettleResult(r["id"], r.get("state"), err.get("code"), err.get("message")))
    return out


def settle(
    completions: Sequence[Dict[str, Any]], failures: Sequence[Dict[str, Any]]
) -> Call[List[SettleResult]]:
    """``POST /v1/jobs/settle``: results are completions first, then failures, in order."""
    body: Dict[str, Any] = {}
    if completions:
        body["completions"] = list(completions)
    if failures:
        body["failures"] = list(failures)
    return Call(routes.SETTLE.method, routes.SETTLE.path, _settled, body)


def get_queue(queue: str) -> Call[Dict[str, Any]]:
    """``GET /v1/queues/{queue}``: counts per state and settings."""
    return Call(routes.GET_QUEUE.method, routes.GET_QUEUE.format(queue=queue), _identity)


def update_queue(queue: str, settings: Dict[str, Any]) -> Call[Dict[str, Any]]:
    """``PATCH /v1/queues/{queue}`` (``None`` values are sent: they remove a setting)."""
    return Call(
        routes.UPDATE_QUEUE.method, routes.UPDATE_QUEUE.format(queue=queue), _identity, settings
    )


def healthz() -> Call[Dict[str, Any]]:
    """``GET /healthz``."""
    return Call(routes.HEALTHZ.method, routes.HEALTHZ.path, _identity)


__all__ = ["Call", "ApiError"]
