// The whole program, for real: `pulumi up` of prod, then staging, with the
// engine built here (only AWS and Cloudflare stood in), over ssh:// to a real
// OpenSSH server in front of a real Docker daemon (test/support/docker-host.ts),
// running images built offline and tagged as the stacks pin them
// (test/support/docker-images.ts). Nothing on the server side is stood in.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, readFileSync, symlinkSync } from "node:fs";
import { parse } from "yaml";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { activationScript, dockerNginxCommands } from "../../infra/proxy/activation.js";
import { proxyDirs, stackFilePaths } from "../../infra/proxy/contract.js";
import { buildTestImages, tagAppVersion } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { addCloudflareClientAddress, CLOUDFLARE_CLIENT, httpsGet, opsAsync, opsSession, pointStackAtHost, pulumi, pulumiAsync, setStackValue, startLoad, type HttpAnswer, type LoadAnswer } from "../support/docker-stacks.js";
import { startMoto, type MotoServer } from "../support/moto.js";
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

/** An ops command (npm run deploy/rollback/status…) from the project copy, asynchronously (so load can run meanwhile). */
const ops = (script: string, args: string[]) => opsAsync(ws, script, args);

/** Answers from the version that serves prod's API now. */
async function servingVersion(): Promise<{ slot: string; version: string }> {
  const { slot, version } = JSON.parse((await viaCloudflare("api.bbaegok.kr", "/")).body) as { slot: string; version: string };
  return { slot, version };
}

/** An ops command left running: its output so far, and its end. */
function opsLive(script: string, args: string[]) {
  let output = "";
  const child = spawn(process.execPath, ["--import", "tsx", join(ws.projectDir, "ops", script), ...args], { cwd: ws.projectDir, env: ws.env });
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ status: number }>((resolve) => child.on("exit", (code) => resolve({ status: code ?? -1 })));
  return { output: () => output, done };
}

async function upAsync(stack: string): Promise<void> {
  const result = await pulumiAsync(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
  assert.equal(result.status, 0, outputOf(result));
}

function up(stack: string) {
  const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
  assert.equal(result.status, 0, outputOf(result));
  return result;
}

describe("prod on a real Docker host", () => {
  it("pulumi up of prod: over ssh:// to sshd with Debian's default MaxStartups, every resource created, warning of nothing", () => {
    // The real Docker and command providers over SSH: a warning on every up (a deprecated input, sshd refusing
    // the previous output's variables) would train the team to skip the ones that matter.
    assert.doesNotMatch(outputOf(up("prod")), /warning/i);
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
  let firstUp = "";
  before(() => {
    firstUp = outputOf(up("staging"));
  });

  it("pulumi up of staging warned of nothing (no Metabase: its outputs are null, not undefined)", () => {
    assert.doesNotMatch(firstUp, /warning/i);
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

describe("the proxy's configuration on the real container", () => {
  it("a change goes live through the activation script (nginx -t, graceful reload); the container is not replaced", async () => {
    const before = docker(["inspect", "-f", "{{.Id}}", "bbaegok-proxy"]).stdout.trim();
    setStackValue(ws.projectDir, "prod", ["bbaegok-infra:proxy", "clientMaxBodySize"], "25m");
    up("prod");
    const live = `${host.dataDir}/proxy/live/${stackFilePaths("prod").conf}`;
    assert.match(docker(["exec", "bbaegok-proxy", "cat", live]).stdout, /client_max_body_size 25m;/);
    assert.equal(docker(["inspect", "-f", "{{.Id}}", "bbaegok-proxy"]).stdout.trim(), before);
    assert.equal((await viaCloudflare("api.bbaegok.kr", "/")).status, 200);
  });

  it("a configuration nginx -t refuses never goes live: the previous files keep serving, and the run fails with nginx's message", async () => {
    const dirs = proxyDirs(`${host.dataDir}/proxy`);
    const conf = stackFilePaths("prod").conf;
    const broken = "server { this is not nginx\n";
    const manifest = `${createHash("sha256").update(broken).digest("hex")}  ${conf}\n`;
    const endpoint = { container: "bbaegok-proxy", image: "nginx:1.28.3", dir: `${host.dataDir}/proxy` };
    const script = activationScript({ label: "stack prod", liveDir: dirs.live, files: [conf], lockPath: dirs.lock, commands: dockerNginxCommands(endpoint), change: { kind: "install", proposedDir: dirs.proposed("prod") } });
    const proposedConf = `${dirs.proposed("prod")}/${conf}`;
    const scriptFile = `${host.dir}/activate-prod.sh`;
    const good = host.asRoot(`cat '${proposedConf}'`).stdout;
    assert.equal(host.asRoot(`tee '${scriptFile}' > /dev/null`, script).status, 0);
    assert.equal(host.asRoot(`tee '${proposedConf}' > /dev/null`, broken).status, 0);
    try {
      const result = host.asRoot(`sh '${scriptFile}'`, manifest);
      assert.equal(result.status, 1, result.stdout + result.stderr);
      assert.match(result.stderr, /nginx -t refused the new configuration; the previous files are back and keep serving/);
      assert.equal(docker(["exec", "bbaegok-proxy", "cat", `${dirs.live}/${conf}`]).stdout, good);
      assert.equal((await viaCloudflare("api.bbaegok.kr", "/")).status, 200);
    } finally {
      host.asRoot(`tee '${proposedConf}' > /dev/null`, good);
    }
  });
});

describe("backups on the real host", () => {
  // moto, versioned as every backup bucket: the drill lists versions, which s3rver refuses (MethodNotAllowed).
  let s3: MotoServer;
  before(async () => {
    s3 = await startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]);
  });
  after(async () => {
    await s3?.stop();
  });

  /** The stack's own script on the server, run as root as cron would, against the S3 stand-in. */
  function runOnServer(script: string, args = ""): { status: number; stdout: string; stderr: string } {
    const credentials = s3.credentialsFile("docker-stacks-test");
    host.asRoot(`umask 077; cat > '${host.dir}/s3-credentials'`, readFileSync(credentials));
    return host.asRoot(
      `env BACKUP_S3_ENDPOINT_URL=${s3.endpoint} BACKUP_AWS_CREDENTIALS_FILE='${host.dir}/s3-credentials' BACKUP_PING_URL_FILE=/nonexistent '${host.dataDir}/prod/backup/${script}' ${args}`,
      undefined,
      { timeoutMs: 300_000 },
    );
  }

  it("the backup script dumps the real databases with docker exec and uploads them, manifest last", () => {
    docker(["exec", "-i", "bbaegok-prod-db", "sh", "-c", 'mariadb -uroot -p"$(cat /run/secrets/db_root_password)" bbaegok'], {
      input: "CREATE TABLE IF NOT EXISTS orders (id INT PRIMARY KEY, item VARCHAR(40)); REPLACE INTO orders VALUES (1, '빼곡 노트'), (2, 'pen');",
    });
    const result = runOnServer("backup.sh");
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const keys = s3.keys("bbaegok-prod-db-backups", "prod/");
    for (const db of ["bbaegok", "metabase"]) assert.ok(keys.some((k) => k.startsWith(`prod/${db}/`) && k.endsWith(".manifest.json")), `no manifest for ${db}: ${keys.join(", ")}`);
  });

  it("the restore drill loads the newest backup into a throwaway container on the real daemon and compares it with the manifest", () => {
    const result = runOnServer("restore-drill.sh", "--database bbaegok");
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(docker(["ps", "-a", "--filter", "label=bbaegok.role=restore-drill", "--format", "{{.Names}}"]).stdout.trim(), "", "the throwaway container is gone");
  });
});

describe("image bumps of the proxy, the database and Metabase", () => {
  before(async () => {
    await buildTestImages({ env: host.dockerEnv }, { nginx: ["nginx:1.28.4"], mariadb: ["mariadb:11.4.13"], metabase: ["metabase/metabase:v0.56.10"] });
  });

  it("the preview announces the database's downtime, the up replaces each container old-first, the data stays", async () => {
    setStackValue(ws.projectDir, "prod", ["bbaegok-infra:proxy", "image"], "nginx:1.28.4");
    setStackValue(ws.projectDir, "prod", ["bbaegok-infra:database", "version"], "11.4.13");
    setStackValue(ws.projectDir, "prod", ["bbaegok-infra:metabase", "image"], "metabase/metabase:v0.56.10");
    const preview = pulumi(ws, ["preview", "--stack", "prod"]);
    assert.equal(preview.status, 0, outputOf(preview));
    assert.match(preview.stdout, /PLANNED DOWNTIME: the database container bbaegok-prod-db will be replaced \(image mariadb:11\.4\.12 → mariadb:11\.4\.13\)/);
    up("prod");
    for (const [name, image] of [["bbaegok-proxy", "nginx:1.28.4"], ["bbaegok-prod-db", "mariadb:11.4.13"], ["bbaegok-prod-metabase", "metabase/metabase:v0.56.10"]] as const) {
      const id = docker(["image", "inspect", "-f", "{{.Id}}", image]).stdout.trim();
      assert.equal(docker(["inspect", "-f", "{{.Image}}", name]).stdout.trim(), id, `${name} does not run ${image}`);
      assert.equal(state(name).running, true, name);
    }
    const rows = docker(["exec", "bbaegok-prod-db", "sh", "-c", 'mariadb -N -uroot -p"$(cat /run/secrets/db_root_password)" bbaegok -e "SELECT item FROM orders ORDER BY id"']).stdout;
    assert.equal(rows, "빼곡 노트\npen\n");
    assert.equal((await viaCloudflare("api.bbaegok.kr", "/")).status, 200);
  });

  it("staging, a guest on the replaced proxy, joins it again on its next up (deploy.yml's pass after prod)", async () => {
    up("staging");
    assert.equal((await viaCloudflare("staging-api.bbaegok.kr", "/")).status, 200);
  });
});

describe("releases through the real SSH path, under load: npm run deploy, rollback, status, and pulumi up alike", () => {
  const file = () => join(ws.projectDir, "Pulumi.prod.yaml");
  const fileImage = () => (parse(readFileSync(file(), "utf8")) as { config: Record<string, { image?: string }> }).config["bbaegok-infra:app"]?.image;
  /** Runs `fn` under continuous load and returns the failed requests (the load's answers too). */
  async function underLoad(fn: () => Promise<void>): Promise<{ failed: LoadAnswer[]; answers: LoadAnswer[] }> {
    const load = startLoad(proxyAddress, "api.bbaegok.kr");
    try {
      await fn();
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await load.stop();
    }
    return { failed: load.answers.filter((a) => a.error), answers: load.answers };
  }

  /**
   * After a release that failed: no request failed and only green answered, the stack file is as `before`,
   * and the next up from that (unchanged) file puts the idle slot back to what the state records, green serving on.
   */
  async function servedThroughAndRecovers(before: string, { failed, answers }: { failed: LoadAnswer[]; answers: LoadAnswer[] }): Promise<void> {
    assert.deepEqual(failed, []);
    assert.ok(answers.every((a) => a.slot === "green"), "only green answered");
    assert.equal(readFileSync(file(), "utf8"), before);
    const { failed: later } = await underLoad(async () => upAsync("prod"));
    assert.deepEqual(later, []);
    assert.deepEqual(await servingVersion(), { slot: "green", version: "1.8.3" });
  }

  before(async () => {
    for (const version of ["1.8.3", "1.8.5", "1.8.6"]) await tagAppVersion({ env: host.dockerEnv }, version);
    await tagAppVersion({ env: host.dockerEnv }, "1.8.4-broken", { unhealthy: true });
    await tagAppVersion({ env: host.dockerEnv }, "1.8.4-no-health-tools", { withoutHealthTools: true });
  });

  it("npm run deploy puts 1.8.3 on the idle slot and flips to it with no failed request, and writes it into the stack file", async () => {
    let result: Awaited<ReturnType<typeof ops>> | undefined;
    const { failed, answers } = await underLoad(async () => {
      result = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.3"]);
    });
    assert.equal(result!.status, 0, result!.stdout + result!.stderr);
    assert.deepEqual(failed, [], `failed requests during the deploy (of ${answers.length})`);
    assert.ok(answers.length > 50, `only ${answers.length} requests`);
    assert.deepEqual(await servingVersion(), { slot: "green", version: "1.8.3" });
    assert.equal(fileImage(), "ghcr.io/bbaegok/bbaegok-api:1.8.3");
  });

  it("then pulumi up from a fresh clone of that file (CI after the merge): nothing changes, the release keeps serving", async () => {
    const clone = join(ws.dir, "fresh-clone");
    cpSync(ws.projectDir, clone, { recursive: true, filter: (src) => !src.includes("node_modules") });
    symlinkSync(join(ws.projectDir, "node_modules"), join(clone, "node_modules"));
    const cli = join(ws.env["PATH"]!.split(":")[0]!, "pulumi");
    const preview = spawnSync(cli, ["preview", "--stack", "prod", "--expect-no-changes", "--non-interactive"], { cwd: clone, env: ws.env, encoding: "utf8" });
    assert.equal(preview.status, 0, outputOf(preview));
    const { failed } = await underLoad(async () => {
      const upped = await pulumiAsync(ws, ["up", "--stack", "prod", "--yes", "--skip-preview"], clone);
      assert.equal(upped.status, 0, outputOf(upped));
    });
    assert.deepEqual(failed, []);
    assert.deepEqual(await servingVersion(), { slot: "green", version: "1.8.3" });
  });

  it("status says what serves, from the state and from the proxy itself", async () => {
    const result = await ops("deploy.ts", ["status", "--stack", "prod"]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /green {2}live {2}ghcr\.io\/bbaegok\/bbaegok-api:1\.8\.3 {2}healthy/);
    assert.match(result.stdout, /green is live and serving\.$/m);
  });

  it("a change of app.env applied by pulumi up goes through the same rollout: no failed request, the new env serves", async () => {
    setStackValue(ws.projectDir, "prod", ["bbaegok-infra:app", "env", "FEATURE_X"], "on");
    const { failed } = await underLoad(async () => upAsync("prod"));
    assert.deepEqual(failed, []);
    const served = await servingVersion();
    assert.equal(served.slot, "blue");
    assert.match(docker(["inspect", "-f", "{{json .Config.Env}}", "bbaegok-prod-app-blue"]).stdout, /FEATURE_X=on/);
    assert.doesNotMatch(docker(["inspect", "-f", "{{json .Config.Env}}", "bbaegok-prod-app-green"]).stdout, /FEATURE_X=on/, "the previous release stays as it was");
  });

  it("rollback flips back to the warm slot with no failed request, and writes its release back into the stack file", async () => {
    let result: Awaited<ReturnType<typeof ops>> | undefined;
    const startedAt = docker(["inspect", "-f", "{{.State.StartedAt}}", "bbaegok-prod-app-green"]).stdout;
    const { failed } = await underLoad(async () => {
      result = await ops("deploy.ts", ["rollback", "--stack", "prod"]);
    });
    assert.equal(result!.status, 0, result!.stdout + result!.stderr);
    assert.deepEqual(failed, []);
    assert.deepEqual(await servingVersion(), { slot: "green", version: "1.8.3" });
    assert.equal(docker(["inspect", "-f", "{{.State.StartedAt}}", "bbaegok-prod-app-green"]).stdout, startedAt, "the warm slot was not restarted");
    assert.doesNotMatch(readFileSync(file(), "utf8"), /FEATURE_X/);
  });

  it("a release that never turns healthy never becomes live: the deploy fails saying why (Docker's last check), the file is put back, nothing fails", async () => {
    const before = readFileSync(file(), "utf8");
    let result: Awaited<ReturnType<typeof ops>> | undefined;
    const { failed, answers } = await underLoad(async () => {
      result = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.4-broken"]);
    });
    assert.equal(result!.status, 1, result!.stdout + result!.stderr);
    // Why, from the server: Docker's last run of the new slot's health check.
    assert.match(result!.stderr, /bbaegok-prod-app-blue is (unhealthy|starting); Docker's last health check of it \(exit 1\): curl: \(22\) The requested URL returned error: 503/);
    await servedThroughAndRecovers(before, { failed, answers });
  });

  it("a release Docker never reports healthy though it answers (no curl or wget in the image), deployed again after its health wait failed: the second run re-creates the slot and waits again; nothing goes live, nothing fails", async () => {
    const before = readFileSync(file(), "utf8");
    const image = "ghcr.io/bbaegok/bbaegok-api:1.8.4-no-health-tools";
    const { failed, answers } = await underLoad(async () => {
      const first = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
      assert.equal(first.status, 1, first.stdout + first.stderr);
      // The operator (or CI's re-run) tries again: the slot Pulumi created, with the error, is replaced and waited for
      // again (the smoke checks would refuse it on Docker's word too: test/real/rollout-checks.test.ts).
      const again = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
      assert.equal(again.status, 1, again.stdout + again.stderr);
      assert.match(again.stdout + again.stderr, /app-blue creating replacement .*container failed to be in healthy state/);
    });
    await servedThroughAndRecovers(before, { failed, answers });
  });

  it("a proxy serving another slot than the state says: the deploy refuses before touching anything, naming both", async () => {
    const live = `${host.dataDir}/proxy/live/upstreams/prod.conf`;
    // The live group's server line names the slot's fixed address on prod's edge network (blue .11, green .12).
    const address = { blue: "172.30.10.11:8080", green: "172.30.10.12:8080" } as const;
    const flip = (from: keyof typeof address, to: keyof typeof address) => {
      assert.equal(host.asRoot(`grep -q 'server ${address[from]};' '${live}' && sed -i 's/server ${address[from]};/server ${address[to]};/' '${live}'`).status, 0);
      docker(["exec", "bbaegok-proxy", "nginx", "-s", "reload"]);
    };
    flip("green", "blue");
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const blueStarted = docker(["inspect", "-f", "{{.State.StartedAt}}", "bbaegok-prod-app-blue"]).stdout;
      const result = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.5"]);
      assert.equal(result.status, 1, result.stdout + result.stderr);
      assert.match(result.stdout + result.stderr, /the proxy serves blue, but the stack's state says green serves/);
      assert.equal(docker(["inspect", "-f", "{{.State.StartedAt}}", "bbaegok-prod-app-blue"]).stdout, blueStarted, "the serving slot was touched");
      assert.equal(fileImage(), "ghcr.io/bbaegok/bbaegok-api:1.8.3");
    } finally {
      flip("blue", "green");
    }
  });

  it("pulumi up while a deploy runs is refused (the stack's lock), and the deploy goes through", async () => {
    const deploying = opsLive("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.5"]);
    await waitFor("the deploy's pulumi up to start", () => /Updating \(prod\)|updating/.test(deploying.output()), 60_000, 200);
    const second = pulumi(ws, ["up", "--stack", "prod", "--yes", "--skip-preview"]);
    assert.notEqual(second.status, 0);
    assert.match(outputOf(second), /locked/i);
    const result = await deploying.done;
    assert.equal(result.status, 0, deploying.output());
    assert.deepEqual(await servingVersion(), { slot: "blue", version: "1.8.5" });
  });

  it("an SSH drop in the middle of the switch: status tells the truth, and the next deploy recovers", async () => {
    // Hold the proxy's activation lock, so the deploy's switch is certainly under way (waiting for it) when its sessions die.
    const lock = `${host.dataDir}/proxy/.activate.lock`;
    // Root's, on the server itself: the deploy user's sudo runs only the install helper.
    const holder = spawn("flock", [lock, "sh", "-c", "echo held; exec sleep 120"]);
    await new Promise<void>((resolve) => holder.stdout.on("data", (d: Buffer) => d.toString().includes("held") && resolve()));
    const deploying = opsLive("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.6"]);
    try {
      await waitFor("the switch (the proxy's activation) to start", () => /proxy-site-activate (updating|creating)/.test(deploying.output()), 240_000, 100);
      await new Promise((r) => setTimeout(r, 2000));
      // Every SSH session of the deploy user dies at once, the switch's among them.
      spawnSync("pkill", ["-KILL", "-u", host.user, "sshd"]);
    } finally {
      // The lock goes too; whatever of the switch survived on the server may go on.
      spawnSync("pkill", ["-KILL", "-x", "-f", "sleep 120"]);
      holder.kill();
    }
    const dropped = await deploying.done;
    assert.notEqual(dropped.status, 0, `the deploy did not notice its sessions dying:\n${deploying.output()}`);
    await new Promise((r) => setTimeout(r, 3000));
    const status = await ops("deploy.ts", ["status", "--stack", "prod"]);
    assert.equal(status.status, 0, status.stderr);
    const served = await servingVersion();
    // Whatever the drop interrupted, status says what the proxy serves (and warns if the state says otherwise).
    assert.match(status.stdout, new RegExp(`${served.slot} is live and serving|the proxy routes to ${served.slot}\\.`));
    const again = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.6"]);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.deepEqual(await servingVersion(), { slot: "green", version: "1.8.6" });
    const final = await ops("deploy.ts", ["status", "--stack", "prod"]);
    assert.match(final.stdout, /green is live and serving\.$/m);
  });

  it("a deploy killed while the new slot waits for its health check (a cancelled job, a lost runner): the live slot serves on; the next deploy names the lock it left, then the container it was creating, and goes through once the README's two steps removed them", async () => {
    const { failed, answers } = await underLoad(async () => {
      const killed = opsSession(ws, "deploy.ts", ["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.8.4-no-health-tools"]);
      await waitFor("the new slot's health wait", () => /app-blue creating replacement/.test(killed.stdout()), 240_000, 100);
      await new Promise((r) => setTimeout(r, 2000));
      await killed.hangUp();
      assert.equal(state("bbaegok-prod-app-blue").health, "starting", "the killed run's container is there, unknown to the state");
      const image = "ghcr.io/bbaegok/bbaegok-api:1.8.3";
      const locked = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
      assert.equal(locked.status, 1, locked.stdout + locked.stderr);
      assert.match(locked.stdout + locked.stderr, /Another pulumi up of prod holds its lock, or one was interrupted and left it: once sure none runs .* pulumi cancel --stack prod --yes and deploy again\./);
      const cancel = pulumi(ws, ["cancel", "--stack", "prod", "--yes"]);
      assert.equal(cancel.status, 0, outputOf(cancel));
      const taken = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
      assert.equal(taken.status, 1, taken.stdout + taken.stderr);
      assert.match(taken.stdout + taken.stderr, /bbaegok-prod-app-blue is a container an interrupted pulumi up of prod was creating: Pulumi's state does not know it, and it serves nothing \(green serves\)\. Remove it on the server \(docker rm -f bbaegok-prod-app-blue\) and deploy again\./);
      docker(["rm", "-f", "bbaegok-prod-app-blue"]);
      const through = await ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
      assert.equal(through.status, 0, through.stdout + through.stderr);
    });
    assert.deepEqual(failed, [], `failed requests (of ${answers.length})`);
    assert.deepEqual(await servingVersion(), { slot: "blue", version: "1.8.3" });
    assert.equal(fileImage(), "ghcr.io/bbaegok/bbaegok-api:1.8.3");
  });
});

describe("a power cut on the home server: everything serves again by itself", () => {
  it("after Docker's every process is killed and the daemons start again, every container that ran runs again and is healthy, each stack serves what it served, and a preview with a refresh plans nothing", async (t) => {
    const running = () => docker(["ps", "--format", "{{.Names}}"]).stdout.split("\n").filter(Boolean).sort();
    const startedAt = (name: string) => docker(["inspect", "-f", "{{.State.StartedAt}}", name]).stdout.trim();
    const before = running();
    assert.deepEqual(before, [...containersOf("prod"), ...containersOf("staging")].sort(), "every container of both stacks runs before the cut");
    const started = Object.fromEntries(before.map((name) => [name, startedAt(name)]));
    const served = await servingVersion();
    await host.powerCut();
    // No one runs `pulumi up` or `docker start`: Docker's restart policies alone bring the server back. The
    // app exits while its database recovers (a JPA app does not wait for it) and Docker starts it again.
    let now: string[] = [];
    await waitFor(
      "every container that ran before the cut to run again and be healthy",
      () => {
        now = running();
        return before.every((name) => now.includes(name) && (state(name).health ?? "healthy") === "healthy");
      },
      300_000,
      1000,
    ).catch((err: Error) => assert.fail(`${err.message}; running: ${now.map((n) => `${n} (${state(n).health ?? "no check"})`).join(", ")}`));
    assert.deepEqual(running(), before);
    for (const name of before) assert.notEqual(startedAt(name), started[name], `${name} was not started again: the cut did not stop it`);
    t.diagnostic(`restarts after the cut: ${before.map((name) => `${name} ${docker(["inspect", "-f", "{{.RestartCount}}", name]).stdout.trim()}`).join(", ")}`);
    assert.deepEqual(await servingVersion(), served);
    assert.equal((await viaCloudflare("staging-api.bbaegok.kr", "/")).status, 200);
    assert.equal((await viaCloudflare("metabase.bbaegok.kr", "/api/health")).status, 200);
    for (const stack of ["prod", "staging"]) {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--refresh", "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    }
  });
});
