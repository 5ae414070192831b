// The rollout's pure plan (infra/app/rollout.ts) across a promotion: a flip
// goes only to a slot whose container is exactly what the program renders
// now, so the warm slot left naming the original is never flipped to.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredSpec, planRollout, type SlotPlace } from "../../infra/app/rollout.js";
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
const url = (envs: string[]) => envs.find((e) => e.startsWith("SPRING_DATASOURCE_URL="));

describe("the rollout plan across a promotion", () => {
  const original: Pick<StackConfig, "app" | "database"> = { app: prod.app, database: replicatedDatabase("mariadb") };
  const promoted: Pick<StackConfig, "app" | "database"> = { ...original, database: { ...original.database, primary: "replica" } };
  const specs = (config: typeof original) => ({ blue: desiredSpec(config, place, "blue"), green: desiredSpec(config, place, "green") });

  it("the promotion's run rolls the same release out to the idle slot naming the promoted database; the previous slot stays as it was, naming the original", () => {
    const plan = planRollout({ liveSlot: "blue", slots: specs(original) }, specs(promoted));
    assert.equal(plan.action, "rollout");
    assert.equal(plan.live, "green");
    assert.equal(url(plan.slots.green.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok");
    assert.equal(url(plan.slots.blue.container.envs), "SPRING_DATASOURCE_URL=jdbc:mariadb://db:3306/bbaegok");
  });

  it("afterwards a rollback (the warm slot's release, the live one's too) changes nothing, and the next release replaces the slot naming the original", () => {
    const afterPromotion = planRollout({ liveSlot: "blue", slots: specs(original) }, specs(promoted));
    const deployed = { liveSlot: afterPromotion.live, slots: afterPromotion.slots };
    assert.deepEqual(afterPromotion.slots.blue.release, afterPromotion.slots.green.release);
    const rollback = planRollout(deployed, specs({ ...promoted, app: { ...prod.app, ...afterPromotion.slots.blue.release } }));
    assert.equal(rollback.action, "none", "a flip to the slot naming the original");
    const next = planRollout(deployed, specs({ ...promoted, app: { ...prod.app, image: "ghcr.io/bbaegok/bbaegok-api:9.9.9" } }));
    assert.deepEqual([next.action, next.live], ["rollout", "blue"]);
    assert.deepEqual([url(next.slots.blue.container.envs), url(next.slots.green.container.envs)], Array(2).fill("SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok"));
  });
});
