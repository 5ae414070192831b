// npm run bench:backup — what a backup costs next to a plain dump, and how
// long a restore takes, on a MariaDB database of BENCH_SIZE_MB (default 1024
// MiB of InnoDB tablespace).
//
// One run, everything on this machine and stopped at the end: a MariaDB server
// of its own (bench/backup/data.ts) filled by LOAD DATA with shop-like data;
// then, BENCH_ROUNDS times (default 2), alternating:
//   plain     `mariadb-dump <the backup's options> bbaegok > file`
//   streamed  the prod stack's real backup script: dump → zstd → s3-put.py
//             (python3, boto3) to an S3 API server on loopback, with the manifest's counting,
//             sha256 and size on the side
// and finally `npm run restore` of the newest backup into the emptied database.
// Both dumps go through the same stand-in for `docker exec` the tests use.
// The streamed speed is the dump's bytes over the backup's own duration (in
// its manifest: from the first query to the upload's end).
// It also prints where the CPU went during the script (bench/cpu.ts): on two
// shared cores the S3 stand-in and the uploader compete with the dump itself.
import { spawn } from "node:child_process";
import { rmSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { MYSQL_DUMP_OPTIONS, type BackupManifest } from "../../infra/backup/render.js";
import { renderStackScripts, runNodeCommand, runScript, writeDbExecHook } from "../../test/support/backup-harness.js";
import { startS3Server } from "../../test/support/s3.js";
import { requireCommand, tempDir } from "../../test/support/system.js";
import { startCpuSampler } from "../cpu.js";
import { SCHEMA, SERVER_SETTINGS, generator, startBenchMariaDb, tablespaceBytes } from "./data.js";

const STACK = "prod";
const DB = "bbaegok";
const SIZE_MB = Number(process.env.BENCH_SIZE_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const TARGET_RATIO = 0.8;
const MiB = 1024 * 1024;
const MB = 1e6;
/** The bench never outlives this, whatever hangs: generous per GiB, on two shared cores. */
const DEADLINE_MS = (10 + (SIZE_MB / 1024) * (12 + ROUNDS * 6)) * 60_000;

const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

/** Runs `bash -c command` with `args` as $0, $1, …; keeps the end of its stderr. */
function shell(command: string, args: string[]): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", command, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once("close", (code) => resolve({ status: code ?? -1, stderr }));
  });
}

async function main(): Promise<void> {
  if (!(SIZE_MB >= 1) || !(ROUNDS >= 1)) throw new Error("BENCH_SIZE_MB and BENCH_ROUNDS must be positive numbers");
  for (const [command, pkg] of [["mariadb-dump", "mariadb-client"], ["zstd", "zstd"], ["aws", "awscli"], ["jq", "jq"], ["flock", "util-linux"]] as const) requireCommand(command, pkg);
  const dir = tempDir("bench-backup");
  const timer = setTimeout(() => {
    process.stderr.write(`bench:backup: still running after ${DEADLINE_MS / 60_000} min; stopping\n`);
    process.exit(1);
  }, DEADLINE_MS);
  timer.unref();
  const db = await startBenchMariaDb(dir.path);
  const s3 = await startS3Server(["bbaegok-prod-db-backups"]);
  try {
    console.log(`machine: ${cpus().length} cores, load average ${load()} at the start (everything shares these cores)`);
    console.log(`MariaDB ${db.sql("SELECT VERSION()").trim()} (${SERVER_SETTINGS.join(" ")}), S3 API server (s3rver) at ${s3.endpoint}`);

    // 1. The database.
    db.sql(`CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
    db.sql(SCHEMA, DB);
    const data = generator();
    const started = process.hrtime.bigint();
    let generated = 0;
    let rows = 0;
    while (tablespaceBytes(db.dataDir, DB) < SIZE_MB * MiB) {
      const batch = data.batch(dir.path, Math.min(128 * MiB, Math.max(16 * MiB, SIZE_MB * MiB - tablespaceBytes(db.dataDir, DB))));
      for (const [table, file] of Object.entries(batch.files)) {
        db.sql(`LOAD DATA INFILE '${file}' INTO TABLE ${table} CHARACTER SET utf8mb4;`, DB);
        rmSync(file);
      }
      generated += batch.bytes;
      rows += batch.rows;
      process.stderr.write(`  generated ${(generated / MiB).toFixed(0)} MiB of rows, tablespace ${(tablespaceBytes(db.dataDir, DB) / MiB).toFixed(0)} MiB\n`);
    }
    const tablespace = tablespaceBytes(db.dataDir, DB);
    console.log(`database: ${rows.toLocaleString("en")} rows in 3 tables, ${(tablespace / MiB).toFixed(0)} MiB of InnoDB tablespace (generated and loaded in ${seconds(started).toFixed(0)} s)`);

    // 2. Plain dump and streamed backup, alternating.
    const scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "mariadb");
    const hook = writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket });
    const env = {
      BACKUP_DB_EXEC: hook,
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("S3RVER", "S3RVER"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
    const dumpFile = join(dir.path, "plain.sql");
    const plain: { seconds: number; bytes: number; cpu: [string, number][] }[] = [];
    const streamed: { seconds: number; wall: number; manifest: BackupManifest; cpu: [string, number][] }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const loadBefore = load();
      let t = process.hrtime.bigint();
      const plainSampler = startCpuSampler(250);
      const dump = await shell(`"$0" bbaegok-prod-db mariadb-dump ${MYSQL_DUMP_OPTIONS.join(" ")} -uroot ${DB} > "$1"`, [hook, dumpFile]);
      const plainSeconds = seconds(t);
      const plainCpu = plainSampler.stop();
      if (dump.status !== 0) throw new Error(`the plain dump failed: ${dump.stderr}`);
      const bytes = statSync(dumpFile).size;
      rmSync(dumpFile);
      plain.push({ seconds: plainSeconds, bytes, cpu: plainCpu });
      console.log(`round ${round} plain:    ${(bytes / MiB).toFixed(0)} MiB of dump in ${plainSeconds.toFixed(1)} s = ${(bytes / MB / plainSeconds).toFixed(1)} MB/s (load before ${loadBefore})`);

      const loadBefore2 = load();
      t = process.hrtime.bigint();
      const sampler = startCpuSampler(250);
      const run = await runScript(scripts.backup, env, [], DEADLINE_MS);
      const wall = seconds(t);
      const cpu = sampler.stop();
      if (run.status !== 0) throw new Error(`the backup script failed: ${run.stderr}`);
      const newest = s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json")).pop()!;
      const manifest = JSON.parse(s3.get(scripts.bucket, newest).toString("utf8")) as BackupManifest;
      streamed.push({ seconds: manifest.durationSeconds, wall, manifest, cpu });
      console.log(
        `round ${round} streamed: ${(manifest.dumpBytes / MiB).toFixed(0)} MiB of dump in ${manifest.durationSeconds.toFixed(1)} s = ${(manifest.dumpBytes / MB / manifest.durationSeconds).toFixed(1)} MB/s, ` +
          `${(manifest.size / MiB).toFixed(0)} MiB compressed (${((manifest.size / manifest.dumpBytes) * 100).toFixed(1)}%); script wall time ${wall.toFixed(1)} s (load before ${loadBefore2})`,
      );
    }

    // 3. Restore the newest backup into the emptied database, as an operator would.
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
    const loadBefore = load();
    const t = process.hrtime.bigint();
    const restore = await runNodeCommand(
      join(__dirname, "..", "..", "ops", "restore.ts"),
      ["--stack", STACK, "--target", `mariadb://root@localhost/${DB}?socket=${encodeURIComponent(db.socket)}`, "--endpoint-url", s3.endpoint],
      s3.operatorEnv(),
      DEADLINE_MS,
    );
    const restoreSeconds = seconds(t);
    if (restore.status !== 0) throw new Error(`npm run restore failed: ${restore.stderr.slice(-2000)}`);
    console.log(`restore:  npm run restore in ${restoreSeconds.toFixed(1)} s (load before ${loadBefore}): ${restore.stdout.trim()}`);

    // 4. Summary.
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const plainRate = mean(plain.map((p) => p.bytes / MB / p.seconds));
    const streamedRate = mean(streamed.map((s) => s.manifest.dumpBytes / MB / s.seconds));
    const ratio = streamedRate / plainRate;
    const last = streamed[streamed.length - 1]!.manifest;
    console.log("");
    console.log(`summary (${(tablespace / MiB).toFixed(0)} MiB tablespace, ${(last.dumpBytes / MiB).toFixed(0)} MiB dump, means of ${ROUNDS} rounds):`);
    console.log(`  plain mariadb-dump > file          ${plainRate.toFixed(1)} MB/s`);
    console.log(`  dump → zstd → S3 (backup script)   ${streamedRate.toFixed(1)} MB/s of dump, ${(last.size / MiB).toFixed(0)} MiB compressed (${((last.size / last.dumpBytes) * 100).toFixed(1)}% of the dump)`);
    console.log(`  restore (npm run restore)          ${restoreSeconds.toFixed(1)} s`);
    console.log(`  streamed/plain ${ratio.toFixed(2)} (target ≥ ${TARGET_RATIO}): ${ratio >= TARGET_RATIO ? "met" : "NOT met"}`);
    // Who used the two cores: during the script's runs, the S3 stand-in's
    // share is, on the server, AWS's; only the rest competes with the dump.
    const cpuLine = (label: string, runs: { cpu: [string, number][] }[], wall: number) => {
      const byName = new Map<string, number>();
      for (const r of runs) for (const [name, spent] of r.cpu) byName.set(name, (byName.get(name) ?? 0) + spent / runs.length);
      const total = [...byName.values()].reduce((a, b) => a + b, 0);
      const shown = [...byName].filter(([, spent]) => spent >= 0.1).map(([name, spent]) => `${name} ${spent.toFixed(1)}`);
      console.log(`  CPU-s ${label.padEnd(9)} ${total.toFixed(1)} in ${wall.toFixed(1)} s (${(total / wall).toFixed(2)} of ${cpus().length} cores): ${shown.join(", ")}`);
    };
    cpuLine("plain", plain, mean(plain.map((p) => p.seconds)));
    cpuLine("streamed", streamed, mean(streamed.map((s) => s.wall)));
    console.log(`load average at the end ${load()}`);
  } finally {
    await Promise.all([db.stop(), s3.stop()]);
    dir.remove();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:backup: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
