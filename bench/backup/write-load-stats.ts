// bench:backup:write-load's arithmetic, apart from the processes it runs:
// reading the write load's per-transaction lines (write-load/main.go),
// cutting them into a window (a backup's run, or the baseline's), medians
// over rounds, and the side-by-side table. Pure functions, checked by
// test/unit/bench-backup-write-load.test.ts.
import { percentile } from "../proxy/stats.js";

/** Every transaction the load ran: when it ended (µs since the epoch) and how long it and its COMMIT took. */
export interface LoadRecords {
  endUs: number[];
  transactionUs: number[];
  commitUs: number[];
  errors: { atUs: number; message: string }[];
}

/** Reads the load's output; a line it cannot read is an error naming its number. */
export function parseWriteLoad(text: string): LoadRecords {
  const records: LoadRecords = { endUs: [], transactionUs: [], commitUs: [], errors: [] };
  text.split("\n").forEach((line, i) => {
    if (line === "") return;
    const error = /^E (\d+) (.*)$/.exec(line);
    if (error) {
      records.errors.push({ atUs: Number(error[1]), message: error[2]! });
      return;
    }
    const ok = /^(\d+) (\d+) (\d+)$/.exec(line);
    if (!ok) throw new Error(`the write load's line ${i + 1} is neither "<end µs> <transaction µs> <commit µs>" nor "E <µs> <error>": ${JSON.stringify(line.slice(0, 120))}`);
    records.endUs.push(Number(ok[1]));
    records.transactionUs.push(Number(ok[2]));
    records.commitUs.push(Number(ok[3]));
  });
  return records;
}

/** What the primary's writers saw in one window. Latencies in ms; NaN when nothing committed. */
export interface WindowStats {
  seconds: number;
  transactions: number;
  perSecond: number;
  transactionP50Ms: number;
  transactionP99Ms: number;
  commitP50Ms: number;
  commitP99Ms: number;
  errors: number;
  firstError?: string;
}

/** The transactions that ended in [startUs, endUs). */
export function windowStats(records: LoadRecords, startUs: number, endUs: number): WindowStats {
  if (!(endUs > startUs)) throw new Error(`a window must end after it starts (${startUs} µs to ${endUs} µs)`);
  const transaction: number[] = [];
  const commit: number[] = [];
  records.endUs.forEach((end, i) => {
    if (end >= startUs && end < endUs) {
      transaction.push(records.transactionUs[i]! / 1000);
      commit.push(records.commitUs[i]! / 1000);
    }
  });
  const errors = records.errors.filter((e) => e.atUs >= startUs && e.atUs < endUs);
  const seconds = (endUs - startUs) / 1e6;
  const p = (values: number[], q: number) => (values.length === 0 ? NaN : percentile(values, q));
  return {
    seconds,
    transactions: transaction.length,
    perSecond: transaction.length / seconds,
    transactionP50Ms: p(transaction, 50),
    transactionP99Ms: p(transaction, 99),
    commitP50Ms: p(commit, 50),
    commitP99Ms: p(commit, 99),
    errors: errors.length,
    ...(errors[0] ? { firstError: errors[0].message } : {}),
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("no values to take a median of");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const MODES = ["baseline", "primary", "replica"] as const;
export type Mode = (typeof MODES)[number];

/** The replica's lag as `replica.sh status` says it. */
export interface Lag {
  seconds: number | null;
  transactions: number;
}

/** What `replica.sh status` said at a moment: where the replica is (a GTID set) and how far behind. */
export interface ReplicaMark {
  atUs: number;
  replicaPosition: string;
  behind: number;
}

/** The transactions a GTID set stands for: the sum of its domains' sequence numbers ("0-1-120,1-2-7": 127). */
export function gtidTransactions(position: string): number {
  if (position.trim() === "") return 0;
  return position.split(",").reduce((sum, gtid) => {
    const seq = /^\s*\d+-\d+-(\d+)\s*$/.exec(gtid);
    if (!seq) throw new Error(`not a GTID position: ${JSON.stringify(position)}`);
    return sum + Number(seq[1]);
  }, 0);
}

/**
 * How fast the replica applied between two marks, and how fast the primary
 * committed then (what the replica applied plus what it fell behind by): the
 * replica keeps up when the first is not below the second.
 */
export function replicaPace(start: ReplicaMark, end: ReplicaMark): { appliedPerSecond: number; primaryPerSecond: number; behindChange: number } {
  const seconds = (end.atUs - start.atUs) / 1e6;
  if (!(seconds > 0)) throw new Error(`the second mark must come after the first (${start.atUs} µs, ${end.atUs} µs)`);
  const applied = gtidTransactions(end.replicaPosition) - gtidTransactions(start.replicaPosition);
  const behindChange = end.behind - start.behind;
  return { appliedPerSecond: applied / seconds, primaryPerSecond: (applied + behindChange) / seconds, behindChange };
}

/** One window of one round. */
export interface ModeRun {
  mode: Mode;
  round: number;
  stats: WindowStats;
  /** The backup script's wall time; none for the baseline. */
  backupSeconds?: number;
  lagAtEnd: Lag;
}

/** One row of the table: medians over rounds; the ratio to the baseline is taken in each round, then its median. */
export interface ModeSummary {
  mode: Mode;
  rounds: number;
  perSecond: number;
  vsBaseline: number;
  transactionP50Ms: number;
  transactionP99Ms: number;
  commitP50Ms: number;
  commitP99Ms: number;
  backupSeconds?: number;
  lagSeconds: number | null;
  lagTransactions: number;
  errors: number;
}

export function summarize(runs: readonly ModeRun[]): ModeSummary[] {
  const baselineOf = new Map(runs.filter((r) => r.mode === "baseline").map((r) => [r.round, r.stats.perSecond]));
  return MODES.flatMap((mode) => {
    const of = runs.filter((r) => r.mode === mode);
    if (of.length === 0) return [];
    const ratios = of.map((r) => {
      const baseline = baselineOf.get(r.round);
      if (baseline === undefined) throw new Error(`round ${r.round} has no baseline window to compare its ${mode} window with`);
      return r.stats.perSecond / baseline;
    });
    const lags = of.map((r) => r.lagAtEnd.seconds).filter((s): s is number => s !== null);
    const backups = of.map((r) => r.backupSeconds).filter((s): s is number => s !== undefined);
    return [
      {
        mode,
        rounds: of.length,
        perSecond: median(of.map((r) => r.stats.perSecond)),
        vsBaseline: median(ratios),
        transactionP50Ms: median(of.map((r) => r.stats.transactionP50Ms)),
        transactionP99Ms: median(of.map((r) => r.stats.transactionP99Ms)),
        commitP50Ms: median(of.map((r) => r.stats.commitP50Ms)),
        commitP99Ms: median(of.map((r) => r.stats.commitP99Ms)),
        ...(backups.length > 0 ? { backupSeconds: median(backups) } : {}),
        // A lag the replica could not tell in some round is left out of the median; in every round, unknown.
        lagSeconds: lags.length > 0 ? median(lags) : null,
        lagTransactions: median(of.map((r) => r.lagAtEnd.transactions)),
        errors: of.reduce((sum, r) => sum + r.stats.errors, 0),
      },
    ];
  });
}

const LABELS: Record<Mode, string> = {
  baseline: "no backup (baseline)",
  primary: "backup dumping the primary",
  replica: "backup dumping the replica",
};

/** The side-by-side table, markdown. */
export function summaryTable(rows: readonly ModeSummary[]): string[] {
  const ms = (v: number) => (Number.isNaN(v) ? "–" : v.toFixed(1));
  return [
    "| window | transactions/s on the primary | ÷ baseline | transaction p50 / p99 ms | COMMIT p50 / p99 ms | backup wall s | replica lag at the end | failed transactions |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${LABELS[r.mode]} | ${r.perSecond.toFixed(0)} | ${r.vsBaseline.toFixed(2)} | ${ms(r.transactionP50Ms)} / ${ms(r.transactionP99Ms)} | ${ms(r.commitP50Ms)} / ${ms(r.commitP99Ms)} | ${r.backupSeconds === undefined ? "" : r.backupSeconds.toFixed(1)} | ${r.lagSeconds === null ? "unknown" : `${r.lagSeconds.toFixed(0)} s`} (${r.lagTransactions.toFixed(0)} transactions) | ${r.errors} |`,
    ),
  ];
}

/** Busy CPU seconds of the whole machine so far, from /proc/stat's first line (all but idle and iowait; 100 ticks a second). */
export function machineBusySeconds(procStat: string): number {
  const line = procStat.split("\n").find((l) => l.startsWith("cpu "));
  const ticks = line?.trim().split(/\s+/).slice(1).map(Number);
  if (!ticks || ticks.length < 8 || ticks.some((t) => !Number.isFinite(t))) throw new Error(`/proc/stat has no "cpu" line this bench can read: ${JSON.stringify(procStat.slice(0, 120))}`);
  const [user, nice, system, , , irq, softirq, steal] = ticks as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / 100;
}

export const CPU_GROUPS = ["primary server", "replica server", "writers", "backup's tools", "S3 stand-in", "rest of the machine"] as const;
export type CpuGroup = (typeof CPU_GROUPS)[number];

/**
 * Where a window's CPU went, in cores (CPU seconds per second of window):
 * `byName` is bench/cpu.ts's sampler over this bench's descendants (both
 * servers are "mariadbd" there, so each server's own figure comes apart, by
 * its pid), `machine` every process's; the rest of the machine is the other
 * engineers' work and this bench's own node process.
 */
export function windowCpu(byName: readonly (readonly [string, number])[], servers: { primary: number; replica: number }, machine: number, seconds: number): Map<CpuGroup, number> {
  let ours = 0;
  let tools = 0;
  let writers = 0;
  let s3 = 0;
  for (const [name, cpu] of byName) {
    ours += cpu;
    if (name === "write-load") writers += cpu;
    else if (name === "moto_server") s3 += cpu;
    else if (name !== "mariadbd") tools += cpu;
  }
  const cores = (cpu: number) => Math.max(0, cpu) / seconds;
  return new Map<CpuGroup, number>([
    ["primary server", cores(servers.primary)],
    ["replica server", cores(servers.replica)],
    ["writers", cores(writers)],
    ["backup's tools", cores(tools)],
    ["S3 stand-in", cores(s3)],
    ["rest of the machine", cores(machine - ours)],
  ]);
}

/** The CPU table: for each window, the median over rounds of each group's cores. */
export function cpuTable(runs: readonly { mode: Mode; cpu: ReadonlyMap<CpuGroup, number> }[]): string[] {
  return [
    `| window | ${CPU_GROUPS.join(" | ")} |`,
    `| --- | ${CPU_GROUPS.map(() => "---").join(" | ")} |`,
    ...MODES.filter((mode) => runs.some((r) => r.mode === mode)).map((mode) => {
      const of = runs.filter((r) => r.mode === mode);
      return `| ${LABELS[mode]} | ${CPU_GROUPS.map((g) => median(of.map((r) => r.cpu.get(g) ?? 0)).toFixed(2)).join(" | ")} |`;
    }),
  ];
}
