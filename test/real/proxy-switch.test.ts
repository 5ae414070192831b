// The blue/green switch on real nginx, as a rollout's flip does it: the
// stack's files are proposed again with only the upstream file changed, and
// the proxy's one activation script (the one every `pulumi up` runs) backs up
// the live files, copies the proposals in, lets nginx -t judge them and
// reloads gracefully. Under continuous load, 20 alternating switches drop
// nothing; a naive stop-old/start-new does. A configuration nginx refuses is
// never activated.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Agent, request } from "node:https";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { activationScript, proposalManifest } from "../../infra/proxy/activation.js";
import { MAIN_CONF, proxyDirs, stackFilePaths } from "../../infra/proxy/contract.js";
import { renderMainConf, stackProxyFiles, stackUpstreams, type ProxyLayout } from "../../infra/proxy/render.js";
import type { Slot } from "../../stacks/config/schema.js";
import { loadStack } from "../../stacks/config/load.js";
import { loopbackAddresses } from "../support/edge.js";
import { loopbackLayout, selfSignedCertificate, startNginx, type Nginx } from "../support/nginx.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";

const prod = loadStack("prod", REPO).config;
const HOST = prod.domains.api;

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
  const dirs = proxyDirs(dir.path);
  const paths = stackFilePaths("prod");
  let layout: ProxyLayout;
  let upstreamFile = "";
  let nginx: Nginx;
  let blue: Server;
  let green: Server;
  let activate: (content: string) => { status: number; stderr: string };
  // Each slot's fixed address stands for its server on 127.0.0.1, each on its own port.
  const addressOf = loopbackAddresses({ prod }, (name) => (name.endsWith("-green") ? portOf(green) : name.endsWith("-blue") ? portOf(blue) : undefined));
  const upstreamsFor = (slot: Slot) => stackUpstreams(prod, "prod", slot, addressOf);

  before(async () => {
    requireCommand("flock", "util-linux");
    requireCommand("sha256sum", "coreutils");
    layout = await loopbackLayout(dir.path);
    blue = await slotServer("blue");
    green = await slotServer("green");
    // The committed prod stack's own files, over HTTPS as in production; 127.0.0.1 stands in for Cloudflare.
    writeFileSync(join(layout.confDir, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" }));
    const files = stackProxyFiles(prod, "prod", layout, "blue", addressOf);
    upstreamFile = join(layout.confDir, paths.upstreams);
    writeFileSync(join(layout.confDir, paths.conf), files.conf);
    writeFileSync(upstreamFile, upstreamsFor("blue"));
    selfSignedCertificate(layout, "prod", [HOST, prod.domains.metabase!]);
    nginx = await startNginx(join(layout.confDir, MAIN_CONF), layout.runtimeDir, layout.listen.http);
    const script = activationScript({
      label: "stack prod",
      liveDir: dirs.live,
      files: Object.values(paths),
      lockPath: dirs.lock,
      commands: { test: nginx.commandLine("-t"), reload: nginx.commandLine("-s reload") },
      change: { kind: "install", proposedDir: dirs.proposed("prod") },
    });
    // What a flip's `pulumi up` installs under proposed/prod: the stack's files as they are, the upstream file changed.
    const unchanged = new Map([paths.conf, paths.certificate, paths.key].map((p) => [p, readFileSync(join(layout.confDir, p), "utf8")]));
    activate = (upstreams) => {
      const proposals = Object.values(paths).map((path) => ({ path, content: path === paths.upstreams ? upstreams : unchanged.get(path)! }));
      for (const f of proposals) {
        const target = join(dirs.proposed("prod"), f.path);
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, f.content);
        chmodSync(target, f.path === paths.key ? 0o600 : 0o644);
      }
      const result = spawnSync("sh", ["-c", script], { input: proposalManifest(proposals), encoding: "utf8" });
      return { status: result.status ?? -1, stderr: result.stderr };
    };
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all([blue, green].filter(Boolean).map(close));
    dir.remove();
  });

  const agent = new Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false, servername: HOST });
  let retried = 0;
  // A correct HTTP/1.1 client: a keep-alive connection the server closed while
  // idle (old workers do so at a reload) is retried once, as Node's docs say
  // to (and as Cloudflare does); only a request that failed on a fresh
  // connection or got an error status counts as failed.
  const get = (path: string, retry = true): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: layout.listen.https, path, agent, headers: { host: HOST } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (retry && req.reusedSocket && err.code === "ECONNRESET") {
          retried++;
          get(path, false).then(resolve, reject);
        } else reject(err);
      });
      req.end();
    });

  /** Runs `workers` request loops until `during` resolves; counts answers and failures. */
  async function underLoad(during: () => Promise<void>, workers = 6) {
    let running = true;
    const counts = { ok: 0, failed: 0, bySlot: new Map<string, number>(), errors: new Map<string, number>() };
    const loops = Array.from({ length: workers }, async (_, i) => {
      for (let n = 0; running; n++) {
        try {
          const body = await get(n % 3 === 0 ? `/slow/${i}` : `/fast/${i}`);
          counts.ok++;
          counts.bySlot.set(body, (counts.bySlot.get(body) ?? 0) + 1);
        } catch (err) {
          counts.failed++;
          const message = err instanceof Error ? err.message : String(err);
          counts.errors.set(message, (counts.errors.get(message) ?? 0) + 1);
        }
      }
    });
    await during();
    running = false;
    await Promise.all(loops);
    return counts;
  }

  it("20 alternating switches under load: no request fails, both slots served", async () => {
    const counts = await underLoad(async () => {
      for (let i = 0; i < 20; i++) {
        const result = activate(upstreamsFor(i % 2 === 0 ? "green" : "blue"));
        assert.equal(result.status, 0, result.stderr);
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    assert.equal(counts.failed, 0, `${counts.failed} of ${counts.ok + counts.failed} requests failed: ${JSON.stringify([...counts.errors])}`);
    assert.ok(counts.ok > 100, `only ${counts.ok} requests`);
    console.log(`${counts.ok} requests across 20 switches; ${retried} retried on a keep-alive connection closed at a reload`);
    assert.ok((counts.bySlot.get("blue") ?? 0) > 0 && (counts.bySlot.get("green") ?? 0) > 0);
    assert.equal(await get("/after"), "blue", "the last switch (to blue) is not live");
  });

  it("a naive stop-old, start-new on one upstream drops requests (so the test above measures something)", async () => {
    const port = portOf(blue);
    activate(upstreamsFor("blue"));
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
    assert.match(result.stderr, /proxy activation of stack prod: nginx -t refused the new configuration; the previous files are back and keep serving/);
    assert.match(result.stderr, /invalid number of arguments|\[emerg\]/);
    assert.equal(readFileSync(upstreamFile, "utf8"), before);
    assert.equal(await get("/after"), served);
  });
});
