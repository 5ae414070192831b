// Where the engine build lives: `.engine/` in the repository (git-ignored).
import { join } from "node:path";
import { REPO_DIR } from "./standins/versions.js";

export { REPO_DIR };

export const ENGINE_DIR = process.env["BBAEGOK_ENGINE_DIR"] ?? join(REPO_DIR, ".engine");

/** Which plugins a run gets: with a server, docker and command reach it; without, they are stood in too. */
export type Profile = "server" | "no-server";

export const enginePaths = {
  /** The CLI and the language host: first on PATH for every engine run. */
  bin: join(ENGINE_DIR, "bin"),
  /** Build outputs and their fingerprints, one folder per component. */
  build: (component: string) => join(ENGINE_DIR, "build", component),
  /** Launchers of the stand-in plugins. */
  standIns: join(ENGINE_DIR, "standins"),
  /** PULUMI_HOME per profile: where the CLI finds its plugins. */
  home: (profile: Profile) => join(ENGINE_DIR, "homes", profile),
};
