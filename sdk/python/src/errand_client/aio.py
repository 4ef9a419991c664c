"""The asyncio client (``httpx.AsyncClient``): the same calls as :class:`ErrandClient`."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, TypeVar, Union

import httpx

from . import protocol
from .models import BatchResult, ClaimedJob, Job, SettleResult
from .spec import JobSpec, make_spec
from .waiting import WaitDeadline, result_of

T = TypeVar("T")


class AsyncErrandClient:
    """An asyncio client of one errand server: the calls of :class:`ErrandClient`, awaited.

    ``token``, ``timeout`` and ``max_connections`` are as there; use one client per event
    loop.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7878",
        *,
        token: Optional[str] = None,
        timeout: float = 30.0,
        max_connections: int = 100,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            transport=transport,
            **protocol.http_settings(self.base_url, token, timeout, max_connections),
        )

    @classmethod
    def like(cls, client: Any, max_connections: int = 4) -> "AsyncErrandClient":
        """An async client with the settings of a sync :class:`ErrandClient`: base URL,
        token, timeout and every header it sends (the threaded worker claims with one)."""
        out = cls(client.base_url, token=client.token, timeout=client.timeout, max_connections=max_connections)
        out._http.headers.update(client._http.headers)
        return out

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncErrandClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, call: "protocol.Call[T]") -> T:
        """Send one prepared call and parse its answer (raises typed errors)."""
        request = protocol.build_request(self._http, call, self.timeout)
        try:
            resp = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise protocol.transport_error(exc) from exc
        return protocol.read_response(call, resp)

    # --- producers --------------------------------------------------------------------

    async def enqueue(self, kind: Union[str, JobSpec], payload: Any = None, **options: Any) -> Job:
        """Enqueue one job: ``enqueue("send_email", {"to": ...}, queue="mail", delay="30s")``.

        ``options`` are the fields of :class:`JobSpec`; a ``JobSpec`` may be passed instead.
        """
        return await self.call(protocol.enqueue(make_spec(kind, payload, options)))

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> BatchResult:
        """Enqueue 1 to 10,000 jobs atomically (all stored or none)."""
        return await self.call(protocol.enqueue_batch(specs))

    async def get_job(self, job_id: str) -> Job:
        """The job as it is now."""
        return await self.call(protocol.get_job(job_id))

    async def list_jobs(self, **query: Any) -> Dict[str, Any]:
        """``GET /v1/jobs`` (``queue``, ``state``, ``kind``, ``tag``, ``limit``, ``cursor``)."""
        return await self.call(protocol.list_jobs(**query))

    async def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Wait until the job ended, long-polling; raises :class:`WaitTimeout` after ``timeout`` s."""
        deadline = WaitDeadline(timeout)
        while True:
            job = await self.call(protocol.get_job(job_id, deadline.next_wait_ms()))
            done = deadline.check(job)
            if done is not None:
                return done

    async def result(self, job_id: str, timeout: float = 60.0) -> Any:
        """Wait for the job and return its result; :class:`JobFailed` if it did not succeed."""
        return result_of(await self.wait(job_id, timeout))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job that has not finished (``Conflict`` once it has)."""
        return await self.call(protocol.cancel(job_id))

    async def retry(self, job_id: str) -> Job:
        """Run a dead, cancelled or scheduled job again now."""
        return await self.call(protocol.retry(job_id))

    async def get_queue(self, queue: str) -> Dict[str, Any]:
        """A queue's counts per state and its settings."""
        return await self.call(protocol.get_queue(queue))

    async def update_queue(self, queue: str, **settings: Any) -> Dict[str, Any]:
        """Change a queue's settings (``backoff={"base": "10ms", "max": "1s"}``, ...)."""
        return await self.call(protocol.update_queue(queue, settings))

    # --- the worker protocol ------------------------------------------------------------

    async def claim(
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
        return await self.call(
            protocol.claim(
                queue,
                worker=worker,
                max_jobs=max_jobs,
                wait_ms=wait_ms,
                lease_ms=lease_ms,
                kinds=kinds,
            )
        )

    async def heartbeat(
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
        return await self.call(
            protocol.heartbeat(
                job_id,
                lease_token,
                lease_ms=lease_ms,
                progress=progress,
                checkpoint=checkpoint,
            )
        )

    async def release(self, job_id: str, lease_token: str) -> Job:
        """Give a held job back uncounted: ``available`` at once, the attempt forgotten.

        For a worker stopping before the job ends (a ``fail`` would count the attempt).
        Raises :class:`LeaseLost` when the token no longer holds the job, :class:`NotFound`
        when there is no such job.
        """
        return await self.call(protocol.release(job_id, lease_token))

    async def complete(self, job_id: str, lease_token: str, result: Any = None) -> Job:
        """Complete a job with its result."""
        return await self.call(protocol.complete(job_id, lease_token, result))

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        error: str,
        *,
        retry_in_ms: Optional[int] = None,
        dead: bool = False,
    ) -> Job:
        """Fail an attempt (server's backoff unless ``retry_in_ms``; ``dead`` ends the job)."""
        return await self.call(
            protocol.fail(job_id, lease_token, error, retry_in_ms=retry_in_ms, dead=dead)
        )

    async def settle(
        self,
        completions: Sequence[Dict[str, Any]] = (),
        failures: Sequence[Dict[str, Any]] = (),
    ) -> List[SettleResult]:
        """Settle many jobs in one transaction (entries from ``protocol.*_entry``)."""
        return await self.call(protocol.settle(completions, failures))

    async def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``."""
        return await self.call(protocol.healthz())
