// The exact plugin version each npm provider package asks the engine for
// (its package.json "pulumi" block): the one place engine/ reads it from.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const REPO_DIR = join(__dirname, "..", "..");

export function pluginVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(join(REPO_DIR, "node_modules", "@pulumi", name, "package.json"), "utf8")) as { pulumi?: { name?: string; version?: string } };
  if (!pkg.pulumi?.version) throw new Error(`node_modules/@pulumi/${name}/package.json has no "pulumi.version": run npm ci`);
  return pkg.pulumi.version;
}
