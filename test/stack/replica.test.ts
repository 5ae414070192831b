// A stack with a read replica (database.replicas), planned with the real
// program under the SDK's mocks, for MariaDB and PostgreSQL; and the committed
// stacks, which list none, plan no replica at all.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { violations } from "../../policy/rules.js";
import { copyProject, planInChild, REPO } from "../support/project.js";

const project = copyProject();
after(() => project.remove());
const CONTAINER = "docker:index/container:Container";

/** Staging's file on a server of its own (it owns its proxy), with `engine` and one replica. */
function stackFileWithReplica(engine: string, version: string, host: string): string {
  return readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8")
    .replace("host: home.bbaegok.kr", `host: ${host}`)
    .replace(/engine: mariadb/, `engine: ${engine}`)
    .replace(/version: "11\.4\.4"/, `version: "${version}"`)
    .replace(/(  bbaegok-infra:database:\n(?:    .*\n)+)/, "$1    replicas:\n      - maxLagSeconds: 120\n")
    .replace(/mode: guest\n\s+ownerStack: .*\n/, "mode: owner\n");
}

for (const [engine, version, flag] of [
  ["mariadb", "11.4.4", "--log-bin=mysql-bin"],
  ["postgres", "16.10", "max_slot_wal_keep_size=4096MB"],
] as const) {
  describe(`a ${engine} stack with a replica on the same server`, () => {
    const stack = `replica${engine}`;
    project.writeStackFile(stack, stackFileWithReplica(engine, version, `${engine}.bbaegok.kr`));
    const plan = planInChild(stack, project.dir);
    const containers = plan.resources.filter((r) => r.type === CONTAINER);
    const replica = containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db-replica`);
    const primary = containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db`);

    it("plans a second database container on the data network, named db-replica there, and breaks no guardrail", () => {
      assert.ok(replica, `no replica container among ${containers.map((c) => c.inputs["name"]).join(", ")}`);
      assert.deepEqual(replica.inputs["networksAdvanced"], [{ name: `bbaegok-${stack}-data`, aliases: ["db-replica"] }]);
      assert.deepEqual(violations(plan.resources), []);
    });

    it("no container but the proxy publishes a port", () => {
      const publishing = containers.filter((c) => (c.inputs["ports"] as unknown[] | undefined)?.length || c.inputs["networkMode"] === "host");
      assert.deepEqual(publishing.map((c) => c.inputs["name"]), ["bbaegok-proxy"]);
    });

    it("keeps its data on its own protected, retained volume, and reads its passwords from files", () => {
      const volume = plan.resources.find((r) => r.type === "docker:index/volume:Volume" && r.inputs["name"] === `bbaegok-${stack}-db-replica-data`);
      assert.ok(volume);
      assert.equal(volume.options.protect, true);
      assert.equal(volume.options.retainOnDelete, true);
      const envs = replica!.inputs["envs"] as string[];
      assert.ok(!envs.some((e) => /PASSWORD=/.test(e)), envs.join(" "));
      const file = plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/secrets/db/replication_password`);
      assert.ok(file, "no replication password file");
      assert.equal(file.inputs["mode"], "0400");
    });

    it("the primary gets its replication flags, the replica its own", () => {
      assert.ok((primary!.inputs["command"] as string[]).includes(flag), String(primary!.inputs["command"]));
      const command = (replica!.inputs["command"] as string[]).join(" ");
      assert.match(command, engine === "postgres" ? /hot_standby=on .*primary_conninfo=host=db port=5432 user=replicator passfile=\/run\/secrets\/replication.pgpass/ : /--read-only=ON .*--log-slave-updates=ON/);
    });

    it("the app's slots get a read-only datasource on the replica", () => {
      for (const slot of containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])))) {
        const envs = slot.inputs["envs"] as string[];
        assert.ok(envs.includes(`SPRING_DATASOURCE_REPLICA_URL=jdbc:${engine === "postgres" ? "postgresql" : "mariadb"}://db-replica:${engine === "postgres" ? 5432 : 3306}/bbaegok`), envs.join(" "));
        assert.ok(envs.includes("SPRING_DATASOURCE_REPLICA_USERNAME=bbaegok"));
      }
    });

    it("the replica's setup runs the rendered script on the server", () => {
      const commands = plan.resources.filter((r) => r.type === "command:remote:Command" && /^bash .*\/replica\/replica\.sh/.test(String(r.inputs["create"])));
      assert.deepEqual(
        commands.map((c) => String(c.inputs["create"]).replace(/^bash '[^']+' /, "")).sort(),
        engine === "postgres" ? ["setup", "wait"] : [`setup && bash '/srv/bbaegok/${stack}/replica/replica.sh' wait`],
      );
    });
  });
}

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`a ${engine} stack whose replica was promoted (database.primary: replica)`, () => {
    const stack = `promoted${engine}`;
    const file = stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `promoted-${engine}.bbaegok.kr`)
      .replace("    replicas:\n", "    primary: replica\n    replicas:\n")
      .replace("    api: staging-api.bbaegok.kr\n", "    api: staging-api.bbaegok.kr\n    metabase: staging-metabase.bbaegok.kr\n")
      .replace("  bbaegok-infra:metabase:\n    enabled: false\n", "  bbaegok-infra:metabase:\n    enabled: true\n    image: metabase/metabase:v0.56.9\n    databaseImage: postgres:16.10\n    memoryMb: 2048\n    adminEmail: dev@bbaegok.kr\n");
    project.writeStackFile(stack, file);
    const plan = planInChild(stack, project.dir);
    const containers = plan.resources.filter((r) => r.type === CONTAINER);
    const scheme = engine === "postgres" ? "postgresql" : "mariadb";
    const port = engine === "postgres" ? 5432 : 3306;

    it("the slots write to the promoted container (db-replica) and get no replica datasource", () => {
      const slots = containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])));
      assert.equal(slots.length, 2);
      for (const slot of slots) {
        const envs = slot.inputs["envs"] as string[];
        assert.ok(envs.includes(`SPRING_DATASOURCE_URL=jdbc:${scheme}://db-replica:${port}/bbaegok`), envs.join(" "));
        assert.ok(!envs.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_")), envs.join(" "));
      }
    });

    it("the backup job dumps the promoted container, with no replica logic", () => {
      const script = plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/backup/backup.sh`);
      assert.ok(script, "no backup script");
      const text = String(script.inputs["content"]);
      assert.match(text, new RegExp(`'bbaegok ${engine} bbaegok-${stack}-db-replica `));
      assert.doesNotMatch(text, new RegExp(`bbaegok-${stack}-db (root|postgres) |REPLICAS=`));
    });

    it("Metabase reads from the promoted container", () => {
      const setup = plan.resources.find((r) => r.name === "metabase-setup");
      assert.match(String(setup?.inputs["stdin"]), /"details":\{"host":"db-replica",/);
    });

    it("the promoted container stays writable across restarts and is never set up again", () => {
      const replica = containers.find((c) => c.inputs["name"] === `bbaegok-${stack}-db-replica`);
      const command = (replica!.inputs["command"] as string[]).join(" ");
      if (engine === "postgres") assert.match(command, /hot_standby=on/, "the standby's flags changed: its container would be replaced for nothing");
      else assert.match(command, /--read-only=OFF/);
      const setups = plan.resources.filter((r) => r.type === "command:remote:Command" && /^bash .*\/replica\/replica\.sh/.test(String(r.inputs["create"])));
      assert.deepEqual(setups.map((r) => r.name), []);
    });
  });
}

describe("the committed stacks list no replica", () => {
  for (const stack of ["prod", "staging"]) {
    it(`${stack}: no replica container, no replication flag, no replica datasource`, () => {
      const plan = planInChild(stack);
      const text = JSON.stringify(plan.resources);
      assert.ok(!/db-replica|replicator|log-bin|REPLICA_URL/.test(text));
    });
  }
});

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`Metabase on a ${engine} stack with a replica`, () => {
    const stack = `replicametabase${engine}`;
    const file = stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `mb-${engine}.bbaegok.kr`)
      .replace("    api: staging-api.bbaegok.kr\n", "    api: staging-api.bbaegok.kr\n    metabase: staging-metabase.bbaegok.kr\n")
      .replace("  bbaegok-infra:metabase:\n    enabled: false\n", "  bbaegok-infra:metabase:\n    enabled: true\n    image: metabase/metabase:v0.56.9\n    databaseImage: postgres:16.10\n    memoryMb: 2048\n    adminEmail: dev@bbaegok.kr\n");
    project.writeStackFile(stack, file);
    const plan = planInChild(stack, project.dir);
    const commands = plan.resources.filter((r) => r.type === "command:remote:Command");

    it("Metabase's data source is the replica (db-replica), not the primary", () => {
      const setup = commands.find((c) => c.name === "metabase-setup");
      assert.ok(setup, `no Metabase setup among ${commands.map((c) => c.name).join(", ")}`);
      assert.match(String(setup.inputs["stdin"]), /"details":\{"host":"db-replica",/);
    });

    it(engine === "postgres" ? "the read-only login is made on the primary only (the standby gets it by replication)" : "the read-only login is made on the replica too, outside its binary log (its accounts are not replicated)", () => {
      const onReplica = commands.find((c) => c.name === "metabase-readonly-user-replica");
      if (engine === "postgres") {
        assert.equal(onReplica, undefined);
        return;
      }
      assert.ok(onReplica, `no read-only login on the replica among ${commands.map((c) => c.name).join(", ")}`);
      assert.match(String(onReplica.inputs["create"]), new RegExp(`^docker exec -i bbaegok-${stack}-db-replica `));
      assert.equal(onReplica.inputs["stdin"], "[secret]");
      assert.ok(plan.resources.some((r) => r.name === "metabase-readonly-user"), "the primary lost its read-only login");
    });
  });
}
