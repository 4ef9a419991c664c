"""The library against the server's own description of itself (``/v1/openapi.json``):
every route it calls exists with that method, and the body fields it sends and the answer
fields it reads are in the schemas."""

from __future__ import annotations

from typing import Any, Dict, Set

import httpx
import pytest

from conftest import Server
from errand_client import protocol
from errand_client.routes import ROUTES
from errand_client.spec import ENQUEUE_FIELDS


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
    assert len(ROUTES) >= 14
    missing = [
        f"{r.method} {r.path}"
        for r in ROUTES.values()
        if r.method.lower() not in openapi["paths"].get(r.path, {})
    ]
    assert missing == []


def test_request_bodies_use_only_known_fields(openapi: Dict[str, Any]) -> None:
    assert set(ENQUEUE_FIELDS) <= properties(openapi, "EnqueueRequest")
    assert set(protocol.CLAIM_FIELDS) <= properties(openapi, "ClaimRequest")
    assert set(protocol.HEARTBEAT_FIELDS) <= properties(openapi, "HeartbeatRequest")
    assert set(protocol.COMPLETE_FIELDS) <= properties(openapi, "CompleteRequest")
    assert set(protocol.FAIL_FIELDS) <= properties(openapi, "FailRequest")
    assert set(protocol.SETTLE_COMPLETION_FIELDS) <= properties(openapi, "SettleCompletion")
    assert set(protocol.SETTLE_FAILURE_FIELDS) <= properties(openapi, "SettleFailure")
    assert {"completions", "failures"} <= properties(openapi, "SettleRequest")
    assert {"jobs"} <= properties(openapi, "BatchEnqueueRequest")
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
