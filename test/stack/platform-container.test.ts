// Every container the program plans, in both committed stacks and in a stack
// with a read replica, has the platform's restart policy, log rotation and
// role and stack labels exactly as infra/server/container.ts gives them; and
// those come from that one place: only infra/server builds a docker.Container,
// and infra never reaches up into policy/ for them.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { platformSettings, ROLE_LABEL, STACK_LABEL, type ContainerRole } from "../../infra/server/container.js";
import { copyProject, planInChild, REPO } from "../support/project.js";

const CONTAINER = "docker:index/container:Container";
const project = copyProject();
after(() => project.remove());

/** Staging's file on a server of its own (it owns its proxy) with one read replica. */
function stagingWithReplica(): string {
  return readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8")
    .replace("host: home.bbaegok.kr", "host: replica.bbaegok.kr")
    .replace(/(  bbaegok-infra:database:\n(?:    .*\n)+)/, "$1    replicas:\n      - maxLagSeconds: 120\n")
    .replace(/mode: guest\n\s+ownerStack: .*\n/, "mode: owner\n");
}
project.writeStackFile("withreplica", stagingWithReplica());

const plans = [
  { stack: "prod", plan: planInChild("prod") },
  { stack: "staging", plan: planInChild("staging") },
  { stack: "withreplica", plan: planInChild("withreplica", project.dir) },
];

const seenRoles = new Set<string>();
for (const { stack, plan } of plans) {
  describe(`the containers of stack ${stack}`, () => {
    const containers = plan.resources.filter((r) => r.type === CONTAINER);

    it("have the platform's restart policy, log rotation and labels, the role and stack labels first", () => {
      const roles = new Set<string>();
      for (const c of containers) {
        const labels = c.inputs["labels"] as { label: string; value: string }[];
        const role = labels.find((l) => l.label === ROLE_LABEL)?.value as ContainerRole;
        roles.add(role);
        // An app slot adds its slot and release labels after them.
        const expected = platformSettings(role, stack, labels.slice(2));
        assert.deepEqual(
          { restart: c.inputs["restart"], logDriver: c.inputs["logDriver"], logOpts: c.inputs["logOpts"], labels },
          expected,
          `container ${c.name}`,
        );
        assert.deepEqual(labels.slice(0, 2), [{ label: ROLE_LABEL, value: role }, { label: STACK_LABEL, value: stack }], `container ${c.name}`);
      }
      for (const role of roles) seenRoles.add(role);
    });
  });
}

it("the three stacks have a container of every role", () => {
  assert.deepEqual([...seenRoles].sort(), ["app", "database", "database-replica", "metabase", "metabase-db", "proxy"]);
});

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

describe("the platform's container defaults have one home", () => {
  const infra = sources(join(REPO, "infra")).map((path) => ({ file: relative(REPO, path), text: readFileSync(path, "utf8") }));

  it("only infra/server builds a docker.Container (platformContainer); every component goes through it", () => {
    const builders = infra.filter((f) => /new docker\.Container\(/.test(f.text)).map((f) => f.file);
    assert.deepEqual(builders, ["infra/server/index.ts"]);
    const users = infra.filter((f) => /\bplatformContainer\(/.test(f.text) && f.file !== "infra/server/index.ts").map((f) => f.file).sort();
    assert.deepEqual(users, ["infra/app/index.ts", "infra/database/index.ts", "infra/metabase/index.ts", "infra/proxy/index.ts", "infra/replica/index.ts"]);
  });

  it("infra imports nothing from policy/ (policy reads the role label and the retired original's inputs from infra/server)", () => {
    const upward = infra.filter((f) => /from "(\.\.\/)+policy\//.test(f.text)).map((f) => f.file);
    assert.deepEqual(upward, []);
    assert.match(readFileSync(join(REPO, "policy", "rules.ts"), "utf8"), /import \{ RETIRED_INPUTS, ROLE_LABEL \} from "\.\.\/infra\/server\/container\.js";/);
  });
});
