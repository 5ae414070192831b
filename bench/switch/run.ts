// npm run bench:switch — blue/green flips under continuous load, through the
// deploy's own switch (ServerControl.switchTo: the upstream file, nginx -t, a
// graceful reload, run by a shell) on Debian's nginx with the prod stack's
// files and two local HTTP servers as the slots (test/support/deploy-server.ts).
//
// Prints total requests, failures, switches, and per switch the time from the
// start of the flip command until every request started afterwards reaches the
// new slot (the first request answered by the new slot after the last one the
// old slot answered), p50/p99. Targets: 0 failures, under 1 s.
import type { Slot } from "../../stacks/config/schema.js";
import { startDeployServer, startLoad } from "../../test/support/deploy-server.js";

const SWITCHES = Number(process.env.BENCH_SWITCHES ?? 20);
/** Time between flips: long enough for every request of the previous flip to finish. */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 1500);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 6);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const ms = (v: number) => `${v.toFixed(0)} ms`;

async function main() {
  const ds = await startDeployServer("bench-switch");
  try {
    const load = startLoad(ds, WORKERS);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const flips: { from: Slot; to: Slot; at: number; command: number }[] = [];
    let live: Slot = "blue";
    for (let i = 0; i < SWITCHES; i++) {
      const to: Slot = live === "blue" ? "green" : "blue";
      const at = load.now();
      await ds.server.switchTo(to);
      flips.push({ from: live, to, at, command: load.now() - at });
      live = to;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
    const answers = await load.stop();

    const toNew: number[] = [];
    flips.forEach((flip, i) => {
      const until = flips[i + 1]?.at ?? Infinity;
      const window = answers.filter((a) => a.start >= flip.at && a.start < until && a.slot).sort((a, b) => a.start - b.start);
      const lastOld = window.filter((a) => a.slot === flip.from).pop();
      const firstAllNew = window.find((a) => a.slot === flip.to && (!lastOld || a.start > lastOld.start));
      if (!firstAllNew) throw new Error(`switch ${i + 1} to ${flip.to}: no request reached ${flip.to} within ${SETTLE_MS} ms`);
      toNew.push(firstAllNew.start - flip.at);
    });
    const failures = answers.filter((a) => a.error);
    const errors = [...new Set(failures.map((a) => a.error))];

    console.log(`blue/green switch under load: real nginx (${ds.nginx.commandLine("").split(" ")[0]}), ${WORKERS} HTTPS keep-alive clients (1 in 3 requests takes 150 ms), ${SWITCHES} alternating switches ${SETTLE_MS} ms apart`);
    console.log(`  requests: ${answers.length} total, ${failures.length} failed${errors.length ? ` (${errors.join(", ")})` : ""}, ${load.retried()} resent after nginx closed an idle kept-alive connection at a reload`);
    console.log(`  served: blue ${answers.filter((a) => a.slot === "blue").length}, green ${answers.filter((a) => a.slot === "green").length}`);
    console.log(`  switches: ${flips.length}`);
    console.log(`  flip command to 100% of new requests on the new slot: p50 ${ms(percentile(toNew, 50))}, p99 ${ms(percentile(toNew, 99))}, max ${ms(Math.max(...toNew))}`);
    console.log(`  the switch command itself (file, nginx -t, reload signal): p50 ${ms(percentile(flips.map((f) => f.command), 50))}, p99 ${ms(percentile(flips.map((f) => f.command), 99))}`);
    const met = failures.length === 0 && percentile(toNew, 99) < 1000;
    console.log(`  targets (0 failures, under 1 s): ${met ? "met" : "NOT met"}`);
    process.exitCode = met ? 0 : 1;
  } finally {
    await ds.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:switch failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
