// A stack's cron jobs as a server runs them: Debian's cron, started by the
// real systemd at boot (test/support/systemd-boot.ts: systemd as PID 1 of a
// network namespace of its own, with a disk of its own), reads the rendered
// /etc/cron.d files and runs the rendered scripts as root, in cron's own bare
// environment; their lines land in systemd's journal under their tags (the
// README's `journalctl -t bbaegok-prod-backup`, `-t bbaegok-prod-ddns`).
// - The backup: the server has no database and, at first, no S3 credentials
//   file: each run must fail loudly (logged, pinged /fail), the outcomes that
//   need no database or S3 there; a successful run is the backup tests'.
// - The DDNS job, against stand-ins on the server's loopback for Cloudflare's
//   trace endpoint and API (the script's own parameters for them): it sets
//   the records to the address the trace gives, with the token, once.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { backupPaths, backupScript, cronFile, restoreDrillScript, stackBackupTargets, uploaderScript } from "../../infra/backup/render.js";
import { ddnsCronFile, ddnsPaths, ddnsScript } from "../../infra/dns/render.js";
import { stackNames } from "../../infra/server/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { bootServer, enableUnit, serverDisk, type BootedServer, type ServerDisk } from "../support/systemd-boot.js";
import { freePort, tempDir, waitFor } from "../support/system.js";

const tag = String(process.pid % 100000);
const STACK = "prod";

describe("a stack's cron files on a server booted by systemd: Debian's cron runs the backup and the DDNS job as root, their lines in the journal under their tags", () => {
  const dir = tempDir("cron-boot");
  const ns = `bbcron-${tag}`;
  let disk: ServerDisk;
  let server: BootedServer | undefined;
  let listener: ChildProcess | undefined;
  const hits: string[] = [];
  const config = loadStack(STACK).config;
  const dataDir = join(dir.path, "srv");
  const paths = backupPaths(config.service, STACK, dataDir);
  const names = stackNames(config.service, STACK, dataDir);
  const ddns = ddnsPaths(config.service, STACK, names.stackDir, names.secretsDir);
  const DDNS_TOKEN = "cf-token-only-the-job-reads";
  const ZONE = "zone0123";
  const RECORDS = ["record0a", "record0b"];
  const HOME_ADDRESS = "203.0.113.7";

  before(async () => {
    spawnSync("ip", ["netns", "add", ns]);
    spawnSync("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    disk = serverDisk(join(dir.path, "root"), ns, [dir.path]);
    // cron opens a PAM session for each job: the server's PAM configuration, as Debian installs it.
    for (const d of ["pam.d", "security"]) cpSync(join("/etc", d), join(disk.root, "etc", d), { recursive: true });
    enableUnit(disk, "cron.service");

    // The stack's scripts and cron file as Pulumi installs them, the schedule due every minute.
    const spec = {
      service: config.service,
      stack: STACK,
      backup: { ...config.backup, schedule: "* * * * *" },
      targets: stackBackupTargets({ ...config, server: { ...config.server, dataDir } }, STACK),
      paths,
    };
    mkdirSync(paths.dir, { recursive: true });
    mkdirSync(paths.secretsDir, { recursive: true, mode: 0o700 });
    writeFileSync(paths.backupScript, backupScript(spec), { mode: 0o755 });
    writeFileSync(paths.drillScript, restoreDrillScript(spec), { mode: 0o755 });
    writeFileSync(paths.uploader, uploaderScript(), { mode: 0o755 });
    mkdirSync(dirname(join(disk.root, paths.cronFile)), { recursive: true });
    writeFileSync(join(disk.root, paths.cronFile), cronFile(spec), { mode: 0o644 });

    // The health check, on the server's loopback.
    const port = await freePort();
    listener = spawn("ip", ["netns", "exec", ns, "python3", "-u", "-c", PING_SERVER, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    listener.stdout!.on("data", (d: Buffer) => hits.push(...d.toString().split("\n").filter(Boolean)));
    await waitFor("the health check to listen", () => hits.includes("listening"), 10_000, 50);
    writeFileSync(paths.pingUrlFile, `http://127.0.0.1:${port}/ping/backup-check\n`, { mode: 0o600 });

    // The DDNS job as Pulumi installs it (infra/dns), every minute, Cloudflare's endpoints stood in by the same server.
    const stand = `http://127.0.0.1:${port}`;
    mkdirSync(dirname(ddns.script), { recursive: true });
    mkdirSync(dirname(ddns.tokenFile), { recursive: true, mode: 0o700 });
    writeFileSync(ddns.tokenFile, DDNS_TOKEN, { mode: 0o400 });
    writeFileSync(
      ddns.script,
      ddnsScript({ stack: STACK, zoneId: ZONE, recordIds: RECORDS, written: { content: "192.0.2.10", proxied: true }, scriptPath: ddns.script, tokenFile: ddns.tokenFile, stateFile: ddns.stateFile, apiUrl: `${stand}/client/v4`, ipUrl: `${stand}/cdn-cgi/trace?ip=${HOME_ADDRESS}` }),
      { mode: 0o755 },
    );
    writeFileSync(join(disk.root, ddns.cronFile), ddnsCronFile("* * * * *", ddns.script, ddns.logTag), { mode: 0o644 });

    server = await bootServer(disk, `bbcron-${tag}`);
  });

  after(async () => {
    await server?.powerCut();
    listener?.kill();
    spawnSync("ip", ["netns", "del", ns]);
    dir.remove();
  });

  it("within a minute or so of the boot, cron runs the backup; without its S3 credentials it logs why to the journal and pings /fail", async () => {
    const booted = server!;
    const journal = (...args: string[]) => booted.run(["journalctl", "--no-pager", "-o", "cat", ...args]).stdout;
    await waitFor("the backup's failure ping", () => hits.includes("/ping/backup-check/fail"), 150_000, 500);
    assert.match(journal("-u", "cron.service"), new RegExp(`\\(root\\) CMD \\(${paths.backupScript.replace(/[/.]/g, "\\$&")} --scheduled`));
    const logged = journal("-t", paths.logTag);
    assert.match(logged, new RegExp(`backup\\.sh cannot run: the S3 credentials file ${paths.credentialsFile.replace(/[/.]/g, "\\$&")} is missing or unreadable`), logged);
    // The drill's schedule is not due: it ran too and exited at once, pinging nothing.
    assert.deepEqual(hits.filter((h) => h.startsWith("/ping")).filter((h) => h !== "/ping/backup-check/fail"), []);
  });

  it("the DDNS job: points both records at the address the trace gives, with the token, and says so in the journal; the next minute, the address unchanged, it calls nothing", async () => {
    const booted = server!;
    const patches = () => hits.filter((h) => h.startsWith("PATCH "));
    await waitFor("the DDNS job's updates", () => patches().length >= RECORDS.length, 150_000, 500);
    assert.deepEqual(patches().sort(), RECORDS.map((r) => `PATCH /client/v4/zones/${ZONE}/dns_records/${r} Bearer ${DDNS_TOKEN} {"content":"${HOME_ADDRESS}"}`).sort());
    assert.match(booted.run(["journalctl", "--no-pager", "-o", "cat", "-t", ddns.logTag]).stdout, new RegExp(`ddns of stack prod: records now point at ${HOME_ADDRESS.replace(/\./g, "\\.")} \\(were unknown\\)`));
    const traces = () => hits.filter((h) => h.startsWith("GET /cdn-cgi/trace")).length;
    const asked = traces();
    await waitFor("the next minute's run", () => traces() > asked, 90_000, 500);
    assert.equal(patches().length, RECORDS.length, "an unchanged address was sent again");
  });

  it("with its credentials in place, the next minute's run takes its lock under the boot's /run/lock and fails at the database (no Docker on this server), saying which and why, and pings /fail again", async () => {
    const booted = server!;
    const failures = () => hits.filter((h) => h === "/ping/backup-check/fail").length;
    const before = failures();
    writeFileSync(paths.credentialsFile, "[default]\naws_access_key_id = AKIATESTTESTTESTTEST\naws_secret_access_key = test\n", { mode: 0o600 });
    await waitFor("the next run's failure ping", () => failures() > before, 150_000, 500);
    const logged = booted.run(["journalctl", "--no-pager", "-o", "cat", "-t", paths.logTag]).stdout;
    assert.match(logged, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db\) failed: the database did not answer: Cannot connect to the Docker daemon/, logged);
    assert.match(logged, /backup of stack prod: \d+ of \d+ databases FAILED/);
    // Its lock where the program puts it, on the boot's fresh /run (systemd's tmpfiles made /run/lock).
    assert.equal(booted.run(["test", "-e", paths.lockFile]).status, 0, `no ${paths.lockFile}`);
  });
});

/**
 * The server's loopback stand-ins, printing each call (and "listening" once it listens): the health check
 * (the path alone), Cloudflare's trace endpoint (answers ip=<its ip parameter>) and API (a PATCH, printed with
 * its token and body, answered as a success).
 */
const PING_SERVER = `
import http.server, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/cdn-cgi/trace":
            print("GET " + url.path, flush=True)
            return self.answer(("fl=1\\nip=%s\\nts=0\\n" % urllib.parse.parse_qs(url.query)["ip"][0]).encode())
        print(self.path, flush=True)
        self.answer(b"OK")
    do_POST = do_GET
    def do_PATCH(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        print("PATCH %s %s %s" % (self.path, self.headers.get("Authorization", "none"), body), flush=True)
        self.answer(b'{"success":true,"errors":[],"messages":[],"result":{}}')
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
s.serve_forever()
`;
