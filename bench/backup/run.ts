// npm run bench:backup — does our backup beat what a user does by hand, and
// how does it grow? On one MariaDB database (bench/backup/data.ts), at each
// size of BENCH_SIZES (MiB of InnoDB tablespace, default "256,1024"), in one
// run, BENCH_ROUNDS times (default 2), in turn:
//   floor     `mariadb-dump <the backup's options> bbaegok > /dev/null`
//   seed      the hand-made crontab backup: `mysqldump … | gzip > file`, then
//             `aws s3 cp file s3://…` (Debian's AWS CLI)
//   ours      the prod stack's real backup script: dump → zstd → s3-put.py, with
//             the dump's rows and bytes counted on the way (perl), the upload's
//             sha256 and size by s3-put.py
// then, BENCH_ROUNDS times in turn, two restores of our newest backup into the emptied database:
//   floor     `zstd -dc file | mariadb bbaegok` (the object already on disk)
//   ours      `npm run restore` (download, sha256 check, load, comparison with the manifest)
// and then grows the same database to the next size.
//
// Everything runs here: a MariaDB server of its own, an S3 API server (moto,
// as the backup tests) on loopback whose CPU is shown apart (on the server that side is AWS's), and
// the same stand-in for `docker exec` the tests use. For each run: wall time,
// CPU seconds by stage from /proc (bench/cpu.ts, bench/backup/stages.ts; this
// process's descendants only), and the compressed size.
import { spawn } from "node:child_process";
import { rmSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { MYSQL_DUMP_OPTIONS, type BackupManifest } from "../../infra/backup/render.js";
import { SERVER_PATH, renderStackScripts, runNodeCommand, runScript, writeDbExecHook } from "../../test/support/backup-harness.js";
import { startMoto } from "../../test/support/moto.js";
import { requireCommand, tempDir } from "../../test/support/system.js";
import { startCpuSampler } from "../cpu.js";
import { SCHEMA, SERVER_SETTINGS, generator, growTo, startBenchMariaDb, tablespaceBytes } from "./data.js";
import { cpuByStage, growth, meanStages, ownCpuSeconds, stageLine, type Stage } from "./stages.js";

const STACK = "prod";
const DB = "bbaegok";
const SIZES = (process.env.BENCH_SIZES ?? "256,1024").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const MiB = 1024 * 1024;
/** The bench never outlives this, whatever hangs: generous per GiB, on two shared cores. */
const DEADLINE_MS = (10 + (SIZES.reduce((a, b) => a + b, 0) / 1024) * (15 + ROUNDS * 12)) * 60_000;

const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** Runs `bash -c command` with `args` as $0, $1, …; keeps the end of its stderr. */
function shell(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-o", "pipefail", "-c", command, ...args], { stdio: ["ignore", "ignore", "pipe"], env });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once("close", (code) => resolve({ status: code ?? -1, stderr }));
  });
}

interface Measured {
  wall: number;
  stages: Map<Stage, number>;
}

/** Wall time and CPU by stage of `work`. */
async function measure(work: () => Promise<void>): Promise<Measured> {
  // This process's descendants only: others on the machine run MariaDB and node too.
  const sampler = startCpuSampler(250, process.pid);
  const t = process.hrtime.bigint();
  await work();
  const wall = seconds(t);
  const byName = sampler.stop();
  return { wall, stages: cpuByStage(byName) };
}

interface SizeResult {
  tablespaceMiB: number;
  dumpBytes: number;
  floor: Measured[];
  seed: (Measured & { bytes: number })[];
  ours: (Measured & { bytes: number })[];
  restoreFloor: Measured[];
  restoreOurs: Measured[];
  restoreError?: string;
}

async function main(): Promise<void> {
  if (SIZES.some((s) => !(s >= 1)) || !(ROUNDS >= 1)) throw new Error(`BENCH_SIZES must list positive sizes in MiB (is "${process.env.BENCH_SIZES}") and BENCH_ROUNDS must be positive`);
  for (const [command, pkg] of [["mariadb-dump", "mariadb-client"], ["mysqldump", "mariadb-client"], ["mariadb", "mariadb-client"], ["zstd", "zstd"], ["gzip", "gzip"], ["aws", "awscli"], ["jq", "jq"], ["flock", "util-linux"]] as const) requireCommand(command, pkg);
  const dir = tempDir("bench-backup");
  const timer = setTimeout(() => {
    process.stderr.write(`bench:backup: still running after ${DEADLINE_MS / 60_000} min; stopping\n`);
    process.exit(1);
  }, DEADLINE_MS);
  timer.unref();
  const db = await startBenchMariaDb(dir.path);
  const s3 = await startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]);
  try {
    console.log(`bench:backup — machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, load average ${load()} at the start (everything shares these cores)`);
    console.log(`MariaDB ${db.sql("SELECT VERSION()").trim()} (${SERVER_SETTINGS.join(" ")}); S3 API server (moto) at ${s3.endpoint}; sizes ${SIZES.join(", ")} MiB of tablespace, ${ROUNDS} rounds each, floor/seed/ours in turn`);
    db.sql(`CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
    db.sql(SCHEMA, DB);
    const data = generator();
    const scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "mariadb");
    const hook = writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket });
    const ourEnv = {
      BACKUP_DB_EXEC: hook,
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
    // The hand-made way runs as cron would: Debian's tools, the operator's key.
    const seedEnv = { ...s3.operatorEnv(), PATH: SERVER_PATH };
    const options = MYSQL_DUMP_OPTIONS.join(" ");
    const results: SizeResult[] = [];

    for (const size of SIZES) {
      const t0 = process.hrtime.bigint();
      await growTo(db, dir.path, data, DB, size);
      const tablespaceMiB = tablespaceBytes(db.dataDir, DB) / MiB;
      console.log("");
      console.log(`== ${tablespaceMiB.toFixed(0)} MiB of tablespace (grown in ${seconds(t0).toFixed(0)} s); load average ${load()}`);
      const result: SizeResult = { tablespaceMiB, dumpBytes: 0, floor: [], seed: [], ours: [], restoreFloor: [], restoreOurs: [] };
      let newest = "";
      for (let round = 1; round <= ROUNDS; round++) {
        const floor = await measure(async () => {
          const r = await shell(`"$0" bbaegok-prod-db mariadb-dump ${options} -uroot ${DB} > /dev/null`, [hook]);
          if (r.status !== 0) throw new Error(`the floor's dump failed: ${r.stderr}`);
        });
        result.floor.push(floor);
        console.log(`round ${round} floor: ${floor.wall.toFixed(1)} s; CPU-s ${stageLine(floor.stages)}`);

        const file = join(dir.path, "seed.sql.gz");
        let seedBytes = 0;
        const seed = await measure(async () => {
          const r = await shell(
            `"$0" bbaegok-prod-db mysqldump ${options} -uroot ${DB} | gzip > "$1" && aws --endpoint-url "$2" s3 cp --only-show-errors "$1" "s3://$3/seed/${round}-${size}.sql.gz"`,
            [hook, file, s3.endpoint, scripts.bucket],
            seedEnv,
          );
          if (r.status !== 0) throw new Error(`the hand-made backup failed: ${r.stderr}`);
          seedBytes = statSync(file).size;
          rmSync(file);
        });
        result.seed.push({ ...seed, bytes: seedBytes });
        // moto keeps objects in memory: the hand-made copies go once measured.
        s3.purge(scripts.bucket, `seed/${round}-${size}.sql.gz`);
        console.log(`round ${round} seed:  ${seed.wall.toFixed(1)} s, ${(seedBytes / MiB).toFixed(1)} MiB gzip; CPU-s ${stageLine(seed.stages)}`);

        const ours = await measure(async () => {
          const r = await runScript(scripts.backup, ourEnv, [], DEADLINE_MS);
          if (r.status !== 0) throw new Error(`the backup script failed: ${r.stderr}`);
        });
        const manifestKey = s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json")).pop()!;
        const manifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
        newest = manifest.key;
        result.dumpBytes = manifest.dumpBytes;
        result.ours.push({ ...ours, bytes: manifest.size });
        console.log(`round ${round} ours:  ${ours.wall.toFixed(1)} s, ${(manifest.size / MiB).toFixed(1)} MiB zstd of a ${(manifest.dumpBytes / MiB).toFixed(0)} MiB dump; CPU-s ${stageLine(ours.stages)}`);
      }

      // Restores of the newest backup into the emptied database: the floor from the object on disk, then ours.
      const object = join(dir.path, "newest.sql.zst");
      // A 4 GiB database's object is over a GiB: more than the helper's default minute from moto.
      const copy = s3.aws(["s3", "cp", "--only-show-errors", `s3://${scripts.bucket}/${newest}`, object], undefined, { timeoutMs: 30 * 60_000 });
      if (copy.status !== 0) throw new Error(`reading s3://${scripts.bucket}/${newest} failed: ${copy.stderr}`);
      const empty = () => db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
      const floorRestore = async () => {
        const r = await shell(`zstd -dc "$0" | mariadb --no-defaults --socket="$1" -uroot ${DB}`, [object, db.socket]);
        if (r.status !== 0) throw new Error(`zstd -dc | mariadb failed: ${r.stderr}`);
      };
      // In turn, as the backups: a restore is long enough for the machine's other load to change under it.
      for (let round = 1; round <= ROUNDS && !result.restoreError; round++) {
        empty();
        const floor = await measure(floorRestore);
        result.restoreFloor.push(floor);
        console.log(`round ${round} restore floor (zstd -dc | mariadb): ${floor.wall.toFixed(1)} s; CPU-s ${stageLine(floor.stages)}`);
        empty();
        let restoreOutput = "";
        try {
          const ours = await measure(async () => {
            const r = await runNodeCommand(
              join(__dirname, "..", "..", "ops", "restore.ts"),
              ["--stack", STACK, "--key", newest, "--target", `mariadb://root@localhost/${DB}?socket=${encodeURIComponent(db.socket)}`, "--endpoint-url", s3.endpoint],
              s3.operatorEnv(),
              DEADLINE_MS,
            );
            if (r.status !== 0) throw new Error(`npm run restore failed: ${r.stderr.slice(-1500)}`);
            restoreOutput = r.stdout.trim().split("\n").slice(-3).join(" / ");
          });
          result.restoreOurs.push(ours);
          console.log(`round ${round} restore ours (npm run restore): ${ours.wall.toFixed(1)} s; CPU-s ${stageLine(ours.stages)}; ${restoreOutput}`);
        } catch (err) {
          // The growth goes on from the floor's restore of the same backup.
          result.restoreError = (err as Error).message;
          console.log(`round ${round} restore ours (npm run restore): FAILED: ${result.restoreError}`);
          empty();
          await floorRestore();
        }
      }
      rmSync(object);
      results.push(result);
    }

    // Summary: every peer in the row beside ours, per size.
    console.log("");
    console.log(`means of ${ROUNDS} rounds; CPU-s without the S3 stand-in (shown apart) and without the bench's own node process`);
    console.log("| tablespace | dump | way | wall s | CPU-s | CPU-s by stage | S3 stand-in CPU-s | compressed MiB |");
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const r of results) {
      const line = (way: string, runs: (Measured & { bytes?: number })[]) => {
        const stages = meanStages(runs.map((x) => x.stages));
        const bytes = runs[0]?.bytes;
        console.log(`| ${r.tablespaceMiB.toFixed(0)} MiB | ${(r.dumpBytes / MiB).toFixed(0)} MiB | ${way} | ${mean(runs.map((x) => x.wall)).toFixed(1)} | ${ownCpuSeconds(stages).toFixed(1)} | ${stageLine(new Map([...stages].filter(([s]) => s !== "S3 stand-in")))} | ${(stages.get("S3 stand-in") ?? 0).toFixed(1)} | ${bytes === undefined ? "" : (bytes / MiB).toFixed(1)} |`);
      };
      line("floor: mariadb-dump > /dev/null", r.floor);
      line("seed: mysqldump \\| gzip > file; aws s3 cp", r.seed);
      line("ours: backup script", r.ours);
      line("restore floor: zstd -dc \\| mariadb", r.restoreFloor);
      if (r.restoreOurs.length > 0) line("restore ours: npm run restore", r.restoreOurs);
    }

    console.log("");
    console.log("targets (ratios from the same rounds, side by side):");
    for (const r of results) {
      const at = `${r.tablespaceMiB.toFixed(0)} MiB`;
      const wallRatio = mean(r.ours.map((o, i) => o.wall / r.seed[i]!.wall));
      const sizeRatio = r.ours[r.ours.length - 1]!.bytes / r.seed[r.seed.length - 1]!.bytes;
      const cpuRatio = mean(r.ours.map((o, i) => ownCpuSeconds(o.stages) / ownCpuSeconds(r.floor[i]!.stages)));
      const say = (ok: boolean, what: string) => console.log(`  ${at}: ${ok ? "met" : "NOT met"}: ${what}`);
      say(wallRatio <= 0.6, `our wall time ÷ the seed's ${wallRatio.toFixed(2)} (target ≤ 0.6)`);
      say(sizeRatio <= 1, `our compressed size ÷ the seed's gzip ${sizeRatio.toFixed(3)} (target ≤ 1)`);
      say(cpuRatio <= 1.6, `our CPU outside the S3 stand-in ÷ the floor's ${cpuRatio.toFixed(2)} (target ≤ 1.6)`);
      if (!r.restoreError) {
        const restoreRatio = mean(r.restoreOurs.map((o, i) => o.wall / r.restoreFloor[i]!.wall));
        say(restoreRatio <= 1.2, `npm run restore ÷ zstd -dc | mariadb ${restoreRatio.toFixed(2)} (target ≤ 1.2)`);
      } else say(false, `npm run restore did not finish: ${r.restoreError}`);
    }

    if (results.length > 1) {
      console.log("");
      console.log("growth: seconds per GiB of dump, and against the smallest size (1.00 = linear)");
      console.log(`| tablespace | dump | ${["floor", "seed", "ours", "restore floor", "restore ours"].join(" | ")} |`);
      console.log("| --- | --- | --- | --- | --- | --- | --- |");
      const series = (pick: (r: SizeResult) => number | undefined) => growth(results.map((r) => ({ dumpBytes: r.dumpBytes, seconds: pick(r) ?? NaN })));
      const columns = [
        series((r) => mean(r.floor.map((x) => x.wall))),
        series((r) => mean(r.seed.map((x) => x.wall))),
        series((r) => mean(r.ours.map((x) => x.wall))),
        series((r) => mean(r.restoreFloor.map((x) => x.wall))),
        series((r) => (r.restoreError ? undefined : mean(r.restoreOurs.map((x) => x.wall)))),
      ];
      results.forEach((r, i) => {
        console.log(`| ${r.tablespaceMiB.toFixed(0)} MiB | ${(r.dumpBytes / MiB).toFixed(0)} MiB | ${columns.map((c) => `${c[i]!.secondsPerGiB.toFixed(1)} (${c[i]!.vsFirst.toFixed(2)})`).join(" | ")} |`);
      });
    }
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
