// The rendered proxy configuration of the committed stacks, run by real nginx
// on loopback with stand-in HTTP servers as upstreams: routing by host name,
// closed by default, redirects, forwarded headers, body limits, and one
// stack's missing upstream leaving the other serving.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { renderMainConf, stackProxyFiles } from "../../infra/proxy/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { startNginx, type Nginx } from "../support/nginx.js";
import { REPO } from "../support/project.js";
import { freePort, requireCommand, tempDir } from "../support/system.js";

const config = (stack: string) => validateStackConfig(stack, rawFromPulumiConfig(readStackFile(REPO, stack).config));
const prod = config("prod");
const staging = config("staging");

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function echoServer(name: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      let size = 0;
      req.on("data", (chunk: Buffer) => (size += chunk.length));
      req.on("end", () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ name, size, headers: req.headers }));
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0 });
    });
  });
}

describe("the proxy, with real nginx", () => {
  const dir = tempDir("proxy");
  const confDir = join(dir.path, "conf");
  const runtimeDir = join(dir.path, "run");
  let nginx: Nginx;
  let httpPort = 0;
  let httpsPort = 0;
  const servers: Server[] = [];
  const upstreamPorts = new Map<string, number>();

  const where = () => ({ confDir, runtimeDir, address: "127.0.0.1", httpPort, httpsPort });
  const writeStack = (stack: string, cfg: ReturnType<typeof config>) => {
    // On the server the container names resolve through Docker's DNS; here they map to the stand-ins.
    const files = stackProxyFiles(cfg, stack, where(), (container) => `127.0.0.1:${upstreamPorts.get(container) ?? 1}`);
    writeFileSync(join(confDir, "conf.d", `${stack}.conf`), files.conf);
    writeFileSync(join(confDir, "upstreams", `${stack}.conf`), files.upstreams);
  };

  before(async () => {
    const openssl = requireCommand("openssl", "openssl");
    for (const sub of ["conf.d", "upstreams", "certs"]) mkdirSync(join(confDir, sub), { recursive: true });
    httpPort = await freePort();
    httpsPort = await freePort();
    for (const [container, name] of [
      ["bbaegok-prod-app-blue:8080", "prod-blue"],
      ["bbaegok-staging-app-blue:8080", "staging-blue"],
      ["bbaegok-prod-metabase:3000", "metabase"],
    ] as const) {
      const { server, port } = await echoServer(name);
      servers.push(server);
      upstreamPorts.set(container, port);
    }
    for (const [stack, names] of [
      ["prod", [prod.domains.api, prod.domains.metabase!]],
      ["staging", [staging.domains.api]],
    ] as const) {
      execFileSync(openssl, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`, "-keyout", join(confDir, "certs", `${stack}.key`), "-out", join(confDir, "certs", `${stack}.crt`)], { stdio: "ignore" });
    }
    writeFileSync(join(confDir, "nginx.conf"), renderMainConf({ ...where(), resolver: "127.0.0.1", realIpFrom: ["173.245.48.0/20"], workerShutdownTimeout: "30s" }));
    writeStack("prod", prod);
    writeStack("staging", staging);
    nginx = await startNginx(join(confDir, "nginx.conf"), runtimeDir, httpPort);
  });

  after(async () => {
    await nginx?.stop();
    for (const s of servers) s.close();
    dir.remove();
  });

  const https = (servername: string, path = "/", body?: Buffer): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: "127.0.0.1", port: httpsPort, servername, path, method: body ? "POST" : "GET", headers: { host: servername }, rejectUnauthorized: false },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const http = (host: string, path = "/"): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: httpPort, path, headers: { host } }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" }));
      });
      req.on("error", reject);
      req.end();
    });

  it("the committed stacks' rendered configuration passes nginx -t", () => {
    const result = nginx.test();
    assert.ok(result.ok, result.output);
  });

  it("routes by host name: prod, staging and Metabase each reach their own upstream", async () => {
    assert.equal(JSON.parse((await https(prod.domains.api)).body).name, "prod-blue");
    assert.equal(JSON.parse((await https(staging.domains.api)).body).name, "staging-blue");
    assert.equal(JSON.parse((await https(prod.domains.metabase!)).body).name, "metabase");
  });

  it("closes the door on an unknown host, an IP literal and an unknown TLS name", async () => {
    await assert.rejects(http("evil.example.com"), /socket hang up|ECONNRESET/);
    await assert.rejects(http("127.0.0.1"), /socket hang up|ECONNRESET/);
    await assert.rejects(https("evil.example.com"), /alert|handshake|unrecognized/i);
  });

  it("redirects HTTP to HTTPS and sends HSTS", async () => {
    const reply = await http(prod.domains.api, "/members?page=2");
    assert.equal(reply.status, 301);
    assert.equal(reply.headers["location"], `https://${prod.domains.api}/members?page=2`);
    assert.match(String((await https(prod.domains.api)).headers["strict-transport-security"]), /max-age=31536000/);
  });

  it("passes the forwarded headers and a request id to the app", async () => {
    const headers = JSON.parse((await https(prod.domains.api)).body).headers as Record<string, string>;
    assert.equal(headers["host"], prod.domains.api);
    assert.equal(headers["x-forwarded-proto"], "https");
    assert.equal(headers["x-forwarded-for"], "127.0.0.1");
    assert.match(headers["x-request-id"] ?? "", /^[0-9a-f]{32}$/);
  });

  it("accepts a body within client_max_body_size and refuses one over it with 413", async () => {
    const within = await https(prod.domains.api, "/upload", Buffer.alloc(5 * 1024 * 1024, 1));
    assert.equal(within.status, 200);
    assert.equal(JSON.parse(within.body).size, 5 * 1024 * 1024);
    const over = await https(prod.domains.api, "/upload", Buffer.alloc(21 * 1024 * 1024, 1));
    assert.equal(over.status, 413);
  });

  it("a missing staging upstream leaves prod serving, and staging answers 502", async () => {
    upstreamPorts.set("bbaegok-staging-app-blue:8080", await freePort());
    writeStack("staging", staging);
    assert.ok(nginx.test().ok);
    nginx.reload();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await https(staging.domains.api)).status, 502);
    assert.equal(JSON.parse((await https(prod.domains.api)).body).name, "prod-blue");
  });
});
