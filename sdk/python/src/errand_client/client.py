"""The synchronous client (``httpx.Client``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, TypeVar, Union

import httpx

from . import protocol
from .models import BatchResult, ClaimedJob, Job, SettleResult
from .spec import JobSpec, make_spec
from .waiting import WaitDeadline, result_of

T = TypeVar("T")


class ErrandClient:
    """A client of one errand server.

    ``token`` is sent as ``Authorization: Bearer TOKEN`` (the server does not check tokens
    yet). ``timeout`` (seconds) bounds every call; long polls get their wait plus a margin.
    Thread-safe: one client can serve every thread of a process.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7878",
        *,
        token: Optional[str] = None,
        timeout: float = 30.0,
        max_connections: int = 100,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.Client(
            transport=transport,
            **protocol.http_settings(self.base_url, token, timeout, max_connections),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "ErrandClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, call: "protocol.Call[T]") -> T:
        """Send one prepared call and parse its answer (raises typed errors)."""
        request = protocol.build_request(self._http, call, self.timeout)
        try:
            resp = self._http.send(request)
        except httpx.HTTPError as exc:
            raise protocol.transport_error(exc) from exc
        return protocol.read_response(call, resp)

    # --- producers --------------------------------------------------------------------

    def enqueue(self, kind: Union[str, JobSpec], payload: Any = None, **options: Any) -> Job:
        """Enqueue one job: ``enqueue("send_email", {"to": ...}, queue="mail", delay="30s")``.

        ``options`` are the fields of :class:`JobSpec`; a ``JobSpec`` may be passed instead.
        """
        return self.call(protocol.enqueue(make_spec(kind, payload, options)))

    def enqueue_many(self, specs: Sequence[JobSpec]) -> BatchResult:
        """Enqueue 1 to 10,000 jobs atomically (all stored or none)."""
        return self.call(protocol.enqueue_batch(specs))

    def get_job(self, job_id: str) -> Job:
        """The job as it is now."""
        return self.call(protocol.get_job(job_id))

    def list_jobs(self, **query: Any) -> Dict[str, Any]:
        """``GET /v1/jobs`` (``queue``, ``state``, ``kind``, ``tag``, ``limit``, ``cursor``)."""
        return self.call(protocol.list_jobs(**query))

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Wait until the job ended, long-polling; raises :class:`WaitTimeout` after ``timeout`` s."""
        deadline = WaitDeadline(timeout)
        while True:
            job = self.call(protocol.get_job(job_id, deadline.next_wait_ms()))
            done = deadline.check(job)
            if done is not None:
                return done

    def result(self, job_id: str, timeout: float = 60.0) -> Any:
        """Wait for the job and return its result; :class:`JobFailed` if it did not succeed."""
        return result_of(self.wait(job_id, timeout))

    def cancel(self, job_id: str) -> Job:
        """Cancel a job that has not finished (``Conflict`` once it has)."""
        return self.call(protocol.cancel(job_id))

    def retry(self, job_id: str) -> Job:
        """Run a dead, cancelled or scheduled job again now."""
        return self.call(protocol.retry(job_id))

    def get_queue(self, queue: str) -> Dict[str, Any]:
        """A queue's counts per state and its settings."""
        return self.call(protocol.get_queue(queue))

    def update_queue(self, queue: str, **settings: Any) -> Dict[str, Any]:
        """Change a queue's settings (``backoff={"base": "10ms", "max": "1s"}``, ...)."""
        return self.call(protocol.update_queue(queue, settings))

    # --- the worker protocol ------------------------------------------------------------

    def claim(
        self,
        queue: str,
        *,
        worker: Optional[str] = None,
        max_jobs: int = 1,
        wait_ms: int = 0,
        lease_ms: Optional[int] = None,
        kinds: Optional[Sequence[str]] = None,
    ) -> List[ClaimedJob]:
        """Lease up to ``max_jobs`` jobs, waiting up to ``wait_ms`` for some."""
        return self.call(
            protocol.claim(
                queue,
                worker=worker,
                max_jobs=max_jobs,
                wait_ms=wait_ms,
                lease_ms=lease_ms,
                kinds=kinds,
            )
        )

    def heartbeat(
        self,
        job_id: str,
        lease_token: str,
        *,
        lease_ms: Optional[int] = None,
        progress: Optional[Dict[str, Any]] = None,
        checkpoint: Any = protocol.UNSET,
    ) -> Dict[str, Any]:
        """Extend a lease, report progress, save a checkpoint (any JSON, ``None`` too).

        Raises :class:`LeaseLost` when the lease is gone: stop working on the job.
        """
        return self.call(
            protocol.heartbeat(
                job_id,
                lease_token,
                lease_ms=lease_ms,
                progress=progress,
                checkpoint=checkpoint,
            )
        )

    def release(self, job_id: str, lease_token: str) -> Job:
        """Give a held job back uncounted: ``available`` at once, the attempt forgotten.

        For a worker stopping before the job ends (a ``fail`` would count the attempt).
        Raises :class:`LeaseLost` when the token no longer holds the job, :class:`NotFound`
        when there is no such job.
        """
        return self.call(protocol.release(job_id, lease_token))

    def complete(self, job_id: str, lease_token: str, result: Any = None) -> Job:
        """Complete a job with its result."""
        return self.call(protocol.complete(job_id, lease_token, result))

    def fail(
        self,
        job_id: str,
        lease_token: str,
        error: str,
        *,
        retry_in_ms: Optional[int] = None,
        dead: bool = False,
    ) -> Job:
        """Fail an attempt (server's backoff unless ``retry_in_ms``; ``dead`` ends the job)."""
        return self.call(
            protocol.fail(job_id, lease_token, error, retry_in_ms=retry_in_ms, dead=dead)
        )

    def settle(
        self,
        completions: Sequence[Dict[str, Any]] = (),
        failures: Sequence[Dict[str, Any]] = (),
    ) -> List[SettleResult]:
        """Settle many jobs in one transaction (entries from ``protocol.*_entry``)."""
        return self.call(protocol.settle(completions, failures))

    def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``."""
        return self.call(protocol.healthz())
