// The private link after a reboot, under the real systemd: the replica's
// server of test/real/replica-link.test.ts (a network namespace joined to the
// primary's by the rendered WireGuard link) boots Debian's systemd as its PID 1
// with a disk of its own (test/support/systemd-boot.ts). The rendered up.sh,
// run on the booted server, brings the link up and installs and enables the
// boot unit and the sysctl file where systemd reads them; then power cuts and
// boots, as a home server gets them. Docker is a stand-in unit named
// docker.service that records, as it starts, what Docker would find: the
// link's address, and whether the kernel lets a process bind it without
// (ip_nonlocal_bind). The rest is the real systemd reading the real files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { linkUpScript } from "../../infra/link/render.js";
import { LINK, UNDERLAY, linkedServers, type LinkedServers } from "../support/link-harness.js";
import { bootServer, serverDisk, type BootedServer, type ServerDisk } from "../support/systemd-boot.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const tag = String(process.pid % 100000);
/** The primary server's name as the replica's link file gives its endpoint, in the "name does not resolve yet" boot. */
const PEER_NAME = "primary.bbaegok.test";

/** docker.service's stand-in: what Docker would find as it starts, in /srv/docker-saw (the server's disk). */
const DOCKER_STAND_IN = `# A stand-in for Docker (test/real/link-boot.test.ts): records, as it starts, what Docker would find.
[Unit]
Description=stand-in for docker.service (records the link's address and ip_nonlocal_bind at its start)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '{ echo "ip_nonlocal_bind=$(cat /proc/sys/net/ipv4/ip_nonlocal_bind)"; ip -o -4 addr show; } > /srv/docker-saw'

[Install]
WantedBy=multi-user.target
`;

describe("the private link after a reboot, under the real systemd (the replica's server booted in its network namespace)", () => {
  const dir = tempDir("link-boot");
  requireCommand("ping", "iputils-ping");
  let link: LinkedServers;
  let disk: ServerDisk;
  let server: BootedServer | undefined;
  const cgroupName = `bbboot-${tag}`;
  const paths = () => link.paths.replica;
  const boot = async () => {
    // A reboot starts the kernel's settings afresh: ip_nonlocal_bind is 0 until something sets it.
    spawnSync("ip", ["netns", "exec", link.ns.replica, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=0"]);
    server = await bootServer(disk, cgroupName);
    const started = server;
    await waitFor("Docker (its stand-in) to start", () => started.property("docker.service", "ActiveState") === "active", 60_000, 200);
    return started;
  };
  const powerCut = async () => {
    await server?.powerCut();
    server = undefined;
  };
  const dockerSaw = () => readFileSync(join(disk.root, "srv", "docker-saw"), "utf8");
  /** The primary's server reaches the replica's link address through the tunnel. */
  const pingReplica = () => spawnSync("ip", ["netns", "exec", link.ns.primary, "ping", "-c", "1", "-W", "2", LINK.replica], { encoding: "utf8" });
  const ifaceOnReplica = () => spawnSync("ip", ["netns", "exec", link.ns.replica, "ip", "link", "show", "dev", paths().iface], { encoding: "utf8" });

  before(async () => {
    link = linkedServers(dir.path, tag, { replica: "/etc" });
    const up = link.up("primary");
    assert.equal(up.status, 0, up.stderr);
    disk = serverDisk(join(dir.path, "replica-root"), link.ns.replica, [dir.path]);
    writeFileSync(join(disk.root, "etc/systemd/system/docker.service"), DOCKER_STAND_IN);
    mkdirSync(join(disk.root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
    symlinkSync("/etc/systemd/system/docker.service", join(disk.root, "etc/systemd/system/multi-user.target.wants/docker.service"));
    writeFileSync(paths().up, linkUpScript(paths()), { mode: 0o755 });
  });

  after(async () => {
    await powerCut();
    link?.remove();
    dir.remove();
  });

  it("on the booted server, up.sh brings the link up and enables its boot unit with systemd; the sysctl file is where systemd-sysctl reads it", async () => {
    const running = await boot();
    const up = running.run(["bash", paths().up]);
    assert.equal(up.status, 0, up.stderr);
    assert.doesNotMatch(up.stderr, /no systemd here/);
    assert.equal(running.run(["systemctl", "is-enabled", paths().unitName]).stdout.trim(), "enabled");
    assert.ok(existsSync(join(disk.root, paths().unit)), "the unit is not on the server's disk");
    assert.equal(readFileSync(join(disk.root, paths().sysctl), "utf8"), "net.ipv4.ip_nonlocal_bind = 1\n");
    const ping = pingReplica();
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
  });

  it("a power cut takes the link down with every process of the server", async () => {
    await powerCut();
    assert.notEqual(ifaceOnReplica().status, 0, "the link's interface outlived the power cut");
    assert.notEqual(pingReplica().status, 0);
  });

  it("the next boot: systemd sets ip_nonlocal_bind, brings the link up before Docker starts, and the link carries traffic again", async () => {
    const running = await boot();
    assert.equal(running.property(paths().unitName, "ActiveState"), "active", running.run(["journalctl", "-u", paths().unitName, "--no-pager"]).stdout);
    const saw = dockerSaw();
    assert.match(saw, /^ip_nonlocal_bind=1$/m);
    assert.match(saw, new RegExp(`${paths().iface}\\s+inet ${LINK.replica.replace(/\./g, "\\.")}/32`), `Docker started before the link was up:\n${saw}`);
    // Ordered, not by chance: the stand-in started after the link's unit had finished starting.
    const linkUp = Number(running.property(paths().unitName, "ActiveEnterTimestampMonotonic"));
    const dockerStart = Number(running.property("docker.service", "InactiveExitTimestampMonotonic"));
    assert.ok(linkUp > 0 && linkUp <= dockerStart, `the link up at ${linkUp} µs, Docker started at ${dockerStart} µs`);
    await waitFor("the tunnel to carry a ping", () => pingReplica().status === 0, 20_000, 500);
  });

  it("a boot where the link cannot come up (the peer's name does not resolve yet: DNS not back after a power cut): the try is cut, Docker starts without it, able to bind the link address, and the unit retries every 30 s until the link is up", async () => {
    await powerCut();
    const config = readFileSync(paths().config, "utf8");
    writeFileSync(paths().config, config.replace(`Endpoint = ${UNDERLAY.primary}:`, `Endpoint = ${PEER_NAME}:`), { mode: 0o600 });
    const running = await boot();
    // wg retries a name that does not resolve for over a minute: the try is cut (LINK_BOOT_TRY_SECONDS), so Docker did not wait for it.
    assert.equal(running.property(paths().unitName, "Result"), "timeout", running.run(["journalctl", "-u", paths().unitName, "--no-pager"]).stdout);
    assert.notEqual(running.property(paths().unitName, "ActiveState"), "active");
    assert.notEqual(ifaceOnReplica().status, 0, "a cut try left the link's interface behind");
    const saw = dockerSaw();
    assert.match(saw, /^ip_nonlocal_bind=1$/m);
    assert.doesNotMatch(saw, new RegExp(paths().iface));
    // The name resolves from now on (the server's resolver, here its /etc/hosts): the next try brings the link up.
    appendFileSync(join(disk.root, "etc/hosts"), `${UNDERLAY.primary} ${PEER_NAME}\n`);
    await waitFor("the link's unit to retry and come up", () => running.property(paths().unitName, "ActiveState") === "active", 60_000, 1000);
    assert.ok(Number(running.property(paths().unitName, "NRestarts")) >= 1);
    await waitFor("the tunnel to carry a ping", () => pingReplica().status === 0, 20_000, 500);
    writeFileSync(paths().config, config, { mode: 0o600 });
  });
});
