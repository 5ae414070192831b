// bench:proxy's arithmetic, apart from the processes it runs: reading wrk's
// and the constant-rate generator's output, percentiles, CPU per request, and
// the verdict on each target. Pure functions, checked by
// test/unit/bench-proxy.test.ts.

export interface SaturationRun {
  requestsPerSecond: number;
  requests: number;
  /** wrk's socket errors and non-2xx lines; any makes the run meaningless. */
  errors: string[];
}

function milliseconds(value: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(value);
  if (!match) throw new Error(`wrk printed a latency "${value}" this bench cannot read`);
  const n = Number(match[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
}

/** wrk's own summary, read from its text output. */
export function parseWrk(output: string): SaturationRun & { p50Ms: number; p99Ms: number } {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const p50 = /^\s+50%\s+(\S+)/m.exec(output);
  const p99 = /^\s+99%\s+(\S+)/m.exec(output);
  const total = /(\d+) requests in/.exec(output);
  if (!rate || !p50 || !p99 || !total) throw new Error(`cannot read wrk's output:\n${output}`);
  const errors = [/Socket errors:.*/.exec(output)?.[0], /Non-2xx or 3xx responses:.*/.exec(output)?.[0]].filter((e): e is string => e !== undefined);
  return { requestsPerSecond: Number(rate[1]), p50Ms: milliseconds(p50[1]!), p99Ms: milliseconds(p99[1]!), requests: Number(total[1]), errors };
}

/** What bench/proxy/loadgen prints: every latency, counted from the request's due time. */
export interface FixedRateRun {
  rate: number;
  seconds: number;
  connections: number;
  sent: number;
  errors: number;
  firstError?: string;
  latenciesUs: number[];
}

export function parseLoadgen(output: string): FixedRateRun {
  let run: FixedRateRun;
  try {
    run = JSON.parse(output) as FixedRateRun;
  } catch {
    throw new Error(`the load generator printed something that is not its JSON result: ${output.slice(0, 200)}`);
  }
  if (!Array.isArray(run.latenciesUs) || typeof run.sent !== "number" || typeof run.errors !== "number") throw new Error(`the load generator's result lacks latenciesUs, sent or errors: ${output.slice(0, 200)}`);
  if (run.errors > 0) throw new Error(`${run.errors} of ${run.sent} requests failed (first: ${run.firstError ?? "?"}); the latencies would be meaningless`);
  if (run.latenciesUs.length !== run.sent) throw new Error(`the load generator sent ${run.sent} requests but timed ${run.latenciesUs.length}`);
  return run;
}

/** The nearest-rank percentile (the smallest value with at least p % of values at or below it). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("no values to take a percentile of");
  if (!(p > 0 && p <= 100)) throw new Error(`percentile ${p} is not in (0, 100]`);
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
}

export const median = (values: readonly number[]) => percentile(values, 50);

/** CPU microseconds per request from CPU seconds spent over a run of `requests`. */
export function cpuUsPerRequest(cpuSeconds: number, requests: number): number {
  if (!(requests > 0)) throw new Error(`a run with ${requests} requests has no CPU per request`);
  return (cpuSeconds * 1e6) / requests;
}

/** p50 and p99 in ms of a fixed-rate run, and what the proxy added over the same rate sent directly. */
export function addedLatency(proxied: FixedRateRun, direct: FixedRateRun): { p50Ms: number; p99Ms: number; addedP50Ms: number; addedP99Ms: number } {
  const p = (run: FixedRateRun, q: number) => percentile(run.latenciesUs, q) / 1000;
  return { p50Ms: p(proxied, 50), p99Ms: p(proxied, 99), addedP50Ms: p(proxied, 50) - p(direct, 50), addedP99Ms: p(proxied, 99) - p(direct, 99) };
}

/** A target: our figure against a peer's (or a fixed bound) times a factor, smaller is better. */
export interface Target {
  label: string;
  ours: number;
  bound: number;
}

export function verdict(t: Target): string {
  return `${t.ours <= t.bound ? "met" : "NOT met"}: ${t.label} (${t.ours.toFixed(2)} against ${t.bound.toFixed(2)})`;
}

/** The instructions a callgrind dump counted (its `totals:` line, or `summary:` in older dumps). */
export function callgrindInstructions(dump: string): number {
  const events = /^events: (.+)$/m.exec(dump)?.[1]?.split(" ");
  const totals = /^(?:totals|summary): ([\d ]+)$/m.exec(dump)?.[1]?.trim().split(" ");
  const ir = events?.indexOf("Ir") ?? -1;
  if (!events || !totals || ir < 0 || totals[ir] === undefined) throw new Error("not a callgrind dump with an Ir total: no 'events:' line naming Ir and a 'totals:' line");
  return Number(totals[ir]);
}
