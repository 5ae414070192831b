// Pure renderers of the stack's DNS: which records it has, and the DDNS job
// that keeps them at a dynamic home address. No Pulumi import.
//
// The DDNS answer: a POSIX sh script on the server, run by cron, asks what the
// connection's public IPv4 address is, and when it changed since the last
// success, PATCHes each of the stack's records (by record id) through
// Cloudflare's API with a token limited to DNS edits of the zone. The token
// lives in a 0400 root file and reaches curl through stdin, never the command
// line. The records are still created and deleted by Pulumi; only their
// address belongs to the job (Pulumi ignores changes to it).
import { createHash } from "node:crypto";
import { containerPrefix, cronFilePath, publicHostNames, shellQuote } from "../server/render.js";
import { normalCron } from "../../stacks/config/cron.js";

export type RecordRole = "api" | "metabase";

export interface PlannedRecord {
  role: RecordRole;
  name: string;
}

/** The stack's public records: the API, and Metabase where it runs. */
export function stackRecords(domains: { api: string; metabase?: string | undefined }, metabaseEnabled: boolean): PlannedRecord[] {
  const hosts = publicHostNames({ domains, metabase: { enabled: metabaseEnabled } });
  const records: PlannedRecord[] = [{ role: "api", name: hosts.api }];
  if (hosts.metabase) records.push({ role: "metabase", name: hosts.metabase });
  return records;
}

/** Where the DDNS job keeps its files on the server. */
export function ddnsPaths(service: string, stack: string, stackDir: string, secretsDir: string) {
  return {
    script: `${stackDir}/bin/ddns.sh`,
    tokenFile: `${secretsDir}/ddns/api_token`,
    /** The address the records were last set to, and which records (ddnsRecordsKey), so an unchanged address costs no API call. */
    stateFile: `${stackDir}/ddns/last-ip`,
    cronFile: cronFilePath(service, stack, "ddns"),
    logTag: `${containerPrefix(service, stack)}-ddns`,
  };
}

export interface DdnsScriptSpec {
  stack: string;
  zoneId: string;
  /** Cloudflare's ids of the records to keep current. */
  recordIds: readonly string[];
  /** What Pulumi writes to the records when it creates or updates them (its address is the stack file's, not the job's). */
  written: RecordsAsWritten;
  /** Where the script itself is installed (for the run-by-hand line of its header). */
  scriptPath: string;
  tokenFile: string;
  stateFile: string;
  /** Cloudflare's API; a stand-in on loopback in tests. */
  apiUrl?: string;
  /** Answers with a line `ip=<address>` (Cloudflare's trace endpoint); a stand-in in tests. */
  ipUrl?: string;
}

export interface RecordsAsWritten {
  content: string;
  proxied: boolean;
}

/**
 * Which records, as Pulumi last wrote them, the job's state file vouches
 * for. A record Pulumi creates or replaces (Metabase turned on) or updates
 * (proxied turned off) carries the stack file's address, not the job's; the
 * key then changes with the rendered script, and the next run sets every
 * record again even though the home address did not move.
 */
export function ddnsRecordsKey(recordIds: readonly string[], written: RecordsAsWritten): string {
  return createHash("sha256").update(JSON.stringify([recordIds, written.content, written.proxied])).digest("hex").slice(0, 16);
}

export const CLOUDFLARE_API = "https://api.cloudflare.com/client/v4";
/** Cloudflare's trace endpoint, reached by address so a broken resolver cannot stop the job. */
export const PUBLIC_IP_URL = "https://1.1.1.1/cdn-cgi/trace";

/** The DDNS script; shellcheck-clean, idempotent, quiet when nothing changed. */
export function ddnsScript(spec: DdnsScriptSpec): string {
  if (!/^[0-9a-zA-Z-]+$/.test(spec.zoneId)) throw new Error(`DDNS of stack ${spec.stack}: zone id "${spec.zoneId}" is not a Cloudflare id`);
  if (spec.recordIds.length === 0) throw new Error(`DDNS of stack ${spec.stack}: no record to keep current`);
  for (const id of spec.recordIds) if (!/^[0-9a-zA-Z-]+$/.test(id)) throw new Error(`DDNS of stack ${spec.stack}: record id "${id}" is not a Cloudflare id`);
  return `#!/bin/sh
# Rendered by infra/dns/render.ts for stack ${spec.stack}: points the stack's DNS
# records at this connection's current public IPv4 address. Run by cron; by
# hand: sudo ${spec.scriptPath}. Remove ${spec.stateFile} to force an update.
set -eu
api=${shellQuote(spec.apiUrl ?? CLOUDFLARE_API)}
ip_url=${shellQuote(spec.ipUrl ?? PUBLIC_IP_URL)}
zone=${shellQuote(spec.zoneId)}
token_file=${shellQuote(spec.tokenFile)}
state_file=${shellQuote(spec.stateFile)}
# The records as Pulumi last wrote them: the state file vouches only for these.
records_key=${ddnsRecordsKey(spec.recordIds, spec.written)}
fail() { printf 'ddns of stack %s: %s\\n' ${shellQuote(spec.stack)} "$*" >&2; exit 1; }

# Four dot-separated numbers of at most 255, and nothing else (one line, no spaces).
is_ipv4() {
  case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
  old_ifs=$IFS
  IFS=.
  # Split on the dots; the case above left nothing a glob could expand.
  # shellcheck disable=SC2086
  set -- $1
  IFS=$old_ifs
  [ $# -eq 4 ] || return 1
  for octet in "$@"; do
    [ \${#octet} -le 3 ] && [ "$octet" -le 255 ] || return 1
  done
}

trace=$(curl -fsS --max-time 10 "$ip_url") || fail "cannot ask $ip_url for the public address"
current=$(printf '%s\\n' "$trace" | sed -n 's/^ip=//p')
if ! is_ipv4 "$current"; then
  fail "$ip_url did not answer an IPv4 address (got \\"$current\\"); records unchanged"
fi
last=$(cat "$state_file" 2>/dev/null || true)
if [ "$current $records_key" = "$last" ]; then exit 0; fi

[ -r "$token_file" ] || fail "cannot read the API token $token_file"
token=$(cat "$token_file")
for record in ${spec.recordIds.map(shellQuote).join(" ")}; do
  # The token goes to curl on stdin (printf is a shell builtin): never on a command line others can list.
  if ! response=$(printf 'header = "Authorization: Bearer %s"\\n' "$token" | curl -sS --max-time 15 --config - -X PATCH \\
    -H 'Content-Type: application/json' --data "{\\"content\\":\\"$current\\"}" "$api/zones/$zone/dns_records/$record"); then
    fail "cannot reach $api to update record $record; will retry on the next run"
  fi
  case "$response" in
    *'"success":true'*) ;;
    *) fail "Cloudflare refused to update record $record to $current: $response" ;;
  esac
done
mkdir -p "$(dirname "$state_file")"
printf '%s %s\\n' "$current" "$records_key" > "$state_file.tmp"
mv -f "$state_file.tmp" "$state_file"
was=\${last%% *}
if [ "$was" = "$current" ]; then why="the address is the same; Pulumi wrote the records since"; else why="were \${was:-unknown}"; fi
echo "ddns of stack ${spec.stack}: records now point at $current ($why)"
`;
}

/**
 * The stack's file in /etc/cron.d: the job as root (it reads a root-only
 * token), output to syslog. The schedule is written in its one-line form, so
 * no value can break the file (cron would ignore all of it).
 */
export function ddnsCronFile(schedule: string, scriptPath: string, logTag: string): string {
  return `# Rendered by infra/dns/render.ts: keeps this stack's DNS records at the home connection's address.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${normalCron(schedule)} root ${scriptPath} 2>&1 | logger -t ${logTag}
`;
}
