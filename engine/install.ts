// npm run engine:install — builds Pulumi's engine and the program's plugins
// from the Go module proxy into .engine/, and installs the stand-ins for what
// cannot be built or reached. Idempotent: a component whose sources, version
// and Go toolchain are unchanged is not rebuilt, and a plugin already
// installed byte for byte is not reinstalled.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ENGINE_GO_DIR, GO_COMPONENTS, NO_SERVER_STAND_INS, STAND_INS, type GoComponent, type StandIn } from "./components.js";
import { ENGINE_DIR, enginePaths, REPO_DIR, type Profile } from "./paths.js";

export class EngineInstallError extends Error {
  override name = "EngineInstallError";
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { ok: boolean; output: string } {
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) return { ok: false, output: String(result.error.message) };
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}`.trim() };
}

export function goVersion(): string {
  const result = run("go", ["version"]);
  if (!result.ok) throw new EngineInstallError(`engine:install needs Go (1.26 or later) on PATH: ${result.output}\nOn Debian: see the README's test command, which installs it.`);
  return result.output;
}

/** The files of a component that define its build: tracked or new, never ignored (generated files are ignored). */
function sourceFiles(dir: string): string[] {
  const listed = run("git", ["ls-files", "--cached", "--others", "--exclude-standard", "--", "."], { cwd: dir });
  if (listed.ok && listed.output) return listed.output.split("\n").filter((f) => existsSync(join(dir, f))).sort();
  const walk = (sub: string): string[] =>
    readdirSync(join(dir, sub), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(sub, e.name)) : [join(sub, e.name)]));
  return walk(".").sort();
}

function fingerprint(component: GoComponent, go: string, dir: string): string {
  const hash = createHash("sha256").update(JSON.stringify({ component, go, repo: REPO_DIR }));
  for (const file of sourceFiles(dir)) hash.update(file).update("\0").update(readFileSync(join(dir, file)));
  return hash.digest("hex");
}

function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Builds one Go component (from its module in engine/go/, or `dir`) unless its build is current; returns the binary's path. */
export function build(component: GoComponent, go: string, label: string, dir = join(ENGINE_GO_DIR, component.name)): string {
  const out = enginePaths.build(component.name);
  const binary = join(out, component.binary);
  const stamp = join(out, "fingerprint");
  const wanted = fingerprint(component, go, dir);
  const started = Date.now();
  if (existsSync(binary) && existsSync(stamp) && readFileSync(stamp, "utf8") === wanted) {
    console.log(`${label} ${component.name} ${component.version}: up to date (${component.what})`);
    return binary;
  }
  console.log(`${label} ${component.name} ${component.version}: building ${component.what} …`);
  mkdirSync(out, { recursive: true });
  for (const step of component.generate ?? []) {
    const [command, ...args] = step;
    const result = run(command!, args, { cwd: dir });
    if (!result.ok) throw new EngineInstallError(`engine:install: ${component.name}: \`${step.join(" ")}\` failed in engine/go/${component.name}:\n${result.output}`);
  }
  // -buildvcs=false: the binaries need no VCS stamp, and a checkout git cannot read would otherwise fail the build.
  const args = ["build", "-trimpath", "-buildvcs=false", ...(component.tags ? ["-tags", component.tags.join(",")] : []), "-ldflags", component.ldflags.join(" "), "-o", binary, component.pkg];
  const result = run("go", args, { cwd: dir });
  if (!result.ok) throw new EngineInstallError(`engine:install: ${component.name}: \`go ${args.join(" ")}\` failed in engine/go/${component.name}:\n${result.output}`);
  writeFileSync(stamp, wanted);
  console.log(`${label} ${component.name} ${component.version}: built in ${seconds(started)}`);
  return binary;
}

function pulumiEnv(profile: Profile): NodeJS.ProcessEnv {
  return { ...process.env, PULUMI_HOME: enginePaths.home(profile), PULUMI_SKIP_UPDATE_CHECK: "true" };
}

/** Installs a plugin binary as `resource-<name>-v<version>` in a profile's PULUMI_HOME, unless it is there already. */
function installPlugin(profile: Profile, plugin: string, version: string, file: string): "installed" | "present" {
  const installed = join(enginePaths.home(profile), "plugins", `resource-${plugin}-v${version}`, `pulumi-resource-${plugin}`);
  if (existsSync(installed) && sha256File(installed) === sha256File(file)) return "present";
  const pulumi = join(enginePaths.bin, "pulumi");
  const result = run(pulumi, ["plugin", "install", "resource", plugin, version, "--file", file, "--reinstall"], { env: pulumiEnv(profile) });
  if (!result.ok) throw new EngineInstallError(`engine:install: \`pulumi plugin install resource ${plugin} ${version}\` failed:\n${result.output}`);
  return "installed";
}

/** A launcher that starts a stand-in plugin written in TypeScript; the engine runs it as the plugin's binary. */
function writeLauncher(standIn: StandIn): string {
  mkdirSync(enginePaths.standIns, { recursive: true });
  const path = join(enginePaths.standIns, `pulumi-resource-${standIn.spec}`);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      `# STAND-IN for the ${standIn.plugin} ${standIn.version} resource plugin, written by npm run engine:install.`,
      `# ${standIn.why}. See engine/standins/.`,
      `cd ${quote(REPO_DIR)} && exec ${quote(process.execPath)} --import tsx engine/standins/main.ts ${standIn.spec} "$@"`,
      "",
    ].join("\n"),
  );
  chmodSync(path, 0o755);
  return path;
}

export function install(): void {
  const started = Date.now();
  const go = goVersion();
  console.log(`engine:install into ${relative(process.cwd(), ENGINE_DIR) || "."} with ${go}`);
  const binaries = new Map<string, string>();
  GO_COMPONENTS.forEach((component, i) => binaries.set(component.name, build(component, go, `[${i + 1}/${GO_COMPONENTS.length}]`)));

  mkdirSync(enginePaths.bin, { recursive: true });
  for (const component of GO_COMPONENTS.filter((c) => c.kind !== "resource")) {
    const target = join(enginePaths.bin, component.binary);
    const source = binaries.get(component.name)!;
    if (!existsSync(target) || sha256File(target) !== sha256File(source)) {
      // Beside, then renamed over: a running copy of the old binary keeps its file.
      copyFileSync(source, `${target}.new`);
      chmodSync(`${target}.new`, 0o755);
      renameSync(`${target}.new`, target);
    }
  }

  const profiles: Profile[] = ["server", "no-server"];
  for (const profile of profiles) {
    const lines: string[] = [];
    const stoodIn = new Set((profile === "no-server" ? [...STAND_INS, ...NO_SERVER_STAND_INS] : STAND_INS).map((s) => s.plugin));
    for (const component of GO_COMPONENTS.filter((c) => c.kind === "resource" && !stoodIn.has(c.plugin!))) {
      lines.push(`${component.plugin} ${component.version} ${installPlugin(profile, component.plugin!, component.version, binaries.get(component.name)!)}`);
    }
    for (const standIn of profile === "no-server" ? [...STAND_INS, ...NO_SERVER_STAND_INS] : STAND_INS) {
      lines.push(`${standIn.plugin} ${standIn.version} (stand-in) ${installPlugin(profile, standIn.plugin, standIn.version, writeLauncher(standIn))}`);
    }
    console.log(`plugins for runs ${profile === "server" ? "with" : "without"} a server: ${lines.join(", ")}`);
  }
  console.log(`engine:install: done in ${seconds(started)}; CLI at ${relative(process.cwd(), join(enginePaths.bin, "pulumi"))}`);
}

if (require.main === module) {
  try {
    install();
  } catch (err) {
    console.error(err instanceof EngineInstallError ? err.message : err);
    process.exit(1);
  }
}

/** Whether the engine was installed (the CLI is there): for commands that need it. */
export function engineInstalled(): boolean {
  return existsSync(join(enginePaths.bin, "pulumi")) && statSync(join(enginePaths.bin, "pulumi")).isFile();
}
