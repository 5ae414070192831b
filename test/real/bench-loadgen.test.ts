// bench:proxy's constant-rate load generator (bench/proxy/loadgen), built with
// Go and run against a real HTTP server: it keeps its rate, and it is free of
// coordinated omission. When the server freezes, every request that fell due
// during the freeze counts the wait from its due time, as a user would see it;
// a closed-loop tool would time only the few requests in flight (one per
// connection) and pause its sending.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { buildLoadgen, runLoadgen } from "../../bench/proxy/loadgen.js";
import { percentile } from "../../bench/proxy/stats.js";
import { tempDir } from "../support/system.js";

describe("bench:proxy's load generator", () => {
  const dir = tempDir("loadgen");
  let bin = "";
  let frozenUntil = 0;
  let seen = 0;
  let freezeAt = Infinity;
  const server = createServer((_req, res) => {
    seen++;
    if (seen === freezeAt) frozenUntil = Date.now() + 300;
    const answer = () => res.end('{"status":"UP"}');
    const wait = frozenUntil - Date.now();
    if (wait > 0) setTimeout(answer, wait);
    else answer();
  });
  let url = "";

  before(async () => {
    bin = buildLoadgen(dir.path);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (typeof address !== "object" || address === null) throw new Error("no port");
    url = `http://127.0.0.1:${address.port}/`;
  });
  after(() => {
    server.close();
    dir.remove();
  });

  it("sends rate × seconds requests and times each", async () => {
    seen = 0;
    freezeAt = Infinity;
    const run = await runLoadgen(bin, { url, rate: 200, seconds: 1, connections: 4 });
    assert.equal(run.sent, 200);
    assert.equal(run.latenciesUs.length, 200);
    assert.ok(run.latenciesUs.every((us) => us > 0));
  });

  it("counts a 300 ms freeze against every request that fell due during it", async () => {
    seen = 0;
    freezeAt = 4 + 100; // four warm-up requests, then the 100th timed one
    const run = await runLoadgen(bin, { url, rate: 200, seconds: 2, connections: 4 });
    // 300 ms at 200 requests/s: about 60 requests fall due in the freeze,
    // waiting from 300 ms down to nothing; about 40 of them 100 ms or more.
    // Counted from when a connection was free, only the 4 in flight would be.
    const slow = run.latenciesUs.filter((us) => us >= 100_000).length;
    assert.ok(slow >= 25, `only ${slow} requests of ${run.sent} took 100 ms or more`);
    assert.ok(percentile(run.latenciesUs, 90) >= 50_000, `p90 ${percentile(run.latenciesUs, 90)} µs hides the freeze`);
  });

  it("fails with the target's error when nothing answers", async () => {
    await assert.rejects(runLoadgen(bin, { url: "http://127.0.0.1:9/", rate: 10, seconds: 1, connections: 1 }), /warm-up request to http:\/\/127\.0\.0\.1:9\/ failed/);
  });
});
