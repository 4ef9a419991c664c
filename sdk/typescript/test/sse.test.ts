/** The server-sent events parser (pure: no server needed). */

import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, parseSse } from "../src/sse.js";

test("messages split across chunks at any byte, with CRLF, LF and CR line ends", () => {
  const text = "id: 1-1\r\nevent: job.enqueued\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\nid: 1-2\rdata: x\rdata: y\r\r";
  for (let cut = 0; cut <= text.length; cut += 1) {
    const parser = new SseParser();
    const messages = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
    assert.deepEqual(messages, [
      { event: "job.enqueued", data: '{"a":1}', id: "1-1" },
      { event: "message", data: "x\ny", id: "1-2" },
    ], `cut at ${cut}`);
    assert.equal(parser.lastEventId, "1-2");
  }
});

test("comments and blocks without data dispatch nothing; one leading space is dropped", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push(":comment\n\nevent: gap\n\ndata:  two spaces\n\n"), [
    { event: "message", data: " two spaces", id: undefined },
  ]);
});

test("parseSse reads a byte stream, multi-byte characters split across chunks included", async () => {
  const bytes = new TextEncoder().encode("data: héllo ✓\n\n");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
      controller.close();
    },
  });
  const out = [];
  for await (const message of parseSse(stream)) out.push(message.data);
  assert.deepEqual(out, ["héllo ✓"]);
});
