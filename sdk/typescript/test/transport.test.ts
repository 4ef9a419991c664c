/**
 * Bounds and error types of calls: 413 as its own type against a real server, and timeouts
 * that must fire against a peer that accepts and then says nothing (a half-open connection,
 * a hung proxy), which a healthy errand never is, so a silent local server stands in.
 */

import assert from "node:assert/strict";
import { type Server as HttpServer, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";

import { ErrandClient, PayloadTooLargeError, TimeoutError } from "../src/index.js";
import { Lease } from "../src/lease.js";
import { IdleTimeout } from "../src/sse.js";
import type { ClaimedJob } from "../src/types.js";
import { Server, queueName, within } from "./harness.js";

/** An HTTP server on loopback; `respond` decides what (if anything) each request gets. */
async function silentServer(respond: (res: import("node:http").ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server: HttpServer = createServer((_req, res) => respond(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("transport bounds", () => {
  test("a body over max_request_bytes is a PayloadTooLargeError", async () => {
    const server = await Server.start({ args: ["--max-request-bytes", "2000"] });
    try {
      const client = server.client();
      await assert.rejects(
        client.enqueue({ kind: "big", queue: queueName("big"), payload: { blob: "x".repeat(5_000) } }),
        (error: unknown) => error instanceof PayloadTooLargeError && error.status === 413 && error.code === "payload_too_large",
      );
    } finally {
      await server.close();
    }
  });

  test("a heartbeat that gets no answer gives up within the heartbeat interval, not the client's 30 s", async () => {
    const peer = await silentServer(() => undefined);
    try {
      const client = new ErrandClient({ baseUrl: peer.url, timeoutMs: 30_000 });
      const job = { id: "j1", lease_token: "t1" } as ClaimedJob;
      const lease = new Lease(client, job, { leaseMs: 3_000, intervalMs: 1_000 }, Date.now());
      await assert.rejects(within(2_500, "the heartbeat to time out", lease.beat()), TimeoutError);
      lease.stop();
    } finally {
      await peer.close();
    }
  });

  test("an event stream that goes silent is dropped after idleTimeoutMs and reconnected", async () => {
    let connections = 0;
    const peer = await silentServer((res) => {
      connections += 1;
      // Headers, then nothing at all: not even the keep-alive comments errand sends.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
    });
    const stop = new AbortController();
    const reasons: unknown[] = [];
    try {
      const client = new ErrandClient({ baseUrl: peer.url });
      const stream = client.events({}, { signal: stop.signal, idleTimeoutMs: 300, reconnect: { baseMs: 10, maxMs: 20 }, onReconnect: (e) => reasons.push(e) });
      const reading = (async () => {
        for await (const _ of stream) {
          // nothing arrives
        }
      })();
      await within(5_000, "two idle timeouts", (async () => {
        while (reasons.filter((r) => r instanceof IdleTimeout).length < 2) await new Promise((r) => setTimeout(r, 50));
      })());
      assert.ok(connections >= 2, `reconnected (${connections} connections)`);
      stop.abort();
      await reading;
    } finally {
      stop.abort();
      await peer.close();
    }
  });
});
