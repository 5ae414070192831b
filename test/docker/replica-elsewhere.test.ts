// A read replica on another server, brought up by the real engine on the
// real Docker host: prod (MariaDB) and staging (PostgreSQL) with
// `database.replicas: [{ server, link }]`, the link an existing tailnet. What runs for real: both Docker providers
// (the stack's server's and the other server's, each over its own ssh://),
// the files and commands sent to each server through its install helper, the
// tailnet ends' sysctl, the primary's and the replica's containers as the
// program defines them (the primary's port published on its tailnet address,
// the replica's on its own), the replica seeded over the link by the rendered
// setup and replicating (GTID; streaming), the slots reading it at its tailnet
// address, Metabase's data source there, `npm run status` and the installed
// backup reading its state from the stack's server, a second run changing
// nothing.
//
// Stood in: the "other server" is the same test host under another name
// (`127.0.0.2` beside the stack's `127.0.0.1`: the same sshd and dockerd,
// its own data folder), and the tailnet is two 100.64.0.0/10 addresses on this
// machine's loopback, so traffic between the "servers" never leaves the
// machine. The WireGuard link type is not run here (its two ends would be one
// interface on one machine): test/real/replica-link*.test.ts run it between
// two network namespaces.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { linkPaths } from "../../infra/link/render.js";
import { buildTestImages } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { asAdmin, asAppUser, inSlot, inspect, newestManifest, promoteUnderLoad, readOnlyRefusal, reseedInPlace, RESEED_HUNG_UP, RESEED_IN_PLACE, runInstalledBackup, servingSlot, writeAndSeeReplicated, type Engine } from "../support/docker-replica.js";
import { addCloudflareClientAddress, opsAsync, pointStackAtHost, pulumi, setStackValue, stagingOnPostgres } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { waitFor } from "../support/system.js";

/** Each stack's engine and what the test asks of it; both stacks on one host, one workspace. */
const STACKS = [
  { stack: "prod", engine: "mariadb", api: "api.bbaegok.kr", port: 3306, scheme: "mysql", unit: "transactions", maxLagSeconds: 30 },
  // The standby's state is read from the primary's pg_stat_replication: a paused replay shows as a lag past this bound.
  { stack: "staging", engine: "postgres", api: "staging-api.bbaegok.kr", port: 5432, scheme: "postgres", unit: "bytes", maxLagSeconds: 5 },
] as const;
const TAILNET = { primary: "100.64.0.1", replica: "100.64.0.2" } as const;
/** The other server's address: the same sshd as the stack's 127.0.0.1, listening there too. */
const OTHER_HOST = "127.0.0.2";

let host: DockerHost;
let ws: ReturnType<typeof engineWorkspace>;
let s3: MotoServer;
/** The other server's data folder (server.dataDir of the replica's server). */
let otherDataDir: string;
const undo: (() => void)[] = [];

/**
 * An address on this machine's loopback for the test's life (a tailnet's address on "both servers"). One
 * already there is a killed run's, whose cleanup never ran (no other test uses these): taken over.
 */
function addLoopbackAddress(address: string): void {
  const add = spawnSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { encoding: "utf8" });
  if (add.status !== 0 && !/File exists|already assigned/.test(add.stderr)) throw new Error(`ip addr add ${address}/32 dev lo failed: ${add.stderr}`);
  undo.push(() => void spawnSync("ip", ["addr", "del", `${address}/32`, "dev", "lo"]));
}

before(async () => {
  undo.push(addCloudflareClientAddress());
  for (const address of Object.values(TAILNET)) addLoopbackAddress(address);
  // The program's tailnet ends set net.ipv4.ip_nonlocal_bind through a file under /etc/sysctl.d: on this machine,
  // both ends. Put back as found.
  const nonlocal = readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8").trim();
  undo.push(() => void spawnSync("sysctl", ["-q", "-w", `net.ipv4.ip_nonlocal_bind=${nonlocal}`]));
  host = await startDockerHost({ alsoListenOn: [OTHER_HOST] });
  otherDataDir = `${host.dataDir}/other-server`;
  await buildTestImages({ env: host.dockerEnv });
  ws = engineWorkspace("server", host.operatorEnv);
  s3 = await startMoto(STACKS.map(({ stack }) => ({ name: `bbaegok-${stack}-db-backups`, versioned: true })));
  for (const { stack, maxLagSeconds } of STACKS) {
    pointStackAtHost(ws.projectDir, stack, host);
    setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], [
      {
        maxLagSeconds,
        server: { host: OTHER_HOST, ssh: { user: host.user, port: host.sshPort, hostKey: host.hostKey }, dataDir: otherDataDir },
        link: { type: "tailnet", primaryAddress: TAILNET.primary, replicaAddress: TAILNET.replica },
      },
    ]);
    const init = pulumi(ws, ["stack", "init", stack]);
    assert.equal(init.status, 0, outputOf(init));
  }
  stagingOnPostgres(ws.projectDir);
});

after(async () => {
  ws?.remove();
  await s3?.stop();
  await host?.stop();
  // The sysctl files the tailnet ends wrote into this machine's /etc (one per stack: both "servers" name it the same).
  for (const { stack } of STACKS) {
    const sysctlFile = linkPaths("/nonexistent", `bbaegok-${stack}`).sysctl;
    if (existsSync(sysctlFile)) rmSync(sysctlFile);
  }
  for (const step of undo.reverse()) step();
});

/** `docker ps`'s published ports of a container: "<address>:<port>->…" entries. */
function published(container: string): string[] {
  const bindings = inspect<Record<string, { HostIp: string; HostPort: string }[] | null> | null>(container, ".HostConfig.PortBindings") ?? {};
  return Object.entries(bindings).flatMap(([port, list]) => (list ?? []).map((b) => `${b.HostIp}:${b.HostPort}->${port}`));
}

/** Refuses new and open TCP connections to this machine's sshd on `address` (this machine's firewall), until the returned function runs. */
function refuseSsh(address: string, port: number): () => void {
  const rule = ["INPUT", "-d", address, "-p", "tcp", "--dport", String(port), "-j", "REJECT", "--reject-with", "tcp-reset"];
  const add = spawnSync("iptables", ["-I", ...rule], { encoding: "utf8" });
  if (add.status !== 0) throw new Error(`iptables -I ${rule.join(" ")} failed: ${add.stderr}`);
  return () => void spawnSync("iptables", ["-D", ...rule]);
}

/** An app slot's answer status for a path, asked inside it. */
function slotStatus(slot: string, path: string): string {
  return inSlot(slot, `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080${path}`);
}

for (const { stack, engine, api, port, scheme, unit, maxLagSeconds } of STACKS) {
  const primary = `bbaegok-${stack}-db`;
  const replica = `bbaegok-${stack}-db-replica`;
  const slots = [`bbaegok-${stack}-app-blue`, `bbaegok-${stack}-app-green`];

  describe(`${stack} with a ${engine} replica on another server (a tailnet between them) on the real Docker host`, () => {
    it("pulumi up creates the replica on the other server, seeds it over the link and leaves it replicating, warning of nothing", () => {
      const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(result.status, 0, outputOf(result));
      assert.doesNotMatch(outputOf(result), /warning/i);
      const state = inspect<{ Running: boolean; Health?: { Status: string } }>(replica, ".State");
      assert.equal(state.Running, true);
      assert.equal(state.Health?.Status, "healthy");
    });

    it("each database publishes its port on its own tailnet address only; the replica is not on the data network", () => {
      assert.deepEqual(published(primary), [`${TAILNET.primary}:${port}->${port}/tcp`]);
      assert.deepEqual(published(replica), [`${TAILNET.replica}:${port}->${port}/tcp`]);
      const networks = Object.keys(inspect<Record<string, unknown>>(replica, ".NetworkSettings.Networks"));
      assert.ok(!networks.includes(`bbaegok-${stack}-data`), networks.join(" "));
      const publishing = docker(["ps", "--format", "{{.Names}}\t{{.Ports}}"]).stdout.split("\n").filter((l) => /->/.test(l)).map((l) => l.split("\t")[0]!);
      assert.deepEqual(publishing.filter((name) => name.startsWith(`bbaegok-${stack}-`)).sort(), [primary, replica]);
      assert.ok(publishing.every((name) => name === "bbaegok-proxy" || /^bbaegok-(prod|staging)-db(-replica)?$/.test(name)), publishing.join(" "));
    });

    it("each server got its own files under its own data folder: the primary's copy of replica.sh here, the replica's side and copy (npm run reseed's steps there) there", () => {
      const cat = (path: string) => {
        const r = host.asRoot(`cat '${path}'`);
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      const mine = cat(`${host.dataDir}/${stack}/replica/replica.sh`);
      assert.match(mine, /^readonly THIS_SERVER=primary$/m);
      assert.ok(mine.includes(`readonly PRIMARY_HOST='${TAILNET.primary}' PRIMARY_PORT=${port}\n`), mine.slice(0, 800));
      // The replica's server has its own copy: MariaDB's seeds it over the link; either runs npm run reseed's steps there.
      const theirs = cat(`${otherDataDir}/${stack}/replica/replica.sh`);
      assert.match(theirs, /^readonly THIS_SERVER=replica$/m);
      assert.ok(theirs.includes(`readonly PRIMARY_HOST='${TAILNET.primary}' PRIMARY_PORT=${port}\n`), theirs.slice(0, 800));
      // The standby's entrypoint takes its base backup from the primary's tailnet address.
      if (engine === "postgres") assert.ok(cat(`${otherDataDir}/${stack}/replica-init/entrypoint.sh`).includes(TAILNET.primary));
    });

    it("the replica replicates from the primary's tailnet address; a row written on the primary appears; the app's write is refused there", async () => {
      if (engine === "mariadb") {
        const slave = asAdmin(engine, replica, "SHOW SLAVE STATUS\\G").stdout;
        assert.match(slave, new RegExp(`Master_Host: ${TAILNET.primary.replace(/\./g, "\\.")}$`, "m"));
        assert.match(slave, /Using_Gtid: Slave_Pos$/m);
      } else {
        assert.equal(asAdmin(engine, replica, "SELECT status, sender_host FROM pg_stat_wal_receiver;").stdout, `streaming ${TAILNET.primary}\n`);
      }
      await writeAndSeeReplicated(engine, primary, replica);
    });

    it("the slots read the replica at its tailnet address, with the password from their file", () => {
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(env.includes(`SPRING_DATASOURCE_REPLICA_URL=jdbc:${engine === "mariadb" ? "mariadb" : "postgresql"}://${TAILNET.replica}:${port}/bbaegok?socketTimeout=${engine === "mariadb" ? 30000 : 30}`), `${slot}: ${env.join(" ")}`);
        assert.ok(!env.some((e) => /PASSWORD=/.test(e)), `${slot} has a password in its environment`);
        const [body, status] = inSlot(slot, "curl -s -w '\\n%{http_code}' http://127.0.0.1:8080/test/replica").split("\n").filter(Boolean);
        assert.equal(status, "200", `${slot}: ${body}`);
        assert.deepEqual(JSON.parse(body!), { status: "UP", replica: `${scheme}://bbaegok@${TAILNET.replica}:${port}/bbaegok` });
      }
    });

    if (stack === "prod") {
      it("Metabase was set up reading the replica at its tailnet address", () => {
        const client = "psql -X -tA -U metabase -d metabase -c 'SELECT target FROM metabase_standin_database'";
        assert.equal(docker(["exec", "bbaegok-prod-metabase-db", "sh", "-c", client]).stdout, `mysql://metabase_ro@${TAILNET.replica}:3306/bbaegok\n`);
      });
    }

    it(`npm run status reads the replica from the stack's server, over the link: healthy, 0 ${unit} behind`, async () => {
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(0 ${unit}\\)`, "m"), status.stdout);
    });

    it("the installed backup checks the replica and dumps it over the link as the backup login, saying why", () => {
      // What shows the dump read the replica: MariaDB, a row on the replica alone (its administrator, outside the binary log);
      // PostgreSQL (a standby takes no writes), the table's scans counted on the standby and not on the primary.
      const scans = (container: string) => asAdmin(engine, container, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'notes';").stdout.trim();
      const before = engine === "postgres" ? { primary: scans(primary), replica: scans(replica) } : undefined;
      if (engine === "mariadb") assert.equal(asAdmin(engine, replica, "SET SESSION sql_log_bin = 0; INSERT INTO bbaegok.notes VALUES (1000, 'on the replica only');").status, 0);
      let run: ReturnType<typeof runInstalledBackup>;
      try {
        run = runInstalledBackup(host, s3, stack);
      } finally {
        if (engine === "mariadb") asAdmin(engine, replica, "SET SESSION sql_log_bin = 0; DELETE FROM bbaegok.notes WHERE id = 1000;");
      }
      assert.equal(run.status, 0, run.stdout + run.stderr);
      const manifest = newestManifest(s3, stack);
      assert.equal(manifest.source, "replica");
      assert.match(manifest.replication?.why ?? "", new RegExp(`another server is healthy and \\d+ s behind \\(bound ${maxLagSeconds} s\\); dumped over the link at ${TAILNET.replica.replace(/\./g, "\\.")}:${port}$`));
      assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, engine === "mariadb" ? 2 : 1, JSON.stringify(manifest.tables));
      if (before) {
        assert.equal(scans(primary), before.primary, "the backup read the primary's table");
        assert.ok(Number(scans(replica)) > Number(before.replica), `the standby's scans of notes: ${before.replica} → ${scans(replica)}`);
      }
    });

    const stopped = engine === "mariadb" ? /the replica's SQL thread is stopped/ : new RegExp(`more than the bound of ${maxLagSeconds} s`);
    it(`with the replica's ${engine === "mariadb" ? "SQL thread stopped" : "replay paused"} and a write on the primary: status says so, the backup dumps the primary and exits 1`, async () => {
      asAdmin(engine, replica, engine === "mariadb" ? "STOP SLAVE SQL_THREAD;" : "SELECT pg_wal_replay_pause();");
      try {
        assert.equal(asAppUser(engine, primary, "INSERT INTO notes VALUES (5, 'while stopped');").status, 0);
        // The primary's measure of a paused standby's lag grows with the standby's replies (every 10 s by default): past the bound after a while.
        let status = { status: 0, stdout: "", stderr: "" };
        await waitFor("status to say so", async () => stopped.test((status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack])).stdout), 60_000, 1000).catch((err: Error) => {
          throw new Error(`${err.message}: ${status.stdout}`);
        });
        const run = runInstalledBackup(host, s3, stack);
        assert.equal(run.status, 1, run.stdout + run.stderr);
        assert.match(run.stdout + run.stderr, stopped);
        const manifest = newestManifest(s3, stack);
        assert.equal(manifest.source, "primary");
        assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, 2, JSON.stringify(manifest.tables));
      } finally {
        asAdmin(engine, replica, engine === "mariadb" ? "START SLAVE SQL_THREAD;" : "SELECT pg_wal_replay_resume();");
      }
      await waitFor("the replica caught up", () => asAppUser(engine, replica, "SELECT count(*) FROM notes;").stdout === "2\n", 60_000, 500);
    });

    it("with the replica's server down (its database stopped, its SSH refused): the slots stay healthy, a release still rolls out by pulumi up, status says the replica is not there", async () => {
      docker(["stop", replica]);
      const allowSsh = refuseSsh(OTHER_HOST, host.sshPort);
      try {
        // Reads fail; the health (Spring's, the replica ignored: MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES) follows the primary.
        for (const slot of slots) assert.deepEqual([slotStatus(slot, "/actuator/health"), slotStatus(slot, "/test/replica")], ["200", "503"], slot);
        const note = "during the replica's outage";
        setStackValue(ws.projectDir, stack, ["bbaegok-infra:app", "env", "RELEASE_NOTE"], note);
        const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
        assert.equal(result.status, 0, outputOf(result));
        const serving = await servingSlot(stack, api);
        assert.ok(inspect<string[]>(serving, ".Config.Env").includes(`RELEASE_NOTE=${note}`), serving);
        for (const slot of slots) assert.equal(inspect<{ Health?: { Status: string } }>(slot, ".State").Health?.Status, "healthy", slot);
        const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
        assert.match(status.stdout, new RegExp(`^  replica  ${replica}  UNHEALTHY.*(does not answer|is not streaming)`, "m"), status.stdout);
      } finally {
        allowSsh();
        docker(["start", replica]);
      }
      await waitFor("the replica back and caught up", () => asAppUser(engine, replica, "SELECT count(*) FROM notes;").stdout === "2\n", 120_000, 1000);
    });

    it(RESEED_IN_PLACE + (engine === "mariadb" ? RESEED_HUNG_UP : ""), () => reseedInPlace({ engine, stack, primary, replica, ws, hangUp: engine === "mariadb" ? "elsewhere" : undefined }));

    it("a second run changes nothing", () => {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });

    it("a power cut of both servers, the tailnet's addresses back only after Docker has started everything (tailscaled may come up after Docker at boot): every container runs again, the replica catches up over the link, status says healthy", async () => {
      const containers = [primary, replica, ...slots];
      const started = containers.map((name) => inspect<string>(name, ".State.StartedAt"));
      const addresses = Object.values(TAILNET);
      await host.powerCut({ beforeBoot: () => addresses.forEach((address) => spawnSync("ip", ["addr", "del", `${address}/32`, "dev", "lo"])) });
      try {
        // Each database's port is published on its tailnet address, absent now: Docker starts it all the same (the program's ip_nonlocal_bind).
        await waitFor("every container to run again", () => containers.every((name) => inspect<boolean>(name, ".State.Running")), 120_000, 1000);
        containers.forEach((name, i) => assert.notEqual(inspect<string>(name, ".State.StartedAt"), started[i], `${name} was not started again: the cut did not stop it`));
      } finally {
        for (const address of addresses) spawnSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"]);
      }
      await waitFor("every container healthy", () => containers.every((name) => (inspect<{ Health?: { Status: string } }>(name, ".State").Health?.Status ?? "healthy") === "healthy"), 300_000, 1000);
      assert.equal(asAppUser(engine, primary, "INSERT INTO notes VALUES (7, 'after the power cut');").status, 0);
      // MariaDB's replica retries its connection every MASTER_CONNECT_RETRY (60 s); PostgreSQL's every 5 s.
      await waitFor("the row written after the cut on the replica", () => asAppUser(engine, replica, "SELECT body FROM notes WHERE id = 7;").stdout === "after the power cut\n", 180_000, 1000);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(\\d+ ${unit}\\)`, "m"), status.stdout);
    });

    it("npm run promote with the real pulumi up: no failed request; fenced here, promoted there at the fence's position; the slots write to it at its tailnet address; the original refuses writes; the backup dumps the promoted database over the link, the original stopped too", async () => {
      const rows = Number(asAppUser(engine, primary, "SELECT count(*) FROM notes;").stdout.trim());
      const replicaRun = [inspect<string>(replica, ".Id"), inspect<string>(replica, ".State.StartedAt")];
      const result = await promoteUnderLoad(ws, stack, api);
      assert.doesNotMatch(result.stdout, /has not applied|cannot be fenced/);
      // The fence on the stack's server printed the primary's position; the replica's server promoted it there.
      const fencedAt = new RegExp(`\\[info\\]: ${primary}'s position once fenced: (\\S+)$`, "m").exec(result.stdout)?.[1];
      assert.ok(fencedAt && fencedAt !== "none", result.stdout);
      assert.ok(result.stdout.includes(`(the primary's position: ${fencedAt})`), result.stdout);
      assert.match(result.stdout, new RegExp(`promote of ${stack}: ${replica} becomes the primary \\(replica\\.sh promote on \\S+@127\\.0\\.0\\.1:\\d+, then \\S+@${OTHER_HOST.replace(/\./g, "\\.")}:\\d+\\)`));
      // Writes now cross the link: with the replica's read timeout (30 s, in the driver's unit).
      const url = `SPRING_DATASOURCE_URL=jdbc:${engine === "mariadb" ? "mariadb" : "postgresql"}://${TAILNET.replica}:${port}/bbaegok?socketTimeout=${engine === "mariadb" ? 30000 : 30}`;
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(env.includes(url), `${slot}: ${env.join(" ")}`);
        assert.ok(!env.some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL=")), `${slot} still reads a replica`);
        assert.equal(inspect<{ Health?: { Status: string } }>(slot, ".State").Health?.Status, "healthy", slot);
      }
      const write = asAppUser(engine, replica, "INSERT INTO notes VALUES (8, 'after the promotion elsewhere');");
      assert.equal(write.status, 0, write.stderr);
      assert.deepEqual([inspect<string>(replica, ".Id"), inspect<string>(replica, ".State.StartedAt")], replicaRun, "the promoted container was re-created or restarted by the promotion");
      const fenced = asAppUser(engine, primary, "INSERT INTO notes VALUES (9, 'on the original');");
      assert.notEqual(fenced.status, 0, "the original took a write after the promotion");
      assert.match(fenced.stderr, readOnlyRefusal(engine));
      assert.equal(inspect<string>(primary, ".HostConfig.RestartPolicy.Name"), "no");
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  promoted, the primary: takes writes; the original still answers, fenced`, "m"), status.stdout);

      // The installed backup dumps the promoted database over the link by a one-off client here: the write above is in it.
      const run = runInstalledBackup(host, s3, stack);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout + run.stderr, new RegExp(`the promoted replica on another server, over the link at ${TAILNET.replica.replace(/\./g, "\\.")}:${port}\\) done`));
      const manifest = newestManifest(s3, stack);
      assert.equal(manifest.source, undefined);
      assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, rows + 1, JSON.stringify(manifest.tables));
      // Stopped, as the runbook says once the first backup is checked: the backup does not need it.
      docker(["stop", primary]);
      const again = runInstalledBackup(host, s3, stack);
      assert.equal(again.status, 0, again.stdout + again.stderr);

      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });
  });
}
