// A server's boot under the real systemd (Debian's, PID 1 of its own PID
// namespace), for the tests of what the program installs to run at boot.
//
// The server is a network namespace of a link test (its "network card") and a
// root folder of its own (its "disk"): the machine's /usr read-only, an /etc of
// its own that starts nearly empty (so nothing of this machine's services is
// enabled there, only what the test installs) and survives each power cut,
// fresh /run and /tmp at each boot (tmpfs, as on a server). Folders of the test
// are bound at the same path inside, so the files the program renders there
// (the link's config) are where they say. systemd sees cgroups of its own, in
// a cgroup namespace under one folder per hierarchy, removed at the end.
// Debian's units a test enables (enableUnit) run as on a server: cron,
// containerd and Docker among them.
//
// A power cut is SIGKILL to that PID 1: every process of the boot dies with
// it (wireguard-go among them, so its interface goes), the mounts go with the
// mount namespace; the test resets what the kernel keeps per network
// namespace (a sysctl) as a real reboot would.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { shellQuote } from "../../infra/server/render.js";
import { cgroupPids, cgroupTree } from "./docker-host.js";
import { requireCommand, waitFor } from "./system.js";

const CGROUP_FS = "/sys/fs/cgroup";
const SYSTEMD = "/usr/lib/systemd/systemd";

/** What of this machine's /etc the boot needs: users, name lookup, the dynamic linker's cache, Debian's alternatives (iptables). */
const ETC_FILES = ["passwd", "group", "shadow", "gshadow", "nsswitch.conf", "hosts", "resolv.conf", "ld.so.cache", "ld.so.conf", "login.defs", "alternatives"];

export interface ServerDisk {
  /** The server's root folder. */
  root: string;
  /** The server's network namespace (ip netns). */
  ns: string;
  /** Folders of this machine bound at the same path inside. */
  binds: string[];
}

export interface BootedServer {
  /** systemd's PID, as this machine sees it. */
  pid: number;
  /** Runs argv on the booted server (its namespaces and root), as root; killed after timeoutMs (default 120 s). */
  run(argv: string[], input?: string | Buffer, timeoutMs?: number): SpawnSyncReturns<string>;
  /** `systemctl show <unit> -p <property> --value` on the server. */
  property(unit: string, property: string): string;
  /** Kills every process of the boot at once; resolves once they are gone. */
  powerCut(): Promise<void>;
  /**
   * A clean shutdown: `systemctl poweroff`, systemd stopping every unit in its
   * order (Docker its containers), then its PID 1 exits. Resolves once every
   * process of the boot is gone; one not down within `timeoutMs` is cut and throws.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** A server's disk: its root folder with an /etc of its own, nearly empty. */
export function serverDisk(root: string, ns: string, binds: string[]): ServerDisk {
  requireCommand("systemctl", "systemd");
  requireCommand("nsenter", "util-linux");
  if (!existsSync(SYSTEMD)) throw new Error(`${SYSTEMD} is missing: apt-get install systemd`);
  // var/log/journal: the journal kept across boots, as on Debian 12 (whose systemd makes that folder).
  for (const d of ["usr", "etc/systemd/system", "etc/sysctl.d", "var/lib", "var/log/journal", "proc", "sys", "dev", "run", "tmp", "root", "srv"]) mkdirSync(join(root, d), { recursive: true });
  const links: [string, string][] = [["bin", "usr/bin"], ["sbin", "usr/sbin"], ["lib", "usr/lib"], ["lib64", "usr/lib64"], ["etc/os-release", "../usr/lib/os-release"], ["var/run", "../run"]];
  for (const [link, target] of links) if (!existsSync(join(root, link))) symlinkSync(target, join(root, link));
  // No login prompt: /dev is this machine's, and a console getty would take this machine's console.
  if (!existsSync(join(root, "etc/systemd/system/getty.target"))) symlinkSync("/dev/null", join(root, "etc/systemd/system/getty.target"));
  const disk = { root, ns, binds };
  copyEtc(disk, ETC_FILES);
  // Empty: systemd gives this boot a machine id of its own (and leaves the file as it is).
  writeFileSync(join(root, "etc", "machine-id"), "");
  return disk;
}

/** Copies more of this machine's /etc onto the disk (files or folders, by their names under /etc): what a server set up like this one has. */
export function copyEtc(disk: ServerDisk, names: string[]): void {
  for (const f of names) if (existsSync(join("/etc", f))) cpSync(join("/etc", f), join(disk.root, "etc", f), { recursive: true, verbatimSymlinks: true });
}

/** Enables a unit on the disk, as `systemctl enable` would: Debian's (under /usr/lib/systemd/system) or one in the disk's /etc/systemd/system. */
export function enableUnit(disk: ServerDisk, unit: string, wantedBy = "multi-user.target"): void {
  const wants = join(disk.root, "etc/systemd/system", `${wantedBy}.wants`);
  mkdirSync(wants, { recursive: true });
  const own = `/etc/systemd/system/${unit}`;
  symlinkSync(existsSync(join(disk.root, own)) ? own : `/usr/lib/systemd/system/${unit}`, join(wants, unit));
}

/** The mounts of one boot, then systemd: run in the boot's own mount, PID, UTS and cgroup namespaces, in the server's network namespace. */
function bootScript(disk: ServerDisk): string {
  const q = shellQuote;
  return [
    "set -euo pipefail",
    `R=${q(disk.root)}`,
    // The root a mount point of its own, as a server's is (dockerd looks for the mount its data root is on).
    'mount --bind "$R" "$R"',
    'mount --bind /usr "$R/usr"',
    'mount -o remount,bind,ro "$R/usr"',
    'mount -t proc proc "$R/proc"',
    // A sysfs of this network namespace, and cgroup file systems mounted here: each shows this cgroup namespace's root.
    'mount -t sysfs sysfs "$R/sys"',
    // cgroup v2 alone: one file system. v1 or hybrid (this machine's): a tmpfs with each hierarchy mounted in it.
    `if [[ -e ${CGROUP_FS}/cgroup.controllers ]]; then mount -t cgroup2 cgroup2 "$R${CGROUP_FS}"; else`,
    `  mount -t tmpfs -o mode=755 tmpfs "$R${CGROUP_FS}"`,
    "  while read -r _ at type opts _; do",
    `    [[ $at == ${CGROUP_FS}/* ]] || continue`,
    '    mkdir -p "$R$at"',
    '    if [[ $type == cgroup2 ]]; then mount -t cgroup2 cgroup2 "$R$at"; else',
    '      opts=${opts#rw,}; opts=${opts#relatime,}; mount -t cgroup -o "$opts" cgroup "$R$at"',
    "    fi",
    "  done < <(grep -E ' cgroup2? ' /proc/self/mounts)",
    "fi",
    'mount --rbind /dev "$R/dev"',
    'mount -t tmpfs -o mode=755 tmpfs "$R/run"',
    'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"',
    // After /run and /tmp: a folder of the test's under /tmp shows through the boot's own /tmp.
    ...disk.binds.map((d) => `mkdir -p "$R"${q(d)} && mount --bind ${q(d)} "$R"${q(d)}`),
    // The disk becomes the namespace's root (pivot_root, not chroot), and this machine's root is let go:
    // a chroot would leave it the namespace's root, and runc's pivot_root for a container would then
    // give the container this machine's whole file system instead of its image.
    'mkdir -p "$R/.oldroot"',
    'cd "$R"',
    "pivot_root . .oldroot",
    `exec chroot . /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot && exec /usr/bin/env -i container=bbaegok-test ${SYSTEMD} --unit=multi-user.target --log-target=journal'`,
    "",
  ].join("\n");
}

/** This boot's cgroup in every hierarchy (created), so systemd's own go beneath it and are removed with it. */
function bootCgroups(name: string): string[] {
  // cgroup v2 alone: the one hierarchy is the root (its folders are cgroups). v1 or hybrid: a hierarchy per folder.
  const hierarchies = existsSync(join(CGROUP_FS, "cgroup.controllers"))
    ? [CGROUP_FS]
    : readdirSync(CGROUP_FS)
        .map((h) => join(CGROUP_FS, h))
        .filter((h) => existsSync(join(h, "cgroup.procs")));
  return hierarchies.map((h) => {
    const d = join(h, name);
    mkdirSync(d, { recursive: true });
    return d;
  });
}

/** Boots the server: resolves once its systemd answers, while the boot's units still start. */
export async function bootServer(disk: ServerDisk, name: string): Promise<BootedServer> {
  const cgroups = bootCgroups(name);
  const script = join(disk.root, "..", `${name.replace(/\//g, "-")}-boot.sh`);
  writeFileSync(script, bootScript(disk), { mode: 0o700 });
  const enterCgroups = cgroups.map((d) => `echo $$ > '${d}/cgroup.procs'`).join("; ");
  const child: ChildProcess = spawn(
    "nsenter",
    [`--net=/run/netns/${disk.ns}`, "--", "bash", "-c", `${enterCgroups}; exec unshare --pid --fork --mount --uts --cgroup --propagation private bash '${script}'`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let pid = 0;
  /** The power cut: SIGKILL to PID 1 ends every process of the boot (or to unshare, before systemd runs); then its cgroups go. */
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid > 0 ? pid : child.pid!, "SIGKILL");
    await exited;
    // The kernel frees the namespace's processes after its init: the cgroups empty a little later.
    await waitFor("the boot's processes to be gone", () => cgroups.every((d) => cgroupPids(d).length === 0), 10_000, 50);
    for (const d of cgroups) for (const c of cgroupTree(d)) rmdirSync(c);
  };
  const run = (argv: string[], input?: string | Buffer, timeoutMs = 120_000) =>
    spawnSync("nsenter", ["-t", String(pid), "-m", "-p", "-n", "-u", "-r", "-w", "--", "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin", "HOME=/root", ...argv], {
      encoding: "utf8",
      input,
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      maxBuffer: 256 * 1024 * 1024,
    });
  try {
    // unshare forks the boot script, which execs systemd: unshare's one child.
    await waitFor("systemd to start", () => {
      if (child.exitCode !== null) throw new Error(`the boot ended before systemd started (exit ${child.exitCode}):\n${output}`);
      const children = `/proc/${child.pid}/task/${child.pid}/children`;
      pid = Number((existsSync(children) ? readFileSync(children, "utf8").trim() : "").split(/\s+/)[0] || 0);
      return pid > 0 && readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "systemd";
    }, 10_000, 50);
    // systemd answers once its manager is up; the units' starts go on (the tests wait for the ones they look at).
    await waitFor("systemd to answer", () => /^(starting|running|degraded)$/.test(run(["systemctl", "is-system-running"]).stdout.trim()), 30_000, 100);
  } catch (err) {
    // A boot that did not come up is cut too: nothing of it outlives the test.
    await stop();
    throw err;
  }
  return {
    pid,
    run,
    property: (unit, property) => run(["systemctl", "show", unit, "-p", property, "--value"]).stdout.trim(),
    powerCut: stop,
    shutdown: async (timeoutMs = 180_000) => {
      const asked = run(["systemctl", "poweroff"]);
      if (asked.status !== 0) throw new Error(`systemctl poweroff: ${asked.stderr}`);
      let timer: NodeJS.Timeout | undefined;
      const down = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
      clearTimeout(timer);
      await stop();
      if (!down) throw new Error(`the server was not down ${timeoutMs / 1000} s after systemctl poweroff: cut`);
    },
  };
}
