// The scripts a `pulumi up` runs on the server to change the proxy's files,
// run here for real with a local shell against a local nginx: the proposed
// files of a stack become live as one change only when nginx -t accepts the
// whole configuration; otherwise every previous file is back, nginx keeps
// serving what it served, and the run fails with nginx's own message. A guest
// leaving removes only its own files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { request } from "node:https";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import {
  activationScript,
  proposalManifest,
  type ActivationCommands,
} from "../../infra/proxy/activation.js";
import { MAIN_CONF, proxyDirs, stackFilePaths } from "../../infra/proxy/contract.js";
import { renderMainConf, stackProxyFiles, type ProxyLayout } from "../../infra/proxy/render.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import { loadStack } from "../../stacks/config/load.js";
import { loopbackAddresses } from "../support/edge.js";
import { loopbackLayout, nginxBinary, selfSignedCertificate, startNginx, type Nginx } from "../support/nginx.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";

const configOf = (stack: string) => loadStack(stack, REPO).config;
const prod = configOf("prod");
const staging = configOf("staging");

describe("activating proxy files on a real nginx", () => {
  const dir = tempDir("activation");
  const dirs = proxyDirs(dir.path);
  let layout: ProxyLayout;
  let nginx: Nginx | undefined;
  let commands: ActivationCommands;
  const servers = new Map<string, Server>();
  const portOf = (name: string) => {
    const a = servers.get(name)?.address();
    return typeof a === "object" && a ? a.port : undefined;
  };
  const addressOf = loopbackAddresses({ prod, staging }, portOf);

  /** What a stack's `pulumi up` installs under proposed/<stack> (ServerFiles on the server). */
  function propose(stack: string, config: StackConfig, extra: Record<string, string> = {}, live: Slot = "blue"): { path: string; content: string }[] {
    const files = stackProxyFiles(config, stack, layout, live, addressOf);
    const paths = stackFilePaths(stack);
    const scratch = tempDir("cert");
    const certLayout = { ...layout, confDir: scratch.path };
    mkdirSync(join(scratch.path, "certs"));
    selfSignedCertificate(certLayout, stack, [config.domains.api, ...(config.metabase.enabled ? [config.domains.metabase!] : [])]);
    const set = [
      { path: paths.conf, content: files.conf },
      { path: paths.upstreams, content: files.upstreams },
      { path: paths.certificate, content: readFileSync(join(scratch.path, paths.certificate), "utf8") },
      { path: paths.key, content: readFileSync(join(scratch.path, paths.key), "utf8") },
      ...Object.entries(extra).map(([path, content]) => ({ path, content })),
    ];
    scratch.remove();
    for (const f of set) {
      const target = join(dirs.proposed(stack), f.path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, f.content);
      chmodSync(target, f.path.endsWith(".key") ? 0o600 : 0o644);
    }
    return set;
  }

  function activate(stack: string, files: { path: string; content: string }[], manifest = proposalManifest(files)) {
    const script = activationScript({ label: `stack ${stack}`, liveDir: dirs.live, files: files.map((f) => f.path), lockPath: dirs.lock, commands, change: { kind: "install", proposedDir: dirs.proposed(stack) } });
    const result = spawnSync("sh", ["-c", script], { input: manifest, encoding: "utf8" });
    return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
  }

  function deactivate(stack: string, files: readonly string[], verify = true) {
    const script = activationScript({ label: `stack ${stack}`, liveDir: dirs.live, files, lockPath: dirs.lock, commands, change: { kind: "remove", verify } });
    const result = spawnSync("sh", ["-c", script], { encoding: "utf8" });
    return { status: result.status ?? -1, stderr: result.stderr };
  }

  const liveText = (path: string) => readFileSync(join(dirs.live, path), "utf8");

  const served = (host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: layout.listen.https, servername: host, headers: { host }, rejectUnauthorized: false, agent: false },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });

  before(async () => {
    requireCommand("flock", "util-linux");
    requireCommand("sha256sum", "coreutils");
    layout = await loopbackLayout(dir.path);
    for (const name of ["bbaegok-prod-app-blue", "bbaegok-prod-app-green", "bbaegok-staging-app-blue", "bbaegok-prod-metabase"]) {
      const server = createServer((_req, res) => res.end(name));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      servers.set(name, server);
    }
    // Like the proxy container: check with the same binary; reload only while nginx runs.
    const bin = nginxBinary();
    const base = `${bin} -p ${layout.runtimeDir} -e ${layout.errorLog} -c ${dirs.live}/${MAIN_CONF}`;
    commands = { test: `${base} -t`, reload: `if [ -s ${layout.pidFile} ] && kill -0 "$(cat ${layout.pidFile})" 2>/dev/null; then ${base} -s reload; fi` };
  });

  after(async () => {
    await nginx?.stop();
    for (const s of servers.values()) s.close();
    dir.remove();
  });

  it("the owner's first activation puts nginx.conf and its stack's files live before nginx runs", async () => {
    // As on a fresh server: the live folder does not exist before the first activation.
    rmSync(dirs.live, { recursive: true, force: true });
    const files = propose("prod", prod, { [MAIN_CONF]: renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" }) });
    const result = activate("prod", files);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /proxy activation of stack prod: nginx -t passed/);
    for (const f of files) assert.equal(liveText(f.path), f.content, `${f.path} is not the proposed file`);
    assert.equal(statSync(join(dirs.live, stackFilePaths("prod").key)).mode & 0o777, 0o600, "the live key is readable beyond its owner");
    nginx = await startNginx(join(dirs.live, MAIN_CONF), layout.runtimeDir, layout.listen.http);
    assert.deepEqual(await served(prod.domains.api), { status: 200, body: "bbaegok-prod-app-blue" });
  });

  it("a guest's activation adds its own files and nginx serves them after a graceful reload", async () => {
    const before = liveText(MAIN_CONF);
    const result = activate("staging", propose("staging", staging));
    assert.equal(result.status, 0, result.stderr);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await served(staging.domains.api), { status: 200, body: "bbaegok-staging-app-blue" });
    assert.equal(liveText(MAIN_CONF), before, "the guest touched the owner's nginx.conf");
  });

  it("a changed proposal (prod's live slot) becomes live as one change", async () => {
    const result = activate("prod", propose("prod", prod, {}, "green"));
    assert.equal(result.status, 0, result.stderr);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await served(prod.domains.api), { status: 200, body: "bbaegok-prod-app-green" });
  });

  it("a configuration nginx -t refuses is never activated: every previous file is back and keeps serving, and the run fails with nginx's message", async () => {
    const paths = stackFilePaths("staging");
    const before = [paths.conf, paths.upstreams, paths.certificate].map(liveText);
    const files = propose("staging", staging);
    const broken = files.map((f) => (f.path === paths.conf ? { ...f, content: `${f.content}\nproxy_buffer_everything on;\n` } : f));
    writeFileSync(join(dirs.proposed("staging"), paths.conf), broken.find((f) => f.path === paths.conf)!.content);
    const result = activate("staging", broken);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /proxy activation of stack staging: nginx -t refused the new configuration; the previous files are back and keep serving/);
    assert.match(result.stderr, /unknown directive "proxy_buffer_everything"/);
    assert.deepEqual([paths.conf, paths.upstreams, paths.certificate].map(liveText), before);
    assert.deepEqual(await served(staging.domains.api), { status: 200, body: "bbaegok-staging-app-blue" });
    assert.ok(!readdirHasLeftovers(), "the activation left temporary files in the live directory");
  });

  it("refuses proposals that are not what the run installed (a concurrent run changed them), changing nothing", () => {
    const paths = stackFilePaths("staging");
    const before = liveText(paths.upstreams);
    const files = propose("staging", staging);
    const manifest = proposalManifest(files.map((f) => (f.path === paths.upstreams ? { ...f, content: "set $x \"elsewhere:1\";\n" } : f)));
    const result = activate("staging", files, manifest);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /are not the ones this run installed \(sha256 differs\); nothing was changed/);
    assert.equal(liveText(paths.upstreams), before);
  });

  it("a removal nginx -t refuses puts the files back", async () => {
    const paths = stackFilePaths("prod");
    const result = deactivate("prod", [paths.certificate, paths.key]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /proxy deactivation of stack prod: nginx -t refused the new configuration; the previous files are back and keep serving/);
    assert.ok(existsSync(join(dirs.live, paths.key)));
    assert.equal((await served(prod.domains.api)).status, 200);
  });

  it("a guest leaving removes only its own files; its names close, prod keeps serving", async () => {
    const paths = stackFilePaths("staging");
    const result = deactivate("staging", Object.values(paths));
    assert.equal(result.status, 0, result.stderr);
    for (const p of Object.values(paths)) assert.ok(!existsSync(join(dirs.live, p)), `${p} is still live`);
    for (const p of [MAIN_CONF, ...Object.values(stackFilePaths("prod"))]) assert.ok(existsSync(join(dirs.live, p)), `${p} was removed`);
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: layout.listen.https, servername: staging.domains.api, rejectUnauthorized: false }, () => resolve(socket.end()));
        socket.on("error", reject);
      }),
      /alert|handshake|unrecognized/i,
    );
    assert.deepEqual(await served(prod.domains.api), { status: 200, body: "bbaegok-prod-app-green" });
  });

  function readdirHasLeftovers(): boolean {
    const result = spawnSync("sh", ["-c", `find ${dirs.live} -name '.*' ! -path ${dirs.live}`], { encoding: "utf8" });
    return result.stdout.trim() !== "";
  }
});
