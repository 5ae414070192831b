// The rollout's pure plan (infra/app/rollout.ts) when something outside the
// release changes — a promotion moving the datasource, a setting of the
// stack: the run that changes it rolls it out to the idle slot and leaves the
// previous slot as it was (it serves until the flip); the next run re-creates
// that warm slot with its own release as the stack renders it now (a rewarm),
// never touching the live one; then nothing changes, and a rollback is a flip.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonical, desiredSpec, planRollout, recordOf, slotRenderer, type DeployedSlots, type RolloutPlan, type SlotPlace } from "../../infra/app/rollout.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { loadStack } from "../../stacks/config/load.js";
import { REPO } from "../support/project.js";
import { replicatedDatabase } from "../support/replica-harness.js";

const prod = loadStack("prod", REPO).config;
const place: SlotPlace = {
  prefix: "bbaegok-prod",
  stack: "prod",
  edgeNetwork: "bbaegok-prod-edge",
  dataNetwork: "bbaegok-prod-data",
  secretsDir: "/srv/bbaegok/prod/secrets",
  addresses: { blue: "172.30.10.11", green: "172.30.10.12" },
  hostHeader: "api.bbaegok.kr",
};
type Config = Pick<StackConfig, "app" | "database">;
const url = (envs: string[]) => envs.find((e) => e.startsWith("SPRING_DATASOURCE_URL="));
/** The run of `config` after `deployed`, as AppSlots plans it. */
const plan = (deployed: DeployedSlots | undefined, config: Config) =>
  planRollout(deployed, { blue: desiredSpec(config, place, "blue"), green: desiredSpec(config, place, "green") }, slotRenderer(config, place));
/** What the run records for the next one (the stack's `app` output). */
const recorded = (p: RolloutPlan): DeployedSlots => recordOf(p);
const withImage = (config: Config, image: string): Config => ({ ...config, app: { ...config.app, image } });

describe("the rollout plan across a promotion", () => {
  const original: Config = { app: prod.app, database: replicatedDatabase("mariadb") };
  const promoted: Config = { ...original, database: { ...original.database, primary: "replica" } };
  const before = recorded(plan(undefined, original));
  const promotion = plan(before, promoted);

  it("the promotion's run rolls the same release out to the idle slot naming the promoted database; the previous slot stays as it was, naming the original", () => {
    assert.deepEqual([promotion.action, promotion.live, promotion.checks.target], ["rollout", "green", "green"]);
    assert.equal(url(promotion.slots.green.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
    assert.equal(canonical(promotion.slots.blue), canonical(before.slots.blue));
    assert.equal(url(promotion.slots.blue.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db:3306/bbaegok");
  });

  it("the next run (the promotion's second up) re-creates the warm slot naming the promoted database; the live slot stays exactly as recorded and nothing flips", () => {
    const rewarm = plan(recorded(promotion), promoted);
    assert.deepEqual([rewarm.action, rewarm.live, rewarm.previous, rewarm.checks.target], ["rewarm", "green", "green", "blue"]);
    assert.equal(canonical(rewarm.slots.green), canonical(promotion.slots.green));
    assert.equal(url(rewarm.slots.blue.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
    assert.equal(canonical(rewarm.slots.blue), canonical(desiredSpec(promoted, place, "blue")));
    const after = plan(recorded(rewarm), promoted);
    assert.deepEqual([after.action, after.live], ["none", "green"]);
    assert.equal(canonical(after.slots), canonical(rewarm.slots));
  });

  it("a run after the rewarm keeps its checks (their text is the run: nothing runs again) and its record; the next release's rollout drops them", () => {
    const rewarm = plan(recorded(promotion), promoted);
    assert.deepEqual(rewarm.checks, { action: "rewarm", target: "blue" });
    assert.equal(recorded(rewarm).rewarmed, "blue");
    const after = plan(recorded(rewarm), promoted);
    assert.deepEqual(after.checks, rewarm.checks);
    assert.equal(canonical(recorded(after)), canonical(recorded(rewarm)));
    const release = plan(recorded(after), withImage(promoted, "ghcr.io/bbaegok/bbaegok-api:1.9.0"));
    assert.deepEqual([release.action, release.checks], ["rollout", { action: "rollout", target: "blue" }]);
    assert.equal(recorded(release).rewarmed, undefined);
    // A rollout's record has no rewarm; the run after it checks the live slot, as before rewarms existed.
    assert.equal(canonical(plan(recorded(release), withImage(promoted, "ghcr.io/bbaegok/bbaegok-api:1.9.0")).checks), canonical({ action: "rollout", target: "blue" }));
  });
});

describe("the rollout plan across a setting outside the release", () => {
  // prod runs 1.8.2 on both slots, blue live; then a release (1.8.3) and a new database name come in one change of the file.
  const old: Config = { app: prod.app, database: prod.database };
  const first = recorded(plan(undefined, old));
  const changed: Config = { ...withImage(old, "ghcr.io/bbaegok/bbaegok-api:1.8.3"), database: { ...old.database, name: "bbaegok2" } };
  const rollout = plan(first, changed);
  const rewarm = plan(recorded(rollout), changed);

  it("the change rolls out to the idle slot; the next run gives the warm slot (1.8.2) the new setting with its own release, the live one untouched", () => {
    assert.deepEqual([rollout.action, rollout.live], ["rollout", "green"]);
    assert.equal(canonical(rollout.slots.blue), canonical(first.slots.blue));
    assert.deepEqual([rewarm.action, rewarm.live, rewarm.checks.target], ["rewarm", "green", "blue"]);
    assert.equal(rewarm.slots.blue.release.image, prod.app.image);
    assert.equal(rewarm.slots.blue.container.image, prod.app.image);
    assert.match(url(rewarm.slots.blue.container.envs)!, /\/bbaegok2$/);
    assert.equal(canonical(rewarm.slots.green), canonical(rollout.slots.green));
  });

  it("after the rewarm, a rollback to 1.8.2 is a flip: no container changes (without it, a rollout of 1.8.2 again)", () => {
    const back = plan(recorded(rewarm), withImage(changed, prod.app.image));
    assert.deepEqual([back.action, back.live], ["flip", "blue"]);
    assert.equal(canonical(back.slots), canonical(rewarm.slots));
    assert.equal(plan(recorded(rollout), withImage(changed, prod.app.image)).action, "rollout");
  });

  it("a warm slot whose recorded release this code no longer accepts is left as it runs: no rewarm, nothing changes", () => {
    const stale = recorded(rollout);
    const blue = { ...stale.slots.blue, release: { ...stale.slots.blue.release, image: "ghcr.io/bbaegok/bbaegok-api:latest" } };
    const next = plan({ ...stale, slots: { ...stale.slots, blue } }, changed);
    assert.deepEqual([next.action, next.live], ["none", "green"]);
    assert.equal(canonical(next.slots.blue), canonical(blue));
  });

  it("a release in the file is a rollout, never a rewarm: the warm slot gets the new release", () => {
    const next = plan(recorded(rollout), withImage(changed, "ghcr.io/bbaegok/bbaegok-api:1.8.5"));
    assert.deepEqual([next.action, next.live, next.checks.target], ["rollout", "blue", "blue"]);
    assert.equal(next.slots.blue.container.image, "ghcr.io/bbaegok/bbaegok-api:1.8.5");
  });
});
