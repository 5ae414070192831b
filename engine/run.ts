// npm run engine:preview -- --stack <name> [--dir <dir>] [--no-server] [--diff]
// npm run engine:up      -- --stack <name> [--dir <dir>] [--no-server]
//
// The real `pulumi preview` / `pulumi up` of a committed stack with the engine
// built by `npm run engine:install`: the policy pack enforced, a local file
// backend and a throwaway passphrase in a scratch folder (kept with --dir, so a
// later run can use the same backend: staging reads prod's outputs from it).
// Exit status (ops/exit.ts): the Pulumi CLI's; 1 when the engine is not built
// or a step before the run failed; 2 usage, an unknown stack or an invalid
// stack file (checked before anything runs).
import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { GO_COMPONENTS, NO_SERVER_STAND_INS, STAND_INS } from "./components.js";
import { engineInstalled } from "./install.js";
import { enginePaths, type Profile } from "./paths.js";
import { openWorkspace } from "./workspace.js";
import { loadStack } from "../stacks/config/load.js";
import { EXIT, isStackFileProblem, runCommand } from "../ops/exit.js";

const USAGE = "usage: npm run engine:<preview|up> -- --stack <name> [--dir <dir>] [--no-server] [--diff]";

export interface RunOptions {
  command: "preview" | "up";
  stack: string;
  dir?: string;
  profile: Profile;
  diff: boolean;
}

export function parseRunArgs(argv: string[]): RunOptions {
  const [command, ...rest] = argv;
  if (command !== "preview" && command !== "up") throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const options: RunOptions = { command, stack: "", profile: "server", diff: false };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const value = () => {
      const v = rest[++i];
      if (!v || v.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === "--stack") options.stack = value();
    else if (arg === "--dir") options.dir = value();
    else if (arg === "--no-server") options.profile = "no-server";
    else if (arg === "--diff") options.diff = true;
    else throw new UsageError(`unknown option ${arg}`);
  }
  if (!options.stack) throw new UsageError("--stack is required");
  return options;
}

export class UsageError extends Error {}

/** The stack whose proxy `stack` is a guest on (unqualified), from the stack file; undefined for an owner. */
function proxyOwnerOf(stack: string): string | undefined {
  const { config } = loadStack(stack);
  return config.proxy.mode === "guest" ? config.proxy.ownerStack.split("/").pop() : undefined;
}

/** What runs for real and what is stood in, for the first lines of every run. */
export function engineSummary(profile: Profile): string[] {
  const standIns = profile === "no-server" ? [...STAND_INS, ...NO_SERVER_STAND_INS] : STAND_INS;
  const stoodIn = new Set(standIns.map((s) => s.plugin));
  const real = GO_COMPONENTS.filter((c) => c.kind !== "resource" || !stoodIn.has(c.plugin!)).map((c) => `${c.plugin ?? c.name} ${c.version}`);
  return [`real: ${real.join(", ")}`, ...standIns.map((s) => `STAND-IN: ${s.plugin} ${s.version} (${s.why})`)];
}

async function main(argv: string[]): Promise<number> {
  let options: RunOptions;
  try {
    options = parseRunArgs(argv);
    // The stack file as the program will read it: an unknown stack or an invalid file stops here, not inside the engine.
    loadStack(options.stack);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      return EXIT.usage;
    }
    if (!isStackFileProblem(err)) throw err;
    console.error(err.message);
    return EXIT.usage;
  }
  if (!engineInstalled()) {
    console.error(`The engine is not built: run \`npm run engine:install\` first (no ${join(enginePaths.bin, "pulumi")}).`);
    return EXIT.failed;
  }
  const workspace = openWorkspace({ ...(options.dir ? { dir: options.dir } : {}), profile: options.profile });
  try {
    for (const line of engineSummary(options.profile)) console.log(`engine: ${line}`);
    console.log(`engine: backend ${workspace.env["PULUMI_BACKEND_URL"]}, project copy ${workspace.projectDir}`);
    const select = workspace.pulumi(["stack", "select", "--create", options.stack]);
    if (select.status !== 0) {
      console.error(`pulumi stack select --create ${options.stack} failed:\n${select.stdout}${select.stderr}`);
      return EXIT.failed;
    }
    const owner = proxyOwnerOf(options.stack);
    if (owner && workspace.pulumi(["stack", "output", "proxy", "--stack", owner]).status !== 0) {
      // A guest reads its proxy from the owner's outputs: in a fresh backend the owner has none yet.
      console.log(`engine: ${options.stack} is a guest of ${owner}, which this backend has never brought up: pulumi up of ${owner} first, without a server (docker and command stood in)`);
      const ownerRun = openWorkspace({ dir: workspace.dir, profile: "no-server" });
      const upOwner = spawnSync(join(enginePaths.bin, "pulumi"), ["stack", "select", "--create", owner, "--non-interactive"], { cwd: ownerRun.projectDir, env: ownerRun.env, encoding: "utf8" });
      const up = upOwner.status === 0 ? ownerRun.pulumi(["up", "--stack", owner, "--yes", "--skip-preview"]) : upOwner;
      if (up.status !== 0) {
        console.error(`pulumi up of ${owner} failed:\n${up.stdout}${up.stderr}`);
        return EXIT.failed;
      }
    }
    const args =
      options.command === "preview"
        ? ["preview", "--stack", options.stack, "--policy-pack", "policy", "--non-interactive", ...(options.diff ? ["--diff"] : [])]
        : ["up", "--stack", options.stack, "--policy-pack", "policy", "--non-interactive", "--yes", "--skip-preview"];
    const child = spawn(join(enginePaths.bin, "pulumi"), args, { cwd: workspace.projectDir, env: workspace.env, stdio: "inherit" });
    return await new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? EXIT.failed)));
  } finally {
    if (options.dir) console.log(`engine: workspace kept in ${workspace.dir}`);
    else rmSync(workspace.dir, { recursive: true, force: true });
  }
}

if (require.main === module) runCommand(`engine:${process.argv[2] ?? "run"}`, () => main(process.argv.slice(2)));
