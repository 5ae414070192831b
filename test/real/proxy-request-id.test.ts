// The request id of prod's rendered proxy configuration, run by real nginx:
// the same id reaches the app (X-Request-ID), the client (X-Request-ID) and
// the request's access log line, and no two requests share one, also across
// a reload (every blue/green switch reloads: new workers, nginx's connection
// counter kept by the master) and a restart (a new master: the counter starts
// at 1 again). nginx runs as pid 1 of its own pid namespace, as in the
// container.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MAIN_CONF } from "../../infra/proxy/contract.js";
import type { ProxyLayout } from "../../infra/proxy/render.js";
import { nginxBinary, prodOnLoopback } from "../support/nginx.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const HOST = "localhost";
/** <msec>-<connection>-<request on the connection>. */
const REQUEST_ID = /^(\d+\.\d{3})-(\d+)-(\d+)$/;

interface Seen {
  path: string;
  /** What the client got in X-Request-ID. */
  client: string;
  /** What the app got in X-Request-ID. */
  app: string;
}

const parts = (id: string) => {
  const m = REQUEST_ID.exec(id);
  assert.ok(m, `request id "${id}" is not <msec>-<connection>-<request>`);
  return { connection: Number(m[2]) };
};

describe("the request id of prod's proxy configuration, in real nginx", () => {
  const dir = tempDir("request-id");
  let layout: ProxyLayout;
  let upstream: Server;
  /** unshare, whose child is nginx's master (pid 1 in its namespace). */
  let namespace: ChildProcess | undefined;
  const seen: Seen[] = [];

  /** Starts nginx as pid 1 of a new pid namespace, as the container runs it. */
  async function startInNamespace(): Promise<void> {
    const unshare = requireCommand("unshare", "util-linux");
    namespace = spawn(unshare, ["--pid", "--fork", "--kill-child", nginxBinary(), "-p", layout.runtimeDir, "-e", layout.errorLog, "-c", join(layout.confDir, MAIN_CONF), "-g", "daemon off;"], { stdio: "ignore" });
    await waitFor("nginx in its pid namespace to answer", () => send("/ready", new Agent()).then(() => true, () => false), 20_000);
  }

  const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);

  /** nginx's master as this side of the namespace sees it: unshare's one child. */
  function masterPid(): number {
    const children = childrenOf(namespace!.pid!);
    assert.equal(children.length, 1, `unshare should have one child, nginx's master: ${children.join(" ")}`);
    return children[0]!;
  }

  async function stopNamespace(): Promise<void> {
    if (!namespace || namespace.exitCode !== null) return;
    const exited = new Promise((resolve) => namespace!.once("exit", resolve));
    process.kill(masterPid(), "SIGQUIT");
    await exited;
  }

  function send(path: string, agent: Agent): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: layout.listen.https, path, servername: HOST, headers: { host: HOST }, rejectUnauthorized: false, agent }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`${path}: ${res.statusCode} ${body}`));
          resolve({ path, client: String(res.headers["x-request-id"]), app: (JSON.parse(body) as { requestId: string }).requestId });
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** `perConnection` requests on each of `connections` kept-alive connections, all recorded. */
  async function requests(phase: string, connections: number, perConnection: number): Promise<Seen[]> {
    const batch = await Promise.all(
      Array.from({ length: connections }, async (_, c) => {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const mine: Seen[] = [];
        for (let i = 0; i < perConnection; i++) mine.push(await send(`/${phase}/${c}/${i}`, agent));
        agent.destroy();
        return mine;
      }),
    );
    seen.push(...batch.flat());
    return batch.flat();
  }

  before(async () => {
    upstream = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ requestId: req.headers["x-request-id"] ?? null }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    layout = await prodOnLoopback(dir.path, HOST, (upstream.address() as { port: number }).port);
    await startInNamespace();
  });

  after(async () => {
    await stopNamespace();
    await new Promise((resolve) => upstream.close(resolve));
    dir.remove();
  });

  it("gives the app, the client and the access log line the same id, one per request", async () => {
    const batch = await requests("first", 4, 5);
    for (const s of batch) {
      parts(s.client);
      assert.equal(s.app, s.client, `${s.path}: the app got ${s.app}, the client ${s.client}`);
    }
    // Kept-alive requests on one connection differ in their last part only.
    assert.equal(new Set(batch.map((s) => s.client)).size, batch.length, "two requests got the same id");
    const lines = () => readFileSync(layout.accessLog, "utf8").split("\n");
    // Lines are buffered: they arrive within the flush interval (1 s).
    await waitFor("every request's access log line", () => batch.every((s) => lines().some((l) => l.includes(`"GET ${s.path} `))), 5_000);
    for (const s of batch) {
      const line = lines().find((l) => l.includes(`"GET ${s.path} `))!;
      assert.ok(line.endsWith(` request_id=${s.client}`), `the log line of ${s.path} does not end with its id ${s.client}: ${line}`);
    }
  });

  it("keeps ids unique across a reload: new workers go on counting the connections", async () => {
    const before = seen.map((s) => parts(s.client).connection);
    const master = masterPid();
    const oldWorkers = childrenOf(master);
    process.kill(master, "SIGHUP");
    // The old workers leave once their connections are closed (the batches closed theirs).
    await waitFor("the reload's workers, and only them", () => childrenOf(master).every((pid) => !oldWorkers.includes(pid)), 10_000);
    const batch = await requests("reloaded", 4, 5);
    const after = batch.map((s) => parts(s.client).connection);
    // What the id's uniqueness across reloads rests on (the master keeps the counter's shared zone).
    assert.ok(Math.min(...after) > Math.max(...before), `connection numbers after the reload (${after.join(" ")}) start over below those before (${before.join(" ")})`);
    for (const s of batch) assert.equal(s.app, s.client);
    assert.equal(new Set(seen.map((s) => s.client)).size, seen.length, "a request after the reload got the id of one before it");
  });

  it("keeps ids unique across a restart, where the connection numbers come back", async () => {
    const before = seen.map((s) => parts(s.client).connection);
    await stopNamespace();
    await startInNamespace();
    const batch = await requests("restarted", 4, 5);
    const after = batch.map((s) => parts(s.client).connection);
    assert.ok(
      after.some((a) => before.includes(a)),
      "no connection number came back after the restart: this test no longer shows the case only the time part tells apart",
    );
    for (const s of batch) assert.equal(s.app, s.client);
    assert.equal(new Set(seen.map((s) => s.client)).size, seen.length, "a request after the restart got the id of one before it");
  });
});
