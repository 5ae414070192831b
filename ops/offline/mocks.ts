// What the offline plan answers in place of the engine and the clouds. Values
// are plausible and deterministic; generated secrets are recognisable
// (`mock-secret-…`) so tests can prove they never reach output in clear.
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";

export const MOCK_SECRET_PREFIX = "mock-secret-";

function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Outputs another stack exports, keyed by its fully qualified name; filled by the stack-reference resolver. */
export type StackOutputsResolver = (stackName: string) => Record<string, unknown>;

export function offlineMocks(resolveStackOutputs: StackOutputsResolver): pulumi.runtime.Mocks {
  return {
    newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
      const state: Record<string, unknown> = { ...args.inputs };
      switch (args.type) {
        case "docker:index/remoteImage:RemoteImage": {
          const hash = digest(String(args.inputs["name"]));
          state["imageId"] = `sha256:${hash}`;
          state["repoDigest"] = `${String(args.inputs["name"]).split(":")[0]}@sha256:${hash}`;
          break;
        }
        case "random:index/randomPassword:RandomPassword":
          state["result"] = `${MOCK_SECRET_PREFIX}${args.name}`;
          break;
        case "pulumi:pulumi:StackReference":
          state["outputs"] = resolveStackOutputs(String(args.inputs["name"] ?? args.name));
          state["secretOutputNames"] = [];
          break;
      }
      return { id: `${args.name}-id`, state };
    },
    call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
      return { ...args.inputs };
    },
  };
}
