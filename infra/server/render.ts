// Pure renderers for the server: how Docker and SSH are reached, how a file is
// installed atomically, and the names every stack's resources get.
// No Pulumi import: tested on its own and by real shells.
import { goDuration } from "../../stacks/config/rules.js";
import type { StackConfig } from "../../stacks/config/schema.js";

/** Quotes a string for POSIX sh, safe for any content. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** What reaches a server of the stack: its SSH address and pinned host key (the stack's `server`, or a replica's). */
export type ServerReach = Pick<StackConfig["server"], "host" | "ssh"> & { dockerSocket?: string | undefined };

/** The Docker provider's host: the local socket when Pulumi runs on the server, else SSH. */
export function dockerHost(server: ServerReach): string {
  if (server.dockerSocket) return `unix://${server.dockerSocket}`;
  return `ssh://${server.ssh.user}@${server.host}:${server.ssh.port}`;
}

/**
 * The options of every OpenSSH client the program and the ops commands start
 * (Docker's provider, deploy/rollback/status): never prompt (CI has no
 * terminal); one connection per server reused by every session of a run
 * (ControlMaster), so the Docker provider's many `docker system dial-stdio`
 * sessions do not each open a connection and meet sshd's MaxStartups; and
 * `server.ssh.hostKey` is the only key accepted, never a known_hosts file's
 * (given by KnownHostsCommand, so no file is written and the options are the
 * same on every machine: a change of them is a change of the provider's config).
 */
export function sshClientOptions(server: Pick<StackConfig["server"], "ssh">): string[] {
  // ssh refuses to start when the ControlPath's folder is missing: see ensureSshControlDir.
  return [
    ...["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30"],
    ...["-o", "ControlMaster=auto", "-o", "ControlPath=~/.ssh/bbaegok-%C", "-o", "ControlPersist=60"],
    ...["-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", `KnownHostsCommand=/bin/echo %H ${server.ssh.hostKey}`],
  ];
}

/** The folder of sshClientOptions' ControlPath (the operator's ~/.ssh), created 0700 when missing: ssh will not start without it. */
export const SSH_CONTROL_DIR = ".ssh";

export interface HealthCheck {
  tests: string[];
  interval: string;
  timeout: string;
  retries: number;
  startPeriod: string;
}

/** A container health check with its durations in the form Docker's provider reads back (`90s` → `1m30s`): no diff on the next run. */
export function dockerHealthCheck(check: HealthCheck): HealthCheck {
  return { ...check, interval: goDuration(check.interval), timeout: goDuration(check.timeout), startPeriod: goDuration(check.startPeriod) };
}

/** What every container, network, volume, cron file and log tag of a stack starts with: `<service>-<stack>`. */
export function containerPrefix(service: string, stack: string): string {
  return `${service}-${stack}`;
}

/**
 * The file in /etc/cron.d of one of the stack's jobs. Debian's cron reads
 * only names of letters, digits, `_` and `-` there (run-parts' rule) and
 * skips any other without a word, so a dot in the stack's name (Pulumi
 * allows one) becomes `_`.
 */
export function cronFilePath(service: string, stack: string, job: string): string {
  return `/etc/cron.d/${containerPrefix(service, stack).replaceAll(".", "_")}-${job}`;
}

/** The proxy's directory on the server: one per server, the owner stack's and every guest's alike. */
export function serverProxyDir(dataDir: string): string {
  return `${dataDir}/proxy`;
}

/**
 * Names of one stack's resources on the server; two stacks never share one.
 * The only place these strings are built: infra, ops and tests ask here.
 */
export function stackNames(service: string, stack: string, dataDir: string) {
  const prefix = containerPrefix(service, stack);
  return {
    prefix,
    /** The database container (`db` on the data network), as backups and restores `docker exec` it. */
    databaseContainer: `${prefix}-db`,
    /** The database's protected, retained volume. */
    databaseVolume: `${prefix}-db-data`,
    /** Metabase's own PostgreSQL (its application database). */
    metabaseDatabaseContainer: `${prefix}-metabase-db`,
    /** The proxy's directory on the server (see serverProxyDir). */
    proxyDir: serverProxyDir(dataDir),
    /** The network the proxy shares with the app slots. */
    edgeNetwork: `${prefix}-edge`,
    /** Internal network: app slots, database and Metabase; no route outside. */
    dataNetwork: `${prefix}-data`,
    /** This stack's directory on the server. */
    stackDir: `${dataDir}/${stack}`,
    secretsDir: `${dataDir}/${stack}/secrets`,
    /** The stack's deploy history: one JSON object per line, appended by every rollout, mode 0644. */
    deployHistory: `${dataDir}/${stack}/deploy-history.jsonl`,
  };
}
export type StackNames = ReturnType<typeof stackNames>;

/** What publicHostNames needs of a stack's config (the DNS component passes just this). */
export interface PublicHostsConfig {
  domains: { api: string; metabase?: string | undefined };
  metabase: { enabled: boolean };
}

/**
 * The stack's public host names by role: the API's, and Metabase's when it is
 * served. DNS records, the certificate, the proxy's sites and Origin Pulls all
 * take them from here.
 */
export function publicHostNames(config: PublicHostsConfig): { api: string; metabase?: string } {
  return config.metabase.enabled && config.domains.metabase ? { api: config.domains.api, metabase: config.domains.metabase } : { api: config.domains.api };
}

/** The same names as a list, the API first. */
export function publicHosts(config: PublicHostsConfig): string[] {
  const names = publicHostNames(config);
  return names.metabase ? [names.api, names.metabase] : [names.api];
}

/** The Host header the health and smoke checks and status send the app: app.healthCheck.hostHeader, else the API's name. */
export function healthCheckHost(config: Pick<StackConfig, "app" | "domains">): string {
  return config.app.healthCheck.hostHeader ?? config.domains.api;
}

export interface FileSpec {
  /** Absolute path on the server. */
  path: string;
  /** Octal permission bits, e.g. "0600". */
  mode: string;
  /** `user:group`, names or numeric ids. */
  owner: string;
  /**
   * The mode of the file's own directory, when others must list it (e.g.
   * "0755" for a folder a container's entrypoint reads as another user).
   * @default the directory keeps the mode it was created with, 0700
   */
  dirMode?: string;
}

const ROOT_OWNERS = new Set(["root:root", "0:0"]);

export function validateFileSpec(spec: FileSpec): void {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(spec.path) || spec.path.includes("/../") || spec.path.endsWith("/")) {
    throw new Error(`server file path "${spec.path}" must be an absolute file path of letters, digits and ._-/`);
  }
  if (!/^0[0-7]{3}$/.test(spec.mode)) throw new Error(`server file ${spec.path}: mode "${spec.mode}" must be octal like "0640"`);
  if (!/^[a-z0-9_-]+:[a-z0-9_-]+$/.test(spec.owner)) throw new Error(`server file ${spec.path}: owner "${spec.owner}" must be "user:group"`);
  if (spec.dirMode !== undefined && !/^0[0-7]{3}$/.test(spec.dirMode)) throw new Error(`server file ${spec.path}: dirMode "${spec.dirMode}" must be octal like "0755"`);
}

/**
 * The SSH user is an unprivileged deploy user whose only sudo rule is the
 * install helper (see the README's host preparation); "none" is for running
 * as root, as tests do.
 */
export type Privilege = "sudo" | "none";

/**
 * Where the operator installs the helper (`infra/server/bbaegok-install`, the
 * one command the deploy user may run as root): it installs, removes, appends
 * to, reads and runs files only under `server.dataDir` and
 * `/etc/cron.d/<service>-*`, refusing `..` and symlinks.
 */
export const INSTALL_HELPER = "/usr/local/sbin/bbaegok-install";
/** The helper's source, relative to the repository (what the operator copies to INSTALL_HELPER). */
export const INSTALL_HELPER_SOURCE = "infra/server/bbaegok-install";

/** The helper through sudo: `verb` on `path`, every argument quoted. */
export function asRootCommand(verb: "install" | "remove" | "append" | "exists" | "read" | "run", path: string, ...args: string[]): string {
  return `sudo -n ${INSTALL_HELPER} ${verb} ${[path, ...args].map(shellQuote).join(" ")}`;
}

/**
 * Runs `script` as root through the helper: installs it at `path` (root's,
 * 0700) from the command's own text, then runs it with the command's stdin.
 * A change of the script is a change of the command, so it runs again.
 */
export function runScriptAsRootCommand(path: string, script: string): string {
  return `printf '%s' ${shellQuote(script.startsWith("#!") ? script : `#!/bin/sh\n${script}`)} | ${asRootCommand("install", path, "0700", "root:root")} && ${asRootCommand("run", path)}`;
}

/**
 * A shell command that installs the file read from stdin: written to a temp file
 * beside the target with its final mode and owner, then renamed over it, so a
 * reader never sees a half-written file or, for secrets, a moment of wider mode.
 * Directories are created private (umask 077); a file for another user than
 * root (a container's uid reading its secret through a bind mount) gets
 * traverse permission (o+x, never read) on every directory above it, or its
 * user could not reach it. Idempotent: running it twice leaves the same file.
 */
export function installFileCommand(spec: FileSpec, privilege: Privilege = "sudo"): string {
  validateFileSpec(spec);
  // The helper does the same, as root, and only where the stack's files belong.
  if (privilege === "sudo") return asRootCommand("install", spec.path, spec.mode, spec.owner, ...(spec.dirMode ? [spec.dirMode] : []));
  const dir = spec.path.slice(0, spec.path.lastIndexOf("/")) || "/";
  const base = spec.path.slice(spec.path.lastIndexOf("/") + 1);
  const reachable = !ROOT_OWNERS.has(spec.owner) || spec.dirMode !== undefined;
  const script = [
    "set -eu",
    "umask 077",
    `mkdir -p ${shellQuote(dir)}`,
    ...(spec.dirMode ? [`chmod ${spec.dirMode} ${shellQuote(dir)}`] : []),
    ...(reachable ? [`d=${shellQuote(dir)}`, `while :; do chmod o+x "$d"; [ "$d" = / ] && break; d=$(dirname "$d"); done`] : []),
    `tmp=$(mktemp ${shellQuote(`${dir}/.${base}.XXXXXX`)})`,
    `trap 'rm -f "$tmp"' EXIT`,
    `cat > "$tmp"`,
    `chown ${shellQuote(spec.owner)} "$tmp"`,
    `chmod ${spec.mode} "$tmp"`,
    `mv -f "$tmp" ${shellQuote(spec.path)}`,
    "trap - EXIT",
  ].join("\n");
  return `sh -c ${shellQuote(script)}`;
}

/** Removes the file; succeeds when it is already gone. */
export function removeFileCommand(spec: FileSpec, privilege: Privilege = "sudo"): string {
  validateFileSpec(spec);
  return privilege === "sudo" ? asRootCommand("remove", spec.path) : `rm -f -- ${shellQuote(spec.path)}`;
}

/**
 * Host numbers (last octet) on a stack's edge /24. The proxy reaches the app
 * slots and Metabase at these fixed addresses, so it never resolves a name: a
 * stopped or missing container cannot stop nginx from starting or reloading
 * (an address needs no lookup), and nginx can keep upstream connections open
 * (a name resolved per request cannot). They sit below .128 because Docker
 * hands out dynamic addresses (the proxy joining a guest's network, any other
 * container) only from the upper half, `ipRange`, so none can take them.
 */
export const EDGE_HOST = { gateway: 1, blue: 11, green: 12, metabase: 20 } as const;

/** A stack's edge network addressing from its `server.edgeSubnet` (a /24, validated by the schema). */
export function edgeAddressing(subnet: string) {
  const match = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.0\/24$/.exec(subnet);
  if (!match) throw new Error(`edge subnet "${subnet}" must be an IPv4 /24 such as 172.30.10.0/24`);
  const at = (host: number) => `${match[1]}.${host}`;
  return {
    subnet,
    gateway: at(EDGE_HOST.gateway),
    /** Where Docker picks dynamic addresses: the upper half, clear of the fixed ones. */
    ipRange: `${match[1]}.128/25`,
    blue: at(EDGE_HOST.blue),
    green: at(EDGE_HOST.green),
    metabase: at(EDGE_HOST.metabase),
  };
}
export type EdgeAddressing = ReturnType<typeof edgeAddressing>;
