// npm run bench:switch — blue/green rollouts under continuous load, on the
// real thing: the prod stack brought up by the engine built here on a real
// Docker daemon behind a real sshd (test/support/docker-host.ts), the proxy
// container, the slots' containers, the rollout the program does. Two paths,
// in one run, alternating releases:
//   - npm run deploy -- --image <ref>   (the operator's command)
//   - a release in the stack file, then `pulumi up`   (what CI does on merge)
// Both are the same rollout (idle slot, healthy, smoke checks, flip, verify).
//
// Prints per path: rollouts, requests and failures during them, each
// rollout's duration, and the mixed window: from the first answer of the new
// release to the last answer of the old one (how long both answered;
// negative or zero is a clean cut), p50/p99. Targets: 0 failures on both.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { tagAppVersion, buildTestImages } from "../../test/support/docker-images.js";
import { docker, startDockerHost } from "../../test/support/docker-host.js";
import { addCloudflareClientAddress, pointStackAtHost, pulumi, setStackValue, startLoad, type LoadAnswer } from "../../test/support/docker-stacks.js";
import { engineWorkspace } from "../../test/support/engine.js";

const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS ?? 4);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const SETTLE_MS = 2000;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const ms = (v: number) => `${v.toFixed(0)} ms`;

interface Rollout {
  path: "npm run deploy" | "pulumi up";
  from: string;
  to: string;
  start: number;
  end: number;
  ok: boolean;
}

async function main() {
  const removeAddress = addCloudflareClientAddress();
  const host = await startDockerHost();
  const ws = engineWorkspace("server", host.operatorEnv);
  try {
    await buildTestImages({ env: host.dockerEnv });
    // Pinned version tags: the stack refuses anything else.
    const versions = ["1.9.0", "1.9.1"];
    for (const v of versions) await tagAppVersion({ env: host.dockerEnv }, v);
    pointStackAtHost(ws.projectDir, "prod", host);
    for (const args of [["stack", "init", "prod"], ["up", "--stack", "prod", "--yes", "--skip-preview"]]) {
      const result = pulumi(ws, args);
      if (result.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
    }
    const proxy = () => docker(["inspect", "-f", '{{(index .NetworkSettings.Networks "bbaegok-prod-edge").IPAddress}}', "bbaegok-proxy"]).stdout.trim();
    const load = startLoad(proxy, "api.bbaegok.kr", WORKERS);
    const now = load.now;
    // A failed rollout's output is printed: a bench that only says "0
    // succeeded" hides why.
    const run = (args: string[]) =>
      new Promise<number>((resolve) => {
        const child = spawn(args[0]!, args.slice(1), { cwd: ws.projectDir, env: ws.env, stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (d: Buffer) => (output += d.toString()));
        child.stderr.on("data", (d: Buffer) => (output += d.toString()));
        child.on("exit", (code) => {
          if (code !== 0) console.error(`rollout failed (${args.slice(0, 4).join(" ")} …, exit ${code}):\n${output.length > 4000 ? `${output.slice(0, 2500)}\n…\n${output.slice(-1500)}` : output}`);
          resolve(code ?? 1);
        });
      });
    const rollouts: Rollout[] = [];
    let current = "1.8.2";
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    for (let i = 0; i < ROLLOUTS * 2; i++) {
      const path: Rollout["path"] = i % 2 === 0 ? "npm run deploy" : "pulumi up";
      const to = versions[i % 2]!;
      const image = `ghcr.io/bbaegok/bbaegok-api:${to}`;
      const start = now();
      let code: number;
      if (path === "npm run deploy") {
        code = await run([process.execPath, "--import", "tsx", join(ws.projectDir, "ops", "deploy.ts"), "deploy", "--stack", "prod", "--image", image]);
      } else {
        setStackValue(ws.projectDir, "prod", ["bbaegok-infra:app", "image"], image);
        code = await run([join(ws.env["PATH"]!.split(":")[0]!, "pulumi"), "up", "--stack", "prod", "--yes", "--skip-preview", "--non-interactive"]);
      }
      rollouts.push({ path, from: current, to, start, end: now(), ok: code === 0 });
      current = to;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
    const answers = await load.stop();

    console.log(`blue/green rollouts under load: prod on a real Docker host (own dockerd, sshd, the proxy and slot containers), ${WORKERS} HTTPS keep-alive clients from a Cloudflare address (1 in 3 requests takes 300 ms), ${ROLLOUTS} rollouts per path, alternating`);
    console.log(`  requests: ${answers.length} total, ${answers.filter((a) => a.error).length} failed, ${load.retried()} resent after nginx closed an idle kept-alive connection at a reload`);
    for (const path of ["npm run deploy", "pulumi up"] as const) {
      const mine = rollouts.filter((r) => r.path === path);
      const windows: number[] = [];
      let failed = 0;
      for (const r of mine) {
        const during = answers.filter((a: LoadAnswer) => a.start >= r.start - 50 && a.start <= r.end + SETTLE_MS);
        failed += during.filter((a) => a.error).length;
        const firstNew = during.find((a) => a.version === r.to);
        const lastOld = during.filter((a) => a.version === r.from).pop();
        if (firstNew && lastOld) windows.push(lastOld.start - firstNew.start);
      }
      console.log(`  ${path}: ${mine.length} rollouts, ${mine.filter((r) => r.ok).length} succeeded, ${failed} failed requests during them`);
      console.log(`    rollout duration: p50 ${ms(percentile(mine.map((r) => r.end - r.start), 50))}, max ${ms(Math.max(...mine.map((r) => r.end - r.start)))}`);
      if (windows.length > 0) console.log(`    mixed window (first new answer to last old answer): p50 ${ms(percentile(windows, 50))}, p99 ${ms(percentile(windows, 99))}`);
    }
    const met = answers.every((a) => !a.error) && rollouts.every((r) => r.ok);
    console.log(`  target (0 failures on both paths): ${met ? "met" : "NOT met"}`);
    process.exitCode = met ? 0 : 1;
  } finally {
    ws.remove();
    await host.stop();
    removeAddress();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:switch failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
