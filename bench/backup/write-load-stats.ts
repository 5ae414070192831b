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
