// Stand-ins for the two plugins that reach the home server — docker and
// command — for engine runs that have no server to reach (`--server stand-in`).
// With a server (issue 13's harness, or the real home server), the real
// docker plugin and the command plugin built in engine/go/ are used instead.
import { digest, replaceRule, type Props, type StandInSpec } from "./recorder.js";
import { pluginVersion } from "./versions.js";

const DOCKER_COMPUTED: Record<string, readonly string[]> = {
  "docker:index/remoteImage:RemoteImage": ["imageId", "repoDigest"],
  "docker:index/volume:Volume": ["mountpoint"],
  "docker:index/network:Network": ["scope"],
  "docker:index/container:Container": ["exitCode", "networkDatas", "bridge"],
};

// What the docker provider cannot change in place (its schema's ForceNew): a
// container is recreated for any change but these few, which `docker update`
// applies; images, networks and volumes for any change.
const DOCKER_REPLACE: Record<string, (changed: readonly string[]) => string[]> = {
  "docker:index/container:Container": replaceRule({ updatable: ["restart", "memory", "memorySwap", "cpuShares", "cpuSet", "maxRetryCount", "healthcheck"] }),
  "docker:index/remoteImage:RemoteImage": replaceRule({ updatable: ["keepLocally", "forceRemove"] }),
  "docker:index/network:Network": replaceRule({ updatable: [] }),
  "docker:index/volume:Volume": replaceRule({ updatable: [] }),
};

function dockerCreate(type: string, urn: string, inputs: Props) {
  const name = String(inputs["name"] ?? "");
  switch (type) {
    case "docker:index/remoteImage:RemoteImage": {
      const imageId = `sha256:${digest(64, "image", name)}`;
      return { id: `${imageId}${name}`, outs: { imageId, repoDigest: `${name.split(":")[0]}@sha256:${digest(64, "digest", name)}` } };
    }
    case "docker:index/volume:Volume":
      return { id: name, outs: { mountpoint: `/var/lib/docker/volumes/${name}/_data` } };
    case "docker:index/network:Network":
      return { id: digest(64, urn, JSON.stringify(inputs)), outs: { scope: "local" } };
    case "docker:index/container:Container":
      return { id: digest(64, urn, JSON.stringify(inputs)), outs: { exitCode: null, networkDatas: [], bridge: "" } };
    default:
      return { id: digest(32, urn) };
  }
}

export const dockerServerStandIn: StandInSpec = {
  name: "docker",
  version: pluginVersion("docker"),
  description: "STAND-IN for the docker provider (bbaegok-infra engine build, runs without a server): records every input as the output with a deterministic id; no Docker daemon is contacted.",
  create: dockerCreate,
  computedKeys: (type) => DOCKER_COMPUTED[type] ?? [],
  replaces: (type, changed) => DOCKER_REPLACE[type]?.(changed) ?? [],
};

export const commandServerStandIn: StandInSpec = {
  name: "command",
  version: pluginVersion("command"),
  description: "STAND-IN for the command provider (bbaegok-infra engine build, runs without a server): records every command, runs none, and answers with empty stdout and stderr.",
  create: (_type, urn) => ({ id: digest(16, urn), outs: { stdout: "", stderr: "" } }),
  computedKeys: () => ["stdout", "stderr"],
  // As the command provider's schema says: only `triggers` replaces.
  replaces: (_type, changed) => changed.filter((k) => k === "triggers"),
};
