// A stand-in resource plugin for a provider whose API cannot be reached from
// here (AWS, Cloudflare) — or, for runs that have no server, Docker and the
// command provider. It speaks Pulumi's provider protocol (the SDK's own
// provider server) under the real plugin's name and exact version, so the real
// engine plans and applies the real program against it. It validates nothing a
// cloud would: every input is accepted and returned as the output, with a
// deterministic id and the few computed outputs the program reads (named per
// type in the spec). A change of an input the real provider cannot update in
// place (named per type in the spec, from the provider's schema) is planned as
// a replacement, which gets new computed outputs, as it would for real.
import { createHash } from "node:crypto";
import type * as provider from "@pulumi/pulumi/provider";

/** The SDK's marker for a secret value inside a property struct (runtime/rpc.ts specialSigKey / secretSig). */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
/** The engine's marker for an unknown value during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export type Props = Record<string, unknown>;

/** What a stand-in answers for one resource type. */
export interface Created {
  id: string;
  /** Computed outputs, merged over the inputs. */
  outs?: Props;
}

export interface StandInSpec {
  /** The plugin name, e.g. "aws". */
  name: string;
  /** The exact version the npm package asks the engine for. */
  version: string;
  /** One sentence: what this stands in for and what it does not do. */
  description: string;
  /** The id and computed outputs of a new resource. Pure: the same URN and inputs give the same answer. */
  create(type: string, urn: string, inputs: Props): Created;
  /** Output names this spec computes per type (never compared as inputs in a diff). */
  computedKeys(type: string): readonly string[];
  /** Of the changed inputs, those the real provider replaces the resource for. */
  replaces(type: string, changed: readonly string[]): string[];
  /** Invokes (data sources) the program calls. */
  invoke?(token: string, inputs: Props): Props;
}

/** The resource type of a URN: `urn:pulumi:stack::project::parent$type::name`. */
export function typeOfUrn(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.split("$").pop() ?? qualified;
}

/** A stable hex digest of the given parts, `length` characters long. */
export function digest(length: number, ...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, length);
}

export function secret(value: unknown): Props {
  return { [SIG_KEY]: SECRET_SIG, value };
}

function isSecret(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Props)[SIG_KEY] === SECRET_SIG;
}

/** The plain value under secret markers, all the way down. */
export function reveal(value: unknown): unknown {
  if (isSecret(value)) return reveal(value.value);
  if (Array.isArray(value)) return value.map(reveal);
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  return value;
}

function containsUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (typeof value === "object" && value !== null) return Object.values(value).some(containsUnknown);
  return false;
}

/** For specs: replace on every changed input but `updatable`, or on those of `forceNew` only. */
export function replaceRule(rule: { updatable: readonly string[] } | { forceNew: readonly string[] }): (changed: readonly string[]) => string[] {
  return "updatable" in rule ? (changed) => changed.filter((k) => !rule.updatable.includes(k)) : (changed) => changed.filter((k) => rule.forceNew.includes(k));
}

/** Input names whose values differ between the old state and the new inputs (computed outputs excluded). */
export function changedInputs(olds: Props, news: Props, computed: readonly string[]): string[] {
  const keys = new Set([...Object.keys(news), ...Object.keys(olds).filter((k) => !computed.includes(k))]);
  return [...keys].filter((k) => containsUnknown(news[k]) || JSON.stringify(reveal(olds[k])) !== JSON.stringify(reveal(news[k]))).sort();
}

export function recorderProvider(spec: StandInSpec): provider.Provider {
  return {
    version: spec.version,
    schema: JSON.stringify({ name: spec.name, version: spec.version, description: spec.description }),
    async check(_urn, _olds, news) {
      return { inputs: news };
    },
    async diff(_id, urn, olds, news) {
      const type = typeOfUrn(urn);
      const changed = changedInputs(olds as Props, news as Props, spec.computedKeys(type));
      return { changes: changed.length > 0, replaces: spec.replaces(type, changed) };
    },
    async create(urn, inputs) {
      const created = spec.create(typeOfUrn(urn), urn, inputs as Props);
      return { id: created.id, outs: { ...(inputs as Props), ...created.outs } };
    },
    async read(id, _urn, props) {
      // Nothing outside can have changed: a refresh finds what was recorded.
      return { id, props };
    },
    async update(_id, urn, olds, news) {
      // Computed outputs (ids, keys, certificates) stay what they were, as they would in the real service.
      const kept = Object.fromEntries(spec.computedKeys(typeOfUrn(urn)).filter((k) => k in (olds as Props)).map((k) => [k, (olds as Props)[k]]));
      return { outs: { ...(news as Props), ...kept } };
    },
    async delete() {},
    async invoke(token, inputs) {
      if (!spec.invoke) throw new Error(`${spec.name} stand-in: no invoke ${token}`);
      return { outputs: spec.invoke(token, inputs as Props) };
    },
  };
}
