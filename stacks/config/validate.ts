// Validation at the edge: raw stack config in, a typed StackConfig out, or one
// error that lists every problem at once, each naming the stack file, the key
// path, the value found and what is expected.
import type { z } from "zod";
import { cidrsOverlap, isHostname } from "./rules.js";
import { PROJECT, SECRET_KEYS, stackConfigSchema, type SecretKey, type StackConfig } from "./schema.js";

export interface ConfigProblem {
  /** The stack file the value comes from, e.g. `Pulumi.staging.yaml`. */
  file: string;
  /** The full key path, e.g. `bbaegok-infra:database.engine`. */
  key: string;
  /** The value found; undefined when the key is missing. */
  value: unknown;
  /** What would be accepted. */
  expected: string;
}

export class StackConfigError extends Error {
  constructor(
    readonly stackName: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      `Stack "${stackName}" has ${problems.length} configuration problem${problems.length === 1 ? "" : "s"}:\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join("\n"),
    );
    this.name = "StackConfigError";
  }
}

export function stackFileName(stack: string): string {
  return `Pulumi.${stack}.yaml`;
}

export function formatProblem(p: ConfigProblem): string {
  const found = p.value === undefined ? "is missing" : `= ${shortJson(p.value)}`;
  return `${p.file}: ${p.key} ${found}: ${p.expected}`;
}

function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function keyPath(path: readonly PropertyKey[]): string {
  let out = PROJECT + ":";
  for (const [i, part] of path.entries()) {
    if (typeof part === "number") out += `[${part}]`;
    else out += i === 0 ? String(part) : `.${String(part)}`;
  }
  return out;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const part of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

function problemsFromZod(file: string, raw: unknown, error: z.ZodError): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        const where = issue.path.length === 0 ? "" : ` under ${keyPath(issue.path)}`;
        problems.push({ file, key: keyPath(path), value: valueAt(raw, path), expected: `no such key${where}: remove it or fix its spelling` });
      }
      continue;
    }
    // Prefer the value as written in the file; zod reports the parent object for some issues.
    const written = valueAt(raw, issue.path);
    const value = written !== undefined ? written : issue.input;
    problems.push({ file, key: keyPath(issue.path), value, expected: issue.message });
  }
  return problems;
}

/** Another stack file of this project, as far as cross-stack checks need it. */
export interface SiblingStack {
  stack: string;
  raw: Record<string, unknown>;
}

interface SiblingView {
  stack: string;
  host?: string;
  names: string[];
  edgeSubnet?: string;
  proxyMode?: string;
}

function viewOf(stack: string, raw: Record<string, unknown>): SiblingView {
  const server = raw["server"] as Record<string, unknown> | undefined;
  const domains = (raw["domains"] ?? {}) as Record<string, unknown>;
  const proxy = raw["proxy"] as Record<string, unknown> | undefined;
  const names = ["api", "metabase"].map((k) => domains[k]).filter((v): v is string => typeof v === "string" && isHostname(v));
  return {
    stack,
    host: typeof server?.["host"] === "string" ? server["host"] : undefined,
    names,
    edgeSubnet: typeof server?.["edgeSubnet"] === "string" ? server["edgeSubnet"] : undefined,
    proxyMode: typeof proxy?.["mode"] === "string" ? proxy["mode"] : undefined,
  };
}

/**
 * What one stack cannot know alone: on one server, host names must be unique
 * across stacks (one proxy routes them all), edge subnets must not overlap (one
 * Docker daemon refuses overlapping networks, and the proxy joins them all) and
 * exactly one stack owns the proxy.
 * Works on raw values so these problems are listed with the schema's own.
 */
function crossStackProblems(stack: string, raw: Record<string, unknown>, siblings: readonly SiblingStack[]): ConfigProblem[] {
  const file = stackFileName(stack);
  const self = viewOf(stack, raw);
  if (self.host === undefined) return [];
  const problems: ConfigProblem[] = [];
  const sameServer = siblings.filter((s) => s.stack !== stack).map((s) => viewOf(s.stack, s.raw)).filter((s) => s.host === self.host);
  const domains = (raw["domains"] ?? {}) as Record<string, unknown>;
  for (const key of ["api", "metabase"] as const) {
    const name = domains[key];
    if (typeof name !== "string") continue;
    const clash = sameServer.find((s) => s.names.includes(name));
    if (clash) {
      problems.push({
        file,
        key: keyPath(["domains", key]),
        value: name,
        expected: `a host name no other stack on ${self.host} uses; ${stackFileName(clash.stack)} uses it too`,
      });
    }
  }
  if (self.edgeSubnet !== undefined) {
    const clash = sameServer.find((s) => s.edgeSubnet !== undefined && cidrsOverlap(s.edgeSubnet, self.edgeSubnet!));
    if (clash) {
      problems.push({
        file,
        key: keyPath(["server", "edgeSubnet"]),
        value: self.edgeSubnet,
        expected: `a subnet no other stack on ${self.host} uses; ${stackFileName(clash.stack)} has ${clash.edgeSubnet}, which overlaps it`,
      });
    }
  }
  if (self.proxyMode === "owner") {
    const otherOwner = sameServer.find((s) => s.proxyMode === "owner");
    if (otherOwner) {
      problems.push({
        file,
        key: keyPath(["proxy", "mode"]),
        value: "owner",
        expected: `"guest": ${stackFileName(otherOwner.stack)} already owns the proxy on ${self.host}`,
      });
    }
  } else if (self.proxyMode === "guest" && sameServer.length > 0 && !sameServer.some((s) => s.proxyMode === "owner")) {
    problems.push({
      file,
      key: keyPath(["proxy", "mode"]),
      value: "guest",
      expected: `"owner", or a stack file on ${self.host} with proxy.mode "owner": none of ${sameServer.map((s) => stackFileName(s.stack)).join(", ")} owns it`,
    });
  }
  return problems;
}

/**
 * The secrets the program reads for this config, each with the setting that
 * needs it. Read from raw values, so a missing one is listed with the schema's
 * problems. Optional secrets (backupPingUrl) are never required.
 */
export function requiredSecrets(raw: Record<string, unknown>): { key: SecretKey; because: string }[] {
  const domains = raw["domains"] as Record<string, unknown> | undefined;
  const tls = (raw["proxy"] as Record<string, unknown> | undefined)?.["tls"] as Record<string, unknown> | undefined;
  return [
    ...(domains?.["ddns"] !== undefined ? [{ key: "ddnsApiToken" as const, because: "domains.ddns is set" }] : []),
    ...(tls?.["source"] === "provided" ? [{ key: "tlsPrivateKey" as const, because: 'proxy.tls.source is "provided"' }] : []),
  ];
}

function secretProblems(stack: string, raw: Record<string, unknown>, setSecrets: readonly string[]): ConfigProblem[] {
  const file = stackFileName(stack);
  return requiredSecrets(raw)
    .filter(({ key }) => !setSecrets.includes(key))
    .map(({ key, because }) => ({
      file,
      key: `${PROJECT}:${key}`,
      value: undefined,
      // No value on the command line: the CLI prompts for it (or reads it on stdin).
      expected: `expected a secret, because ${because} (${SECRET_KEYS[key]}): set it with \`pulumi config set --secret ${key} -s ${stack}\``,
    }));
}

/**
 * Validates one stack's raw configuration (the `bbaegok-infra:` keys with the
 * namespace stripped, secrets excluded). `siblings` are the project's other
 * stack files, for the checks that span stacks on one server; `setSecrets` the
 * secret keys the stack has (a `secure:` value counts), when they are known.
 */
export function validateStackConfig(stack: string, raw: Record<string, unknown>, siblings: readonly SiblingStack[] = [], setSecrets?: readonly string[]): StackConfig {
  const file = stackFileName(stack);
  const parsed = stackConfigSchema.safeParse(raw, { reportInput: true });
  const problems = [
    ...(parsed.success ? [] : problemsFromZod(file, raw, parsed.error)),
    ...crossStackProblems(stack, raw, siblings),
    ...(setSecrets ? secretProblems(stack, raw, setSecrets) : []),
  ];
  if (problems.length > 0 || !parsed.success) throw new StackConfigError(stack, problems);
  return parsed.data;
}

/**
 * Splits flat Pulumi config (`{"bbaegok-infra:server": "{…json…}", "aws:region": …}`)
 * into our namespace's plain values. Structured values arrive as JSON text.
 */
export function rawFromPulumiConfig(all: Readonly<Record<string, string>>): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  const prefix = `${PROJECT}:`;
  for (const [fullKey, text] of Object.entries(all)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (key in SECRET_KEYS) continue;
    raw[key] = parseConfigText(text);
  }
  return raw;
}

/** The secret keys of ours that flat Pulumi config holds (with a value, or a placeholder for a `secure:` one). */
export function secretsIn(all: Readonly<Record<string, string>>): SecretKey[] {
  return (Object.keys(SECRET_KEYS) as SecretKey[]).filter((key) => `${PROJECT}:${key}` in all);
}

function parseConfigText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
