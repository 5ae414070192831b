// Deploy, rollback and status driven through the real ServerControl: its
// scripts run in a local shell against Debian's nginx with the prod stack's
// files, two HTTP servers as the slots, and the deploy lock and history on
// disk. Pulumi's engine is the one stand-in (the CLI cannot run here): it
// records what it was asked and "starts" the slot by setting what
// `docker inspect` answers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { runDeployCommand, type DeployDeps } from "../../ops/deploy.js";
import { deploy, realClock, rollback, type StackControl } from "../../ops/deploy/orchestrator.js";
import { historyPath } from "../../ops/deploy/server.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import { startDeployServer, startLoad, STACK, type DeployServer } from "../support/deploy-server.js";
import { requireCommand, waitFor } from "../support/system.js";

const NEW_IMAGE = "ghcr.io/bbaegok/bbaegok-api:1.9.0";

interface SlotStart {
  /** What `docker inspect` says once the image is on the slot. */
  container: string;
  /** What the health-check path answers through the proxy. */
  healthStatus: number;
}

/** The engine stand-in: the stack's config in memory, every call recorded. */
function standInEngine(ds: DeployServer, start: SlotStart = { container: "running/healthy", healthStatus: 200 }) {
  const config: StackConfig = structuredClone(ds.config);
  const calls = { updateSlot: [] as [Slot, string][], recordLiveSlot: [] as Slot[] };
  const engine: StackControl = {
    config: async () => structuredClone(config),
    async updateSlot(slot, image) {
      calls.updateSlot.push([slot, image]);
      config.app.slots[slot] = { image };
      ds.slots[slot].image = image;
      ds.slots[slot].healthStatus = start.healthStatus;
      ds.setContainer(slot, start.container);
    },
    async recordLiveSlot(slot) {
      calls.recordLiveSlot.push(slot);
      config.app.liveSlot = slot;
    },
  };
  return { engine, calls, config };
}

describe("blue/green deploys on a real proxy", () => {
  let ds: DeployServer;
  const lines: string[] = [];
  const reporter = { line: (text: string) => lines.push(text) };
  const who = "tester@ci";
  const hostHeader = () => ds.config.app.healthCheck.hostHeader ?? ds.config.domains.api;

  before(async () => {
    ds = await startDeployServer("deploy-orchestrator");
  });
  after(async () => {
    await ds?.stop();
  });
  // Every test starts from blue live and healthy, green healthy on the stack's image.
  beforeEach(async () => {
    lines.length = 0;
    for (const slot of ["blue", "green"] as const) {
      ds.setContainer(slot, "running/healthy");
      ds.slots[slot].healthStatus = 200;
      ds.slots[slot].image = ds.config.app.image;
    }
    await switchAndWait("blue");
  });

  /** Switches outside a deploy; nginx's reload returns before its new workers take over. */
  async function switchAndWait(slot: Slot) {
    await ds.server.switchTo(slot);
    await waitFor(`${slot} to serve`, async () => (await ds.server.servedBy(hostHeader())) === slot, 10_000);
  }

  async function history() {
    return ds.server.readHistory(100);
  }

  it("a deploy puts the image on the idle slot, flips traffic to it under load with no failed request, and records it", async () => {
    const { engine, calls } = standInEngine(ds);
    const load = startLoad(ds);
    await new Promise((r) => setTimeout(r, 300));
    const outcome = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);
    await new Promise((r) => setTimeout(r, 300));
    const answers = await load.stop();

    assert.ok(outcome.ok, `${outcome.summary}\n${lines.join("\n")}`);
    assert.match(outcome.summary, /prod: green is live with ghcr\.io\/bbaegok\/bbaegok-api:1\.9\.0; blue stays warm/);
    assert.deepEqual(calls.updateSlot, [["green", NEW_IMAGE]]);
    assert.deepEqual(calls.recordLiveSlot, ["green"]);
    assert.equal(await ds.server.servedBy(hostHeader()), "green");
    assert.match(readFileSync(ds.upstreamFile, "utf8"), /set \$bbaegok_prod_api bbaegok_prod_green;/);
    for (const step of ["read the stack", "wait until healthy", "smoke checks through the proxy (1)", "switch live traffic to green"]) {
      assert.ok(lines.some((l) => l.includes(`${step}: done in`)), `no progress line for "${step}":\n${lines.join("\n")}`);
    }

    const failed = answers.filter((a) => a.error);
    assert.equal(failed.length, 0, `${failed.length} of ${answers.length} requests failed: ${[...new Set(failed.map((a) => a.error))].join(", ")}`);
    assert.ok(answers.some((a) => a.slot === "blue") && answers.some((a) => a.slot === "green"), "traffic did not move from blue to green");
    const last = answers.reduce((a, b) => (b.start > a.start ? b : a));
    assert.equal(last.slot, "green");

    const record = (await history()).pop()!;
    assert.equal(record.action, "deploy");
    assert.equal(record.result, "succeeded");
    assert.equal(record.who, who);
    assert.equal(record.image, NEW_IMAGE);
    assert.equal(record.slot, "green");
    assert.equal(record.stack, STACK);
    assert.ok(!Number.isNaN(Date.parse(record.at)));
    assert.equal(statSync(historyPath(join(ds.config.server.dataDir, STACK))).mode & 0o777, 0o644, "the history is not readable by the team");
  });

  it("an unhealthy idle slot is never made live: the deploy stops at the health wait, blue keeps serving", async () => {
    const { engine, calls } = standInEngine(ds, { container: "running/unhealthy", healthStatus: 200 });
    const before = readFileSync(ds.upstreamFile, "utf8");
    const outcome = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);

    assert.equal(outcome.ok, false);
    assert.match(outcome.summary, /FAILED at "wait until healthy": bbaegok-prod-app-green is unhealthy; see: docker logs bbaegok-prod-app-green/);
    assert.equal(readFileSync(ds.upstreamFile, "utf8"), before);
    assert.equal(await ds.server.servedBy(hostHeader()), "blue");
    assert.deepEqual(calls.recordLiveSlot, []);
    const record = (await history()).pop()!;
    assert.equal(record.result, "failed");
    assert.match(record.detail ?? "", /wait until healthy failed/);
  });

  it("a failing smoke check stops the deploy before the flip; the live slot keeps serving", async () => {
    const { engine, calls } = standInEngine(ds, { container: "running/healthy", healthStatus: 500 });
    const before = readFileSync(ds.upstreamFile, "utf8");
    const outcome = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);

    assert.equal(outcome.ok, false);
    assert.match(outcome.summary, /FAILED at "smoke checks through the proxy \(1\)": GET \/actuator\/health on green answered 500, expected 200/);
    assert.equal(readFileSync(ds.upstreamFile, "utf8"), before);
    assert.equal(await ds.server.servedBy(hostHeader()), "blue");
    assert.deepEqual(calls.recordLiveSlot, []);
    assert.equal(ds.slots.green.image, NEW_IMAGE, "the idle slot is left as it is for inspection");
  });

  it("an nginx configuration error during the flip leaves the old upstream live", async () => {
    const broken = join(ds.layout.confDir, "conf.d", "zz-broken.conf");
    writeFileSync(broken, "server { listen nonsense; }\n");
    try {
      const { engine, calls } = standInEngine(ds);
      const before = readFileSync(ds.upstreamFile, "utf8");
      const outcome = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);

      assert.equal(outcome.ok, false);
      assert.match(outcome.summary, /FAILED at "switch live traffic to green": nginx refused the new .*upstreams\/prod\.conf; the previous configuration stays live/);
      assert.match(outcome.summary, /zz-broken\.conf/);
      assert.equal(readFileSync(ds.upstreamFile, "utf8"), before);
      assert.equal(await ds.server.servedBy(hostHeader()), "blue");
      assert.deepEqual(calls.recordLiveSlot, []);
    } finally {
      rmSync(broken, { force: true });
    }
  });

  it("rollback flips back to the warm slot without asking the engine to update a slot", async () => {
    const { engine, calls } = standInEngine(ds);
    assert.ok((await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter)).ok, lines.join("\n"));
    const load = startLoad(ds, 4);
    const outcome = await rollback(STACK, who, engine, ds.server, reporter);
    const answers = await load.stop();

    assert.ok(outcome.ok, outcome.summary);
    assert.match(outcome.summary, /rolled back; blue is live with ghcr\.io\/bbaegok\/bbaegok-api:1\.8\.2; green stays warm/);
    assert.deepEqual(calls.updateSlot, [["green", NEW_IMAGE]], "rollback pulled or started something");
    assert.deepEqual(calls.recordLiveSlot, ["green", "blue"]);
    assert.equal(await ds.server.servedBy(hostHeader()), "blue");
    assert.equal(answers.filter((a) => a.error).length, 0);
    const record = (await history()).pop()!;
    assert.equal(record.action, "rollback");
    assert.equal(record.slot, "blue");
    assert.equal(record.result, "succeeded");
  });

  it("rollback refuses when the other slot is not warm, and changes nothing", async () => {
    const { engine, calls } = standInEngine(ds);
    ds.setContainer("green", undefined);
    const outcome = await rollback(STACK, who, engine, ds.server, reporter);
    assert.equal(outcome.ok, false);
    assert.match(outcome.summary, /bbaegok-prod-app-green is missing: nothing warm to roll back to/);
    assert.equal(await ds.server.servedBy(hostHeader()), "blue");
    assert.deepEqual(calls.recordLiveSlot, []);
  });

  it("a second deploy while one holds the lock is refused, naming the holder; the lock frees with its holder", async () => {
    const held = await ds.server.lock("alice@laptop (deploy)");
    const { engine, calls } = standInEngine(ds);
    try {
      const outcome = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);
      assert.equal(outcome.ok, false);
      assert.match(outcome.summary, /deploy of prod refused: another deploy holds the lock: alice@laptop \(deploy\) since \d{4}-\d\d-\d\dT/);
      assert.deepEqual(calls.updateSlot, []);
    } finally {
      await held.release();
    }
    const again = await deploy({ stack: STACK, image: NEW_IMAGE, who }, engine, ds.server, reporter);
    assert.ok(again.ok, again.summary);
  });

  it("every script the deploys above ran on the server is shellcheck-clean", () => {
    const shellcheck = requireCommand("shellcheck", "shellcheck");
    assert.ok(ds.scripts.size >= 5, `only ${ds.scripts.size} scripts ran`);
    for (const script of ds.scripts) execFileSync(shellcheck, ["-s", "sh", "-"], { input: script, encoding: "utf8" });
  });

  describe("the command line on the same server", () => {
    const run = async (argv: string[], engine: StackControl) => {
      const out: string[] = [];
      const errors: string[] = [];
      const deps: DeployDeps = { readConfig: () => ds.config, openEngine: async () => engine, openServer: () => ds.server, who, clock: realClock };
      const code = await runDeployCommand(argv, deps, { line: (t) => out.push(t) }, { line: (t) => errors.push(t) });
      return { code, out: out.join("\n"), errors: errors.join("\n") };
    };

    it("deploy prints each step with its time and ends with what is live; status shows slots, images, health and deploy times", async () => {
      const { engine, config } = standInEngine(ds);
      const deployed = await run(["deploy", "--stack", STACK, "--image", NEW_IMAGE], engine);
      assert.equal(deployed.code, 0, deployed.errors);
      assert.match(deployed.out, /^\d\d:\d\d:\d\d \[3\/6\] wait until healthy: done in \d+\.\d s$/m);
      assert.match(deployed.out, /\d\d:\d\d:\d\d prod: green is live with ghcr\.io\/bbaegok\/bbaegok-api:1\.9\.0/);

      ds.config.app.liveSlot = config.app.liveSlot;
      ds.config.app.slots = config.app.slots;
      try {
        const status = await run(["status", "--stack", STACK], engine);
        assert.equal(status.code, 0, status.errors);
        assert.match(status.out, /^ {2}blue {3}idle {2}ghcr\.io\/bbaegok\/bbaegok-api:1\.8\.2 {2}healthy {2}/m);
        assert.match(status.out, /^ {2}green {2}live {2}ghcr\.io\/bbaegok\/bbaegok-api:1\.9\.0 {2}healthy {2}deployed \d{4}-\d\d-\d\dT\S+ by tester@ci$/m);
        assert.match(status.out, /green is live and serving\.$/);
      } finally {
        ds.config.app.liveSlot = "blue";
        ds.config.app.slots = {};
      }
    });

    it("a failed deploy exits 1 naming the step and says the live slot keeps serving", async () => {
      const { engine } = standInEngine(ds, { container: "running/healthy", healthStatus: 503 });
      const failed = await run(["deploy", "--stack", STACK, "--image", NEW_IMAGE], engine);
      assert.equal(failed.code, 1);
      assert.match(failed.errors, /FAILED at "smoke checks through the proxy \(1\)"/);
      assert.match(failed.errors, /blue keeps serving; the idle slot is left as it is for inspection/);
    });

    it("status warns when the proxy serves another slot than the stack file records", async () => {
      await switchAndWait("green");
      const status = await run(["status", "--stack", STACK], standInEngine(ds).engine);
      assert.equal(status.code, 0);
      assert.match(status.out, /WARNING: the stack file says blue is live, but the proxy routes to green\./);
    });
  });
});
