// The CPU accounting the benchmarks print: /proc/<pid>/stat lines read right
// (names with spaces and parentheses), a busy process's time found, and the
// nanosecond run times bench:proxy reads per thread.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { parseProcStat, parseSchedstat, processTreeCpuSeconds, processTreeRunTimes, runSecondsBetween, startCpuSampler } from "../../bench/cpu.js";

describe("benchmark CPU accounting", () => {
  it("reads a /proc stat line whose process name holds spaces and parentheses", () => {
    // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime …
    const line = "4242 (web (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
    assert.deepEqual(parseProcStat(line), { pid: 4242, ppid: 1, name: "web (worker) 1", startTime: "987654", cpuTicks: 325 });
    assert.throws(() => parseProcStat("garbage"), /not a \/proc\/<pid>\/stat line/);
  });

  it("finds the CPU a busy process spent, under the name it gave itself", async () => {
    const sampler = startCpuSampler(50);
    const busy = spawn("perl", ["-e", '$0 = "cpu-probe"; my $x = 0; $x += $_ for 1 .. 30_000_000; print $x'], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => busy.once("exit", resolve));
    const spent = new Map(sampler.stop());
    assert.ok((spent.get("cpu-probe") ?? 0) > 0, `no CPU found for the busy process: ${JSON.stringify([...spent])}`);
  });

  it("adds a process's descendants to its own CPU time, and nothing else", () => {
    const stat = (pid: number, ppid: number, ticks: number) => ({ pid, ppid, name: "p", startTime: "1", cpuTicks: ticks });
    // nginx: master 10 with workers 11 and 12 (12 has a child 13); 20 is another process.
    const stats = [stat(10, 1, 5), stat(11, 10, 100), stat(12, 10, 200), stat(13, 12, 50), stat(20, 1, 1000)];
    assert.equal(processTreeCpuSeconds(10, stats), 3.55);
    assert.equal(processTreeCpuSeconds(12, stats), 2.5);
    assert.throws(() => processTreeCpuSeconds(99, stats), /process 99 is not running/);
  });

  it("reads a running process tree's CPU from /proc: a busy child counts for its parent", async () => {
    // The child spins for 5 s; it is read while it runs (an exited child's time leaves the tree).
    const parent = spawn("sh", ["-c", "perl -e 'my $t = time + 5; 1 while time < $t'; true"], { stdio: "ignore" });
    try {
      const before = processTreeCpuSeconds(parent.pid!);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(processTreeCpuSeconds(parent.pid!) - before > 0.2, "the busy child's CPU was not counted under its parent");
    } finally {
      parent.kill("SIGKILL");
    }
  });

  it("reads a thread's run time in nanoseconds from its schedstat line, and refuses anything else", () => {
    assert.equal(parseSchedstat("1098814231 52311 1204\n"), 1098814231);
    assert.throws(() => parseSchedstat("garbage"), /not a \/proc schedstat line/);
    assert.throws(() => parseSchedstat(""), /not a \/proc schedstat line/);
  });

  it("counts each thread's run time in a process tree, and what each ran between two readings", () => {
    const stat = (pid: number, ppid: number) => ({ pid, ppid, name: "p", startTime: "1", cpuTicks: 0 });
    const stats = [stat(10, 1), stat(11, 10), stat(20, 1)];
    const tasks: Record<number, string[]> = { 10: ["10"], 11: ["11", "15"], 20: ["20"] };
    const run: Record<string, number> = { "/proc/10/task/10/schedstat": 5e6, "/proc/11/task/11/schedstat": 2e9, "/proc/11/task/15/schedstat": 3e8, "/proc/20/task/20/schedstat": 9e9 };
    const read = (path: string) => `${run[path]} 0 0`;
    const before = processTreeRunTimes(10, stats, read, (pid) => tasks[pid]!);
    assert.deepEqual([...before], [["10/10", 5e6], ["11/11", 2e9], ["11/15", 3e8]], "process 20 is outside the tree");
    // Between the readings: 11/11 ran 0.25 s, 11/15 exited, 11/16 started and ran 0.1 s.
    tasks[11] = ["11", "16"];
    run["/proc/11/task/11/schedstat"] = 2.25e9;
    run["/proc/11/task/16/schedstat"] = 1e8;
    const after = processTreeRunTimes(10, stats, read, (pid) => tasks[pid]!);
    assert.equal(runSecondsBetween(before, after), 0.35, "an exited thread must not subtract its earlier time");
    assert.throws(() => processTreeRunTimes(99, stats, read, (pid) => tasks[pid]!), /process 99 is not running/);
  });

  it("reads a running tree's run time to the nanosecond, agreeing with /proc/<pid>/stat's ticks", async () => {
    const parent = spawn("sh", ["-c", "perl -e 'my $t = time + 5; 1 while time < $t'; true"], { stdio: "ignore" });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [ticksBefore, runBefore] = [processTreeCpuSeconds(parent.pid!), processTreeRunTimes(parent.pid!)];
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const [ticksAfter, runAfter] = [processTreeCpuSeconds(parent.pid!), processTreeRunTimes(parent.pid!)];
      const precise = runSecondsBetween(runBefore, runAfter);
      assert.ok(precise > 0.2, `the busy child's run time was not counted under its parent: ${precise} s`);
      assert.notEqual(Math.round(precise * 100), precise * 100, "not finer than a tick");
      // The same time two ways: the ticks are the run time rounded to 10 ms at each end (and read a moment apart).
      assert.ok(Math.abs(precise - (ticksAfter - ticksBefore)) < 0.05, `schedstat ${precise} s against stat ${ticksAfter - ticksBefore} s`);
    } finally {
      parent.kill("SIGKILL");
    }
  });

  it("with a root, counts only that process's descendants: a busy process outside the tree is left out", async () => {
    // Outside: started by a shell that exits at once, so it belongs to init by the time sampling starts.
    spawn("sh", ["-c", "perl -e '$0 = \"probe-outside\"; my $t = time + 3; 1 while time < $t' & exit"], { stdio: "ignore" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sampler = startCpuSampler(50, process.pid);
    const inside = spawn("perl", ["-e", '$0 = "probe-inside"; my $x = 0; $x += $_ for 1 .. 20_000_000; print $x'], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => inside.once("exit", resolve));
    const spent = new Map(sampler.stop());
    assert.ok((spent.get("probe-inside") ?? 0) > 0, `the child's CPU was not found: ${JSON.stringify([...spent])}`);
    assert.equal(spent.get("probe-outside"), undefined, "a process outside the tree was counted");
  });
});
