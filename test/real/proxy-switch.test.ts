// The blue/green switch on real nginx: the activation script rewrites a stack's
// upstream file, nginx -t judges it, nginx reloads gracefully. Under continuous
// load, 20 alternating switches drop nothing; a naive stop-old/start-new does.
// A configuration nginx refuses is never activated.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, createServer, request, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { activationScript, renderMainConf, renderStackConf, renderUpstreams, upstreamVariable } from "../../infra/proxy/render.js";
import { nginxBinary, startNginx, type Nginx } from "../support/nginx.js";
import { freePort, requireCommand, tempDir } from "../support/system.js";

const HOST = "api.bbaegok.kr";
const VARIABLE = upstreamVariable("prod", "api");

function slotServer(name: string, port = 0): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      // Some requests are slow, so switches happen while responses are in flight.
      const delay = req.url?.includes("slow") ? 150 : 0;
      req.resume();
      req.on("end", () => setTimeout(() => res.end(name), delay));
    });
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}
const portOf = (s: Server) => {
  const a = s.address();
  return typeof a === "object" && a ? a.port : 0;
};
const close = (s: Server) =>
  new Promise<void>((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });

describe("switching the live slot with real nginx", () => {
  const dir = tempDir("switch");
  const confDir = join(dir.path, "conf");
  const runtimeDir = join(dir.path, "run");
  const upstreamFile = join(confDir, "upstreams", "prod.conf");
  let nginx: Nginx;
  let httpPort = 0;
  let blue: Server;
  let green: Server;
  let activate: (content: string) => { status: number; stderr: string };

  before(async () => {
    requireCommand("flock", "util-linux");
    for (const sub of ["conf.d", "upstreams"]) mkdirSync(join(confDir, sub), { recursive: true });
    httpPort = await freePort();
    const where = { confDir, runtimeDir, address: "127.0.0.1", httpPort, httpsPort: await freePort() };
    writeFileSync(join(confDir, "nginx.conf"), renderMainConf({ ...where, resolver: "127.0.0.1", realIpFrom: [], workerShutdownTimeout: "30s" }));
    // Plain HTTP in front of the slots keeps the test about the switch, not TLS.
    const stackConf = renderStackConf({ ...where, stack: "prod", hosts: [{ name: HOST, upstreamVariable: VARIABLE, allowFrom: [] }], clientMaxBodySize: "20m" })
      .replace(/server \{\n {4}listen [^\n]+;\n {4}server_name [^\n]+;\n {4}return 301[^}]+\}\n\n/, "")
      .replace(/listen (\S+) ssl http2;/, `listen 127.0.0.1:${httpPort};`)
      .replace(/ {4}ssl_certificate[^\n]+\n/g, "");
    writeFileSync(join(confDir, "conf.d", "prod.conf"), stackConf);
    blue = await slotServer("blue");
    green = await slotServer("green");
    writeFileSync(upstreamFile, renderUpstreams("prod", [{ variable: VARIABLE, address: `127.0.0.1:${portOf(blue)}` }]));
    nginx = await startNginx(join(confDir, "nginx.conf"), runtimeDir, httpPort);
    const nginxCmd = `${nginxBinary()} -p ${runtimeDir} -e ${runtimeDir}/error.log -c ${confDir}/nginx.conf`;
    const script = activationScript(upstreamFile, join(confDir, ".activate.lock"), { test: `${nginxCmd} -t`, reload: `${nginxCmd} -s reload` });
    activate = (content) => {
      const result = spawnSync("sh", ["-c", script], { input: content, encoding: "utf8" });
      return { status: result.status ?? -1, stderr: result.stderr };
    };
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all([blue, green].filter(Boolean).map(close));
    dir.remove();
  });

  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const get = (path: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: httpPort, path, agent, headers: { host: HOST } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on("error", reject);
      req.end();
    });

  /** Runs `workers` request loops until `during` resolves; counts answers and failures. */
  async function underLoad(during: () => Promise<void>, workers = 6) {
    let running = true;
    const counts = { ok: 0, failed: 0, bySlot: new Map<string, number>() };
    const loops = Array.from({ length: workers }, async (_, i) => {
      for (let n = 0; running; n++) {
        try {
          const body = await get(n % 3 === 0 ? `/slow/${i}` : `/fast/${i}`);
          counts.ok++;
          counts.bySlot.set(body, (counts.bySlot.get(body) ?? 0) + 1);
        } catch {
          counts.failed++;
        }
      }
    });
    await during();
    running = false;
    await Promise.all(loops);
    return counts;
  }

  it("the activation script is shellcheck-clean", () => {
    const shellcheck = requireCommand("shellcheck", "shellcheck");
    const script = activationScript("/etc/nginx/bbaegok/upstreams/prod.conf", "/etc/nginx/bbaegok/.activate.lock", { test: "docker exec bbaegok-proxy nginx -t", reload: "docker exec bbaegok-proxy nginx -s reload" });
    execFileSync(shellcheck, ["-s", "sh", "-"], { input: script });
  });

  it("20 alternating switches under load: no request fails, both slots served", async () => {
    const counts = await underLoad(async () => {
      for (let i = 0; i < 20; i++) {
        const slot = i % 2 === 0 ? green : blue;
        const result = activate(renderUpstreams("prod", [{ variable: VARIABLE, address: `127.0.0.1:${portOf(slot)}` }]));
        assert.equal(result.status, 0, result.stderr);
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    assert.equal(counts.failed, 0, `${counts.failed} of ${counts.ok + counts.failed} requests failed`);
    assert.ok(counts.ok > 100, `only ${counts.ok} requests`);
    assert.ok((counts.bySlot.get("blue") ?? 0) > 0 && (counts.bySlot.get("green") ?? 0) > 0);
    assert.equal(await get("/after"), "blue", "the last switch (to blue) is not live");
  });

  it("a naive stop-old, start-new on one upstream drops requests (so the test above measures something)", async () => {
    const port = portOf(blue);
    activate(renderUpstreams("prod", [{ variable: VARIABLE, address: `127.0.0.1:${port}` }]));
    const counts = await underLoad(async () => {
      for (let i = 0; i < 5; i++) {
        await close(blue);
        await new Promise((r) => setTimeout(r, 150));
        blue = await slotServer("blue", port);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    assert.ok(counts.failed > 0, `the naive switch dropped nothing in ${counts.ok} requests`);
  });

  it("a configuration nginx refuses is never activated: the old file stays and keeps serving", async () => {
    const before = readFileSync(upstreamFile, "utf8");
    const served = await get("/before");
    const result = activate("set $broken;\n");
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /nginx refused the new .*prod\.conf; the previous configuration stays live/);
    assert.match(result.stderr, /invalid number of arguments|\[emerg\]/);
    assert.equal(readFileSync(upstreamFile, "utf8"), before);
    assert.equal(await get("/after"), served);
  });
});
