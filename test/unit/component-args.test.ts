// The args interface is a component's manual (as SST's are): every field of
// every component's `…Args` interface under infra/ says in JSDoc what it is,
// so a reader learns the component without opening its body.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { it } from "node:test";
import ts from "typescript";
import { REPO } from "../support/project.js";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** `Interface.field` of every Args interface field in `path`, with whether it has a JSDoc comment. */
function argsFields(path: string): { field: string; documented: boolean }[] {
  const file = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true);
  const fields: { field: string; documented: boolean }[] = [];
  file.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || !node.name.text.endsWith("Args")) return;
    for (const member of node.members) {
      if (!ts.isPropertySignature(member)) continue;
      const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
      fields.push({ field: `${node.name.text}.${member.name.getText(file)}`, documented: docs.some((d) => typeof d.comment === "string" && d.comment.trim() !== "") });
    }
  });
  return fields;
}

it("every field of every component's Args interface has a JSDoc comment", () => {
  const components = sources(join(REPO, "infra")).filter((path) => readFileSync(path, "utf8").includes("extends pulumi.ComponentResource"));
  const all = components.flatMap((path) => argsFields(path).map((f) => ({ ...f, field: `${relative(REPO, path)}: ${f.field}` })));
  const interfaces = new Set(all.map((f) => f.field.replace(/\.[^.]+$/, "")));
  // The components of the stack, so a rename does not make this check pass over nothing.
  for (const name of ["AppSlotsArgs", "ServiceDatabaseArgs", "ReadReplicaArgs", "MetabaseArgs", "DatabaseBackupsArgs", "StackDnsArgs", "SiteCertificateArgs", "HomeServerArgs", "EdgeProxyArgs", "GuestProxyArgs"]) {
    assert.ok([...interfaces].some((i) => i.endsWith(`: ${name}`)), `no ${name} found under infra/`);
  }
  assert.deepEqual(all.filter((f) => !f.documented).map((f) => f.field), []);
});
