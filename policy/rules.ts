// Guardrails as pure checks over planned resources: used by the test suite on
// every committed stack, and by the policy pack that `pulumi preview` enforces.
// Each rule returns sentences naming the resource and what is wrong.
import { REPLICA_VOLUME_SUFFIX } from "../infra/replica/render.js";
import { RETIRED_INPUTS, ROLE_LABEL } from "../infra/server/container.js";
import { goDuration, isPinnedImage, isPrivateLinkAddress, isSshHostKey } from "../stacks/config/rules.js";

/** The shape a rule needs: what the offline plan records (and a policy pack sees). */
export interface ResourceView {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  options?: {
    protect?: boolean;
    retainOnDelete?: boolean;
    deleteBeforeReplace?: boolean;
    /** Logical names of the resources this one depends on (explicitly or through its inputs). */
    dependsOn?: readonly string[];
  };
}

/**
 * Stands in for a value the engine cannot know before the update runs (an ID
 * or digest of a resource not created yet). The policy pack sees such values
 * during a preview; a rule never accepts one as compliant, except where the
 * value is another resource's output that is checked on that resource.
 */
export const UNKNOWN_PLACEHOLDER = "[unknown]";

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";

function labelsOf(r: ResourceView): Record<string, string> {
  const labels = r.inputs["labels"];
  if (!Array.isArray(labels)) return {};
  return Object.fromEntries(labels.map((l: { label?: string; value?: string }) => [String(l.label), String(l.value)]));
}

/** A read replica's volume, by its name (replicaNames). */
function isReplicaCopy(r: ResourceView): boolean {
  return String(r.inputs["name"] ?? "").endsWith(REPLICA_VOLUME_SUFFIX);
}

export function roleOf(r: ResourceView): string | undefined {
  return labelsOf(r)[ROLE_LABEL];
}

/**
 * Only the proxy publishes host ports: everything else is reached through it.
 * One named exception, `linkBoundDatabasePort`: the database and a replica on
 * another server may publish their own port on a private link address (the
 * replica replicates from the primary's, the app and Metabase read the
 * replica's, over WireGuard or a tailnet), never on every address.
 */
export function onlyProxyPublishesPorts(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const ports = r.inputs["ports"];
  const publishes = (Array.isArray(ports) && ports.length > 0) || r.inputs["publishAllPorts"] === true || r.inputs["networkMode"] === "host";
  if (!publishes || roleOf(r) === "proxy" || linkBoundDatabasePort(r)) return [];
  const database = DATABASE_ROLES.has(roleOf(r) ?? "") ? `; a database may publish only its own port (${[...DATABASE_PORTS].join(" or ")}/tcp) bound to a private link address (database.replicas[].link), never 0.0.0.0 or a public one` : "";
  return [`container ${r.name} (role ${roleOf(r) ?? "none"}) publishes host ports or uses the host network; only the proxy may${database}`];
}

// The engines' ports (MariaDB/MySQL, PostgreSQL): the only ones a database may publish on a link.
const DATABASE_PORTS = new Set([3306, 5432]);
// The primary and its replica.
const DATABASE_ROLES = new Set(["database", "database-replica"]);

/** A database or replica container whose every published port is its engine's, over TCP, bound to a private link address (isPrivateLinkAddress). */
export function linkBoundDatabasePort(r: ResourceView): boolean {
  const ports = r.inputs["ports"];
  if (!DATABASE_ROLES.has(roleOf(r) ?? "") || r.inputs["publishAllPorts"] === true || r.inputs["networkMode"] === "host" || !Array.isArray(ports)) return false;
  return ports.every((p: { internal?: unknown; external?: unknown; ip?: unknown; protocol?: unknown }) =>
    DATABASE_PORTS.has(Number(p.internal)) && p.external === p.internal && (p.protocol ?? "tcp") === "tcp" && typeof p.ip === "string" && isPrivateLinkAddress(p.ip));
}

/** Every image is pinned to a version or digest: no `latest`, no floating tags. */
export function imagesArePinned(r: ResourceView): string[] {
  if (r.type === REMOTE_IMAGE) {
    const name = String(r.inputs["name"] ?? "");
    return isPinnedImage(name) ? [] : [`image ${r.name} pulls "${name}", which is not pinned to a version or digest`];
  }
  if (r.type === CONTAINER) {
    const image = String(r.inputs["image"] ?? "");
    // A container runs its RemoteImage's ID (a digest, unknown until pulled); the RemoteImage's name is what is checked.
    return image.startsWith("sha256:") || image === UNKNOWN_PLACEHOLDER || isPinnedImage(image) ? [] : [`container ${r.name} runs image "${image}", which is not pinned`];
  }
  return [];
}

/**
 * Volumes hold data: `protect`ed, so no `pulumi destroy` or removal from the
 * program deletes them. But a read replica's: a copy of the primary's data,
 * which goes with the replica when the stack file drops it (protected, that
 * up would fail half-way, the replica's container and link already gone);
 * once promoted the program protects it (test/stack/replica.test.ts).
 */
export function volumesAreProtected(r: ResourceView): string[] {
  if (r.type !== VOLUME || r.options?.protect === true || isReplicaCopy(r)) return [];
  return [`volume ${r.name} is not protected`];
}

/**
 * Volumes are `retainOnDelete`: kept on the server even when Pulumi deletes
 * them (a replica's aside, as above). Pulumi's policy protocol does not carry
 * this option, so only the offline plan (the test suite) can check it.
 */
export function volumesAreRetained(r: ResourceView): string[] {
  if (r.type !== VOLUME || r.options?.retainOnDelete === true || isReplicaCopy(r)) return [];
  return [`volume ${r.name} is not retained on delete`];
}

/** Volumes hold data: protected against deletion and kept if removed from the program. */
export function dataVolumesProtected(r: ResourceView): string[] {
  return [...volumesAreProtected(r), ...volumesAreRetained(r)];
}

/** Containers restart by themselves, rotate their logs and have a memory limit. */
export function containersAreBounded(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const problems: string[] = [];
  const restart = r.inputs["restart"];
  if (restart !== "unless-stopped" && restart !== "always" && !retiredOriginal(r)) problems.push(`container ${r.name} has restart "${String(restart)}"; expected unless-stopped`);
  if (typeof r.inputs["memory"] !== "number" || r.inputs["memory"] <= 0) problems.push(`container ${r.name} has no memory limit`);
  // No swap: a container over its limit is stopped and restarted, not left to slow the whole server down.
  // Unset, Docker picks a swap limit itself and reads it back: a change on every run.
  else if (r.inputs["memorySwap"] !== r.inputs["memory"]) problems.push(`container ${r.name} has memorySwap ${String(r.inputs["memorySwap"])}; set it to its memory (${r.inputs["memory"]}): no swap`);
  const logOpts = (r.inputs["logOpts"] ?? {}) as Record<string, unknown>;
  if (r.inputs["logDriver"] !== "json-file" || !logOpts["max-size"] || !logOpts["max-file"]) {
    problems.push(`container ${r.name} does not rotate its logs (json-file with max-size and max-file)`);
  }
  if (!roleOf(r)) problems.push(`container ${r.name} has no ${ROLE_LABEL} label`);
  return problems;
}

/**
 * The one exception to restarting by itself: the original primary after its
 * replica was promoted (a database left alone by the program, mustRun false),
 * which must stay stopped after a reboot (infra/server/container.ts, RETIRED_INPUTS).
 */
function retiredOriginal(r: ResourceView): boolean {
  return roleOf(r) === "database" && Object.entries(RETIRED_INPUTS).every(([key, value]) => r.inputs[key] === value);
}

/**
 * A container with a fixed name is replaced old-first (`deleteBeforeReplace`):
 * Pulumi's default creates the new one first, and Docker refuses a second
 * container of the same name, so an image bump would fail.
 */
export function fixedNamesReplaceOldFirst(r: ResourceView): string[] {
  if (r.type !== CONTAINER || typeof r.inputs["name"] !== "string" || r.options?.deleteBeforeReplace === true) return [];
  return [`container ${r.name} has the fixed name "${r.inputs["name"]}" but is not replaced old-first (deleteBeforeReplace): a replacement would fail on the name`];
}

/**
 * Health-check durations are written as Docker's provider reads them back
 * (Go's form: `1m30s`, not `90s`); any other spelling is a change on every
 * run and drift every day.
 */
export function healthChecksInProviderForm(r: ResourceView): string[] {
  if (r.type !== CONTAINER) return [];
  const check = (r.inputs["healthcheck"] ?? {}) as Record<string, unknown>;
  return (["interval", "timeout", "startPeriod"] as const).flatMap((field) => {
    const value = check[field];
    if (typeof value !== "string" || value === UNKNOWN_PLACEHOLDER) return [];
    const ms = durationMs(value);
    const canonical = ms === undefined ? undefined : goDuration(`${ms}ms`);
    if (canonical === value) return [];
    return [`container ${r.name} has healthcheck.${field} "${value}"; ${canonical ? `write it as Docker's provider reads it back: "${canonical}"` : "expected a duration such as 1m30s"}`];
  });
}

/** Milliseconds in a Go-style duration (`1m30s`, `90s`, `500ms`); undefined when it is not one. */
function durationMs(value: string): number | undefined {
  const match = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(value);
  if (!match || value === "") return undefined;
  const [, h = "0", m = "0", sec = "0", ms = "0"] = match;
  return Math.round(((Number(h) * 60 + Number(m)) * 60 + Number(sec)) * 1000 + Number(ms));
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

// S3 buckets hold the backups. A bucket's safety settings are separate
// resources (aws provider v7), each naming its bucket in `bucket`; so these
// checks look at the whole stack and tie each setting to its bucket.
const BUCKET_TYPES = new Set(["aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"]);
const PUBLIC_ACCESS_BLOCK = new Set(["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]);
const VERSIONING = new Set(["aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"]);
const ENCRYPTION = new Set([
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
]);
const LIFECYCLE = new Set(["aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"]);
const PUBLIC_ACCESS_FLAGS = ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"] as const;
const SSE_ALGORITHMS = new Set(["AES256", "aws:kms", "aws:kms:dsse"]);

export function isBucket(r: ResourceView): boolean {
  return BUCKET_TYPES.has(r.type);
}

function describeBucket(bucket: ResourceView): string {
  const name = bucket.inputs["bucket"];
  return typeof name === "string" ? `bucket ${bucket.name} (${name})` : `bucket ${bucket.name}`;
}

/**
 * The settings resources of `types` that belong to `bucket`: those that depend
 * on it (the usual `bucket: bucket.id`, which stays unknown during a preview)
 * or that name it literally.
 */
function settingsOf(bucket: ResourceView, types: ReadonlySet<string>, resources: readonly ResourceView[]): ResourceView[] {
  const bucketName = bucket.inputs["bucket"];
  return resources.filter(
    (r) => types.has(r.type) && ((r.options?.dependsOn ?? []).includes(bucket.name) || (typeof bucketName === "string" && r.inputs["bucket"] === bucketName)),
  );
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter((v): v is Record<string, unknown> => v !== null && typeof v === "object") : [];
}

/** Buckets are private: a public access block with all four flags on. */
export function bucketsArePrivate(resources: readonly ResourceView[]): string[] {
  return resources.filter(isBucket).flatMap((bucket) => {
    const blocks = settingsOf(bucket, PUBLIC_ACCESS_BLOCK, resources);
    if (blocks.length === 0) return [`${describeBucket(bucket)} has no public access block (aws.s3.BucketPublicAccessBlock with ${PUBLIC_ACCESS_FLAGS.join(", ")} all true)`];
    const off = PUBLIC_ACCESS_FLAGS.filter((flag) => !blocks.some((b) => b.inputs[flag] === true));
    return off.length === 0 ? [] : [`${describeBucket(bucket)} has a public access block without ${off.join(", ")} set to true`];
  });
}

/** Buckets are versioned: an overwritten or deleted backup can be recovered. */
export function bucketsAreVersioned(resources: readonly ResourceView[]): string[] {
  return resources.filter(isBucket).flatMap((bucket) => {
    const enabled = settingsOf(bucket, VERSIONING, resources).some((v) => (v.inputs["versioningConfiguration"] as { status?: unknown } | undefined)?.status === "Enabled");
    return enabled ? [] : [`${describeBucket(bucket)} is not versioned (aws.s3.BucketVersioning with versioningConfiguration.status "Enabled")`];
  });
}

/** Buckets encrypt at rest with S3-managed or KMS keys. */
export function bucketsAreEncrypted(resources: readonly ResourceView[]): string[] {
  return resources.filter(isBucket).flatMap((bucket) => {
    const algorithms = settingsOf(bucket, ENCRYPTION, resources)
      .flatMap((c) => records(c.inputs["rules"]))
      .map((rule) => (rule["applyServerSideEncryptionByDefault"] as { sseAlgorithm?: unknown } | undefined)?.sseAlgorithm);
    return algorithms.some((a) => typeof a === "string" && SSE_ALGORITHMS.has(a))
      ? []
      : [`${describeBucket(bucket)} has no default encryption (aws.s3.BucketServerSideEncryptionConfiguration with sseAlgorithm AES256 or aws:kms)`];
  });
}

/** Buckets have lifecycle rules that expire old objects, so backups do not pile up forever. */
export function bucketsHaveLifecycleRules(resources: readonly ResourceView[]): string[] {
  return resources.filter(isBucket).flatMap((bucket) => {
    const rules = settingsOf(bucket, LIFECYCLE, resources).flatMap((c) => records(c.inputs["rules"]));
    const expiring = rules.some((rule) => rule["status"] === "Enabled" && (rule["expiration"] !== undefined || rule["noncurrentVersionExpiration"] !== undefined));
    return expiring ? [] : [`${describeBucket(bucket)} has no enabled lifecycle rule that expires objects (aws.s3.BucketLifecycleConfiguration)`];
  });
}

/** Buckets are `protect`ed: no `pulumi destroy` or removal from the program deletes the backups. */
export function bucketsAreProtected(r: ResourceView): string[] {
  return isBucket(r) && r.options?.protect !== true ? [`${describeBucket(r)} is not protected`] : [];
}

/** Buckets are `retainOnDelete` (only the offline plan can see it, as for volumes). */
export function bucketsAreRetained(r: ResourceView): string[] {
  return isBucket(r) && r.options?.retainOnDelete !== true ? [`${describeBucket(r)} is not retained on delete`] : [];
}

const DOCKER_PROVIDER = "pulumi:providers:docker";
const REMOTE_COMMAND = "command:remote:Command";

/** A provider's list input as the engine hands it over: an array, or (provider config) its JSON text. */
function listInput(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value !== "string") return [];
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/**
 * Every SSH connection to the server pins its host key, so passwords, keys and
 * root's commands never go to whatever answers at the address: Docker's
 * provider (over ssh://) trusts only the KnownHostsCommand key, with strict
 * checking and no known_hosts file; every remote command has a
 * `connection.hostKey` (the command provider accepts any key without one).
 * A command's connection is secret, so the offline plan shows it masked; the
 * policy pack sees it.
 */
export function serverHostKeyPinned(r: ResourceView): string[] {
  if (r.type === DOCKER_PROVIDER && String(r.inputs["host"] ?? "").startsWith("ssh://")) {
    const options = listInput(r.inputs["sshOpts"]).map(String);
    const pinned = options.find((o) => o.startsWith("KnownHostsCommand="))?.match(/^KnownHostsCommand=\/bin\/echo %H (.*)$/)?.[1];
    const missing = [
      ...(options.includes("StrictHostKeyChecking=yes") ? [] : ["StrictHostKeyChecking=yes"]),
      ...(options.includes("UserKnownHostsFile=/dev/null") ? [] : ["UserKnownHostsFile=/dev/null"]),
      ...(options.includes("GlobalKnownHostsFile=/dev/null") ? [] : ["GlobalKnownHostsFile=/dev/null"]),
      ...(pinned !== undefined && isSshHostKey(pinned) ? [] : ["KnownHostsCommand=/bin/echo %H <server.ssh.hostKey>"]),
    ];
    return missing.length === 0 ? [] : [`Docker provider ${r.name} reaches ${String(r.inputs["host"])} without a pinned host key: its sshOpts lack ${missing.join(", ")}`];
  }
  if (r.type === REMOTE_COMMAND) {
    const connection = r.inputs["connection"];
    // "[secret]": the offline plan's mask, not a value; the pack sees the connection itself.
    if (connection === "[secret]") return [];
    const hostKey = typeof connection === "object" && connection !== null ? (connection as Record<string, unknown>)["hostKey"] : undefined;
    return typeof hostKey === "string" && isSshHostKey(hostKey) ? [] : [`remote command ${r.name} connects without a pinned host key (connection.hostKey), so it would trust any server at that address`];
  }
  return [];
}

/** Checks of one resource at a time, over what the offline plan records. */
export const RULES = {
  onlyProxyPublishesPorts,
  imagesArePinned,
  dataVolumesProtected,
  containersAreBounded,
  fixedNamesReplaceOldFirst,
  healthChecksInProviderForm,
  noSecretsInContainerEnv,
  bucketsAreProtected,
  bucketsAreRetained,
  serverHostKeyPinned,
} as const;

/** Checks that need the whole stack (a bucket and its settings resources). */
export const STACK_RULES = {
  bucketsArePrivate,
  bucketsAreVersioned,
  bucketsAreEncrypted,
  bucketsHaveLifecycleRules,
} as const;

/** Every violation of every rule over a whole plan. */
export function violations(resources: readonly ResourceView[]): string[] {
  return [
    ...resources.flatMap((r) => Object.values(RULES).flatMap((rule) => rule(r))),
    ...Object.values(STACK_RULES).flatMap((rule) => rule(resources)),
  ];
}
