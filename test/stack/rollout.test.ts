// The rollout under the SDK's mocks, for every kind of change a release makes:
// the slot that serves keeps exactly its container (every input the same as
// the last run recorded), the change lands on the idle slot only, and the
// stack's upstream file flips to it. A change back to what the idle slot
// runs touches no container at all: it only flips. A setting outside the
// release reaches the warm slot one run later, never the serving one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { StackPlan } from "../../ops/offline/plan.js";
import { copyProject, planInChild } from "../support/project.js";

const SELF = "organization/bbaegok-infra/prod";
const CONTAINER = "docker:index/container:Container";

const slotInputs = (plan: StackPlan, slot: string) => JSON.stringify(plan.resources.find((r) => r.type === CONTAINER && r.name === `app-${slot}`)?.inputs);
const commandInputs = (plan: StackPlan, name: string) => JSON.stringify(plan.resources.find((r) => r.type === "command:remote:Command" && r.name === name)?.inputs ?? assert.fail(`no ${name}`));
const upstreams = (plan: StackPlan) => String(plan.resources.find((r) => r.type === "bbaegok:server:File" && r.name === "proxy-site-upstreams-prod-conf")?.inputs["content"]);
/** The live group's address in the upstream file, as the slot it is (prod's fixed addresses: blue .11, green .12). */
const live = (plan: StackPlan) => ({ "172.30.10.11:8080": "blue", "172.30.10.12:8080": "green" })[/upstream bbaegok_prod_api \{\s+server ([\d.:]+);/.exec(upstreams(plan))?.[1] ?? ""];

describe("the rollout, planned", () => {
  const project = copyProject();
  const file = join(project.dir, "Pulumi.prod.yaml");
  const committed = readFileSync(file, "utf8");
  const first = planInChild("prod", project.dir, {}, true);
  /** What a run after the first records: blue serves, both slots run the committed release. */
  const deployed = first.outputs["appSlots"] as { liveSlot: string };

  it("the first run puts the release on both slots and blue serves", () => {
    assert.equal(deployed.liveSlot, "blue");
    // The same release on both: equal but for the slot's name, address and release label (a hash of the slot's own spec).
    const same = (slot: string) => slotInputs(first, slot).replace(new RegExp(slot, "g"), "X").replace(/\.1[12]"/g, '.1N"').replace(/"bbaegok\.release","value":"[0-9a-f]+"/, "");
    assert.equal(same("blue"), same("green"));
    assert.equal(live(first), "blue");
  });

  const changes: [string, (string | number)[], unknown][] = [
    ["image", ["app", "image"], "ghcr.io/bbaegok/bbaegok-api:1.8.3"],
    ["env", ["app", "env", "FEATURE_X"], "on"],
    ["memory", ["app", "memoryMb"], 2048],
    ["health check", ["app", "healthCheck", "interval"], "15s"],
    ["deploy timeout", ["app", "deployTimeout"], "7m"],
  ];
  for (const [kind, path, value] of changes) {
    it(`a change of ${kind}: the serving slot's inputs stay exactly as recorded; the idle slot gets it; the upstream flips`, () => {
      const doc = parseDocument(committed);
      doc.setIn(["config", `bbaegok-infra:${path[0]}`, ...path.slice(1)], value);
      project.writeStackFile("prod", doc.toString());
      try {
        const next = planInChild("prod", project.dir, { [SELF]: { appSlots: deployed } });
        assert.equal(slotInputs(next, "blue"), slotInputs(first, "blue"), "the serving slot changed");
        assert.notEqual(slotInputs(next, "green"), slotInputs(first, "green"), "the idle slot did not get the change");
        assert.equal(live(next), "green");
        assert.equal((next.outputs["liveSlot"] as string) ?? "", "green");
      } finally {
        project.writeStackFile("prod", committed);
      }
    });
  }

  it("nothing changed: both slots exactly as recorded, no flip", () => {
    const next = planInChild("prod", project.dir, { [SELF]: { appSlots: deployed } });
    assert.equal(slotInputs(next, "blue"), slotInputs(first, "blue"));
    assert.equal(slotInputs(next, "green"), slotInputs(first, "green"));
    assert.equal(live(next), "blue");
  });

  it("a setting outside the release (the database's name): the run rolls it out to the idle slot; the next re-creates the warm slot alone (a rewarm), nothing flips; then nothing changes", () => {
    const doc = parseDocument(committed);
    doc.setIn(["config", "bbaegok-infra:database", "name"], "bbaegok2");
    project.writeStackFile("prod", doc.toString());
    try {
      const rolled = planInChild("prod", project.dir, { [SELF]: { appSlots: deployed } }, true);
      assert.equal(slotInputs(rolled, "blue"), slotInputs(first, "blue"), "the serving slot changed");
      assert.match(slotInputs(rolled, "green"), /\/bbaegok2"/);
      assert.equal(live(rolled), "green");
      const rewarm = planInChild("prod", project.dir, { [SELF]: { appSlots: rolled.outputs["appSlots"] } }, true);
      assert.equal(slotInputs(rewarm, "green"), slotInputs(rolled, "green"), "the serving slot changed");
      assert.match(slotInputs(rewarm, "blue"), /\/bbaegok2"/);
      assert.equal(live(rewarm), "green");
      assert.equal((rewarm.outputs["liveSlot"] as string) ?? "", "green");
      const after = planInChild("prod", project.dir, { [SELF]: { appSlots: rewarm.outputs["appSlots"] } });
      assert.deepEqual([slotInputs(after, "blue"), slotInputs(after, "green")], [slotInputs(rewarm, "blue"), slotInputs(rewarm, "green")]);
      // The checks' text is their run: the same as the rewarm's, so nothing runs again (a real preview: an update of each).
      for (const check of ["app-precheck", "app-smoke", "app-verify"]) assert.equal(commandInputs(after, check), commandInputs(rewarm, check), check);
      assert.match(commandInputs(rewarm, "app-precheck"), /rewarm of/);
    } finally {
      project.writeStackFile("prod", committed);
    }
  });

  it("back to the release the idle slot runs (a rollback): no container changes, only the flip", () => {
    const doc = parseDocument(committed);
    doc.setIn(["config", "bbaegok-infra:app", "image"], "ghcr.io/bbaegok/bbaegok-api:1.8.3");
    project.writeStackFile("prod", doc.toString());
    const released = planInChild("prod", project.dir, { [SELF]: { appSlots: deployed } }, true);
    project.writeStackFile("prod", committed);
    // green serves 1.8.3 now; the file says 1.8.2 again, which blue still runs.
    const back = planInChild("prod", project.dir, { [SELF]: { appSlots: released.outputs["appSlots"] } });
    assert.equal(slotInputs(back, "blue"), slotInputs(released, "blue"));
    assert.equal(slotInputs(back, "green"), slotInputs(released, "green"));
    assert.equal(live(back), "blue");
    project.remove();
  });
});
