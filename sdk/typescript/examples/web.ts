/**
 * Example web application: a `node:http` server whose sign-up handler enqueues a welcome
 * e-mail and answers at once; the e-mail is sent by examples/worker.ts.
 *
 *   ERRAND_URL=http://127.0.0.1:7878 PORT=3000 node dist-test/examples/web.js   # PORT=0: any free port
 *   curl -s -X POST localhost:3000/signup -d '{"user": 42, "email": "ada@example.com"}'
 *   curl -s localhost:3000/jobs/JOB_ID          # the job, its state and result
 *   curl -s 'localhost:3000/jobs/JOB_ID?wait=1' # waits (up to 30 s) for the job to end
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

import { BadRequestError, ErrandClient, NotFoundError, UnavailableError } from "@errand/client";

const client = new ErrandClient({ baseUrl: process.env.ERRAND_URL ?? "http://127.0.0.1:7878", timeoutMs: 5_000 });

/** Reads a request's body as JSON (at most 64 KiB). */
async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = "";
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 65_536) throw new BadRequestError("body too large", "too_large", 413);
  }
  return JSON.parse(text || "{}");
}

/** Answers with JSON. */
function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** POST /signup: store the user (not shown), enqueue the e-mail, answer 202 with the job id. */
async function signup(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = (await readJson(req)) as { user?: unknown; email?: unknown };
  if (typeof body.user !== "number") return send(res, 400, { error: "user must be a number" });
  const job = await client.enqueue({
    kind: "send_welcome_email",
    queue: "mail",
    payload: { user: body.user, email: typeof body.email === "string" ? body.email : undefined } as never,
    // The same sign-up submitted twice sends one e-mail.
    idempotency_key: `welcome-${body.user}`,
    max_attempts: 5,
    tags: ["signup"],
  });
  send(res, 202, { job: job.id, state: job.state });
}

/** GET /jobs/ID[?wait=1]: the job, or after waiting for it to end. */
async function showJob(id: string, wait: boolean, res: ServerResponse): Promise<void> {
  const job = wait ? await client.waitForJob(id, { timeoutMs: 30_000 }) : await client.getJob(id);
  send(res, 200, { id: job.id, state: job.state, attempt: job.attempt, result: job.result, error: job.error });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const job = /^\/jobs\/([^/]+)$/.exec(url.pathname);
  const route =
    req.method === "POST" && url.pathname === "/signup"
      ? signup(req, res)
      : req.method === "GET" && job?.[1]
        ? showJob(job[1], url.searchParams.has("wait"), res)
        : Promise.resolve(send(res, 404, { error: "not found" }));
  route.catch((error: unknown) => {
    if (error instanceof NotFoundError) return send(res, 404, { error: "no such job" });
    if (error instanceof BadRequestError) return send(res, 400, { error: error.message });
    if (error instanceof UnavailableError) return send(res, 503, { error: "job server unavailable, try again" });
    if (error instanceof SyntaxError) return send(res, 400, { error: "body is not JSON" });
    console.error(error);
    send(res, 500, { error: "internal error" });
  });
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(`web example on http://127.0.0.1:${typeof address === "object" && address ? address.port : port}`);
});
process.on("SIGTERM", () => server.close());
