/**
 * Test harness: a real `errand serve` on a free loopback port with a temporary data
 * directory, stopped by its PID (SIGTERM, then SIGKILL after a grace period) in every case.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { ErrandClient } from "../src/index.js";

/** The package folder (sdk/typescript), from dist-test/test/harness.js. */
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The repository root. */
export const REPO_DIR = resolve(PACKAGE_DIR, "..", "..");

/** The errand binary: `ERRAND_BIN`, else the repository's debug build. */
export function errandBin(): string {
  const bin = process.env.ERRAND_BIN ?? join(REPO_DIR, "target", "debug", "errand");
  if (!existsSync(bin)) throw new Error(`errand binary not found at ${bin}: build it or set ERRAND_BIN`);
  return bin;
}

/** Resolves when `check` returns a truthy value; polls every `everyMs` until `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolves with `promise`, or rejects when it takes longer than `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves once it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5_000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A webhook signing secret, so jobs may carry a `callback_url`. */
const WEBHOOK_SECRET = "whsec_ZXJyYW5kLXR5cGVzY3JpcHQtc2RrLXRlc3Rz";

/** Children still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
// "exit" does not run when a signal ends the process: on SIGINT/SIGTERM kill the children,
// then die of the same signal.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    for (const child of live) child.kill("SIGKILL");
    process.kill(process.pid, signal);
  });
}

/**
 * Kills `child` when this process is gone, however it ended (SIGKILL included): a detached
 * shell polls this process's PID every second. Node has no PR_SET_PDEATHSIG; this is its
 * stand-in, so no server outlives a killed test runner.
 */
function watchdog(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; kill -0 ${process.pid} 2>/dev/null || kill -9 ${child.pid} 2>/dev/null`;
  const dog = spawn("sh", ["-c", script], { stdio: "ignore", detached: true });
  dog.unref();
}

/** Remembers a child so it never outlives the test process. */
export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** A running errand server. */
export class Server {
  /** `http://127.0.0.1:PORT`. */
  url = "";
  private child: ChildProcess | undefined;
  private readonly logPath: string;

  private constructor(readonly dataDir: string, private readonly ownsDir: boolean, private readonly args: string[] = []) {
    this.logPath = join(dataDir, "..", `${dataDir.split("/").pop()}.log`);
  }

  /** Starts a server on a free port (or `listen`) with a new (or the given) data directory and more `args`. */
  static async start(options: { dataDir?: string; listen?: string; args?: string[] } = {}): Promise<Server> {
    const dataDir = options.dataDir ?? join(mkdtempSync(join(tmpdir(), "errand-ts-")), "data");
    const server = new Server(dataDir, options.dataDir === undefined, options.args);
    await server.spawn(options.listen ?? "127.0.0.1:0");
    return server;
  }

  /** A client of this server. */
  client(): ErrandClient {
    return new ErrandClient({ baseUrl: this.url, timeoutMs: 10_000 });
  }

  /** The server's process id. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The `host:port` it listens on. */
  get address(): string {
    return this.url.replace(/^http:\/\//, "");
  }

  /** Kills the server (SIGKILL: no clean shutdown) and starts a new one on the same port and data directory. */
  async restart(options: { downMs?: number } = {}): Promise<void> {
    await this.kill("SIGKILL");
    if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
    await eventually("the port to be taken again", async () => {
      try {
        await this.spawn(this.address);
        return true;
      } catch {
        return false;
      }
    }, 15_000, 100);
  }

  /** Stops the server (SIGTERM, SIGKILL after 5 s). */
  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child !== undefined) await stopChild(this.child, 5_000, signal);
    this.child = undefined;
  }

  /** Stops the server and removes its data directory (when the harness made it). */
  async close(): Promise<void> {
    await this.kill();
    if (this.ownsDir) rmSync(dirname(this.dataDir), { recursive: true, force: true });
  }

  /** The server's log so far (for failure messages). */
  log(): string {
    try {
      return readFileSync(this.logPath, "utf8").slice(-4000);
    } catch {
      return "";
    }
  }

  private async spawn(listen: string): Promise<void> {
    const log = openSync(this.logPath, "a");
    const child = track(
      spawn(errandBin(), ["serve", "--listen", listen, "--data-dir", this.dataDir, "--webhook-secret", WEBHOOK_SECRET, ...this.args], {
        stdio: ["ignore", "pipe", log],
      }),
    );
    watchdog(child);
    closeSync(log);
    const lines = createInterface({ input: child.stdout! });
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error("errand did not say where it listens within 30 s")), 30_000);
      lines.on("line", (line) => {
        const match = /^errand listening on (http:\/\/\S+)/.exec(line);
        if (match?.[1]) {
          clearTimeout(timer);
          resolveUrl(match[1]);
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`errand exited (${code ?? signal}) before listening:\n${this.log()}`));
      });
    });
    // Keep draining stdout so the server never blocks on a full pipe.
    lines.on("line", () => undefined);
    this.child = child;
    this.url = url;
  }
}

/** Starts a server for a test, and stops it afterwards whatever happens. */
export async function withServer<T>(body: (server: Server) => Promise<T>): Promise<T> {
  const server = await Server.start();
  try {
    return await body(server);
  } catch (error) {
    const log = server.log();
    if (log) console.error(`--- errand server log (tail) ---\n${log}`);
    throw error;
  } finally {
    await server.close();
  }
}

/** A queue name of its own for each test. */
export function queueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
}
