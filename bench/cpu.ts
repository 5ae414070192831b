// Where the CPU went during a benchmark run: every process's user+system time
// from /proc, sampled while the run goes on (a process that exits between two
// samples loses at most one interval), summed by process name. On a machine
// whose cores the load generator, the stand-ins and the system under test all
// share, this is what tells a throughput figure's cause.
import { readdirSync, readFileSync } from "node:fs";

/** One line of /proc/<pid>/stat: the name sits in parentheses and may itself hold spaces or parentheses. */
export function parseProcStat(line: string): { pid: number; ppid: number; name: string; startTime: string; cpuTicks: number } {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  // Fields after the name, from field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
  const rest = line.slice(close + 2).split(" ");
  const field = (n: number) => rest[n - 3]!;
  return { pid: Number(line.slice(0, open).trim()), ppid: Number(field(4)), name: line.slice(open + 1, close), startTime: field(22), cpuTicks: Number(field(14)) + Number(field(15)) };
}

/** Kernel threads (writeback, soft interrupts) count as one "kernel" line. */
function group(name: string): string {
  return /^(kworker|ksoftirqd|kdamond|kswapd|rcu_|migration|jbd2)/.test(name) ? "kernel" : name;
}

/** Every process (or, with `root`, every descendant of it, itself left out) by pid and start time. */
function readAll(root?: number): Map<string, { name: string; ticks: number }> {
  let stats = readStats();
  if (root !== undefined) {
    const parent = new Map(stats.map((s) => [s.pid, s.ppid]));
    const descends = (pid: number) => {
      for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === root) return true;
      return false;
    };
    stats = stats.filter((s) => descends(s.pid));
  }
  // pid and start time: a reused pid is another process.
  return new Map(stats.map((stat) => [`${stat.pid}@${stat.startTime}`, { name: stat.name, ticks: stat.cpuTicks }]));
}

/** Linux's clock tick for /proc times: 100 per second on every common kernel. */
const TICKS_PER_SECOND = 100;

function readStats(): ReturnType<typeof parseProcStat>[] {
  const stats: ReturnType<typeof parseProcStat>[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      stats.push(parseProcStat(readFileSync(`/proc/${entry}/stat`, "utf8")));
    } catch {
      // Exited between the listing and the read.
    }
  }
  return stats;
}

/**
 * CPU seconds a process and its descendants (nginx's master and workers; a
 * threaded proxy's threads are in its own line) have spent so far. Two reads
 * around a run give what that run cost the one proxy under test, whatever its
 * processes are named; workers that live through the run lose nothing.
 */
export function processTreeCpuSeconds(rootPid: number, stats = readStats()): number {
  return processTree(rootPid, stats).reduce((ticks, s) => ticks + s.cpuTicks, 0) / TICKS_PER_SECOND;
}

/** A process and its descendants, from one reading of /proc. */
function processTree<S extends { pid: number; ppid: number }>(rootPid: number, stats: S[]): S[] {
  const children = new Map<number, S[]>();
  for (const s of stats) {
    const siblings = children.get(s.ppid);
    if (siblings) siblings.push(s);
    else children.set(s.ppid, [s]);
  }
  const root = stats.find((s) => s.pid === rootPid);
  if (!root) throw new Error(`process ${rootPid} is not running: cannot read its CPU time`);
  const tree: S[] = [];
  const visit = (s: S) => {
    tree.push(s);
    for (const child of children.get(s.pid) ?? []) visit(child);
  };
  visit(root);
  return tree;
}

/** The first field of a /proc/<pid>/task/<tid>/schedstat line: nanoseconds the thread has run on a CPU. */
export function parseSchedstat(line: string): number {
  const first = line.trim().split(/\s+/)[0] ?? "";
  const ns = Number(first);
  if (!/^\d+$/.test(first) || !Number.isSafeInteger(ns)) throw new Error(`not a /proc schedstat line: ${line.slice(0, 80)}`);
  return ns;
}

/** Run time in nanoseconds of threads, by "<pid>/<tid>". */
export type ThreadRunTimes = Map<string, number>;

/** Every thread of every process in `rootPid`'s tree, with its run time now (the readers are /proc's, or a test's). */
export function processTreeRunTimes(rootPid: number, stats = readStats(), readTask = (path: string) => readFileSync(path, "utf8"), listTasks = (pid: number) => readdirSync(`/proc/${pid}/task`)): ThreadRunTimes {
  const times: ThreadRunTimes = new Map();
  for (const { pid } of processTree(rootPid, stats)) {
    try {
      for (const tid of listTasks(pid)) times.set(`${pid}/${tid}`, parseSchedstat(readTask(`/proc/${pid}/task/${tid}/schedstat`)));
    } catch (err) {
      // A process or thread that exited between the listing and the read has nothing left to count.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" && (err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }
  return times;
}

/**
 * CPU seconds the tree spent between two readings, to the nanosecond: the
 * scheduler's own run time of each thread, where /proc/<pid>/stat counts
 * 10-ms ticks (at 2,000 requests/s for 6 s one tick is 0.8 µs per request,
 * more than 1 % of nginx's cost, on each side of a ratio). Each thread counts
 * what it ran since the first reading, or since it started; a thread that
 * exited before the second takes its time with it, never subtracts it (nginx's
 * processes and the Go and HAProxy peers keep theirs through a run).
 */
export function runSecondsBetween(before: ThreadRunTimes, after: ThreadRunTimes): number {
  let ns = 0;
  for (const [thread, now] of after) ns += now - (before.get(thread) ?? 0);
  return ns / 1e9;
}

export interface CpuSampler {
  /** Stops sampling; CPU seconds per process name (kernel threads as "kernel"), largest first. */
  stop(): [string, number][];
}

/**
 * Samples every process's CPU time until stopped; with `root`, only that
 * process's descendants (a benchmark's own children, on a machine where others
 * run the same programs).
 */
export function startCpuSampler(everyMs = 100, root?: number): CpuSampler {
  const before = readAll(root);
  const last = new Map(before);
  const sample = () => {
    for (const [key, value] of readAll(root)) last.set(key, value);
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const byName = new Map<string, number>();
      for (const [key, { name, ticks }] of last) {
        const spent = ticks - (before.get(key)?.ticks ?? 0);
        if (spent > 0) byName.set(group(name), (byName.get(group(name)) ?? 0) + spent / TICKS_PER_SECOND);
      }
      return [...byName].sort((a, b) => b[1] - a[1]);
    },
  };
}
