// The test "home server" itself, for real: Debian's dockerd and OpenSSH on this
// machine, a deploy user prepared as the README says. What `pulumi up` relies
// on is checked here first: docker over ssh as the deploy user, its sudo rule (the install helper alone),
// containers reached at their fixed addresses and through published ports
// without iptables, the pinned host key enforced, and nothing left at stop().
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { asRootCommand, INSTALL_HELPER, installFileCommand } from "../../infra/server/render.js";
import { DEPLOY_USER, DOCKER_GROUP, INSTALL_HELPER_CONF, SUDOERS_FILE, docker, importBusyboxImage, runningHostOnMachine, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { REPO } from "../support/project.js";
import { freePort, tempDir, waitFor } from "../support/system.js";

const IMAGE = "bbdk-busybox:test";
const SUBNET = "172.30.10.0/24"; // the prod stack's edge subnet
const FIXED_IP = "172.30.10.11"; // the blue slot's address on it

/** busybox's httpd serving /www. */
function importBusybox(host: DockerHost): void {
  importBusyboxImage(host, IMAGE, ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"], { "www/index.html": "hello from busybox\n" });
}

async function get(url: string): Promise<string> {
  let body = "";
  let last = "";
  await waitFor(
    `${url} to answer`,
    async () => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
        body = await res.text();
        return res.ok;
      } catch (err) {
        last = String((err as Error).cause ?? err);
        return false;
      }
    },
    20_000,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}`);
  });
  return body;
}

describe("the test Docker host (real dockerd and OpenSSH on this machine)", () => {
  let host: DockerHost;
  before(async () => {
    host = await startDockerHost();
    importBusybox(host);
  });
  after(async () => {
    await host?.stop();
  });

  it("answers docker over ssh as the deploy user, including the provider's `docker system dial-stdio`", () => {
    const local = docker(["version", "--format", "{{.Server.Version}}"]).stdout.trim();
    const remote = host.ssh("docker version --format '{{.Server.Version}}'");
    assert.equal(remote.status, 0, remote.stderr);
    assert.equal(remote.stdout.trim(), local);
    assert.match(local, /^20\.10\./, "Debian's docker.io daemon");

    const groups = host.ssh("id -nG");
    assert.equal(groups.status, 0, groups.stderr);
    assert.ok(groups.stdout.trim().split(" ").includes(DOCKER_GROUP), `${DEPLOY_USER} is in ${DOCKER_GROUP}: ${groups.stdout}`);

    // What Docker's provider runs over ssh: the daemon's API on stdin/stdout.
    const ping = host.ssh("docker system dial-stdio", "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n", { timeoutMs: 30_000 });
    assert.equal(ping.status, 0, ping.stderr);
    assert.match(ping.stdout, /^HTTP\/1\.[01] 200 OK/);
    assert.match(ping.stdout, /\r\n\r\nOK$/);

    assert.doesNotMatch(readFileSync(host.sshdConfigFile, "utf8"), /MaxStartups/, "Debian's default MaxStartups unless asked");
  });

  it("gives the deploy user the README's sudo rule, the install helper alone: any other command as root is refused", () => {
    assert.equal(statSync(SUDOERS_FILE).mode & 0o777, 0o440);
    assert.match(readFileSync(SUDOERS_FILE, "utf8"), new RegExp(`^${DEPLOY_USER} ALL=\\(root\\) NOPASSWD: ${INSTALL_HELPER}$`, "m"));
    assert.deepEqual([statSync(INSTALL_HELPER).uid, statSync(INSTALL_HELPER).mode & 0o777], [0, 0o755]);
    assert.match(readFileSync(INSTALL_HELPER_CONF, "utf8"), new RegExp(`^data_dir=${host.dataDir}$`, "m"));
    for (const command of ["sudo -n true", "sudo -n id -u", "sudo -n sh -c id", "sudo -n docker version"]) {
      const refused = host.ssh(command);
      assert.notEqual(refused.status, 0, `${command} ran as root`);
      assert.match(refused.stderr, /a password is required|not allowed/, command);
    }
    // Through the helper: nothing outside the data folder.
    const outside = host.ssh(asRootCommand("install", "/etc/sudoers.d/more", "0440", "root:root"), `${DEPLOY_USER} ALL=(root) NOPASSWD: ALL\n`);
    assert.equal(outside.status, 2);
    assert.match(outside.stderr, /"\/etc\/sudoers\.d\/more" is outside .*: refused/);
    assert.ok(!existsSync("/etc/sudoers.d/more"));

    const spec = { path: `${host.dataDir}/prod/secrets/db/password`, mode: "0600", owner: "root:root" };
    const install = host.ssh(installFileCommand(spec), "s3cr3t\n");
    assert.equal(install.status, 0, install.stderr);
    assert.equal(readFileSync(spec.path, "utf8"), "s3cr3t\n");
    assert.equal(statSync(spec.path).uid, 0);
    assert.equal(statSync(spec.path).mode & 0o777, 0o600);
  });

  it("reaches a container on a user-defined network by its fixed address, and names resolve there", async () => {
    docker(["network", "create", "--driver", "bridge", "--subnet", SUBNET, "--ip-range", "172.30.10.128/25", "--gateway", "172.30.10.1", "bbdk-edge"]);
    docker(["network", "create", "--internal", "bbdk-data"]);
    docker(["run", "-d", "--name", "bbdk-blue", "--network", "bbdk-edge", "--ip", FIXED_IP, "--memory", "64m", IMAGE]);
    docker(["network", "connect", "bbdk-data", "bbdk-blue"]);
    docker(["run", "-d", "--name", "bbdk-db", "--network", "bbdk-data", "--memory", "64m", IMAGE]);
    assert.equal(await get(`http://${FIXED_IP}:8080/`), "hello from busybox\n");
    // Docker's embedded DNS on user-defined networks (the app finds its database by name).
    const byName = docker(["exec", "bbdk-db", "/bin/busybox", "wget", "-q", "-O", "-", "http://bbdk-blue:8080/"]);
    assert.equal(byName.stdout, "hello from busybox\n");
    // Memory limits apply (every container of the stacks has one).
    const limit = docker(["exec", "bbdk-blue", "/bin/busybox", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"], { allowFailure: true });
    if (limit.status === 0) assert.equal(limit.stdout.trim(), String(64 * 1024 * 1024));
  });

  it("serves a published port on 127.0.0.1 through docker's userland proxy (no iptables)", async () => {
    const port = await freePort();
    docker(["run", "-d", "--name", "bbdk-published", "--network", "bbdk-edge", "-p", `127.0.0.1:${port}:8080`, IMAGE]);
    assert.equal(await get(`http://127.0.0.1:${port}/`), "hello from busybox\n");
  });

  it("replica.sh's container_runs, asked before a promotion goes on without the fence: a container that runs, or is paused, runs; a stopped one and none do not (Docker's own answer)", () => {
    // common.bash as the rendered replica.sh and failback.sh carry it, its container_runs asked of this daemon.
    const runs = (name: string) => {
      const asked = spawnSync("bash", ["-c", `${readFileSync(join(REPO, "infra/replica/common.bash"), "utf8")}\ncontainer_runs "$1"`, "container-runs", name], { env: host.dockerEnv, encoding: "utf8" });
      assert.ok(asked.status === 0 || asked.status === 1, `container_runs ${name}: ${asked.status} ${asked.stderr}`);
      return asked.status === 0;
    };
    docker(["run", "-d", "--name", "bbdk-db-runs", "--network", "none", "--memory", "64m", IMAGE]);
    assert.equal(runs("bbdk-db-runs"), true, "running");
    docker(["pause", "bbdk-db-runs"]);
    assert.equal(runs("bbdk-db-runs"), true, "paused: it takes writes again once unpaused");
    docker(["unpause", "bbdk-db-runs"]);
    docker(["stop", "--time", "1", "bbdk-db-runs"]);
    assert.equal(runs("bbdk-db-runs"), false, "stopped");
    docker(["rm", "bbdk-db-runs"]);
    assert.equal(runs("bbdk-db-runs"), false, "no such container");
  });

  it("enforces the pinned host key: another key, or none, is refused", () => {
    const other = tempDir("bbdk-kh");
    try {
      const key = join(other.path, "k");
      spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const otherLine = readFileSync(`${key}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
      assert.notEqual(otherLine, host.hostKey);
      writeFileSync(join(other.path, "wrong"), `[127.0.0.1]:${host.sshPort} ${otherLine}\n`);
      writeFileSync(join(other.path, "empty"), "");
      for (const file of ["wrong", "empty"]) {
        const r = spawnSync(
          "ssh",
          [
            ...["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${join(other.path, file)}`],
            ...["-o", "GlobalKnownHostsFile=/dev/null", "-p", String(host.sshPort), "-l", host.user, host.host, "--", "echo", "reached"],
          ],
          { env: host.operatorEnv, encoding: "utf8", timeout: 30_000 },
        );
        assert.equal(r.status, 255, `${file} known_hosts: ${r.stdout}${r.stderr}`);
        assert.doesNotMatch(r.stdout, /reached/);
        assert.match(r.stderr, file === "wrong" ? /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/ : /No ED25519 host key is known|Host key verification failed/);
      }
      const pinned = host.ssh("echo reached");
      assert.equal(pinned.stdout.trim(), "reached", pinned.stderr);
      assert.match(host.hostKey, /^ssh-ed25519 [A-Za-z0-9+/]+={0,3}$/);
    } finally {
      other.remove();
    }
  });

  it("stop() leaves no process, user, group, sudoers file, bridge, cgroup or temp folder behind", async () => {
    const dir = host.dir;
    const edge = docker(["network", "inspect", "-f", "{{.Id}}", "bbdk-edge"]).stdout.trim();
    // A session still open at stop: it goes too.
    const sleeper = spawnSync("sh", ["-c", `ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${host.knownHostsFile} -p ${host.sshPort} -l ${host.user} 127.0.0.1 'sleep 600' >/dev/null 2>&1 & echo $!`], {
      env: host.operatorEnv,
      encoding: "utf8",
    });
    await waitFor("the sleeping ssh session", () => host.ssh("pgrep -u $(id -u) -x sleep").status === 0, 10_000);
    const daemonPids = ["docker.pid", "sshd.pid"].map((f) => Number(readFileSync(join(dir, f), "utf8").trim()));

    await host.stop();

    for (const pid of daemonPids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} is gone`);
    const strays = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .filter((e) => {
        try {
          const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
          const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${e}/status`, "utf8"))?.[1];
          return cmd.includes(dir) || (uid !== undefined && spawnSync("id", ["-nu", uid], { encoding: "utf8" }).stdout.trim() === DEPLOY_USER);
        } catch {
          return false;
        }
      });
    assert.deepEqual(strays, [], "no process of the host is left");
    // The user, groups and sudoers file have fixed names: another test's host may have started since (it waited for this stop).
    const next = runningHostOnMachine();
    assert.notEqual(next?.dir, dir, "the machine's lock no longer names this host");
    if (next === undefined) {
      assert.notEqual(spawnSync("id", [DEPLOY_USER]).status, 0, `user ${DEPLOY_USER} removed`);
      for (const group of [DEPLOY_USER, DOCKER_GROUP]) assert.notEqual(spawnSync("getent", ["group", group]).status, 0, `group ${group} removed`);
      assert.ok(!existsSync(SUDOERS_FILE), "sudoers file removed");
      assert.ok(!existsSync(INSTALL_HELPER) && !existsSync(INSTALL_HELPER_CONF), "install helper and its configuration removed");
    } else {
      const home = spawnSync("getent", ["passwd", DEPLOY_USER], { encoding: "utf8" }).stdout.split(":")[5] ?? "";
      assert.ok(!home.startsWith(`${dir}/`), `${DEPLOY_USER} is not this host's any more (home ${home}, now ${next.dir}'s)`);
    }
    assert.ok(!existsSync(dir), "temp folder removed");
    assert.ok(!existsSync(`/sys/class/net/br-${edge.slice(0, 12)}`), "the network's bridge removed");
    const name = dir.slice(dir.lastIndexOf("/") + 1);
    const cgroups = readdirSync("/sys/fs/cgroup").filter((c) => existsSync(join("/sys/fs/cgroup", c, name)));
    assert.deepEqual(cgroups, [], "no cgroup left");
    assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(dir), "nothing mounted under the temp folder");
    const sleeperPid = Number(sleeper.stdout.trim());
    await waitFor("the operator's ssh client to see the server gone", () => !existsSync(`/proc/${sleeperPid}`) || readFileSync(`/proc/${sleeperPid}/stat`, "utf8").split(" ")[2] === "Z", 10_000);
  });
});
