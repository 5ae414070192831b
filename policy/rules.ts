// Guardrails as pure checks over planned resources: used by the test suite on
// every committed stack, and by the policy pack that `pulumi preview` enforces.
// Each rule returns sentences naming the resource and what is wrong.
import { isPinnedImage } from "../stacks/config/rules.js";

/** The shape a rule needs: what the offline plan records (and a policy pack sees). */
export interface ResourceView {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  options?: { protect?: boolean; retainOnDelete?: boolean };
}

/** The Docker label every container of ours carries to say what it is. */
export const ROLE_LABEL = "bbaegok.role";
export type ContainerRole = "proxy" | "app" | "database" | "metabase" | "metabase-db";

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";

function labelsOf(r: ResourceView): Record<string, string> {
  const labels = r.inputs["labels"];
  if (!Array.isArray(labels)) return {};
  return Object.fromEntries(labels.map((l: { label?: string; value?: string }) => [String(l.label), String(l.value)]));
}

export function roleOf(r: ResourceView): string | undefined {
  return labelsOf(r)[ROLE_LABEL];
}

/** Only the proxy publishes host ports: everything else is reached through it. */
export function onlyProxyPublishesPorts(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const ports = r.inputs["ports"];
  const publishes = (Array.isArray(ports) && ports.length > 0) || r.inputs["publishAllPorts"] === true || r.inputs["networkMode"] === "host";
  if (!publishes || roleOf(r) === "proxy") return [];
  return [`container ${r.name} (role ${roleOf(r) ?? "none"}) publishes host ports or uses the host network; only the proxy may`];
}

/** Every image is pinned to a version or digest: no `latest`, no floating tags. */
export function imagesArePinned(r: ResourceView): string[] {
  if (r.type === REMOTE_IMAGE) {
    const name = String(r.inputs["name"] ?? "");
    return isPinnedImage(name) ? [] : [`image ${r.name} pulls "${name}", which is not pinned to a version or digest`];
  }
  if (r.type === CONTAINER) {
    const image = String(r.inputs["image"] ?? "");
    return image.startsWith("sha256:") || isPinnedImage(image) ? [] : [`container ${r.name} runs image "${image}", which is not pinned`];
  }
  return [];
}

/** Volumes hold data: protected against deletion and kept if removed from the program. */
export function dataVolumesProtected(r: ResourceView): string[] {
  if (r.type !== VOLUME) return [];
  const problems: string[] = [];
  if (r.options?.protect !== true) problems.push(`volume ${r.name} is not protected`);
  if (r.options?.retainOnDelete !== true) problems.push(`volume ${r.name} is not retained on delete`);
  return problems;
}

/** Containers restart by themselves, rotate their logs and have a memory limit. */
export function containersAreBounded(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const problems: string[] = [];
  const restart = r.inputs["restart"];
  if (restart !== "unless-stopped" && restart !== "always") problems.push(`container ${r.name} has restart "${String(restart)}"; expected unless-stopped`);
  if (typeof r.inputs["memory"] !== "number" || r.inputs["memory"] <= 0) problems.push(`container ${r.name} has no memory limit`);
  const logOpts = (r.inputs["logOpts"] ?? {}) as Record<string, unknown>;
  if (r.inputs["logDriver"] !== "json-file" || !logOpts["max-size"] || !logOpts["max-file"]) {
    problems.push(`container ${r.name} does not rotate its logs (json-file with max-size and max-file)`);
  }
  if (!roleOf(r)) problems.push(`container ${r.name} has no ${ROLE_LABEL} label`);
  return problems;
}

const SECRET_ENV_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|ACCESS_KEY)(?!_FILE)/;

/** Secrets reach containers as files (`*_FILE`), never as environment values. */
export function noSecretsInContainerEnv(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const envs = r.inputs["envs"];
  if (envs === "[secret]") return [`container ${r.name} passes a secret in its environment; mount it as a file instead`];
  if (!Array.isArray(envs)) return [];
  return envs
    .filter((e): e is string => typeof e === "string")
    .filter((e) => e === "[secret]" || SECRET_ENV_NAME.test(e.split("=")[0] ?? ""))
    .map((e) => `container ${r.name} sets ${e.split("=")[0]} in its environment; pass secrets as files (*_FILE)`);
}

export const RULES = {
  onlyProxyPublishesPorts,
  imagesArePinned,
  dataVolumesProtected,
  containersAreBounded,
  noSecretsInContainerEnv,
} as const;

/** Every violation of every rule over a whole plan. */
export function violations(resources: readonly ResourceView[]): string[] {
  return resources.flatMap((r) => Object.values(RULES).flatMap((rule) => rule(r)));
}
