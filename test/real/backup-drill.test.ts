// npm run drill: the prod stack's real restore-drill script run through the
// same runDrill the command uses, with a local shell where production has
// ssh, against a real MariaDB, moto's S3 server on loopback (a versioned
// bucket, as every backup bucket), Debian's AWS CLI and zstd. What a
// compromised server could leave in the bucket (a second version of a key, a
// delete marker, a future-dated key) is planted here with the operator's key,
// since moto enforces no bucket policy. The command itself (ssh's arguments,
// sudo, exit statuses) runs with stand-ins for `ssh` and `sudo` on its PATH,
// since there is no server here.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { localShell } from "../../ops/deploy/server.js";
import { runDrill } from "../../ops/restore/drill.js";
import { loadStack } from "../../stacks/config/load.js";
import { SERVER_PATH, renderStackScripts, runNodeCommand, runScript, startPingServer, writeDbExecHook, writeDrillHook, type RenderedScripts } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { REPO } from "../support/project.js";
import { tempDir } from "../support/system.js";

const STACK = "prod";
const DB = "bbaegok";
const HOUR = 3600;
/** What a planted dump creates if the drill ever restores it: a database the drill's cleanup does not drop. */
const PLANTED_DB = "planted_by_server";

const SEED = `
CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ${DB};
CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, bio TEXT NULL);
INSERT INTO users VALUES (1, '김철수', '안녕하세요 👋'), (2, '이영희', NULL), (3, 'O''Brien', 'a),(b');
CREATE TABLE orders (id INT PRIMARY KEY, user_id INT NOT NULL, total DECIMAL(10,2) NOT NULL);
INSERT INTO orders VALUES (1, 1, 10.50), (2, 1, 3.00), (3, 2, 99.99);
CREATE VIEW user_orders AS SELECT u.name, COUNT(o.id) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.name;
`;

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("npm run drill (the prod stack's restore drill, run through runDrill with a local shell)", () => {
  let db: MariaDb;
  let s3: MotoServer;
  let scripts: RenderedScripts;
  let ping: Awaited<ReturnType<typeof startPingServer>>;
  const dir = tempDir("backup-drill");
  let env: Record<string, string>;
  let takenAt: number;
  /** The one backup the job wrote: its manifest key, its manifest and its data key. */
  let manifestKey: string;
  let manifest: BackupManifest;

  const drill = async (extra: Record<string, string> = {}, database?: string) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    let err = "";
    stdout.on("data", (d: Buffer) => (out += d.toString()));
    stderr.on("data", (d: Buffer) => (err += d.toString()));
    const hitsBefore = ping.hits.length;
    const status = await runDrill({ shell: localShell({ ...env, ...extra }), script: scripts.drill, privilege: "none", ...(database ? { database } : {}), stdout, stderr });
    return { status, stdout: out, stderr: err, pings: ping.hits.slice(hitsBefore) };
  };
  /** Writes `body` at `key` with the operator's key (a new version when the key exists); returns the version's id. */
  let files = 0;
  const put = (key: string, body: Buffer | string): string => {
    const file = join(dir.path, `body-${++files}`);
    writeFileSync(file, body);
    const r = s3.aws(["s3api", "put-object", "--bucket", scripts.bucket, "--key", key, "--body", file, "--output", "json"]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { VersionId: string }).VersionId;
  };
  /** Removes one version (or delete marker) of a key, putting the bucket back as the backup job left it. */
  const dropVersion = (key: string, versionId: string) => {
    const r = s3.aws(["s3api", "delete-object", "--bucket", scripts.bucket, "--key", key, "--version-id", versionId]);
    assert.equal(r.status, 0, r.stderr);
  };
  /** A dump that, restored, creates PLANTED_DB: zstd-compressed as the job's are. */
  const plantedDump = () => {
    const r = spawnSync("zstd", ["--stdout", "--quiet"], { input: `CREATE DATABASE ${PLANTED_DB};\n`, env: { PATH: SERVER_PATH } });
    assert.equal(r.status, 0, r.stderr?.toString());
    return r.stdout;
  };
  const plantedRestored = () => db.sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${PLANTED_DB}'`).trim() !== "0";

  before(async () => {
    [db, s3, ping] = await Promise.all([startMariaDb(), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]), startPingServer()]);
    scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "mariadb");
    db.sql(SEED);
    const pingFile = join(dir.path, "ping-url");
    writeFileSync(pingFile, `${ping.url}\n`, { mode: 0o600 });
    env = {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_DRILL_DB: writeDrillHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("drill-test-secret"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "drill.lock"),
      BACKUP_PING_URL_FILE: pingFile,
      // Debian's tools, as on the server, for the drill run through localShell too.
      PATH: SERVER_PATH,
    };
    const backup = await runScript(scripts.backup, { ...env, BACKUP_LOCK_FILE: join(dir.path, "backup.lock") });
    assert.equal(backup.status, 0, backup.stderr);
    manifestKey = s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json")).pop()!;
    manifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
    const stamp = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\.manifest\.json$/.exec(manifestKey)!;
    takenAt = Date.UTC(Number(stamp[1]), Number(stamp[2]) - 1, Number(stamp[3]), Number(stamp[4]), Number(stamp[5]), Number(stamp[6])) / 1000;
  });
  after(async () => {
    await Promise.all([db?.stop(), s3?.stop(), ping?.stop()]);
    dir.remove();
  });

  it("runs the drill script through the shell, streams its output and exits with its status: passed", async () => {
    const run = await drill();
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /restore drill of prod\/bbaegok \(mariadb\) passed: s3:\/\/bbaegok-prod-db-backups\/prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst restored, 2 tables and 1 objects match the manifest/);
    assert.match(run.stderr, /restore drill of stack prod: 1 of 1 databases restored, matched their manifests and are within the backup schedule/);
    assert.deepEqual(run.pings, ["/ping/test-check/log"]);
    assert.equal(db.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'restore_drill'").trim(), "0", "the throwaway database was left behind");
  });

  it("drills one database with --database, and the script refuses one it does not back up (status 2, no ping)", async () => {
    const one = await drill({}, DB);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stderr, /restore drill of prod\/bbaegok \(mariadb\) passed/);
    // This rendering of prod's script holds only the MariaDB target.
    const unknown = await drill({}, "metabase");
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /restore drill of stack prod: no database "metabase" here; its databases: bbaegok/);
    assert.deepEqual(unknown.pings, []);
  });

  it("fails as STALE, and pings /fail, once the newest backup is older than prod's daily schedule allows (24 h + 2 h grace)", async () => {
    const inTime = await drill({ BACKUP_NOW: String(takenAt + 26 * HOUR - 60) });
    assert.equal(inTime.status, 0, inTime.stderr);
    const late = await drill({ BACKUP_NOW: String(takenAt + 26 * HOUR + 60) });
    assert.equal(late.status, 1, late.stderr);
    assert.match(
      late.stderr,
      /restore drill of prod\/bbaegok \(mariadb\) FAILED for s3:\/\/\S+: STALE: the newest backup was taken 26 h ago \(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\), more than the 26 h the backup schedule "0 4 \* \* \*" allows/,
    );
    assert.doesNotMatch(late.stderr, /row counts differ/, "the restore itself still matched");
    assert.deepEqual(late.pings, ["/ping/test-check/fail"]);
  });

  describe("what a compromised server's key could leave in the bucket", () => {
    it("a second version written over the newest backup's data object: FAILED naming the key SUSPICIOUS, and only its first version is restored, never the planted bytes", async () => {
      const planted = put(manifest.key, plantedDump());
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(
          run.stderr,
          new RegExp(`restore drill of prod/bbaegok \\(mariadb\\) FAILED for s3://${escaped(scripts.bucket)}/${escaped(manifest.key)}: SUSPICIOUS: ${escaped(manifest.key)} has 2 versions: it was written or hidden after its first upload, which is the one read`),
        );
        assert.doesNotMatch(run.stderr, /sha256|row counts differ/, "the first version, which matches its manifest, is what was read");
        assert.equal(plantedRestored(), false, "the drill restored the planted version");
        assert.deepEqual(run.pings, ["/ping/test-check/fail"]);
      } finally {
        dropVersion(manifest.key, planted);
      }
    });

    it("a second version written over the newest manifest: FAILED naming the manifest SUSPICIOUS, and the first manifest is the one compared", async () => {
      const forged = { ...manifest, tables: manifest.tables.map((t) => (t.name === "users" ? { ...t, rows: t.rows + 1 } : t)) };
      const planted = put(manifestKey, JSON.stringify(forged));
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(run.stderr, new RegExp(`FAILED for s3://${escaped(scripts.bucket)}/${escaped(manifest.key)}: SUSPICIOUS: ${escaped(manifestKey)} has 2 versions`));
        assert.doesNotMatch(run.stderr, /row counts differ/, "the rewritten manifest was compared");
        assert.deepEqual(run.pings, ["/ping/test-check/fail"]);
      } finally {
        dropVersion(manifestKey, planted);
      }
    });

    it("a delete marker on the newest manifest: FAILED naming it, and the backup it hides is still drilled at its first version", async () => {
      const r = s3.aws(["s3api", "delete-object", "--bucket", scripts.bucket, "--key", manifestKey, "--output", "json"]);
      assert.equal(r.status, 0, r.stderr);
      const marker = (JSON.parse(r.stdout) as { VersionId: string }).VersionId;
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(run.stderr, new RegExp(`FAILED for s3://${escaped(scripts.bucket)}/${escaped(manifest.key)}: SUSPICIOUS: ${escaped(manifestKey)} has 2 versions: it was written or hidden after its first upload`));
        assert.doesNotMatch(run.stderr, /sha256|row counts differ|no backup with a manifest/);
        assert.deepEqual(run.pings, ["/ping/test-check/fail"]);
      } finally {
        dropVersion(manifestKey, marker);
      }
    });

    it("a future-dated backup (manifest and dump dated 2999): refused and named, the real newest is drilled, the planted dump never restored", async () => {
      const future = `${STACK}/${DB}/29991231T000000Z`;
      const dump = plantedDump();
      // A backup that matches its own manifest: only its date gives it away.
      const forged: BackupManifest = { ...manifest, key: `${future}.sql.zst`, sha256: createHash("sha256").update(dump).digest("hex"), size: dump.length, tables: [], objects: [] };
      put(`${future}.sql.zst`, dump);
      put(`${future}.manifest.json`, JSON.stringify(forged));
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(
          run.stderr,
          new RegExp(
            `FAILED for s3://${escaped(scripts.bucket)}/${escaped(manifest.key)}: .*SUSPICIOUS: ${escaped(future)}\\.manifest\\.json is dated 29991231T000000Z, after S3 received it \\(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z; 15 min of clock skew allowed\\): refused, a future-dated key is never the newest backup`,
          ),
        );
        assert.match(run.stderr, new RegExp(`SUSPICIOUS: ${escaped(future)}\\.sql\\.zst is dated 29991231T000000Z`));
        assert.equal(plantedRestored(), false, "the drill restored the future-dated dump");
        assert.deepEqual(run.pings, ["/ping/test-check/fail"]);
      } finally {
        for (const key of [`${future}.manifest.json`, `${future}.sql.zst`]) s3.purge(scripts.bucket, key);
      }
    });

    it("orders backups by S3's LastModified, not by the name: a backup received later under an earlier-dated name is the newest (and STALE by its name)", async () => {
      const older = `${STACK}/${DB}/20200101T000000Z`;
      put(`${older}.sql.zst`, s3.get(scripts.bucket, manifest.key));
      put(`${older}.manifest.json`, JSON.stringify({ ...manifest, key: `${older}.sql.zst` }));
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(run.stderr, new RegExp(`FAILED for s3://${escaped(scripts.bucket)}/${escaped(older)}\\.sql\\.zst: STALE: the newest backup was taken \\d+ h ago \\(2020-01-01T00:00:00Z\\)`));
        assert.doesNotMatch(run.stderr, /SUSPICIOUS|row counts differ|sha256/);
      } finally {
        for (const key of [`${older}.manifest.json`, `${older}.sql.zst`]) s3.purge(scripts.bucket, key);
      }
    });

    it("reads every page of the listing: with 1,000 other keys listed before them, the newest backup is still found and drilled", async () => {
      // ListObjectVersions answers 1,000 entries a page, in key order: these fill the first page.
      const fillers = Array.from({ length: 1000 }, (_, i) => `${STACK}/${DB}/0-filler-${String(i).padStart(4, "0")}`);
      const boto = spawnSync(
        "python3",
        ["-c", "import sys, boto3\nc = boto3.client('s3', endpoint_url=sys.argv[1], region_name='ap-northeast-2', aws_access_key_id='moto', aws_secret_access_key='moto')\nfor k in sys.stdin.read().split():\n    c.put_object(Bucket=sys.argv[2], Key=k, Body=b'x')", s3.endpoint, scripts.bucket],
        { input: fillers.join("\n"), env: { PATH: SERVER_PATH, HOME: "/nonexistent" }, encoding: "utf8", timeout: 300_000 },
      );
      assert.equal(boto.status, 0, boto.stderr);
      try {
        const run = await drill();
        assert.equal(run.status, 0, run.stderr);
        assert.match(run.stderr, new RegExp(`passed: s3://${escaped(scripts.bucket)}/${escaped(manifest.key)} restored`));
      } finally {
        const purge = spawnSync(
          "python3",
          ["-c", "import sys, boto3\nc = boto3.client('s3', endpoint_url=sys.argv[1], region_name='ap-northeast-2', aws_access_key_id='moto', aws_secret_access_key='moto')\nfor v in c.list_object_versions(Bucket=sys.argv[2], Prefix=sys.argv[3]).get('Versions', []):\n    c.delete_object(Bucket=sys.argv[2], Key=v['Key'], VersionId=v['VersionId'])", s3.endpoint, scripts.bucket, `${STACK}/${DB}/0-filler-`],
          { env: { PATH: SERVER_PATH, HOME: "/nonexistent" }, encoding: "utf8", timeout: 300_000 },
        );
        assert.equal(purge.status, 0, purge.stderr);
      }
    });

    it("a manifest naming another run's data object: FAILED, nothing restored", async () => {
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
      const other = `${STACK}/${DB}/${stamp}.manifest.json`;
      put(other, JSON.stringify(manifest));
      try {
        const run = await drill();
        assert.equal(run.status, 1, run.stderr);
        assert.match(run.stderr, new RegExp(`restore drill of prod/bbaegok \\(mariadb\\) FAILED: the manifest s3://${escaped(scripts.bucket)}/${escaped(other)} names ${escaped(manifest.key)}, not its own run's ${escaped(other.replace(".manifest.json", ".sql.zst"))}`));
        assert.deepEqual(run.pings, ["/ping/test-check/fail"]);
      } finally {
        s3.purge(scripts.bucket, other);
      }
    });
  });

  describe("the command over ssh (stand-ins for ssh and sudo record what they are given)", () => {
    const stubs = join(dir.path, "stubs");
    const sshLog = join(dir.path, "ssh-args");
    const sudoLog = join(dir.path, "sudo-args");
    const args = (file: string) => readFileSync(file, "utf8").split("\0").slice(0, -1);
    const command = (argv: string[], extra: Record<string, string> = {}) =>
      runNodeCommand(join(REPO, "ops", "drill.ts"), argv, { ...process.env, PATH: `${stubs}:${process.env.PATH}`, STUB_SSH_LOG: sshLog, STUB_SUDO_LOG: sudoLog, ...extra });

    before(() => {
      mkdirSync(stubs, { recursive: true });
      const write = (name: string, body: string) => writeFileSync(join(stubs, name), `#!/usr/bin/env bash\n${body}`, { mode: 0o755 });
      // ssh: records its arguments, then hands the remote command (all after "--") to sh, as the remote login shell would.
      write("ssh", `printf '%s\\0' "$@" > "$STUB_SSH_LOG"\n[[ -n \${STUB_SSH_STATUS:-} ]] && exit "$STUB_SSH_STATUS"\nwhile [[ $# -gt 0 && $1 != -- ]]; do shift; done\nshift\nexec sh -c "$*"\n`);
      // sudo: records its arguments and plays a drill that prints on both streams.
      write("sudo", `printf '%s\\0' "$@" > "$STUB_SUDO_LOG"\necho "drill output on stdout"\necho "drill log line on stderr" >&2\nexit "\${STUB_DRILL_STATUS:-0}"\n`);
    });

    it("runs <dataDir>/prod/backup/restore-drill.sh as root through the install helper (sudo -n bbaegok-install run) over ssh in BatchMode to the stack's user, host and port, streaming its output", async () => {
      const run = await command(["--stack", STACK, "--database", DB]);
      assert.equal(run.status, 0, run.stderr);
      const ssh = args(sshLog);
      assert.deepEqual(ssh.slice(0, 12), [
        ...["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30"],
        ...["-o", "ControlMaster=auto", "-o", "ControlPath=~/.ssh/bbaegok-%C", "-o", "ControlPersist=60"],
      ]);
      // The stack file's pinned host key is the only one accepted.
      const config = loadStack(STACK, REPO).config;
      assert.deepEqual(ssh.slice(12, 18), ["-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", `KnownHostsCommand=/bin/echo %H ${config.server.ssh.hostKey}`]);
      assert.deepEqual(ssh.slice(18), ["-p", "22022", "deploy@home.bbaegok.kr", "--", "sh -c 'sudo -n /usr/local/sbin/bbaegok-install run '\\''/srv/bbaegok/prod/backup/restore-drill.sh'\\'' '\\''--database'\\'' '\\''bbaegok'\\'''"]);
      assert.deepEqual(args(sudoLog), ["-n", "/usr/local/sbin/bbaegok-install", "run", "/srv/bbaegok/prod/backup/restore-drill.sh", "--database", "bbaegok"]);
      assert.match(run.stdout, /drill output on stdout/);
      assert.match(run.stderr, /Running the restore drill of prod \(bbaegok\) on deploy@home\.bbaegok\.kr:22022: \/srv\/bbaegok\/prod\/backup\/restore-drill\.sh\n[^]*drill log line on stderr/);
      assert.match(run.stderr, /Restore drill of prod passed on deploy@home\.bbaegok\.kr:22022/);
    });

    it("exits with the drill's status and says what it means: 1 failed, 75 another drill running, 255 ssh could not connect", async () => {
      const failed = await command(["--stack", STACK], { STUB_DRILL_STATUS: "1" });
      assert.equal(failed.status, 1);
      assert.deepEqual(args(sudoLog), ["-n", "/usr/local/sbin/bbaegok-install", "run", "/srv/bbaegok/prod/backup/restore-drill.sh"]);
      assert.match(failed.stderr, /Restore drill of prod FAILED on deploy@home\.bbaegok\.kr:22022/);
      const locked = await command(["--stack", STACK], { STUB_DRILL_STATUS: "75" });
      assert.equal(locked.status, 75);
      assert.match(locked.stderr, /another drill is running/);
      const unreachable = await command(["--stack", STACK], { STUB_SSH_STATUS: "255" });
      assert.equal(unreachable.status, 255);
      assert.match(unreachable.stderr, /did not run: ssh could not reach deploy@home\.bbaegok\.kr:22022/);
    });

    it("refuses a database the stack does not back up, a missing --stack and an unknown stack with status 2, before any ssh", async () => {
      rmSync(sshLog, { force: true });
      const unknownDb = await command(["--stack", STACK, "--database", "nope"]);
      assert.equal(unknownDb.status, 2);
      assert.match(unknownDb.stderr, /drill: stack prod backs up no database "nope"; its databases: bbaegok, metabase/);
      const noStack = await command([]);
      assert.equal(noStack.status, 2);
      assert.match(noStack.stderr, /drill: --stack is required\nusage: npm run drill/);
      const unknownStack = await command(["--stack", "no-such-stack"]);
      assert.equal(unknownStack.status, 2);
      assert.match(unknownStack.stderr, /^drill: .*no-such-stack/m);
      assert.equal(existsSync(sshLog), false, "ssh ran");
    });
  });
});
