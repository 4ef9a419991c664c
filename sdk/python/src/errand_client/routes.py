"""Every HTTP route the library calls, in one place.

The contract test reads :data:`ROUTES` and checks each one against the server's OpenAPI
document, so a call added to the library must be added here first.
"""

from __future__ import annotations

from typing import Dict, NamedTuple
from urllib.parse import quote


class Route(NamedTuple):
    """One endpoint: its method and its path template (OpenAPI spelling)."""

    method: str
    path: str

    def format(self, **params: str) -> str:
        """The path with its ``{name}`` parameters filled in, each percent-encoded."""
        return self.path.format(**{k: quote(str(v), safe="") for k, v in params.items()})


ENQUEUE = Route("POST", "/v1/jobs")
ENQUEUE_BATCH = Route("POST", "/v1/jobs/batch")
GET_JOB = Route("GET", "/v1/jobs/{id}")
LIST_JOBS = Route("GET", "/v1/jobs")
CANCEL = Route("POST", "/v1/jobs/{id}/cancel")
RETRY = Route("POST", "/v1/jobs/{id}/retry")
CLAIM = Route("POST", "/v1/queues/{queue}/claim")
HEARTBEAT = Route("POST", "/v1/jobs/{id}/heartbeat")
RELEASE = Route("POST", "/v1/jobs/{id}/release")
COMPLETE = Route("POST", "/v1/jobs/{id}/complete")
FAIL = Route("POST", "/v1/jobs/{id}/fail")
SETTLE = Route("POST", "/v1/jobs/settle")
GET_QUEUE = Route("GET", "/v1/queues/{queue}")
UPDATE_QUEUE = Route("PATCH", "/v1/queues/{queue}")
HEALTHZ = Route("GET", "/healthz")

#: Every route, by name. The contract test iterates over this.
ROUTES: Dict[str, Route] = {
    name: value for name, value in globals().items() if isinstance(value, Route)
}
