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

  before(async () => {
    requireCommand("curl", "curl");
    // docker exec <container> <command…>: the command, here.
    writeFileSync(join(dir.path, "docker"), '#!/bin/sh\n[ "$1" = exec ] || exit 99\nshift 2\nexec "$@"\n');
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
});
