// npm run bench:proxy — what the proxy costs: requests/s and p50/p99 latency
// of small responses through real nginx running the rendered production
// configuration (HTTPS, as the configuration serves the site), and straight to
// the same upstream, in one run, with their ratio.
//
// Everything is on 127.0.0.1 and stops by itself: a small HTTP upstream in its
// own process, nginx with prod's rendered nginx.conf and conf.d/upstreams
// files (the loopback twin of the server's layout: upstream groups with
// kept-alive connections), and wrk as the load generator. Three differences
// from the server, all forced by loopback: every slot's fixed address on the
// edge network becomes the upstream's 127.0.0.1:<port>; the API's host name is
// `localhost` (wrk sends the URL's host as the TLS name and cannot be pointed
// elsewhere; `localhost` resolves here without touching /etc/hosts); and
// 127.0.0.1 stands in for Cloudflare's ranges.
//
// Two upstreams are measured, each through the proxy and directly: one that
// does no work per request (the target's case: the proxy's cost at its most
// visible), and one that spends BENCH_APP_CPU_US of CPU per request (default
// 200 µs), a stand-in for an app doing real work. The bench also prints the
// CPU each process spent per request (bench/cpu.ts): on two cores shared by
// wrk, nginx and the upstream, throughput is whoever gets the CPU.
//
// Settings (environment): BENCH_SECONDS per wrk run (default 8), BENCH_ROUNDS
// of direct/proxied pairs per upstream (default 3), BENCH_CONNECTIONS (default
// 32), BENCH_APP_CPU_US (default 200).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { KEEPALIVE_CONNECTIONS, MAIN_CONF, renderMainConf, stackFilePaths, stackProxyFiles, type ProxyLayout } from "../../infra/proxy/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { loopbackAddresses } from "../../test/support/edge.js";
import { startCpuSampler } from "../cpu.js";
import { loopbackLayout, selfSignedCertificate, startNginx } from "../../test/support/nginx.js";
import { freePort, requireCommand, tempDir, waitFor } from "../../test/support/system.js";

const REPO = join(__dirname, "..", "..");
const STACK = "prod";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const APP_CPU_US = Number(process.env.BENCH_APP_CPU_US ?? 200);
const TARGET_RATIO = 0.85;
/** The upstream spends the CPU time this request header asks for (µs); nginx passes it on. */
const WORK_HEADER = "X-Bench-Work-Us";
/** The bench never outlives this, whatever hangs. */
const DEADLINE_MS = (2 * ROUNDS * 3 * (SECONDS + 5) + 60) * 1000;
const HOST = "localhost";

/**
 * The upstream: node's http server answering a small JSON body on keep-alive
 * connections; its own process (named bench-upstream), so the bench's own work
 * never slows it. It first spends the CPU time the work header asks for.
 */
const UPSTREAM_SOURCE = `
process.title = "bench-upstream";
const http = require("node:http");
const body = JSON.stringify({ status: "UP", slot: "blue", items: [1, 2, 3] });
const server = http.createServer((req, res) => {
  const work = Number(req.headers["${WORK_HEADER.toLowerCase()}"] || 0);
  const start = process.cpuUsage();
  for (let spent = 0; spent < work; ) {
    const used = process.cpuUsage(start);
    spent = used.user + used.system;
  }
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[1]), "127.0.0.1", () => process.send && process.send("listening"));
`;

interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: string[];
  /** CPU µs per request by process name (nginx, bench-upstream, wrk), while this run went on. */
  cpuUsPerRequest?: Map<string, number>;
}

function milliseconds(value: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(value);
  if (!match) throw new Error(`wrk printed a latency "${value}" this bench cannot read`);
  const n = Number(match[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
}

/** wrk's own summary, read from its text output (--latency prints the percentiles). */
export function parseWrk(output: string): WrkResult {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const p50 = /^\s+50%\s+(\S+)/m.exec(output);
  const p99 = /^\s+99%\s+(\S+)/m.exec(output);
  const total = /(\d+) requests in/.exec(output);
  if (!rate || !p50 || !p99 || !total) throw new Error(`cannot read wrk's output:\n${output}`);
  const errors = [/Socket errors:.*/.exec(output)?.[0], /Non-2xx or 3xx responses:.*/.exec(output)?.[0]].filter((e): e is string => e !== undefined);
  return { requestsPerSecond: Number(rate[1]), p50Ms: milliseconds(p50[1]!), p99Ms: milliseconds(p99[1]!), requests: Number(total[1]), errors };
}

/** Runs wrk without blocking this process: the DNS stand-in nginx asks lives in it. */
async function wrk(url: string, workUs: number): Promise<WrkResult> {
  const bin = requireCommand("wrk", "wrk");
  const sampler = startCpuSampler(250);
  // One thread: wrk shares the machine's cores with nginx and the upstream.
  const child = spawn(bin, ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--timeout", "5s", "--latency", "-H", `${WORK_HEADER}: ${workUs}`, url], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const cpu = sampler.stop();
  if (status !== 0) throw new Error(`wrk ${url} failed (${status}): ${stderr}${stdout}`);
  const parsed = parseWrk(stdout);
  parsed.cpuUsPerRequest = new Map(cpu.filter(([name]) => ["nginx", "bench-upstream", "wrk"].includes(name)).map(([name, seconds]) => [name, (seconds * 1e6) / parsed.requests]));
  if (parsed.errors.length > 0) throw new Error(`wrk ${url} saw failures, the figures would be meaningless: ${parsed.errors.join("; ")}\n${stdout}`);
  return parsed;
}

async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["-e", UPSTREAM_SOURCE, String(port)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the upstream exited (${code}) before listening`)));
  });
  return { port, child };
}

/** One request through the proxy, as wrk will send it: the TLS name and Host `localhost`. */
function throughProxy(layout: ProxyLayout): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port: layout.listen.https, servername: HOST, headers: { host: HOST }, rejectUnauthorized: false, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const fixed = (n: number, digits: number) => n.toFixed(digits).padStart(9);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

async function main(): Promise<void> {
  const config = validateStackConfig(STACK, rawFromPulumiConfig(readStackFile(REPO, STACK).config));
  const benchConfig = { ...config, domains: { ...config.domains, api: HOST }, metabase: { ...config.metabase, enabled: false } };
  const dir = tempDir("bench-proxy");
  const cleanups: (() => unknown)[] = [() => dir.remove()];
  const deadline = setTimeout(() => {
    console.error(`bench:proxy: still running after ${DEADLINE_MS / 1000} s; stopping`);
    for (const c of cleanups.reverse()) void c();
    process.exit(1);
  }, DEADLINE_MS);
  try {
    const upstream = await startUpstream();
    cleanups.push(() => upstream.child.kill());
    const layout = await loopbackLayout(dir.path);
    // Every container of the stack is played by the one upstream.
    const addressOf = loopbackAddresses({ [STACK]: benchConfig }, () => upstream.port);
    writeFileSync(join(layout.confDir, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" }));
    const files = stackProxyFiles(benchConfig, STACK, layout, "blue", addressOf);
    const paths = stackFilePaths(STACK);
    writeFileSync(join(layout.confDir, paths.conf), files.conf);
    writeFileSync(join(layout.confDir, paths.upstreams), files.upstreams);
    selfSignedCertificate(layout, STACK, [HOST]);
    const nginx = await startNginx(join(layout.confDir, MAIN_CONF), layout.runtimeDir, layout.listen.http);
    cleanups.push(() => nginx.stop());

    await waitFor("a 200 from the upstream through the proxy", async () => {
      const reply = await throughProxy(layout);
      return reply.status === 200 && reply.body.includes('"UP"');
    }, 10_000);

    const direct = `http://127.0.0.1:${upstream.port}/`;
    const proxied = `https://${HOST}:${layout.listen.https}/`;
    const nginxVersion = spawnSync(requireCommand("nginx", "nginx", ["/usr/sbin"]), ["-v"], { encoding: "utf8" }).stderr.trim();
    console.log(`bench:proxy — ${STACK}'s rendered configuration on ${nginxVersion}, small JSON responses (${Buffer.byteLength(JSON.stringify({ status: "UP", slot: "blue", items: [1, 2, 3] }))} bytes)`);
    console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} before the runs (everything shares these cores)`);
    console.log(`wrk: 1 thread, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run, ${ROUNDS} rounds per upstream; direct = plain HTTP to the upstream, proxied = HTTPS through nginx`);
    console.log(`upstream: the rendered upstream groups (fixed slot addresses, keepalive ${KEEPALIVE_CONNECTIONS} per worker); the upstream file names the live group`);
    const ratios: number[] = [];
    for (const workUs of [0, APP_CPU_US]) {
      console.log("");
      console.log(workUs === 0 ? "upstream doing no work per request (the target's case)" : `upstream spending ${workUs} µs of CPU per request (a stand-in for an app doing work)`);
      console.log(`${"round".padEnd(8)}${"path".padEnd(10)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}   CPU µs per request`);
      const runs: { direct: WrkResult; proxied: WrkResult }[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const pair = { direct: await wrk(direct, workUs), proxied: await wrk(proxied, workUs) };
        runs.push(pair);
        for (const [path, r] of Object.entries(pair)) {
          const cpu = [...(r.cpuUsPerRequest ?? [])].map(([name, us]) => `${name} ${us.toFixed(0)}`).join(", ");
          console.log(`${String(round).padEnd(8)}${path.padEnd(10)}${fixed(r.requestsPerSecond, 0)}${fixed(r.p50Ms, 2)}${fixed(r.p99Ms, 2)}   ${cpu}`);
        }
      }
      const summary = (pick: (p: { direct: WrkResult; proxied: WrkResult }) => WrkResult) => ({
        rps: mean(runs.map((p) => pick(p).requestsPerSecond)),
        p50: mean(runs.map((p) => pick(p).p50Ms)),
        p99: mean(runs.map((p) => pick(p).p99Ms)),
      });
      const d = summary((p) => p.direct);
      const x = summary((p) => p.proxied);
      const ratio = x.rps / d.rps;
      ratios.push(ratio);
      console.log(`${"mean".padEnd(8)}${"direct".padEnd(10)}${fixed(d.rps, 0)}${fixed(d.p50, 2)}${fixed(d.p99, 2)}`);
      console.log(`${"mean".padEnd(8)}${"proxied".padEnd(10)}${fixed(x.rps, 0)}${fixed(x.p50, 2)}${fixed(x.p99, 2)}`);
      console.log(`proxied/direct throughput: ${ratio.toFixed(2)}; per-round ratios ${runs.map((p) => (p.proxied.requestsPerSecond / p.direct.requestsPerSecond).toFixed(2)).join(", ")}`);
    }
    console.log("");
    console.log(`target ≥ ${TARGET_RATIO} with the upstream doing no work: ${ratios[0]! >= TARGET_RATIO ? "met" : "NOT met"} (${ratios[0]!.toFixed(2)}); with ${APP_CPU_US} µs of work per request: ${ratios[1]!.toFixed(2)}`);
  } finally {
    clearTimeout(deadline);
    for (const c of cleanups.reverse()) await c();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:proxy failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
