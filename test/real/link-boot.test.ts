// The private link after a reboot, under the real systemd and the real
// Docker: the replica's server of test/real/replica-link.test.ts (a network
// namespace joined to the primary's by the rendered WireGuard link) boots
// Debian's systemd as its PID 1 with a disk of its own
// (test/support/systemd-boot.ts), and Debian's containerd, docker.socket and
// docker.service enabled there, as `apt-get install docker.io` leaves them.
// The rendered up.sh, run on the booted server, brings the link up and
// installs and enables the boot unit and the sysctl file where systemd reads
// them. A container stands for the replica's: published on the server's link
// address only, restart policy unless-stopped, as the program runs it. Then
// power cuts and boots, as a home server gets them.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { linkUpScript } from "../../infra/link/render.js";
import { busyboxRootfsTar } from "../support/docker-host.js";
import { LINK, UNDERLAY, linkedServers, type LinkedServers } from "../support/link-harness.js";
import { bootServer, enableUnit, serverDisk, type BootedServer, type ServerDisk } from "../support/systemd-boot.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const tag = String(process.pid % 100000);
/** The primary server's name as the replica's link file gives its endpoint, in the "name does not resolve yet" boot. */
const PEER_NAME = "primary.bbaegok.test";
/** The replica container's stand-in: busybox's httpd, published on the link address only. */
const IMAGE = "bbaegok-test/link-boot-replica";
const CONTAINER = "bbaegok-prod-db-replica";
const PORT = 3306;
const ANSWER = "the replica's server, through the link";

describe("the private link after a reboot, under the real systemd and Docker (the replica's server booted in its network namespace)", () => {
  const dir = tempDir("link-boot");
  requireCommand("curl", "curl");
  let link: LinkedServers;
  let disk: ServerDisk;
  let server: BootedServer | undefined;
  const cgroupName = `bbboot-${tag}`;
  const paths = () => link.paths.replica;
  const journal = (unit: string) => server?.run(["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout ?? "";
  const boot = async () => {
    // A reboot starts the kernel's settings afresh: ip_nonlocal_bind is 0 until something sets it.
    spawnSync("ip", ["netns", "exec", link.ns.replica, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=0"]);
    server = await bootServer(disk, cgroupName);
    const started = server;
    await waitFor("Docker to start", () => started.property("docker.service", "ActiveState") === "active", 90_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\n${journal("docker.service")}`);
    });
    return started;
  };
  const powerCut = async () => {
    await server?.powerCut();
    server = undefined;
  };
  /** The container's state as Docker reports it (Running, Error). */
  const containerState = () => JSON.parse(server!.run(["docker", "inspect", "--format", "{{json .State}}", CONTAINER]).stdout || "{}") as { Running?: boolean; Error?: string; Status?: string };
  /** The primary's server asks the replica's container at its link address, through the tunnel. */
  const askReplica = () => spawnSync("ip", ["netns", "exec", link.ns.primary, "curl", "--silent", "--show-error", "--max-time", "3", `http://${LINK.replica}:${PORT}/`], { encoding: "utf8" });
  const ifaceOnReplica = () => spawnSync("ip", ["netns", "exec", link.ns.replica, "ip", "link", "show", "dev", paths().iface], { encoding: "utf8" });

  before(async () => {
    link = linkedServers(dir.path, tag, { replica: "/etc" });
    const up = link.up("primary");
    assert.equal(up.status, 0, up.stderr);
    disk = serverDisk(join(dir.path, "replica-root"), link.ns.replica, [dir.path]);
    // Docker as Debian's docker.io installs it: containerd, the socket and the daemon, enabled.
    enableUnit(disk, "containerd.service");
    enableUnit(disk, "docker.service");
    enableUnit(disk, "docker.socket", "sockets.target");
    writeFileSync(paths().up, linkUpScript(paths()), { mode: 0o755 });
  });

  after(async () => {
    await powerCut();
    link?.remove();
    dir.remove();
  });

  it("on the booted server, up.sh enables its boot unit with systemd and brings the link up by starting it; a container published on the link address answers through it", async () => {
    const running = await boot();
    const up = running.run(["bash", paths().up]);
    assert.equal(up.status, 0, up.stderr);
    assert.doesNotMatch(up.stderr, /no systemd here/);

    // The image, built offline: busybox-static and a page.
    const load = running.run(["docker", "import", "-c", `CMD ["/bin/busybox", "httpd", "-f", "-p", "${PORT}", "-h", "/www"]`, "-", IMAGE], busyboxRootfsTar({ "www/index.html": ANSWER }));
    assert.equal(load.status, 0, load.stderr);
    const start = running.run(["docker", "run", "-d", "--name", CONTAINER, "--restart", "unless-stopped", "-p", `${LINK.replica}:${PORT}:${PORT}`, IMAGE]);
    assert.equal(start.status, 0, start.stderr);
    await waitFor("the container to answer through the link", () => askReplica().stdout === ANSWER, 20_000, 250);
    assert.equal(running.run(["systemctl", "is-enabled", paths().unitName]).stdout.trim(), "enabled");
    // Up by its unit: active while the link runs (so a shutdown stops it, after Docker).
    assert.equal(running.property(paths().unitName, "ActiveState"), "active", journal(paths().unitName));
    assert.ok(existsSync(join(disk.root, paths().unit)), "the unit is not on the server's disk");
    assert.equal(readFileSync(join(disk.root, paths().sysctl), "utf8"), "net.ipv4.ip_nonlocal_bind = 1\n");
  });

  it("a power cut takes the link and the container down with every process of the server", async () => {
    await powerCut();
    assert.notEqual(ifaceOnReplica().status, 0, "the link's interface outlived the power cut");
    assert.notEqual(askReplica().status, 0);
  });

  it("the next boot: systemd sets ip_nonlocal_bind, brings the link up before Docker starts, and Docker starts the container on the link address, answering through it", async () => {
    const running = await boot();
    assert.equal(running.property(paths().unitName, "ActiveState"), "active", journal(paths().unitName));
    assert.equal(spawnSync("ip", ["netns", "exec", link.ns.replica, "sysctl", "-n", "net.ipv4.ip_nonlocal_bind"], { encoding: "utf8" }).stdout.trim(), "1");
    // Ordered, not by chance: Docker started after the link's unit had finished starting.
    const linkUp = Number(running.property(paths().unitName, "ActiveEnterTimestampMonotonic"));
    const dockerStart = Number(running.property("docker.service", "InactiveExitTimestampMonotonic"));
    assert.ok(linkUp > 0 && linkUp <= dockerStart, `the link up at ${linkUp} µs, Docker started at ${dockerStart} µs`);
    await waitFor("Docker to start the container again (unless-stopped)", () => containerState().Running === true, 30_000, 250);
    await waitFor("the container to answer through the link", () => askReplica().stdout === ANSWER, 20_000, 250);
  });

  it("a boot where the link cannot come up (the peer's name does not resolve yet: DNS not back after a power cut): the try is cut, Docker starts the container on the link address anyway, and the unit retries every 30 s until it answers through the link", async () => {
    await powerCut();
    const config = readFileSync(paths().config, "utf8");
    writeFileSync(paths().config, config.replace(`Endpoint = ${UNDERLAY.primary}:`, `Endpoint = ${PEER_NAME}:`), { mode: 0o600 });
    try {
      const running = await boot();
      // wg retries a name that does not resolve for over a minute: the try is cut (LINK_BOOT_TRY_SECONDS), so Docker did not wait for it.
      assert.equal(running.property(paths().unitName, "Result"), "timeout", journal(paths().unitName));
      assert.notEqual(running.property(paths().unitName, "ActiveState"), "active");
      assert.notEqual(ifaceOnReplica().status, 0, "a cut try left the link's interface behind");
      // Published on an address no interface has yet: bound all the same (the sysctl), so the container runs.
      await waitFor("Docker to start the container without the link", () => containerState().Running === true, 30_000, 250).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(containerState())}`);
      });
      // The name resolves from now on (the server's resolver, here its /etc/hosts): the next try brings the link up.
      appendFileSync(join(disk.root, "etc/hosts"), `${UNDERLAY.primary} ${PEER_NAME}\n`);
      await waitFor("the link's unit to retry and come up", () => running.property(paths().unitName, "ActiveState") === "active", 60_000, 1000);
      assert.ok(Number(running.property(paths().unitName, "NRestarts")) >= 1);
      await waitFor("the container to answer through the link", () => askReplica().stdout === ANSWER, 20_000, 250);
    } finally {
      writeFileSync(paths().config, config, { mode: 0o600 });
    }
  });
});
