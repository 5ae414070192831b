// The rendered DDNS script run for real by sh, with the real curl, against a
// stand-in for Cloudflare's API and trace endpoint on 127.0.0.1 (a node HTTP
// server that checks the Bearer token and records every PATCH). While curl
// waits for the stand-in's answer, the stand-in reads every process's command
// line and environment from /proc: the token must be in none of them.
// Also: shellcheck of the script, and the cron file's syntax.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { ddnsCronFile, ddnsRecordsKey, ddnsScript, type RecordsAsWritten } from "../../infra/dns/render.js";
import { cronProblem } from "../../stacks/config/cron.js";
import { requireCommand, tempDir } from "../support/system.js";

const TOKEN = "cf-token-Zq3VtM8pLx2Rk9WsA4nB7yHd";
const ZONE = "f1bb2e85958d7bf58add2a78964b25d8";
const RECORDS = ["372e67954025e0ba6aaa6d586b9e0b59", "9a7806061c88ada191ed06f989cc3dac"];
/** What Pulumi wrote to the records: the stack file's address. */
const WRITTEN: RecordsAsWritten = { content: "192.0.2.10", proxied: true };
/** The state file's line after the job set RECORDS (as WRITTEN) to `ip`. */
const stateLine = (ip: string, records: readonly string[] = RECORDS, written = WRITTEN) => `${ip} ${ddnsRecordsKey(records, written)}\n`;

interface Patch {
  zone: string;
  record: string;
  body: unknown;
  authorized: boolean;
}

/** Every process's command line and environment, as another user on the server could list them (root sees all). */
function processTexts(): string[] {
  const texts: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    for (const file of ["cmdline", "environ"]) {
      try {
        texts.push(readFileSync(join("/proc", pid, file), "latin1"));
      } catch {
        // gone already, or not ours to read
      }
    }
  }
  return texts;
}

describe("the DDNS job, run for real with sh and curl against a stand-in Cloudflare", () => {
  const dir = tempDir("ddns");
  const tokenFile = join(dir.path, "secrets", "api_token");
  const stateFile = join(dir.path, "state", "last-ip");
  const scriptPath = join(dir.path, "ddns.sh");
  let server: Server;
  let port = 0;
  /** What the trace endpoint answers after `ip=`; a whole body when `traceBody` is set. */
  let address = "198.51.100.7";
  let traceBody: string | undefined;
  /** What the API answers to a PATCH of an authorized client. */
  let refuse = false;
  const patches: Patch[] = [];
  let traces = 0;
  /** Seen in a process's command line or environment while curl was talking to the API. */
  let tokenInProcessList = false;
  let processListsChecked = 0;

  const render = (overrides: { apiUrl?: string; recordIds?: string[]; written?: RecordsAsWritten } = {}) =>
    ddnsScript({
      stack: "prod",
      zoneId: ZONE,
      recordIds: overrides.recordIds ?? RECORDS,
      written: overrides.written ?? WRITTEN,
      scriptPath,
      tokenFile,
      stateFile,
      apiUrl: overrides.apiUrl ?? `http://127.0.0.1:${port}/client/v4`,
      ipUrl: `http://127.0.0.1:${port}/cdn-cgi/trace`,
    });

  /** Runs the script with sh, asynchronously: the stand-in answers from this process. */
  const run = (): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile("sh", [scriptPath], { encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        assert.ok(!stdout.includes(TOKEN) && !stderr.includes(TOKEN), "the token appears in the script's output");
        resolve({ code, stdout, stderr });
      });
    });

  before(async () => {
    requireCommand("curl", "curl");
    server = createServer((req, res) => {
      let text = "";
      req.on("data", (d: Buffer) => (text += d.toString()));
      req.on("end", () => {
        if (req.method === "GET" && req.url === "/cdn-cgi/trace") {
          traces++;
          res.setHeader("content-type", "text/plain");
          res.end(traceBody ?? `fl=29f1\nh=1.1.1.1\nip=${address}\nts=1700000000.1\nvisit_scheme=https\ntls=TLSv1.3\n`);
          return;
        }
        const match = /^\/client\/v4\/zones\/([^/]+)\/dns_records\/([^/]+)$/.exec(req.url ?? "");
        if (req.method !== "PATCH" || !match) {
          res.statusCode = 404;
          res.end(JSON.stringify({ success: false, errors: [{ code: 7003, message: "No route for that URI" }] }));
          return;
        }
        // curl is connected and waiting right now: its command line is listable.
        processListsChecked++;
        if (processTexts().some((t) => t.includes(TOKEN))) tokenInProcessList = true;
        const authorized = req.headers.authorization === `Bearer ${TOKEN}`;
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        patches.push({ zone: match[1]!, record: match[2]!, body, authorized });
        res.setHeader("content-type", "application/json");
        if (!authorized) {
          res.statusCode = 403;
          res.end(JSON.stringify({ success: false, errors: [{ code: 9109, message: "Invalid access token" }], messages: [], result: null }));
        } else if (refuse) {
          res.statusCode = 400;
          res.end(JSON.stringify({ success: false, errors: [{ code: 9005, message: "Content for A record is invalid." }], messages: [], result: null }));
        } else {
          res.end(JSON.stringify({ success: true, errors: [], messages: [], result: { id: match[2], type: "A", content: (body as { content?: string }).content, proxied: true, ttl: 1 } }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const a = server.address();
    port = typeof a === "object" && a ? a.port : 0;
    execFileSync("mkdir", ["-p", join(dir.path, "secrets")]);
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o400 });
    writeFileSync(scriptPath, render(), { mode: 0o755 });
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    dir.remove();
  });

  beforeEach(() => {
    patches.length = 0;
    traces = 0;
    address = "198.51.100.7";
    traceBody = undefined;
    refuse = false;
    writeFileSync(scriptPath, render(), { mode: 0o755 });
  });

  it("passes shellcheck as POSIX sh", () => {
    const shellcheck = requireCommand("shellcheck", "shellcheck");
    execFileSync(shellcheck, ["-s", "sh", "-S", "style", scriptPath], { encoding: "utf8" });
  });

  it("updates every record when the address changed, with the token as a Bearer header, then remembers the address", async () => {
    rmSync(stateFile, { force: true });
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(
      patches.map((p) => [p.zone, p.record, p.authorized, p.body]),
      RECORDS.map((r) => [ZONE, r, true, { content: "198.51.100.7" }]),
    );
    assert.equal(readFileSync(stateFile, "utf8"), stateLine("198.51.100.7"));
    assert.match(first.stdout, /records now point at 198\.51\.100\.7 \(were unknown\)/);

    patches.length = 0;
    address = "203.0.113.99";
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(patches.map((p) => [p.record, p.body]), RECORDS.map((r) => [r, { content: "203.0.113.99" }]));
    assert.equal(readFileSync(stateFile, "utf8"), stateLine("203.0.113.99"));
    assert.match(second.stdout, /now point at 203\.0\.113\.99 \(were 198\.51\.100\.7\)/);
  });

  it("does nothing, quietly, when the address is unchanged", async () => {
    writeFileSync(stateFile, stateLine("198.51.100.7"));
    const result = await run();
    assert.equal(result.code, 0, result.stderr);
    assert.equal(traces, 1, "the public address was not asked for");
    assert.deepEqual(patches, []);
    assert.equal(result.stdout + result.stderr, "");
  });

  it("sets every record again, the address unchanged, once Pulumi has written records the state file does not vouch for", async () => {
    const added = [...RECORDS, "5c1e0b7d2f4a4e6b8c9d0a1b2c3d4e5f"];
    for (const [what, overrides, records] of [
      // Metabase turned on: a new record, created with the stack file's address.
      ["a record added", { recordIds: added }, added],
      // proxied turned off: Pulumi updates the records and may write its address back.
      ["the records updated", { written: { ...WRITTEN, proxied: false } }, RECORDS],
      // The state file of the job before it recorded the records.
      ["a state file of the address alone", {}, RECORDS],
    ] as const) {
      patches.length = 0;
      writeFileSync(stateFile, what.startsWith("a state file") ? "198.51.100.7\n" : stateLine("198.51.100.7"));
      writeFileSync(scriptPath, render(overrides), { mode: 0o755 });
      const result = await run();
      assert.equal(result.code, 0, `${what}: ${result.stderr}`);
      assert.deepEqual(patches.map((p) => [p.record, p.body]), records.map((r) => [r, { content: "198.51.100.7" }]), what);
      assert.match(result.stdout, /records now point at 198\.51\.100\.7 \(the address is the same; Pulumi wrote the records since\)/, what);
      // And the run after it is quiet again.
      patches.length = 0;
      const again = await run();
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(patches, [], `${what}: the next run set the records again`);
    }
  });

  for (const [what, body] of [
    ["an IPv6 address", "ip=2001:db8::7\n"],
    ["an address with an octet over 255", "ip=198.51.100.300\n"],
    ["three octets", "ip=198.51.100\n"],
    ["two ip lines", "ip=198.51.100.7\nip=203.0.113.5\n"],
    ["no ip line", "fl=29f1\nh=1.1.1.1\n"],
    ["an HTML error page", "<html><body>502 Bad Gateway</body></html>\n"],
  ] as const) {
    it(`refuses ${what} from the trace endpoint without touching any record`, async () => {
      rmSync(stateFile, { force: true });
      traceBody = body;
      const result = await run();
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^ddns of stack prod: \S+ did not answer an IPv4 address \(got "[^"]*"\); records unchanged$/m);
      assert.deepEqual(patches, []);
      assert.equal(existsSync(stateFile), false);
    });
  }

  it("fails clearly when Cloudflare answers success:false, and keeps the old address so the next run retries", async () => {
    writeFileSync(stateFile, stateLine("192.0.2.1"));
    refuse = true;
    const result = await run();
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`ddns of stack prod: Cloudflare refused to update record ${RECORDS[0]} to 198\\.51\\.100\\.7: .*"success":false.*Content for A record is invalid`));
    assert.equal(patches.length, 1, "it went on after a refusal");
    assert.equal(readFileSync(stateFile, "utf8"), stateLine("192.0.2.1"));
  });

  it("fails clearly on a token Cloudflare rejects", async () => {
    rmSync(stateFile, { force: true });
    chmodSync(tokenFile, 0o600);
    writeFileSync(tokenFile, "not-the-token\n");
    try {
      const result = await run();
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /Cloudflare refused to update record .*Invalid access token/);
      assert.equal(patches[0]?.authorized, false);
      assert.equal(existsSync(stateFile), false);
    } finally {
      writeFileSync(tokenFile, `${TOKEN}\n`);
      chmodSync(tokenFile, 0o400);
    }
  });

  it("fails clearly when the API cannot be reached, records unchanged", async () => {
    rmSync(stateFile, { force: true });
    writeFileSync(scriptPath, render({ apiUrl: "http://127.0.0.1:9/client/v4" }), { mode: 0o755 });
    const result = await run();
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /cannot reach http:\/\/127\.0\.0\.1:9\/client\/v4 to update record .*; will retry on the next run/);
    assert.equal(existsSync(stateFile), false);
  });

  it("never puts the token on a command line or in an environment: not while curl talks to the API, not in the script", () => {
    // Checked during every PATCH of the tests above (this one runs after them).
    assert.ok(processListsChecked >= 3, `the process list was read only ${processListsChecked} times`);
    assert.equal(tokenInProcessList, false, "the token was visible in /proc/<pid>/cmdline or environ while curl ran");
    assert.ok(!readFileSync(scriptPath, "utf8").includes(TOKEN));
  });

  it("renders a cron file cron accepts: the stack's schedule, as root, output to syslog", () => {
    const cron = ddnsCronFile("*/5 * * * *", "/srv/bbaegok/prod/bin/ddns.sh", "bbaegok-prod-ddns");
    assert.ok(cron.endsWith("\n"), "cron ignores a last line without a newline");
    const entries = cron.split("\n").filter((l) => l.trim() && !l.startsWith("#") && !/^[A-Z_]+=/.test(l));
    assert.equal(entries.length, 1);
    const fields = entries[0]!.split(/\s+/);
    assert.equal(cronProblem(fields.slice(0, 5).join(" ")), undefined);
    assert.deepEqual(fields.slice(5), ["root", "/srv/bbaegok/prod/bin/ddns.sh", "2>&1", "|", "logger", "-t", "bbaegok-prod-ddns"]);
    assert.match(cron, /^SHELL=\/bin\/sh$/m);
  });
});
