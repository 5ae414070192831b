// bench:backup's arithmetic: CPU by stage from per-process figures (the S3
// stand-in shown apart), what counts as the backup's
// own CPU, means over rounds, and growth per GiB.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cpuByStage, growth, meanStages, ownCpuSeconds, stageLine } from "../../bench/backup/stages.js";

describe("bench:backup arithmetic", () => {
  it("puts each process in its stage, the S3 stand-in apart", () => {
    const stages = cpuByStage(
      [
        ["mariadbd", 3.5],
        ["mariadb-dump", 4],
        ["zstd", 4.5],
        ["perl", 1.7],
        ["python3", 0.5],
        ["moto_server", 5],
        ["node", 0.25],
        ["bash", 0.2],
        ["kernel", 0.4],
        ["something-else", 0.1],
      ],
    );
    assert.deepEqual(Object.fromEntries(stages), { server: 3.5, dump: 4, compressor: 4.5, meters: 1.7, uploader: 0.5, node: 0.25, shell: 0.2, kernel: 0.4, other: 0.1, "S3 stand-in": 5 });
    // The backup's own machine pays for everything but the S3 stand-in (and the restore command, never part of a backup).
    assert.ok(Math.abs(ownCpuSeconds(stages) - 14.9) < 1e-9);
    assert.equal(stageLine(stages), "dump 4.0, server 3.5, compressor 4.5, meters 1.7, uploader 0.5, node 0.3, shell 0.2, kernel 0.4, other 0.1, S3 stand-in 5.0");
  });

  it("names the hand-made way's tools as the same stages: mysqldump, gzip, the AWS CLI", () => {
    const stages = cpuByStage([["mysqldump", 4], ["gzip", 20], ["aws", 2.5], ["mariadb", 30]]);
    assert.deepEqual(Object.fromEntries(stages), { dump: 4, compressor: 20, uploader: 2.5, "restore client": 30 });
  });

  it("averages stages over rounds, a stage missing from one round counting as zero there", () => {
    const mean = meanStages([new Map([["dump", 4], ["compressor", 2]]), new Map([["dump", 6]])]);
    assert.deepEqual(Object.fromEntries(mean), { dump: 5, compressor: 1 });
  });

  it("gives seconds per GiB of dump and each size against the first (1.00 = linear)", () => {
    const points = growth([
      { dumpBytes: 2 ** 28, seconds: 2 }, // 0.25 GiB
      { dumpBytes: 2 ** 30, seconds: 8 }, // 1 GiB, linear
      { dumpBytes: 2 ** 32, seconds: 48 }, // 4 GiB, 1.5× slower per GiB
    ]);
    assert.deepEqual(points, [
      { secondsPerGiB: 8, vsFirst: 1 },
      { secondsPerGiB: 8, vsFirst: 1 },
      { secondsPerGiB: 12, vsFirst: 1.5 },
    ]);
  });
});
