// bench:backup's arithmetic: where the CPU of a run went, by stage of the
// pipeline, from the per-process figures bench/cpu.ts reads in /proc; and the
// verdicts on the targets. Pure functions, checked by
// test/unit/bench-backup.test.ts.

export const STAGES = ["dump", "server", "compressor", "meters", "uploader", "restore client", "node", "shell", "kernel", "other", "S3 stand-in"] as const;
export type Stage = (typeof STAGES)[number];

/** Which stage a process is, by the name it runs under (its /proc comm). */
const BY_NAME: Record<string, Stage> = {
  "mariadb-dump": "dump",
  mysqldump: "dump",
  mariadbd: "server",
  zstd: "compressor",
  gzip: "compressor",
  // meter_stream (the dump's rows and bytes as it passes) is perl; the upload's sha256 is s3-put.py's.
  perl: "meters",
  // s3-put.py, and the AWS CLI of the hand-made way.
  python3: "uploader",
  aws: "uploader",
  mariadb: "restore client",
  // The S3 API server on loopback: on a server that side is AWS's, so it is shown apart.
  moto_server: "S3 stand-in",
  // The restore command (npm run restore); the bench's own process is never counted.
  node: "node",
  sh: "shell",
  bash: "shell",
  jq: "shell",
  flock: "shell",
  stdbuf: "shell",
  kernel: "kernel",
};

/** CPU seconds by stage, from what bench/cpu.ts's sampler returns (CPU seconds by process name). */
export function cpuByStage(byName: readonly (readonly [string, number])[]): Map<Stage, number> {
  const stages = new Map<Stage, number>();
  for (const [name, seconds] of byName) {
    const stage = BY_NAME[name] ?? "other";
    stages.set(stage, (stages.get(stage) ?? 0) + seconds);
  }
  return stages;
}

/** CPU seconds of the stages a backup's own machine pays for: everything but the S3 stand-in and the restore command. */
export function ownCpuSeconds(stages: ReadonlyMap<Stage, number>): number {
  let total = 0;
  for (const [stage, seconds] of stages) if (stage !== "S3 stand-in" && stage !== "node") total += seconds;
  return total;
}

/** "dump 6.1, server 3.4, …": the stages that took at least 0.05 CPU-s, in STAGES order. */
export function stageLine(stages: ReadonlyMap<Stage, number>): string {
  return STAGES.filter((s) => (stages.get(s) ?? 0) >= 0.05)
    .map((s) => `${s} ${stages.get(s)!.toFixed(1)}`)
    .join(", ");
}

/** The mean of each stage over several runs. */
export function meanStages(runs: readonly ReadonlyMap<Stage, number>[]): Map<Stage, number> {
  const mean = new Map<Stage, number>();
  for (const run of runs) for (const [stage, seconds] of run) mean.set(stage, (mean.get(stage) ?? 0) + seconds / runs.length);
  return mean;
}

/** Seconds per GiB of dump between two sizes, and how the later one compares (1.00 = linear). */
export function growth(points: readonly { dumpBytes: number; seconds: number }[]): { secondsPerGiB: number; vsFirst: number }[] {
  if (points.length === 0) return [];
  const perGiB = points.map((p) => p.seconds / (p.dumpBytes / 2 ** 30));
  return perGiB.map((s) => ({ secondsPerGiB: s, vsFirst: s / perGiB[0]! }));
}
