// The constant-rate load generator (loadgen/main.go, Go's standard library
// only): built for the run, then run to its end without blocking this process
// (the servers it measures may live in it), as wrk is.
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { requireCommand } from "../../test/support/system.js";
import { parseLoadgen, type FixedRateRun } from "./stats.js";

/** Builds the generator into `dir`; returns its path. */
export function buildLoadgen(dir: string): string {
  const go = requireCommand("go", "golang (or Go from go.dev)", ["/usr/local/go/bin"]);
  const bin = join(dir, "loadgen");
  // A single file with no module: GOFLAGS such as -mod=mod would not apply.
  execFileSync(go, ["build", "-o", bin, "main.go"], { cwd: join(__dirname, "loadgen"), env: { ...process.env, GOFLAGS: "" }, stdio: ["ignore", "ignore", "inherit"] });
  return bin;
}

export interface LoadgenOptions {
  url: string;
  rate: number;
  seconds: number;
  connections: number;
  /** TLS name for https URLs. */
  serverName?: string;
}

export async function runLoadgen(bin: string, o: LoadgenOptions): Promise<FixedRateRun> {
  const args = ["-url", o.url, "-rate", String(o.rate), "-seconds", String(o.seconds), "-connections", String(o.connections), "-servername", o.serverName ?? "localhost"];
  return parseLoadgen(await commandOutput(bin, args));
}

/** Runs a command to its end without blocking this process; its stdout, or an error with its output. */
export function commandOutput(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${bin} ${args.join(" ")} failed (${code}): ${stderr.trim()}${stdout.slice(0, 2000)}`))));
  });
}
