/**
 * A parser of `text/event-stream` (server-sent events) over a byte stream, following the
 * HTML standard's rules: lines end in CRLF, LF or CR; `data:` lines join with `\n`; a blank
 * line dispatches; lines starting with `:` are comments; one space after the colon is dropped.
 */

/** One dispatched message of the stream. */
export interface SseMessage {
  /** The `event:` field, `message` when there was none. */
  event: string;
  /** The `data:` lines joined with newlines. */
  data: string;
  /** The last `id:` seen so far in the stream (it persists across messages), if any. */
  id: string | undefined;
}

/** Turns text chunks into messages; feed it with {@link SseParser.push}. */
export class SseParser {
  private buffer = "";
  private lastId: string | undefined;
  private event = "";
  private data: string[] = [];
  private sawData = false;
  private pendingCr = false;

  /** Feeds decoded text; returns the messages completed by it. */
  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    let chunk = text;
    if (this.pendingCr && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.pendingCr = false;
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) {
        this.pendingCr = true;
      }
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message !== undefined) out.push(message);
    }
    return out;
  }

  /** The id of the last `id:` field seen (what to send as `Last-Event-ID`). */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  private line(line: string): SseMessage | undefined {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.sawData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
        // `retry` and unknown fields: nothing this library uses.
        break;
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    const event = this.event || "message";
    const data = this.data.join("\n");
    const had = this.sawData;
    this.event = "";
    this.data = [];
    this.sawData = false;
    if (!had) return undefined;
    return { event, data, id: this.lastId };
  }
}

/** Raised by {@link parseSse} when the stream stays silent longer than its idle timeout. */
export class IdleTimeout extends Error {
  constructor(readonly idleMs: number) {
    super(`no data on the event stream for ${idleMs} ms`);
    this.name = "IdleTimeout";
  }
}

/** One read, or an {@link IdleTimeout} rejection when nothing arrives within `idleMs`. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number | undefined,
): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>> {
  if (idleMs === undefined) return reader.read();
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new IdleTimeout(idleMs)), idleMs);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads a byte stream to its end, yielding each message as it completes. With `idleMs`, a
 * stream that sends nothing (not even a comment) for that long throws {@link IdleTimeout}
 * and is cancelled: a half-open connection does not hang the reader forever.
 */
export async function* parseSse(body: ReadableStream<Uint8Array>, idleMs?: number): AsyncGenerator<SseMessage> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await readWithin(reader, idleMs);
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    // Closes the connection when the consumer stops early; harmless after the end.
    await reader.cancel().catch(() => undefined);
  }
}
