// Every committed Pulumi.<stack>.yaml is planned under mocks with the real
// program, so a broken config edit fails CI; then the guardrails that must hold
// for any stack are checked over every planned resource.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PlannedResource, StackPlan } from "../../ops/offline/plan.js";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import { violations } from "../../policy/rules.js";
import { listStacks } from "../../stacks/config/files.js";
import { loadStack } from "../../stacks/config/load.js";
import { planInChild, REPO } from "../support/project.js";

const stacks = listStacks(REPO);

function ofType(plan: StackPlan, type: string): PlannedResource[] {
  return plan.resources.filter((r) => r.type === type);
}

it("the project commits the prod and staging stacks", () => {
  assert.deepEqual(stacks, ["prod", "staging"]);
});

for (const stack of stacks) {
  describe(`stack ${stack}`, () => {
    const config = loadStack(stack, REPO).config;
    const plan = planInChild(stack);

    it("plans with the real program", () => {
      assert.equal(plan.stack, stack);
      assert.ok(plan.resources.length > 5, `only ${plan.resources.length} resources`);
    });

    it("breaks no guardrail", () => {
      assert.deepEqual(violations(plan.resources), []);
    });

    it("reaches Docker on the configured server over SSH", () => {
      const providers = ofType(plan, "pulumi:providers:docker");
      assert.equal(providers.length, 1);
      const { user, port } = config.server.ssh;
      assert.equal(providers[0]!.inputs["host"], `ssh://${user}@${config.server.host}:${port}`);
      const dockerResources = plan.resources.filter((r) => r.type.startsWith("docker:"));
      for (const r of dockerResources) assert.equal(r.options.provider, providers[0]!.name, `${r.name} does not use the server's Docker provider`);
    });

    it("has a private edge network and an internal data network of its own", () => {
      const networks = ofType(plan, "docker:index/network:Network").map((n) => n.inputs);
      assert.deepEqual(
        networks.map((n) => [n["name"], n["internal"] === true]).sort(),
        [[`${config.service}-${stack}-data`, true], [`${config.service}-${stack}-edge`, false]],
      );
    });

    it("puts its edge network on its own subnet, with the slots and Metabase at fixed addresses Docker never hands out", () => {
      const edge = ofType(plan, "docker:index/network:Network").find((n) => n.inputs["name"] === `${config.service}-${stack}-edge`);
      const base = config.server.edgeSubnet.replace(/\.0\/24$/, "");
      assert.deepEqual(edge?.inputs["ipamConfigs"], [{ subnet: config.server.edgeSubnet, ipRange: `${base}.128/25`, gateway: `${base}.1` }]);
      const containers = ofType(plan, "docker:index/container:Container");
      const edgeAddress = (name: string) =>
        (containers.find((c) => c.inputs["name"] === name)?.inputs["networksAdvanced"] as { name: string; ipv4Address?: string }[] | undefined)?.find((n) => n.name === `${config.service}-${stack}-edge`)?.ipv4Address;
      assert.equal(edgeAddress(`${config.service}-${stack}-app-blue`), `${base}.11`);
      assert.equal(edgeAddress(`${config.service}-${stack}-app-green`), `${base}.12`);
      if (config.metabase.enabled) assert.equal(edgeAddress(`${config.service}-${stack}-metabase`), `${base}.20`);
      // The proxy's upstream groups name exactly those addresses.
      const conf = String(ofType(plan, "bbaegok:server:File").find((f) => String(f.inputs["path"]).endsWith(`/proposed/${stack}/conf.d/${stack}.conf`))?.inputs["content"]);
      const servers = [...conf.matchAll(/^ {4}server ([\d.]+):\d+;$/gm)].map((m) => m[1]);
      assert.deepEqual(servers, [`${base}.11`, `${base}.12`, ...(config.metabase.enabled ? [`${base}.20`] : [])]);
    });

    it("runs the service database on a protected, retained volume", () => {
      const db = ofType(plan, "docker:index/container:Container").find((c) => c.inputs["name"] === `${config.service}-${stack}-db`);
      assert.ok(db, "no database container");
      const volume = ofType(plan, "docker:index/volume:Volume").find((v) => v.inputs["name"] === `${config.service}-${stack}-db-data`);
      assert.ok(volume, "no database volume");
      assert.equal(volume.options.protect, true);
      assert.equal(volume.options.retainOnDelete, true);
      const volumes = db.inputs["volumes"] as { volumeName: string }[];
      assert.ok(volumes.some((v) => v.volumeName === volume.inputs["name"]), "the database does not mount its volume");
      const image = ofType(plan, "docker:index/remoteImage:RemoteImage").find((i) => i.inputs["name"] === `${config.database.engine}:${config.database.version}`);
      assert.ok(image, "the database image is not the configured engine and version");
    });

    it("never shows a secret in clear", () => {
      const text = JSON.stringify(plan);
      assert.ok(!text.includes(MOCK_SECRET_PREFIX), "a generated secret appears in clear in the plan");
      const files = ofType(plan, "bbaegok:server:File").filter((f) => String(f.inputs["path"]).includes("/secrets/"));
      assert.ok(files.length >= 2);
      for (const f of files) {
        assert.equal(f.inputs["content"], "[secret]", `${f.inputs["path"]} is not marked secret`);
        assert.match(String(f.inputs["mode"]), /^0[0-7]00$/, `${f.inputs["path"]} is readable beyond its owner`);
      }
      assert.equal(plan.outputs["databasePassword"], "[secret]");
    });
  });
}
