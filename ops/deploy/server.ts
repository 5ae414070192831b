// ServerControl on the home server, for npm run status: every question is a
// shell script run by a Shell, which is `ssh` (BatchMode, the stack's user,
// host and port, the pinned host key) in production and a local shell in
// tests. Docker is reached only through `docker inspect` and `docker exec
// <proxy>`; the deploy history (root's) through the install helper's `read`.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { SLOTS } from "../../infra/app/render.js";
import { INTERNAL_PORT, proxyContainerName, UPSTREAM_HEADER, type ProxyEndpoint } from "../../infra/proxy/contract.js";
import { slotUpstreamAddress, type AddressMap } from "../../infra/proxy/render.js";
import { asRootCommand, serverProxyDir, shellQuote, SSH_CONTROL_DIR, sshClientOptions, stackNames, type Privilege } from "../../infra/server/render.js";
import type { ReplicaStatus } from "../../infra/replica/render.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import type { DeployRecord, HealthCheckRun, ServerControl, SlotHealth } from "./orchestrator.js";

export interface ShellResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Where the scripts run: the server over SSH, or this machine in tests. */
export interface Shell {
  /** For messages: `deploy@home.bbaegok.kr:22022`. */
  readonly where: string;
  /** Starts `script` under `sh`; the caller owns stdin/stdout/stderr. */
  start(script: string): ChildProcessWithoutNullStreams;
}

/** Runs `script` to its end with `stdin` as its input; `progress`, when given, gets each line of its stderr as it comes (a long run's log). */
export function runScript(shell: Shell, script: string, stdin = "", progress?: (line: string) => void): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const child = shell.start(script);
    let stdout = "";
    let stderr = "";
    let shown = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!progress) return;
      const end = stderr.lastIndexOf("\n") + 1;
      for (const line of stderr.slice(shown, end).split("\n")) if (line.trim()) progress(line);
      shown = Math.max(shown, end);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (progress) for (const line of stderr.slice(shown).split("\n")) if (line.trim()) progress(line);
      resolve({ status: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // A script that does not read its input closes the pipe early; that is not a failure.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

/** A shell on this machine (tests and benchmarks), with extra environment such as a PATH holding stand-ins. */
export function localShell(env: NodeJS.ProcessEnv = {}): Shell {
  return {
    where: "this machine",
    start: (script) => spawn("sh", ["-c", script], { env: { ...process.env, ...env }, stdio: "pipe" }),
  };
}

/**
 * The server over SSH with the operator's agent or the CI key: BatchMode (never
 * a prompt), strict host keys; a pinned `server.ssh.hostKey` is the only key accepted.
 */
export function sshShell(server: Pick<StackConfig["server"], "host" | "ssh">): Shell {
  const options = [...sshClientOptions(server), "-p", String(server.ssh.port)];
  mkdirSync(join(homedir(), SSH_CONTROL_DIR), { recursive: true, mode: 0o700 });
  const destination = `${server.ssh.user}@${server.host}`;
  return {
    where: `${destination}:${server.ssh.port}`,
    // ssh hands the remote command to the login shell as one string: quoted once, run by sh.
    start: (script) => spawn("ssh", [...options, destination, "--", `sh -c ${shellQuote(script)}`], { stdio: "pipe" }),
  };
}

export interface ServerControlOptions {
  stack: string;
  config: Pick<StackConfig, "service" | "server" | "domains" | "app" | "metabase" | "proxy">;
  /** The server's proxy: the owner stack's (a guest reads it from the owner's stack file or output). */
  proxy: Pick<ProxyEndpoint, "container" | "image" | "dir" | "internalPort">;
  shell: Shell;
  /** "sudo" on the server (an unprivileged deploy user); "none" where the shell already may write the files. */
  privilege: Privilege;
  /** Where nginx reaches a slot's fixed `ip:port`: itself on the server, stand-ins in tests. */
  address?: AddressMap;
}

type ProxyOwnerConfig = Pick<StackConfig, "service" | "server" | "proxy">;

/**
 * The server's proxy as a stack's deploy reaches it: the stack's own when it
 * owns the proxy, else its owner's, read from the owner's stack file (the
 * same names the owner exports as its `proxy` output).
 */
export function deployProxy(config: ProxyOwnerConfig, readOwner: (stack: string) => ProxyOwnerConfig): ServerControlOptions["proxy"] {
  const owner = config.proxy.mode === "owner" ? config : readOwner(config.proxy.ownerStack.split("/").pop()!);
  if (owner.proxy.mode !== "owner") throw new Error(`the proxy's owner stack does not own the proxy (its proxy.mode is ${owner.proxy.mode})`);
  return { container: proxyContainerName(owner.service), image: owner.proxy.image, dir: serverProxyDir(owner.server.dataDir), internalPort: INTERNAL_PORT };
}

/** The health format `docker inspect` prints: `<status>/<health>`, health empty without a health check. */
const HEALTH_FORMAT = "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}";

/** Whether `docker inspect` found the container: false when there is none; throws on any other failure. */
function inspected(result: ShellResult): boolean {
  if (result.status === 0) return true;
  if (/no such (object|container)/i.test(result.stderr)) return false;
  throw new Error(`docker inspect failed (${result.status}): ${result.stderr.trim()}`);
}

/** Reads `docker inspect`'s answer for one container. */
export function parseHealth(result: ShellResult): SlotHealth {
  if (!inspected(result)) return "missing";
  const [status, health] = result.stdout.trim().split("/");
  if (status !== "running") return "stopped";
  if (health === "healthy" || health === "unhealthy" || health === "starting") return health;
  // The slots always have a health check; a container without one is judged by the smoke checks alone.
  return "healthy";
}

/** Reads `docker inspect -f '{{json .State.Health}}'`: its last run, or undefined without a health check or a run. */
export function parseLastHealthCheck(result: ShellResult): HealthCheckRun | undefined {
  if (!inspected(result)) return undefined;
  const health = JSON.parse(result.stdout) as { Log?: { ExitCode?: number; Output?: string }[] } | null;
  const last = health?.Log?.at(-1);
  if (!last) return undefined;
  // Docker keeps 4 KiB of it; the first lines say why.
  const output = (last.Output ?? "").trim().split("\n").map((l) => l.trim()).filter(Boolean).join(" / ");
  return { exitCode: last.ExitCode ?? -1, output: output.length > 500 ? `${output.slice(0, 500)}…` : output };
}

/** Reads a `curl -D -` header dump: the last response's status and headers (lower-case names). */
export function parseResponseHead(head: string): { status: number; headers: Map<string, string> } {
  const blocks = head.replace(/\r/g, "").trim().split(/\n\n+/);
  const lines = (blocks[blocks.length - 1] ?? "").split("\n");
  const status = Number(/^HTTP\/\S+ (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const at = line.indexOf(":");
    if (at > 0) headers.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  return { status, headers };
}

/** Parses the history file's lines, skipping any that are not a record (a torn write, a hand edit). */
export function parseHistory(text: string): DeployRecord[] {
  const records: DeployRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const value = JSON.parse(line) as DeployRecord;
      if (typeof value.at === "string" && typeof value.action === "string") records.push(value);
    } catch {
      // not a record
    }
  }
  return records;
}

export class SshServerControl implements ServerControl {
  private readonly history: string;

  constructor(private readonly opts: ServerControlOptions) {
    const { stack, config } = opts;
    this.history = stackNames(config.service, stack, config.server.dataDir).deployHistory;
  }

  private run(script: string, stdin = ""): Promise<ShellResult> {
    return runScript(this.opts.shell, script, stdin);
  }

  /** The address nginx proxies `slot` to (its fixed address on the edge network), as nginx's `$upstream_addr` names it. */
  slotAddress(slot: Slot): string {
    return slotUpstreamAddress(this.opts.config, slot, this.opts.address);
  }

  async health(container: string): Promise<SlotHealth> {
    return parseHealth(await this.run(`docker inspect -f ${shellQuote(HEALTH_FORMAT)} ${shellQuote(container)}`));
  }

  async lastHealthCheck(container: string): Promise<HealthCheckRun | undefined> {
    return parseLastHealthCheck(await this.run(`docker inspect -f ${shellQuote("{{json .State.Health}}")} ${shellQuote(container)}`));
  }

  /** GET through the proxy's internal port, from inside the proxy container (the port is never published). */
  private async throughProxy(path: string, headers: Record<string, string>) {
    const flags = Object.entries(headers).map(([name, value]) => `-H ${shellQuote(`${name}: ${value}`)}`);
    const url = `http://127.0.0.1:${this.opts.proxy.internalPort}${path}`;
    const script = `docker exec ${shellQuote(this.opts.proxy.container)} curl -sS --max-time 15 -o /dev/null -D - ${flags.join(" ")} ${shellQuote(url)}`;
    const result = await this.run(script);
    if (result.status !== 0) throw new Error(`GET ${path} through the proxy ${this.opts.proxy.container} did not complete: ${(result.stderr || result.stdout).trim()}`);
    return parseResponseHead(result.stdout);
  }

  /**
   * Asks the internal route without a slot header, which follows the same
   * upstream file as the public route (the public route itself takes only
   * Cloudflare's addresses). nginx names the address it proxied to; a 502 or
   * 504 is nginx's own answer, not the slot's.
   */
  async servedBy(hostHeader: string): Promise<Slot | undefined> {
    const response = await this.throughProxy(this.opts.config.app.healthCheck.path, { Host: hostHeader });
    if (response.status === 0 || response.status === 502 || response.status === 504) return undefined;
    // nginx lists every address it tried ("a, b"; "a : b" across internal redirects): the last one answered.
    const upstream = response.headers.get(UPSTREAM_HEADER.toLowerCase())?.split(/,\s*|\s+:\s+/).pop()?.trim();
    return SLOTS.find((slot) => this.slotAddress(slot) === upstream);
  }

  /** `replica.sh status` as root (through the install helper with sudo): its one JSON line. */
  async replication(script: string): Promise<ReplicaStatus> {
    const result = await this.run(this.opts.privilege === "sudo" ? asRootCommand("run", script, "status") : `${shellQuote(script)} status`);
    const line = result.stdout.trim().split("\n").pop() ?? "";
    try {
      if (result.status !== 0) throw new Error(`exit ${result.status}`);
      return JSON.parse(line) as ReplicaStatus;
    } catch (err) {
      throw new Error(`${script} status on ${this.opts.shell.where} did not answer (${(err as Error).message}): ${(result.stderr || result.stdout).trim().split("\n").pop() ?? ""}`);
    }
  }

  async readHistory(limit: number): Promise<DeployRecord[]> {
    const file = shellQuote(this.history);
    // Through the helper: the stack's directory may be closed to the deploy user (it holds the secrets directory); the history is 0644.
    const script =
      this.opts.privilege === "sudo"
        ? `if ${asRootCommand("exists", this.history)}; then ${asRootCommand("read", this.history)}; fi`
        : `if [ -e ${file} ]; then cat ${file}; fi`;
    const result = await this.run(script);
    if (result.status !== 0) throw new Error(`cannot read ${this.history} on ${this.opts.shell.where}: ${result.stderr.trim()}`);
    return parseHistory(result.stdout).slice(-Math.max(1, Math.floor(limit)));
  }
}
