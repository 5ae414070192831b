// What `npm run engine:install` builds and installs: Pulumi's engine (the CLI
// and a Node language host) and one resource plugin per provider package the
// program uses, each at the exact version that package asks for. One table;
// install.ts, run.ts and the tests read it, nothing else names a version.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pluginVersion, REPO_DIR } from "./standins/versions.js";

export const ENGINE_GO_DIR = join(REPO_DIR, "engine", "go");

/** A Go module under engine/go/ and how to build its binary. */
export interface GoComponent {
  /** Folder under engine/go/, and the name in progress lines. */
  name: string;
  kind: "cli" | "language" | "resource";
  /** The plugin name the engine looks for (`resource-<plugin>-v<version>`); resource plugins only. */
  plugin?: string;
  version: string;
  /** What it is, in one line, for the progress output and the README. */
  what: string;
  /** The Go package to build, relative to the module (e.g. "." or a module path). */
  pkg: string;
  binary: string;
  ldflags: string[];
  /** Go build tags, for the build and the generate steps alike. */
  tags?: string[];
  /** Commands run in the module folder before the build (e.g. generating a schema to embed). */
  generate?: string[][];
}

/** A plugin written here in TypeScript, installed under the real plugin's name and version. */
export interface StandIn {
  plugin: string;
  /** The key in engine/standins/main.ts. */
  spec: string;
  version: string;
  why: string;
}

/** The version a module of engine/go/ requires of a Go module, from its go.mod. */
export function requiredVersion(component: string, module: string): string {
  const goMod = readFileSync(join(ENGINE_GO_DIR, component, "go.mod"), "utf8");
  const match = goMod.match(new RegExp(`^\\s*(?:require\\s+)?${module.replace(/[.]/g, "\\.")}\\s+v(\\S+)`, "m"));
  if (!match?.[1]) throw new Error(`engine/go/${component}/go.mod does not require ${module}`);
  return match[1];
}

/** The Pulumi CLI's version: the pkg/v3 the CLI module requires. */
export const CLI_VERSION = requiredVersion("cli", "github.com/pulumi/pulumi/pkg/v3");

/** A resource plugin whose wrapper module reads its version from `-X main.version`. */
function goPlugin(plugin: string, what: string): GoComponent {
  const version = pluginVersion(plugin);
  return { name: plugin, kind: "resource", plugin, version, what, pkg: ".", binary: `pulumi-resource-${plugin}`, ldflags: ["-s", "-w", `-X main.version=${version}`] };
}

/**
 * The docker plugin: kreuzwerker's Terraform provider bridged here (the
 * pulumi-docker module is not served). Its schema is generated before the
 * build and embedded; `no_compose` leaves out docker_compose, which
 * @pulumi/docker does not have.
 */
function dockerPlugin(): GoComponent {
  const version = pluginVersion("docker");
  const ldflags = ["-s", "-w", `-X bbaegok-infra/engine/docker/info.Version=${version}`];
  const tags = ["no_compose"];
  return {
    name: "docker",
    kind: "resource",
    plugin: "docker",
    version,
    what: "kreuzwerker's Terraform provider docker bridged here (the pulumi-docker module is not served)",
    pkg: ".",
    binary: "pulumi-resource-docker",
    ldflags,
    tags,
    generate: [["go", "run", "-trimpath", "-buildvcs=false", "-tags", tags.join(","), "-ldflags", ldflags.join(" "), "./cmd/tfgen"]],
  };
}

export const GO_COMPONENTS: readonly GoComponent[] = [
  {
    name: "cli",
    kind: "cli",
    version: CLI_VERSION,
    what: "the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)",
    pkg: "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
    binary: "pulumi",
    ldflags: [`-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${CLI_VERSION}`],
  },
  {
    name: "language-nodejs",
    kind: "language",
    version: CLI_VERSION,
    what: "a Node.js language host written here against sdk/v3 (Pulumi's own host module is not served; see its main.go)",
    pkg: ".",
    binary: "pulumi-language-nodejs",
    ldflags: [`-X main.version=${CLI_VERSION}`],
  },
  goPlugin("random", "the Terraform provider random bridged here (the pulumi-random module is not served)"),
  goPlugin("tls", "the Terraform provider tls bridged here (the pulumi-tls module is not served)"),
  dockerPlugin(),
  goPlugin("command", "remote:Command rewritten here on pulumi-go-provider and x/crypto/ssh (the pulumi-command module is not served)"),
];

/** Plugins stood in: their APIs cannot be reached from here and their providers cannot be built. */
export const STAND_INS: readonly StandIn[] = [
  { plugin: "aws", spec: "aws", version: pluginVersion("aws"), why: "AWS cannot be reached; the provider patches its Terraform upstream hundreds of times and its module is not served" },
  { plugin: "cloudflare", spec: "cloudflare", version: pluginVersion("cloudflare"), why: "Cloudflare cannot be reached; the provider patches its Terraform upstream and its module is not served" },
];

/** For runs without a server (`--no-server`): the plugins that would reach it, stood in too. */
export const NO_SERVER_STAND_INS: readonly StandIn[] = [
  { plugin: "docker", spec: "docker-server", version: pluginVersion("docker"), why: "no server to reach: containers, networks, volumes and images are recorded" },
  { plugin: "command", spec: "command-server", version: pluginVersion("command"), why: "no server to reach: commands are recorded, none runs" },
];
