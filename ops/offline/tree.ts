// Renders a stack plan as a tree an operator can read: type, logical name,
// the inputs that matter for that type, and safety flags. Secrets are already
// masked as "[secret]" by the plan.
import type { PlannedResource, StackPlan } from "./plan.js";

const KEY_INPUTS: Record<string, readonly string[]> = {
  "pulumi:providers:docker": ["host"],
  "docker:index/container:Container": ["name", "image", "restart", "memory", "ports", "networksAdvanced", "volumes", "mounts", "healthcheck"],
  "docker:index/volume:Volume": ["name"],
  "docker:index/network:Network": ["name", "internal"],
  "docker:index/remoteImage:RemoteImage": ["name"],
  "bbaegok:server:File": ["path", "mode", "owner", "content"],
  "command:remote:Command": [],
  "random:index/randomPassword:RandomPassword": ["length"],
};

function show(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const oneLine = text.replace(/\s*\n\s*/g, " ⏎ ");
  return oneLine.length > 110 ? `${oneLine.slice(0, 107)}...` : oneLine;
}

function keyInputs(r: PlannedResource): string[] {
  const keys = KEY_INPUTS[r.type] ?? Object.keys(r.inputs).filter((k) => typeof r.inputs[k] !== "object").slice(0, 4);
  return keys.filter((k) => r.inputs[k] !== undefined).map((k) => `${k}=${show(r.inputs[k])}`);
}

function flags(r: PlannedResource): string {
  const out: string[] = [];
  if (r.options.protect) out.push("protected");
  if (r.options.retainOnDelete) out.push("retained on delete");
  return out.length ? `  [${out.join(", ")}]` : "";
}

export function renderTree(plan: StackPlan): string {
  const children = new Map<string | undefined, PlannedResource[]>();
  for (const r of plan.resources) {
    const list = children.get(r.parentUrn) ?? [];
    list.push(r);
    children.set(r.parentUrn, list);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, indent: string) => {
    const list = children.get(parent) ?? [];
    list.forEach((r, i) => {
      const last = i === list.length - 1;
      const branch = parent === undefined ? "" : last ? "└─ " : "├─ ";
      lines.push(`${indent}${branch}${r.type}  ${r.name}${flags(r)}`);
      const childIndent = parent === undefined ? "" : indent + (last ? "   " : "│  ");
      for (const input of keyInputs(r)) lines.push(`${childIndent}${children.has(r.urn) ? "│  " : "   "}  ${input}`);
      walk(r.urn, childIndent);
    });
  };
  walk(undefined, "");
  const outputs = Object.entries(plan.outputs);
  if (outputs.length > 0) {
    lines.push("", "Outputs:");
    for (const [k, v] of outputs) lines.push(`  ${k}: ${show(v)}`);
  }
  return `${lines.join("\n")}\n`;
}
