// The committed stacks, pointed at the test host of test/support/docker-host.ts
// instead of the home server: the only changes are the ones a new server needs
// (address, SSH port, user, host key, data folder), and a shorter health-check
// start period and deploy timeout, so a release that never turns healthy is
// given up in a minute, not five. Everything else is the committed file,
// Cloudflare-only proxy included: the tests reach it from an address in
// Cloudflare's ranges (see CLOUDFLARE_CLIENT).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import type { EngineWorkspace } from "../../engine/workspace.js";
import { PROJECT } from "../../stacks/config/schema.js";
import type { DockerHost } from "./docker-host.js";

export function pointStackAtHost(projectDir: string, stack: string, host: DockerHost): void {
  const path = join(projectDir, `Pulumi.${stack}.yaml`);
  const doc = parseDocument(readFileSync(path, "utf8"));
  doc.setIn(["config", `${PROJECT}:server`, "host"], host.host);
  doc.setIn(["config", `${PROJECT}:server`, "ssh"], { user: host.user, port: host.sshPort, hostKey: host.hostKey });
  doc.setIn(["config", `${PROJECT}:server`, "dataDir"], host.dataDir);
  doc.setIn(["config", `${PROJECT}:app`, "healthCheck", "startPeriod"], "10s");
  doc.setIn(["config", `${PROJECT}:app`, "deployTimeout"], "90s");
  writeFileSync(path, doc.toString());
}

/** Changes one value of a stack file in the workspace (as a pull request would). */
export function setStackValue(projectDir: string, stack: string, path: (string | number)[], value: unknown): void {
  const file = join(projectDir, `Pulumi.${stack}.yaml`);
  const doc = parseDocument(readFileSync(file, "utf8"));
  doc.setIn(["config", ...path], value);
  writeFileSync(file, doc.toString());
}

/** Staging on PostgreSQL (the committed file runs MariaDB): the image Metabase's database already runs, so no other is built. */
export function stagingOnPostgres(projectDir: string): void {
  setStackValue(projectDir, "staging", [`${PROJECT}:database`, "engine"], "postgres");
  setStackValue(projectDir, "staging", [`${PROJECT}:database`, "version"], "16.13");
}

/** The CLI in the workspace with the operator's SSH agent, output returned. */
export function pulumi(ws: EngineWorkspace, args: string[], timeoutMs = 15 * 60_000) {
  return spawnSync(join(ws.env["PATH"]!.split(":")[0]!, "pulumi"), [...args, "--non-interactive"], { cwd: ws.projectDir, env: ws.env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs });
}

/** The same, without blocking: for runs under load (the load's requests need the event loop). */
export function pulumiAsync(ws: EngineWorkspace, args: string[], cwd = ws.projectDir): Promise<{ status: number; stdout: string; stderr: string }> {
  return collected(spawn(join(ws.env["PATH"]!.split(":")[0]!, "pulumi"), [...args, "--non-interactive"], { cwd, env: ws.env })).done;
}

/**
 * A child's output as it comes, and its status with all of it: "exit" may come
 * before the last of its pipes is read (a command's last line was seen missing),
 * so the end of both is waited for too, up to 10 s (a grandchild that
 * inherited them, such as an SSH master, may keep them open).
 */
function collected(child: ChildProcessWithoutNullStreams): { stdout(): string; done: Promise<{ status: number; stdout: string; stderr: string }> } {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const ended = (stream: NodeJS.ReadableStream) => new Promise<void>((resolve) => (stream.readable ? stream.once("end", () => resolve()) : resolve()));
  const drained = Promise.all([ended(child.stdout), ended(child.stderr)]);
  const done = new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
    child.once("exit", (code) => {
      let timer: NodeJS.Timeout | undefined;
      void Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 10_000)))]).then(() => {
        clearTimeout(timer);
        resolve({ status: code ?? -1, stdout, stderr });
      });
    }),
  );
  return { stdout: () => stdout, done };
}

/** An ops command (npm run deploy/rollback/status/promote…) from the workspace's project copy, without blocking (load can run meanwhile). */
export function opsAsync(ws: EngineWorkspace, script: string, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return opsSession(ws, script, args, false).done;
}

/**
 * An ops command as an operator's terminal runs it, in a process group of its
 * own; `hangUp()` kills the group (the command and its ssh) at once, as a
 * closed laptop or a dropped network ends it.
 */
export function opsSession(ws: EngineWorkspace, script: string, args: string[], ownGroup = true): { stdout(): string; done: Promise<{ status: number; stdout: string; stderr: string }>; hangUp(): Promise<void> } {
  const child = spawn(process.execPath, ["--import", "tsx", join(ws.projectDir, "ops", script), ...args], { cwd: ws.projectDir, env: ws.env, detached: ownGroup });
  const { stdout, done } = collected(child);
  return {
    stdout,
    done,
    hangUp: async () => {
      process.kill(-child.pid!, "SIGKILL");
      await done;
    },
  };
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * An address in Cloudflare's ranges (the cloudflare stand-in's, as the
 * offline plan's) put on this machine's loopback for the test, so a request
 * can come from "Cloudflare": the proxy only answers peers in those ranges.
 * Reached at the proxy container's own address (no NAT, iptables off, the
 * reply routes back through the bridge to the host).
 */
export const CLOUDFLARE_CLIENT = "173.245.48.7";

/** One file per test process using CLOUDFLARE_CLIENT, named by its pid: the address goes when the last one is done. */
const CLOUDFLARE_CLIENT_HOLDERS = join(tmpdir(), "bbaegok-test-cloudflare-client");

/** Puts CLOUDFLARE_CLIENT on loopback; returns what lets it go (removed once no other living test process holds it). */
export function addCloudflareClientAddress(): () => void {
  mkdirSync(CLOUDFLARE_CLIENT_HOLDERS, { recursive: true });
  const mine = join(CLOUDFLARE_CLIENT_HOLDERS, String(process.pid));
  writeFileSync(mine, "");
  const add = spawnSync("ip", ["addr", "add", `${CLOUDFLARE_CLIENT}/32`, "dev", "lo"], { encoding: "utf8" });
  if (add.status !== 0 && !/File exists|already assigned/.test(add.stderr)) throw new Error(`ip addr add ${CLOUDFLARE_CLIENT}/32 dev lo failed: ${add.stderr}`);
  return () => {
    rmSync(mine, { force: true });
    const alive = (pid: string) => {
      try {
        process.kill(Number(pid), 0);
        return true;
      } catch {
        return false;
      }
    };
    const holders = readdirSync(CLOUDFLARE_CLIENT_HOLDERS);
    for (const pid of holders.filter((p) => !alive(p))) rmSync(join(CLOUDFLARE_CLIENT_HOLDERS, pid), { force: true });
    // Another test file run at the same time still sends from it: leave it to that one.
    if (holders.some(alive)) return;
    spawnSync("ip", ["addr", "del", `${CLOUDFLARE_CLIENT}/32`, "dev", "lo"]);
  };
}

/**
 * An HTTPS request (GET unless `method` says POST) to the proxy with the given name in SNI and Host (the test's
 * certificates come from the stand-in CA): by default from CLOUDFLARE_CLIENT to
 * `address` (the proxy container's), or from anywhere to 127.0.0.1's published port.
 */
export function httpsGet(
  name: string,
  path = "/",
  options: { address?: string; localAddress?: string; host?: string; port?: number; timeoutMs?: number; method?: "GET" | "POST" } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: options.address ?? "127.0.0.1",
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        port: options.port ?? 443,
        path,
        method: options.method ?? "GET",
        servername: name,
        headers: { host: options.host ?? name },
        rejectUnauthorized: false,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`https://${name}${path}: no answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on("error", reject);
    req.end();
  });
}

export interface LoadAnswer {
  /** ms since the load started. */
  start: number;
  end: number;
  /** The slot and version that answered, or undefined when the request failed. */
  slot?: string;
  version?: string;
  error?: string;
}

/**
 * Continuous HTTPS keep-alive load on `name` through the proxy at `address`
 * from CLOUDFLARE_CLIENT, each answer recorded with its slot and version. A
 * request on a kept-alive connection nginx closed while idle (old workers do
 * at a reload) is sent again, as HTTP/1.1 clients and Cloudflare do; anything
 * else that is not a 200 counts as failed. A third of the requests take 300 ms.
 */
export function startLoad(address: () => string, name: string, workers = 4) {
  const agent = new Agent({ keepAlive: true, maxSockets: workers, rejectUnauthorized: false, servername: name, localAddress: CLOUDFLARE_CLIENT });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const answers: LoadAnswer[] = [];
  const requestsOn = new WeakMap<Socket, number>();
  let running = true;
  let retried = 0;
  const get = (path: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: address(), port: 443, path, agent, headers: { host: name }, timeout: 15_000 }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}: ${body.slice(0, 200)}`))));
      });
      let keptAlive = false;
      req.on("socket", (socket: Socket) => {
        const count = (requestsOn.get(socket) ?? 0) + 1;
        requestsOn.set(socket, count);
        keptAlive = count > 1;
      });
      req.on("timeout", () => req.destroy(new Error("no answer within 15 s")));
      req.on("error", (err: NodeJS.ErrnoException) => {
        if ((req.reusedSocket || keptAlive) && err.code === "ECONNRESET") {
          retried++;
          get(path).then(resolve, reject);
        } else reject(err);
      });
      req.end();
    });
  const loops = Array.from({ length: workers }, async () => {
    for (let n = 0; running; n++) {
      const start = now();
      try {
        const body = JSON.parse(await get(n % 3 === 0 ? "/slow?ms=300" : "/")) as { slot?: string; version?: string };
        answers.push({ start, end: now(), slot: body.slot, version: body.version });
      } catch (err) {
        answers.push({ start, end: now(), error: err instanceof Error ? err.message : String(err) });
      }
    }
  });
  return {
    answers,
    retried: () => retried,
    /** ms since the load started, on the answers' clock. */
    now,
    async stop(): Promise<LoadAnswer[]> {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return answers;
    },
  };
}
