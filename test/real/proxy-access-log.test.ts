// The proxy's access log as real nginx writes it with prod's rendered
// configuration, every write(2) seen by strace: lines go out in batches of at
// most PIPE_BUF (4 KiB: atomic on docker's stdout pipe, so several workers'
// lines never interleave), not one write per request (bench:proxy measured that
// at about 7 % of the proxy's CPU), and every request's line still arrives,
// whole, without more traffic to push it out.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MAIN_CONF } from "../../infra/proxy/contract.js";
import type { ProxyLayout } from "../../infra/proxy/render.js";
import { nginxBinary, prodOnLoopback } from "../support/nginx.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const REQUESTS = 60;
const PIPE_BUF = 4096;

describe("the proxy's access log, written by real nginx under strace", () => {
  const dir = tempDir("access-log");
  const trace = join(dir.path, "strace.out");
  let layout: ProxyLayout;
  let upstream: Server;
  let tracer: ChildProcess;
  const host = "localhost";

  before(async () => {
    const strace = requireCommand("strace", "strace");
    upstream = createServer((_req, res) => res.end('{"status":"UP"}'));
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const port = (upstream.address() as { port: number }).port;
    layout = await prodOnLoopback(dir.path, host, port);
    // -y names each descriptor's file, so the access log's writes can be told from the rest.
    tracer = spawn(strace, ["-f", "-y", "-qq", "-e", "trace=write,writev,pwrite64", "-o", trace, nginxBinary(), "-p", layout.runtimeDir, "-e", layout.errorLog, "-c", join(layout.confDir, MAIN_CONF), "-g", "daemon off;"], { stdio: "ignore" });
    await waitFor("nginx under strace to answer", () => get().then((s) => s === 200), 20_000);
  });

  after(async () => {
    if (existsSync(layout.pidFile)) process.kill(Number(readFileSync(layout.pidFile, "utf8")), "SIGQUIT");
    await new Promise((resolve) => (tracer.exitCode === null ? tracer.once("exit", resolve) : resolve(null)));
    await new Promise((resolve) => upstream.close(resolve));
    dir.remove();
  });

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  function get(path = "/"): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: layout.listen.https, path, servername: host, headers: { host }, rejectUnauthorized: false, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end();
    });
  }

  it(`writes ${REQUESTS} requests' lines in a few writes of at most ${PIPE_BUF} bytes, each line whole`, async () => {
    for (let i = 0; i < REQUESTS; i++) assert.equal(await get(`/bench/${i}`), 200);
    const lines = () => readFileSync(layout.accessLog, "utf8").split("\n").filter((l) => l.includes('"GET /bench/'));
    // No further request comes: the flush timer alone must bring the last lines out.
    await waitFor(`all ${REQUESTS} lines in the access log`, () => lines().length === REQUESTS, 10_000);
    for (const line of lines()) assert.match(line, /^127\.0\.0\.1 localhost \[[^\]]+\] "GET \/bench\/\d+ HTTP\/1\.1" 200 .* request_id=\d+\.\d{3}-\d+-\d+$/);
    const writes = readFileSync(trace, "utf8")
      .split("\n")
      .filter((l) => /^\d+ +(write|writev|pwrite64)\(\d+<[^>]*access\.log>/.test(l))
      .map((l) => Number(/= (\d+)$/.exec(l)?.[1] ?? NaN));
    assert.ok(writes.length > 0, "strace saw no write to the access log");
    assert.ok(writes.length <= REQUESTS / 10, `${writes.length} writes to the access log for ${REQUESTS} requests: lines are not batched`);
    for (const size of writes) assert.ok(size <= PIPE_BUF, `a write of ${size} bytes to the access log: more than PIPE_BUF is not atomic on docker's stdout pipe`);
  });
});
