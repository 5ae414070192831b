// The whole program, for real: `pulumi up` of prod, then staging, with the
// engine built here (only AWS and Cloudflare stood in), over ssh:// to a real
// OpenSSH server in front of a real Docker daemon (test/support/docker-host.ts),
// running images built offline and tagged as the stacks pin them
// (test/support/docker-images.ts). Nothing on the server side is stood in.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildTestImages } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { addCloudflareClientAddress, CLOUDFLARE_CLIENT, httpsGet, pointStackAtHost, pulumi, type HttpAnswer } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { waitFor } from "../support/system.js";

let host: DockerHost;
let ws: ReturnType<typeof engineWorkspace>;
let removeClientAddress: (() => void) | undefined;

before(async () => {
  removeClientAddress = addCloudflareClientAddress();
  host = await startDockerHost();
  await buildTestImages({ env: host.dockerEnv });
  ws = engineWorkspace("server", host.operatorEnv);
  for (const stack of ["prod", "staging"]) {
    pointStackAtHost(ws.projectDir, stack, host);
    const init = pulumi(ws, ["stack", "init", stack]);
    assert.equal(init.status, 0, outputOf(init));
  }
});

after(async () => {
  ws?.remove();
  await host?.stop();
  removeClientAddress?.();
});

/** The proxy container's address on prod's edge network: where "Cloudflare" connects. */
function proxyAddress(): string {
  return docker(["inspect", "-f", '{{(index .NetworkSettings.Networks "bbaegok-prod-edge").IPAddress}}', "bbaegok-proxy"]).stdout.trim();
}

/** A request through the proxy as Cloudflare makes it. */
function viaCloudflare(name: string, path = "/", options: { host?: string } = {}): Promise<HttpAnswer> {
  return httpsGet(name, path, { address: proxyAddress(), localAddress: CLOUDFLARE_CLIENT, ...options });
}

/** `docker inspect` of a container: its state and health. */
function state(name: string): { running: boolean; health: string | undefined; image: string } {
  const out = docker(["inspect", "-f", "{{json .State}}|{{.Config.Image}}", name]).stdout.trim();
  const [json, image] = out.split("|");
  const s = JSON.parse(json!) as { Running: boolean; Health?: { Status: string } };
  return { running: s.Running, health: s.Health?.Status, image: image! };
}

function containersOf(stack: string): string[] {
  return docker(["ps", "-a", "--filter", `label=bbaegok.stack=${stack}`, "--format", "{{.Names}}"]).stdout.split("\n").filter(Boolean).sort();
}

function up(stack: string) {
  const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
  assert.equal(result.status, 0, outputOf(result));
  return result;
}

describe("prod on a real Docker host", () => {
  it("pulumi up of prod: over ssh:// to sshd with Debian's default MaxStartups, every resource created", () => {
    up("prod");
  });

  it("every container of prod runs and is healthy", () => {
    const names = containersOf("prod");
    assert.deepEqual(names, ["bbaegok-prod-app-blue", "bbaegok-prod-app-green", "bbaegok-prod-db", "bbaegok-prod-metabase", "bbaegok-prod-metabase-db", "bbaegok-proxy"].sort());
    for (const name of names) {
      const s = state(name);
      assert.ok(s.running, `${name} is not running`);
      if (s.health !== undefined) assert.equal(s.health, "healthy", name);
    }
  });

  it("the slot reads its password from the mounted folder (as uid 1000) and is healthy only while the database answers", async () => {
    const health = () => docker(["exec", "bbaegok-prod-app-blue", "sh", "-c", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/actuator/health"], { allowFailure: true }).stdout;
    assert.equal(docker(["exec", "bbaegok-prod-app-blue", "id", "-u"]).stdout.trim(), "1000");
    assert.equal(health(), "200");
    docker(["stop", "bbaegok-prod-db"]);
    try {
      await waitFor("the slot to report its database down", () => health() === "503", 30_000, 500);
    } finally {
      docker(["start", "bbaegok-prod-db"]);
    }
    await waitFor("the slot to report its database back", () => health() === "200", 120_000, 1000);
  });

  it("the proxy routes by host name for Cloudflare's addresses; an unknown name gets no TLS at all", async () => {
    const api = await viaCloudflare("api.bbaegok.kr", "/");
    assert.equal(api.status, 200, api.body);
    assert.match(api.body, /blue/);
    const metabase = await viaCloudflare("metabase.bbaegok.kr", "/api/health");
    assert.equal(metabase.status, 200, metabase.body);
    await assert.rejects(viaCloudflare("unknown.example.com", "/"), /EPROTO|alert|handshake|socket hang up|ECONNRESET/i);
  });

  it("the published 443 closes on a client outside Cloudflare's ranges (444: no answer)", async () => {
    await assert.rejects(httpsGet("api.bbaegok.kr", "/"), /socket hang up|ECONNRESET|EPROTO/i);
  });

  it("only the proxy publishes host ports", () => {
    const ports = docker(["ps", "--format", "{{.Names}} {{.Ports}}"]).stdout.split("\n").filter((l) => /->/.test(l));
    assert.deepEqual(ports.map((l) => l.split(" ")[0]), ["bbaegok-proxy"]);
  });
});

describe("staging beside prod on the same host", () => {
  before(() => {
    up("staging");
  });

  it("serves staging's name through prod's proxy", async () => {
    const staging = await viaCloudflare("staging-api.bbaegok.kr", "/");
    assert.equal(staging.status, 200, staging.body);
  });

  it("staging is unreachable through prod's names, and prod through staging's", async () => {
    assert.equal((await viaCloudflare("api.bbaegok.kr", "/", { host: "staging-api.bbaegok.kr" })).status, 421);
    assert.equal((await viaCloudflare("staging-api.bbaegok.kr", "/", { host: "api.bbaegok.kr" })).status, 421);
  });

  it("with staging's slots stopped, nginx still checks and reloads, and prod still serves", async () => {
    const slots = ["bbaegok-staging-app-blue", "bbaegok-staging-app-green"];
    docker(["stop", ...slots]);
    try {
      docker(["exec", "bbaegok-proxy", "nginx", "-t"]);
      docker(["exec", "bbaegok-proxy", "nginx", "-s", "reload"]);
      assert.equal((await viaCloudflare("api.bbaegok.kr", "/")).status, 200);
      assert.ok([502, 504].includes((await viaCloudflare("staging-api.bbaegok.kr", "/")).status));
    } finally {
      docker(["start", ...slots]);
    }
  });

  it("a second up of either stack changes nothing, and npm run drift finds no drift", () => {
    for (const stack of ["prod", "staging"]) {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
      const drift = spawnSync(process.execPath, ["--import", "tsx", join(ws.projectDir, "ops", "drift.ts"), "--stack", stack], { cwd: ws.projectDir, env: ws.env, encoding: "utf8" });
      assert.equal(drift.status, 0, outputOf(drift));
    }
  });
});
