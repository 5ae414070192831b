// The planned resources of every committed stack pass every policy of the
// pack, called as the policy runner calls them (resource policies on each
// resource, stack policies on all of them with their dependencies).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { POLICIES } from "../../policy/policies.js";
import { listStacks } from "../../stacks/config/files.js";
import { runPolicy } from "../support/policy-args.js";
import { planInChild, REPO } from "../support/project.js";

for (const stack of listStacks(REPO)) {
  describe(`stack ${stack} under the policy pack`, () => {
    const plan = planInChild(stack);
    const resources = plan.resources;

    it("has the resources the policies look at", () => {
      for (const type of ["docker:index/container:Container", "docker:index/volume:Volume", "docker:index/remoteImage:RemoteImage"]) {
        assert.ok(resources.some((r) => r.type === type), `no ${type} planned`);
      }
    });

    for (const policy of POLICIES) {
      it(`passes ${policy.name}`, async () => {
        assert.deepEqual(await runPolicy(policy, resources), []);
      });
    }
  });
}
