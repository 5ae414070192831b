// npm run stack:clone -- --from <stack> --to <name> --host <addr> --public-ip <ip> --api <host> --bucket <name> [...]
//
// Onboarding a server: a new Pulumi.<name>.yaml from an existing stack file,
// comments kept, with every value that belongs to one server or one
// environment replaced by what the operator gives (or derived from it), the
// source's encrypted secrets left out (and listed to set), validated with the
// program's own schema and cross-stack checks, then written atomically and
// never over an existing file. With the Pulumi CLI on PATH it also runs
// `pulumi stack init <name>`. Exit status (ops/exit.ts): 0 written, 1 written
// but `pulumi stack init` failed, 2 refused (usage, a value, the source file):
// nothing written.
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isMap, isScalar, isSeq, parseDocument, type Document, type Pair, type YAMLMap } from "yaml";
import { PROJECT, PROJECT_DIR, SECRET_KEYS, loadStack, type StackConfig } from "../stacks/config/index.js";
import { readSiblings, readStackFile, StackFileError, type StackFile } from "../stacks/config/files.js";
import { cidrsOverlap, isInZone, nextFreeSubnet24 } from "../stacks/config/rules.js";
import { rawFromPulumiConfig, stackFileName, StackConfigError, validateStackConfig, type SiblingStack } from "../stacks/config/validate.js";
import { hasPulumiCli } from "./automation.js";
import { EXIT, runCommand } from "./exit.js";

const USAGE = `usage: npm run stack:clone -- --from <stack> --to <name> --host <ssh address> --public-ip <ipv4> --api <host name> --bucket <s3 bucket>
         [--metabase <host name> | --no-metabase] [--zone <zone>] [--proxy owner|guest] [--owner-stack <org>/${PROJECT}/<stack>]
         [--host-key "<ssh host key line>"] [--ssh-user <user>] [--ssh-port <port>] [--data-dir <path>] [--edge-subnet <private /24>]`;

/** What the operator gives; every server-specific value is here or derived from it. */
export interface CloneRequest {
  from: string;
  to: string;
  /** SSH address of the new stack's server. */
  host?: string;
  /** Public IPv4 address the DNS records point at. */
  publicIp?: string;
  /** The API's host name for the new stack. */
  api?: string;
  /** Metabase's host name; required when the source runs Metabase, unless `noMetabase`. */
  metabase?: string;
  /** Turn Metabase off in the new stack. */
  noMetabase?: boolean;
  /** The backup bucket (S3 names are global: never another stack's). */
  bucket?: string;
  /** The DNS zone; derived from the source when the host names are inside it. */
  zone?: string;
  /** Proxy ownership; derived from the stack files on the same server when not given. */
  proxy?: "owner" | "guest";
  /** The owner stack a guest attaches to, `<org>/bbaegok-infra/<stack>`. */
  ownerStack?: string;
  /** The new server's SSH host key line (`ssh-ed25519 AAAA…`); required unless the server (host and port) is the source's. */
  hostKey?: string;
  sshUser?: string;
  sshPort?: number;
  dataDir?: string;
  /** The edge network's /24; when not given, the source's, or the next one free on the server. */
  edgeSubnet?: string;
}

/** A secret the source stack had, which the new stack must be given by its operator. */
export interface SecretToSet {
  key: string;
  /** The exact command; it prompts for the value, so it stays out of shell history. */
  command: string;
  about: string | undefined;
}

export interface ClonedStack {
  stack: string;
  path: string;
  /** The new stack file's text, as written. */
  text: string;
  config: StackConfig;
  secretsToSet: SecretToSet[];
  /** What the clone decided on the operator's behalf, one sentence each. */
  decisions: string[];
}

/** The command line itself is incomplete or malformed (exit status 2, as every refusal). */
export class CloneUsageError extends Error {
  override name = "CloneUsageError";
}

/** Refused: names what is wrong or missing, one problem a line, and writes nothing. */
export class StackCloneError extends Error {
  override name = "StackCloneError";
  constructor(
    readonly summary: string,
    readonly problems: readonly string[] = [],
  ) {
    super(problems.length === 0 ? summary : `${summary}\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** The self-managed backends name every stack `organization/<project>/<stack>`. */
const DEFAULT_ORGANIZATION = "organization";

// Which option sets which key: schema errors about the new file name the option too.
const OPTION_OF_KEY: Record<string, string> = {
  "server.host": "--host",
  "server.publicIp": "--public-ip",
  "server.ssh.hostKey": "--host-key",
  "server.ssh.user": "--ssh-user",
  "server.ssh.port": "--ssh-port",
  "server.dataDir": "--data-dir",
  "server.edgeSubnet": "--edge-subnet",
  "domains.zone": "--zone",
  "domains.api": "--api",
  "domains.metabase": "--metabase",
  "backup.bucket": "--bucket",
  "proxy.mode": "--proxy",
  "proxy.ownerStack": "--owner-stack",
};

/** What a sibling stack file claims (server, public names, bucket, proxy), read raw to check a clone collides with none. */
interface SiblingClaims {
  stack: string;
  host: string | undefined;
  hostNames: string[];
  bucket: string | undefined;
  proxyMode: string | undefined;
  edgeSubnet: string | undefined;
}

function namesOf(sibling: SiblingStack): SiblingClaims {
  const record = (key: string) => (sibling.raw[key] ?? {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === "string" ? value : undefined);
  return {
    stack: sibling.stack,
    host: text(record("server")["host"]),
    hostNames: [record("domains")["api"], record("domains")["metabase"]].filter((v): v is string => typeof v === "string"),
    bucket: text(record("backup")["bucket"]),
    proxyMode: text(record("proxy")["mode"]),
    edgeSubnet: text(record("server")["edgeSubnet"]),
  };
}

/** The project's `config:` map and the spelling it uses for our keys (`bbaegok-infra:server` or `server`). */
function projectKeys(doc: Document): { config: YAMLMap; key(name: string): string } {
  const config = doc.get("config", true);
  if (!isMap(config)) throw new StackCloneError("The source stack file has no `config:` map.");
  const present = new Set(config.items.map((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key)));
  return { config, key: (name) => (present.has(name) ? name : `${PROJECT}:${name}`) };
}

/** Sets a value in place, keeping the node (and its comment) when it is a scalar already there. */
function setValue(map: YAMLMap, path: readonly (string | number)[], value: string | number | boolean): void {
  const node = map.getIn(path, true);
  if (isScalar(node)) node.value = value;
  else map.setIn(path, value);
}

/** Removes every `secure:` value (top-level or nested) and returns the key paths it held. */
function stripSecrets(config: YAMLMap): string[][] {
  const found: string[][] = [];
  const isSecure = (node: unknown) => isMap(node) && node.items.length === 1 && isScalar(node.items[0]!.key) && node.items[0]!.key.value === "secure";
  const walk = (map: YAMLMap, path: string[]) => {
    for (const pair of [...map.items] as Pair[]) {
      const key = String(isScalar(pair.key) ? pair.key.value : pair.key);
      if (isSecure(pair.value)) {
        found.push([...path, key]);
        map.delete(pair.key);
      } else if (isMap(pair.value)) {
        walk(pair.value, [...path, key]);
      } else if (isSeq(pair.value)) {
        pair.value.items.forEach((item, i) => {
          if (isMap(item)) walk(item, [...path, key, String(i)]);
        });
      }
    }
  };
  walk(config, []);
  return found;
}

function secretCommand(path: string[], stack: string): SecretToSet {
  const [topKey = "", ...rest] = path;
  const key = topKey.startsWith(`${PROJECT}:`) ? topKey.slice(PROJECT.length + 1) : topKey;
  const dotted = [key, ...rest].join(".");
  const about = rest.length === 0 && key in SECRET_KEYS ? SECRET_KEYS[key as keyof typeof SECRET_KEYS] : undefined;
  return { key: dotted, command: `pulumi config set --secret${rest.length > 0 ? " --path" : ""} ${dotted} -s ${stack}`, about };
}

/**
 * What of the source's database belongs to its own servers and history, not to a new server's stack: a
 * promotion (`primary: replica`: the new stack starts with its own primary, and its replica, if one is
 * listed, is seeded from it), and a replica on another server (that server and the link are the source's).
 * Left out of `config` in place; returns what to tell the operator.
 */
function leaveOutSourceDatabaseHistory(config: YAMLMap, database: string, source: StackConfig["database"], from: string, to: string): string[] {
  const said: string[] = [];
  if (source.primary !== "original") {
    config.deleteIn([database, "primary"]);
    said.push(`database.primary: ${source.primary} is left out: ${from}'s promotion is its own history; ${to} starts with a primary of its own${source.replicas.some((r) => !r.server) ? " and a replica seeded from it" : ""}.`);
  }
  const elsewhere = source.replicas.flatMap((r, i) => (r.server ? [{ i, host: r.server.host }] : []));
  for (const { i } of [...elsewhere].reverse()) config.deleteIn([database, "replicas", i]);
  if (elsewhere.length > 0 && elsewhere.length === source.replicas.length) config.deleteIn([database, "replicas"]);
  for (const { i, host } of elsewhere) {
    said.push(`database.replicas[${i}] on ${host} is left out: that server and its link are ${from}'s. Give ${to}'s replica a server and link of its own (README, "A replica on another server").`);
  }
  return said;
}

function ownerReference(ownerStack: string, source: StackConfig): string {
  const organization = source.proxy.mode === "guest" ? (source.proxy.ownerStack.split("/")[0] ?? DEFAULT_ORGANIZATION) : DEFAULT_ORGANIZATION;
  return `${organization}/${PROJECT}/${ownerStack}`;
}

/** Reads, checks and validates the source stack file; the clone starts from a valid stack only. */
function readSource(projectDir: string, from: string): { text: string; config: StackConfig } {
  let file: StackFile, config: StackConfig;
  try {
    ({ file, config } = loadStack(from, projectDir));
  } catch (err) {
    if (err instanceof StackConfigError) throw new StackCloneError(`The source stack ${stackFileName(from)} is not valid; fix it before cloning it:`, err.problems.map((p) => `${p.file}: ${p.key}: ${p.expected}`));
    throw err;
  }
  return { text: readFileSync(file.path, "utf8"), config };
}

/**
 * Builds the new stack file's text from the source (no file is written): the
 * requested and derived values set, the secrets stripped. Throws
 * StackCloneError listing every missing or conflicting value at once.
 */
export function planClone(projectDir: string, request: CloneRequest): Omit<ClonedStack, "path" | "config"> {
  const { from, to } = request;
  if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(to)) {
    throw new StackCloneError(`"${to}" cannot name a stack: use 2-32 lower-case letters, digits and hyphens, starting with a letter (it names containers, networks and DNS-safe files).`);
  }
  if (existsSync(join(projectDir, stackFileName(to)))) {
    throw new StackCloneError(`${stackFileName(to)} already exists: stack:clone never overwrites a stack file. Choose another --to, or remove that file first if no stack uses it.`);
  }
  const source = readSource(projectDir, from);
  const others = readSiblings(projectDir, to).map(namesOf);
  const problems: string[] = [];
  const missing = (option: string, what: string) => problems.push(`${option} is required: ${what}`);

  if (!request.host) missing("--host", "the new server's SSH address (DNS name or IPv4)");
  if (!request.publicIp) missing("--public-ip", "the public IPv4 address the DNS records point at");
  if (!request.api) missing("--api", `the API's host name for ${to} (e.g. ${to}-api.${source.config.domains.zone})`);
  if (!request.bucket) missing("--bucket", `the S3 bucket for ${to}'s backups (e.g. ${source.config.service}-${to}-db-backups); bucket names are global, never another stack's`);
  const metabaseOn = source.config.metabase.enabled && !request.noMetabase;
  if (metabaseOn && !request.metabase) missing("--metabase", `Metabase's host name (${stackFileName(from)} runs Metabase), or --no-metabase`);
  if (request.metabase && request.noMetabase) problems.push("--metabase and --no-metabase contradict each other: give one");
  // Every stack pins its server's host key: another server (or another sshd on another port) has another key.
  const sshPort = request.sshPort ?? source.config.server.ssh.port;
  const sameServer = request.host === source.config.server.host && sshPort === source.config.server.ssh.port;
  if (!sameServer && !request.hostKey) {
    missing(
      "--host-key",
      `the new server's SSH host key, "ssh-ed25519 AAAA…" (every stack pins it): ssh-keyscan -p ${sshPort} -t ed25519 ${request.host ?? "<host>"} prints it after the host name; check it on the server with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`,
    );
  }

  const zone = request.zone ?? source.config.domains.zone;
  for (const [option, name] of [["--api", request.api], ["--metabase", metabaseOn ? request.metabase : undefined]] as const) {
    if (!name) continue;
    if (!isInZone(name, zone)) problems.push(`${option} ${name} is outside the zone ${zone}: give a name inside it, or --zone`);
    const user = others.find((o) => o.hostNames.includes(name));
    if (user) problems.push(`${option} ${name} is already used by ${stackFileName(user.stack)}: each stack needs its own host names (one DNS record, one route)`);
  }
  if (request.bucket) {
    const user = others.find((o) => o.bucket === request.bucket);
    if (user) problems.push(`--bucket ${request.bucket} is already used by ${stackFileName(user.stack)}: each stack backs up to its own bucket`);
  }

  // Proxy ownership: one owner per server; a second stack there attaches to it.
  const ownerOnHost = request.host ? others.find((o) => o.host === request.host && o.proxyMode === "owner") : undefined;
  const proxyMode = request.proxy ?? (ownerOnHost ? "guest" : "owner");
  let ownerStack = request.ownerStack;
  if (proxyMode === "guest" && !ownerStack) {
    if (ownerOnHost) ownerStack = ownerReference(ownerOnHost.stack, source.config);
    else missing("--owner-stack", `the stack that owns the proxy on ${request.host ?? "the server"} (<org>/${PROJECT}/<stack>); no stack file on that host owns it`);
  }
  if (proxyMode === "owner" && request.ownerStack) problems.push("--owner-stack is only for --proxy guest");

  // The edge network's subnet: the source's, unless a stack on the same server has it (or one overlapping it).
  let edgeSubnet = request.edgeSubnet;
  const sourceSubnet = source.config.server.edgeSubnet;
  const onServer = request.host ? others.filter((o) => o.host === request.host) : [];
  const taken = onServer.flatMap((o) => (o.edgeSubnet ? [o.edgeSubnet] : []));
  let subnetDecision: string | undefined;
  if (edgeSubnet === undefined && taken.some((t) => cidrsOverlap(t, sourceSubnet))) {
    edgeSubnet = nextFreeSubnet24(sourceSubnet, taken);
    const users = onServer.filter((o) => o.edgeSubnet).map((o) => `${stackFileName(o.stack)} ${o.edgeSubnet}`).join(", ");
    if (edgeSubnet === undefined) missing("--edge-subnet", `a private /24 for ${to}'s edge network: no /24 from ${sourceSubnet} up is free on ${request.host} (${users})`);
    else subnetDecision = `The edge network gets ${edgeSubnet}, the next /24 free on ${request.host} (taken there: ${users}); --edge-subnet chooses another.`;
  }
  if (problems.length > 0) throw new StackCloneError(`Cannot clone ${stackFileName(from)} to ${stackFileName(to)}: ${problems.length} problem${problems.length === 1 ? "" : "s"}:`, problems);

  const doc = parseDocument(source.text);
  const { config, key } = projectKeys(doc);
  const decisions: string[] = [];
  const server = key("server");
  const domains = key("domains");
  const app = key("app");

  setValue(config, [server, "host"], request.host!);
  setValue(config, [server, "publicIp"], request.publicIp!);
  if (request.hostKey) setValue(config, [server, "ssh", "hostKey"], request.hostKey);
  if (request.sshUser) setValue(config, [server, "ssh", "user"], request.sshUser);
  if (request.sshPort !== undefined) setValue(config, [server, "ssh", "port"], request.sshPort);
  if (request.dataDir) setValue(config, [server, "dataDir"], request.dataDir);
  if (edgeSubnet !== undefined) setValue(config, [server, "edgeSubnet"], edgeSubnet);
  if (subnetDecision) decisions.push(subnetDecision);

  setValue(config, [domains, "zone"], zone);
  setValue(config, [domains, "api"], request.api!);
  if (metabaseOn) {
    setValue(config, [domains, "metabase"], request.metabase!);
  } else {
    config.deleteIn([domains, "metabase"]);
    if (source.config.metabase.enabled) {
      setValue(config, [key("metabase"), "enabled"], false);
      decisions.push("Metabase is off (--no-metabase).");
    }
  }
  if (config.hasIn([app, "healthCheck", "hostHeader"])) setValue(config, [app, "healthCheck", "hostHeader"], request.api!);
  // A new stack has no deploy history (it is the stack's state, not its file): its first up puts app.image on both slots, blue live.

  setValue(config, [key("backup"), "bucket"], request.bucket!);
  const env = Object.entries(source.config.app.env);
  if (env.length > 0) decisions.push(`app.env is copied as it is (${env.map(([k, v]) => `${k}=${v}`).join(", ")}): change what differs for ${to}.`);

  decisions.push(...leaveOutSourceDatabaseHistory(config, key("database"), source.config.database, from, to));

  const proxy = key("proxy");
  setValue(config, [proxy, "mode"], proxyMode);
  if (proxyMode === "guest") {
    if (config.hasIn([proxy, "image"])) config.deleteIn([proxy, "image"]);
    setValue(config, [proxy, "ownerStack"], ownerStack!);
    decisions.push(`The proxy on ${request.host} is owned by ${ownerStack}; ${to} attaches to it as a guest.`);
  } else {
    if (config.hasIn([proxy, "ownerStack"])) config.deleteIn([proxy, "ownerStack"]);
    decisions.push(`${to} owns the nginx proxy on ${request.host}.`);
  }

  const secretPaths = stripSecrets(config);
  const secretsToSet = secretPaths.map((path) => secretCommand(path, to));

  // The source's header comment describes the source: the clone gets its own.
  const header = [
    ` ${to}: cloned from ${stackFileName(from)} by \`npm run stack:clone\`.`,
    proxyMode === "owner" ? ` Owns the nginx proxy of ${request.host}.` : ` Attaches to the nginx proxy ${ownerStack} owns on ${request.host}.`,
    " No secret is stored here: secrets are set with `pulumi config set --secret` and",
    " kept encrypted in the stack state; credentials come from the environment",
    ' (see README, "Secrets").',
  ].join("\n");
  const topKey = isMap(doc.contents) ? doc.contents.items[0]?.key : undefined;
  if (isMap(doc.contents)) doc.contents.commentBefore = null;
  if (isScalar(topKey)) topKey.commentBefore = null;
  doc.commentBefore = header;

  return { stack: to, text: doc.toString({ lineWidth: 0 }), secretsToSet, decisions };
}

/**
 * Validates `text` as `Pulumi.<stack>.yaml` of the project exactly as the
 * program would (the same file reader, schema and cross-stack checks), then
 * puts it in place atomically: written in a temporary folder beside the
 * target, hard-linked to its name (which fails if the name exists, so an
 * existing stack file is never replaced, even by a concurrent clone).
 */
export function writeValidatedStackFile(projectDir: string, stack: string, text: string): { path: string; config: StackConfig } {
  const target = join(projectDir, stackFileName(stack));
  const staging = mkdtempSync(join(projectDir, `.stack-clone-${stack}-`));
  try {
    const staged = join(staging, stackFileName(stack));
    writeFileSync(staged, text, { mode: 0o644 });
    let config: StackConfig;
    try {
      // Not loadStack: the file is staged outside the project, and its secrets are
      // set only after it is written (the clone lists the commands), so they are not checked here.
      config = validateStackConfig(stack, rawFromPulumiConfig(readStackFile(staging, stack).config), readSiblings(projectDir, stack));
    } catch (err) {
      if (err instanceof StackConfigError) {
        throw new StackCloneError(
          `The clone would not be a valid stack, so nothing was written:`,
          err.problems.map((p) => {
            const path = p.key.slice(PROJECT.length + 1);
            const option = OPTION_OF_KEY[path];
            return `${p.file}: ${p.key} ${p.value === undefined ? "is missing" : `= ${JSON.stringify(p.value)}`}: ${p.expected}${option ? ` (set by ${option})` : ""}`;
          }),
        );
      }
      throw err;
    }
    try {
      linkSync(staged, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new StackCloneError(`${stackFileName(stack)} already exists: stack:clone never overwrites a stack file. Choose another --to.`);
      }
      throw err;
    }
    return { path: target, config };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Plans, validates and writes the clone. */
export function cloneStack(projectDir: string, request: CloneRequest): ClonedStack {
  const planned = planClone(projectDir, request);
  const { path, config } = writeValidatedStackFile(projectDir, request.to, planned.text);
  return { ...planned, path, config };
}

function requestFromArgs(argv: string[]): CloneRequest {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      host: { type: "string" },
      "public-ip": { type: "string" },
      api: { type: "string" },
      metabase: { type: "string" },
      "no-metabase": { type: "boolean", default: false },
      bucket: { type: "string" },
      zone: { type: "string" },
      proxy: { type: "string" },
      "owner-stack": { type: "string" },
      "host-key": { type: "string" },
      "ssh-user": { type: "string" },
      "ssh-port": { type: "string" },
      "data-dir": { type: "string" },
      "edge-subnet": { type: "string" },
    },
  });
  const problems: string[] = [];
  if (!values.from) problems.push("--from is required: the stack to clone (e.g. prod)");
  if (!values.to) problems.push("--to is required: the new stack's name");
  if (values.proxy !== undefined && values.proxy !== "owner" && values.proxy !== "guest") problems.push(`--proxy "${values.proxy}": expected owner or guest`);
  const sshPort = values["ssh-port"] === undefined ? undefined : Number(values["ssh-port"]);
  if (sshPort !== undefined && !Number.isInteger(sshPort)) problems.push(`--ssh-port "${values["ssh-port"]}": expected a port number`);
  if (problems.length > 0) throw new CloneUsageError(`${problems.join("\n")}\n${USAGE}`);
  return {
    from: values.from!,
    to: values.to!,
    host: values.host,
    publicIp: values["public-ip"],
    api: values.api,
    metabase: values.metabase,
    noMetabase: values["no-metabase"],
    bucket: values.bucket,
    zone: values.zone,
    proxy: values.proxy as CloneRequest["proxy"],
    ownerStack: values["owner-stack"],
    hostKey: values["host-key"],
    sshUser: values["ssh-user"],
    sshPort,
    dataDir: values["data-dir"],
    edgeSubnet: values["edge-subnet"],
  };
}

function main(argv: string[], projectDir: string): number {
  const out = (line = "") => process.stdout.write(`${line}\n`);
  let cloned: ClonedStack;
  try {
    const request = requestFromArgs(argv);
    out(`Cloning ${stackFileName(request.from)} to ${stackFileName(request.to)}…`);
    cloned = cloneStack(projectDir, request);
  } catch (err) {
    // Refused before anything is written: the operator's input (options, source file) is what to fix.
    if (err instanceof StackCloneError || err instanceof StackFileError) {
      process.stderr.write(`stack:clone: ${err.message}\nNothing was written.\n`);
      return EXIT.usage;
    }
    if (err instanceof CloneUsageError || (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`stack:clone: ${err.message}\n${err instanceof CloneUsageError ? "" : `${USAGE}\n`}`);
      return EXIT.usage;
    }
    throw err;
  }
  const { stack, config } = cloned;
  out(`Wrote ${cloned.path} (validated with the program's schema and the checks across stacks).`);
  out(`  server ${config.server.host} (public IP ${config.server.publicIp}), API ${config.domains.api}${config.domains.metabase ? `, Metabase ${config.domains.metabase}` : ""}, backups to s3://${config.backup.bucket}`);
  for (const decision of cloned.decisions) out(`  ${decision}`);
  out();
  if (cloned.secretsToSet.length > 0) {
    out(`The source's secrets were not copied. Set ${stack}'s own (each command prompts for the value):`);
    for (const secret of cloned.secretsToSet) out(`  ${secret.command}${secret.about ? `   # ${secret.about}` : ""}`);
  } else {
    out(`The source had no secrets in its stack file; ${stack} needs none set to start (see README, "Secrets").`);
  }
  out();
  if (hasPulumiCli()) {
    out(`Creating the stack: pulumi stack init ${stack}`);
    try {
      execFileSync("pulumi", ["stack", "init", stack], { cwd: projectDir, stdio: ["ignore", "inherit", "pipe"], encoding: "utf8" });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? (err as Error).message;
      process.stderr.write(`stack:clone: ${stackFileName(stack)} is written, but \`pulumi stack init ${stack}\` failed:\n${stderr.trim()}\nCheck \`pulumi whoami\` (and PULUMI_CONFIG_PASSPHRASE), then run it again.\n`);
      return EXIT.failed;
    }
  } else {
    out(`The Pulumi CLI is not on PATH, so the stack is not created in the backend yet. Install it (https://www.pulumi.com/docs/install/), log in, then run: pulumi stack init ${stack}`);
  }
  out(`Next: npm run plan -- --stack ${stack}; add ${stack} to the stack matrices in .github/workflows/ (preview, deploy, drift); then pulumi up -s ${stack}.`);
  return EXIT.ok;
}

if (require.main === module) runCommand("stack:clone", async () => main(process.argv.slice(2), PROJECT_DIR));
