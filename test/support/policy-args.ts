// Calls the pack's policies directly, the way the policy runner calls them:
// a resource policy once per resource (its inputs), a stack policy once with
// every resource (their outputs and dependencies). Resources are given as the
// offline plan records them, so a whole planned stack can be checked too.
import type {
  Policy,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import type { ResourceView } from "../../policy/rules.js";

/** A violation as the engine would print it: which policy, which resource (if any), what. */
export interface ReportedViolation {
  policy: string;
  urn: string | undefined;
  message: string;
}

const NO_STACK_TAGS: ReadonlyMap<string, string> = new Map();

function urnOf(view: ResourceView): string {
  return `urn:pulumi:test::bbaegok-infra::${view.type}::${view.name}`;
}

function optionsOf(view: ResourceView): PolicyResourceOptions {
  return {
    protect: view.options?.protect === true,
    ...(view.options?.deleteBeforeReplace !== undefined ? { deleteBeforeReplace: view.options.deleteBeforeReplace } : {}),
    ignoreChanges: [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
  };
}

// The runner's helpers the bbaegok policies never call; here they fail loudly if one does.
const helpers = {
  isType: (_resourceClass: object): boolean => false,
  asType: (_resourceClass: object): undefined => undefined,
  getConfig<T extends object>(): T {
    throw new Error("the bbaegok policies take no configuration");
  },
  notApplicable(reason?: string): never {
    throw new Error(`a policy declared itself not applicable: ${reason ?? "no reason given"}`);
  },
};

export function resourceArgs(view: ResourceView): ResourceValidationArgs {
  return { type: view.type, name: view.name, urn: urnOf(view), props: view.inputs, opts: optionsOf(view), stackTags: NO_STACK_TAGS, ...helpers };
}

export function stackArgs(views: readonly ResourceView[]): StackValidationArgs {
  const byName = new Map<string, PolicyResource>();
  const resources = views.map((view) => {
    const resource: PolicyResource = {
      type: view.type,
      name: view.name,
      urn: urnOf(view),
      props: view.inputs,
      opts: optionsOf(view),
      dependencies: [],
      propertyDependencies: {},
      isType: helpers.isType,
      asType: helpers.asType,
    };
    byName.set(view.name, resource);
    return resource;
  });
  views.forEach((view, i) => {
    resources[i]!.dependencies = (view.options?.dependsOn ?? []).map((name) => byName.get(name)).filter((r): r is PolicyResource => r !== undefined);
  });
  return { resources, stackTags: NO_STACK_TAGS, getConfig: helpers.getConfig, notApplicable: helpers.notApplicable };
}

function isStackPolicy(policy: Policy): policy is StackValidationPolicy {
  return "validateStack" in policy;
}

/** Runs one policy over `views` and returns every violation it reports. */
export async function runPolicy(policy: ResourceValidationPolicy | StackValidationPolicy, views: readonly ResourceView[]): Promise<ReportedViolation[]> {
  const reported: ReportedViolation[] = [];
  const report = (defaultUrn: string | undefined) => (message: string, urn?: string) => reported.push({ policy: policy.name, urn: urn ?? defaultUrn, message });
  if (isStackPolicy(policy)) {
    await policy.validateStack(stackArgs(views), report(undefined));
    return reported;
  }
  const validations = policy.validateResource === undefined ? [] : Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
  for (const view of views) {
    for (const validate of validations) await validate(resourceArgs(view), report(urnOf(view)));
  }
  return reported;
}
