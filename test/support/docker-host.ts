// A real "home server" on this machine for the tests that run the program's
// `pulumi up` for real: Debian's dockerd (with its own containerd) and Debian's
// OpenSSH server on 127.0.0.1, both started by hand in one fresh temp folder,
// and a deploy user prepared as the README's "A new server in ten minutes" says:
// in the (test) docker group, the install helper (infra/server/bbaegok-install,
// installed as the README says, its data_dir the host's) as its only sudo rule,
// keys only. Docker's provider reaches it at ssh://<user>@127.0.0.1:<port>
// (`docker system dial-stdio` over ssh: sshd's SetEnv points the deploy user's
// `docker` at the test daemon, and the sudoers file keeps DOCKER_HOST so root's
// `docker` under sudo is that daemon too), files and commands go over the same sshd.
//
// Everything it starts runs in its own cgroup (daemons, ssh sessions, docker's
// userland proxies, containers: dockerd's --cgroup-parent), so stop() can prove
// nothing is left; a run that crashed is cleaned up by the next start. The test
// user and groups have fixed names, so one host at a time runs on a machine: a
// second start waits for the first one's stop (flock on /run/lock/bbaegok-docker-host.lock;
// /run/lock/bbaegok-docker-host.json names the running host until its stop).
//
// Networking without iptables (--iptables=false, --bridge=none): containers on
// user-defined bridge networks are reached from the host at their addresses
// through the network's bridge, published ports through docker's userland
// proxy (docker-proxy), names resolve on user-defined networks; containers have
// no NAT to the outside. With `netns` (a server of a link test), dockerd runs
// in that network namespace with its iptables on, NAT included, as on a server;
// with `address` too, sshd runs there as well (see `address`). `otherServer`
// adds a second server (a replica's): a network namespace with a dockerd, a
// containerd and an sshd of its own, sharing the deploy user, the operator's
// key, the install helper and this machine's filesystem. With `boot`, each
// server in its namespace boots Debian's systemd instead, on a disk of its own
// (test/support/systemd-boot.ts), and Debian's units start its Docker and sshd.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { INSTALL_HELPER, INSTALL_HELPER_SOURCE } from "../../infra/server/render.js";
import { REPO } from "./project.js";
import { bootServer, copyEtc, enableUnit, serverDisk, type BootedServer, type ServerDisk } from "./systemd-boot.js";
import { freePort, requireCommand, tempDir, waitFor } from "./system.js";

/** The deploy user of the test server (the README's `deploy`). */
export const DEPLOY_USER = "bbaegok-deploy";
/** The test daemon's socket group (the README's `docker` group, for the test daemon only). */
export const DOCKER_GROUP = "bbaegok-docker";
/** The README's sudo rule for the deploy user (no dot in the name: sudo skips such files). */
export const SUDOERS_FILE = "/etc/sudoers.d/bbaegok-deploy-test";
/** The install helper's configuration, as the README writes it (data_dir: the host's). */
export const INSTALL_HELPER_CONF = "/etc/bbaegok-install.conf";
/** What of this machine's /etc a booted server's disk has besides systemd-boot's: sudo and PAM (the deploy user's rule), sshd's folder, Debian's containerd config, the install helper's configuration. */
const BOOT_ETC = ["sudoers", "sudoers.d", "pam.d", "security", "environment", "ssh", "containerd", basename(INSTALL_HELPER_CONF)];
/** Held (flock) by the process running a test host; the kernel lets it go when that process dies. */
const LOCK_FILE = "/run/lock/bbaegok-docker-host.lock";
/** The running host's {"pid":…,"dir":…}: still there at the next start means that run did not stop, its leftovers are removed. */
const STATE_FILE = "/run/lock/bbaegok-docker-host.json";
const TEMP_PREFIX = "/tmp/bbdk-";
const LOCK_WAIT_S = 20 * 60;
/** Where the harness's processes are tracked: cgroup v1's pids hierarchy, else cgroup v2's. */
const CGROUP_FS = "/sys/fs/cgroup";

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface DockerHost {
  /** ssh endpoint the stacks use: 127.0.0.1, or `address` */
  host: string;
  sshPort: number;
  user: string;
  /** the server's SSH host public key line ("ssh-ed25519 AAAA…"), for server.ssh.hostKey */
  hostKey: string;
  /** env for processes acting as the operator: SSH_AUTH_SOCK of an ssh-agent holding the user's key (nothing else changed) */
  operatorEnv: NodeJS.ProcessEnv;
  /** env for running the docker CLI locally against the test daemon: DOCKER_HOST=unix://… */
  dockerEnv: NodeJS.ProcessEnv;
  /** a data dir on the "server" for the stacks' server.dataDir (under the temp dir; not created, as on a fresh server) */
  dataDir: string;
  /** The temp folder holding everything (removed at stop). */
  dir: string;
  /** The test daemon's socket. */
  dockerSocket: string;
  /** A known_hosts file pinning the host key for [127.0.0.1]:<sshPort>. */
  knownHostsFile: string;
  /** An ssh_config for `ssh -F`: Host 127.0.0.1 with port, user, BatchMode and the pinned key. */
  sshConfigFile: string;
  /** sshd's own config file (to read back what the server runs with). */
  sshdConfigFile: string;
  /** runs a command as the deploy user over real ssh (BatchMode, pinned host key), returns stdout/stderr/status */
  ssh(command: string, input?: string | Buffer, options?: { timeoutMs?: number }): RunResult;
  /**
   * runs a command as root on the server itself (root's docker is the test
   * daemon): the tests' own steps, what an operator or an intruder with root
   * does. Never the program's way: the deploy user's sudo allows only the helper.
   */
  asRoot(command: string, input?: string | Buffer, options?: { timeoutMs?: number }): RunResult;
  /**
   * A power cut and the boot after it, as far as Docker can tell: dockerd,
   * containerd, every shim, every container's process and docker-proxy die
   * at once (SIGKILL: nothing is told, nothing stops cleanly); what a server
   * keeps only in memory or on /run goes (mounts, bridges, the daemons'
   * runtime state and sockets); then both daemons start again on the same
   * data roots with the same flags, as systemd starts them at boot. Docker
   * then starts what its restart policies say. sshd and the server's files stay.
   * With `otherServer`, both servers lose power and boot together.
   * `beforeBoot` runs while everything is down (what the boot is without,
   * and what a unit ordered before docker.service does).
   */
  powerCut(options?: { beforeBoot?: () => void }): Promise<void>;
  /**
   * With `boot`: a clean reboot of the stack's server, or of the other one.
   * `systemctl poweroff` (systemd stops its units in their order: Docker
   * stops each container within its stop timeout), then systemd's next boot.
   */
  reboot(server?: "stack" | "other"): Promise<void>;
  /** The second server, with `otherServer`. */
  other?: OtherServer;
  stop(): Promise<void>;
}

/** The second server of a host started with `otherServer` (the same deploy user, operator's key and install helper). */
export interface OtherServer {
  /** Its address in its namespace, where its sshd listens (its `server.host`). */
  host: string;
  sshPort: number;
  hostKey: string;
  /** env for the docker CLI here against its daemon. */
  dockerEnv: NodeJS.ProcessEnv;
  /** a data dir on it for its server.dataDir (not created) */
  dataDir: string;
  /** as the deploy user over real ssh */
  ssh(command: string, input?: string | Buffer, options?: { timeoutMs?: number }): RunResult;
  /** as root on it: in its network and mount namespaces, its docker the default */
  asRoot(command: string, input?: string | Buffer, options?: { timeoutMs?: number }): RunResult;
}

export interface DockerHostOptions {
  /** sshd's MaxStartups; default: unset, Debian's default (10:30:100). */
  maxStartups?: string;
  /**
   * Runs dockerd in this network namespace (a server of a link test) with its
   * iptables on, as a server's dockerd runs: containers on routed bridges
   * reach what the namespace routes to, masqueraded as its own address.
   * Default: this machine's namespace, without iptables (above).
   */
  netns?: string;
  /**
   * With `netns`: sshd runs in that namespace too, listening on this address
   * of it (the stacks' `server.host`), so that what the program runs over SSH
   * runs there (a WireGuard interface, a sysctl). Each server's sshd has a
   * mount namespace of its own, with its own /etc/systemd/system,
   * /etc/sysctl.d and /run/wireguard (folders of the test's): two servers on
   * one filesystem would otherwise write the same files and wireguard-go's
   * control socket (named after the interface, the same on both).
   */
  address?: string;
  /** A second server (see OtherServer): its own namespace (made by the caller) and its address there. */
  otherServer?: { netns: string; address: string };
  /**
   * With `netns` and `address`: each server boots Debian's systemd as its PID 1
   * (test/support/systemd-boot.ts) on a disk of its own (its /etc: this
   * machine's users, sudo and PAM, the install helper's configuration), and
   * Docker (containerd.service, docker.socket, docker.service) and sshd
   * (ssh.service) are started by their units, as `apt-get install docker.io
   * openssh-server` leaves them; dockerd's flags come from /etc/default/docker.
   * What the program installs over SSH (units, sysctl files) lands on that
   * server's disk and is run by its systemd. A power cut is a real one: every
   * process of the boot dies, sshd and its sessions too, and the next boot is
   * systemd's.
   */
  boot?: boolean;
  /**
   * More loopback addresses sshd listens on besides 127.0.0.1 (the same port):
   * the same test server under another name, standing for a second server.
   */
  alsoListenOn?: readonly string[];
}

/** The hosts started by this process and not stopped yet, newest last (docker()'s default). */
const running: DockerHost[] = [];

/**
 * Runs the docker CLI here against a test daemon (the newest running host
 * unless `host` says which). Throws with docker's stderr on failure unless
 * `allowFailure`.
 */
export function docker(
  args: string[],
  options: { host?: Pick<DockerHost, "dockerEnv">; input?: string | Buffer; timeoutMs?: number; allowFailure?: boolean } = {},
): RunResult {
  const host = options.host ?? running[running.length - 1];
  if (!host) throw new Error("docker(): no test Docker host is running (call startDockerHost() first)");
  const result = run(requireCommand("docker", "docker.io"), args, { env: host.dockerEnv, input: options.input, timeoutMs: options.timeoutMs ?? 120_000 });
  if (result.status !== 0 && !options.allowFailure) {
    throw new Error(`docker ${args.join(" ")} failed (status ${result.status}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}

export async function startDockerHost(options: DockerHostOptions = {}): Promise<DockerHost> {
  // Every tool first: a missing one fails here, naming its Debian package.
  const bin = {
    dockerd: requireCommand("dockerd", "docker.io"),
    containerd: requireCommand("containerd", "containerd (installed with docker.io)"),
    dockerProxy: requireCommand("docker-proxy", "docker.io"),
    runc: requireCommand("runc", "runc (installed with docker.io)"),
    docker: requireCommand("docker", "docker.io"),
    sshd: requireCommand("sshd", "openssh-server"),
    ssh: requireCommand("ssh", "openssh-client"),
    sshKeygen: requireCommand("ssh-keygen", "openssh-client"),
    sshAgent: requireCommand("ssh-agent", "openssh-client"),
    sshAdd: requireCommand("ssh-add", "openssh-client"),
    sudo: requireCommand("sudo", "sudo"),
    visudo: requireCommand("visudo", "sudo"),
    useradd: requireCommand("useradd", "passwd"),
    ip: requireCommand("ip", "iproute2"),
    nsenter: requireCommand("nsenter", "util-linux"),
    unshare: requireCommand("unshare", "util-linux"),
  };
  if (process.getuid?.() !== 0) throw new Error("startDockerHost() must run as root: it starts dockerd and sshd and creates a test user");
  if (options.boot && !(options.netns && options.address)) throw new Error("startDockerHost: boot needs the server in a namespace of its own (netns and address)");
  const trackingRoot = cgroupTrackingRoot();

  const lock = await acquireLock(trackingRoot);
  // A short path: unix sockets (docker's, containerd's, the agent's) must stay under ~100 characters.
  // Under /tmp itself, not $TMPDIR: the deploy user must traverse to its home and the docker socket.
  let dir: string;
  try {
    dir = mkdtempSync(TEMP_PREFIX);
    chmodSync(dir, 0o711);
    writeFileSync(STATE_FILE, `${JSON.stringify({ pid: process.pid, dir })}\n`);
  } catch (err) {
    await lock.release();
    throw err;
  }
  const name = basename(dir);
  const children: { what: string; child: ChildProcess; log: string }[] = [];
  let createdRunSshd = false;
  let createdRunWireguard = false;
  let stopped: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const problems: string[] = [];
      const index = running.indexOf(host);
      if (index >= 0) running.splice(index, 1);
      // Gracefully first: containers and networks removed through the daemon (the
      // networks' bridges would outlive it), then each daemon asked to stop.
      for (const server of servers) {
        const daemon = children.find((c) => c.what === `dockerd${server.suffix}`);
        const answers = server.booted ? true : daemon && daemon.child.exitCode === null && daemon.child.signalCode === null;
        if (!answers) continue;
        const env = dockerEnvFor(server.paths.base);
        const ids = run(bin.docker, ["ps", "-aq"], { env, timeoutMs: 30_000 });
        const list = ids.stdout.split("\n").filter(Boolean);
        if (list.length > 0) {
          const rm = run(bin.docker, ["rm", "-f", "-v", ...list], { env, timeoutMs: 60_000 });
          if (rm.status !== 0) problems.push(`docker rm -f: ${rm.stderr.trim()}`);
        }
        const prune = run(bin.docker, ["network", "prune", "-f"], { env, timeoutMs: 30_000 });
        if (prune.status !== 0) problems.push(`docker network prune: ${prune.stderr.trim()}`);
      }
      // A booted server goes down with its systemd: every process of its boot, then what its kernel keeps.
      for (const server of servers) problems.push(...(await shutDown(server)));
      for (const what of ["dockerd", "dockerd-other", "sshd", "sshd-other", "ssh-agent", "containerd", "containerd-other"]) {
        for (const c of children.filter((x) => x.what === what)) await terminate(c.child, what.startsWith("dockerd") ? 30_000 : 10_000);
      }
      problems.push(...(await cleanUp(dir, trackingRoot)));
      if (createdRunSshd) rmSync("/run/sshd", { recursive: true, force: true });
      if (createdRunWireguard) rmSync("/run/wireguard", { recursive: true, force: true });
      if (problems.length === 0) rmSync(STATE_FILE, { force: true });
      await lock.release();
      if (problems.length > 0) throw new Error(`stopping the test Docker host left problems:\n- ${problems.join("\n- ")}`);
    })();
    return stopped;
  };

  const paths = {
    ...serverPaths(dir),
    hostKey: join(dir, "ssh_host_ed25519_key"),
    userKey: join(dir, "id_ed25519"),
    authorizedKeys: join(dir, "authorized_keys"),
    sshConfig: join(dir, "ssh_config"),
    agentSocket: join(dir, "agent.sock"),
    home: join(dir, "home"),
  };
  const operatorEnv: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: paths.agentSocket };
  let hostKey = "";
  /** This server and, with `otherServer`, the other one: each its own daemons, sshd and namespaces. */
  const servers: Server[] = [{ suffix: "", paths, netns: options.netns, address: options.netns && options.address ? options.address : "127.0.0.1", sshPort: 0 }];
  if (options.otherServer) {
    if (!options.netns || !options.address) throw new Error("startDockerHost: otherServer needs this server in a namespace too (netns and address)");
    servers.push({ suffix: "-other", paths: serverPaths(join(dir, "other")), netns: options.otherServer.netns, address: options.otherServer.address, sshPort: 0 });
  }
  const [self, other] = servers as [Server, Server | undefined];

  const sshArgs = (server: Server) => [
    ...["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"],
    ...["-o", `UserKnownHostsFile=${server.paths.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"],
    ...["-p", String(server.sshPort), "-l", DEPLOY_USER, server.address],
  ];
  const sshTo = (server: Server) => (command: string, input?: string | Buffer, opts?: { timeoutMs?: number }) =>
    run(bin.ssh, [...sshArgs(server), "--", command], { env: operatorEnv, input, timeoutMs: opts?.timeoutMs ?? 120_000 });
  /** As root on a server: in its sshd's network and mount namespaces when it has them. */
  const asRootOn = (server: Server) => (command: string, input?: string | Buffer, opts?: { timeoutMs?: number }) => {
    const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", DOCKER_HOST: `unix://${server.paths.dockerSocket}` };
    if (options.boot) {
      // In the boot's namespaces and root, where root's `docker` is the server's own (/run/docker.sock).
      if (!server.booted) throw new Error(`asRoot: ${server.address} is not booted`);
      const r = server.booted.run(["sh", "-c", command], input, opts?.timeoutMs);
      return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}${r.error ? `\n${r.error.message}` : ""}` };
    }
    const sshd = children.find((c) => c.what === `sshd${server.suffix}` && c.child.exitCode === null);
    if (!server.netns || !options.address) return run("sh", ["-c", command], { env, input, timeoutMs: opts?.timeoutMs ?? 120_000 });
    if (!sshd?.child.pid) throw new Error(`asRoot: the sshd of ${server.address} is not running`);
    return run(bin.nsenter, [`--target=${sshd.child.pid}`, "--net", "--mount", "--", "sh", "-c", command], { env, input, timeoutMs: opts?.timeoutMs ?? 120_000 });
  };

  const host: DockerHost = {
    host: self.address,
    get sshPort() {
      return self.sshPort;
    },
    user: DEPLOY_USER,
    get hostKey() {
      return hostKey;
    },
    operatorEnv,
    dockerEnv: dockerEnvFor(dir),
    dataDir: join(dir, "srv", "bbaegok"),
    dir,
    dockerSocket: paths.dockerSocket,
    knownHostsFile: paths.knownHosts,
    sshConfigFile: paths.sshConfig,
    sshdConfigFile: paths.sshdConfig,
    ssh: sshTo(self),
    asRoot: asRootOn(self),
    powerCut: (cut) => powerCut(cut?.beforeBoot),
    reboot: async (which = "stack") => {
      const server = which === "other" ? other : self;
      if (!server?.booted) throw new Error(`reboot: the ${which} server was not booted by systemd (startDockerHost's boot option${which === "other" ? ", with otherServer" : ""})`);
      const left = await shutDown(server, "clean");
      if (left.length > 0) throw new Error(`reboot: ${left.join("; ")}`);
      await bootSystem(server);
    },
    other: other && {
      host: other.address,
      get sshPort() {
        return other.sshPort;
      },
      get hostKey() {
        return hostKey;
      },
      dockerEnv: dockerEnvFor(other.paths.base),
      dataDir: join(dir, "srv", "bbaegok", "other-server"),
      ssh: sshTo(other),
      asRoot: asRootOn(other),
    },
    stop,
  };

  /** Starts a daemon in the harness's cgroup, its output in <dir>/<what>.log. */
  const startDaemon = (what: string, command: string, args: string[]): { child: ChildProcess; log: string } => {
    const log = join(dir, `${what}.log`);
    const fd = openSync(log, "a");
    const child = spawn(command, args, { stdio: ["ignore", fd, fd], env: { ...process.env, PATH: systemPath() } });
    closeSync(fd);
    child.on("error", () => undefined);
    if (child.pid === undefined) throw new Error(`${what} could not be started (${command}): see ${log}\n${tail(log)}`);
    // Before it forks anything (shims, proxies, sessions): its children are tracked too.
    writeFileSync(join(trackingRoot, name, "harness", "cgroup.procs"), String(child.pid));
    const entry = { what, child, log };
    children.push(entry);
    return entry;
  };

  /** Waits for `ready`, failing at once (with the log) if the daemon exits. */
  const waitReady = async (what: string, daemon: { child: ChildProcess; log: string }, timeoutMs: number, ready: () => true | string) => {
    let last = "";
    let exited = false;
    try {
      await waitFor(
        what,
        () => {
          if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return (exited = true);
          const r = ready();
          if (r === true) return true;
          last = r;
          return false;
        },
        timeoutMs,
        200,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}${last ? `\nlast attempt: ${last.trim()}` : ""}\n--- ${daemon.log}:\n${tail(daemon.log)}`);
    }
    if (exited) throw new Error(`${what}: the process exited (${daemon.child.exitCode ?? daemon.child.signalCode})\n--- ${daemon.log}:\n${tail(daemon.log)}`);
  };

  /** A server's containerd, then dockerd on it: at the first start, and again after a power cut (the same data, the same flags). */
  const startDocker = async (server: Server = self) => {
    const { paths: at, suffix } = server;
    writeFileSync(at.ctdConfig, containerdConfig(at));
    if (!existsSync(at.daemonJson)) writeFileSync(at.daemonJson, "{}\n");
    const containerd = startDaemon(`containerd${suffix}`, bin.containerd, ["--config", at.ctdConfig]);
    await waitReady(`containerd${suffix} to listen`, containerd, 30_000, () => existsSync(at.ctdSocket) || "no socket yet");
    // dockerd: no iptables (unless in a namespace of its own), no default bridge; published ports through docker-proxy.
    // By hand, its runtime state and containers where the harness finds and removes them.
    const dockerdArgs = [
      ...dockerdFlags(server),
      ...["--exec-root", join(at.base, "x"), "--pidfile", join(at.base, "docker.pid"), "--containerd", at.ctdSocket, "--cgroup-parent", `/${name}`],
    ];
    // nsenter (not ip netns exec, whose fresh /sys has no cgroups: "Devices cgroup isn't mounted") execs dockerd:
    // the child is dockerd itself, tracked and stopped as without a namespace.
    const dockerd = server.netns
      ? startDaemon(`dockerd${suffix}`, bin.nsenter, [`--net=/run/netns/${server.netns}`, bin.dockerd, ...dockerdArgs])
      : startDaemon(`dockerd${suffix}`, bin.dockerd, dockerdArgs);
    await waitReady(`dockerd${suffix} to answer \`docker version\``, dockerd, 60_000, () => {
      const r = run(bin.docker, ["version", "--format", "{{.Server.Version}}"], { env: dockerEnvFor(at.base), timeoutMs: 10_000 });
      return r.status === 0 || r.stderr;
    });
  };

  /**
   * A server's sshd (keys only; the deploy user's docker is that server's daemon). In a namespace
   * (`address`), it runs there in a mount namespace of its own (see DockerHostOptions.address).
   */
  const startSshd = async (server: Server) => {
    for (let attempt = 1; ; attempt++) {
      server.sshPort = await freePort();
      writeFileSync(server.paths.sshdConfig, sshdConfig(dir, server, paths, options));
      const check = run(bin.sshd, ["-t", "-f", server.paths.sshdConfig], { timeoutMs: 10_000 });
      if (check.status !== 0) throw new Error(`sshd -t -f ${server.paths.sshdConfig} refused the test server's config:\n${check.stderr.trim()}\n--- config:\n${readFileSync(server.paths.sshdConfig, "utf8")}`);
      const sshdArgs = ["-D", "-f", server.paths.sshdConfig, "-E", join(server.paths.base, "sshd.log")];
      let sshd: { child: ChildProcess; log: string };
      if (server.netns && options.address) {
        const own = (path: string) => join(server.paths.base, "fs", path);
        const mounts = [
          "set -e",
          "mount -t tmpfs -o mode=0755 bbaegok-test-wireguard /run/wireguard",
          ...["/etc/systemd/system", "/etc/sysctl.d"].map((path) => {
            mkdirSync(own(path), { recursive: true });
            return `mount --bind ${own(path)} ${path}`;
          }),
          'exec "$0" "$@"',
        ].join("\n");
        sshd = startDaemon(`sshd${server.suffix}`, bin.nsenter, [`--net=/run/netns/${server.netns}`, bin.unshare, "--mount", "--propagation", "private", "sh", "-c", mounts, bin.sshd, ...sshdArgs]);
      } else {
        sshd = startDaemon(`sshd${server.suffix}`, bin.sshd, sshdArgs);
      }
      try {
        // Port taken between freePort() and sshd's bind: sshd exits, try another port.
        await waitReady(`sshd to listen on ${server.address}:${server.sshPort}`, sshd, 15_000, () => (portOpen(server.address, server.sshPort) ? true : "not listening yet"));
        break;
      } catch (err) {
        if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) throw err;
      }
    }
    writeFileSync(server.paths.knownHosts, `[${server.address}]:${server.sshPort} ${hostKey}\n`, { mode: 0o644 });
    const sshd = children.find((c) => c.what === `sshd${server.suffix}` && c.child.exitCode === null);
    if (!sshd) throw new Error(`sshd${server.suffix} is not running`);
    await waitReady(`an ssh login as ${DEPLOY_USER} on ${server.address}`, sshd, 20_000, () => {
      const r = sshTo(server)("true", undefined, { timeoutMs: 15_000 });
      return r.status === 0 || `status ${r.status}: ${r.stderr}`;
    });
  };

  /** The flags of a server's dockerd (its daemon.json holds nothing else): by hand, and in /etc/default/docker with `boot`. */
  const dockerdFlags = (server: Server): string[] => {
    const at = server.paths;
    return [
      ...["--config-file", at.daemonJson, "--data-root", join(at.base, "root")],
      ...["--host", `unix://${at.dockerSocket}`, "--group", DOCKER_GROUP, "--storage-driver", "overlay2"],
      ...[`--iptables=${server.netns ? "true" : "false"}`, "--ip6tables=false", "--bridge=none", "--userland-proxy=true", "--userland-proxy-path", bin.dockerProxy],
    ];
  };

  /**
   * With `boot`: the server's disk (the first time: Docker and sshd enabled, dockerd's flags in
   * /etc/default/docker, sshd's config where its unit checks it), then its boot. Resolves once its
   * Docker answers and the deploy user can log in: what a server that has booted gives.
   */
  const bootSystem = async (server: Server) => {
    const at = server.paths;
    if (!server.disk) {
      const disk = serverDisk(join(at.base, "disk"), server.netns!, [dir]);
      copyEtc(disk, BOOT_ETC);
      if (!existsSync(at.daemonJson)) writeFileSync(at.daemonJson, "{}\n");
      mkdirSync(join(disk.root, "etc", "default"), { recursive: true });
      writeFileSync(join(disk.root, "etc", "default", "docker"), `DOCKER_OPTS="${dockerdFlags(server).join(" ")}"\n`);
      for (const unit of ["containerd.service", "docker.service", "ssh.service"]) enableUnit(disk, unit);
      enableUnit(disk, "docker.socket", "sockets.target");
      server.sshPort = await freePort();
      writeFileSync(join(disk.root, "etc", "ssh", "sshd_config"), sshdConfig(dir, server, paths, options));
      server.disk = disk;
    }
    // Under the harness's cgroup: its stop and the next start's clean-up find whatever a boot left.
    const booted = await bootServer(server.disk, `${name}/boot${server.suffix}`);
    server.booted = booted;
    const journal = (unit: string) => booted.run(["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout.slice(-3000);
    await waitFor(`Docker on ${server.address} to answer`, () => run(bin.docker, ["version", "--format", "{{.Server.Version}}"], { env: dockerEnvFor(at.base), timeoutMs: 10_000 }).status === 0, 120_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}\n--- containerd.service:\n${journal("containerd.service")}\n--- docker.service:\n${journal("docker.service")}`);
    });
    writeFileSync(at.knownHosts, `[${server.address}]:${server.sshPort} ${hostKey}\n`, { mode: 0o644 });
    let last = "";
    await waitFor(`an ssh login as ${DEPLOY_USER} on ${server.address}`, () => {
      const r = sshTo(server)("true", undefined, { timeoutMs: 15_000 });
      last = r.stderr;
      return r.status === 0;
    }, 60_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}: ${last.trim()}\n--- ssh.service:\n${journal("ssh.service")}`);
    });
  };

  /** A booted server down, by a power cut or a clean shutdown; then what its kernel keeps until a reboot goes (bridges, a sysctl). */
  const shutDown = async (server: Server, how: "cut" | "clean" = "cut"): Promise<string[]> => {
    if (!server.booted) return [];
    await (how === "clean" ? server.booted.shutdown() : server.booted.powerCut());
    server.booted = undefined;
    const problems = dropKernelState(server.paths.base, server.netns);
    const sysctl = run("ip", ["netns", "exec", server.netns!, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=0"]);
    if (sysctl.status !== 0) problems.push(`sysctl in ${server.netns}: ${sysctl.stderr.trim()}`);
    return problems;
  };

  const powerCut = async (beforeBoot?: () => void) => {
    if (options.boot) {
      // Both servers at once (with otherServer), then systemd boots each: nothing started by hand.
      for (const server of servers) {
        const left = await shutDown(server);
        if (left.length > 0) throw new Error(`power cut: ${left.join("; ")}`);
      }
      beforeBoot?.();
      for (const server of servers) await bootSystem(server);
      return;
    }
    // Every process of Docker's at once, with no warning: the daemons, the shims, docker-proxy and
    // everything in the containers' cgroups. sshd, its sessions and the agent are the operator's side: they stay.
    const dockerSide = () => [
      ...safeReaddir(join(trackingRoot, name))
        .filter((entry) => entry !== "harness" && existsSync(join(trackingRoot, name, entry, "cgroup.procs")))
        .flatMap((entry) => cgroupPids(join(trackingRoot, name, entry))),
      ...cgroupPids(join(trackingRoot, name, "harness")).filter((pid) => /^(dockerd|containerd|containerd-shim.*|docker-proxy|runc)$/.test(comm(pid))),
    ];
    const killed = await killAll(dockerSide, "every process of Docker's to die");
    if (killed.length > 0) throw new Error(`power cut: ${killed.join("; ")}`);
    // Every server's (with otherServer, both lose power).
    const dockerDaemon = (what: string) => /^(dockerd|containerd)(-other)?$/.test(what);
    for (const c of children.filter((x) => dockerDaemon(x.what))) await terminate(c.child, 1000);
    children.splice(0, children.length, ...children.filter((c) => !dockerDaemon(c.what)));
    // What a real server keeps in memory or on /run (a tmpfs) is gone after the boot: mounts, bridges,
    // the runtime state of containerd and dockerd, their sockets and pid file. The data roots stay.
    for (const server of servers) {
      const base = server.paths.base;
      const left = dropKernelState(base, server.netns);
      if (left.length > 0) throw new Error(`power cut: ${left.join("; ")}`);
      for (const volatile of [join(base, "containerd", "state"), join(base, "x"), join(base, "docker.pid"), server.paths.dockerSocket, server.paths.ctdSocket, `${server.paths.ctdSocket}.ttrpc`]) {
        rmSync(volatile, { recursive: true, force: true });
      }
    }
    beforeBoot?.();
    for (const server of servers) await startDocker(server);
  };

  try {
    mkdirSync(join(trackingRoot, name, "harness"), { recursive: true });

    // The deploy user, as the README prepares it (home in the temp folder).
    createGroup(DOCKER_GROUP);
    runChecked(bin.useradd, [
      ...["--create-home", "--home-dir", paths.home, "--shell", "/bin/sh", "--user-group", "--groups", DOCKER_GROUP],
      // "*": no password, but not locked ("!"): sshd without PAM refuses a locked account even for keys.
      ...["--password", "*", "--comment", "bbaegok test deploy user", DEPLOY_USER],
    ]);
    // The install helper as the README installs it, root's, its data_dir the host's.
    writeFileSync(INSTALL_HELPER_CONF, `data_dir=${join(dir, "srv", "bbaegok")}\nservice=bbaegok\n`, { mode: 0o644 });
    const helperNext = `${INSTALL_HELPER}.new`;
    writeFileSync(helperNext, readFileSync(join(REPO, INSTALL_HELPER_SOURCE)), { mode: 0o755 });
    chmodSync(helperNext, 0o755);
    renameSync(helperNext, INSTALL_HELPER);
    const sudoersTemp = join(dir, "sudoers");
    // The README's rule (the helper, nothing else), plus DOCKER_HOST kept through sudo's env_reset: root's
    // `docker` on a real server is the same daemon (/var/run/docker.sock); here it must be told where the test daemon is.
    writeFileSync(sudoersTemp, `Defaults:${DEPLOY_USER} env_keep += "DOCKER_HOST"\n${DEPLOY_USER} ALL=(root) NOPASSWD: ${INSTALL_HELPER}\n`, { mode: 0o440 });
    runChecked(bin.visudo, ["-cf", sudoersTemp]);
    const sudoersNext = join("/etc/sudoers.d", `.${basename(SUDOERS_FILE)}.new`);
    writeFileSync(sudoersNext, readFileSync(sudoersTemp), { mode: 0o440 });
    chmodSync(sudoersNext, 0o440);
    renameSync(sudoersNext, SUDOERS_FILE);

    for (const server of servers) {
      mkdirSync(server.paths.base, { recursive: true, mode: 0o711 });
      // Booted, Docker starts with the server's boot, below (sshd with it).
      if (!options.boot) await startDocker(server);
    }

    // The operator's key, in an ssh-agent of its own.
    runChecked(bin.sshKeygen, ["-q", "-t", "ed25519", "-N", "", "-C", "bbaegok-test-operator", "-f", paths.userKey]);
    const agent = startDaemon("ssh-agent", bin.sshAgent, ["-D", "-a", paths.agentSocket]);
    await waitReady("ssh-agent to listen", agent, 10_000, () => existsSync(paths.agentSocket) || "no socket yet");
    runChecked(bin.sshAdd, ["-q", paths.userKey], { env: operatorEnv });
    writeFileSync(paths.authorizedKeys, readFileSync(`${paths.userKey}.pub`), { mode: 0o644 });

    // sshd: keys only, one host key for every server; the deploy user's docker is that server's daemon.
    runChecked(bin.sshKeygen, ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", paths.hostKey]);
    hostKey = readFileSync(`${paths.hostKey}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    if (!existsSync("/run/sshd")) {
      // sshd's privilege separation directory (systemd's unit makes it on a real server).
      mkdirSync("/run/sshd", { mode: 0o755 });
      createdRunSshd = true;
    }
    if (options.address && !existsSync("/run/wireguard")) {
      // The mount point of each server's own /run/wireguard (wireguard-go makes this folder on a real server).
      mkdirSync("/run/wireguard", { mode: 0o755 });
      createdRunWireguard = true;
    }
    for (const server of servers) await (options.boot ? bootSystem(server) : startSshd(server));
    writeFileSync(
      paths.sshConfig,
      [
        `Host ${self.address}`,
        `  Port ${self.sshPort}`,
        `  User ${DEPLOY_USER}`,
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        `  UserKnownHostsFile ${paths.knownHosts}`,
        "  GlobalKnownHostsFile /dev/null",
        "",
      ].join("\n"),
    );
    running.push(host);
    return host;
  } catch (err) {
    try {
      await stop();
    } catch (stopErr) {
      throw new Error(`${(err as Error).message}\n(and while cleaning up: ${(stopErr as Error).message})`);
    }
    throw err;
  }
}

/** One server of a test host: its daemons' files under `paths.base`, its namespace, its sshd's address and port. */
interface Server {
  /** "" for the stack's server, "-other" for the second one: in its daemons' names. */
  suffix: string;
  paths: ReturnType<typeof serverPaths>;
  netns?: string;
  address: string;
  sshPort: number;
  /** With `boot`: its disk, and its boot while it runs. */
  disk?: ServerDisk;
  booted?: BootedServer;
}

/** Where one server's daemons keep their files (the stack's server: the host's folder itself). */
function serverPaths(base: string) {
  return {
    base,
    ctdConfig: join(base, "containerd.toml"),
    ctdSocket: join(base, "containerd.sock"),
    dockerSocket: join(base, "docker.sock"),
    daemonJson: join(base, "daemon.json"),
    knownHosts: join(base, "known_hosts"),
    sshdConfig: join(base, "sshd_config"),
  };
}

/** A containerd of the server's own (dockerd would share a system one at /run/containerd if one ran). */
function containerdConfig(at: ReturnType<typeof serverPaths>): string {
  return [
    "version = 2",
    `root = ${JSON.stringify(join(at.base, "containerd", "root"))}`,
    `state = ${JSON.stringify(join(at.base, "containerd", "state"))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    "[grpc]",
    `  address = ${JSON.stringify(at.ctdSocket)}`,
    "[ttrpc]",
    `  address = ${JSON.stringify(`${at.ctdSocket}.ttrpc`)}`,
    "[debug]",
    '  address = ""',
    "[metrics]",
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(at.base, "containerd", "opt"))}`,
    "",
  ].join("\n");
}

function sshdConfig(dir: string, server: Server, paths: { hostKey: string; authorizedKeys: string }, options: DockerHostOptions): string {
  return [
    `# bbaegok test server ${server.address} (${dir})`,
    `Port ${server.sshPort}`,
    ...[server.address, ...(server.suffix === "" ? (options.alsoListenOn ?? []) : [])].map((address) => `ListenAddress ${address}`),
    `HostKey ${paths.hostKey}`,
    `PidFile ${join(server.paths.base, "sshd.pid")}`,
    `AuthorizedKeysFile ${paths.authorizedKeys}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "StrictModes no",
    "UsePAM no",
    "X11Forwarding no",
    "PermitRootLogin no",
    `AllowUsers ${DEPLOY_USER}`,
    "PrintMotd no",
    "LogLevel VERBOSE",
    "Subsystem sftp internal-sftp",
    // The deploy user's `docker` (and `docker system dial-stdio`) reaches the test daemon.
    `SetEnv DOCKER_HOST=unix://${server.paths.dockerSocket}`,
    ...(options.maxStartups !== undefined ? [`MaxStartups ${options.maxStartups}`] : []),
    "",
  ].join("\n");
}

function dockerEnvFor(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${join(dir, "docker.sock")}` };
  delete env.DOCKER_CONTEXT;
  delete env.DOCKER_TLS_VERIFY;
  delete env.DOCKER_CERT_PATH;
  return env;
}

function systemPath(): string {
  const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(":");
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(command, args, {
    env: options.env ?? { ...process.env, PATH: systemPath() },
    input: options.input,
    encoding: "utf8",
    timeout: options.timeoutMs ?? 60_000,
    killSignal: "SIGKILL",
    maxBuffer: 256 * 1024 * 1024,
  });
  const timedOut = r.error && (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT";
  return {
    status: r.status ?? -1,
    stdout: r.stdout ?? "",
    stderr: `${r.stderr ?? ""}${timedOut ? `\n(timed out after ${options.timeoutMs ?? 60_000} ms: ${command} ${args.join(" ")})` : r.error ? `\n${r.error.message}` : ""}`,
  };
}

function runChecked(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = run(command, args, options);
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (status ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

function tail(file: string, chars = 3000): string {
  try {
    const text = readFileSync(file, "utf8");
    return text.length > chars ? `…${text.slice(-chars)}` : text;
  } catch {
    return "(no log)";
  }
}

function portOpen(address: string, port: number): boolean {
  // Synchronous probe through bash's /dev/tcp: the waits stay simple.
  return spawnSync("bash", ["-c", `exec 3<>/dev/tcp/${address}/${port}`], { timeout: 3000 }).status === 0;
}

async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  if (gone()) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const within = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  };
  child.kill("SIGTERM");
  await within(graceMs);
  if (!gone()) {
    child.kill("SIGKILL");
    await within(5000);
  }
}

function createGroup(group: string): void {
  if (spawnSync("getent", ["group", group]).status !== 0) runChecked("groupadd", [group]);
}

/** cgroup v1's pids hierarchy when mounted, else the cgroup v2 root. */
function cgroupTrackingRoot(): string {
  const v1 = join(CGROUP_FS, "pids");
  if (existsSync(join(v1, "cgroup.procs"))) return v1;
  if (existsSync(join(CGROUP_FS, "cgroup.controllers"))) return CGROUP_FS;
  throw new Error(`no writable cgroup hierarchy found under ${CGROUP_FS} (neither v1 pids nor v2): dockerd cannot run containers here`);
}

/** The cgroup folders named `name` in every hierarchy (containers go in each v1 controller). */
function cgroupDirs(name: string): string[] {
  const dirs: string[] = [];
  if (existsSync(join(CGROUP_FS, name, "cgroup.procs"))) dirs.push(join(CGROUP_FS, name));
  for (const entry of safeReaddir(CGROUP_FS)) {
    const d = join(CGROUP_FS, entry, name);
    if (existsSync(join(d, "cgroup.procs"))) dirs.push(d);
  }
  return dirs;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Sub-folders of a cgroup, deepest first, the cgroup itself last. */
export function cgroupTree(dir: string): string[] {
  const out: string[] = [];
  for (const entry of safeReaddir(dir)) {
    const d = join(dir, entry);
    try {
      if (statSync(d).isDirectory()) out.push(...cgroupTree(d));
    } catch {
      // gone meanwhile
    }
  }
  out.push(dir);
  return out;
}

/** The processes in a cgroup and every cgroup beneath it. */
export function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  for (const d of cgroupTree(dir)) {
    try {
      pids.push(...readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Processes whose command line names `dir`, or that run as the deploy user. */
function strayPids(dir: string | undefined, uid: number | undefined): number[] {
  const pids: number[] = [];
  for (const entry of safeReaddir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if (dir && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) {
        pids.push(pid);
        continue;
      }
      if (uid !== undefined) {
        const line = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        if (line && Number(line[1]) === uid) pids.push(pid);
      }
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function uidOf(user: string): number | undefined {
  const r = spawnSync("id", ["-u", user], { encoding: "utf8" });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

async function killAll(list: () => number[], what: string): Promise<string[]> {
  try {
    await waitFor(
      what,
      () => {
        const pids = list();
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
        return pids.length === 0;
      },
      15_000,
      100,
    );
    return [];
  } catch (err) {
    return [`${(err as Error).message}: ${list().map((p) => `${p} ${cmdline(p)}`).join("; ")}`];
  }
}

/** A process's name as the kernel keeps it (15 characters at most). */
function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return "?";
  }
}

/**
 * Removes everything a host left (its own after stop, or a crashed run's): its
 * processes (cgroup, command lines naming the folder, the deploy user's), the
 * bridges of its networks, its mounts, the folder, its cgroups, the user and
 * groups, the sudoers file, the install helper and its configuration. Returns what could not be removed.
 */
async function cleanUp(dir: string | undefined, trackingRoot: string): Promise<string[]> {
  const problems: string[] = [];
  const name = dir ? basename(dir) : undefined;
  const uid = uidOf(DEPLOY_USER);
  if (name) problems.push(...(await killAll(() => cgroupPids(join(trackingRoot, name)), `the processes of cgroup ${name} to end`)));
  problems.push(...(await killAll(() => strayPids(dir, uid), `the processes of ${dir ?? "the test host"} and of ${DEPLOY_USER} to end`)));

  if (dir) {
    // The stack's server's, and a second server's (its bridges went with its namespace).
    problems.push(...dropKernelState(dir), ...(existsSync(join(dir, "other")) ? dropKernelState(join(dir, "other")) : []));
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      problems.push(`rm -rf ${dir}: ${(err as Error).message}`);
    }
  }
  if (name) {
    for (const top of cgroupDirs(name)) {
      for (const d of cgroupTree(top)) {
        try {
          rmdirSync(d);
        } catch (err) {
          if (existsSync(d)) problems.push(`rmdir ${d}: ${(err as Error).message}`);
        }
      }
    }
  }
  if (uid !== undefined) {
    const r = run("userdel", [DEPLOY_USER]);
    if (r.status !== 0) problems.push(`userdel ${DEPLOY_USER}: ${r.stderr.trim()}`);
  }
  for (const group of [DEPLOY_USER, DOCKER_GROUP]) {
    if (spawnSync("getent", ["group", group]).status === 0) {
      const r = run("groupdel", [group]);
      if (r.status !== 0) problems.push(`groupdel ${group}: ${r.stderr.trim()}`);
    }
  }
  rmSync(SUDOERS_FILE, { force: true });
  rmSync(join("/etc/sudoers.d", `.${basename(SUDOERS_FILE)}.new`), { force: true });
  for (const file of [INSTALL_HELPER, `${INSTALL_HELPER}.new`, INSTALL_HELPER_CONF]) rmSync(file, { force: true });
  return problems;
}

/**
 * What the daemons under `dir` leave in the kernel and on /run once they are
 * gone (what a reboot drops): their networks' bridges, the shims' sockets, the
 * mounts under `dir`. Returns what could not be removed.
 */
function dropKernelState(dir: string, netns?: string): string[] {
  const problems: string[] = [];
  // Bridges of the daemon's networks outlive it: a later daemon's network on the same subnet would lose its route.
  for (const bridge of leftoverBridges(dir, netns)) {
    const r = run("ip", [...(netns ? ["-n", netns] : []), "link", "delete", bridge]);
    if (r.status !== 0) problems.push(`ip link delete ${bridge}: ${r.stderr.trim()}`);
  }
  // A killed containerd-shim leaves its socket where containerd puts them all, /run/containerd/s/<sha256(address/ns/id)>.
  for (const socket of shimSockets(dir)) rmSync(socket, { force: true });
  for (const mount of mountsUnder(dir)) {
    if (run("umount", [mount]).status !== 0) {
      const lazy = run("umount", ["-l", mount]);
      if (lazy.status !== 0) problems.push(`umount ${mount}: ${lazy.stderr.trim()}`);
    }
  }
  return problems;
}

/** Bridges (br-<id>) of the networks recorded in the daemon's network store under `dir`; in `netns` when its daemon ran there. */
function leftoverBridges(dir: string, netns?: string): string[] {
  const store = join(dir, "root", "network", "files", "local-kv.db");
  if (!existsSync(store)) return [];
  const ids = new Set(readFileSync(store).toString("latin1").match(/[0-9a-f]{64}/g) ?? []);
  const candidates = [...ids].map((id) => `br-${id.slice(0, 12)}`);
  if (netns) {
    const there = new Set(run("ip", ["-n", netns, "-o", "link", "show", "type", "bridge"]).stdout.split("\n").map((line) => line.split(": ")[1]?.split("@")[0]));
    return candidates.filter((bridge) => there.has(bridge));
  }
  return candidates.filter((bridge) => {
    try {
      return readlinkSync(`/sys/class/net/${bridge}`).length > 0 && existsSync(`/sys/class/net/${bridge}/bridge`);
    } catch {
      return false;
    }
  });
}

/** The shim sockets of the tasks recorded by the containerd under `dir`. */
function shimSockets(dir: string): string[] {
  const tasks = join(dir, "containerd", "state", "io.containerd.runtime.v2.task");
  const address = join(dir, "containerd.sock");
  return safeReaddir(tasks).flatMap((ns) =>
    safeReaddir(join(tasks, ns)).map((id) => join("/run/containerd/s", createHash("sha256").update(join(address, ns, id)).digest("hex"))),
  );
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * Takes the machine-wide lock (the user, groups and sudoers file have fixed
 * names, so one host runs at a time): waits for a running host's stop, then
 * removes whatever a run that never stopped left behind.
 */
async function acquireLock(trackingRoot: string): Promise<{ release(): Promise<void> }> {
  const flock = requireCommand("flock", "util-linux");
  // flock holds the lock for as long as its `cat` reads our pipe: until release(), or this process's death.
  const child = spawn(flock, ["-x", "-w", String(LOCK_WAIT_S), LOCK_FILE, "-c", "echo locked && exec cat >/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const locked = await new Promise<boolean>((resolve) => {
    child.stdout.once("data", () => resolve(true));
    child.once("close", () => resolve(false));
    child.once("error", (err) => {
      stderr += err.message;
      resolve(false);
    });
  });
  if (!locked) {
    throw new Error(
      `timed out after ${LOCK_WAIT_S} s waiting for the other test Docker host to stop (${readState() ?? "no state"}; lock ${LOCK_FILE}): the test user and groups have fixed names, one host runs at a time ${stderr.trim()}`,
    );
  }
  // The lock must not keep this process alive (a test that forgets stop() still ends; the lock goes with it).
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
  const release = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.ref();
    child.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
  };
  try {
    const state = readState();
    const problems = await cleanUp(state?.dir.startsWith(TEMP_PREFIX) ? state.dir : undefined, trackingRoot);
    if (problems.length > 0) {
      throw new Error(`could not clean up what a previous test Docker host left (${JSON.stringify(state)}; ${STATE_FILE}):\n- ${problems.join("\n- ")}`);
    }
    rmSync(STATE_FILE, { force: true });
  } catch (err) {
    await release();
    throw err;
  }
  return { release };
}

/** The test host running on this machine now (any process's): its owner's pid and its temp folder. */
export function runningHostOnMachine(): { pid: number; dir: string } | undefined {
  return readState();
}

function readState(): { pid: number; dir: string } | undefined {
  try {
    const state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as { pid?: unknown; dir?: unknown };
    return typeof state.dir === "string" ? { pid: Number(state.pid), dir: state.dir } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A one-binary image: busybox-static's busybox (a static binary runs in an
 * empty image) with `files` beside it, running `cmd` by default.
 */
export function importBusyboxImage(host: DockerHost, image: string, cmd: string[], files: Record<string, string> = {}): void {
  docker(["import", "-c", `CMD ${JSON.stringify(cmd)}`, "-", image], { host, input: busyboxRootfsTar(files) });
}

/** An image's root file system as a tar stream, for `docker import`: busybox-static as /bin/busybox and /bin/sh, and `files` (path: text). */
export function busyboxRootfsTar(files: Record<string, string> = {}): Buffer {
  const busybox = requireCommand("busybox", "busybox-static");
  const ldd = spawnSync("ldd", [busybox], { encoding: "utf8" });
  if (ldd.status === 0) throw new Error(`${busybox} is dynamically linked; this test needs busybox-static's (apt-get install busybox-static)`);
  const dir = tempDir("bbdk-image");
  const root = dir.path;
  try {
    mkdirSync(join(root, "bin"));
    writeFileSync(join(root, "bin", "busybox"), readFileSync(busybox), { mode: 0o755 });
    symlinkSync("busybox", join(root, "bin", "sh"));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, dirname(path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 64 * 1024 * 1024 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
    return tar.stdout;
  } finally {
    dir.remove();
  }
}
