// A read replica on another server, on two Docker hosts, over the program's
// WireGuard link brought up by `pulumi up`: prod (MariaDB) and staging
// (PostgreSQL) with `database.replicas: [{ server, link: { type: wireguard } }]`.
// Each "server" is a network namespace of its own (test/support/link-harness.ts's
// serverNamespaces: a bridge of this machine's is the internet between them)
// booted by Debian's systemd as its PID 1 on a disk of its own, its Docker
// (iptables on, as on a server) and its sshd started by Debian's units
// (test/support/docker-host.ts's `otherServer` and `boot`). What runs
// for real: both Docker providers over their own ssh://, the link's keys made
// by Pulumi, each end's wg-quick file installed and brought up on its server
// (userspace wireguard-go: no WireGuard module in this kernel), the sysctl
// and the boot unit on each, enabled with that server's systemd; the
// primary's port published on its link
// address by its dockerd, the replica on the other daemon seeded over the
// tunnel and replicating (GTID; streaming), the slots reading it through the
// tunnel (Docker's masquerading on the primary's server: the one source the
// replica's end accepts), `npm run status` over both SSH connections, and a
// power cut of both servers with systemd's boot after it.
//
// Stood in: both servers share this machine's /usr, users and the install
// helper, and the test's folder (the replica's data folder is a folder of
// the primary's); the kernel is this machine's (a power cut resets what the
// harness knows it keeps per namespace: bridges, the sysctl).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { linkPaths } from "../../infra/link/render.js";
import { buildTestImages, committedImageRefs } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost, type OtherServer } from "../support/docker-host.js";
import { asAdmin, asAppUser, inSlot, inspect, newestManifest, runInstalledBackup, writeAndSeeReplicated } from "../support/docker-replica.js";
import { opsAsync, pointStackAtHost, pulumi, setStackValue, stagingOnPostgres } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { SERVERS, serverNamespaces, type ServerNamespaces } from "../support/link-harness.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { waitFor } from "../support/system.js";

/**
 * Each stack's engine and its own link (its own addresses and UDP port: both stacks' links join the same two servers).
 * Prod's servers lose power together once its replica runs (`powerCut`); then one server has a clean reboot:
 * prod's own (its MariaDB primary), staging's replica's (its PostgreSQL standby, which the slots read).
 * How each takes its replica out: prod's once the other server is gone (unplugged: npm run forget-server, then
 * pulumi up; the primary keeps MariaDB's dead binlog dump thread, which retire ends), and plugged back after;
 * staging's with the other server up (pulumi up alone).
 */
const STACKS = [
  { stack: "prod", engine: "mariadb", port: 3306, scheme: "mysql", unit: "transactions", link: { primaryAddress: "10.99.0.1", replicaAddress: "10.99.0.2", port: 51820 }, serverGone: true, powerCut: true, reboot: "stack's" },
  { stack: "staging", engine: "postgres", port: 5432, scheme: "postgres", unit: "bytes", link: { primaryAddress: "10.99.1.1", replicaAddress: "10.99.1.2", port: 51821 }, serverGone: false, powerCut: false, reboot: "replica's" },
] as const;

/** What each engine logs at the end of a clean shutdown (and only then). */
const CLEAN_SHUTDOWN = { mariadb: /mariadbd: Shutdown complete/g, postgres: /database system is shut down/g } as const;
/**
 * What each engine logs when Docker's stop signal reaches it: MariaDB's SIGTERM ends the sessions; PostgreSQL's
 * must be SIGINT, a fast shutdown, since a smart one (SIGTERM) waits for the app's pooled sessions to end, and
 * a real app's pool holds them past Docker's stop timeout, then SIGKILL (the app stand-in closes its own sooner).
 */
const STOP_REQUEST = { mariadb: /\(initiated by: [^)]*\): Normal shutdown/g, postgres: /received fast shutdown request/g } as const;

const tag = String(process.pid % 100000);
let nets: ServerNamespaces;
let host: DockerHost;
let other: OtherServer;
let ws: ReturnType<typeof engineWorkspace>;
let s3: MotoServer;

before(async () => {
  nets = serverNamespaces(tag);
  host = await startDockerHost({ netns: nets.ns.primary, address: SERVERS.primary, otherServer: { netns: nets.ns.replica, address: SERVERS.replica }, boot: true });
  other = host.other!;
  await buildTestImages({ env: host.dockerEnv });
  // The other server runs the replica only: the databases' images.
  const refs = committedImageRefs();
  await buildTestImages({ env: other.dockerEnv }, { mariadb: refs.mariadb, postgres: refs.postgres });
  ws = engineWorkspace("server", host.operatorEnv);
  // The S3 stand-in on this machine's address on the servers' network: the stack's server uploads to it from its namespace.
  s3 = await startMoto(STACKS.map(({ stack }) => ({ name: `bbaegok-${stack}-db-backups`, versioned: true })), { host: SERVERS.operator });
  for (const { stack, link } of STACKS) {
    pointStackAtHost(ws.projectDir, stack, host);
    setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], [
      {
        server: { host: other.host, ssh: { user: host.user, port: other.sshPort, hostKey: other.hostKey }, dataDir: other.dataDir },
        link: { type: "wireguard", ...link },
      },
    ]);
    const init = pulumi(ws, ["stack", "init", stack]);
    assert.equal(init.status, 0, outputOf(init));
  }
  stagingOnPostgres(ws.projectDir);
});

after(async () => {
  nets?.plug("replica", true);
  ws?.remove();
  await s3?.stop();
  await host?.stop();
  nets?.remove();
});

/** A server's containers, by name. */
function containersOn(on: Pick<DockerHost, "dockerEnv">): string[] {
  return docker(["ps", "-a", "--format", "{{.Names}}"], { host: on }).stdout.split("\n").filter(Boolean).sort();
}

for (const { stack, engine, port, scheme, unit, link, serverGone, powerCut, reboot } of STACKS) {
  const primary = `bbaegok-${stack}-db`;
  const replica = `bbaegok-${stack}-db-replica`;
  const slots = [`bbaegok-${stack}-app-blue`, `bbaegok-${stack}-app-green`];
  const paths = linkPaths("/unused", `bbaegok-${stack}`);
  /** The containers of the stack on its own server. */
  const onHost = [primary, ...slots];
  /** How many times a database container has logged `what` (the primary's first start's temporary server included). */
  const logged = (what: RegExp, database: string, on: Pick<DockerHost, "dockerEnv">) => {
    const logs = docker(["logs", database], { host: on });
    return (`${logs.stdout}${logs.stderr}`.match(what) ?? []).length;
  };
  const cleanShutdowns = (database: string, on: Pick<DockerHost, "dockerEnv">) => logged(CLEAN_SHUTDOWN[engine], database, on);
  const startTimes = () => ({ onHost: onHost.map((name) => inspect<string>(name, ".State.StartedAt")), replica: inspect<string>(replica, ".State.StartedAt", other) });

  describe(`${stack} with a ${engine} replica on a second Docker host, over the WireGuard link pulumi up configures`, () => {
    it("pulumi up brings the link up on both servers, and creates the replica on the other server's daemon, seeded over it and replicating", () => {
      const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(result.status, 0, outputOf(result));
      assert.ok(containersOn(other).includes(replica), containersOn(other).join(" "));
      assert.ok(!containersOn(host).includes(replica), `${replica} on the stack's server too`);
      assert.deepEqual(containersOn(other).filter((name) => name.startsWith(`bbaegok-${stack}-`)), [replica], "the other server runs the stack's replica and nothing else of it");
      const state = inspect<{ Running: boolean; Health?: { Status: string } }>(replica, ".State", other);
      assert.equal(state.Running, true);
      assert.equal(state.Health?.Status, "healthy");
    });

    it("each server has its end of the tunnel up, a handshake with the other, its boot unit (enabled and active: the link up by it) and its sysctl file", () => {
      for (const [server, self, peer] of [[host, link.primaryAddress, link.replicaAddress], [other, link.replicaAddress, link.primaryAddress]] as const) {
        const shown = server.asRoot(`ip -4 -br addr show dev '${paths.iface}'; wg show '${paths.iface}' latest-handshakes; wg show '${paths.iface}' allowed-ips; sysctl -n net.ipv4.ip_nonlocal_bind; cat '${paths.unit}' '${paths.sysctl}'`);
        assert.equal(shown.status, 0, shown.stderr);
        const [address, handshake, allowed, nonlocal] = shown.stdout.split("\n");
        assert.match(address!, new RegExp(`^${paths.iface}\\s+UNKNOWN\\s+${self.replace(/\./g, "\\.")}/32`), shown.stdout);
        assert.ok(Number(handshake!.split("\t")[1]) > 0, `no handshake on ${server.host}: ${shown.stdout}`);
        assert.match(allowed!, new RegExp(`\\t${peer.replace(/\./g, "\\.")}/32$`), shown.stdout);
        assert.equal(nonlocal, "1");
        assert.match(shown.stdout, new RegExp(`^ExecStart=/usr/bin/wg-quick up ${server.dataDir}/${stack}/link/${paths.iface}\\.conf$`, "m"));
        // Enabled, and active: up.sh brought the link up by starting its unit.
        assert.equal(server.asRoot(`systemctl is-enabled '${paths.unitName}'; systemctl is-active '${paths.unitName}'`).stdout, "enabled\nactive\n", `${paths.unitName} on ${server.host}`);
      }
    });

    it("each database publishes its port on its own server's link address only", () => {
      const bindings = (container: string, on: Pick<DockerHost, "dockerEnv">) =>
        Object.entries(inspect<Record<string, { HostIp: string; HostPort: string }[] | null>>(container, ".HostConfig.PortBindings", on)).flatMap(([p, list]) =>
          (list ?? []).map((b) => `${b.HostIp}:${b.HostPort}->${p}`),
        );
      assert.deepEqual(bindings(primary, host), [`${link.primaryAddress}:${port}->${port}/tcp`]);
      assert.deepEqual(bindings(replica, other), [`${link.replicaAddress}:${port}->${port}/tcp`]);
    });

    it("the replica replicates from the primary's link address, through the tunnel: the primary sees it come from the replica's link address", async () => {
      if (engine === "mariadb") {
        const slave = asAdmin(engine, replica, "SHOW SLAVE STATUS\\G", other).stdout;
        assert.match(slave, new RegExp(`Master_Host: ${link.primaryAddress.replace(/\./g, "\\.")}$`, "m"));
        assert.match(slave, /Slave_IO_Running: Yes$/m);
        assert.match(slave, /Using_Gtid: Slave_Pos$/m);
        const from = asAdmin(engine, primary, "SELECT SUBSTRING_INDEX(host, ':', 1) AS source FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%';").stdout;
        assert.equal(from, `source\n${link.replicaAddress}\n`);
      } else {
        assert.equal(asAdmin(engine, replica, "SELECT status, sender_host FROM pg_stat_wal_receiver;", other).stdout, `streaming ${link.primaryAddress}\n`);
        assert.equal(asAdmin(engine, primary, "SELECT client_addr FROM pg_stat_replication;").stdout, `${link.replicaAddress}\n`);
      }
      await writeAndSeeReplicated(engine, primary, replica, other);
    });

    it("the slots on the stack's server read the replica at its link address on the other server, with the password from their file", () => {
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(env.includes(`SPRING_DATASOURCE_REPLICA_URL=jdbc:${engine === "mariadb" ? "mariadb" : "postgresql"}://${link.replicaAddress}:${port}/bbaegok?socketTimeout=${engine === "mariadb" ? 30000 : 30}`), `${slot}: ${env.join(" ")}`);
        const [body, status] = inSlot(slot, "curl -s -w '\\n%{http_code}' http://127.0.0.1:8080/test/replica").split("\n").filter(Boolean);
        assert.equal(status, "200", `${slot}: ${body}`);
        assert.deepEqual(JSON.parse(body!), { status: "UP", replica: `${scheme}://bbaegok@${link.replicaAddress}:${port}/bbaegok` });
      }
    });

    it(`npm run status reads the replica from the stack's server, over the tunnel: healthy, 0 ${unit} behind`, async () => {
      await waitFor("the replica caught up", () => asAppUser(engine, replica, "SELECT count(*) FROM notes;", other).stdout === "1\n", 60_000, 500);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(0 ${unit}\\)`, "m"), status.stdout);
    });

    it("the installed backup on the stack's server checks the replica and dumps it through the tunnel, saying so", () => {
      const run = runInstalledBackup(host, s3, stack);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      const manifest = newestManifest(s3, stack);
      assert.equal(manifest.source, "replica");
      assert.match(manifest.replication?.why ?? "", new RegExp(`dumped over the link at ${link.replicaAddress.replace(/\./g, "\\.")}:${port}$`));
      assert.equal(manifest.tables.find((t) => /(^|\.)notes$/.test(t.name))?.rows, 1, JSON.stringify(manifest.tables));
    });

    it("a second run changes nothing", () => {
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });

    if (powerCut) it("a power cut of both servers: at boot each one's systemd applies its sysctl file and brings its end of the link up by its unit, before Docker; every container of the stack runs again on its server, the replica catches up over the tunnel, status says healthy", async () => {
      const started = startTimes();
      const shutdowns = cleanShutdowns(primary, host);
      await host.powerCut({
        beforeBoot: () => {
          // The tunnel went with the power (wireguard-go, userspace here, and its interface), and the kernel's sysctl is 0 again.
          for (const ns of [nets.ns.primary, nets.ns.replica]) {
            assert.notEqual(spawnSync("ip", ["-n", ns, "link", "show", paths.iface]).status, 0, `${paths.iface} survived the cut in ${ns}`);
            assert.equal(spawnSync("ip", ["netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_nonlocal_bind"], { encoding: "utf8" }).stdout.trim(), "0");
          }
        },
      });
      // Nothing by hand: each server's systemd applied the sysctl file, and started the link's unit before Docker.
      for (const server of [host, other]) {
        const show = (unit: string, property: string) => server.asRoot(`systemctl show '${unit}' -p ${property} --value`).stdout.trim();
        assert.equal(show(paths.unitName, "ActiveState"), "active", server.asRoot(`journalctl -u '${paths.unitName}' --no-pager -o cat`).stdout);
        const linkUp = Number(show(paths.unitName, "ActiveEnterTimestampMonotonic"));
        const dockerStart = Number(show("docker.service", "InactiveExitTimestampMonotonic"));
        assert.ok(linkUp > 0 && linkUp <= dockerStart, `${server.host}: the link up at ${linkUp} µs, Docker started at ${dockerStart} µs`);
        assert.equal(server.asRoot("sysctl -n net.ipv4.ip_nonlocal_bind").stdout.trim(), "1", `${server.host}: the sysctl file not applied at boot`);
      }
      await backAfterBoot(started, { id: 7, body: "after the power cut" }, "both");
      assert.equal(cleanShutdowns(primary, host), shutdowns, `${primary} logged a clean shutdown at a power cut`);
    });

    it(`a clean reboot of the ${reboot} server (systemctl poweroff, then its boot): Docker stops its containers before the link goes down, the database there shuts down cleanly, and Docker starts them again by itself (unless-stopped)`, async (t) => {
      const [database, server] = reboot === "stack's" ? [primary, host] : [replica, other];
      const started = startTimes();
      const before = cleanShutdowns(database, server);
      const requested = logged(STOP_REQUEST[engine], database, server);
      await host.reboot(reboot === "stack's" ? "stack" : "other");
      assert.equal(cleanShutdowns(database, server), before + 1, `${database} did not log a clean shutdown (${CLEAN_SHUTDOWN[engine]})`);
      assert.equal(logged(STOP_REQUEST[engine], database, server), requested + 1, `${database} was not asked to stop as it should be (${STOP_REQUEST[engine]})`);
      // The order systemd stopped them in, from the journal kept across the boot (the last shutdown is this one).
      const journal = server.asRoot("journalctl --no-pager -o short-unix _PID=1").stdout.split("\n");
      const at = (text: string) => Number(journal.filter((line) => line.includes(text)).pop()?.split(" ")[0] ?? NaN);
      const dockerStopping = at("Stopping docker.service");
      const dockerStopped = at("Stopped docker.service");
      const linkStopping = at(`Stopping ${paths.unitName}`);
      assert.ok(dockerStopped <= linkStopping, `Docker stopped at ${dockerStopped}, the link began to stop at ${linkStopping}`);
      t.diagnostic(`Docker took ${(dockerStopped - dockerStopping).toFixed(1)} s to stop the containers`);
      await backAfterBoot(started, { id: 8, body: "after the reboot" }, reboot);
    });

    /**
     * After a boot of both servers, or of one: every container runs again (those of a booted server
     * started anew, by Docker alone; those of a server that stayed up kept running) and is healthy,
     * a row written on the primary reaches the replica over the tunnel, status says healthy.
     */
    async function backAfterBoot(started: ReturnType<typeof startTimes>, row: { id: number; body: string }, booted: "both" | "stack's" | "replica's"): Promise<void> {
      await waitFor("every container of the stack to run again", () => onHost.every((name) => inspect<boolean>(name, ".State.Running")) && inspect<boolean>(replica, ".State.Running", other), 120_000, 1000);
      const startedAgain = (name: string, was: string, on: OtherServer | undefined, bootedHere: boolean) => {
        const now = inspect<string>(name, ".State.StartedAt", on);
        if (bootedHere) assert.notEqual(now, was, `${name} was not started again: it did not go down`);
        else assert.equal(now, was, `${name} was restarted: its server stayed up`);
      };
      onHost.forEach((name, i) => startedAgain(name, started.onHost[i]!, undefined, booted !== "replica's"));
      startedAgain(replica, started.replica, other, booted !== "stack's");
      const healthy = (name: string, on?: OtherServer) => (inspect<{ Health?: { Status: string } }>(name, ".State", on).Health?.Status ?? "healthy") === "healthy";
      await waitFor("every container healthy", () => onHost.every((name) => healthy(name)) && healthy(replica, other), 300_000, 1000);
      const write = asAppUser(engine, primary, `INSERT INTO notes VALUES (${row.id}, '${row.body}');`);
      assert.equal(write.status, 0, write.stderr);
      await waitFor(`the row written ${row.body} on the replica, over the tunnel`, () => asAppUser(engine, replica, `SELECT body FROM notes WHERE id = ${row.id};`, other).stdout === `${row.body}\n`, 180_000, 1000);
      const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
      assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, \\d+ s behind \\(\\d+ ${unit}\\)`, "m"), status.stdout);
    }

    /** What setup made on the primary for the replica: MariaDB its logins; PostgreSQL its slot and roles. */
    const leftOnPrimary = () =>
      engine === "mariadb"
        ? asAdmin(engine, primary, "SELECT COUNT(*) AS logins FROM mysql.user WHERE user IN ('replicator', 'replica_seed');").stdout
        : asAdmin(engine, primary, "SELECT (SELECT count(*) FROM pg_replication_slots) || ' ' || (SELECT count(*) FROM pg_roles WHERE rolname IN ('replicator', 'replica_backup'));").stdout;
    const nothingLeft = engine === "mariadb" ? "logins\n0\n" : "0 0\n";

    // The next stack's replica goes on the same server: back on the network once this one is forgotten.
    if (serverGone) after(() => nets.plug("replica", true));

    if (serverGone) it("the replica taken out of the stack file while its server still answers: npm run forget-server refuses (pulumi up removes what is there)", async () => {
      setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], []);
      const refused = await opsAsync(ws, "forget-server.ts", ["--stack", stack, "--server", other.host]);
      assert.equal(refused.status, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, new RegExp(`${other.host.replace(/\./g, "\\.")} answers SSH at ssh://[^ ]+ \\(it ran a command\\): it is not gone`));
    });

    if (serverGone) it("its server gone (unplugged): pulumi up cannot take the replica out, it must reach that server to delete what is there", () => {
      nets.plug("replica", false);
      const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.notEqual(result.status, 0, outputOf(result));
      assert.match(outputOf(result), new RegExp(other.host.replace(/\./g, "\\.")));
    });

    if (serverGone) it("npm run forget-server takes what was on it out of the state, runs nothing there; then pulumi up removes the rest on the stack's server: the link's end, the primary's port, the slot and roles (retire)", async () => {
      const forgot = await opsAsync(ws, "forget-server.ts", ["--stack", stack, "--server", other.host]);
      assert.equal(forgot.status, 0, forgot.stdout + forgot.stderr);
      assert.match(forgot.stdout, new RegExp(`resources on ${other.host.replace(/\./g, "\\.")}, which does not answer, are taken out of the state`));
      for (const what of ["docker:index/container:Container  database-replica-1-container", "docker:index/volume:Volume  database-replica-1-volume", "pulumi:providers:docker  database-replica-1-server-docker", "command:remote:Command  database-replica-1-link-replica-up"]) {
        assert.ok(forgot.stdout.includes(what), `${what} not listed:\n${forgot.stdout}`);
      }
      const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(result.status, 0, outputOf(result));
      // Nothing was run on the gone server: its replica is still there (a server that comes back must be wiped).
      assert.ok(containersOn(other).includes(replica), containersOn(other).join(" "));
      assert.equal(leftOnPrimary(), nothingLeft);
      const left = host.asRoot(`ip link show dev '${paths.iface}' 2>&1; ls '${paths.unit}' '${paths.sysctl}' 2>&1`);
      assert.match(left.stdout, new RegExp(`Device "${paths.iface}" does not exist`), left.stdout);
      assert.equal((left.stdout.match(/No such file or directory/g) ?? []).length, 2, left.stdout);
      assert.deepEqual(Object.values(inspect<Record<string, unknown[] | null> | null>(primary, ".HostConfig.PortBindings") ?? {}).flat().filter(Boolean), [], "the primary still publishes a port");
      assert.equal(asAppUser(engine, primary, "SELECT body FROM notes WHERE id = 1;").stdout, "빼곡 노트\n");
      const again = await opsAsync(ws, "forget-server.ts", ["--stack", stack, "--server", other.host]);
      assert.equal(again.status, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /nothing in its state is on .*; nothing to forget/);
    });

    if (!serverGone) it("the replica taken out of the stack file: pulumi up removes it from the other server, takes the link down on both and leaves the primary's data", () => {
      setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], []);
      const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(result.status, 0, outputOf(result));
      assert.deepEqual(containersOn(other).filter((name) => name.startsWith(`bbaegok-${stack}-`)), []);
      // Its volume, a copy, went with it; on the primary, what setup made for it (PostgreSQL: the slot, which would keep WAL for ever).
      assert.ok(!docker(["volume", "ls", "-q"], { host: other }).stdout.split("\n").includes(`bbaegok-${stack}-db-replica-data`), "the replica's volume is still there");
      assert.equal(leftOnPrimary(), nothingLeft);
      assert.match(outputOf(result), /the replica's slot and logins are dropped on bbaegok-/);
      for (const server of [host, other]) {
        const left = server.asRoot(`ip link show dev '${paths.iface}' 2>&1; ls '${paths.unit}' '${paths.sysctl}' 2>&1`);
        assert.match(left.stdout, new RegExp(`Device "${paths.iface}" does not exist`), `${server.host}: ${left.stdout}`);
        assert.equal((left.stdout.match(/No such file or directory/g) ?? []).length, 2, `${server.host}: ${left.stdout}`);
      }
      assert.deepEqual(Object.values(inspect<Record<string, unknown[] | null> | null>(primary, ".HostConfig.PortBindings") ?? {}).flat().filter(Boolean), [], "the primary still publishes a port");
      // The up rolled the release out to the other slot, which serves now; the one that served before keeps the replica's
      // datasource until the next deploy re-creates it (README: a rewarm, `npm run deploy` without --image).
      const live = host.asRoot(`cat '${host.dataDir}/proxy/live/upstreams/${stack}.conf'`).stdout.match(/^# Slot (blue|green) serves\.$/m)?.[1];
      const reads = (slot: string) => inspect<string[]>(slot, ".Config.Env").some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL="));
      assert.deepEqual(slots.map(reads), slots.map((slot) => !slot.endsWith(`-${live}`)), `live: ${live}`);
      assert.equal(asAppUser(engine, primary, "SELECT body FROM notes WHERE id = 1;").stdout, "빼곡 노트\n");
    });

    it("the next up rewarms the slot that served before without the replica's datasource (as after any release); then nothing changes", () => {
      const rewarm = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
      assert.equal(rewarm.status, 0, outputOf(rewarm));
      for (const slot of slots) assert.ok(!inspect<string[]>(slot, ".Config.Env").some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL=")), slot);
      const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
      assert.equal(preview.status, 0, outputOf(preview));
    });
  });
}
