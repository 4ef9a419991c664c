"""An example web application (stdlib ``http.server``) that hands work to errand.

    python examples/webapp.py --url http://127.0.0.1:7878 --port 8000
    curl -s -X POST localhost:8000/signup -d '{"email": "ada@example.com"}'
    curl -s 'localhost:8000/jobs/<id>?wait=10'

``POST /signup`` enqueues a welcome email (idempotent per address, so a double click sends
one) and answers ``202`` at once; ``GET /jobs/<id>`` shows the job, ``?wait=S`` waits for it.
Run ``examples/worker.py`` beside it to do the work.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Tuple
from urllib.parse import parse_qs, urlparse

from errand_client import ErrandClient, ErrandError, NotFound, Unavailable, WaitTimeout


def build_server(client: ErrandClient, host: str, port: int, queue: str = "mail") -> ThreadingHTTPServer:
    """The application's HTTP server, enqueueing through ``client``."""

    class App(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/signup":
                return self._send(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            try:
                email = json.loads(self.rfile.read(length) or b"{}")["email"]
            except (ValueError, KeyError):
                return self._send(400, {"error": "send {\"email\": ...}"})
            try:
                job = client.enqueue(
                    "email.send",
                    {"to": email, "template": "welcome"},
                    queue=queue,
                    idempotency_key=f"welcome:{email}",
                    max_attempts=5,
                    tags=["signup"],
                )
            except Unavailable:
                return self._send(503, {"error": "try again shortly"})
            self._send(202, {"job": job.id, "state": job.state})

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if not url.path.startswith("/jobs/"):
                return self._send(404, {"error": "not found"})
            job_id = url.path[len("/jobs/"):]
            wait = float(parse_qs(url.query).get("wait", ["0"])[0])
            try:
                job = client.wait(job_id, timeout=wait) if wait > 0 else client.get_job(job_id)
            except WaitTimeout as exc:
                job = exc.job
            except NotFound:
                return self._send(404, {"error": "no such job"})
            except ErrandError as exc:
                return self._send(502, {"error": str(exc)})
            self._send(200, {"id": job.id, "state": job.state, "result": job.result, "error": job.error})

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), App)


def address(server: ThreadingHTTPServer) -> Tuple[str, int]:
    """Where the server listens."""
    host, port = server.server_address[:2]
    return str(host), int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description="errand example web app")
    parser.add_argument("--url", default=os.environ.get("ERRAND_URL", "http://127.0.0.1:7878"))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with ErrandClient(args.url) as client:
        server = build_server(client, "127.0.0.1", args.port)
        print(f"web app on http://127.0.0.1:{address(server)[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
