// npm run bench:proxy — is our proxy as cheap as the ones a user would pick
// instead? In one run, the same job (TLS termination, HTTP/1.1 keep-alive
// clients, small JSON responses from one upstream reached over kept-alive
// connections, one worker or thread each) done by:
//   ours      real nginx with prod's rendered nginx.conf and conf.d/upstreams files
//   minimal   nginx with TLS, one upstream with keepalive, nothing else (the floor for nginx)
//   haproxy   HAProxy from Debian (2.6), caddy: Caddy from Debian (2.6)
//   kamal     kamal-proxy, when BENCH_KAMAL_PROXY names a binary (README: how to build it)
// For each: CPU µs per request of the proxy's own processes (bench/cpu.ts:
// each thread's run time in /proc, to the nanosecond), requests/s at
// saturation (wrk, closed loop), and p50/p99 at a fixed rate well under
// saturation with bench/proxy/loadgen (open loop, counted from
// each request's due time, so no coordinated omission), printed as what the
// proxy adds over the same rate sent straight to the upstream. Then how the
// CPU per request grows from 1 to 256 connections, and (BENCH_VARIANTS=1) our
// configuration one feature at a time, to find what costs more than the floor.
//
// Peers take turns within each round, so a change in the machine's load
// touches every one alike: the ratios between them hold better than the
// absolute figures on a shared machine.
//
// On loopback, as the old bench: every slot's fixed address becomes the
// upstream's 127.0.0.1:<port>, the API's host name is `localhost`, and
// 127.0.0.1 stands in for Cloudflare's ranges.
//
// Settings (environment): BENCH_ROUNDS (3), BENCH_SECONDS per saturation run
// (8), BENCH_CONNECTIONS (32), BENCH_RATE (2000 requests/s), BENCH_RATE_SECONDS
// (10), BENCH_GROWTH (connection counts, "1,4,16,64,256"), BENCH_GROWTH_SECONDS
// (4), BENCH_VARIANTS (0), BENCH_CALLGRIND (0: 1 counts each nginx
// configuration's instructions per request under valgrind, at the end),
// BENCH_KAMAL_PROXY (a kamal-proxy binary).
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { MAIN_CONF, stackFilePaths } from "../../infra/proxy/contract.js";
import { renderMainConf, stackProxyFiles } from "../../infra/proxy/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { loopbackAddresses } from "../../test/support/edge.js";
import { loopbackLayout, nginxBinary, selfSignedCertificate, startNginx } from "../../test/support/nginx.js";
import { freePort, requireCommand, tempDir, waitFor } from "../../test/support/system.js";
import { processTreeRunTimes, runSecondsBetween } from "../cpu.js";
import { PEERS_INSTALL, VARIANTS, caddyfile, haproxyConf, minimalNginxConf, oneWorker, type PeerFiles, type Variant } from "./peers.js";
import { buildLoadgen, commandOutput, runLoadgen } from "./loadgen.js";
import { addedLatency, callgrindInstructions, cpuUsPerRequest, median, parseWrk, verdict, type FixedRateRun } from "./stats.js";

const REPO = join(__dirname, "..", "..");
const STACK = "prod";
const HOST = "localhost";
const env = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!(value > 0)) throw new Error(`${name} must be a positive number, not "${process.env[name]}"`);
  return value;
};
const ROUNDS = env("BENCH_ROUNDS", 3);
const SECONDS = env("BENCH_SECONDS", 8);
const CONNECTIONS = env("BENCH_CONNECTIONS", 32);
const RATE = env("BENCH_RATE", 2000);
const RATE_SECONDS = env("BENCH_RATE_SECONDS", 10);
const GROWTH = (process.env.BENCH_GROWTH ?? "1,4,16,64,256").split(",").map(Number);
const GROWTH_SECONDS = env("BENCH_GROWTH_SECONDS", 4);
const WITH_VARIANTS = process.env.BENCH_VARIANTS === "1";
const WITH_CALLGRIND = process.env.BENCH_CALLGRIND === "1";
const CALLGRIND_SECONDS = 10;
const BODY = JSON.stringify({ status: "UP", slot: "blue", items: [1, 2, 3] });

/** The upstream: node's http server answering a small JSON body on keep-alive connections, in its own process. */
const UPSTREAM_SOURCE = `
process.title = "bench-upstream";
const http = require("node:http");
const body = ${JSON.stringify(BODY)};
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[1]), "127.0.0.1", () => process.send && process.send("listening"));
`;

interface Peer {
  name: string;
  url: string;
  /** The proxy's root process; its descendants count too. */
  pid: number;
  stop(): Promise<void> | void;
  /** For nginx: its files, to run it again under callgrind. */
  nginx?: { conf: string; runtimeDir: string };
}

function started(child: ChildProcess, what: string): ChildProcess {
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-2000)));
  child.once("exit", (code) => {
    if (code !== null && code !== 0) process.stderr.write(`bench:proxy: ${what} exited (${code}): ${log}\n`);
  });
  return child;
}

const stopChild = (child: ChildProcess) => () => {
  if (child.exitCode === null) child.kill("SIGTERM");
};

async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["-e", UPSTREAM_SOURCE, String(port)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the upstream exited (${code}) before listening`)));
  });
  return { port, child };
}

/** One request as the load generators send it (TLS name and Host `localhost`); the body must be the upstream's. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, servername: HOST, headers: { host: HOST }, rejectUnauthorized: false, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(res.statusCode === 200 && body === BODY));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The TLS version and cipher a client offering TLS 1.2 and 1.3 gets from the proxy on `port`. */
function negotiatedTls(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, servername: HOST, rejectUnauthorized: false, minVersion: "TLSv1.2", maxVersion: "TLSv1.3" }, () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().standardName}`);
      socket.end();
    });
    socket.on("error", reject);
  });
}

/** Ours: prod's rendered files (one variant's change applied, if any), one worker like every peer. */
async function startOurs(root: string, upstreamPort: number, variant?: Variant): Promise<Peer & { certificate: string; key: string }> {
  const config = loadStack(STACK, REPO).config;
  const benchConfig = { ...config, domains: { ...config.domains, api: HOST }, metabase: { ...config.metabase, enabled: false } };
  const layout = await loopbackLayout(root);
  const main = oneWorker(renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" }));
  const files = stackProxyFiles(benchConfig, STACK, layout, "blue", loopbackAddresses({ [STACK]: benchConfig }, () => upstreamPort));
  const paths = stackFilePaths(STACK);
  writeFileSync(join(layout.confDir, MAIN_CONF), variant?.main ? variant.main(main) : main);
  writeFileSync(join(layout.confDir, paths.conf), variant?.site ? variant.site(files.conf) : files.conf);
  writeFileSync(join(layout.confDir, paths.upstreams), files.upstreams);
  selfSignedCertificate(layout, STACK, [HOST]);
  const nginx = await startNginx(join(layout.confDir, MAIN_CONF), layout.runtimeDir, layout.listen.https);
  return {
    name: variant ? `ours:${variant.name}` : "ours",
    url: `https://${HOST}:${layout.listen.https}/`,
    pid: nginx.pid,
    stop: () => nginx.stop(),
    nginx: { conf: join(layout.confDir, MAIN_CONF), runtimeDir: layout.runtimeDir },
    certificate: join(layout.confDir, paths.certificate),
    key: join(layout.confDir, paths.key),
  };
}

async function startMinimal(files: PeerFiles): Promise<Peer> {
  const conf = join(files.runtimeDir, "nginx.conf");
  writeFileSync(conf, minimalNginxConf(files));
  const nginx = await startNginx(conf, files.runtimeDir, files.port);
  return { name: "minimal", url: `https://${HOST}:${files.port}/`, pid: nginx.pid, stop: () => nginx.stop(), nginx: { conf, runtimeDir: files.runtimeDir } };
}

function startHaproxy(files: PeerFiles): Peer {
  const bin = requireCommand("haproxy", "haproxy", ["/usr/sbin"], PEERS_INSTALL);
  const pem = join(files.runtimeDir, "haproxy.pem");
  writeFileSync(pem, readFileSync(files.certificate, "utf8") + readFileSync(files.key, "utf8"), { mode: 0o600 });
  const conf = join(files.runtimeDir, "haproxy.cfg");
  writeFileSync(conf, haproxyConf({ ...files, pem }));
  execFileSync(bin, ["-c", "-q", "-f", conf]);
  // -db: foreground, one process (no master-worker), so the pid is the proxy.
  const child = started(spawn(bin, ["-db", "-f", conf], { stdio: ["ignore", "ignore", "pipe"] }), "haproxy");
  return { name: "haproxy", url: `https://${HOST}:${files.port}/`, pid: child.pid!, stop: stopChild(child) };
}

function startCaddy(files: PeerFiles): Peer {
  const bin = requireCommand("caddy", "caddy", [], PEERS_INSTALL);
  const conf = join(files.runtimeDir, "Caddyfile");
  writeFileSync(conf, caddyfile(files));
  const home = join(files.runtimeDir, "home");
  mkdirSync(home, { recursive: true });
  const child = started(
    spawn(bin, ["run", "--config", conf, "--adapter", "caddyfile"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home, GOMAXPROCS: "1" },
    }),
    "caddy",
  );
  return { name: "caddy", url: `https://${HOST}:${files.port}/`, pid: child.pid!, stop: stopChild(child) };
}

async function startKamal(bin: string, files: PeerFiles): Promise<Peer> {
  const home = join(files.runtimeDir, "kamal");
  mkdirSync(home, { recursive: true });
  const kamalEnv = { PATH: process.env.PATH, HOME: home, XDG_RUNTIME_DIR: home, GOMAXPROCS: "1" };
  const httpPort = await freePort();
  // Its request log goes to stdout: discarded, but written as it would be.
  const child = started(spawn(bin, ["run", "--http-port", String(httpPort), "--https-port", String(files.port)], { stdio: ["ignore", "ignore", "pipe"], env: kamalEnv }), "kamal-proxy");
  await waitFor("kamal-proxy's control socket", () => spawnSync(bin, ["list"], { env: kamalEnv }).status === 0, 15_000);
  const [, port] = files.upstream.split(":");
  const deploy = spawnSync(bin, ["deploy", "bench", "--target", `127.0.0.1:${port}`, "--host", HOST, "--tls", "--tls-certificate-path", files.certificate, "--tls-private-key-path", files.key, "--health-check-path", "/"], { env: kamalEnv, encoding: "utf8" });
  if (deploy.status !== 0) throw new Error(`kamal-proxy deploy failed: ${deploy.stderr}${deploy.stdout}`);
  return { name: "kamal", url: `https://${HOST}:${files.port}/`, pid: child.pid!, stop: stopChild(child) };
}

/** CPU the peer's processes spent while `work` ran, to the nanosecond (bench/cpu.ts). */
async function measured<T>(pid: number | undefined, work: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
  const before = pid === undefined ? undefined : processTreeRunTimes(pid);
  const result = await work();
  return { result, cpuSeconds: pid === undefined ? 0 : runSecondsBetween(before!, processTreeRunTimes(pid)) };
}

async function saturation(url: string, pid: number | undefined, connections: number, seconds: number) {
  // One wrk thread: it shares the two cores with the proxy and the upstream.
  const { result: output, cpuSeconds } = await measured(pid, () => commandOutput(requireCommand("wrk", "wrk"), ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "--latency", url]));
  const wrk = parseWrk(output);
  if (wrk.errors.length > 0) throw new Error(`wrk ${url} saw failures, the figures would be meaningless: ${wrk.errors.join("; ")}`);
  return { rps: wrk.requestsPerSecond, cpuUs: pid === undefined ? 0 : cpuUsPerRequest(cpuSeconds, wrk.requests) };
}

async function fixedRate(loadgen: string, url: string, pid: number | undefined): Promise<{ run: FixedRateRun; cpuUs: number }> {
  const { result, cpuSeconds } = await measured(pid, () => runLoadgen(loadgen, { url, rate: RATE, seconds: RATE_SECONDS, connections: CONNECTIONS, serverName: HOST }));
  return { run: result, cpuUs: pid === undefined ? 0 : cpuUsPerRequest(cpuSeconds, result.sent) };
}

/**
 * User-space instructions per request of one nginx configuration, counted by
 * callgrind: the same on a busy machine as on an idle one, so it tells what a
 * feature costs where CPU time cannot. The peer's own nginx is stopped first
 * (same ports). Kernel work (system calls) is not in it.
 */
async function instructionsPerRequest(peer: Peer, loadgen: string): Promise<number> {
  const { conf, runtimeDir } = peer.nginx!;
  await peer.stop();
  const out = join(runtimeDir, "callgrind.out");
  const args = ["--tool=callgrind", `--callgrind-out-file=${out}`, nginxBinary(), "-p", runtimeDir, "-e", join(runtimeDir, "error.log"), "-c", conf, "-g", "daemon off; master_process off;"];
  const child = started(spawn(requireCommand("valgrind", "valgrind", [], PEERS_INSTALL), args, { stdio: ["ignore", "ignore", "pipe"] }), `callgrind of ${peer.name}`);
  try {
    const port = Number(new URL(peer.url).port);
    await waitFor(`${peer.name} under callgrind to answer`, () => answers(port), 60_000, 500);
    // Warm-up (connections, first-use allocations), then a dump that starts the count afresh.
    await runLoadgen(loadgen, { url: peer.url, rate: 50, seconds: 1, connections: 2 });
    execFileSync(requireCommand("callgrind_control", "valgrind"), ["-d", String(child.pid)], { stdio: "ignore" });
    const run = await runLoadgen(loadgen, { url: peer.url, rate: 100, seconds: CALLGRIND_SECONDS, connections: 2 });
    execFileSync(requireCommand("callgrind_control", "valgrind"), ["-d", String(child.pid)], { stdio: "ignore" });
    return callgrindInstructions(readFileSync(`${out}.2`, "utf8")) / run.sent;
  } finally {
    child.kill("SIGQUIT");
    await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(null)));
  }
}

const col = (s: string | number, width = 12) => String(s).padStart(width);
const us = (n: number) => n.toFixed(1);
const ms = (n: number) => n.toFixed(3);

/** Tries `go install` of kamal-proxy at a tag, as the issue asks, so the run says why it is (not) in the table. */
function kamalBinary(dir: string): { bin?: string; why: string } {
  if (process.env.BENCH_KAMAL_PROXY) {
    if (!existsSync(process.env.BENCH_KAMAL_PROXY)) throw new Error(`BENCH_KAMAL_PROXY names ${process.env.BENCH_KAMAL_PROXY}, which does not exist`);
    return { bin: process.env.BENCH_KAMAL_PROXY, why: `BENCH_KAMAL_PROXY=${process.env.BENCH_KAMAL_PROXY}` };
  }
  const gobin = join(dir, "gobin");
  const install = spawnSync("go", ["install", "github.com/basecamp/kamal-proxy/cmd/kamal-proxy@v0.9.2"], { env: { ...process.env, GOBIN: gobin }, encoding: "utf8", timeout: 300_000 });
  if (install.status === 0) return { bin: join(gobin, "kamal-proxy"), why: "go install …@v0.9.2" };
  return { why: `go install github.com/basecamp/kamal-proxy/cmd/kamal-proxy@v0.9.2 refused: ${install.stderr.trim().split("\n").join(" ")}` };
}

async function main(): Promise<void> {
  for (const [command, pkg] of [["wrk", "wrk"], ["haproxy", "haproxy"], ["caddy", "caddy"], ["go", "golang (or Go from go.dev)"], ["openssl", "openssl"]] as const) requireCommand(command, pkg, ["/usr/sbin", "/usr/local/go/bin"]);
  const dir = tempDir("bench-proxy");
  const cleanups: (() => unknown)[] = [() => dir.remove()];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  const deadline = setTimeout(() => {
    console.error("bench:proxy: still running after its deadline; stopping");
    void stopAll().then(() => process.exit(1));
  }, 60 * 60_000);
  // Stopped by hand (Ctrl-C, kill): the proxies and the upstream stop with it instead of living on.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`bench:proxy: ${signal}; stopping the proxies`);
      void stopAll().then(() => process.exit(1));
    });
  }
  try {
    const loadgen = buildLoadgen(dir.path);
    const kamal = kamalBinary(dir.path);

    const upstream = await startUpstream();
    cleanups.push(() => upstream.child.kill());
    const direct = `http://127.0.0.1:${upstream.port}/`;
    const peers: Peer[] = [];
    const ours = await startOurs(join(dir.path, "ours"), upstream.port);
    peers.push(ours);
    cleanups.push(() => ours.stop());
    const files = async (name: string): Promise<PeerFiles> => {
      const runtimeDir = join(dir.path, name);
      mkdirSync(runtimeDir, { recursive: true });
      return { port: await freePort(), upstream: `127.0.0.1:${upstream.port}`, certificate: ours.certificate, key: ours.key, runtimeDir };
    };
    const others: Peer[] = [await startMinimal(await files("minimal")), startHaproxy(await files("haproxy")), startCaddy(await files("caddy"))];
    if (kamal.bin) others.push(await startKamal(kamal.bin, await files("kamal")));
    for (const p of others) cleanups.push(() => p.stop());
    peers.push(...others);
    const variants: Peer[] = [];
    if (WITH_VARIANTS) {
      for (const v of VARIANTS) {
        const peer = await startOurs(join(dir.path, `variant-${v.name}`), upstream.port, v);
        cleanups.push(() => peer.stop());
        variants.push(peer);
      }
    }
    for (const p of [...peers, ...variants]) {
      const port = Number(new URL(p.url).port);
      await waitFor(`a 200 with the upstream's body from ${p.name}`, () => answers(port), 15_000);
    }
    // The same job includes the same TLS: a peer on another version (nginx 1.22's
    // default has no TLS 1.3) would be measured on cheaper records.
    const tls = new Map<string, string>();
    for (const p of peers) tls.set(p.name, await negotiatedTls(Number(new URL(p.url).port)));
    const protocols = new Set([...tls.values()].map((t) => t.split(" ")[0]));
    if (protocols.size !== 1) throw new Error(`the proxies negotiate different TLS versions, so they do not do the same job: ${[...tls].map(([name, t]) => `${name} ${t}`).join(", ")}`);

    const versions = [
      spawnSync(nginxBinary(), ["-v"], { encoding: "utf8" }).stderr.trim(),
      spawnSync(requireCommand("haproxy", "haproxy", ["/usr/sbin"], PEERS_INSTALL), ["-v"], { encoding: "utf8" }).stdout.split("\n")[0]!.replace(/ - https.*/, ""),
      `caddy ${spawnSync("caddy", ["version"], { encoding: "utf8" }).stdout.trim().split(" ")[0]}`,
    ];
    console.log(`bench:proxy — TLS (ECDSA P-256) and HTTP/1.1 keep-alive proxying of a ${Buffer.byteLength(BODY)}-byte JSON body from one node upstream, one worker or thread per proxy`);
    console.log(`machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} before the runs (wrk, the upstream and the proxies share these cores)`);
    console.log(`proxies: ${versions.join("; ")}; kamal-proxy: ${kamal.bin ? kamal.why : `not in the table (${kamal.why})`}`);
    console.log(`TLS negotiated with a client offering 1.2 and 1.3: ${[...tls].map(([name, t]) => `${name} ${t}`).join("; ")}`);
    console.log(`per round and proxy: wrk -t1 -c${CONNECTIONS} ${SECONDS} s (saturation); then ${RATE} requests/s for ${RATE_SECONDS} s on ${CONNECTIONS} connections (bench/proxy/loadgen, open loop) straight to the upstream and through the proxy; ${ROUNDS} rounds, peers in turn`);
    console.log("");

    // 1. Saturation and fixed rate, round by round.
    type Row = { rps: number[]; cpuUs: number[]; rateCpuUs: number[]; p50: number[]; p99: number[]; added50: number[]; added99: number[]; rateVsOurs: number[]; saturationVsOurs: number[] };
    const rows = new Map<string, Row>();
    const row = (name: string) =>
      rows.get(name) ?? rows.set(name, { rps: [], cpuUs: [], rateCpuUs: [], p50: [], p99: [], added50: [], added99: [], rateVsOurs: [], saturationVsOurs: [] }).get(name)!;
    console.log(`${"round".padEnd(6)}${"proxy".padEnd(22)}${col("req/s")}${col("CPU µs/req")}${col(`µs/req@${RATE}`)}${col("p50 ms")}${col("p99 ms")}${col("+p50 ms")}${col("+p99 ms")}`);
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate who goes first each round.
      const rotate = <T>(list: T[]) => [...list.slice((round - 1) % list.length), ...list.slice(0, (round - 1) % list.length)];
      // First the fixed rate for every proxy and variant, then saturation for the
      // proxies: a saturation run just before would leave its mark on the next.
      const atRate = new Map<string, number>();
      for (const p of rotate([...peers, ...variants])) {
        const variant = variants.includes(p);
        // Direct at the same rate just before, so what the proxy adds is read against the machine of that moment.
        const dRate = variant ? undefined : await fixedRate(loadgen, direct, undefined);
        const r = await fixedRate(loadgen, p.url, p.pid);
        const target = row(p.name);
        atRate.set(p.name, r.cpuUs);
        target.rateCpuUs.push(r.cpuUs);
        const lat = dRate && addedLatency(r.run, dRate.run);
        if (dRate && lat) {
          const alone = addedLatency(dRate.run, dRate.run);
          row("direct").p50.push(alone.p50Ms);
          row("direct").p99.push(alone.p99Ms);
          target.p50.push(lat.p50Ms);
          target.p99.push(lat.p99Ms);
          target.added50.push(lat.addedP50Ms);
          target.added99.push(lat.addedP99Ms);
        }
        const cells = ["", "", us(r.cpuUs), ...(lat ? [lat.p50Ms, lat.p99Ms, lat.addedP50Ms, lat.addedP99Ms].map(ms) : [])];
        console.log(`${String(round).padEnd(6)}${p.name.padEnd(22)}${cells.map((c) => col(c)).join("")}`);
      }
      const d = await saturation(direct, undefined, CONNECTIONS, SECONDS);
      row("direct").rps.push(d.rps);
      console.log(`${String(round).padEnd(6)}${"direct (HTTP)".padEnd(22)}${col(d.rps.toFixed(0))}`);
      const atSaturation = new Map<string, number>();
      for (const p of rotate(peers)) {
        const s = await saturation(p.url, p.pid, CONNECTIONS, SECONDS);
        row(p.name).rps.push(s.rps);
        row(p.name).cpuUs.push(s.cpuUs);
        atSaturation.set(p.name, s.cpuUs);
        console.log(`${String(round).padEnd(6)}${p.name.padEnd(22)}${col(s.rps.toFixed(0))}${col(us(s.cpuUs))}`);
      }
      // Side by side within the round: our CPU per request over each one's.
      for (const [name, cpu] of atRate) row(name).rateVsOurs.push(atRate.get("ours")! / cpu);
      for (const [name, cpu] of atSaturation) row(name).saturationVsOurs.push(atSaturation.get("ours")! / cpu);
    }

    const m = (values: number[], f: (n: number) => string) => (values.length > 0 ? f(median(values)) : "");
    const ratio = (n: number) => n.toFixed(2);
    console.log("");
    console.log(`medians of ${ROUNDS} rounds; "ours ÷ it" is our CPU per request over this peer's, taken round by round (side by side), then the median`);
    console.log(`| proxy | CPU µs/req at ${RATE}/s | ours ÷ it | CPU µs/req at saturation | ours ÷ it | req/s at saturation | p50 ms | p99 ms | added p50 ms | added p99 ms |`);
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const p of [{ name: "direct" }, ...peers]) {
      const r = row(p.name);
      console.log(`| ${p.name} | ${m(r.rateCpuUs, us)} | ${m(r.rateVsOurs, ratio)} | ${m(r.cpuUs, us)} | ${m(r.saturationVsOurs, ratio)} | ${m(r.rps, (n) => n.toFixed(0))} | ${m(r.p50, ms)} | ${m(r.p99, ms)} | ${m(r.added50, ms)} | ${m(r.added99, ms)} |`);
    }

    // 2. Growth: CPU per request from 1 to 256 connections.
    console.log("");
    console.log(`growth: proxy CPU µs per request by number of connections (wrk -t1, ${GROWTH_SECONDS} s each, saturation)`);
    console.log(`| connections | ${peers.map((p) => p.name).join(" | ")} | ours ÷ minimal |`);
    console.log(`| --- | ${peers.map(() => "---").join(" | ")} | --- |`);
    for (const connections of GROWTH) {
      const cells = new Map<string, number>();
      for (const p of peers) cells.set(p.name, (await saturation(p.url, p.pid, connections, GROWTH_SECONDS)).cpuUs);
      console.log(`| ${connections} | ${peers.map((p) => us(cells.get(p.name)!)).join(" | ")} | ${(cells.get("ours")! / cells.get("minimal")!).toFixed(2)} |`);
    }

    // 3. Targets, from the side-by-side ratios.
    const oursVs = (name: string) => median(row(name).rateVsOurs);
    console.log("");
    console.log(`targets, on CPU per request at ${RATE} requests/s (the same work for every proxy; at saturation each does a different amount):`);
    console.log(verdict({ label: "ours ÷ minimal nginx CPU per request ≤ 1.15", ours: oursVs("minimal"), bound: 1.15 }));
    console.log(verdict({ label: "ours ÷ HAProxy CPU per request ≤ 1.3", ours: oursVs("haproxy"), bound: 1.3 }));
    console.log(verdict({ label: "ours ÷ Caddy CPU per request < 1", ours: oursVs("caddy"), bound: 0.9999 }));
    if (rows.has("kamal")) console.log(verdict({ label: "ours ÷ kamal-proxy CPU per request < 1", ours: oursVs("kamal"), bound: 0.9999 }));
    else console.log(`NOT measured: ours below kamal-proxy (${kamal.why})`);
    console.log(verdict({ label: `ours' added p99 at ${RATE} requests/s ≤ 1 ms`, ours: median(row("ours").added99), bound: 1 }));
    // The same bounds on CPU per request at saturation, where each proxy batches as much as its own speed lets it.
    const oursAtSaturation = (name: string) => median(row(name).saturationVsOurs);
    console.log("the same on CPU per request at saturation:");
    console.log(verdict({ label: "ours ÷ minimal nginx ≤ 1.15 at saturation", ours: oursAtSaturation("minimal"), bound: 1.15 }));
    console.log(verdict({ label: "ours ÷ HAProxy ≤ 1.3 at saturation", ours: oursAtSaturation("haproxy"), bound: 1.3 }));
    if (WITH_VARIANTS) {
      console.log("");
      console.log(`variants of ours (each one feature away from prod's configuration): CPU µs per request at ${RATE}/s, and its ratio to ours in the same rounds`);
      console.log("| variant | what changes | CPU µs/req | ÷ ours |");
      console.log("| --- | --- | --- | --- |");
      for (const v of VARIANTS) {
        const r = row(`ours:${v.name}`);
        console.log(`| ${v.name} | ${v.change} | ${us(median(r.rateCpuUs))} | ${ratio(median(r.rateVsOurs.map((x) => 1 / x)))} |`);
      }
    }
    console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

    // 4. What each feature costs, in instructions (BENCH_CALLGRIND=1): nginx peers last, each stopped for it.
    if (WITH_CALLGRIND) {
      console.log("");
      console.log(`user-space instructions per request (callgrind, ${100 * CALLGRIND_SECONDS} requests at 100/s on 2 connections; the same whatever the machine's load)`);
      console.log("| nginx | instructions/req | − ours |");
      console.log("| --- | --- | --- |");
      const counted = new Map<string, number>();
      for (const p of [...peers, ...variants].filter((x) => x.nginx)) counted.set(p.name, await instructionsPerRequest(p, loadgen));
      for (const [name, n] of counted) console.log(`| ${name} | ${(n / 1000).toFixed(1)}k | ${((n - counted.get("ours")!) / 1000).toFixed(1)}k |`);
    }
  } finally {
    clearTimeout(deadline);
    await stopAll();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:proxy failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
