// The backup's uploader (infra/backup/s3-put.py) run by Debian's python3 with
// Debian's python3-boto3, and the prod stack's backup script that uses it,
// against moto's S3 server: conditional writes (If-None-Match), aborted and
// listed multipart uploads, the retry of a write whose answer was lost, which
// is what this file checks. The bucket is set up as prod's: Object Lock with a
// default retention (which moto applies to a PutObject only, not to the
// uploader's multipart uploads).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { SERVER_PATH, renderStackScripts, runScript, writeDbExecHook, type RenderedScripts } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { MOTO_REGION, startMoto, type MotoServer } from "../support/moto.js";
import { REPO } from "../support/project.js";
import { answerLosingRelay } from "../support/relay.js";
import { freePort, tempDir, waitFor } from "../support/system.js";

const BUCKET = "bbaegok-prod-db-backups";
const UPLOADER = join(REPO, "infra", "backup", "s3-put.py");
const MiB = 1024 * 1024;
const SECRET = `never-printed-${randomBytes(8).toString("hex")}`;

/** S3's CRC32 of `data`: the big-endian value, base64. */
function crc32(data: Buffer): string {
  // zlib's CRC32 (the one S3 uses), computed by the server's own python3.
  const r = spawnSync("python3", ["-c", "import sys, zlib, base64; print(base64.b64encode(zlib.crc32(sys.stdin.buffer.read()).to_bytes(4, 'big')).decode())"], { input: data, env: { PATH: SERVER_PATH }, encoding: "utf8" });
  return r.stdout.trim();
}

interface Upload {
  status: number;
  stderr: string;
}

describe("the backup's uploader (infra/backup/s3-put.py, Debian's python3-boto3) against moto's S3 server", () => {
  let s3: MotoServer;
  let credentials: string;
  const dir = tempDir("s3-put");

  /** Runs the uploader as backup.sh does (SERVER_PATH, the server's python3); `feed` writes its stdin. */
  const put = (args: string[], feed?: (stdin: NodeJS.WritableStream, pid: number) => void | Promise<void>): Promise<Upload> =>
    new Promise((resolve) => {
      const child = spawn("python3", [UPLOADER, "--region", MOTO_REGION, "--endpoint-url", s3.endpoint, "--credentials-file", credentials, ...args], {
        env: { PATH: SERVER_PATH, HOME: "/nonexistent" },
        stdio: ["pipe", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.stdin.on("error", () => {}); // the uploader may stop reading early: that is what some tests check
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ status: code ?? (signal ? 128 : -1), stderr });
      });
      if (feed) void feed(child.stdin, child.pid!);
      else child.stdin.end();
    });
  /** Writes `data` and closes stdin. */
  const send = (data: Buffer) => (stdin: NodeJS.WritableStream) => {
    stdin.end(data);
  };
  const object = (key: string) => s3.get(BUCKET, key);

  before(async () => {
    s3 = await startMoto([{ name: BUCKET, objectLock: true }]);
    credentials = s3.credentialsFile(SECRET);
  });
  after(async () => {
    await s3?.stop();
    dir.remove();
  });

  it("puts a small input as a multipart upload of one CRC32-checked part, which an Object Lock bucket accepts", async () => {
    const data = Buffer.from("{\"format\": 1, \"이름\": \"빼곡 🥟\"}\n");
    const up = await put(["-", `s3://${BUCKET}/prod/small.json`, "--content-type", "application/json"], send(data));
    assert.equal(up.status, 0, up.stderr);
    assert.equal(up.stderr, "");
    assert.ok(object("prod/small.json").equals(data));
    const head = s3.head(BUCKET, "prod/small.json");
    assert.equal(head["ContentType"], "application/json");
    assert.match(String(head["ETag"]), /-1"$/, `expected one part: ${String(head["ETag"])}`);
    // A multipart object's checksum is the CRC32 of its parts' CRC32s, "-<parts>" after it (S3; moto leaves that out).
    assert.equal(String(head["ChecksumCRC32"]).replace(/-1$/, ""), crc32(Buffer.from(crc32(data), "base64")), "not the CRC32 of the one part's CRC32");
    // The bucket's default retention is S3's to apply, to every new version; moto 5.2.5 applies it to a
    // PutObject only (backup-identities.test.ts shows it there), not to a completed multipart upload.
  });

  it("refuses empty input: no backup is empty, and nothing is written", async () => {
    const empty = await put(["-", `s3://${BUCKET}/prod/empty.zst`], send(Buffer.alloc(0)));
    assert.equal(empty.status, 1);
    assert.equal(empty.stderr, `s3-put: upload to s3://${BUCKET}/prod/empty.zst refused: the input is empty; nothing was written\n`);
    assert.deepEqual(s3.keys(BUCKET, "prod/empty"), []);
    assert.deepEqual(s3.pendingUploads(BUCKET), []);
  });

  describe("when the answer to the request that wrote the object is lost, and botocore retries it", () => {
    /** The request that creates the object at `key`: a PutObject, or the completion of a multipart upload. */
    const creates = (key: string) => new RegExp(`^(PUT /${BUCKET}/${key} |POST /${BUCKET}/${key}\\?uploadId=)`);
    const s3Error = (status: string, code: string) => {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>forged by the test</Message></Error>`;
      return `HTTP/1.1 ${status}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    };
    const digestOf = (data: Buffer) => `${createHash("sha256").update(data).digest("hex")} ${data.length}\n`;
    const cases: { name: string; retry?: string }[] = [
      { name: "moto's own answer to the retry" },
      { name: "412 PreconditionFailed to the retry (the key is taken, by the first try)", retry: s3Error("412 Precondition Failed", "PreconditionFailed") },
      { name: "NoSuchUpload to the retry (the first try completed it)", retry: s3Error("404 Not Found", "NoSuchUpload") },
      { name: "409 ConditionalRequestConflict to the retry (the first try was completing)", retry: s3Error("409 Conflict", "ConditionalRequestConflict") },
    ];
    for (const [i, c] of cases.entries()) {
      for (const size of [100, 6 * MiB]) {
        it(`is a success with ${c.name}, ${size < MiB ? "one part" : "two parts"}: the one object is the input, the digest written`, async () => {
          const key = `prod/lost-${i}-${size}.zst`;
          const data = randomBytes(size);
          const relay = await answerLosingRelay(s3.endpoint, creates(key), c.retry);
          try {
            const out = join(dir.path, `digest-lost-${i}-${size}`);
            const up = await put(["--endpoint-url", relay.endpoint, "--part-size", "5", "--digest-file", out, "-", `s3://${BUCKET}/${key}`], send(data));
            assert.equal(relay.matched().length, 2, `the write was not retried once: ${relay.matched().join(" | ")}`);
            assert.equal(up.status, 0, up.stderr);
            assert.equal(up.stderr, "");
            assert.ok(object(key).equals(data), "the object is not the input");
            assert.equal(readFileSync(out, "utf8"), digestOf(data));
            assert.deepEqual(s3.pendingUploads(BUCKET), []);
          } finally {
            await relay.close();
          }
        });
      }
    }

    it("waits for a first try still completing when the retry gets 409, and is then a success", async () => {
      const key = "prod/lost-completing.zst";
      const data = randomBytes(100);
      // The first completion reaches moto 3 s after botocore gave up on it and retried.
      const relay = await answerLosingRelay(s3.endpoint, creates(key), s3Error("409 Conflict", "ConditionalRequestConflict"), 3000);
      try {
        const up = await put(["--endpoint-url", relay.endpoint, "-", `s3://${BUCKET}/${key}`], send(data));
        assert.equal(relay.matched().length, 2, relay.matched().join(" | "));
        assert.equal(up.status, 0, up.stderr);
        assert.ok(object(key).equals(data), "the object is not the input");
        assert.deepEqual(s3.pendingUploads(BUCKET), []);
      } finally {
        await relay.close();
      }
    });

    it("still refuses a key another object holds, and aborts, when the refusal comes to a retry", async () => {
      // The first try is refused and that answer lost; the retry is refused too, and the upload is still open.
      const relay = await answerLosingRelay(s3.endpoint, creates("prod/small.json"));
      try {
        const up = await put(["--endpoint-url", relay.endpoint, "-", `s3://${BUCKET}/prod/small.json`], send(Buffer.from("replacement\n")));
        assert.equal(relay.matched().length, 2);
        assert.equal(up.status, 3, up.stderr);
        assert.equal(up.stderr, `s3-put: an object already exists at s3://${BUCKET}/prod/small.json: backups are never overwritten; the multipart upload was aborted, nothing was written\n`);
        assert.deepEqual(s3.pendingUploads(BUCKET), []);
      } finally {
        await relay.close();
      }
    });
  });

  it("uploads a file the same way", async () => {
    const file = join(dir.path, "manifest.json");
    writeFileSync(file, "{}\n");
    const up = await put([file, `s3://${BUCKET}/prod/file.json`, "--content-type", "application/json"]);
    assert.equal(up.status, 0, up.stderr);
    assert.equal(object("prod/file.json").toString(), "{}\n");
  });

  it("streams a longer input as a multipart upload of CRC32-checked parts, holding a few parts in memory, never the stream", async () => {
    // 160 MiB in 5 MiB parts, written a chunk at a time as a dump would; the
    // uploader's peak memory is read by a python3 parent (getrusage of its child).
    const chunk = randomBytes(MiB);
    const total = 160;
    const expected = createHash("sha256");
    for (let i = 0; i < total; i++) expected.update(chunk);
    const measured = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        "python3",
        ["-c", "import resource, subprocess, sys\nstatus = subprocess.call(sys.argv[1:])\nprint(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(status)", "python3", UPLOADER, "--region", MOTO_REGION, "--endpoint-url", s3.endpoint, "--credentials-file", credentials, "--part-size", "5", "-", `s3://${BUCKET}/prod/stream.zst`, "--content-type", "application/zstd"],
        { env: { PATH: SERVER_PATH }, stdio: ["pipe", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
      void (async () => {
        for (let i = 0; i < total; i++) {
          if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once("drain", r));
        }
        child.stdin.end();
      })();
    });
    assert.equal(measured.status, 0, measured.stderr);
    const peakMiB = Number(measured.stdout.trim()) / 1024;
    // python3 with boto3 loaded is about 75 MiB here; three 5 MiB parts at most come on top.
    assert.ok(peakMiB < 120, `the uploader's peak memory was ${peakMiB.toFixed(0)} MiB for a ${total} MiB stream`);
    const head = s3.head(BUCKET, "prod/stream.zst");
    assert.equal(head["ContentLength"], total * MiB);
    assert.match(String(head["ETag"]), /-32"$/, `expected 32 parts of 5 MiB: ${String(head["ETag"])}`);
    assert.ok(head["ChecksumCRC32"], "no CRC32 on the object");
    assert.equal(head["ContentType"], "application/zstd");
    assert.equal(createHash("sha256").update(object("prod/stream.zst")).digest("hex"), expected.digest("hex"));
    assert.deepEqual(s3.pendingUploads(BUCKET), []);
  });

  it("writes the sha256 and size of what it uploaded to --digest-file, single put or multipart, and nothing there when the upload fails", async () => {
    const digestOf = (data: Buffer) => `${createHash("sha256").update(data).digest("hex")} ${data.length}\n`;
    const digest = join(dir.path, "upload.meter");
    const small = Buffer.from("한 줄 🥟\n");
    const single = await put(["-", `s3://${BUCKET}/prod/digest-small.zst`, "--digest-file", digest], send(small));
    assert.equal(single.status, 0, single.stderr);
    assert.equal(readFileSync(digest, "utf8"), digestOf(object("prod/digest-small.zst")));
    assert.equal(readFileSync(digest, "utf8"), digestOf(small));

    // 3 parts of 5 MiB and a short last one, written in chunks that cut across parts.
    const data = randomBytes(17 * MiB + 3);
    const multipart = await put(["-", `s3://${BUCKET}/prod/digest-parts.zst`, "--part-size", "5", "--digest-file", digest], async (stdin) => {
      for (let at = 0; at < data.length; at += 3 * MiB + 1) {
        if (!stdin.write(data.subarray(at, at + 3 * MiB + 1))) await new Promise((r) => stdin.once("drain", r));
      }
      stdin.end();
    });
    assert.equal(multipart.status, 0, multipart.stderr);
    assert.match(String(s3.head(BUCKET, "prod/digest-parts.zst")["ETag"]), /-4"$/);
    assert.equal(readFileSync(digest, "utf8"), digestOf(object("prod/digest-parts.zst")));

    rmSync(digest);
    const refused = await put(["-", `s3://${BUCKET}/prod/digest-parts.zst`, "--part-size", "5", "--digest-file", digest], send(randomBytes(6 * MiB)));
    assert.equal(refused.status, 3);
    assert.ok(!existsSync(digest), "a refused upload wrote a digest");
  });

  it("refuses a second upload to the same key (412 Precondition Failed), single or multipart: the first object stays, no upload is left pending", async () => {
    const first = object("prod/small.json");
    const small = await put(["-", `s3://${BUCKET}/prod/small.json`], send(Buffer.from("replacement\n")));
    assert.equal(small.status, 3);
    assert.equal(small.stderr, `s3-put: an object already exists at s3://${BUCKET}/prod/small.json: backups are never overwritten; the multipart upload was aborted, nothing was written\n`);
    assert.ok(object("prod/small.json").equals(first), "the object was overwritten");

    const streamed = await put(["-", `s3://${BUCKET}/prod/stream.zst`, "--part-size", "5"], send(randomBytes(11 * MiB)));
    assert.equal(streamed.status, 3);
    assert.equal(streamed.stderr, `s3-put: an object already exists at s3://${BUCKET}/prod/stream.zst: backups are never overwritten; the multipart upload was aborted, nothing was written\n`);
    assert.equal(s3.head(BUCKET, "prod/stream.zst")["ContentLength"], 160 * MiB, "the object was overwritten");
    assert.deepEqual(s3.pendingUploads(BUCKET), []);
  });

  it("writes nothing when a stage before it failed, even though its input ended cleanly: no object, the multipart upload aborted", async () => {
    const failed = join(dir.path, "dump.status");
    const passed = join(dir.path, "zstd.status");
    writeFileSync(failed, "137\n");
    writeFileSync(passed, "0\n");
    const status = ["--upstream-status", failed, "--upstream-status", passed];
    const streamed = await put(["-", `s3://${BUCKET}/prod/cut.zst`, "--part-size", "5", ...status], send(randomBytes(12 * MiB)));
    assert.equal(streamed.status, 4);
    assert.equal(streamed.stderr, `s3-put: upload to s3://${BUCKET}/prod/cut.zst abandoned: a stage before it failed: dump (exit 137); the multipart upload was aborted, nothing was written\n`);
    const small = await put(["-", `s3://${BUCKET}/prod/cut-small.zst`, "--upstream-status", passed, "--upstream-status", join(dir.path, "measure.status")], send(Buffer.from("x")));
    assert.equal(small.status, 4);
    assert.match(small.stderr, /abandoned: a stage before it failed: measure \(no exit status\); nothing was written\n$/);
    assert.deepEqual(s3.keys(BUCKET, "prod/cut"), []);
    assert.deepEqual(s3.pendingUploads(BUCKET), []);
  });

  it("aborts its multipart upload when stopped by SIGTERM midway", async () => {
    const stopped = await put(["-", `s3://${BUCKET}/prod/stopped.zst`, "--part-size", "5"], async (stdin, pid) => {
      stdin.write(randomBytes(12 * MiB));
      // Stopped once parts are on their way, with the input still open.
      await waitFor("a multipart upload to begin", () => s3.pendingUploads(BUCKET).includes("prod/stopped.zst"), 30_000, 100);
      process.kill(pid, "SIGTERM");
    });
    assert.equal(stopped.status, 143, stopped.stderr);
    assert.equal(stopped.stderr, `s3-put: upload to s3://${BUCKET}/prod/stopped.zst stopped by SIGTERM; the multipart upload was aborted, nothing was written\n`);
    assert.deepEqual(s3.keys(BUCKET, "prod/stopped"), []);
    assert.deepEqual(s3.pendingUploads(BUCKET), []);
  });

  it("fails with one line naming what failed, never printing the credentials", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await new Promise<Upload>((resolve) => {
      const child = spawn("python3", [UPLOADER, "--region", MOTO_REGION, "--endpoint-url", closed, "--credentials-file", credentials, "-", `s3://${BUCKET}/prod/x`], { env: { PATH: SERVER_PATH }, stdio: ["pipe", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("close", (code) => resolve({ status: code ?? -1, stderr }));
      child.stdin.end("data");
    });
    assert.equal(unreachable.status, 1);
    assert.equal(unreachable.stderr, `s3-put: upload to s3://${BUCKET}/prod/x failed: Could not connect to the endpoint URL: "${closed}/${BUCKET}/prod/x?uploads"\n`);
    // A credentials file that does not parse: configparser would quote the line that holds the secret.
    const broken = join(dir.path, "broken-credentials");
    writeFileSync(broken, `[default]\naws_access_key_id = AKIAMOTOTEST\n${SECRET}\n`, { mode: 0o600 });
    const unparsable = await put(["-", `s3://${BUCKET}/prod/x`, "--credentials-file", broken], send(Buffer.from("data")));
    assert.equal(unparsable.status, 2);
    assert.equal(unparsable.stderr, `s3-put: the credentials file ${broken} has no [default] profile with aws_access_key_id and aws_secret_access_key\n`);
    for (const run of [unreachable, unparsable]) assert.ok(!run.stderr.includes(SECRET), "the secret key was printed");
    assert.deepEqual(s3.keys(BUCKET, "prod/x"), []);
  });
});

describe("the prod stack's backup script against moto's S3 server (an Object Lock bucket, as prod's)", () => {
  let db: MariaDb;
  let s3: MotoServer;
  let scripts: RenderedScripts;
  let env: Record<string, string>;
  const dir = tempDir("backup-uploads");
  const DB = "bbaegok";

  before(async () => {
    // One after the other: when one fails to start, `after` still stops the other.
    db = await startMariaDb();
    s3 = await startMoto([{ name: BUCKET, objectLock: true }]);
    scripts = renderStackScripts("prod", dir.path, (t) => t.engine === "mariadb");
    // 48 MiB of random bytes: a dump of about 100 MB (hex) that zstd leaves at
    // about half, several 16 MiB parts.
    db.sql(`CREATE DATABASE ${DB};
USE ${DB};
CREATE TABLE blobs (id INT PRIMARY KEY, body BLOB NOT NULL);
SET SESSION max_recursive_iterations = 100000;
INSERT INTO blobs WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 49152) SELECT n, RANDOM_BYTES(1024) FROM seq;`);
    env = {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile(SECRET),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
  });
  after(async () => {
    await Promise.all([db?.stop(), s3?.stop()]);
    dir.remove();
  });

  it("backs up: the dump streamed as a multipart upload with CRC32 parts, then the manifest, both conditional writes", async () => {
    const run = await runScript(scripts.backup, env);
    assert.equal(run.status, 0, run.stderr);
    const keys = s3.keys(BUCKET, `prod/${DB}/`);
    assert.equal(keys.length, 2, String(keys));
    const manifest = JSON.parse(s3.get(BUCKET, keys.find((k) => k.endsWith(".manifest.json"))!).toString("utf8")) as BackupManifest;
    const data = s3.get(BUCKET, manifest.key);
    assert.equal(manifest.size, data.length);
    assert.equal(manifest.sha256, createHash("sha256").update(data).digest("hex"));
    assert.deepEqual(manifest.tables, [{ name: "blobs", rows: 49152 }]);
    const head = s3.head(BUCKET, manifest.key);
    assert.match(String(head["ETag"]), /-[2-9]"$/, `not a multipart upload: ${String(head["ETag"])}`);
    assert.ok(head["ChecksumCRC32"]);
    assert.equal(head["ContentType"], "application/zstd");
    assert.ok(!run.stderr.includes(SECRET));
  });

  it("a dump killed after parts went up leaves no object and no pending multipart upload", async () => {
    const before_ = s3.keys(BUCKET, `prod/${DB}/`);
    const run = await runScript(scripts.backup, { ...env, TEST_KILL_DUMP_AFTER: String(70_000_000) });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db\) failed at: dump \(exit 137\) upload \(exit 4\); no manifest written/);
    assert.match(run.stderr, /s3-put: upload to s3:\/\/bbaegok-prod-db-backups\/prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst abandoned: a stage before it failed: dump \(exit 137\); the multipart upload was aborted, nothing was written/);
    assert.deepEqual(s3.keys(BUCKET, `prod/${DB}/`), before_, "the killed run left an object");
    assert.deepEqual(s3.pendingUploads(BUCKET), [], "the killed run left a multipart upload");
  });

  it("does not start without python3's boto3 or without its uploader, saying what is missing (exit 3)", async () => {
    // A python3 without boto3 first on the PATH.
    const stubs = join(dir.path, "no-boto3");
    mkdirSync(stubs, { recursive: true });
    writeFileSync(join(stubs, "python3"), "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'boto3'\" >&2\nexit 1\n", { mode: 0o755 });
    const noBoto = await runScript(scripts.backup, { ...env, PATH: `${stubs}:${SERVER_PATH}` });
    assert.equal(noBoto.status, 3);
    assert.match(noBoto.stderr, /backup\.sh cannot run: python3's boto3 module is missing on .* \(Debian: apt-get install python3-boto3\)/);
    const uploader = join(dir.path, "s3-put.py");
    rmSync(uploader);
    try {
      const noUploader = await runScript(scripts.backup, env);
      assert.equal(noUploader.status, 3);
      assert.match(noUploader.stderr, /backup\.sh cannot run: its uploader .*\/s3-put\.py is missing \(Pulumi installs it beside the script\)/);
    } finally {
      renderStackScripts("prod", dir.path, (t) => t.engine === "mariadb");
    }
  });
});
