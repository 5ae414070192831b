// The stack's public names in Cloudflare: one A record per host (the API, and
// Metabase where it runs) in the zone looked up by name, pointing at the home
// connection, proxied by default; deleted with the stack. With `domains.ddns`,
// a job on the server keeps the records' address current (see render.ts).
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../../stacks/config/schema.js";
import { ServerFile, type HomeServer } from "../server/index.js";
import { ddnsCronFile, ddnsPaths, ddnsScript, stackRecords, type RecordsAsWritten } from "./render.js";

export interface StackDnsArgs {
  /** The stack's server footprint: the DDNS job's files go there. */
  server: HomeServer;
  /**
   * The stack's validated config: `domains`, `metabase.enabled`, `server.publicIp` and `proxy.cloudflareProxied` are read.
   * @default proxy.cloudflareProxied true, metabase.enabled false, domains.ddns none (every 5 minutes when set)
   */
  config: Pick<StackConfig, "service" | "domains" | "metabase" | "server" | "proxy">;
  /** The DDNS job's Cloudflare token, the secret ddnsApiToken: required with `domains.ddns`, unused otherwise. */
  ddnsApiToken?: pulumi.Input<string>;
}

export class StackDns extends pulumi.ComponentResource {
  /** Host name of each record, by what it serves. */
  readonly hostnames: Record<string, string>;
  /** Cloudflare's id of the zone the records are in. */
  readonly zoneId: pulumi.Output<string>;

  constructor(name: string, args: StackDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config } = args;
    super("bbaegok:dns:StackDns", name, { zone: config.domains.zone }, opts);
    const planned = stackRecords(config.domains, config.metabase.enabled);
    this.hostnames = Object.fromEntries(planned.map((r) => [r.role, r.name]));

    const zone = cloudflare.getZoneOutput({ filter: { name: config.domains.zone } }, { parent: this });
    // With a filter, the zone's id is the result's id.
    this.zoneId = zone.id;
    const dynamic = config.domains.ddns !== undefined;
    // What Pulumi writes; with DDNS, the job's state file records it too (ddnsRecordsKey).
    const written: RecordsAsWritten = { content: config.server.publicIp, proxied: config.proxy.cloudflareProxied };
    const records = planned.map(
      (r) =>
        new cloudflare.DnsRecord(
          `${name}-${r.role}`,
          {
            zoneId: this.zoneId,
            name: r.name,
            type: "A",
            ...written,
            // 1 = automatic, the only TTL a proxied record takes.
            ttl: 1,
            comment: `bbaegok-infra stack ${server.stack}: ${r.role}`,
          },
          // With DDNS the job owns the address: a refresh must not make Pulumi put the first one back.
          { parent: this, ...(dynamic ? { ignoreChanges: ["content"] } : {}) },
        ),
    );

    if (config.domains.ddns) {
      // The stack loader refuses a DDNS stack without its token; this guards other callers.
      if (args.ddnsApiToken === undefined) throw new Error(`dns ${name}: domains.ddns needs the secret ddnsApiToken`);
      this.keepCurrent(name, server, config, config.domains.ddns.schedule, records, written, args.ddnsApiToken);
    }
    this.registerOutputs({ hostnames: this.hostnames, zoneId: this.zoneId });
  }

  private keepCurrent(name: string, server: HomeServer, config: StackDnsArgs["config"], schedule: string, records: cloudflare.DnsRecord[], written: RecordsAsWritten, token: pulumi.Input<string>): void {
    const paths = ddnsPaths(config.service, server.stack, server.names.stackDir, server.names.secretsDir);
    const file = (suffix: string, path: string, mode: string, content: pulumi.Input<string>, dependsOn: pulumi.Resource[] = []) =>
      new ServerFile(`${name}-${suffix}`, { connection: server.connection, path, mode, owner: "root:root", content }, { parent: this, dependsOn });
    const tokenFile = file("ddns-token", paths.tokenFile, "0400", token);
    const script = file(
      "ddns-script",
      paths.script,
      "0755",
      pulumi.all([this.zoneId, pulumi.all(records.map((r) => r.id))]).apply(([zoneId, recordIds]) =>
        ddnsScript({
          stack: server.stack,
          zoneId,
          recordIds,
          written,
          scriptPath: paths.script,
          tokenFile: paths.tokenFile,
          stateFile: paths.stateFile,
        }),
      ),
    );
    // Installed last and removed first: cron never runs a script or token that is not there.
    file("ddns-cron", paths.cronFile, "0644", ddnsCronFile(schedule, paths.script, paths.logTag), [tokenFile, script]);
  }
}
