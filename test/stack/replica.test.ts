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
/** A command that runs the replica's script (any step, any way). */
const REPLICA_SCRIPT_RUN = /bbaegok-install run '[^']*\/replica\/replica\.sh'/;

/** A MariaDB replica's role option file (read-only or promoted), as the plan places it on the stack's server. */
function roleFile(resources: { type: string; inputs: Record<string, unknown> }[], stack: string) {
  return resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/replica/role.cnf`);
}

/** Staging's file on a server of its own (it owns its proxy), with `engine` and one replica. */
function stackFileWithReplica(engine: string, version: string, host: string): string {
  return readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8")
    .replace("host: home.bbaegok.kr", `host: ${host}`)
    .replace(/engine: mariadb/, `engine: ${engine}`)
    .replace(/version: "[0-9.]+"/, `version: "${version}"`)
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

    it("keeps its data on a volume of its own, a copy removed with it (neither protected nor retained), and reads its passwords from files", () => {
      const volume = plan.resources.find((r) => r.type === "docker:index/volume:Volume" && r.inputs["name"] === `bbaegok-${stack}-db-replica-data`);
      assert.ok(volume);
      assert.equal(volume.options.protect, false);
      assert.equal(volume.options.retainOnDelete, false);
      const envs = replica!.inputs["envs"] as string[];
      assert.ok(!envs.some((e) => /PASSWORD=/.test(e)), envs.join(" "));
      const file = plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/secrets/db/replication_password`);
      assert.ok(file, "no replication password file");
      assert.equal(file.inputs["mode"], "0400");
    });

    it("the primary gets its replication flags, the replica its own; a MariaDB replica is read-only by its role file, mounted read-only", () => {
      assert.ok((primary!.inputs["command"] as string[]).includes(flag), String(primary!.inputs["command"]));
      const command = (replica!.inputs["command"] as string[]).join(" ");
      assert.match(command, engine === "postgres" ? /hot_standby=on .*primary_conninfo=host=db port=5432 user=replicator passfile=\/run\/secrets\/replication.pgpass/ : /--server-id=2 --log-bin=mysql-bin --log-slave-updates=ON/);
      assert.doesNotMatch(command, /read-only|read_only/);
      const role = roleFile(plan.resources, stack);
      const mounts = replica!.inputs["mounts"] as { source: string; target: string; readOnly: boolean }[];
      if (engine === "postgres") {
        assert.equal(role, undefined);
        assert.ok(!mounts.some((m) => m.target.startsWith("/etc/mysql")));
      } else {
        assert.match(String(role?.inputs["content"]), /^\[mysqld\]\nread_only = ON$/m);
        assert.deepEqual([role!.inputs["mode"], role!.inputs["owner"]], ["0644", "root:root"]);
        assert.deepEqual(mounts.find((m) => m.source === `/srv/bbaegok/${stack}/replica/role.cnf`), { type: "bind", source: `/srv/bbaegok/${stack}/replica/role.cnf`, target: "/etc/mysql/conf.d/zz-bbaegok-replica-role.cnf", readOnly: true });
        assert.ok(replica!.options.dependsOn.includes("database-replica-1-role-file-install"), `the container could be made before its role file: ${replica!.options.dependsOn.join(" ")}`);
      }
    });

    it("the app's slots get a read-only datasource on the replica", () => {
      for (const slot of containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])))) {
        const envs = slot.inputs["envs"] as string[];
        assert.ok(envs.includes(`SPRING_DATASOURCE_REPLICA_URL=jdbc:${engine === "postgres" ? "postgresql" : "mariadb"}://db-replica:${engine === "postgres" ? "5432/bbaegok?socketTimeout=30" : "3306/bbaegok?socketTimeout=30000"}`), envs.join(" "));
        assert.ok(envs.includes("SPRING_DATASOURCE_REPLICA_USERNAME=bbaegok"));
      }
    });

    it("the replica's setup runs the rendered script on the server, as root through the install helper", () => {
      const commands = plan.resources.filter((r) => r.type === "command:remote:Command" && REPLICA_SCRIPT_RUN.test(String(r.inputs["create"])));
      const run = (step: string) => `sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/${stack}/replica/replica.sh' '${step}'`;
      assert.deepEqual(commands.map((c) => String(c.inputs["create"])).sort(), engine === "postgres" ? [run("setup"), run("wait")] : [`${run("setup")} && ${run("wait")}`]);
    });

    it("taken out of the stack, the replica's container goes before its retirement (replica.sh retire on the primary's server), which goes before the script", () => {
      const retire = plan.resources.find((r) => r.name === "database-replica-1-retire");
      assert.equal(retire?.inputs["create"], undefined, "the retirement runs something on create");
      assert.equal(retire?.inputs["delete"], `sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/${stack}/replica/replica.sh' 'retire'`);
      // Pulumi deletes dependents first: the container, then the retirement, then the script it runs.
      assert.ok(replica!.options.dependsOn.includes("database-replica-1-retire"), replica!.options.dependsOn.join(" "));
      assert.ok(retire!.options.dependsOn.includes("database-replica-1-script-install"), retire!.options.dependsOn.join(" "));
    });
  });
}

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`a ${engine} stack staged for its promotion (database.primary: promoting, npm run promote's first up)`, () => {
    itStagesThePromotion(`staged${engine}`, engine, stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `staged-${engine}.bbaegok.kr`), "db-replica");
  });

  describe(`a ${engine} stack whose replica was promoted (database.primary: replica)`, () => {
    const stack = `promoted${engine}`;
    const file = stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `promoted-${engine}.bbaegok.kr`)
      .replace("    replicas:\n", "    primary: replica\n    replicas:\n")
      .replace("    api: staging-api.bbaegok.kr\n", "    api: staging-api.bbaegok.kr\n    metabase: staging-metabase.bbaegok.kr\n")
      .replace("  bbaegok-infra:metabase:\n    enabled: false\n", "  bbaegok-infra:metabase:\n    enabled: true\n    image: metabase/metabase:v0.56.9\n    databaseImage: postgres:16.10\n    memoryMb: 2048\n    adminEmail: dev@bbaegok.kr\n");
    // The same stack before `npm run promote` wrote `primary: replica`: what the promotion's up changes.
    project.writeStackFile(stack, file.replace("    primary: replica\n", ""));
    const planBefore = planInChild(stack, project.dir).resources;
    const before = planBefore.find((r) => r.type === CONTAINER && r.inputs["name"] === `bbaegok-${stack}-db`);
    const replicaBefore = planBefore.find((r) => r.type === CONTAINER && r.inputs["name"] === `bbaegok-${stack}-db-replica`);
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

    it("the original stays stopped once down: Docker does not restart it (restart no, updated in place) and the program does not start it (mustRun false) nor changes it again; the promoted container restarts", () => {
      const original = containers.find((c) => c.inputs["name"] === `bbaegok-${stack}-db`);
      const replica = containers.find((c) => c.inputs["name"] === `bbaegok-${stack}-db-replica`);
      const retired = ["restart", "mustRun", "start"];
      const pick = (inputs: Record<string, unknown>) => retired.map((k) => inputs[k]);
      assert.deepEqual(pick(original!.inputs), ["no", false, false]);
      assert.deepEqual(pick(replica!.inputs), ["unless-stopped", undefined, undefined]);
      // Nothing else differs from before the promotion: no flag, image or label change recreates it (the three are updated in place).
      assert.deepEqual(pick(before!.inputs), ["unless-stopped", undefined, undefined]);
      const rest = Object.fromEntries(Object.entries(original!.inputs).filter(([k]) => !retired.includes(k)));
      assert.deepEqual(rest, Object.fromEntries(Object.entries(before!.inputs).filter(([k]) => !retired.includes(k))));
      assert.deepEqual(violations(plan.resources), []);
      // And nothing else of it changes again: a later version or flag would recreate it, and so start it.
      const frozen = (original!.options as { ignoreChanges?: string[] }).ignoreChanges ?? [];
      assert.deepEqual(Object.keys(rest).filter((k) => !frozen.includes(k)), []);
      assert.deepEqual(retired.filter((k) => frozen.includes(k)), [], frozen.join(" "));
      assert.deepEqual((replica!.options as { ignoreChanges?: string[] }).ignoreChanges ?? [], []);
    });

    it("the promoted container is the one that ran before (no input changes, so the flip's up neither re-creates nor restarts it), stays writable across restarts by its role file, and is never set up again: its setup commands are still declared, with their inputs before the promotion", () => {
      const replica = containers.find((c) => c.inputs["name"] === `bbaegok-${stack}-db-replica`);
      assert.deepEqual(replica!.inputs, replicaBefore!.inputs);
      const role = roleFile(plan.resources, stack);
      if (engine === "postgres") assert.equal(role, undefined);
      else {
        assert.match(String(role?.inputs["content"]), /^\[mysqld\]\nread_only = OFF$/m);
        assert.match(String(roleFile(planBefore, stack)?.inputs["content"]), /^read_only = ON$/m);
      }
      // The one new run of its script: the check that it was promoted on the server and takes writes. The setup
      // commands are the ones before it, inputs unchanged, so neither this up nor the failback's flip back runs them.
      const runs = (resources: typeof plan.resources) =>
        resources.filter((r) => r.type === "command:remote:Command" && REPLICA_SCRIPT_RUN.test(String(r.inputs["create"]))).map((r) => [r.name, r.inputs]);
      const setups = runs(planBefore);
      assert.deepEqual(setups.map(([n]) => n), engine === "postgres" ? ["database-replica-1-setup", "database-replica-1-wait"] : ["database-replica-1-seed"]);
      const after = runs(plan.resources);
      assert.deepEqual(after.filter(([n]) => n !== "database-replica-1-writable"), setups);
      const writable = after.find(([n]) => n === "database-replica-1-writable")?.[1] as Record<string, unknown> | undefined;
      assert.equal(writable?.["create"], `sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/${stack}/replica/replica.sh' 'writable'`);
    });

    it("the failback's copy of the script is placed beside replica.sh (root's, 0755), the roles swapped: the promoted container is the primary the original follows; none before the promotion", () => {
      const at = `/srv/bbaegok/${stack}/replica/failback.sh`;
      const failback = plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === at);
      assert.deepEqual([failback?.inputs["mode"], failback?.inputs["owner"]], ["0755", "root:root"]);
      const text = String(failback?.inputs["content"]);
      assert.match(text, new RegExp(`^readonly PRIMARY='bbaegok-${stack}-db-replica' REPLICA='bbaegok-${stack}-db'$`, "m"));
      assert.match(text, new RegExp(`FAILBACK_DIR_DEFAULT='/srv/bbaegok/${stack}/replica/failback'$`, "m"));
      assert.equal(planBefore.find((r) => r.inputs["path"] === at), undefined);
    });

    it("the promoted container's volume holds the service's data now: protected and retained; its retirement is still declared (never deleted by the promotion)", () => {
      const volume = plan.resources.find((r) => r.type === "docker:index/volume:Volume" && r.inputs["name"] === `bbaegok-${stack}-db-replica-data`);
      assert.equal(volume?.options.protect, true);
      assert.equal(volume?.options.retainOnDelete, true);
      assert.ok(plan.resources.some((r) => r.name === "database-replica-1-retire"), "the promotion's up would run the retirement on the original");
    });

    it("the slots (and so the flip, after their smoke checks) wait for that check, which waits for the promoted container", () => {
      const check = plan.resources.find((r) => r.name === "database-replica-1-writable")!;
      assert.ok(check.options.dependsOn.includes(`database-replica-1-container`), check.options.dependsOn.join(" "));
      const slots = containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])));
      for (const slot of slots) assert.ok(slot.options.dependsOn.includes("database-replica-1-writable"), `${slot.name}: ${slot.options.dependsOn.join(" ")}`);
    });
  });
}

/**
 * A staged switch's first up (npm run promote's or failback's): `stack` planned
 * as served from `file`, then again as before and from `stagedFile`, with the
 * stack's own outputs (what serves).
 */
function plansOfStagedSwitch(stack: string, file: string, stagedFile: string) {
  project.writeStackFile(stack, file);
  const self = { [`organization/bbaegok-infra/${stack}`]: {} as Record<string, unknown> };
  const served = planInChild(stack, project.dir, self, true);
  self[`organization/bbaegok-infra/${stack}`] = { appSlots: served.outputs["appSlots"] };
  const before = planInChild(stack, project.dir, self);
  project.writeStackFile(stack, stagedFile);
  return { served, before, staged: planInChild(stack, project.dir, self) };
}

/**
 * npm run promote's first up (database.primary: promoting) of `stack`, whose
 * stack file `file` lists its replica (not promoted yet): planned as served,
 * then again as before and as staged, with the stack's own outputs; the
 * staged slot writes to `writeHost`, where the replica is.
 */
function itStagesThePromotion(stack: string, engine: "mariadb" | "postgres", file: string, writeHost: string): void {
  const { served, before, staged } = plansOfStagedSwitch(stack, file, file.replace("    replicas:\n", "    primary: promoting\n    replicas:\n"));
  const inputsOf = (plan: typeof staged, name: string) => plan.resources.find((r) => r.type === CONTAINER && r.inputs["name"] === name)?.inputs;

  it(`only the warm slot changes: it names ${writeHost}, with no replica datasource; the serving slot, both databases and the backup are as before`, () => {
    const live = served.outputs["liveSlot"] as string;
    const warm = live === "blue" ? "green" : "blue";
    assert.equal(staged.outputs["liveSlot"], live, "the staged up made another slot live");
    const envs = inputsOf(staged, `bbaegok-${stack}-app-${warm}`)!["envs"] as string[];
    // Across the link, with the replica's read timeout; on this server, none.
    const timeout = writeHost === "db-replica" ? "" : engine === "postgres" ? "?socketTimeout=30" : "?socketTimeout=30000";
    assert.ok(envs.includes(`SPRING_DATASOURCE_URL=jdbc:${engine === "postgres" ? "postgresql" : "mariadb"}://${writeHost}:${engine === "postgres" ? 5432 : 3306}/bbaegok${timeout}`), envs.join(" "));
    assert.ok(!envs.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_")), envs.join(" "));
    assert.notDeepEqual(inputsOf(staged, `bbaegok-${stack}-app-${warm}`), inputsOf(before, `bbaegok-${stack}-app-${warm}`));
    for (const name of [`app-${live}`, "db", "db-replica"]) assert.deepEqual(inputsOf(staged, `bbaegok-${stack}-${name}`), inputsOf(before, `bbaegok-${stack}-${name}`), name);
    const backup = (plan: typeof staged) => String(plan.resources.find((r) => r.inputs["path"] === `/srv/bbaegok/${stack}/backup/backup.sh`)?.inputs["content"]);
    assert.equal(backup(staged), backup(before));
    // The original is still the primary: dumped from its container here, no promoted replica reached over the link.
    assert.match(backup(staged), new RegExp(`^  'bbaegok ${engine} bbaegok-${stack}-db (root|postgres) `, "m"));
    assert.doesNotMatch(backup(staged), /^  '.* promoted /m);
    assert.deepEqual(violations(staged.resources), []);
  });
}

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`a ${engine} stack staged for the way back (database.primary: returning, npm run failback's first up)`, () => {
    const stack = `returning${engine}`;
    const promoted = stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `returning-${engine}.bbaegok.kr`).replace("    replicas:\n", "    primary: replica\n    replicas:\n");
    const { served, before, staged } = plansOfStagedSwitch(stack, promoted, promoted.replace("    primary: replica\n", "    primary: returning\n"));
    const inputsOf = (plan: typeof staged, name: string) => plan.resources.find((r) => r.inputs["name"] === name || r.inputs["path"] === name)?.inputs;

    it("only the warm slot changes: it writes to db and reads db-replica, as once returned; the serving slot, both databases, failback.sh and the backup are as promoted", () => {
      const live = served.outputs["liveSlot"] as string;
      const warm = live === "blue" ? "green" : "blue";
      assert.equal(staged.outputs["liveSlot"], live, "the staged up made another slot live");
      const envs = inputsOf(staged, `bbaegok-${stack}-app-${warm}`)!["envs"] as string[];
      const [scheme, port] = engine === "postgres" ? ["postgresql", 5432] : ["mariadb", 3306];
      assert.ok(envs.includes(`SPRING_DATASOURCE_URL=jdbc:${scheme}://db:${port}/bbaegok`), envs.join(" "));
      assert.ok(envs.some((e) => e.startsWith(`SPRING_DATASOURCE_REPLICA_URL=jdbc:${scheme}://db-replica:${port}/bbaegok`)), envs.join(" "));
      const unchanged = [`app-${live}`, "db", "db-replica"].map((n) => `bbaegok-${stack}-${n}`);
      for (const path of ["backup/backup.sh", "replica/failback.sh", "replica/replica.sh"]) unchanged.push(`/srv/bbaegok/${stack}/${path}`);
      for (const name of unchanged) assert.deepEqual(inputsOf(staged, name), inputsOf(before, name), name);
      assert.ok(inputsOf(staged, `/srv/bbaegok/${stack}/replica/failback.sh`), "no failback.sh while returning");
      assert.deepEqual(violations(staged.resources), []);
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

/** The stack file with Metabase enabled (staging's has it off). */
function withMetabase(file: string): string {
  return file
    .replace("    api: staging-api.bbaegok.kr\n", "    api: staging-api.bbaegok.kr\n    metabase: staging-metabase.bbaegok.kr\n")
    .replace("  bbaegok-infra:metabase:\n    enabled: false\n", "  bbaegok-infra:metabase:\n    enabled: true\n    image: metabase/metabase:v0.56.9\n    databaseImage: postgres:16.10\n    memoryMb: 2048\n    adminEmail: dev@bbaegok.kr\n");
}

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`Metabase on a ${engine} stack with a replica`, () => {
    const stack = `replicametabase${engine}`;
    project.writeStackFile(stack, withMetabase(stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", `mb-${engine}.bbaegok.kr`)));
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

const REPLICA_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplicaHostKeyForTheOfflinePlan0000000000";

/** The stack file with its replica on another server, over `link` (YAML lines under the replica's entry). */
function stackFileWithReplicaElsewhere(host: string, link: string, engine: "postgres" | "mariadb" = "postgres"): string {
  return stackFileWithReplica(engine, engine === "postgres" ? "16.10" : "11.4.4", host).replace(
    "      - maxLagSeconds: 120\n",
    `      - maxLagSeconds: 120\n        server:\n          host: replica.bbaegok.kr\n          ssh:\n            user: deploy\n            port: 2222\n            hostKey: ${REPLICA_HOST_KEY}\n        link:\n${link}`,
  );
}

const WIREGUARD_LINK = "          type: wireguard\n          primaryAddress: 10.99.0.1\n          replicaAddress: 10.99.0.2\n";

/** The plan of `stack` with its `engine` replica on another server over WireGuard (its stack file changed by `edit`), and what its tests look at. */
function planWithReplicaElsewhere(stack: string, host: string, engine: "postgres" | "mariadb", edit: (file: string) => string = (file) => file) {
  project.writeStackFile(stack, edit(stackFileWithReplicaElsewhere(host, WIREGUARD_LINK, engine)));
  const plan = planInChild(stack, project.dir);
  const containers = plan.resources.filter((r) => r.type === CONTAINER);
  return {
    plan,
    containers,
    replica: containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db-replica`),
    primary: containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db`),
    providers: plan.resources.filter((r) => r.type === "pulumi:providers:docker"),
    commands: plan.resources.filter((r) => r.type === "command:remote:Command"),
  };
}

describe("a postgres stack with its replica on another server, over WireGuard", () => {
  const stack = "replicaelsewhere";
  const { plan, containers, replica, primary, providers, commands } = planWithReplicaElsewhere(stack, "primary.bbaegok.kr", "postgres");

  it("the replica's server gets its own Docker provider over SSH: its host, its pinned host key, the shared connection", () => {
    const own = providers.find((p) => p.inputs["host"] === "ssh://deploy@replica.bbaegok.kr:2222");
    assert.ok(own, `no provider for the replica's server among ${providers.map((p) => p.inputs["host"]).join(", ")}`);
    // A provider's inputs reach the engine as strings: a list is JSON.
    const sshOpts = (p: { inputs: Record<string, unknown> }) => JSON.parse(String(p.inputs["sshOpts"])) as string[];
    const opts = sshOpts(own);
    assert.ok(opts.includes(`KnownHostsCommand=/bin/echo %H ${REPLICA_HOST_KEY}`), opts.join(" "));
    assert.ok(opts.includes("StrictHostKeyChecking=yes") && opts.includes("ControlMaster=auto") && opts.includes("UserKnownHostsFile=/dev/null"), opts.join(" "));
    const stackServer = providers.find((p) => p.inputs["host"] === "ssh://deploy@primary.bbaegok.kr:22022");
    assert.ok(stackServer, "the stack's own server lost its provider");
    assert.ok(!sshOpts(stackServer).some((o) => o.includes(REPLICA_HOST_KEY)), "the stack's server accepts the replica's key");
    assert.ok(replica, `no replica container among ${containers.map((c) => c.inputs["name"]).join(", ")}`);
    assert.equal(replica.options.provider, own.name);
    assert.equal(primary!.options.provider, stackServer.name);
  });

  it("the replica reaches the primary at the primary's link address; each publishes its port on its own link address only; no guardrail broken", () => {
    assert.deepEqual(replica!.inputs["ports"], [{ internal: 5432, external: 5432, ip: "10.99.0.2", protocol: "tcp" }]);
    assert.deepEqual(replica!.inputs["networksAdvanced"], [{ name: `bbaegok-${stack}-db-replica` }]);
    assert.match((replica!.inputs["command"] as string[]).join(" "), /primary_conninfo=host=10\.99\.0\.1 port=5432 user=replicator passfile=/);
    assert.deepEqual(primary!.inputs["ports"], [{ internal: 5432, external: 5432, ip: "10.99.0.1", protocol: "tcp" }]);
    const publishing = containers.filter((c) => (c.inputs["ports"] as unknown[] | undefined)?.length || c.inputs["networkMode"] === "host");
    assert.deepEqual(publishing.map((c) => c.inputs["name"]).sort(), ["bbaegok-proxy", `bbaegok-${stack}-db`, `bbaegok-${stack}-db-replica`]);
    assert.deepEqual(violations(plan.resources), []);
  });

  it("WireGuard on both hosts: a 0600 wg-quick file each (secret), brought up as root, before the primary binds and the replica connects", () => {
    const files = plan.resources.filter((r) => r.type === "bbaegok:server:File" && /\/link\/bbwg[0-9a-f]{8}\.conf$/.test(String(r.inputs["path"])));
    assert.equal(files.length, 2, plan.resources.filter((r) => r.type === "bbaegok:server:File").map((r) => r.inputs["path"]).join(", "));
    for (const file of files) {
      assert.equal(file.inputs["mode"], "0600");
      assert.equal(file.inputs["owner"], "root:root");
      assert.equal(file.inputs["content"], "[secret]");
    }
    // A command's connection is secret (masked in the plan): which server each runs on is the component's wiring (infra/link).
    const ups = commands.filter((c) => /-link-(primary|replica)-up$/.test(c.name));
    assert.deepEqual(ups.map((c) => c.name).sort(), ["database-replica-1-link-primary-up", "database-replica-1-link-replica-up"]);
    for (const up of ups) assert.match(String(up.inputs["create"]), /sudo -n \/usr\/local\/sbin\/bbaegok-install run '\/srv\/bbaegok\/replicaelsewhere\/link\/up\.sh'$/);
    // A changed key replaces the command: down.sh (link down, boot unit gone) first, then up.sh; the other way round the link would end down.
    for (const up of ups) assert.equal(up.options.deleteBeforeReplace, true, `${up.name} would be brought down after its replacement came up`);
    // What brings the link back after a reboot is installed by the same run (infra/link/render.ts: linkBootUnit).
    for (const up of ups) assert.match(String(up.inputs["create"]), /systemctl enable --quiet \S*bbaegok-link-bbwg[0-9a-f]{8}\.service/);
    for (const dependent of [primary!, replica!]) assert.deepEqual(ups.map((u) => u.name).filter((n) => !dependent.options.dependsOn.includes(n)), [], `${dependent.name} does not wait for the link`);
    assert.doesNotMatch(JSON.stringify(plan.resources), /PrivateKey = /);
  });

  it("the standby's password files, entrypoint and copy of replica.sh (npm run reseed's steps there) are placed for its server; the primary's side is set up by replica.sh; the standby is waited for until it streams", () => {
    const onReplicaServer = plan.resources.filter((r) => r.type === "bbaegok:server:File" && /-elsewhere-/.test(r.name));
    assert.deepEqual(onReplicaServer.map((r) => r.inputs["path"]).sort(), [
      `/srv/bbaegok/${stack}/replica-init/entrypoint.sh`,
      `/srv/bbaegok/${stack}/replica/replica.sh`,
      `/srv/bbaegok/${stack}/secrets/db/db_password`,
      `/srv/bbaegok/${stack}/secrets/db/db_root_password`,
      `/srv/bbaegok/${stack}/secrets/db/replication.pgpass`,
    ]);
    assert.ok(!plan.resources.some((r) => r.type === "bbaegok:server:File" && r.name === "database-replica-1-pgpass-file"), "libpq's password file is placed on the primary's server too");
    const setup = commands.find((c) => c.name === "database-replica-1-setup");
    assert.equal(setup?.inputs["create"], `sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/${stack}/replica/replica.sh' 'setup'`);
    const wait = commands.find((c) => c.name === "database-replica-1-wait");
    assert.match(String(wait?.inputs["create"]), new RegExp(`^docker exec 'bbaegok-${stack}-db-replica' .*pg_stat_wal_receiver`));
    assert.ok(wait!.options.dependsOn.includes("database-replica-1-container"));
  });

  it("the app's read-only datasource is the replica at its link address (through the slots' routed edge network); backups check it and dump it over the link as the backup role", () => {
    const slots = containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])));
    assert.equal(slots.length, 2);
    for (const slot of slots) {
      const envs = slot.inputs["envs"] as string[];
      assert.ok(envs.includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://10.99.0.2:5432/bbaegok?socketTimeout=30"), envs.join(" "));
      assert.ok(envs.includes("SPRING_DATASOURCE_URL=jdbc:postgresql://db:5432/bbaegok"), envs.join(" "));
      // The edge network is routed (not internal): its traffic to the link leaves masqueraded as the primary server's link address.
      assert.ok((slot.inputs["networksAdvanced"] as { name: string }[]).some((n) => n.name === `bbaegok-${stack}-edge`), JSON.stringify(slot.inputs["networksAdvanced"]));
    }
    const edge = plan.resources.find((r) => r.type === "docker:index/network:Network" && r.inputs["name"] === `bbaegok-${stack}-edge`);
    assert.notEqual(edge?.inputs["internal"], true);
    // Backups check the replica over the link (replica.sh status on this server) and dump it there, its client in the primary's container.
    const backup = plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/backup/backup.sh`);
    assert.match(String(backup?.inputs["content"]), new RegExp(`^  'bbaegok bbaegok-${stack}-db-replica 120 link 10\\.99\\.0\\.2 5432'$`, "m"));
    // The backup role's password: on this server only (the role is made on the primary; the standby has it by replication).
    const passwords = plan.resources.filter((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).endsWith("/replica_backup_password"));
    assert.deepEqual(passwords.map((r) => [r.name, r.inputs["path"], r.inputs["mode"], r.inputs["content"]]), [["database-replica-1-backup-password-file", `/srv/bbaegok/${stack}/secrets/db/replica_backup_password`, "0400", "[secret]"]]);
  });
});

describe("a postgres stack with its replica on another server of its tailnet", () => {
  const stack = "replicatailnet";
  project.writeStackFile(stack, stackFileWithReplicaElsewhere("tailnet-primary.bbaegok.kr", "          type: tailnet\n          primaryAddress: 100.101.102.103\n          replicaAddress: 100.101.102.104\n"));
  const plan = planInChild(stack, project.dir);
  const containers = plan.resources.filter((r) => r.type === CONTAINER);

  it("each server's database port is bound to its tailnet address, the app reads the replica's, nothing of WireGuard is made, and no guardrail broken", () => {
    const primary = containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db`);
    assert.deepEqual(primary!.inputs["ports"], [{ internal: 5432, external: 5432, ip: "100.101.102.103", protocol: "tcp" }]);
    const replica = containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-db-replica`);
    assert.deepEqual(replica!.inputs["ports"], [{ internal: 5432, external: 5432, ip: "100.101.102.104", protocol: "tcp" }]);
    const slot = containers.find((r) => r.inputs["name"] === `bbaegok-${stack}-app-blue`);
    assert.ok((slot!.inputs["envs"] as string[]).includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://100.101.102.104:5432/bbaegok?socketTimeout=30"));
    assert.match((replica!.inputs["command"] as string[]).join(" "), /primary_conninfo=host=100\.101\.102\.103 /);
    assert.deepEqual(plan.resources.filter((r) => /bbaegok:link:|randomBytes/.test(r.type)).map((r) => r.name), []);
    assert.deepEqual(violations(plan.resources), []);
  });

  it("on each server, the sysctl that lets Docker publish on the tailnet address before tailscaled has it at boot; the primary and the replica wait for both", () => {
    const binds = plan.resources.filter((r) => r.type === "command:remote:Command" && /-link-(primary|replica)-bind$/.test(r.name));
    assert.deepEqual(binds.map((r) => r.name).sort(), ["database-replica-1-link-primary-bind", "database-replica-1-link-replica-bind"]);
    for (const bind of binds) {
      assert.match(String(bind.inputs["create"]), /net\.ipv4\.ip_nonlocal_bind = 1/);
      assert.match(String(bind.inputs["delete"]), /rm -f \S*\/etc\/sysctl\.d\/60-bbaegok-link-bbwg[0-9a-f]{8}\.conf/);
    }
    for (const name of [`bbaegok-${stack}-db`, `bbaegok-${stack}-db-replica`]) {
      const container = containers.find((r) => r.inputs["name"] === name);
      assert.deepEqual(binds.map((b) => b.name).filter((b) => !container!.options.dependsOn.includes(b)), [], `${name} does not wait for the sysctl`);
    }
  });
});

describe("a mariadb stack with its replica on another server, over WireGuard", () => {
  const stack = "mariadbelsewhere";
  const { plan, containers, replica, primary, providers, commands } = planWithReplicaElsewhere(stack, "mariadb-primary.bbaegok.kr", "mariadb");
  const files = plan.resources.filter((r) => r.type === "bbaegok:server:File");
  const run = (step: string) => `sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/${stack}/replica/replica.sh' '${step}'`;

  it("the replica runs on the replica's server (its own Docker provider over SSH, its pinned key), read-only; each database's port is bound to its own link address only; no guardrail broken", () => {
    const own = providers.find((p) => p.inputs["host"] === "ssh://deploy@replica.bbaegok.kr:2222");
    assert.ok(own, `no provider for the replica's server among ${providers.map((p) => p.inputs["host"]).join(", ")}`);
    assert.ok((JSON.parse(String(own.inputs["sshOpts"])) as string[]).includes(`KnownHostsCommand=/bin/echo %H ${REPLICA_HOST_KEY}`));
    assert.ok(replica, `no replica container among ${containers.map((c) => c.inputs["name"]).join(", ")}`);
    assert.equal(replica.options.provider, own.name);
    assert.deepEqual(replica.inputs["ports"], [{ internal: 3306, external: 3306, ip: "10.99.0.2", protocol: "tcp" }]);
    assert.deepEqual(replica.inputs["networksAdvanced"], [{ name: `bbaegok-${stack}-db-replica` }]);
    assert.match((replica.inputs["command"] as string[]).join(" "), /--server-id=2 --log-bin=mysql-bin --log-slave-updates=ON/);
    // Read-only by its role file on its own server, mounted from there.
    const role = plan.resources.find((r) => r.name === "database-replica-1-elsewhere-role-file");
    assert.match(String(role?.inputs["content"]), /^read_only = ON$/m);
    assert.ok((replica.inputs["mounts"] as { source: string }[]).some((m) => m.source === `/srv/bbaegok/${stack}/replica/role.cnf`));
    assert.ok(replica.options.dependsOn.includes("database-replica-1-elsewhere-role-file-install"), replica.options.dependsOn.join(" "));
    assert.match((primary!.inputs["command"] as string[]).join(" "), /--log-bin=mysql-bin/);
    assert.deepEqual(primary!.inputs["ports"], [{ internal: 3306, external: 3306, ip: "10.99.0.1", protocol: "tcp" }]);
    const publishing = containers.filter((c) => (c.inputs["ports"] as unknown[] | undefined)?.length || c.inputs["networkMode"] === "host");
    assert.deepEqual(publishing.map((c) => c.inputs["name"]).sort(), [`bbaegok-${stack}-db`, `bbaegok-${stack}-db-replica`, "bbaegok-proxy"]);
    assert.deepEqual(violations(plan.resources), []);
  });

  it("the replica's server gets its password files (0400, secret), its role file and its own copy of replica.sh, which replicates from the primary's link address", () => {
    const onReplicaServer = files.filter((r) => /-elsewhere-/.test(r.name));
    assert.deepEqual(onReplicaServer.map((r) => r.inputs["path"]).sort(), [
      `/srv/bbaegok/${stack}/replica/replica.sh`,
      `/srv/bbaegok/${stack}/replica/role.cnf`,
      `/srv/bbaegok/${stack}/secrets/db/db_password`,
      `/srv/bbaegok/${stack}/secrets/db/db_root_password`,
      `/srv/bbaegok/${stack}/secrets/db/replica_backup_password`,
      `/srv/bbaegok/${stack}/secrets/db/replica_monitor_password`,
      `/srv/bbaegok/${stack}/secrets/db/replica_seed_password`,
      `/srv/bbaegok/${stack}/secrets/db/replication_password`,
    ]);
    for (const file of onReplicaServer.filter((r) => /\/secrets\//.test(String(r.inputs["path"])))) assert.deepEqual([file.inputs["mode"], file.inputs["content"]], ["0400", "[secret]"], String(file.inputs["path"]));
    const copy = (name: string) => String(files.find((r) => r.name === name)?.inputs["content"]);
    assert.match(copy("database-replica-1-elsewhere-script"), /^readonly THIS_SERVER=replica$/m);
    assert.match(copy("database-replica-1-elsewhere-script"), /^readonly PRIMARY_HOST='10\.99\.0\.1' PRIMARY_PORT=3306$/m);
    assert.match(copy("database-replica-1-script"), /^readonly THIS_SERVER=primary$/m);
    // The primary's server holds the seeding password too: its setup makes the login.
    assert.ok(files.some((r) => r.name === "database-replica-1-seeding-password-file" && r.inputs["path"] === `/srv/bbaegok/${stack}/secrets/db/replica_seed_password`));
    // And the monitoring login's: its copy of replica.sh reads the replica's state over the link as that login.
    assert.ok(files.some((r) => r.name === "database-replica-1-monitor-password-file" && r.inputs["path"] === `/srv/bbaegok/${stack}/secrets/db/replica_monitor_password` && r.inputs["content"] === "[secret]"));
    // And the backup login's: the replica's setup makes it there, the backup's client here logs in as it over the link.
    assert.ok(files.some((r) => r.name === "database-replica-1-backup-password-file" && r.inputs["path"] === `/srv/bbaegok/${stack}/secrets/db/replica_backup_password` && r.inputs["content"] === "[secret]"));
    assert.match(copy("database-replica-1-script"), /^readonly REPLICA_HOST='10\.99\.0\.2' REPLICA_PORT=3306$/m);
    assert.doesNotMatch(JSON.stringify(plan.resources), /MASTER_PASSWORD='[^@]/);
  });

  it("the primary's server makes the logins first; then the replica's server seeds and waits for the replica, once the replica and the link run", () => {
    const setup = commands.find((c) => c.name === "database-replica-1-setup");
    assert.equal(setup?.inputs["create"], run("setup"));
    const seed = commands.find((c) => c.name === "database-replica-1-seed");
    assert.equal(seed?.inputs["create"], `${run("setup")} && ${run("wait")}`);
    assert.deepEqual(["database-replica-1-container", "database-replica-1-setup"].filter((n) => !seed!.options.dependsOn.includes(n)), []);
    const ups = commands.filter((c) => /-link-(primary|replica)-up$/.test(c.name)).map((c) => c.name);
    assert.equal(ups.length, 2);
    assert.deepEqual(ups.filter((n) => !replica!.options.dependsOn.includes(n)), [], "the replica does not wait for the link");
  });

  it("the app reads the replica at its link address; backups check it and dump it over the link", () => {
    const slots = containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])));
    assert.equal(slots.length, 2);
    for (const slot of slots) assert.ok((slot.inputs["envs"] as string[]).includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://10.99.0.2:3306/bbaegok?socketTimeout=30000"), String(slot.inputs["envs"]));
    const backup = files.find((r) => r.inputs["path"] === `/srv/bbaegok/${stack}/backup/backup.sh`);
    assert.match(String(backup?.inputs["content"]), new RegExp(`^  'bbaegok bbaegok-${stack}-db-replica 120 link 10\\.99\\.0\\.2 3306'$`, "m"));
  });
});

describe("Metabase on a mariadb stack with its replica on another server", () => {
  const stack = "mbelsewhere";
  project.writeStackFile(stack, withMetabase(stackFileWithReplicaElsewhere("mb-elsewhere.bbaegok.kr", WIREGUARD_LINK, "mariadb")));
  const plan = planInChild(stack, project.dir);
  const commands = plan.resources.filter((r) => r.type === "command:remote:Command");

  it("Metabase's data source is the replica at its link address; its read-only login is made in the replica's container too, outside its binary log", () => {
    const setup = commands.find((c) => c.name === "metabase-setup");
    assert.match(String(setup?.inputs["stdin"]), /"details":\{"host":"10\.99\.0\.2",/);
    const onReplica = commands.find((c) => c.name === "metabase-readonly-user-replica");
    assert.ok(onReplica, `no read-only login on the replica among ${commands.map((c) => c.name).join(", ")}`);
    // Its connection is masked in the plan: that it is the replica's server's is the component's wiring (ReadReplica.connection).
    assert.match(String(onReplica.inputs["create"]), new RegExp(`^docker exec -i bbaegok-${stack}-db-replica `));
    // Made once the replica runs and is seeded.
    assert.deepEqual(["database-replica-1-container", "database-replica-1-seed"].filter((n) => !onReplica.options.dependsOn.includes(n)), [], "the login does not wait for the seeded replica");
    assert.deepEqual(violations(plan.resources), []);
  });
});

for (const engine of ["mariadb", "postgres"] as const) {
  describe(`a ${engine} stack staged for the promotion of its replica on another server (database.primary: promoting)`, () => {
    itStagesThePromotion(`stagedelsewhere${engine}`, engine, stackFileWithReplicaElsewhere(`staged-elsewhere-${engine}.bbaegok.kr`, WIREGUARD_LINK, engine), "10.99.0.2");
  });

  describe(`a ${engine} stack whose replica on another server was promoted (database.primary: replica)`, () => {
    const stack = `promotedelsewhere${engine}`;
    // The replica's server keeps its stacks in another folder than the stack's own: a path tells which server a command runs on.
    const promote = (file: string) =>
      file.replace(`            hostKey: ${REPLICA_HOST_KEY}\n`, `            hostKey: ${REPLICA_HOST_KEY}\n          dataDir: /data/bbaegok\n`).replace("    replicas:\n", "    primary: replica\n    replicas:\n");
    const { plan, containers, replica, primary, providers, commands } = planWithReplicaElsewhere(stack, `promoted-elsewhere-${engine}.bbaegok.kr`, engine, promote);
    const port = engine === "postgres" ? 5432 : 3306;
    const slots = containers.filter((c) => /-app-(blue|green)$/.test(String(c.inputs["name"])));

    it("the slots write to the promoted replica at its link address and get no replica datasource", () => {
      assert.equal(slots.length, 2);
      for (const slot of slots) {
        const envs = slot.inputs["envs"] as string[];
        assert.ok(envs.includes(`SPRING_DATASOURCE_URL=jdbc:${engine === "postgres" ? "postgresql" : "mariadb"}://10.99.0.2:${port}/bbaegok?socketTimeout=${engine === "postgres" ? 30 : 30000}`), envs.join(" "));
        assert.ok(!envs.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_")), envs.join(" "));
      }
    });

    it("its server's copy of replica.sh checks it takes writes, once its container runs, before the slots; nothing sets it up, seeds it or waits for it again", () => {
      // A command's connection is masked in the plan: the path of the script it runs, under the replica's server's
      // data directory, is that server's (ReadReplica's runScript takes both from the server it runs on).
      const runs = commands.filter((r) => REPLICA_SCRIPT_RUN.test(String(r.inputs["create"])));
      assert.deepEqual(runs.map((r) => [r.name, r.inputs["create"]]), [["database-replica-1-writable", `sudo -n /usr/local/sbin/bbaegok-install run '/data/bbaegok/${stack}/replica/replica.sh' 'writable'`]]);
      assert.equal(plan.resources.find((r) => r.name === "database-replica-1-elsewhere-script")?.inputs["path"], `/data/bbaegok/${stack}/replica/replica.sh`);
      assert.deepEqual(commands.map((c) => c.name).filter((n) => /^database-replica-1-(setup|seed|wait)$/.test(n)), []);
      assert.ok(runs[0]!.options.dependsOn.includes("database-replica-1-container"), runs[0]!.options.dependsOn.join(" "));
      for (const slot of slots) assert.ok(slot.options.dependsOn.includes("database-replica-1-writable"), `${slot.name}: ${slot.options.dependsOn.join(" ")}`);
    });

    it("it runs on its own server (that server's Docker provider), its volume protected and retained; the original stays stopped (restart no, neither started nor run)", () => {
      const own = providers.find((p) => p.inputs["host"] === "ssh://deploy@replica.bbaegok.kr:2222");
      assert.ok(own && replica, "no provider or no container for the replica's server");
      assert.equal(replica.options.provider, own.name);
      const volume = plan.resources.find((r) => r.type === "docker:index/volume:Volume" && r.inputs["name"] === `bbaegok-${stack}-db-replica-data`);
      assert.deepEqual([volume?.options.provider, volume?.options.protect, volume?.options.retainOnDelete], [own.name, true, true]);
      const pick = (inputs: Record<string, unknown>) => ["restart", "mustRun", "start"].map((k) => inputs[k]);
      assert.deepEqual(pick(primary!.inputs), ["no", false, false]);
      assert.deepEqual(pick(replica.inputs), ["unless-stopped", undefined, undefined]);
      if (engine === "mariadb") assert.match(String(plan.resources.find((r) => r.name === "database-replica-1-elsewhere-role-file")?.inputs["content"]), /^read_only = OFF$/m);
    });

    it("no container but the proxy publishes a port on any address but a link address: each database its own port, on its own link address; no guardrail broken", () => {
      const publishing = containers.filter((c) => (c.inputs["ports"] as unknown[] | undefined)?.length || c.inputs["networkMode"] === "host");
      assert.deepEqual(publishing.map((c) => c.inputs["name"]).sort(), [`bbaegok-${stack}-db`, `bbaegok-${stack}-db-replica`, "bbaegok-proxy"].sort());
      assert.deepEqual(primary!.inputs["ports"], [{ internal: port, external: port, ip: "10.99.0.1", protocol: "tcp" }]);
      assert.deepEqual(replica!.inputs["ports"], [{ internal: port, external: port, ip: "10.99.0.2", protocol: "tcp" }]);
      assert.deepEqual(violations(plan.resources), []);
    });

    it("the backup job dumps it over the link, by a one-off client of its image with this server's password files, and checks no replica", () => {
      const text = String(plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/${stack}/backup/backup.sh`)?.inputs["content"]);
      const image = `${engine}:${engine === "postgres" ? "16.10" : "11.4.4"}`.replace(/\./g, "\\.");
      assert.match(text, new RegExp(`^readonly REPLICAS=\\(\\n  'bbaegok bbaegok-${stack}-db-replica 0 promoted 10\\.99\\.0\\.2 ${port} ${image}'\\n\\)$`, "m"));
      assert.match(text, new RegExp(`^readonly LINK_CLIENT_SECRETS='/srv/bbaegok/${stack}/secrets/db' LINK_CLIENT_USER=999:999$`, "m"));
    });
  });
}
