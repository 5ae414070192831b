// The read replica on the real Docker host: prod with a MariaDB replica and
// staging with a PostgreSQL one (the committed files with
// `database.replicas: [{}]`, staging's engine PostgreSQL), brought up by the
// real engine over ssh:// to the test host (test/support/docker-host.ts), the
// images built offline (test/docker/images/CONTRACTS.md). Shown on the running
// containers: the replica on the data network publishing no port, rows
// replicated, the app's writes refused there, the slots' read-only datasource,
// `npm run status`, Metabase's data source, the installed backup script
// dumping the replica; then `npm run promote` with the real `pulumi up` under
// HTTPS load, and what reads and writes the promoted container afterwards.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { buildTestImages } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { asAdmin, asAppUser, inSlot, inspect, newestManifest, otherSlotOf, promoteUnderLoad, readOnlyRefusal, reseedInPlace, RESEED_HUNG_UP, RESEED_IN_PLACE, runInstalledBackup, servingSlot, writeAndSeeReplicated } from "../support/docker-replica.js";
import { addCloudflareClientAddress, opsAsync, pointStackAtHost, pulumi, setStackValue, stagingOnPostgres } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { waitFor } from "../support/system.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { REPLICA_ROLE_MOUNT, replicaNames } from "../../infra/replica/render.js";
import { asRootCommand, stackNames } from "../../infra/server/render.js";

let host: DockerHost;
let ws: ReturnType<typeof engineWorkspace>;
let s3: MotoServer;
let removeClientAddress: (() => void) | undefined;

const STACKS = [
  { stack: "prod", engine: "mariadb", api: "api.bbaegok.kr", jdbc: "jdbc:mariadb", port: 3306, positionType: "gtid" },
  { stack: "staging", engine: "postgres", api: "staging-api.bbaegok.kr", jdbc: "jdbc:postgresql", port: 5432, positionType: "lsn" },
] as const;

before(async () => {
  removeClientAddress = addCloudflareClientAddress();
  host = await startDockerHost();
  await buildTestImages({ env: host.dockerEnv });
  ws = engineWorkspace("server", host.operatorEnv);
  s3 = await startMoto(STACKS.map(({ stack }) => ({ name: `bbaegok-${stack}-db-backups`, versioned: true })));
  for (const { stack } of STACKS) {
    pointStackAtHost(ws.projectDir, stack, host);
    setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], [{}]);
    const init = pulumi(ws, ["stack", "init", stack]);
    assert.equal(init.status, 0, outputOf(init));
  }
  stagingOnPostgres(ws.projectDir);
});

after(async () => {
  ws?.remove();
  await s3?.stop();
  await host?.stop();
  removeClientAddress?.();
});

function up(stack: string): string {
  const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
  assert.equal(result.status, 0, outputOf(result));
  return outputOf(result);
}

/** The installed backup, run as cron runs it; it must succeed. */
function runBackup(stack: string): void {
  const run = runInstalledBackup(host, s3, stack);
  assert.equal(run.status, 0, run.stdout + run.stderr);
}

for (const { stack, engine, api, jdbc, port, positionType } of STACKS) {
  const primary = `bbaegok-${stack}-db`;
  const replica = `bbaegok-${stack}-db-replica`;
  const slots = [`bbaegok-${stack}-app-blue`, `bbaegok-${stack}-app-green`];

  describe(`${stack} with a ${engine} replica on the real Docker host`, () => {
    const aggregate = engine === "postgres" ? "string_agg(memo, ',' ORDER BY id)" : "group_concat(memo ORDER BY id)";
    // The last line: MariaDB's client prints the column's name first.
    const lastLine = (text: string) => text.trim().split("\n").pop();
    // MariaDB's administrator has no database selected; PostgreSQL's is connected to it.
    const failbackRows = (container: string) => lastLine(asAdmin(engine, container, `SELECT ${aggregate} FROM ${engine === "postgres" ? "failback_rows" : "bbaegok.failback_rows"};`).stdout);

    it(`pulumi up of ${stack} with database.replicas: [{}] creates the replica and sets it up, warning of nothing`, () => {
      assert.doesNotMatch(up(stack), /warning/i);
      const state = inspect<{ Running: boolean; Health?: { Status: string } }>(replica, ".State");
      assert.equal(state.Running, true);
      assert.equal(state.Health?.Status, "healthy");
    });

    it("the replica is on the stack's data network only, as db-replica, and publishes no port", () => {
      const networks = inspect<Record<string, { Aliases: string[] | null }>>(replica, ".NetworkSettings.Networks");
      assert.deepEqual(Object.keys(networks), [`bbaegok-${stack}-data`]);
      assert.ok(networks[`bbaegok-${stack}-data`]!.Aliases?.includes("db-replica"), JSON.stringify(networks));
      assert.deepEqual(inspect<Record<string, unknown> | null>(replica, ".HostConfig.PortBindings") ?? {}, {});
      const publishing = docker(["ps", "--format", "{{.Names}} {{.Ports}}"]).stdout.split("\n").filter((l) => /->/.test(l));
      assert.deepEqual(publishing.map((l) => l.split(" ")[0]), ["bbaegok-proxy"]);
    });

    it("a row written through the primary appears on the replica, which refuses the app user's writes", async () => {
      await writeAndSeeReplicated(engine, primary, replica);
      assert.equal(asAppUser(engine, replica, "SELECT count(*) FROM notes;").stdout, "1\n");
    });

    it("the slots get the read-only datasource and reach the replica with the password from their file (as uid 1000)", () => {
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(env.includes(`SPRING_DATASOURCE_REPLICA_URL=${jdbc}://db-replica:${port}/bbaegok?socketTimeout=${engine === "mariadb" ? 30000 : 30}`), `${slot}: ${env.join(" ")}`);
        assert.ok(env.includes("SPRING_DATASOURCE_REPLICA_USERNAME=bbaegok"), slot);
        assert.ok(!env.some((e) => /PASSWORD=/.test(e)), `${slot} has a password in its environment`);
        assert.equal(inSlot(slot, "id -u").trim(), "1000");
        const [body, status] = inSlot(slot, "curl -s -w '\\n%{http_code}' http://127.0.0.1:8080/test/replica").split("\n").filter(Boolean);
        assert.equal(status, "200", `${slot}: ${body}`);
        assert.deepEqual(JSON.parse(body!), { status: "UP", replica: `${engine === "mariadb" ? "mysql" : "postgres"}://bbaegok@db-replica:${port}/bbaegok` });
      }
    });

    it("npm run status asks the replica's script on the server (over SSH, through the install helper): healthy", async () => {
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(\\d+ (transactions|bytes)\\)`, "m"), status.stdout);
    });

    it("the installed backup script, run as cron runs it, dumps the replica (manifest: source replica, its position) into S3", () => {
      runBackup(stack);
      const manifest = newestManifest(s3, stack);
      assert.equal(manifest.source, "replica", JSON.stringify(manifest.replication));
      assert.match(manifest.replication?.why ?? "", /healthy/);
      assert.equal(manifest.replication?.positionType, positionType);
      assert.ok(manifest.replication?.position, "no position in the manifest");
    });

    it("a power cut of the server: once Docker is back, the stack's containers run again by themselves, the replica replicates again (a row written after the cut arrives) and npm run status says healthy", async () => {
      const ofStack = () => docker(["ps", "--filter", `label=bbaegok.stack=${stack}`, "--format", "{{.Names}}"]).stdout.split("\n").filter(Boolean).sort();
      const before = ofStack();
      assert.ok(before.includes(primary) && before.includes(replica), before.join(", "));
      const started = before.map((name) => inspect<string>(name, ".State.StartedAt"));
      await host.powerCut();
      // No up, no docker start: the restart policies alone. The replica resumes from the position it had made durable.
      await waitFor(
        `every container of ${stack} that ran before the cut to run again and be healthy`,
        () => {
          const now = ofStack();
          return before.every((name) => now.includes(name) && (inspect<{ Health?: { Status: string } }>(name, ".State").Health?.Status ?? "healthy") === "healthy");
        },
        300_000,
        1000,
      );
      before.forEach((name, i) => assert.notEqual(inspect<string>(name, ".State.StartedAt"), started[i], `${name} was not started again: the cut did not stop it`));
      const write = asAppUser(engine, primary, "INSERT INTO notes VALUES (6, 'after the power cut');");
      assert.equal(write.status, 0, write.stderr);
      await waitFor("the row written after the cut on the replica", () => asAppUser(engine, replica, "SELECT body FROM notes WHERE id = 6;").stdout === "after the power cut\n", 120_000, 500);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(\\d+ (transactions|bytes)\\)`, "m"), status.stdout);
      assert.equal((await servingSlot(stack, api)).startsWith(`bbaegok-${stack}-app-`), true);
    });

    if (stack === "prod") {
      it("Metabase was set up reading the replica, with its read-only login (the stand-in connects before it accepts)", () => {
        const client = "psql -X -tA -U metabase -d metabase -c 'SELECT target FROM metabase_standin_database'";
        assert.equal(docker(["exec", "bbaegok-prod-metabase-db", "sh", "-c", client]).stdout, "mysql://metabase_ro@db-replica:3306/bbaegok\n");
      });
    }

    it(RESEED_IN_PLACE + (engine === "mariadb" ? RESEED_HUNG_UP : ""), () => reseedInPlace({ engine, stack, primary, replica, ws, hangUp: engine === "mariadb" ? "here" : undefined }));

    it("npm run promote with the real pulumi up: no failed request; the old replica takes writes (the same container, never restarted), the original refuses them, the serving slot's datasource names db-replica", async () => {
      const originalId = inspect<string>(primary, ".Id");
      const replicaRun = [inspect<string>(replica, ".Id"), inspect<string>(replica, ".State.StartedAt")];
      const result = await promoteUnderLoad(ws, stack, api);
      const file = parse(readFileSync(join(ws.projectDir, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, { primary?: string }> };
      assert.equal(file.config["bbaegok-infra:database"]?.primary, "replica");

      const serving = await servingSlot(stack, api);
      const env = inspect<string[]>(serving, ".Config.Env");
      assert.ok(env.includes(`SPRING_DATASOURCE_URL=${jdbc}://db-replica:${port}/bbaegok`), `${serving}: ${env.join(" ")}`);
      // The slot the promotion flipped to was started by its first up, before the fence (replica.sh's log line, to the second):
      // the writes fail from the fence to the flip only, never while the new slot starts.
      const fence = /^\s*(\S+Z) \S+\[info\]: \S+ fenced: it refuses the app's writes from now on$/m.exec(result.stdout)?.[1];
      assert.ok(fence, result.stdout);
      assert.ok(Date.parse(inspect<string>(serving, ".State.StartedAt")) < Date.parse(fence) + 1000, `${serving} started at ${inspect<string>(serving, ".State.StartedAt")}, after the fence at ${fence}`);
      assert.match(result.stdout, /database\.primary: promoting; pulumi up of \S+: the warm slot is started naming \S+, nothing goes live/);
      assert.equal(inSlot(serving, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/actuator/health"), "200");
      // The promotion's second up re-created the warm slot (the one that served before) naming the promoted container.
      const warm = otherSlotOf(serving);
      const warmEnv = inspect<string[]>(warm, ".Config.Env");
      assert.ok(warmEnv.includes(`SPRING_DATASOURCE_URL=${jdbc}://db-replica:${port}/bbaegok`), `the warm slot still names the original: ${warm}: ${warmEnv.join(" ")}`);
      assert.equal(inspect<{ Health?: { Status: string } }>(warm, ".State").Health?.Status, "healthy");
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.match(status.stdout, new RegExp(`^    \\S+  \\S+( from \\S+)?  rewarm of \\S+ to ${warm.replace(/^.*-/, "")}: succeeded$`, "m"), status.stdout);

      const write = asAppUser(engine, replica, "INSERT INTO notes VALUES (3, 'after the promotion');");
      assert.equal(write.status, 0, write.stderr);
      // Writable by promote's own change to the running server: no up re-created or restarted it (MariaDB's role is a file the flip's up rewrote).
      assert.deepEqual([inspect<string>(replica, ".Id"), inspect<string>(replica, ".State.StartedAt")], replicaRun, "the promoted container was re-created or restarted by the promotion");
      const fenced = asAppUser(engine, primary, "INSERT INTO notes VALUES (4, 'on the original');");
      assert.notEqual(fenced.status, 0, "the original took a write after the promotion");
      assert.match(fenced.stderr, readOnlyRefusal(engine));

      // The original is kept (its data is the way back), updated in place: Docker will not start it again by itself.
      assert.equal(inspect<string>(primary, ".Id"), originalId, "the original was recreated by the promotion's up");
      assert.equal(inspect<string>(primary, ".HostConfig.RestartPolicy.Name"), "no");
      assert.equal(inspect<string>(replica, ".HostConfig.RestartPolicy.Name"), "unless-stopped");
    });

    it("after the promotion, the backup dumps the promoted container, its writes included, without asking for replication", () => {
      runBackup(stack);
      const manifest = newestManifest(s3, stack);
      assert.equal(manifest.source, undefined);
      assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, 3, JSON.stringify(manifest.tables));
    });

    it("after the promotion a second up changes nothing", () => {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });

    it("a power cut while the fenced original still runs: after the boot Docker starts the promoted container and both slots (healthy on it), never the original (restart policy no); status is healthy and says the original does not answer", async () => {
      assert.equal(inspect<boolean>(primary, ".State.Running"), true, "the original runs, fenced, after the promotion");
      const serving = await servingSlot(stack, api);
      const started = inspect<string>(replica, ".State.StartedAt");
      await host.powerCut();
      // Both slots name the promoted container (the promotion's rewarm): both run again on it.
      const slots = [serving, otherSlotOf(serving)];
      await waitFor(`${replica} and both slots to run again and be healthy`, () => [replica, ...slots].every((name) => inspect<{ Health?: { Status: string } }>(name, ".State").Health?.Status === "healthy"), 300_000, 1000);
      assert.equal(await servingSlot(stack, api), serving);
      assert.notEqual(inspect<string>(replica, ".State.StartedAt"), started, "the cut did not stop the promoted container");
      // Started again, it is writable by its role file (MariaDB), as the promotion's up rewrote it.
      if (engine !== "postgres") assert.match(docker(["exec", replica, "cat", REPLICA_ROLE_MOUNT]).stdout, /^read_only = OFF$/m);
      assert.equal(inspect<boolean>(primary, ".State.Running"), false, "Docker started the original after the cut: it would take writes");
      assert.equal(asAppUser(engine, replica, "INSERT INTO notes VALUES (8, 'after the cut, promoted');").status, 0);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  promoted, the primary: takes writes; the original does not answer`, "m"), status.stdout);
      // Back as before the cut for the next test (a crash of a running original): started by hand, as the README says never to do.
      docker(["start", primary]);
      await waitFor(`${primary} healthy`, () => inspect<{ Health?: { Status: string } }>(primary, ".State").Health?.Status === "healthy", 120_000, 1000);
    });

    it("the original, once its server exits (a crash, a reboot), stays down: Docker does not restart it, status is healthy and says it does not answer, a preview with a refresh plans nothing (no up starts it) and npm run drift finds none", async () => {
      // From inside, as a crash or a shutdown would: `docker stop` would mark it stopped on purpose, which no policy restarts.
      const exit = docker(["exec", primary, "sh", "-c", `kill -${engine === "postgres" ? "INT" : "TERM"} 1`]);
      assert.equal(exit.status, 0, exit.stderr);
      await waitFor(`${primary} to stop`, () => !inspect<boolean>(primary, ".State.Running"), 120_000, 500);
      // Docker restarts an exited container with a restart policy within a second (its first back-off is 100 ms).
      await new Promise((r) => setTimeout(r, 5_000));
      assert.deepEqual([inspect<boolean>(primary, ".State.Running"), inspect<number>(primary, ".RestartCount")], [false, 0]);

      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  promoted, the primary: takes writes; the original does not answer`, "m"), status.stdout);

      // Read from Docker (stopped), the original is what the code says (mustRun false): nothing to start.
      const refreshed = pulumi(ws, ["preview", "--refresh", "--stack", stack, "--expect-no-changes"]);
      assert.equal(refreshed.status, 0, outputOf(refreshed));
      const drift = await opsAsync(ws, "drift.ts", ["--stack", stack]);
      assert.equal(drift.status, 0, drift.stdout + drift.stderr);
      assert.equal(inspect<boolean>(primary, ".State.Running"), false);
    });

    it("a later change of the database's flags (memoryMb) replaces the promoted container, announced as planned downtime naming it, and leaves the stopped original as it is", () => {
      const [originalId, promotedId] = [inspect<string>(primary, ".Id"), inspect<string>(replica, ".Id")];
      setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "memoryMb"], 1536);
      const preview = pulumi(ws, ["preview", "--stack", stack, "--diff"]);
      assert.equal(preview.status, 0, outputOf(preview));
      // With --diff (as the pull requests' previews run), the engine writes its diagnostics to stderr.
      const shown = preview.stdout + preview.stderr;
      assert.match(shown, new RegExp(`PLANNED DOWNTIME: the database container ${replica} will be replaced \\(server flags\\)`), shown);
      assert.doesNotMatch(shown, new RegExp(`the database container ${primary} will`));
      up(stack);
      assert.deepEqual([inspect<string>(primary, ".Id"), inspect<boolean>(primary, ".State.Running")], [originalId, false]);
      assert.notEqual(inspect<string>(replica, ".Id"), promotedId);
      assert.match(inspect<string[]>(replica, ".Args").join(" "), engine === "postgres" ? /shared_buffers=384MB/ : /--innodb-buffer-pool-size=768M/);
      const write = asAppUser(engine, replica, "INSERT INTO notes VALUES (5, 'after the new flags');");
      assert.equal(write.status, 0, write.stderr);
      const again = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(again.status, 0, outputOf(again));
    });

    it("the original removed by hand: an up with a refresh creates it again, stopped (start false), with no restart policy", () => {
      assert.equal(docker(["rm", primary]).status, 0);
      const refreshed = pulumi(ws, ["up", "--refresh", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(refreshed.status, 0, outputOf(refreshed));
      assert.deepEqual([inspect<string>(primary, ".State.Status"), inspect<string>(primary, ".HostConfig.RestartPolicy.Name")], ["created", "no"]);
      const again = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(again.status, 0, outputOf(again));
    });

    it("failback.sh, placed by the promotion's up: follow starts the stopped original, dumps its own data and seeds it as a replica of the promoted container, which keeps the app's writes", async () => {
      const stackDir = stackNames("bbaegok", stack, host.dataDir).stackDir;
      const names = replicaNames(stackNames("bbaegok", stack, host.dataDir).prefix);
      const failback = (command: string) => host.ssh(asRootCommand("run", names.failbackScript(stackDir), command), undefined, { timeoutMs: 600_000 });
      const created = asAppUser(engine, replica, "CREATE TABLE failback_rows (id INT PRIMARY KEY, memo VARCHAR(40)); INSERT INTO failback_rows VALUES (1, '승격 후');");
      assert.equal(created.status, 0, created.stderr);
      assert.equal(inspect<string>(primary, ".State.Status"), "created");

      const follow = failback("follow");
      assert.equal(follow.status, 0, follow.stdout + follow.stderr);
      assert.match(follow.stdout + follow.stderr, new RegExp(`starting ${primary} \\(stopped since the promotion\\)[\\s\\S]*${primary} follows ${replica}, caught up`));
      assert.match(host.asRoot(`ls ${names.failbackDir(stackDir)}`).stdout, new RegExp(`^${primary}-\\d{8}T\\d{6}Z\\.sql\\.zst$`, "m"), "the original's own data was dumped first");
      assert.equal(failbackRows(primary), "승격 후");
      assert.equal(lastLine(asAdmin(engine, primary, engine === "postgres" ? "SELECT pg_is_in_recovery();" : "SELECT @@read_only;").stdout), engine === "postgres" ? "t" : "1");
      assert.equal(asAppUser(engine, replica, "INSERT INTO failback_rows VALUES (2, '되돌리기 전');").status, 0);
      await waitFor("the promoted container's write on the original", () => failbackRows(primary) === "승격 후,되돌리기 전", 60_000, 500);
      if (engine === "postgres") {
        // A power cut in a follow's base backup, as its folder is left: no PG_VERSION, the image would not start it again.
        assert.equal(docker(["stop", primary]).status, 0);
        const image = inspect<string>(primary, ".Config.Image");
        assert.equal(docker(["run", "--rm", "--user", "999:999", "--volumes-from", primary, "--entrypoint", "rm", image, "-f", "/var/lib/postgresql/data/PG_VERSION"]).status, 0);
        const again = failback("follow");
        assert.equal(again.status, 0, again.stdout + again.stderr);
        assert.match(again.stdout + again.stderr, new RegExp(`${primary} does not answer and its seeding began before: seeded again[\\s\\S]*${primary} follows ${replica}, caught up`));
        assert.equal(failbackRows(primary), "승격 후,되돌리기 전");
      }
    });

    it("npm run failback with the real pulumi up: no failed request; the original (the same container, its restart policy back) takes the app's writes, the serving slot writes to db and reads db-replica, seeded again as its replica", async () => {
      const originalId = inspect<string>(primary, ".Id");
      const result = await promoteUnderLoad(ws, stack, api, "failback");
      const file = parse(readFileSync(join(ws.projectDir, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, { primary?: string }> };
      assert.equal(file.config["bbaegok-infra:database"]?.primary, "original");
      // It followed already (the test above): follow only waited, then the staged up, the return, the flip, the rewarm, the reseed.
      assert.match(result.stdout, new RegExp(`${primary} already follows ${replica}: waiting until it is caught up`));
      assert.match(result.stdout, /database\.primary: returning; pulumi up of \S+: the warm slot is started naming \S+, nothing goes live/);
      assert.match(result.stdout, new RegExp(`${primary} is the primary again and ${replica} its read replica`));

      const serving = await servingSlot(stack, api);
      // The slot the way back flipped to was started by its staged up, before the return's fence.
      const fence = new RegExp(`^\\s*(\\S+Z) \\S+\\[info\\]: ${replica} fenced: it refuses the app's writes from now on$`, "m").exec(result.stdout)?.[1];
      assert.ok(fence, result.stdout);
      assert.ok(Date.parse(inspect<string>(serving, ".State.StartedAt")) < Date.parse(fence) + 1000, `${serving} started after the fence at ${fence}`);
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(env.includes(`SPRING_DATASOURCE_URL=${jdbc}://db:${port}/bbaegok`), `${slot}: ${env.join(" ")}`);
        assert.ok(env.some((e) => e.startsWith(`SPRING_DATASOURCE_REPLICA_URL=${jdbc}://db-replica:${port}/bbaegok`)), `${slot}: ${env.join(" ")}`);
        assert.equal(inspect<{ Health?: { Status: string } }>(slot, ".State").Health?.Status, "healthy", slot);
      }
      // The original is the container that ran before, updated in place: Docker restarts it again.
      assert.equal(inspect<string>(primary, ".Id"), originalId, "the original was re-created by the way back");
      assert.equal(inspect<string>(primary, ".HostConfig.RestartPolicy.Name"), "unless-stopped");

      const written = asAppUser(engine, primary, "INSERT INTO failback_rows VALUES (3, '되돌린 후');");
      assert.equal(written.status, 0, written.stderr);
      await waitFor("the original's write on the reseeded replica", () => failbackRows(replica) === "승격 후,되돌리기 전,되돌린 후", 60_000, 500);
      const refused = asAppUser(engine, replica, "INSERT INTO failback_rows VALUES (4, 'on the replica');");
      assert.notEqual(refused.status, 0, "the reseeded replica took a write");
      assert.match(refused.stderr, readOnlyRefusal(engine));
      const [body, status] = inSlot(serving, "curl -s -w '\\n%{http_code}' http://127.0.0.1:8080/test/replica").split("\n").filter(Boolean);
      assert.equal(status, "200", `${serving}: ${body}`);
      const state = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.match(state.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind`, "m"), state.stdout);
    });

    it("after the way back a second up changes nothing", () => {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });
  });
}
