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
import { promotionStaged } from "../../infra/replica/render.js";

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
  planRollout(deployed, { blue: desiredSpec(config, place, "blue"), green: desiredSpec(config, place, "green") }, slotRenderer(config, place), { staged: promotionStaged(config.database) });
/** What the run records for the next one (the stack's `app` output). */
const recorded = (p: RolloutPlan): DeployedSlots => recordOf(p);
const withImage = (config: Config, image: string): Config => ({ ...config, app: { ...config.app, image } });

describe("the rollout plan across a staged promotion (npm run promote: promoting, then replica)", () => {
  const original: Config = { app: prod.app, database: replicatedDatabase("mariadb") };
  const staging: Config = { ...original, database: { ...original.database, primary: "promoting" } };
  const promoted: Config = { ...original, database: { ...original.database, primary: "replica" } };
  // 1.8.2 served, then 1.8.3 rolled out: green serves 1.8.3, blue keeps 1.8.2 warm (the usual state).
  const first = recorded(plan(undefined, withImage(original, "ghcr.io/bbaegok/api:1.8.2")));
  const before = recorded(plan(first, withImage(original, "ghcr.io/bbaegok/api:1.8.3")));
  const staged = plan(before, withImage(staging, "ghcr.io/bbaegok/api:1.8.3"));

  it("the first up starts the file's release in the warm slot naming the replica, as it will run once promoted; nothing flips and the live slot is exactly as recorded", () => {
    assert.equal(before.liveSlot, "green");
    assert.deepEqual([staged.action, staged.live, staged.previous, staged.checks], ["rewarm", "green", "green", { action: "rewarm", target: "blue" }]);
    assert.equal(canonical(staged.slots.green), canonical(before.slots.green));
    assert.equal(staged.slots.blue.container.image, "ghcr.io/bbaegok/api:1.8.3");
    assert.equal(canonical(staged.slots.blue), canonical(desiredSpec(withImage(promoted, "ghcr.io/bbaegok/api:1.8.3"), place, "blue")));
    assert.equal(url(staged.slots.blue.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
    assert.ok(!staged.slots.blue.container.envs.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL=")));
    // Staged again (a promote run again after a failure): nothing changes.
    assert.equal(plan(recorded(staged), withImage(staging, "ghcr.io/bbaegok/api:1.8.3")).action, "none");
  });

  it("the promotion's up then only flips to the staged slot: no container is created; the next up re-creates the old serving slot naming the promoted database", () => {
    const flip = plan(recorded(staged), withImage(promoted, "ghcr.io/bbaegok/api:1.8.3"));
    assert.deepEqual([flip.action, flip.live, flip.previous], ["flip", "blue", "green"]);
    assert.equal(canonical(flip.slots), canonical(staged.slots));
    const rewarm = plan(recorded(flip), withImage(promoted, "ghcr.io/bbaegok/api:1.8.3"));
    assert.deepEqual([rewarm.action, rewarm.live, rewarm.checks.target], ["rewarm", "blue", "green"]);
    assert.equal(url(rewarm.slots.green.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
  });

  it("staged, a release in the file the live slot does not run still goes to the warm slot only: nothing goes live before the promotion", () => {
    const other = plan(before, withImage(staging, "ghcr.io/bbaegok/api:1.9.0"));
    assert.deepEqual([other.action, other.live], ["rewarm", "green"]);
    assert.equal(canonical(other.slots.green), canonical(before.slots.green));
    assert.equal(other.slots.blue.container.image, "ghcr.io/bbaegok/api:1.9.0");
  });

  it("staged on a stack that never served: refused, naming the setting", () => {
    assert.throws(() => plan(undefined, staging), /database\.primary: promoting and returning stage the warm slot of a stack that serves/);
  });
});

describe("the rollout plan across the way back (npm run failback: returning, then original)", () => {
  const original: Config = { app: prod.app, database: replicatedDatabase("mariadb") };
  const promoted: Config = { ...original, database: { ...original.database, primary: "replica" } };
  const returning: Config = { ...original, database: { ...original.database, primary: "returning" } };
  // Promoted and rewarmed: both slots write to the promoted replica.
  const before = recorded(plan(recorded(plan(recorded(plan(undefined, original)), promoted)), promoted));
  const staged = plan(before, returning);

  it("the first up starts the warm slot as it runs once the original is back (writing to db, reading db-replica); nothing flips", () => {
    assert.equal(url(before.slots.blue.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
    const idle = staged.live === "blue" ? "green" : "blue";
    assert.deepEqual([staged.action, staged.live, staged.checks], ["rewarm", before.liveSlot, { action: "rewarm", target: idle }]);
    assert.equal(canonical(staged.slots[before.liveSlot]), canonical(before.slots[before.liveSlot]));
    assert.equal(canonical(staged.slots[idle]), canonical(desiredSpec(original, place, idle)));
    assert.equal(url(staged.slots[idle].container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db:3306/bbaegok");
    assert.ok(staged.slots[idle].container.envs.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://db-replica:3306/")));
  });

  it("the flip's up (original) starts nothing; the next up re-creates the other slot naming the original", () => {
    const flip = plan(recorded(staged), original);
    assert.deepEqual([flip.action, flip.live], ["flip", staged.checks.target]);
    const rewarm = plan(recorded(flip), original);
    assert.deepEqual([rewarm.action, rewarm.checks.target], ["rewarm", before.liveSlot]);
    assert.equal(url(rewarm.slots[before.liveSlot].container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db:3306/bbaegok");
    assert.equal(plan(recorded(rewarm), original).action, "none");
  });
});

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

describe("the slots run as app.runAs, whatever user the image names", () => {
  const config: Config = { app: prod.app, database: prod.database };

  it("each slot's container names app.runAs, the owner of the password file", () => {
    for (const slot of ["blue", "green"] as const) assert.equal(desiredSpec(config, place, slot).container.user, prod.app.runAs);
    const other: Config = { ...config, app: { ...config.app, runAs: "1002:1000" } };
    assert.equal(desiredSpec(other, place, "blue").container.user, "1002:1000");
  });

  it("slots recorded before the user was set (they ran as their image's user): the live one stays as recorded; the change rolls out to the idle one, then the warm one is rewarmed", () => {
    const withoutUser = (d: DeployedSlots): DeployedSlots => ({
      ...d,
      slots: { blue: { ...d.slots.blue, container: { ...d.slots.blue.container, user: undefined } }, green: { ...d.slots.green, container: { ...d.slots.green.container, user: undefined } } },
    });
    const before = withoutUser(recorded(plan(undefined, config)));
    const rollout = plan(before, config);
    assert.deepEqual([rollout.action, rollout.live], ["rollout", "green"]);
    assert.equal(rollout.slots.blue.container.user, undefined, "the live slot is touched");
    assert.equal(rollout.slots.green.container.user, prod.app.runAs);
    const rewarm = plan(recorded(rollout), config);
    assert.deepEqual([rewarm.action, rewarm.live, rewarm.checks.target], ["rewarm", "green", "blue"]);
    assert.equal(rewarm.slots.blue.container.user, prod.app.runAs);
    assert.equal(plan(recorded(rewarm), config).action, "none");
  });
});
