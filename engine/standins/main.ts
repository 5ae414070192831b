// The entry of every stand-in plugin: `node --import tsx engine/standins/main.ts <name> <engine address>`,
// started by the engine through the `pulumi-resource-<name>` launcher that `npm run engine:install` writes.
import * as provider from "@pulumi/pulumi/provider";
import { aws } from "./aws.js";
import { cloudflare } from "./cloudflare.js";
import { recorderProvider, type StandInSpec } from "./recorder.js";
import { commandServerStandIn, dockerServerStandIn } from "./server.js";

export const STAND_INS: Record<string, StandInSpec> = {
  aws,
  cloudflare,
  "docker-server": dockerServerStandIn,
  "command-server": commandServerStandIn,
};

if (require.main === module) {
  const [which, ...args] = process.argv.slice(2);
  const spec = which ? STAND_INS[which] : undefined;
  if (!spec) {
    console.error(`usage: main.ts <${Object.keys(STAND_INS).join("|")}> <engine address>`);
    process.exit(2);
  }
  void provider.main(recorderProvider(spec), args);
}
