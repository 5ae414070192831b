// The guardrails as CrossGuard policies: the same pure checks the test suite
// runs over every offline plan (./rules.ts), applied by `pulumi preview` and
// `pulumi up --policy-pack policy` to what the engine is about to do.
// This module only defines policies; ./index.ts serves them as the pack.
import * as policySdk from "@pulumi/policy";
import {
  type Policies,
  type PolicyResource,
  type ReportViolation,
  type ResourceValidationArgs,
  type ResourceValidationPolicy,
  type StackValidationArgs,
  type StackValidationPolicy,
} from "@pulumi/policy";
import {
  bucketsAreEncrypted,
  bucketsAreProtected,
  bucketsArePrivate,
  bucketsAreVersioned,
  bucketsHaveLifecycleRules,
  containersAreBounded,
  fixedNamesReplaceOldFirst,
  healthChecksInProviderForm,
  imagesArePinned,
  isBucket,
  noSecretsInContainerEnv,
  onlyProxyPublishesPorts,
  serverHostKeyPinned,
  volumesAreProtected,
  UNKNOWN_PLACEHOLDER,
  type ResourceView,
} from "./rules.js";

/**
 * What the pack's proxy throws on a value not known during a preview.
 * @pulumi/policy exports it at run time, but its type declarations leave it
 * out (marked internal), so it is typed here, once.
 */
const UnknownValueError: abstract new (...args: never[]) => Error = policySdk.UnknownValueError;

/**
 * A plain copy of a resource's properties as the pack receives them. During a
 * preview the pack's proxy throws on every value that is not known yet; a rule
 * must still see the rest, so each unknown becomes "[unknown]" (which no rule
 * accepts as a pinned image, a bucket name or a flag set to true).
 */
export function plainValue(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const source = value as Record<string, unknown>;
  const read = (key: string): unknown => {
    try {
      return plainValue(source[key]);
    } catch (err) {
      if (err instanceof UnknownValueError) return UNKNOWN_PLACEHOLDER;
      throw err;
    }
  };
  if (Array.isArray(value)) return Object.keys(value).map(read);
  return Object.fromEntries(Object.keys(source).map((key) => [key, read(key)]));
}

/** The rules' view of a resource the pack validates on its own (its inputs). */
export function viewOfResource(args: ResourceValidationArgs): ResourceView {
  return { type: args.type, name: args.name, inputs: plainValue(args.props) as Record<string, unknown>, options: { protect: args.opts.protect, deleteBeforeReplace: args.opts.deleteBeforeReplace } };
}

/** The rules' view of one resource of the whole stack (its outputs, and what it depends on). */
export function viewOfStackResource(r: PolicyResource): ResourceView {
  const dependsOn = new Set([...r.dependencies, ...Object.values(r.propertyDependencies).flat()].map((d) => d.name));
  return { type: r.type, name: r.name, inputs: plainValue(r.props) as Record<string, unknown>, options: { protect: r.opts.protect, deleteBeforeReplace: r.opts.deleteBeforeReplace, dependsOn: [...dependsOn] } };
}

type ResourceRule = (r: ResourceView) => string[];
type StackRule = (resources: readonly ResourceView[]) => string[];

function resourcePolicy(name: string, description: string, rule: ResourceRule): ResourceValidationPolicy {
  return {
    name,
    description,
    enforcementLevel: "mandatory",
    validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
      for (const problem of rule(viewOfResource(args))) reportViolation(problem);
    },
  };
}

/**
 * A stack-wide bucket check, reported against each offending bucket: the rule
 * runs once per bucket, over that bucket and every resource that is not a
 * bucket, so each message belongs to the bucket it names.
 */
function bucketPolicy(name: string, description: string, rule: StackRule): StackValidationPolicy {
  return {
    name,
    description,
    enforcementLevel: "mandatory",
    validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
      const views = args.resources.map((r) => ({ resource: r, view: viewOfStackResource(r) }));
      const others = views.filter((v) => !isBucket(v.view)).map((v) => v.view);
      for (const bucket of views.filter((v) => isBucket(v.view))) {
        for (const problem of rule([bucket.view, ...others])) reportViolation(problem, bucket.resource.urn);
      }
    },
  };
}

export const onlyProxyPublishesPortsPolicy = resourcePolicy(
  "only-proxy-publishes-ports",
  "Only the nginx proxy publishes host ports or uses the host network; everything else is reached through it (except a database's own port bound to a private link address, for a replica on another server).",
  onlyProxyPublishesPorts,
);
export const imagesArePinnedPolicy = resourcePolicy("images-pinned", "Every image is pinned to a version tag or a digest (no latest, no floating tags).", imagesArePinned);
export const dataVolumesProtectedPolicy = resourcePolicy(
  "data-volumes-protected",
  "Docker volumes hold data and are protected, so no destroy or removal deletes them. (retainOnDelete is not visible to policy packs; the test suite checks it over the offline plan.)",
  volumesAreProtected,
);
export const containersAreBoundedPolicy = resourcePolicy(
  "containers-bounded",
  "Every container restarts by itself (but the original primary after a promotion: it stays stopped), has a memory limit, rotates its logs and says its role in a label.",
  containersAreBounded,
);
export const noSecretsInContainerEnvPolicy = resourcePolicy(
  "no-secrets-in-container-env",
  "Secrets reach containers as files (*_FILE), never as environment values.",
  noSecretsInContainerEnv,
);
export const fixedNamesReplaceOldFirstPolicy = resourcePolicy(
  "fixed-names-replace-old-first",
  "A container with a fixed name is replaced old-first (deleteBeforeReplace): Docker refuses two containers of one name, so a create-first replacement fails.",
  fixedNamesReplaceOldFirst,
);
export const healthChecksInProviderFormPolicy = resourcePolicy(
  "healthchecks-provider-form",
  "Health-check durations are written as Docker's provider reads them back (1m30s, not 90s), so a second up changes nothing.",
  healthChecksInProviderForm,
);
export const serverHostKeyPinnedPolicy = resourcePolicy(
  "server-host-key-pinned",
  "Every SSH connection to the server (Docker's provider, every remote command) accepts only the pinned server.ssh.hostKey.",
  serverHostKeyPinned,
);
export const bucketsAreProtectedPolicy = resourcePolicy("buckets-protected", "S3 buckets hold the backups and are protected, so no destroy or removal deletes them.", bucketsAreProtected);
export const bucketsArePrivatePolicy = bucketPolicy(
  "buckets-private",
  "Every S3 bucket has a public access block with all four flags true.",
  bucketsArePrivate,
);
export const bucketsAreVersionedPolicy = bucketPolicy("buckets-versioned", "Every S3 bucket has versioning Enabled.", bucketsAreVersioned);
export const bucketsAreEncryptedPolicy = bucketPolicy("buckets-encrypted", "Every S3 bucket encrypts at rest by default (SSE-S3 or KMS).", bucketsAreEncrypted);
export const bucketsHaveLifecycleRulesPolicy = bucketPolicy(
  "buckets-lifecycle",
  "Every S3 bucket has an enabled lifecycle rule that expires objects.",
  bucketsHaveLifecycleRules,
);

/** Every policy of the pack, all mandatory: a violation stops the preview or update. */
export const POLICIES: Policies = [
  onlyProxyPublishesPortsPolicy,
  imagesArePinnedPolicy,
  dataVolumesProtectedPolicy,
  containersAreBoundedPolicy,
  fixedNamesReplaceOldFirstPolicy,
  healthChecksInProviderFormPolicy,
  noSecretsInContainerEnvPolicy,
  serverHostKeyPinnedPolicy,
  bucketsAreProtectedPolicy,
  bucketsArePrivatePolicy,
  bucketsAreVersionedPolicy,
  bucketsAreEncryptedPolicy,
  bucketsHaveLifecycleRulesPolicy,
];
