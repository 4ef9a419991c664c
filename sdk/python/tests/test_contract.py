"""The library against the server's own description of itself (``/v1/openapi.json``):
every route it calls exists with that method, and the body fields it sends and the answer
fields it reads are in the schemas."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict, Set

import httpx
import pytest

from conftest import Server
from errand_client import protocol
from errand_client.routes import ROUTES
from errand_client.spec import JobSpec


@pytest.fixture(scope="module")
def openapi(server: Server) -> Dict[str, Any]:
    return httpx.get(server.url + "/v1/openapi.json", timeout=30).json()


def schema(doc: Dict[str, Any], name: str) -> Dict[str, Any]:
    return doc["components"]["schemas"][name]


def properties(doc: Dict[str, Any], name: str) -> Set[str]:
    """Property names of a schema, through ``allOf`` parts."""
    s = schema(doc, name)
    out: Set[str] = set(s.get("properties", {}))
    for part in s.get("allOf", []):
        out |= set(part.get("properties", {}))
    return out


def required(doc: Dict[str, Any], name: str) -> Set[str]:
    s = schema(doc, name)
    out: Set[str] = set(s.get("required", []))
    for part in s.get("allOf", []):
        out |= set(part.get("required", []))
    return out


def test_every_route_the_library_calls_exists(openapi: Dict[str, Any]) -> None:
    assert len(ROUTES) >= 15 and "RELEASE" in ROUTES
    missing = [
        f"{r.method} {r.path}"
        for r in ROUTES.values()
        if r.method.lower() not in openapi["paths"].get(r.path, {})
    ]
    assert missing == []


def _every_option_spec() -> JobSpec:
    """A JobSpec with every field set (a value of the field's kind), so that its body holds
    every field the library can send."""
    values: Dict[str, Any] = {"kind": "k", "run_at": "2030-01-01T00:00:00Z", "delay": 1000, "timeout": 1000}
    for f in fields(JobSpec):
        values.setdefault(f.name, ["x"] if f.name in ("tags", "after") else 1)
    return JobSpec(**values)


def test_request_bodies_use_only_known_fields(openapi: Dict[str, Any]) -> None:
    # the bodies the library builds, with every option given, not a hand-kept list
    every = _every_option_spec().to_json()
    assert set(every) == {f.name for f in fields(JobSpec)}
    assert set(every) <= properties(openapi, "EnqueueRequest")
    assert set(protocol.enqueue_batch([_every_option_spec()]).body or {}) <= properties(
        openapi, "BatchEnqueueRequest"
    )
    claim = protocol.claim("q", worker="w", max_jobs=2, wait_ms=10, lease_ms=1000, kinds=["k"])
    assert set(claim.body or {}) <= properties(openapi, "ClaimRequest")
    beat = protocol.heartbeat("j", "t", lease_ms=1, progress={"percent": 1, "message": "m"}, checkpoint=1)
    assert len(beat.body or {}) == 4 and set(beat.body or {}) <= properties(openapi, "HeartbeatRequest")
    assert set(protocol.complete("j", "t", 1).body or {}) <= properties(openapi, "CompleteRequest")
    assert set(protocol.release("j", "t").body or {}) == required(openapi, "ReleaseRequest")
    fail = protocol.fail("j", "t", "e", retry_in_ms=1, dead=True).body or {}
    assert len(fail) == 4 and set(fail) <= properties(openapi, "FailRequest")
    done = protocol.completion_entry("j", "t", 1)
    failed = protocol.failure_entry("j", "t", "e", retry_in_ms=1, dead=True)
    assert set(done) <= properties(openapi, "SettleCompletion")
    assert len(failed) == 5 and set(failed) <= properties(openapi, "SettleFailure")
    assert set(protocol.settle([done], [failed]).body or {}) <= properties(openapi, "SettleRequest")
    assert {"backoff"} <= properties(openapi, "QueueSettingsPatch")


def test_answer_fields_the_library_needs_are_always_there(openapi: Dict[str, Any]) -> None:
    assert {"id", "kind", "queue", "state", "attempt", "max_attempts"} <= required(openapi, "Job")
    assert {"id", "kind", "queue", "payload", "attempt", "max_attempts", "lease_token"} <= required(
        openapi, "ClaimedJobView"
    )
    assert {"checkpoint", "timeout_ms", "tags"} <= properties(openapi, "ClaimedJobView")
    assert {"jobs"} <= required(openapi, "ClaimResponse")
    assert {"jobs", "inserted"} <= required(openapi, "BatchEnqueueResponse")
    assert {"id", "state", "inserted"} <= required(openapi, "EnqueuedJob")
    assert {"results"} <= required(openapi, "SettleResponse")
    assert {"id"} <= required(openapi, "SettleResult") and {"state", "error"} <= properties(
        openapi, "SettleResult"
    )
    assert {"code", "message"} <= required(openapi, "ErrorDetail")
    assert {"counts"} <= required(openapi, "QueueInfo")


def test_get_job_takes_wait(openapi: Dict[str, Any]) -> None:
    params = openapi["paths"]["/v1/jobs/{id}"]["get"].get("parameters", [])
    assert "wait" in {p["name"] for p in params if p["in"] == "query"}
