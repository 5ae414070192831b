// A MariaDB read replica on another server, brought up by the real engine on
// the real Docker host: prod with `database.replicas: [{ server, link }]`,
// the link an existing tailnet. What runs for real: both Docker providers
// (the stack's server's and the other server's, each over its own ssh://),
// the files and commands sent to each server through its install helper, the
// tailnet ends' sysctl, the primary's and the replica's containers as the
// program defines them (the primary's port published on its tailnet address,
// the replica's on its own), the replica seeded over the link by the rendered
// setup and replicating by GTID, the slots reading it at its tailnet
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
import { asAppUser, inSlot, inspect, newestManifest, runInstalledBackup } from "../support/docker-replica.js";
import { addCloudflareClientAddress, opsAsync, pointStackAtHost, pulumi, setStackValue } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { waitFor } from "../support/system.js";

const STACK = "prod";
const TAILNET = { primary: "100.64.0.1", replica: "100.64.0.2" } as const;
const PRIMARY = "bbaegok-prod-db";
const REPLICA = "bbaegok-prod-db-replica";
const SLOTS = ["bbaegok-prod-app-blue", "bbaegok-prod-app-green"];
/** The other server's address: the same sshd as the stack's 127.0.0.1, listening there too. */
const OTHER_HOST = "127.0.0.2";

let host: DockerHost;
let ws: ReturnType<typeof engineWorkspace>;
let s3: MotoServer;
let otherDataDir: string;
const undo: (() => void)[] = [];

/** An address on this machine's loopback for the test's life (a tailnet's address on "both servers"). */
function addLoopbackAddress(address: string): void {
  const add = spawnSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { encoding: "utf8" });
  if (add.status !== 0) throw new Error(`ip addr add ${address}/32 dev lo failed: ${add.stderr}`);
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
  s3 = await startMoto([{ name: `bbaegok-${STACK}-db-backups`, versioned: true }]);
  pointStackAtHost(ws.projectDir, STACK, host);
  setStackValue(ws.projectDir, STACK, ["bbaegok-infra:database", "replicas"], [
    {
      maxLagSeconds: 30,
      server: { host: OTHER_HOST, ssh: { user: host.user, port: host.sshPort, hostKey: host.hostKey }, dataDir: otherDataDir },
      link: { type: "tailnet", primaryAddress: TAILNET.primary, replicaAddress: TAILNET.replica },
    },
  ]);
  const init = pulumi(ws, ["stack", "init", STACK]);
  assert.equal(init.status, 0, outputOf(init));
});

after(async () => {
  ws?.remove();
  await s3?.stop();
  await host?.stop();
  // The sysctl files the tailnet ends wrote into this machine's /etc (one name: both "servers" name it after the stack).
  const sysctlFile = linkPaths("/nonexistent", `bbaegok-${STACK}`).sysctl;
  if (existsSync(sysctlFile)) rmSync(sysctlFile);
  for (const step of undo.reverse()) step();
});

/** `docker ps`'s published ports of a container: "<address>:<port>->…" entries. */
function published(container: string): string[] {
  const bindings = inspect<Record<string, { HostIp: string; HostPort: string }[] | null> | null>(container, ".HostConfig.PortBindings") ?? {};
  return Object.entries(bindings).flatMap(([port, list]) => (list ?? []).map((b) => `${b.HostIp}:${b.HostPort}->${port}`));
}

/** SQL as the database's root inside a container (the test's own steps). */
function asRoot(container: string, sql: string) {
  return docker(["exec", "-i", container, "sh", "-c", 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec mariadb -uroot'], { input: sql });
}

describe("prod with a MariaDB replica on another server (a tailnet between them) on the real Docker host", () => {
  it("pulumi up creates the replica on the other server, seeds it over the link and leaves it replicating", () => {
    const result = pulumi(ws, ["up", "--stack", STACK, "--policy-pack", "policy", "--yes", "--skip-preview"]);
    assert.equal(result.status, 0, outputOf(result));
    const state = inspect<{ Running: boolean; Health?: { Status: string } }>(REPLICA, ".State");
    assert.equal(state.Running, true);
    assert.equal(state.Health?.Status, "healthy");
  });

  it("each database publishes its port on its own tailnet address only; the replica is not on the data network", () => {
    assert.deepEqual(published(PRIMARY), [`${TAILNET.primary}:3306->3306/tcp`]);
    assert.deepEqual(published(REPLICA), [`${TAILNET.replica}:3306->3306/tcp`]);
    const networks = Object.keys(inspect<Record<string, unknown>>(REPLICA, ".NetworkSettings.Networks"));
    assert.ok(!networks.includes("bbaegok-prod-data"), networks.join(" "));
    const publishing = docker(["ps", "--format", "{{.Names}}\t{{.Ports}}"]).stdout.split("\n").filter((l) => /->/.test(l)).map((l) => l.split("\t")[0]).sort();
    assert.deepEqual(publishing, [PRIMARY, REPLICA, "bbaegok-proxy"]);
  });

  it("each server got its own copy of replica.sh under its own data folder: the primary's and the replica's", () => {
    const mine = host.asRoot(`cat '${host.dataDir}/${STACK}/replica/replica.sh'`);
    const theirs = host.asRoot(`cat '${otherDataDir}/${STACK}/replica/replica.sh'`);
    assert.equal(mine.status, 0, mine.stderr);
    assert.equal(theirs.status, 0, theirs.stderr);
    assert.match(mine.stdout, /^readonly THIS_SERVER=primary$/m);
    assert.match(theirs.stdout, /^readonly THIS_SERVER=replica$/m);
    for (const copy of [mine.stdout, theirs.stdout]) assert.ok(copy.includes(`readonly PRIMARY_HOST='${TAILNET.primary}' PRIMARY_PORT=3306\n`), copy.slice(0, 800));
  });

  it("the replica replicates from the primary's tailnet address by GTID; a row written on the primary appears; the app's write is refused there", async () => {
    const slave = asRoot(REPLICA, "SHOW SLAVE STATUS\\G").stdout;
    assert.match(slave, new RegExp(`Master_Host: ${TAILNET.primary.replace(/\./g, "\\.")}$`, "m"));
    assert.match(slave, /Using_Gtid: Slave_Pos$/m);
    const write = asAppUser("mariadb", PRIMARY, "CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY, body VARCHAR(40)); INSERT INTO notes VALUES (1, '빼곡 노트');");
    assert.equal(write.status, 0, write.stderr);
    await waitFor("the row on the replica", () => asAppUser("mariadb", REPLICA, "SELECT body FROM notes WHERE id = 1;").stdout === "빼곡 노트\n", 60_000, 500);
    const refused = asAppUser("mariadb", REPLICA, "INSERT INTO notes VALUES (2, 'refused');");
    assert.notEqual(refused.status, 0, "the replica took a write");
    assert.match(refused.stderr, /--read-only/);
  });

  it("the slots read the replica at its tailnet address, with the password from their file", () => {
    for (const slot of SLOTS) {
      const env = inspect<string[]>(slot, ".Config.Env");
      assert.ok(env.includes(`SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://${TAILNET.replica}:3306/bbaegok`), `${slot}: ${env.join(" ")}`);
      assert.ok(!env.some((e) => /PASSWORD=/.test(e)), `${slot} has a password in its environment`);
      const [body, status] = inSlot(slot, "curl -s -w '\\n%{http_code}' http://127.0.0.1:8080/test/replica").split("\n").filter(Boolean);
      assert.equal(status, "200", `${slot}: ${body}`);
      assert.deepEqual(JSON.parse(body!), { status: "UP", replica: `mysql://bbaegok@${TAILNET.replica}:3306/bbaegok` });
    }
  });

  it("Metabase was set up reading the replica at its tailnet address", () => {
    const client = "psql -X -tA -U metabase -d metabase -c 'SELECT data_source FROM metabase_standin_setup'";
    assert.equal(docker(["exec", "bbaegok-prod-metabase-db", "sh", "-c", client]).stdout, `mysql://metabase_ro@${TAILNET.replica}:3306/bbaegok\n`);
  });

  it("npm run status reads the replica from the stack's server, over the link: healthy, 0 transactions behind", async () => {
    const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", STACK]);
    assert.equal(status.status, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`^  replica  ${REPLICA}  healthy, \\d+ s behind \\(0 transactions\\)`, "m"), status.stdout);
  });

  it("the installed backup checks the replica and dumps the primary, saying why", () => {
    const run = runInstalledBackup(host, s3, STACK);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const manifest = newestManifest(s3, STACK);
    assert.equal(manifest.source, "primary");
    assert.match(manifest.replication?.why ?? "", /another server is healthy/);
    assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, 1, JSON.stringify(manifest.tables));
  });

  it("with the replica's SQL thread stopped and a write on the primary: status says so, the backup dumps the primary and exits 1", async () => {
    asRoot(REPLICA, "STOP SLAVE SQL_THREAD;");
    try {
      assert.equal(asAppUser("mariadb", PRIMARY, "INSERT INTO notes VALUES (5, 'while stopped');").status, 0);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", STACK]);
      assert.match(status.stdout, /SQL thread is stopped/, status.stdout);
      const run = runInstalledBackup(host, s3, STACK);
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stdout + run.stderr, /SQL thread is stopped/);
      const manifest = newestManifest(s3, STACK);
      assert.equal(manifest.source, "primary");
      assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, 2, JSON.stringify(manifest.tables));
    } finally {
      asRoot(REPLICA, "START SLAVE SQL_THREAD;");
    }
    await waitFor("the replica caught up", () => asAppUser("mariadb", REPLICA, "SELECT count(*) FROM notes;").stdout === "2\n", 60_000, 500);
  });

  it("a second run changes nothing", () => {
    const preview = pulumi(ws, ["preview", "--stack", STACK, "--expect-no-changes"]);
    assert.equal(preview.status, 0, outputOf(preview));
  });
});
