// The CPU accounting the benchmarks print: /proc/<pid>/stat lines read right
// (names with spaces and parentheses), and a busy process's time found.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { parseProcStat, startCpuSampler } from "../../bench/cpu.js";

describe("benchmark CPU accounting", () => {
  it("reads a /proc stat line whose process name holds spaces and parentheses", () => {
    // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime …
    const line = "4242 (web (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
    assert.deepEqual(parseProcStat(line), { pid: 4242, name: "web (worker) 1", startTime: "987654", cpuTicks: 325 });
    assert.throws(() => parseProcStat("garbage"), /not a \/proc\/<pid>\/stat line/);
  });

  it("finds the CPU a busy process spent, under the name it gave itself", async () => {
    const sampler = startCpuSampler(50);
    const busy = spawn("perl", ["-e", '$0 = "cpu-probe"; my $x = 0; $x += $_ for 1 .. 30_000_000; print $x'], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => busy.once("exit", resolve));
    const spent = new Map(sampler.stop());
    assert.ok((spent.get("cpu-probe") ?? 0) > 0, `no CPU found for the busy process: ${JSON.stringify([...spent])}`);
  });
});
