// What the offline plan answers in place of the engine and the clouds. Values
// are plausible and deterministic; generated secrets are recognisable
// (`mock-secret-…`) so tests can prove they never reach output in clear.
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";
import { edgeInvoke, edgeResourceState, outputsFromStackFile } from "./edge-mocks.js";

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
      let id = `${args.name}-id`;
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
        case "random:index/randomBytes:RandomBytes":
          // Real bytes (a WireGuard key must be 32 of them), derived from the name: the same on every plan.
          state["base64"] = Buffer.from(digest(`${MOCK_SECRET_PREFIX}${args.name}`), "hex").subarray(0, Number(args.inputs["length"] ?? 32)).toString("base64");
          break;
        case "aws:s3/bucket:Bucket":
          state["arn"] = `arn:aws:s3:::${String(args.inputs["bucket"])}`;
          // As on AWS, a bucket's ID is its name.
          id = String(args.inputs["bucket"]);
          break;
        case "aws:iam/user:User":
          state["arn"] = `arn:aws:iam::123456789012:user${String(args.inputs["path"] ?? "/")}${String(args.inputs["name"])}`;
          break;
        case "aws:iam/accessKey:AccessKey":
          // The secret half of a backup identity's key: must never reach output in clear.
          state["secret"] = `${MOCK_SECRET_PREFIX}${args.name}`;
          break;
        case "pulumi:pulumi:StackReference": {
          const name = String(args.inputs["name"] ?? args.name);
          const given = resolveStackOutputs(name);
          // Unless a test says otherwise, a referenced stack exports what its stack file implies.
          state["outputs"] = Object.keys(given).length > 0 ? given : outputsFromStackFile(name);
          state["secretOutputNames"] = [];
          break;
        }
        default:
          Object.assign(state, edgeResourceState(args));
      }
      return { id, state };
    },
    call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
      if (args.token === "pulumi:pulumi:readStackOutputs") {
        const name = String(args.inputs["name"]);
        const given = resolveStackOutputs(name);
        return { name, outputs: Object.keys(given).length > 0 ? given : outputsFromStackFile(name), secretOutputNames: [] };
      }
      return edgeInvoke(args) ?? { ...args.inputs };
    },
  };
}
