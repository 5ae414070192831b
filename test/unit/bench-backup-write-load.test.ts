// bench:backup:write-load's arithmetic: reading the write load's lines,
// cutting a window out of them, medians over rounds with the ratio to the
// same round's baseline, and the side-by-side table.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cpuTable, gtidTransactions, machineBusySeconds, median, parseWriteLoad, replicaPace, summarize, summaryTable, windowCpu, windowStats, type ModeRun, type WindowStats } from "../../bench/backup/write-load-stats.js";

describe("bench:backup:write-load arithmetic", () => {
  it("reads transactions and failed ones; a line it cannot read is named by its number", () => {
    const records = parseWriteLoad("1000 1500 900\nE 1200 Error 1213: Deadlock found\n2000 700 300\n");
    assert.deepEqual(records, { endUs: [1000, 2000], transactionUs: [1500, 700], commitUs: [900, 300], errors: [{ atUs: 1200, message: "Error 1213: Deadlock found" }] });
    assert.throws(() => parseWriteLoad("1000 1500 900\n1000 15x0 900\n"), /write load's line 2 is neither .*"1000 15x0 900"/);
  });

  it("a window counts the transactions that ended in it (start included, end not), per second, and their percentiles in ms", () => {
    // 10 transactions ending at 0.1 s … 1.0 s, taking 1 … 10 ms, their COMMITs half of that.
    const lines = Array.from({ length: 10 }, (_, i) => `${(i + 1) * 100_000} ${(i + 1) * 1000} ${(i + 1) * 500}`);
    const records = parseWriteLoad([...lines, "E 150000 connection refused", "E 2000000 later"].join("\n"));
    const first = windowStats(records, 100_000, 600_000);
    assert.equal(first.transactions, 5);
    assert.equal(first.seconds, 0.5);
    assert.equal(first.perSecond, 10);
    // Nearest rank over 1, 2, 3, 4, 5 ms.
    assert.equal(first.transactionP50Ms, 3);
    assert.equal(first.transactionP99Ms, 5);
    assert.equal(first.commitP50Ms, 1.5);
    assert.equal(first.commitP99Ms, 2.5);
    assert.equal(first.errors, 1);
    assert.equal(first.firstError, "connection refused");
    const rest = windowStats(records, 600_000, 1_100_000);
    assert.equal(rest.transactions, 5);
    assert.equal(rest.errors, 0);
    assert.equal(rest.firstError, undefined);
  });

  it("a window where nothing committed has no latencies, and a window must end after it starts", () => {
    const empty = windowStats(parseWriteLoad("100 1 1\n"), 1000, 2000);
    assert.equal(empty.perSecond, 0);
    assert.ok(Number.isNaN(empty.transactionP99Ms));
    assert.throws(() => windowStats(parseWriteLoad(""), 2000, 2000), /must end after it starts/);
  });

  it("the median of odd and even counts", () => {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.throws(() => median([]), /no values/);
  });

  const stats = (perSecond: number, p99 = 10): WindowStats => ({ seconds: 30, transactions: perSecond * 30, perSecond, transactionP50Ms: 1, transactionP99Ms: p99, commitP50Ms: 0.5, commitP99Ms: p99 / 2, errors: 0 });

  it("summarizes by medians over rounds, the ratio to the baseline taken in each round", () => {
    const runs: ModeRun[] = [
      { mode: "baseline", round: 1, stats: stats(1000), lagAtEnd: { seconds: 0, transactions: 0 } },
      { mode: "primary", round: 1, stats: stats(500, 40), backupSeconds: 12, lagAtEnd: { seconds: 3, transactions: 90 } },
      { mode: "replica", round: 1, stats: stats(900), backupSeconds: 11, lagAtEnd: { seconds: null, transactions: 400 } },
      { mode: "baseline", round: 2, stats: stats(2000), lagAtEnd: { seconds: 1, transactions: 10 } },
      { mode: "replica", round: 2, stats: stats(1900), backupSeconds: 13, lagAtEnd: { seconds: 9, transactions: 200 } },
      { mode: "primary", round: 2, stats: stats(1200, 60), backupSeconds: 14, lagAtEnd: { seconds: 5, transactions: 110 } },
    ];
    const [baseline, primary, replica] = summarize(runs);
    assert.equal(baseline!.mode, "baseline");
    assert.equal(baseline!.perSecond, 1500);
    assert.equal(baseline!.vsBaseline, 1);
    assert.equal(baseline!.backupSeconds, undefined);
    // Ratios 0.5 and 0.6: their median, not 850 ÷ 1500.
    assert.equal(primary!.perSecond, 850);
    assert.ok(Math.abs(primary!.vsBaseline - 0.55) < 1e-12);
    assert.equal(primary!.transactionP99Ms, 50);
    assert.equal(primary!.backupSeconds, 13);
    assert.equal(primary!.lagSeconds, 4);
    assert.equal(primary!.lagTransactions, 100);
    // A lag the replica could not tell is left out of the median.
    assert.equal(replica!.lagSeconds, 9);
    assert.ok(Math.abs(replica!.vsBaseline - (0.9 + 0.95) / 2) < 1e-12);
    assert.throws(() => summarize(runs.filter((r) => !(r.mode === "baseline" && r.round === 2))), /round 2 has no baseline window to compare its primary window with/);
  });

  it("prints the three windows side by side", () => {
    const runs: ModeRun[] = [
      { mode: "baseline", round: 1, stats: stats(1000), lagAtEnd: { seconds: 0, transactions: 0 } },
      { mode: "primary", round: 1, stats: { ...stats(500, 40), errors: 2 }, backupSeconds: 12.34, lagAtEnd: { seconds: null, transactions: 7 } },
    ];
    assert.deepEqual(summaryTable(summarize(runs)).slice(2), [
      "| no backup (baseline) | 1000 | 1.00 | 1.0 / 10.0 | 0.5 / 5.0 |  | 0 s (0 transactions) | 0 |",
      "| backup dumping the primary | 500 | 0.50 | 1.0 / 40.0 | 0.5 / 20.0 | 12.3 | unknown (7 transactions) | 2 |",
    ]);
  });

  it("the replica's pace between two marks: what it applied per second (its GTID sequences), and what the primary committed (that plus how far it fell behind)", () => {
    assert.equal(gtidTransactions("0-1-120,1-2-7"), 127);
    assert.equal(gtidTransactions(""), 0);
    assert.throws(() => gtidTransactions("0-1-x"), /not a GTID position: "0-1-x"/);
    // Over 2 s: applied 1000, fell 200 further behind: the primary committed 1200.
    assert.deepEqual(replicaPace({ atUs: 1_000_000, replicaPosition: "0-1-5000", behind: 300 }, { atUs: 3_000_000, replicaPosition: "0-1-6000", behind: 500 }), { appliedPerSecond: 500, primaryPerSecond: 600, behindChange: 200 });
    // Caught up by 300: applied faster than the primary committed.
    assert.deepEqual(replicaPace({ atUs: 0, replicaPosition: "0-1-0", behind: 300 }, { atUs: 1_000_000, replicaPosition: "0-1-900", behind: 0 }), { appliedPerSecond: 900, primaryPerSecond: 600, behindChange: -300 });
    assert.throws(() => replicaPace({ atUs: 5, replicaPosition: "", behind: 0 }, { atUs: 5, replicaPosition: "", behind: 0 }), /must come after the first/);
  });

  it("reads the machine's busy CPU seconds from /proc/stat: all but idle and iowait, 100 ticks a second", () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    assert.equal(machineBusySeconds("cpu  1000 50 400 9000 300 20 30 0 0 0\ncpu0 500 25 200 4500 150 10 15 0 0 0\n"), 15);
    assert.throws(() => machineBusySeconds("intr 1 2 3\n"), /\/proc\/stat has no "cpu" line/);
  });

  it("splits a window's CPU into the servers (by pid), the writers, the backup's tools, the S3 stand-in and the rest of the machine, in cores", () => {
    // Over 10 s: both servers together 6 CPU-s as "mariadbd", the primary 4 of them by its pid.
    const byName = [["mariadbd", 6], ["write-load", 2], ["zstd", 1.5], ["mariadb-dump", 1], ["moto_server", 0.5], ["python3", 0.5]] as const;
    const cpu = windowCpu(byName, { primary: 4, replica: 2 }, 15, 10);
    assert.deepEqual(Object.fromEntries(cpu), { "primary server": 0.4, "replica server": 0.2, writers: 0.2, "backup's tools": 0.3, "S3 stand-in": 0.05, "rest of the machine": 0.35 });
    assert.deepEqual(cpuTable([{ mode: "baseline", cpu }, { mode: "baseline", cpu: windowCpu(byName, { primary: 4, replica: 2 }, 13.5, 10) }]), [
      "| window | primary server | replica server | writers | backup's tools | S3 stand-in | rest of the machine |",
      "| --- | --- | --- | --- | --- | --- | --- |",
      "| no backup (baseline) | 0.40 | 0.20 | 0.20 | 0.30 | 0.05 | 0.28 |",
    ]);
  });
});
