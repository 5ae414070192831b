// The rollout's checks in a rewarm (infra/proxy/rollout.ts), run by sh and
// curl for real against an HTTP server answering as the proxy's internal
// route does (the upstream header naming the slot that served). Stood in:
// `docker exec <proxy>` runs its command here (the Docker host tests run it in
// the real proxy container), and the install helper's `append` writes the
// history line to a file here (test/real/install-helper.test.ts tests it).
// A rewarm re-creates the warm slot: it must go on only while the live slot
// serves, and it must never wait for a flip. A rollout's checks skip only on
// the stack's first rollout, which the helper's `exists` tells (here a stand-in
// sudo): any other failure of it stops them.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { UPSTREAM_HEADER } from "../../infra/proxy/contract.js";
import { precheckScript, smokeScript, verifyScript, type RolloutScriptArgs } from "../../infra/proxy/rollout.js";
import type { Slot } from "../../stacks/config/schema.js";
import { requireCommand, tempDir } from "../support/system.js";

const ADDRESSES: Record<Slot, string> = { blue: "172.30.10.11:8080", green: "172.30.10.12:8080" };

describe("the rewarm's checks, run by sh against the proxy's answers", () => {
  const dir = tempDir("rollout-checks");
  const history = join(dir.path, "deploy-history.jsonl");
  /** The slot the "proxy" routes the public route to; undefined: it answers 502 with no upstream. */
  let serving: Slot | undefined = "green";
  const smoked: string[] = [];
  let server: Server;
  let args: RolloutScriptArgs;
  const state = join(dir.path, "state");
  /** What `docker inspect` says of a slot's container: its health, its release label. */
  const docker = (slot: Slot, what: { health?: string; release?: string }) => {
    for (const [kind, value] of Object.entries(what)) writeFileSync(join(state, `${args?.containers[slot] ?? `bbaegok-prod-app-${slot}`}.${kind}`), `${value}\n`);
  };

  before(async () => {
    requireCommand("curl", "curl");
    // docker exec <container> <command…>: the command, here. docker inspect -f <format> <container>: the
    // container's health or release label (as the format asks), from the file the test wrote in state/; none: no such container.
    writeFileSync(
      join(dir.path, "docker"),
      `#!/bin/sh
case "$1" in
  exec) shift 2; exec "$@" ;;
  inspect)
    kind=health; case "$3" in *Labels*) kind=release ;; esac
    [ -e "${state}/$4.$kind" ] || { echo "Error: No such object: $4" >&2; exit 1; }
    cat "${state}/$4.$kind" ;;
  *) exit 99 ;;
esac
`,
    );
    mkdirSync(state);
    for (const slot of ["blue", "green"] as const) docker(slot, { health: "healthy" });
    // sudo -n <helper> append <file>: stdin appended to the file; exists <file>:
    // as the helper (exit 1, nothing said, when absent), or as sudo refusing
    // when SUDO_REFUSES is set (exit 1 too, with its message).
    writeFileSync(
      join(dir.path, "sudo"),
      `#!/bin/sh
[ "$1" = -n ] || exit 99
[ -z "\${SUDO_REFUSES:-}" ] || { echo "sudo: a password is required" >&2; exit 1; }
case "$3" in
  append) cat >> "$4" ;;
  exists) [ -e "$4" ] ;;
  *) exit 99 ;;
esac
`,
    );
    for (const f of ["docker", "sudo"]) chmodSync(join(dir.path, f), 0o755);
    server = createServer((req, res) => {
      const slot = req.headers["x-bbaegok-slot"];
      if (typeof slot === "string") smoked.push(slot);
      const to = typeof slot === "string" ? (slot as Slot) : serving;
      if (!to) return void res.writeHead(502).end();
      res.writeHead(200, { [UPSTREAM_HEADER]: ADDRESSES[to] }).end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    args = {
      stack: "prod",
      action: "rewarm",
      target: "blue",
      live: "green",
      release: "0123456789abcdef",
      otherRelease: "fedcba9876543210",
      waitSeconds: 2,
      image: "ghcr.io/bbaegok/bbaegok-api:1.8.2",
      containers: { blue: "bbaegok-prod-app-blue", green: "bbaegok-prod-app-green" },
      addresses: ADDRESSES,
      proxyContainer: "bbaegok-proxy",
      internalPort: (server.address() as AddressInfo).port,
      hostHeader: "api.bbaegok.kr",
      healthPath: "/actuator/health",
      smokeChecks: [],
      liveConf: join(dir.path, "live", "prod.conf"),
      historyFile: history,
    };
  });
  after(() => {
    server?.close();
    dir.remove();
  });

  /** The script by sh, without blocking this process (its HTTP server answers the script's curl). */
  const run = (script: string, env: Record<string, string> = {}) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn("sh", ["-c", script], { env: { ...process.env, ...env, PATH: `${dir.path}:${process.env.PATH}` }, timeout: 60_000 });
      let [stdout, stderr] = ["", ""];
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });

  it("precheck: the live slot serves, as the state says: the warm slot may be re-created", async () => {
    serving = "green";
    const result = await run(precheckScript(args));
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^rewarm of prod: green serves, as the stack's state says; blue \(warm\) is re-created/m);
  });

  it("precheck: the proxy serves the warm slot (the state is wrong): refused before anything is touched, naming both", async () => {
    serving = "blue";
    const result = await run(precheckScript(args));
    assert.equal(result.status, 1);
    assert.equal(result.stderr.trim(), "rewarm of prod: the proxy serves blue, but the stack's state says green serves; re-creating blue (the warm slot) could stop the slot that serves. Nothing was changed. See npm run status -- --stack prod");
  });

  it("precheck: no slot answers through the proxy: refused", async () => {
    serving = undefined;
    const result = await run(precheckScript(args));
    assert.equal(result.status, 1);
    assert.match(result.stderr, /the proxy serves none, but the stack's state says green serves/);
  });

  it("smoke: the checks go to the re-created warm slot through the internal route", async () => {
    serving = "green";
    smoked.length = 0;
    const result = await run(smokeScript(args));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(smoked, ["blue"]);
    assert.match(result.stdout, /^rewarm of prod: smoke checks of blue passed$/m);
  });

  it("verify: the live slot still serves (no flip to wait for); the history line says rewarm, naming the warm slot and its release", async () => {
    serving = "green";
    const result = await run(verifyScript(args));
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^rewarm of prod: green serves; blue \(warm\) runs ghcr\.io\/bbaegok\/bbaegok-api:1\.8\.2$/m);
    const line = JSON.parse(readFileSync(history, "utf8").trim().split("\n").pop()!) as Record<string, string>;
    assert.deepEqual([line.action, line.slot, line.image, line.release, line.result], ["rewarm", "blue", args.image, args.release, "succeeded"]);
  });

  it("verify: the warm slot serves after the rewarm (something flipped it): it fails, saying what serves, and records the failure", async () => {
    serving = "blue";
    const result = await run(verifyScript(args));
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^rewarm of prod: after the rewarm the proxy serves blue, not green/m);
    assert.equal((JSON.parse(readFileSync(history, "utf8").trim().split("\n").pop()!) as { result: string }).result, "failed");
  });

  describe("a rollout's first-rollout test (is the stack's conf on the proxy yet?)", () => {
    const rollout = () => ({ ...args, action: "rollout" as const });

    it("the conf absent (the helper's exit 1, nothing said): a first rollout, nothing to check yet", async () => {
      const result = await run(precheckScript(rollout()));
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /^rollout of prod: first rollout, nothing serves yet$/m);
    });

    it("the conf there: the proxy is asked what serves", async () => {
      mkdirSync(join(dir.path, "live"), { recursive: true });
      writeFileSync(args.liveConf, "# live\n");
      try {
        serving = "green";
        docker("green", { release: args.otherRelease });
        const result = await run(precheckScript(rollout()));
        assert.equal(result.status, 0, result.stderr);
        assert.match(result.stdout, /^rollout of prod: green serves, as the stack's state says; blue gets the release$/m);
      } finally {
        rmSync(args.liveConf);
      }
    });

    it("sudo refusing (exit 1 too) is no answer: the precheck and the smoke checks fail naming it, never skip as a first rollout", async () => {
      for (const script of [precheckScript(rollout()), smokeScript(rollout())]) {
        const result = await run(script, { SUDO_REFUSES: "1" });
        assert.equal(result.status, 1, result.stdout);
        assert.match(result.stderr, /^rollout of prod: cannot tell whether the proxy has this stack's files \(the install helper's exists: sudo: a password is required\); nothing was changed$/m);
        assert.doesNotMatch(result.stdout, /first rollout/);
      }
    });
  });
  describe("a rollout's checks with the stack's conf on the proxy", () => {
    const rollout = () => ({ ...args, action: "rollout" as const });
    before(() => {
      mkdirSync(join(dir.path, "live"), { recursive: true });
      writeFileSync(args.liveConf, "# live\n");
    });
    after(() => rmSync(args.liveConf));

    it("precheck: the slot that serves runs another release than the state records for it (it went live in a run that did not record it, and the stack file was put back): refused before anything is touched", async () => {
      serving = "green";
      docker("green", { release: "5555555555555555" });
      const result = await run(precheckScript(rollout()));
      assert.equal(result.status, 1, result.stdout);
      assert.equal(
        result.stderr.trim(),
        "rollout of prod: the proxy serves green, which runs release 5555555555555555, not fedcba9876543210, the one the stack's state records for it: it went live in a run that did not record it. Going on could replace the slot that serves. Nothing was changed. To record it, set the stack file to the release green runs (npm run status -- --stack prod shows its image) and run pulumi up again",
      );
    });

    it("precheck: the target already serves this very release (a flip a run did not record, the stack file unchanged): the run finishes it; another release there is refused", async () => {
      serving = "blue";
      docker("blue", { release: args.release });
      const finishing = await run(precheckScript(rollout()));
      assert.equal(finishing.status, 0, finishing.stderr);
      assert.match(finishing.stdout, /^rollout of prod: blue already serves this release \(a flip a previous run did not record\); finishing it$/m);
      docker("blue", { release: "5555555555555555" });
      const refused = await run(precheckScript(rollout()));
      assert.equal(refused.status, 1, refused.stdout);
      assert.match(refused.stderr, /the proxy serves blue, but the stack's state says green serves; this rollout would replace blue while it serves/);
    });

    it("smoke: Docker reports the target unhealthy (a run after one whose health wait timed out: Pulumi does not wait again): refused before any check is sent, though the app answers", async () => {
      serving = "green";
      smoked.length = 0;
      docker("blue", { health: "unhealthy" });
      const result = await run(smokeScript(rollout()));
      assert.equal(result.status, 1, result.stdout);
      assert.equal(result.stderr.trim(), "rollout of prod: Docker reports blue unhealthy, not healthy; green keeps serving");
      assert.deepEqual(smoked, []);
    });

    it("smoke: Docker still starting the target's checks: it waits for healthy, up to the slot's deployTimeout, then checks", async () => {
      smoked.length = 0;
      docker("blue", { health: "starting" });
      const becomesHealthy = setTimeout(() => docker("blue", { health: "healthy" }), 1000);
      const result = await run(smokeScript(rollout()));
      clearTimeout(becomesHealthy);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(smoked, ["blue"]);
      docker("blue", { health: "starting" });
      const late = await run(smokeScript({ ...rollout(), waitSeconds: 2 }));
      assert.equal(late.status, 1, late.stdout);
      assert.equal(late.stderr.trim(), "rollout of prod: Docker reports blue starting, not healthy; green keeps serving");
    });

    it("smoke: a container with no health check, or none at all: refused, saying so", async () => {
      docker("blue", { health: "no health check" });
      const unchecked = await run(smokeScript(rollout()));
      assert.equal(unchecked.status, 1, unchecked.stdout);
      assert.match(unchecked.stderr, /^rollout of prod: Docker reports blue no health check, not healthy; green keeps serving$/m);
      rmSync(join(state, `${args.containers.blue}.health`));
      const missing = await run(smokeScript(rollout()));
      assert.equal(missing.status, 1, missing.stdout);
      assert.match(missing.stderr, /^rollout of prod: cannot ask Docker about blue: Error: No such object: bbaegok-prod-app-blue; green keeps serving$/m);
      docker("blue", { health: "healthy" });
    });
  });
});
