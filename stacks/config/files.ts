// Reading Pulumi.<stack>.yaml files straight from disk: for the offline plan,
// for cross-stack checks, and for tools that clone stacks. A real `pulumi up`
// gets the same values from the engine instead.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { PROJECT } from "./schema.js";
import { rawFromPulumiConfig, stackFileName, type SiblingStack } from "./validate.js";

/** Stands in for every secret value the offline tools cannot (and must not) decrypt. */
export const SECRET_PLACEHOLDER = "[secret]";

export interface StackFile {
  stack: string;
  path: string;
  /** Flat Pulumi config as the engine hands it to a program: structured values as JSON text. */
  config: Record<string, string>;
  /** Keys whose values are `secure:` in the file; their values here are placeholders. */
  secretKeys: string[];
}

export class StackFileError extends Error {
  override name = "StackFileError";
}

/** The stacks this project has a file for, from `Pulumi.<stack>.yaml` names. */
export function listStacks(projectDir: string): string[] {
  return readdirSync(projectDir)
    .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

export function readStackFile(projectDir: string, stack: string): StackFile {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new StackFileError(`"${stack}" is not a stack name (letters, digits, _ . - only)`);
  const path = join(projectDir, stackFileName(stack));
  if (!existsSync(path)) {
    const known = listStacks(projectDir);
    throw new StackFileError(`No stack "${stack}": ${path} does not exist. Known stacks: ${known.join(", ") || "none"}.`);
  }
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new StackFileError(`${stackFileName(stack)} is not valid YAML: ${(err as Error).message}`);
  }
  const entries = (doc as { config?: unknown } | null)?.config ?? {};
  if (typeof entries !== "object" || entries === null || Array.isArray(entries)) {
    throw new StackFileError(`${stackFileName(stack)}: "config" must be a map of keys to values`);
  }
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [rawKey, value] of Object.entries(entries)) {
    // Pulumi accepts keys without a namespace as the project's own.
    const key = rawKey.includes(":") ? rawKey : `${PROJECT}:${rawKey}`;
    if (isSecure(value)) {
      config[key] = SECRET_PLACEHOLDER;
      secretKeys.push(key);
    } else if (containsSecure(value)) {
      throw new StackFileError(`${stackFileName(stack)}: ${key} nests a secure value; set secrets as their own top-level key`);
    } else {
      config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return { stack, path, config, secretKeys };
}

function isSecure(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && "secure" in value;
}

function containsSecure(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (isSecure(value)) return true;
  return Object.values(value).some(containsSecure);
}

/** Every stack file of the project but `except`, for cross-stack validation. Unreadable files are skipped: they fail their own validation. */
export function readSiblings(projectDir: string, except: string): SiblingStack[] {
  const siblings: SiblingStack[] = [];
  for (const stack of listStacks(projectDir)) {
    if (stack === except) continue;
    try {
      siblings.push({ stack, raw: rawFromPulumiConfig(readStackFile(projectDir, stack).config) });
    } catch {
      // A broken sibling is reported when that stack itself is planned or deployed.
    }
  }
  return siblings;
}
