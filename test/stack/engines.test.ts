// The same program with the other database engines: a stack file per engine is
// written into a copy of the project and planned with the real program.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { violations } from "../../policy/rules.js";
import { copyProject, planInChild, REPO } from "../support/project.js";

const project = copyProject();
after(() => project.remove());

/** Staging's file, moved to a server of its own (so it owns its proxy) with another engine. */
function stackFileWith(engine: string, version: string, host: string): string {
  return readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8")
    .replace("host: home.bbaegok.kr", `host: ${host}`)
    .replace(/engine: mariadb/, `engine: ${engine}`)
    .replace(/version: "[0-9.]+"/, `version: "${version}"`)
    .replace(/mode: guest\n\s+ownerStack: .*\n/, "mode: owner\n");
}

for (const [engine, version, dataPath] of [
  ["postgres", "16.10", "/var/lib/postgresql/data"],
  ["mysql", "8.4.3", "/var/lib/mysql"],
] as const) {
  describe(`a ${engine} stack`, () => {
    const stack = `${engine}test`;
    project.writeStackFile(stack, stackFileWith(engine, version, `${engine}.bbaegok.kr`));
    const plan = planInChild(stack, project.dir);
    const db = plan.resources.find((r) => r.type === "docker:index/container:Container" && r.inputs["name"] === `bbaegok-${stack}-db`);

    it("plans and breaks no guardrail", () => {
      assert.ok(db, "no database container");
      assert.deepEqual(violations(plan.resources), []);
    });

    it(`runs ${engine}:${version} with its data on the protected volume`, () => {
      assert.ok(plan.resources.some((r) => r.type === "docker:index/remoteImage:RemoteImage" && r.inputs["name"] === `${engine}:${version}`));
      assert.deepEqual(db!.inputs["volumes"], [{ containerPath: dataPath, volumeName: `bbaegok-${stack}-db-data` }]);
    });

    it("reads its passwords from files", () => {
      const envs = db!.inputs["envs"] as string[];
      assert.ok(envs.some((e) => /_PASSWORD_FILE=\/run\/secrets\/db_root_password$/.test(e)), envs.join(" "));
      assert.ok(!envs.some((e) => /_PASSWORD=/.test(e)));
    });

    if (engine === "postgres") {
      it("creates the app's own role through an init script placed on the server", () => {
        const init = plan.resources.find((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).endsWith("/db-init/10-app-user.sh"));
        assert.ok(init, "no init script");
        assert.equal(init.inputs["path"], `/srv/bbaegok/${stack}/db-init/10-app-user.sh`);
        assert.match(String(init.inputs["content"]), /CREATE ROLE bbaegok LOGIN PASSWORD :'app_password'/);
        const mounts = db!.inputs["mounts"] as { target: string }[];
        assert.ok(mounts.some((m) => m.target === "/docker-entrypoint-initdb.d"));
      });
    }
  });
}
