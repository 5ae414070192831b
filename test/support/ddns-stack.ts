// A stack file with `domains.ddns` (no committed stack has one): prod moved to a
// server of its own (one proxy owner per server) with a dynamic address.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./project.js";

/** The `dyn` stack's file; with `token`, its ddnsApiToken as a `secure:` value the offline tools never decrypt. */
export function ddnsStackYaml(options: { token: boolean }): string {
  const prod = readFileSync(join(REPO, "Pulumi.prod.yaml"), "utf8");
  const yaml = prod
    .replace("host: home.bbaegok.kr", "host: dyn.bbaegok.kr")
    .replace("api: api.bbaegok.kr", "api: dyn-api.bbaegok.kr")
    .replace("metabase: metabase.bbaegok.kr", "metabase: dyn-metabase.bbaegok.kr\n    ddns:\n      schedule: \"*/10 * * * *\"")
    .replace("hostHeader: api.bbaegok.kr", "hostHeader: dyn-api.bbaegok.kr")
    .replace("bucket: bbaegok-prod-db-backups", "bucket: bbaegok-dyn-db-backups");
  if (yaml === prod || !yaml.includes("ddns:")) throw new Error("Pulumi.prod.yaml no longer has the values the dyn stack replaces: update test/support/ddns-stack.ts");
  return options.token ? yaml.replace("config:\n", "config:\n  bbaegok-infra:ddnsApiToken:\n    secure: v1:bm90LWEtcmVhbC10b2tlbg==\n") : yaml;
}
