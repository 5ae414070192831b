// The rendered proxy configuration of the committed stacks, run by real nginx
// on loopback. Stand-ins: node HTTP servers for the containers, each reached
// where the production files put its fixed address on the stack's edge network
// (the address map turns 172.30.x.y:port into 127.0.0.1:<its port>; nothing
// else differs). Covered: routing by host name, kept-alive upstream connections, closed
// by default, Cloudflare-only origins and the real client address, redirects,
// forwarded headers, body limits, WebSocket, gzip, TLS versions, the slot
// routes of the internal port, and one stack's stopped containers leaving the
// other serving.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { MAIN_CONF, originPullsCertificatePath, SLOT_HEADER, stackFilePaths } from "../../infra/proxy/contract.js";
import { CLEARED_CLIENT_HEADERS, CLOUDFLARE_HEADERS, renderMainConf, stackProxyFiles, WORKER_SHUTDOWN_SECONDS, type ProxyLayout } from "../../infra/proxy/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { listStacks } from "../../stacks/config/files.js";
import { loadStack } from "../../stacks/config/load.js";
import { loopbackAddresses } from "../support/edge.js";
import { clientCertificates, loopbackLayout, selfSignedCertificate, startNginx, type ClientCertificate, type Nginx } from "../support/nginx.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const configOf = (stack: string) => loadStack(stack, REPO).config;
const stacks = listStacks(REPO);
const prod = configOf("prod");
const staging = configOf("staging");
/** Stands in for Cloudflare's ranges: requests from 127.0.0.1 arrive "through Cloudflare", from 127.0.0.2 straight. */
const CLOUDFLARE = "127.0.0.1";
const STRAIGHT = "127.0.0.2";

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Seen {
  name: string;
  size: number;
  headers: Record<string, string>;
  /** nginx's side of the connection the request came on. */
  peerPort: number;
}

/** A stand-in container: answers with its name, the body size, the headers it received and the connection's port. */
function standIn(name: string, port = 0): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      let size = 0;
      req.on("data", (chunk: Buffer) => (size += chunk.length));
      req.on("end", () => {
        const slow = /^\/slow\?ms=(\d+)$/.exec(req.url ?? "");
        if (slow) {
          setTimeout(() => res.end(JSON.stringify({ name, sleptMs: Number(slow[1]) })), Number(slow[1]));
          return;
        }
        if (req.url === "/big-json") {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ name, rows: Array.from({ length: 200 }, (_, i) => ({ id: i, text: "the same words again" })) }));
          return;
        }
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ name, size, headers: req.headers, peerPort: req.socket.remotePort }));
      });
    });
    // A WebSocket handshake answered by hand: 101, then every byte echoed back.
    server.on("upgrade", (req, socket) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Stand-In: ${name}\r\n\r\n`);
      socket.on("data", (d: Buffer) => socket.write(d));
    });
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0 });
    });
  });
}

interface Ask {
  host: string;
  servername?: string;
  path?: string;
  body?: Buffer | Buffer[];
  headers?: Record<string, string>;
  from?: string;
  port?: number;
  minVersion?: "TLSv1" | "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  /** Milliseconds between body chunks. */
  pause?: number;
  /** A client certificate to present. */
  client?: ClientCertificate;
}

describe("the proxy, with real nginx", () => {
  const dir = tempDir("proxy");
  let layout: ProxyLayout;
  let nginx: Nginx;
  const servers = new Map<string, Server>();
  /** Container name → the stand-in's port on 127.0.0.1. */
  const ports = new Map<string, number>();
  const addressOf = loopbackAddresses({ prod, staging }, (name) => ports.get(name));
  const writeStack = (stack: string, config: StackConfig) => {
    const files = stackProxyFiles(config, stack, layout, "blue", addressOf);
    const paths = stackFilePaths(stack);
    writeFileSync(join(layout.confDir, paths.conf), files.conf);
    writeFileSync(join(layout.confDir, paths.upstreams), files.upstreams);
  };

  before(async () => {
    requireCommand("openssl", "openssl");
    layout = await loopbackLayout(dir.path);
    for (const name of ["bbaegok-prod-app-blue", "bbaegok-prod-app-green", "bbaegok-staging-app-blue", "bbaegok-staging-app-green", "bbaegok-prod-metabase"]) {
      const { server, port } = await standIn(name);
      servers.set(name, server);
      ports.set(name, port);
    }
    writeFileSync(join(layout.confDir, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: [`${CLOUDFLARE}/32`, "2400:cb00::/32"], workerShutdownTimeout: `${WORKER_SHUTDOWN_SECONDS}s` }));
    for (const stack of stacks) {
      const config = configOf(stack);
      writeStack(stack, config);
      const names = [config.domains.api, ...(config.metabase.enabled && config.domains.metabase ? [config.domains.metabase] : [])];
      selfSignedCertificate(layout, stack, names);
    }
    nginx = await startNginx(join(layout.confDir, MAIN_CONF), layout.runtimeDir, layout.listen.http);
  });

  after(async () => {
    await nginx?.stop();
    for (const s of servers.values()) {
      s.closeAllConnections();
      s.close();
    }
    dir.remove();
  });

  const https = (ask: Ask): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const chunks = ask.body === undefined ? [] : Array.isArray(ask.body) ? ask.body : [ask.body];
      const size = chunks.reduce((n, c) => n + c.length, 0);
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: ask.port ?? layout.listen.https,
          servername: ask.servername ?? ask.host,
          path: ask.path ?? "/",
          method: chunks.length > 0 ? "POST" : "GET",
          headers: { host: ask.host, ...(chunks.length > 0 ? { "content-length": String(size) } : {}), ...ask.headers },
          localAddress: ask.from ?? CLOUDFLARE,
          rejectUnauthorized: false,
          agent: false,
          minVersion: ask.minVersion,
          maxVersion: ask.maxVersion,
          ...(ask.maxVersion === "TLSv1.1" ? { ciphers: "DEFAULT@SECLEVEL=0" } : {}),
          ...(ask.client ?? {}),
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on("error", reject);
      (async () => {
        for (const chunk of chunks) {
          req.write(chunk);
          if (ask.pause) await new Promise((r) => setTimeout(r, ask.pause));
        }
        req.end();
      })().catch(reject);
    });
  const http = (ask: Ask): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port: ask.port ?? layout.listen.http, path: ask.path ?? "/", headers: { host: ask.host, ...ask.headers }, localAddress: ask.from ?? CLOUDFLARE, agent: false },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on("error", reject);
      req.end();
    });
  const seen = (reply: Reply): Seen => {
    assert.equal(reply.status, 200, `expected 200, got ${reply.status}: ${reply.body.slice(0, 200)}`);
    return JSON.parse(reply.body) as Seen;
  };
  /** Sends raw bytes to a port and collects whatever comes back until the connection closes. */
  const raw = (port: number, text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = netConnect({ host: "127.0.0.1", port }, () => socket.write(text));
      let got = "";
      socket.on("data", (d: Buffer) => (got += d.toString()));
      socket.on("close", () => resolve(got));
      socket.on("error", reject);
      socket.setTimeout(5000, () => socket.destroy(new Error("no close within 5 s")));
    });
  const handshake = (servername: string | undefined): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: layout.listen.https, servername, rejectUnauthorized: false }, () => {
        socket.end();
        resolve("completed");
      });
      socket.on("error", reject);
    });

  it("every committed stack's rendered configuration passes nginx -t", () => {
    assert.deepEqual(stacks, ["prod", "staging"]);
    const result = nginx.test();
    assert.ok(result.ok, result.output);
    assert.doesNotMatch(result.output, /\[warn\]/, "nginx warns about the rendered configuration");
  });

  it("routes by host name: prod, staging and Metabase each reach their own live container", async () => {
    assert.equal(seen(await https({ host: prod.domains.api })).name, "bbaegok-prod-app-blue");
    assert.equal(seen(await https({ host: staging.domains.api })).name, "bbaegok-staging-app-blue");
    assert.equal(seen(await https({ host: prod.domains.metabase! })).name, "bbaegok-prod-metabase");
  });

  it("keeps upstream connections open: requests on one client connection reach the app on one kept-alive connection", async () => {
    // One client connection, so one nginx worker (each worker keeps its own idle upstream connections).
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, servername: prod.domains.api });
    try {
      const get = () =>
        new Promise<Seen>((resolve, reject) => {
          const req = httpsRequest({ host: "127.0.0.1", port: layout.listen.https, path: "/again", headers: { host: prod.domains.api }, localAddress: CLOUDFLARE, agent }, (res) => {
            let text = "";
            res.on("data", (d: Buffer) => (text += d.toString()));
            res.on("end", () => resolve(seen({ status: res.statusCode ?? 0, headers: res.headers, body: text })));
          });
          req.on("error", reject);
          req.end();
        });
      const answers: Seen[] = [];
      for (let i = 0; i < 10; i++) answers.push(await get());
      assert.deepEqual(new Set(answers.map((a) => a.peerPort)).size, 1, "nginx opened more than one upstream connection for sequential requests");
      // The app is not asked to close the connection, and is not offered an upgrade.
      assert.equal(answers[0]!.headers["connection"], undefined);
      assert.equal(answers[0]!.headers["upgrade"], undefined);
    } finally {
      agent.destroy();
    }
  });

  it("closes the door on an unknown host, an IP literal and a request without Host", async () => {
    await assert.rejects(http({ host: "evil.example.com" }), /socket hang up|ECONNRESET/);
    await assert.rejects(http({ host: "127.0.0.1" }), /socket hang up|ECONNRESET/);
    assert.equal(await raw(layout.listen.http, "GET / HTTP/1.0\r\n\r\n"), "", "a request without Host got an answer");
    // Metabase is prod's: staging's redirect server does not know it, and staging has none.
    await assert.rejects(http({ host: "metabase.staging.example.com" }), /socket hang up|ECONNRESET/);
  });

  it("refuses the TLS handshake for an unknown name, an IP literal or no name at all", async () => {
    await assert.rejects(handshake("evil.example.com"), /alert|handshake|unrecognized/i);
    await assert.rejects(handshake(undefined), /alert|handshake|unrecognized/i);
    await assert.rejects(https({ host: "127.0.0.1", servername: "" }), /alert|handshake|unrecognized/i);
    assert.equal(await handshake(prod.domains.api), "completed");
  });

  it("closes the connection when the TLS name is one of ours but Host is an IP literal or another name", async () => {
    await assert.rejects(https({ host: "127.0.0.1", servername: prod.domains.api }), /socket hang up|ECONNRESET/);
    await assert.rejects(https({ host: "evil.example.com", servername: prod.domains.api }), /socket hang up|ECONNRESET/);
    await assert.rejects(https({ host: "127.0.0.1", servername: prod.domains.api, from: STRAIGHT }), /socket hang up|ECONNRESET/);
  });

  it("keeps environments apart: staging's Host under prod's TLS name is refused with 421, and the reverse", async () => {
    assert.equal((await https({ host: staging.domains.api, servername: prod.domains.api })).status, 421);
    assert.equal((await https({ host: prod.domains.api, servername: staging.domains.api })).status, 421);
  });

  it("takes host names in any case (DNS names are case-insensitive): a TLS name and Host in capitals reach the app, and staging's Host under prod's TLS name in capitals is still 421", async () => {
    const loud = prod.domains.api.toUpperCase();
    assert.equal((await https({ host: loud, servername: loud })).status, 200);
    assert.equal((await https({ host: prod.domains.api, servername: loud })).status, 200);
    assert.equal((await https({ host: staging.domains.api, servername: loud })).status, 421);
  });

  it("redirects HTTP to HTTPS and sends HSTS", async () => {
    const reply = await http({ host: prod.domains.api, path: "/members?page=2" });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers["location"], `https://${prod.domains.api}/members?page=2`);
    assert.match(String((await https({ host: prod.domains.api })).headers["strict-transport-security"]), /^max-age=31536000$/);
  });

  it("negotiates TLS 1.2 and 1.3 only", async () => {
    assert.equal((await https({ host: prod.domains.api, minVersion: "TLSv1.3" })).status, 200);
    assert.equal((await https({ host: prod.domains.api, maxVersion: "TLSv1.2" })).status, 200);
    await assert.rejects(https({ host: prod.domains.api, minVersion: "TLSv1", maxVersion: "TLSv1.1" }), /protocol|alert|handshake/i);
  });

  it("restores the client's address from Cloudflare and passes forwarded headers and a request id to the app", async () => {
    const reply = await https({ host: prod.domains.api, path: "/who", headers: { "cf-connecting-ip": "198.51.100.7", "x-forwarded-for": "10.6.6.6" } });
    const headers = seen(reply).headers;
    assert.equal(headers["host"], prod.domains.api);
    assert.equal(headers["x-real-ip"], "198.51.100.7");
    assert.equal(headers["x-forwarded-for"], "198.51.100.7", "the client's own X-Forwarded-For must not reach the app");
    assert.equal(headers["x-forwarded-proto"], "https");
    assert.equal(headers["x-forwarded-host"], undefined, "Host names the served host; nginx does not repeat it");
    assert.equal(headers["x-forwarded-port"], "443");
    assert.match(headers["x-request-id"] ?? "", /^\d+\.\d{3}-\d+-\d+$/);
    assert.equal(reply.headers["x-request-id"], headers["x-request-id"], "the client does not get the request id the app saw");
    // The access log line: client, host, status, upstream address and time, request id
    // (lines are buffered: it arrives within the flush interval, 1 s).
    const logLine = () => readFileSync(layout.accessLog, "utf8").split("\n").find((l) => l.includes(`request_id=${headers["x-request-id"]}`));
    await waitFor("the request's access log line", () => logLine() !== undefined, 5_000);
    const log = logLine();
    assert.ok(log, "no access log line with the request id");
    assert.match(log, new RegExp(`^198\\.51\\.100\\.7 ${prod.domains.api.replace(/\./g, "\\.")} .*"GET /who HTTP/1\\.1" 200 .*upstream=127\\.0\\.0\\.1:\\d+ upstream_time=\\d+\\.\\d{3} `));
  });

  it("sends the app no forwarding header a client wrote: nginx's own values or none", async () => {
    const claimed: Record<string, string> = Object.fromEntries(CLEARED_CLIENT_HEADERS.map((h) => [h.toLowerCase(), "claimed-by-the-client"]));
    const headers = seen(
      await https({
        host: prod.domains.api,
        headers: {
          ...claimed,
          forwarded: "for=10.6.6.6;host=evil.example.com;proto=http",
          "x-forwarded-prefix": "/evil",
          "x-original-url": "/admin",
          "true-client-ip": "10.6.6.6",
          "x-forwarded-host": "evil.example.com",
          "x-forwarded-port": "8443",
          "x-forwarded-proto": "http",
          "x-real-ip": "10.6.6.6",
          "cf-connecting-ip": "198.51.100.7",
          "cf-ray": "8f00000000000000-ICN",
        },
      }),
    ).headers;
    for (const name of ["forwarded", "x-forwarded-prefix", "x-original-url", "true-client-ip", ...Object.keys(claimed)]) {
      assert.equal(headers[name], undefined, `the client's ${name} reached the app`);
    }
    assert.equal(headers["host"], prod.domains.api);
    assert.equal(headers["x-forwarded-port"], "443");
    assert.equal(headers["x-forwarded-proto"], "https");
    assert.equal(headers["x-real-ip"], "198.51.100.7");
    // Behind Cloudflare (the peer is in its ranges), Cloudflare's own headers pass.
    assert.equal(headers["cf-connecting-ip"], "198.51.100.7");
    assert.equal(headers["cf-ray"], "8f00000000000000-ICN");
  });

  it("forwards an upgrade to the app for a WebSocket only, never h2c", async () => {
    const answer = await new Promise<{ upgraded: boolean; seen?: Seen }>((resolve, reject) => {
      const req = httpsRequest({
        host: "127.0.0.1",
        port: layout.listen.https,
        servername: prod.domains.api,
        path: "/h2c",
        headers: { host: prod.domains.api, connection: "Upgrade, HTTP2-Settings", upgrade: "h2c", "http2-settings": "AAMAAABkAAQCAAAAAAIAAAAA" },
        localAddress: CLOUDFLARE,
        rejectUnauthorized: false,
        agent: false,
      });
      req.on("upgrade", (_res, socket) => {
        socket.destroy();
        resolve({ upgraded: true });
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ upgraded: false, seen: seen({ status: res.statusCode ?? 0, headers: res.headers, body: text }) }));
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(answer.upgraded, false, "the app was asked to switch to h2c");
    assert.equal(answer.seen!.headers["upgrade"], undefined);
    assert.equal(answer.seen!.headers["connection"], undefined);
    assert.equal(answer.seen!.headers["http2-settings"], "AAMAAABkAAQCAAAAAAIAAAAA", "a plain request, settings ignored by the app");
  });

  it("closes connections that do not come from Cloudflare on a proxied stack, and ignores their claimed address", async () => {
    await assert.rejects(https({ host: prod.domains.api, from: STRAIGHT }), /socket hang up|ECONNRESET/);
    await assert.rejects(http({ host: prod.domains.api, from: STRAIGHT }), /socket hang up|ECONNRESET/);
    // An unproxied stack serves straight clients, and a claimed CF-Connecting-IP changes nothing.
    writeStack("staging", { ...staging, proxy: { ...staging.proxy, cloudflareProxied: false } });
    nginx.reload();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const claimed = Object.fromEntries(CLOUDFLARE_HEADERS.map((h) => [h.toLowerCase(), "198.51.100.7"]));
      const headers = seen(await https({ host: staging.domains.api, from: STRAIGHT, headers: { ...claimed, "cf-connecting-ip": "198.51.100.7", "true-client-ip": "198.51.100.7" } })).headers;
      assert.equal(headers["x-real-ip"], STRAIGHT);
      assert.equal(headers["x-forwarded-for"], STRAIGHT);
      // Not behind Cloudflare, Cloudflare's headers can only be the client's own: none reaches the app.
      for (const name of ["cf-connecting-ip", "true-client-ip", ...Object.keys(claimed)]) assert.equal(headers[name], undefined, `the client's ${name} reached the app`);
    } finally {
      writeStack("staging", staging);
      nginx.reload();
      await new Promise((r) => setTimeout(r, 300));
    }
    await assert.rejects(https({ host: staging.domains.api, from: STRAIGHT }), /socket hang up|ECONNRESET/);
  });

  it("keeps Metabase behind its allow-list, judged on the client's real address, without touching the API", async () => {
    writeStack("prod", { ...prod, metabase: { ...prod.metabase, allowFrom: ["198.51.100.0/24"] } });
    nginx.reload();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const from = (ip: string) => ({ "cf-connecting-ip": ip });
      assert.equal(seen(await https({ host: prod.domains.metabase!, headers: from("198.51.100.7") })).name, "bbaegok-prod-metabase");
      assert.equal((await https({ host: prod.domains.metabase!, headers: from("203.0.113.9") })).status, 403);
      assert.equal(seen(await https({ host: prod.domains.api, headers: from("203.0.113.9") })).name, "bbaegok-prod-app-blue");
    } finally {
      writeStack("prod", prod);
      nginx.reload();
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal((await https({ host: prod.domains.metabase!, headers: { "cf-connecting-ip": "203.0.113.9" } })).status, 200);
  });

  it("with Authenticated Origin Pulls, serves a stack's hosts only to a client presenting a certificate it trusts", async () => {
    const certs = clientCertificates(join(dir.path, "origin-pulls"));
    // The stack's own self-signed certificate (what the program makes), and a CA's, in one trusted file.
    writeFileSync(join(layout.confDir, originPullsCertificatePath("prod")), `${certs.pinned.cert}${certs.ca}`);
    writeStack("prod", { ...prod, proxy: { ...prod.proxy, authenticatedOriginPulls: true } });
    assert.ok(nginx.test().ok, nginx.test().output);
    nginx.reload();
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (const host of [prod.domains.api, prod.domains.metabase!]) {
        for (const [who, client] of [["no certificate", undefined], ["a self-signed one with the trusted one's subject", certs.samePinnedSubject], ["one from another CA", certs.otherCaSigned]] as const) {
          const refused = await https({ host, ...(client ? { client } : {}) });
          assert.equal(refused.status, 400, `${host} with ${who}: ${refused.status}`);
          assert.doesNotMatch(refused.body, /bbaegok-prod/, `${host} with ${who} reached the app`);
        }
      }
      assert.equal(seen(await https({ host: prod.domains.api, client: certs.pinned })).name, "bbaegok-prod-app-blue");
      assert.equal(seen(await https({ host: prod.domains.metabase!, client: certs.pinned })).name, "bbaegok-prod-metabase");
      assert.equal(seen(await https({ host: prod.domains.api, client: certs.caSigned })).name, "bbaegok-prod-app-blue");
      // The certificate does not open the Cloudflare-only gate: a straight connection is still closed.
      await assert.rejects(https({ host: prod.domains.api, from: STRAIGHT, client: certs.pinned }), /socket hang up|ECONNRESET/);
      // Another stack on the same proxy, without origin pulls, asks for nothing.
      assert.equal(seen(await https({ host: staging.domains.api })).name, "bbaegok-staging-app-blue");
    } finally {
      writeStack("prod", prod);
      nginx.reload();
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(seen(await https({ host: prod.domains.api })).name, "bbaegok-prod-app-blue");
  });

  it("accepts a slow upload within client_max_body_size and refuses one over it with 413", async () => {
    const chunks = Array.from({ length: 6 }, () => Buffer.alloc(512 * 1024, 1));
    const slow = await https({ host: prod.domains.api, path: "/upload", body: chunks, pause: 250 });
    assert.equal(seen(slow).size, 6 * 512 * 1024);
    const over = await https({ host: prod.domains.api, path: "/upload", body: Buffer.alloc(21 * 1024 * 1024, 1) });
    assert.equal(over.status, 413);
  });

  it("passes a WebSocket upgrade through to the app", async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({
        host: "127.0.0.1",
        port: layout.listen.https,
        servername: prod.domains.api,
        path: "/ws",
        headers: { host: prod.domains.api, connection: "Upgrade", upgrade: "websocket" },
        localAddress: CLOUDFLARE,
        rejectUnauthorized: false,
        agent: false,
      });
      req.on("upgrade", (res, socket) => {
        assert.equal(res.headers["x-stand-in"], "bbaegok-prod-app-blue");
        socket.once("data", (d: Buffer) => {
          socket.destroy();
          resolve(d.toString());
        });
        socket.write("ping through the proxy");
      });
      req.on("response", (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on("error", reject);
      req.end();
    });
    assert.equal(echoed, "ping through the proxy");
  });

  it("a request the app answers after 35 s, in flight across a reload (every stack's activation reloads the one proxy), is answered: old workers wait past the longest wait for an app", async () => {
    const pending = https({ host: prod.domains.api, path: "/slow?ms=35000" });
    await new Promise((r) => setTimeout(r, 1000));
    nginx.reload();
    const reply = await pending;
    assert.equal(reply.status, 200, reply.body);
    assert.equal((JSON.parse(reply.body) as { sleptMs: number }).sleptMs, 35000);
  });

  it("compresses text responses with gzip", async () => {
    const reply = await https({ host: prod.domains.api, path: "/big-json", headers: { "accept-encoding": "gzip" } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["content-encoding"], "gzip");
  });

  it("serves either slot by name on the internal port, the live one without the header, and nothing else", async () => {
    const internal = (headers: Record<string, string>, host = prod.domains.api) => http({ host, port: layout.listen.internal, headers });
    assert.equal(seen(await internal({})).name, "bbaegok-prod-app-blue");
    assert.equal(seen(await internal({ [SLOT_HEADER]: "green" })).name, "bbaegok-prod-app-green");
    assert.equal(seen(await internal({ [SLOT_HEADER]: "green" }, staging.domains.api)).name, "bbaegok-staging-app-green");
    await assert.rejects(internal({}, "evil.example.com"), /socket hang up|ECONNRESET/);
  });

  it("stopped staging containers (nothing at their addresses) leave nginx checking and reloading, and prod serving; staging answers 502", async () => {
    const stagingSlots = ["bbaegok-staging-app-blue", "bbaegok-staging-app-green"];
    const stop = (name: string) =>
      new Promise<void>((resolve) => {
        const server = servers.get(name)!;
        server.close(() => resolve());
        server.closeAllConnections();
      });
    await Promise.all(stagingSlots.map(stop));
    try {
      // nginx -t reads the configuration as a start does: upstream addresses need no lookup and no answer.
      const check = nginx.test();
      assert.ok(check.ok, check.output);
      nginx.reload();
      await new Promise((r) => setTimeout(r, 300));
      // Refused at once here; on the server a stopped container's address does not answer, bounded by proxy_connect_timeout (3 s, 504).
      assert.equal((await https({ host: staging.domains.api })).status, 502);
      assert.equal(seen(await https({ host: prod.domains.api })).name, "bbaegok-prod-app-blue");
      assert.equal((await http({ host: staging.domains.api, port: layout.listen.internal, headers: { [SLOT_HEADER]: "green" } })).status, 502);
    } finally {
      for (const name of stagingSlots) servers.set(name, (await standIn(name, ports.get(name))).server);
    }
    assert.equal(seen(await https({ host: staging.domains.api })).name, "bbaegok-staging-app-blue");
  });
});
