// Runs the real program for one stack under the Pulumi SDK's mocks: no CLI, no
// credentials, no network. Records every resource with its inputs (secrets
// masked) and the options that matter for safety (protect, retainOnDelete).
// One plan per process: the SDK's runtime state is global.
import * as pulumi from "@pulumi/pulumi";
import { join } from "node:path";
import { PROJECT, PROJECT_DIR, loadStack } from "../../stacks/config/index.js";
import { SECRET_PLACEHOLDER } from "../../stacks/config/files.js";
import { offlineMocks, type StackOutputsResolver } from "./mocks.js";

// The SDK's internals the plan needs: the mock monitor (to see resource
// options, which mocks do not pass on) and the wire format of secrets.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("@pulumi/pulumi/runtime/settings") as { getMonitor(): MonitorLike; waitForRPCs(): Promise<void> };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const rpc = require("@pulumi/pulumi/runtime/rpc") as {
  deserializeProperties(struct: unknown, keepUnknowns?: boolean): Record<string, unknown>;
  specialSigKey: string;
  specialSecretSig: string;
};

type Callback = (err: unknown, resp: { getUrn(): string } | undefined) => void;
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): unknown;
  getProtect(): boolean | undefined;
  getRetainondelete(): boolean | undefined;
  getDependenciesList(): string[];
  getProvider(): string;
  getIgnorechangesList(): string[];
  getDeletebeforereplace(): boolean;
}
interface MonitorLike {
  registerResource(req: RegisterRequest, cb: Callback): void;
  registerResourceOutputs(req: { getUrn(): string; getOutputs(): unknown }, cb: (err: unknown, resp: unknown) => void): void;
}

export interface PlannedResource {
  type: string;
  name: string;
  /** The logical name of the parent resource; undefined for the stack itself. */
  parent: string | undefined;
  /** The parent's URN: names are unique per type only, so the tree links by URN. */
  parentUrn: string | undefined;
  urn: string;
  custom: boolean;
  /** Inputs as sent to the engine, every secret replaced by "[secret]". */
  inputs: Record<string, unknown>;
  options: {
    protect: boolean;
    retainOnDelete: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    /** Logical name of the explicit provider, if any. */
    provider: string | undefined;
    /** Logical names of the resources this one depends on. */
    dependsOn: string[];
  };
}

export interface StackPlan {
  stack: string;
  resources: PlannedResource[];
  /** Stack outputs, secrets masked. */
  outputs: Record<string, unknown>;
}

/** Replaces every secret in a deserialized value with the placeholder. */
export function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[rpc.specialSigKey] === rpc.specialSecretSig) return SECRET_PLACEHOLDER;
    if (rpc.specialSigKey in record) return `[${String(record["urn"] ?? record["id"] ?? "special")}]`;
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, maskSecrets(v)]));
  }
  return value;
}

function nameOfUrn(urn: string): string | undefined {
  if (!urn) return undefined;
  return urn.split("::").pop();
}

export interface PlanOptions {
  projectDir?: string;
  /** Outputs of the stacks this one references (a guest's proxy owner, the stack's own last run). */
  resolveStackOutputs?: StackOutputsResolver;
  /** Plan as `pulumi up` runs rather than as a preview: outputs of resources the mocks create are known. @default true */
  preview?: boolean;
}

/**
 * Plans `stack` from its Pulumi.<stack>.yaml. Throws StackFileError or
 * StackConfigError (with every problem listed) before any resource is declared.
 */
export async function planStack(stack: string, options: PlanOptions = {}): Promise<StackPlan> {
  const projectDir = options.projectDir ?? PROJECT_DIR;
  // Validate before the program runs, so a bad file fails with the list of
  // problems and nothing else.
  const { file } = loadStack(stack, projectDir);

  const resolve = options.resolveStackOutputs ?? (() => ({}));
  // "organization": what a self-managed backend (file, S3) calls every stack's organization.
  await pulumi.runtime.setMocks(offlineMocks(resolve), PROJECT, stack, options.preview ?? true, "organization");
  pulumi.runtime.setAllConfig(file.config, file.secretKeys);

  const resources: PlannedResource[] = [];
  const outputsByUrn = new Map<string, Record<string, unknown>>();
  const monitor = settings.getMonitor();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    const inputs = maskSecrets(rpc.deserializeProperties(req.getObject(), true)) as Record<string, unknown>;
    register(req, (err, resp) => {
      if (!err && resp) {
        resources.push({
          type: req.getType(),
          name: req.getName(),
          parent: nameOfUrn(req.getParent()),
          parentUrn: req.getParent() || undefined,
          urn: resp.getUrn(),
          custom: req.getCustom(),
          inputs,
          options: {
            protect: req.getProtect() === true,
            retainOnDelete: req.getRetainondelete() === true,
            deleteBeforeReplace: req.getDeletebeforereplace(),
            ignoreChanges: req.getIgnorechangesList(),
            provider: req.getProvider() ? nameOfUrn(req.getProvider().split("::").slice(0, -1).join("::")) : undefined,
            dependsOn: req.getDependenciesList().map((u) => nameOfUrn(u) ?? u),
          },
        });
      }
      cb(err, resp);
    });
  };
  const registerOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (req, cb) => {
    outputsByUrn.set(req.getUrn(), maskSecrets(rpc.deserializeProperties(req.getOutputs(), true)) as Record<string, unknown>);
    registerOutputs(req, cb);
  };

  await pulumi.runtime.runInPulumiStack(async () => import(join(projectDir, "stacks", "index.ts")));
  await settings.waitForRPCs();

  const root = resources.find((r) => r.type === "pulumi:pulumi:Stack");
  return { stack, resources, outputs: (root && outputsByUrn.get(root.urn)) ?? {} };
}
