// bench:proxy's reading and arithmetic: wrk's and the load generator's
// output, nearest-rank percentiles, CPU per request, what the proxy adds over
// direct, the verdicts; and the peers' configurations and our variants, which
// must change what they say they change (or fail loudly when the rendered
// configuration no longer has it).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderMainConf, stackProxyFiles } from "../../infra/proxy/render.js";
import { PEERS_INSTALL, VARIANTS, caddyfile, haproxyConf, minimalNginxConf, oneWorker } from "../../bench/proxy/peers.js";
import { addedLatency, callgrindInstructions, cpuUsPerRequest, parseLoadgen, parseWrk, percentile, verdict, type FixedRateRun } from "../../bench/proxy/stats.js";
import { loadStack } from "../../stacks/config/load.js";
import { requireCommand } from "../support/system.js";

const WRK = `Running 8s test @ https://localhost:4443/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  610.23us  12.01ms   88.12%
    Req/Sec    20.11k     1.02k   22.30k    70.00%
  Latency Distribution
     50%    1.40ms
     75%    1.71ms
     90%    2.10ms
     99%  950.00us
  160123 requests in 8.00s, 40.01MB read
Requests/sec:  20015.37
Transfer/sec:      5.00MB
`;

const run = (latenciesUs: number[], extra: Partial<FixedRateRun> = {}): FixedRateRun => ({ rate: 2000, seconds: 1, connections: 32, sent: latenciesUs.length, errors: 0, latenciesUs, ...extra });

describe("bench:proxy arithmetic", () => {
  it("reads wrk's rate, total, percentiles in their own units, and its error lines", () => {
    const parsed = parseWrk(WRK);
    assert.deepEqual(parsed, { requestsPerSecond: 20015.37, p50Ms: 1.4, p99Ms: 0.95, requests: 160123, errors: [] });
    const failing = parseWrk(`${WRK}  Socket errors: connect 0, read 3, write 0, timeout 0\n  Non-2xx or 3xx responses: 12\n`);
    assert.deepEqual(failing.errors, ["Socket errors: connect 0, read 3, write 0, timeout 0", "Non-2xx or 3xx responses: 12"]);
    assert.throws(() => parseWrk("wrk: connection refused"), /cannot read wrk's output/);
  });

  it("takes nearest-rank percentiles, whatever the order of the values", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile(values, 100), 100);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([1, 2, 3], 50), 2);
    assert.throws(() => percentile([], 50), /no values/);
    assert.throws(() => percentile([1], 0), /not in \(0, 100\]/);
  });

  it("reads the load generator's JSON and refuses failed or incomplete runs", () => {
    const out = JSON.stringify(run([900, 1100, 1000]));
    assert.deepEqual(parseLoadgen(out).latenciesUs, [900, 1100, 1000]);
    assert.throws(() => parseLoadgen(JSON.stringify(run([1000], { errors: 2, sent: 3, firstError: "EOF" }))), /2 of 3 requests failed \(first: EOF\)/);
    assert.throws(() => parseLoadgen(JSON.stringify(run([1000], { sent: 5 }))), /sent 5 requests but timed 1/);
    assert.throws(() => parseLoadgen("panic: runtime error"), /not its JSON result/);
  });

  it("gives CPU per request and what the proxy adds over direct at each percentile", () => {
    assert.equal(cpuUsPerRequest(1.3, 20_000), 65);
    assert.throws(() => cpuUsPerRequest(1, 0), /0 requests/);
    // Direct: 1 … 100 µs; through the proxy: each 250 µs more, one stall of 5 ms in the top percent.
    const direct = run(Array.from({ length: 100 }, (_, i) => i + 1));
    const proxied = run(Array.from({ length: 100 }, (_, i) => (i === 99 ? 5000 : i + 251)));
    const lat = addedLatency(proxied, direct);
    assert.equal(lat.p50Ms, 0.3);
    assert.equal(lat.addedP50Ms, 0.25);
    assert.equal(lat.p99Ms, 0.349);
    assert.ok(Math.abs(lat.addedP99Ms - 0.25) < 1e-9);
  });

  it("reads the instruction count of a callgrind dump, whichever column Ir is", () => {
    assert.equal(callgrindInstructions("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 63855030\ntotals: 63855030\n"), 63855030);
    assert.equal(callgrindInstructions("events: Dr Ir\ntotals: 5 40725166\n"), 40725166);
    assert.throws(() => callgrindInstructions("fl=nginx\n"), /not a callgrind dump with an Ir total/);
  });

  it("says met only when ours is within the bound", () => {
    assert.equal(verdict({ label: "ours ÷ minimal ≤ 1.15", ours: 1.15, bound: 1.15 }), "met: ours ÷ minimal ≤ 1.15 (1.15 against 1.15)");
    assert.match(verdict({ label: "x", ours: 1.16, bound: 1.15 }), /^NOT met: x \(1\.16 against 1\.15\)$/);
  });
});

describe("bench:proxy's peers and variants", () => {
  const files = { port: 4443, upstream: "127.0.0.1:8080", certificate: "/b/c.crt", key: "/b/c.key", runtimeDir: "/b/run" };

  it("gives every peer one worker or thread, TLS with the shared certificate and the one upstream", () => {
    const minimal = minimalNginxConf(files);
    assert.match(minimal, /^worker_processes 1;$/m);
    assert.match(minimal, /access_log off;/);
    assert.match(minimal, /server 127\.0\.0\.1:8080;\n\s+keepalive 64;/);
    assert.match(minimal, /ssl_certificate \/b\/c\.crt;/);
    const haproxy = haproxyConf({ ...files, pem: "/b/c.pem" });
    assert.match(haproxy, /nbthread 1/);
    assert.match(haproxy, /bind 127\.0\.0\.1:4443 ssl crt \/b\/c\.pem/);
    assert.match(haproxy, /server app 127\.0\.0\.1:8080/);
    const caddy = caddyfile(files);
    assert.match(caddy, /tls \/b\/c\.crt \/b\/c\.key/);
    assert.match(caddy, /reverse_proxy 127\.0\.0\.1:8080/);
  });

  const layout = { confDir: "/p/live", runtimeDir: "/p/run", pidFile: "/p/run/nginx.pid", accessLog: "/p/run/access.log", errorLog: "/p/run/error.log", listen: { address: "127.0.0.1", http: 8080, https: 8443, internal: 8081 } };
  const main = renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" });
  const site = stackProxyFiles(loadStack("prod").config, "prod", layout, "blue").conf;

  it("offers TLS 1.2 and 1.3 in the minimal nginx, as ours does (nginx 1.22's default has no TLS 1.3)", () => {
    const protocols = (conf: string) => /^\s*ssl_protocols (.+);$/m.exec(conf)?.[1];
    assert.equal(protocols(main), "TLSv1.2 TLSv1.3");
    assert.equal(protocols(minimalNginxConf(files)), protocols(main));
  });

  it("pins our rendered configuration to one worker, as the peers", () => {
    assert.match(oneWorker(main), /^worker_processes 1;$/m);
    assert.doesNotMatch(oneWorker(main), /worker_processes auto/);
  });

  it("keeps one unchanged copy of ours among the variants, to show the noise of the comparison", () => {
    const control = VARIANTS.find((v) => v.name === "unchanged")!;
    assert.equal(control.main, undefined);
    assert.equal(control.site, undefined);
  });

  for (const v of VARIANTS.filter((v) => v.name !== "unchanged")) {
    it(`variant ${v.name} changes prod's rendered files (${v.change}) and leaves a different configuration`, () => {
      const changedMain = v.main ? v.main(main) : main;
      const changedSite = v.site ? v.site(site) : site;
      assert.notEqual(changedMain + changedSite, main + site);
    });
  }

  it("a variant whose feature is gone from the rendered configuration fails loudly", () => {
    const noRequestId = VARIANTS.find((v) => v.name === "no-request-id")!;
    assert.throws(() => noRequestId.main!("http {\n}\n"), /"request_id= in the log format" is not in the rendered configuration any more/);
  });

  it("a missing peer names the bench's own install command, not the tests' installer (which leaves the peers out)", () => {
    assert.throws(() => requireCommand("bbaegok-no-such-proxy", "haproxy", [], PEERS_INSTALL), /not installed\. Run: apt-get install haproxy caddy valgrind \(Debian package: haproxy\)/);
    assert.throws(() => requireCommand("bbaegok-no-such-tool", "nginx"), /Run: bash scripts\/install-test-deps\.sh \(Debian package: nginx\)/);
  });
});
