// A place for real engine runs that leaves the repository as it is: a copy of
// the project (the CLI writes an `encryptionsalt` into a stack file on
// `stack init`, and deploys write config), a local file backend, and a
// throwaway passphrase, all in one scratch folder. The environment puts the
// built CLI first on PATH and points it at the profile's plugins only; Pulumi
// never downloads a plugin.
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { enginePaths, REPO_DIR, type Profile } from "./paths.js";

export interface EngineWorkspace {
  /** The scratch folder: project/, state/ and passphrase. */
  dir: string;
  /** The project copy the CLI runs in. */
  projectDir: string;
  profile: Profile;
  /** The environment for the CLI, the Automation API and ops commands run in this workspace. */
  env: NodeJS.ProcessEnv;
  /** Runs the built CLI in the project copy; output is returned, not printed. */
  pulumi(args: string[], options?: { input?: string }): SpawnSyncReturns<string>;
}

/** The repository's files as git knows them (tracked, and new ones not ignored). */
function projectFiles(): string[] {
  const listed = spawnSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: REPO_DIR, encoding: "utf8" });
  if (listed.status === 0 && listed.stdout.trim()) return listed.stdout.split("\n").filter((f) => f && existsSync(join(REPO_DIR, f)));
  // No git (an unpacked archive): every top-level entry but the heavy and generated ones.
  return readdirSync(REPO_DIR).filter((e) => ![".git", "node_modules", ".engine"].includes(e));
}

function copyProject(projectDir: string): void {
  for (const file of projectFiles()) {
    mkdirSync(dirname(join(projectDir, file)), { recursive: true });
    cpSync(join(REPO_DIR, file), join(projectDir, file), { recursive: true });
  }
  symlinkSync(join(REPO_DIR, "node_modules"), join(projectDir, "node_modules"));
}

/**
 * Opens (or creates) a workspace. Given `dir`, an existing workspace there is
 * reused as it is (its state, stack files and passphrase), so one stack's
 * `up` and another's preview can share a backend.
 */
export function openWorkspace(options: { dir?: string; profile?: Profile; env?: NodeJS.ProcessEnv } = {}): EngineWorkspace {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "bbaegok-engine-"));
  const profile = options.profile ?? "server";
  const projectDir = join(dir, "project");
  const stateDir = join(dir, "state");
  const passphraseFile = join(dir, "passphrase");
  mkdirSync(stateDir, { recursive: true });
  if (!existsSync(projectDir)) copyProject(projectDir);
  if (!existsSync(passphraseFile)) writeFileSync(passphraseFile, randomBytes(24).toString("hex"), { mode: 0o600 });

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...options.env,
    PATH: `${enginePaths.bin}:${process.env["PATH"] ?? ""}`,
    PULUMI_HOME: enginePaths.home(profile),
    PULUMI_BACKEND_URL: `file://${stateDir}`,
    PULUMI_CONFIG_PASSPHRASE: readFileSync(passphraseFile, "utf8"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "false",
  };
  delete env["PULUMI_ACCESS_TOKEN"];
  return {
    dir,
    projectDir,
    profile,
    env,
    pulumi: (args, opts = {}) =>
      spawnSync(join(enginePaths.bin, "pulumi"), [...args, "--non-interactive"], { cwd: projectDir, env, encoding: "utf8", input: opts.input, maxBuffer: 64 * 1024 * 1024 }),
  };
}
