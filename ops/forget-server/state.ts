// What `npm run forget-server` takes out of a stack's state: every resource
// the engine would have to reach a gone server for. Pure: a deployment (as
// `pulumi stack export` prints it) in, the deployment without them out.
//
// A resource is on the server when it is
//   - a Docker provider whose host is `ssh://…@<host>:…` (infra/server's
//     dockerProvider), or any resource that provider manages;
//   - a command:remote resource whose connection's host is <host> (ServerFile,
//     the link's files and units there);
//   - a component all of whose children are on it (the OtherServer, the
//     ServerFiles there): nothing of it is left to declare.
// What stays loses its references to what went (dependencies, property
// dependencies, deletedWith), as the engine checks them on import. Nothing on
// another server goes: a resource that stays and names a gone one as its
// parent or provider stops the forgetting instead of being forgotten too.

/** The part of a state resource (apitype.ResourceV3) this reads or edits; the rest is kept as it is. */
export interface StateResource {
  urn: string;
  type: string;
  custom?: boolean;
  id?: string;
  parent?: string;
  provider?: string;
  inputs?: Record<string, unknown>;
  dependencies?: string[];
  propertyDependencies?: Record<string, string[]>;
  deletedWith?: string;
  [key: string]: unknown;
}

/** A deployment as `pulumi stack export` prints it: `deployment.resources` and `deployment.pending_operations` are what this reads. */
export interface StateDeployment {
  version: number;
  deployment: { resources?: StateResource[]; pending_operations?: { resource: StateResource }[]; [key: string]: unknown };
}

/** One forgotten resource, for the operator's list. */
export interface Forgotten {
  urn: string;
  type: string;
  /** The resource's logical name (the URN's last part). */
  name: string;
}

export interface Forgetting {
  forgotten: Forgotten[];
  /** The Docker providers of the server as the program reached them (their `host` and `sshOpts` inputs), for the check that it is gone. */
  reach: { host: string; sshOpts: string[] }[];
  /** The deployment without them; the input is not changed. */
  deployment: StateDeployment;
}

/** The URN's logical name: its last `::` part. */
export function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

/** `<urn>::<id>` (a provider reference) → the URN. */
function providerUrn(reference: string): string {
  return reference.slice(0, reference.lastIndexOf("::"));
}

/** The host of a Docker provider's `ssh://user@host:port`; undefined for any other (a socket, a secret). */
export function dockerSshHost(host: unknown): string | undefined {
  if (typeof host !== "string" || !host.startsWith("ssh://")) return undefined;
  try {
    return new URL(host).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return undefined;
  }
}

/** The state's mark of a secret value (apitype's SecretSig key and value). */
const SECRET_SIG = ["4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"] as const;

/** A value, or a secret's plaintext (an export with --show-secrets); undefined for a secret still encrypted. */
function revealed(value: unknown): unknown {
  if (!value || typeof value !== "object") return value;
  const record = value as Record<string, unknown>;
  if (record[SECRET_SIG[0]] !== SECRET_SIG[1]) return value;
  return typeof record["plaintext"] === "string" ? JSON.parse(record["plaintext"]) : undefined;
}

/** A provider's list input: the engine keeps a provider's inputs as strings, a list as its JSON. */
function providerList(value: unknown): string[] {
  const list = typeof value === "string" ? JSON.parse(value) : (value ?? []);
  if (!Array.isArray(list)) throw new Error(`a Docker provider's sshOpts is not a list in the state: ${JSON.stringify(value)}`);
  return list.map(String);
}

/** A command:remote resource's connection host; undefined when its connection is not readable (encrypted, absent). */
function commandHost(resource: StateResource | undefined): string | undefined {
  const connection = revealed(resource?.inputs?.["connection"]);
  if (!connection || typeof connection !== "object") return undefined;
  const host = (connection as Record<string, unknown>)["host"];
  return typeof host === "string" ? host : undefined;
}

/**
 * Every resource of the deployment that is on `host`, and the deployment
 * without them. The command provider keeps a connection as a secret: where
 * each command runs is read from `readable`, the same state exported with
 * its secrets shown, which is only read; the deployment returned is `state`'s,
 * its secrets still encrypted.
 */
export function forgetServer(state: StateDeployment, host: string, readable: StateDeployment = state): Forgetting {
  const resources = state.deployment.resources ?? [];
  // By position: a URN can be there twice (a replaced resource's old one, marked for deletion, beside the new).
  const readableResources = readable.deployment.resources ?? [];
  if (readableResources.length !== resources.length || resources.some((r, i) => readableResources[i]!.urn !== r.urn)) {
    throw new Error("the state changed between its two exports (another pulumi command ran?): nothing was changed; run it again");
  }
  const shown = new Map(resources.map((r, i) => [r, readableResources[i]!]));
  const gone = new Set<string>();
  const providers = new Set<string>();
  const reach: Forgetting["reach"] = [];
  for (const r of resources) {
    const inputs = shown.get(r)?.inputs;
    if (r.type === "pulumi:providers:docker" && dockerSshHost(revealed(inputs?.["host"])) === host) {
      gone.add(r.urn);
      providers.add(r.urn);
      reach.push({ host: String(revealed(inputs?.["host"])), sshOpts: providerList(revealed(inputs?.["sshOpts"])) });
    }
  }
  for (const r of resources) {
    if (r.provider && providers.has(providerUrn(r.provider))) gone.add(r.urn);
    else if (r.type.startsWith("command:remote:") && commandHost(shown.get(r)) === host) gone.add(r.urn);
    else if (r.type.startsWith("command:remote:") && commandHost(shown.get(r)) === undefined) {
      throw new Error(`${r.urn}: its connection is not readable in the state (encrypted): cannot tell which server it runs on; nothing was changed`);
    }
  }
  // Components whose children all went, repeated until none is added (a component of components goes once they have).
  for (let changed = true; changed; ) {
    changed = false;
    for (const r of resources) {
      if (r.custom || gone.has(r.urn)) continue;
      const children = resources.filter((c) => c.parent === r.urn);
      if (children.length > 0 && children.every((c) => gone.has(c.urn))) {
        gone.add(r.urn);
        changed = true;
      }
    }
  }
  const kept = resources.filter((r) => !gone.has(r.urn));
  for (const r of kept) {
    if (r.parent && gone.has(r.parent)) throw new Error(`${r.urn} stays but its parent ${r.parent} is on ${host}: nothing was changed`);
    if (r.provider && gone.has(providerUrn(r.provider))) throw new Error(`${r.urn} stays but its provider is ${host}'s: nothing was changed`);
  }
  const without = (urns: string[] | undefined) => urns?.filter((u) => !gone.has(u));
  const edited = kept.map((r) => {
    const copy: StateResource = { ...r };
    if (r.dependencies) copy.dependencies = without(r.dependencies);
    if (r.propertyDependencies) copy.propertyDependencies = Object.fromEntries(Object.entries(r.propertyDependencies).map(([k, v]) => [k, without(v) ?? []]));
    if (r.deletedWith && gone.has(r.deletedWith)) delete copy.deletedWith;
    return copy;
  });
  const pending = state.deployment.pending_operations?.filter((op) => !gone.has(op.resource.urn));
  return {
    forgotten: resources.filter((r) => gone.has(r.urn)).map((r) => ({ urn: r.urn, type: r.type, name: urnName(r.urn) })),
    reach,
    deployment: {
      ...state,
      deployment: { ...state.deployment, resources: edited, ...(pending ? { pending_operations: pending } : {}) },
    },
  };
}
