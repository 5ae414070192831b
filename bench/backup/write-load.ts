// npm run bench:backup:write-load — what a backup costs the app's writes, and
// what taking it from the replica saves (issue 18's reason to back up from
// the replica). One real MariaDB primary and its GTID replica on loopback
// (the program's server flags, set up by the rendered replica.sh), the
// primary's database grown to BENCH_SIZE MiB of tablespace (default 1024)
// with bench:backup's data, and a constant write load on the primary
// (write-load/main.go: BENCH_CONNECTIONS connections, default 4, running short
// INSERT + UPDATE transactions as fast as they can, or at BENCH_RATE
// transactions per second in all; the replica's apply workers the program's,
// or BENCH_APPLY_THREADS). Then, BENCH_ROUNDS times
// (default 3), three windows:
//   baseline  no backup, BENCH_BASELINE_SECONDS long (default 30)
//   primary   the prod stack's real backup script (no replica) dumping the primary
//   replica   the real backup script of the stack with a replica, which dumps the replica
// the two backups in alternating order (a purge left behind by one does not
// always fall on the same other). Before each window the replica is let catch
// up, as long as it gains. For each: the primary's transactions per second in the window (and ÷
// the same round's baseline), latencies, the backup's wall time, and the
// replica's lag when it ends; medians over the rounds, side by side.
//
// Everything runs here on loopback, as in the backup tests: the S3 API is moto
// and `docker exec` is stood in for. The load generator, both servers, the
// backup's tools and moto share this machine's cores.
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { primaryReplicationFlags, replicaServerFlags } from "../../infra/replica/render.js";
import { renderStackScripts, runScript } from "../../test/support/backup-harness.js";
import { startMoto } from "../../test/support/moto.js";
import {
  PRIMARY_CONTAINER,
  REPLICA_CONTAINER,
  generatedPassword,
  newestManifest,
  renderReplicaScript,
  renderReplicatedBackupScript,
  replicaEnv,
  replicaStatus,
  replicatedBackupEnv,
  replicatedDatabase,
} from "../../test/support/replica-harness.js";
import { requireCommand, tempDir } from "../../test/support/system.js";
import { processTreeCpuSeconds, startCpuSampler } from "../cpu.js";
import { SCHEMA, SERVER_SETTINGS, generator, growTo, startBenchMariaDb, tablespaceBytes } from "./data.js";
import { CPU_GROUPS, MODES, cpuTable, machineBusySeconds, median, parseWriteLoad, replicaPace, summarize, summaryTable, windowCpu, windowStats, type CpuGroup, type Lag, type Mode, type ModeRun, type ReplicaMark } from "./write-load-stats.js";

const DB = "bbaegok";
const SIZE_MB = Number(process.env.BENCH_SIZE ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const BASELINE_SECONDS = Number(process.env.BENCH_BASELINE_SECONDS ?? 30);
/** Set: the replica's apply workers instead of the program's (0: one transaction at a time, to compare with). */
const APPLY_THREADS = process.env.BENCH_APPLY_THREADS;
/** 0: as fast as the primary lets the writers. */
const RATE = Number(process.env.BENCH_RATE ?? 0);
/**
 * The replica's lag bound, a stack's maxLagSeconds: an hour, so that a replica
 * behind a saturating load is still the one dumped (the bench compares the
 * primary's cost of each dump; the table shows the lag, which a stack's bound
 * would judge).
 */
const MAX_LAG_SECONDS = 3600;
/** The longest the replica is given to catch up before a window. */
const CATCH_UP_SECONDS = 120;
const MiB = 1024 * 1024;
/** The bench never outlives this, whatever hangs. */
const DEADLINE_MS = (20 + (SIZE_MB / 1024) * 15 + ROUNDS * (BASELINE_SECONDS / 60 + 2 * CATCH_UP_SECONDS / 60 + (SIZE_MB / 1024) * 6)) * 60_000;

const rateWords = RATE > 0 ? `${RATE} transactions/s in all (latency from each one's due time)` : "as fast as they can";
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms: number) => new Promise<undefined>((r) => setTimeout(() => r(undefined), ms));

function buildWriteLoad(dir: string): string {
  const go = requireCommand("go", "golang (or Go from go.dev)", ["/usr/local/go/bin"]);
  const bin = join(dir, "write-load");
  execFileSync(go, ["build", "-o", bin, "."], { cwd: join(__dirname, "write-load"), stdio: ["ignore", "ignore", "inherit"] });
  return bin;
}

async function main(): Promise<void> {
  for (const [name, value] of [["BENCH_SIZE", SIZE_MB], ["BENCH_ROUNDS", ROUNDS], ["BENCH_CONNECTIONS", CONNECTIONS], ["BENCH_BASELINE_SECONDS", BASELINE_SECONDS]] as const) {
    if (!(Number.isInteger(value) && value >= 1)) throw new Error(`${name} must be a positive whole number (is "${process.env[name]}")`);
  }
  if (APPLY_THREADS !== undefined && !/^\d+$/.test(APPLY_THREADS)) throw new Error(`BENCH_APPLY_THREADS must be a whole number of workers, 0 for one transaction at a time (is "${APPLY_THREADS}")`);
  if (!(RATE >= 0)) throw new Error(`BENCH_RATE must be 0 (as fast as they can) or transactions per second (is "${process.env.BENCH_RATE}")`);
  for (const [command, pkg] of [["mariadb-dump", "mariadb-client"], ["mariadb", "mariadb-client"], ["zstd", "zstd"], ["jq", "jq"], ["flock", "util-linux"]] as const) requireCommand(command, pkg);
  const dir = tempDir("bench-write-load");
  const timer = setTimeout(() => {
    process.stderr.write(`bench:backup:write-load: still running after ${(DEADLINE_MS / 60_000).toFixed(0)} min; stopping\n`);
    process.exit(1);
  }, DEADLINE_MS);
  timer.unref();
  const at = (...parts: string[]) => {
    const path = join(dir.path, ...parts);
    mkdirSync(path, { recursive: true });
    return path;
  };
  const client = buildWriteLoad(dir.path);
  const database = replicatedDatabase("mariadb", MAX_LAG_SECONDS);
  // The replica's flags are those the program gives it (its memory the stack's default); its primary is named to it by replica.sh setup.
  const [primary, replica, s3] = await Promise.all([
    startBenchMariaDb(at("primary"), primaryReplicationFlags("mariadb")),
    startBenchMariaDb(at("replica"), [
      ...replicaServerFlags({ engine: "mariadb", memoryMb: database.memoryMb, primaryHost: "127.0.0.1", primaryPort: 0, secretsDir: at("secrets"), slot: "replica_1" }),
      // A later flag wins.
      ...(APPLY_THREADS === undefined ? [] : [`--slave-parallel-threads=${APPLY_THREADS}`]),
    ]),
    startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]),
  ]);
  let writersProcess: ReturnType<typeof spawn> | undefined;
  try {
    console.log(`bench:backup:write-load — machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, load average ${load()} at the start (everything shares these cores)`);
    console.log(`MariaDB ${primary.sql("SELECT VERSION()").trim()} primary and GTID replica (${SERVER_SETTINGS.join(" ")}, each); ${CONNECTIONS} writer connections, ${rateWords}; ${ROUNDS} rounds`);

    const create = `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`;
    primary.sql(create);
    primary.sql(SCHEMA, DB);
    replica.sql(`SET SESSION sql_log_bin = 0; ${create}`);
    const t0 = Date.now();
    await growTo(primary, at("primary"), generator(), DB, SIZE_MB);
    const tablespaceMiB = tablespaceBytes(primary.dataDir, DB) / MiB;
    console.log(`${tablespaceMiB.toFixed(0)} MiB of tablespace on the primary (grown in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);

    // The replica as the program sets it up: the rendered replica.sh, its password files.
    const secrets = at("secrets");
    writeFileSync(join(secrets, "db_root_password"), "unused-root-uses-the-socket\n", { mode: 0o400 });
    writeFileSync(join(secrets, "replication_password"), `${generatedPassword()}\n`, { mode: 0o400 });
    const replicaScript = renderReplicaScript(secrets, { database, replica: { maxLagSeconds: MAX_LAG_SECONDS }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const hook = replicaEnv(secrets, { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: primary.socket }, [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: replica.socket } });
    const t1 = Date.now();
    const setup = await runScript(replicaScript, hook, ["setup"], DEADLINE_MS);
    if (setup.status !== 0) throw new Error(`replica.sh setup failed: ${setup.stderr}`);
    const wait = await runScript(replicaScript, hook, ["wait"], DEADLINE_MS);
    if (wait.status !== 0) throw new Error(`replica.sh wait failed: ${wait.stderr}${wait.stdout}`);
    const [threads, mode] = replica.sql("SELECT @@slave_parallel_threads, @@slave_parallel_mode").trim().split("\t");
    console.log(`replica seeded by replica.sh setup and replicating in ${((Date.now() - t1) / 1000).toFixed(0)} s; it applies with ${threads} parallel workers (0: one transaction at a time), ${mode} mode`);

    // The two backup scripts: the stack without a replica (dumps the primary) and with one (dumps the replica).
    const plain = renderStackScripts("prod", at("plain"), (t) => t.name === DB && t.engine === "mariadb");
    const replicated = renderReplicatedBackupScript(at("replicated"), "mariadb", MAX_LAG_SECONDS);
    const common = { BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"), BACKUP_S3_ENDPOINT_URL: s3.endpoint, BACKUP_LOCK_FILE: join(dir.path, "backup.lock"), BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url") };
    const backups: Record<Exclude<Mode, "baseline">, { script: string; bucket: string; env: Record<string, string> }> = {
      primary: { script: plain.backup, bucket: plain.bucket, env: { ...common, BACKUP_DB_EXEC: hook.REPLICA_DB_EXEC! } },
      replica: { ...replicated, env: { ...replicatedBackupEnv(at("replicated"), hook, replicaScript, s3), ...common } },
    };

    // The writers: their own user over TCP, as the app connects; the password reaches them in the environment.
    const password = generatedPassword();
    primary.sql(`SET SESSION sql_log_bin = 0; CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY '${password}'; GRANT SELECT, INSERT, UPDATE ON ${DB}.* TO 'writer'@'127.0.0.1';`);
    const output = join(dir.path, "write-load.out");
    const out = openSync(output, "w");
    let clientErr = "";
    const writers = spawn(client, ["-connections", String(CONNECTIONS), "-rate", String(RATE)], {
      env: { ...process.env, WRITE_LOAD_DSN: `writer:${password}@tcp(127.0.0.1:${primary.port})/${DB}?interpolateParams=true` },
      stdio: ["ignore", out, "pipe"],
    });
    writersProcess = writers;
    writers.stderr!.on("data", (d: Buffer) => (clientErr = (clientErr + d.toString()).slice(-4000)));
    const writersExited = new Promise<number | null>((resolve) => writers.once("exit", (code) => resolve(code)));
    await sleep(10_000);
    if (writers.exitCode !== null) throw new Error(`the write load stopped at its start (${writers.exitCode}): ${clientErr}`);

    // With where the replica is and when: the replica's apply rate from one to the next.
    const lag = async (): Promise<Lag & { mark: ReplicaMark }> => {
      const state = await replicaStatus(replicaScript, hook);
      return { seconds: state.lagSeconds, transactions: state.behind, mark: { atUs: nowUs(), replicaPosition: state.replicaPosition, behind: state.behind } };
    };
    // CPU by window: each server's by its pid, this bench's other processes by name, the whole machine's from /proc/stat.
    const pidOf = (server: string) => Number(readFileSync(join(dir.path, server, "pid"), "utf8").trim());
    const [primaryPid, replicaPid] = [pidOf("primary"), pidOf("replica")];
    const cpuNow = () => ({ primary: processTreeCpuSeconds(primaryPid), replica: processTreeCpuSeconds(replicaPid), machine: machineBusySeconds(readFileSync("/proc/stat", "utf8")) });
    const windows: { mode: Mode; round: number; startUs: number; endUs: number; backupSeconds?: number; lagAtEnd: Lag; pace: ReturnType<typeof replicaPace>; cpu: Map<CpuGroup, number> }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order: Mode[] = round % 2 === 1 ? ["baseline", "primary", "replica"] : ["baseline", "replica", "primary"];
      for (const mode of order) {
        // A replica that gains nothing in 5 s under this load is measured as it is.
        const deadline = Date.now() + CATCH_UP_SECONDS * 1000;
        let before = await lag();
        while (before.transactions > 0 && Date.now() < deadline) {
          await sleep(5000);
          const now = await lag();
          const gained = now.transactions < before.transactions;
          before = now;
          if (!gained) break;
        }
        const backup = mode === "baseline" ? undefined : backups[mode];
        const sampler = startCpuSampler(250, process.pid);
        const cpuBefore = cpuNow();
        const startUs = nowUs();
        const run = backup ? await runScript(backup.script, backup.env, [], DEADLINE_MS) : await sleep(BASELINE_SECONDS * 1000);
        // The window is the backup's run; the lag is asked right after it, the manifest checked after that.
        const endUs = nowUs();
        const byName = sampler.stop();
        const cpuAfter = cpuNow();
        const cpu = windowCpu(byName, { primary: cpuAfter.primary - cpuBefore.primary, replica: cpuAfter.replica - cpuBefore.replica }, cpuAfter.machine - cpuBefore.machine, (endUs - startUs) / 1e6);
        const lagAtEnd = await lag();
        if (backup && run) {
          if (run.status !== 0) throw new Error(`the backup dumping the ${mode} failed (${run.status}): ${run.stderr.slice(-2000)}`);
          const manifest = newestManifest(s3, backup.bucket, DB);
          // The replicated script falls back to the primary when the replica lags past its bound: that would measure the wrong thing.
          if ((manifest.source ?? "primary") !== mode) throw new Error(`the backup meant to dump the ${mode} dumped the ${manifest.source}: ${manifest.replication?.why ?? "?"}`);
          // moto keeps objects in memory: each backup goes once checked.
          for (const key of s3.keys(backup.bucket, `prod/${DB}/`)) s3.purge(backup.bucket, key);
        }
        const pace = replicaPace(before.mark, lagAtEnd.mark);
        windows.push({ mode, round, startUs, endUs, ...(backup ? { backupSeconds: (endUs - startUs) / 1e6 } : {}), lagAtEnd, pace, cpu });
        console.log(
          `round ${round} ${mode}: ${((endUs - startUs) / 1e6).toFixed(1)} s; replica ${before.transactions} transactions behind at the start, ${lagAtEnd.seconds ?? "?"} s (${lagAtEnd.transactions} transactions) at the end; replica applied ${pace.appliedPerSecond.toFixed(0)} transactions/s while the primary committed ${pace.primaryPerSecond.toFixed(0)}/s; cores busy: ${CPU_GROUPS.map((g) => `${g} ${cpu.get(g)!.toFixed(2)}`).join(", ")}`,
        );
      }
    }

    writers.kill("SIGTERM");
    const code = await writersExited;
    closeSync(out);
    writersProcess = undefined;
    if (code !== 0) throw new Error(`the write load exited ${code}: ${clientErr}`);
    const records = parseWriteLoad(readFileSync(output, "utf8"));
    const runs: ModeRun[] = windows.map((w) => ({ mode: w.mode, round: w.round, stats: windowStats(records, w.startUs, w.endUs), ...(w.backupSeconds === undefined ? {} : { backupSeconds: w.backupSeconds }), lagAtEnd: w.lagAtEnd }));
    console.log("");
    console.log("per window:");
    for (const r of runs) {
      const s = r.stats;
      console.log(
        `  round ${r.round} ${r.mode}: ${s.perSecond.toFixed(0)} transactions/s over ${s.seconds.toFixed(1)} s, transaction p50 ${s.transactionP50Ms.toFixed(1)} ms p99 ${s.transactionP99Ms.toFixed(1)} ms, COMMIT p50 ${s.commitP50Ms.toFixed(1)} ms p99 ${s.commitP99Ms.toFixed(1)} ms${s.errors > 0 ? `; ${s.errors} failed (first: ${s.firstError})` : ""}`,
      );
    }
    console.log("");
    console.log(`${tablespaceMiB.toFixed(0)} MiB of tablespace; ${CONNECTIONS} writer connections, ${rateWords}; medians of ${ROUNDS} rounds (the ratio taken in each round)`);
    for (const line of summaryTable(summarize(runs))) console.log(line);
    console.log("");
    console.log("the replica's pace (medians over the rounds; it keeps up when it applies at least what the primary commits):");
    for (const mode of MODES) {
      const of = windows.filter((w) => w.mode === mode).map((w) => w.pace);
      if (of.length === 0) continue;
      const [applied, committed, behind] = [median(of.map((p) => p.appliedPerSecond)), median(of.map((p) => p.primaryPerSecond)), median(of.map((p) => p.behindChange))];
      console.log(`  ${mode}: replica applied ${applied.toFixed(0)} transactions/s, primary committed ${committed.toFixed(0)}/s; ${behind > 0 ? `fell ${behind.toFixed(0)} further behind` : `gained ${(-behind).toFixed(0)}`}`);
    }
    console.log("");
    console.log(`cores busy in each window (CPU seconds per second; the machine has ${cpus().length} in all), medians over the rounds:`);
    for (const line of cpuTable(windows)) console.log(line);
    console.log(`load average at the end ${load()}`);
  } finally {
    writersProcess?.kill("SIGKILL");
    await Promise.all([primary.stop(), replica.stop(), s3.stop()]);
    dir.remove();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:backup:write-load: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
