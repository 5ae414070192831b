// What the replica tests share: the real replica script rendered for a
// stack with a replica, pointed at two local servers (the primary and the
// replica) through a stand-in for `docker exec <container>`.
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { replicaScript, type ReplicaScriptSpec } from "../../infra/replica/render.js";
import { shellQuote } from "../../infra/server/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { runScript, type ScriptRun } from "./backup-harness.js";

export const PRIMARY_CONTAINER = "bbaegok-prod-db";
export const REPLICA_CONTAINER = "bbaegok-prod-db-replica";

/** How a client reaches each local server: MYSQL_UNIX_PORT, or PGHOST/PGPORT/PGDATA, by container name. */
export type ContainerEnvs = Record<string, Record<string, string>>;

/**
 * Stands in for `docker exec <container>`: runs the command with that
 * container's local server environment. Debian's client configuration names
 * the system socket, which beats MYSQL_UNIX_PORT: the socket goes right after
 * the first MariaDB program named.
 */
export function writeReplicaExecHook(dir: string, envs: ContainerEnvs): string {
  const path = join(dir, "replica-exec");
  const cases = Object.entries(envs)
    .map(([container, env]) => `  ${shellQuote(container)}) ${Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`).join("; ")} ;;`)
    .join("\n");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
# Test stand-in for docker exec: $1 is the container, the rest the command.
container=$1
shift
case $container in
${cases}
  *) echo "no such container: $container" >&2; exit 1 ;;
esac
if [[ -n \${MYSQL_UNIX_PORT:-} ]]; then
  args=() added=false
  for word in "$@"; do
    args+=("$word")
    if [[ $added == false && ( $word == mariadb || $word == mariadb-dump ) ]]; then args+=(--socket="$MYSQL_UNIX_PORT"); added=true; fi
  done
  set -- "\${args[@]}"
fi
exec "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** A generated password as the program makes them: letters and digits. */
export function generatedPassword(): string {
  return randomBytes(24).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
}

/** The database config of a stack with one replica. */
export function replicatedDatabase(engine: StackConfig["database"]["engine"], maxLagSeconds = 300): StackConfig["database"] {
  return { engine, version: engine === "postgres" ? "16.6" : "11.4.4", name: "bbaegok", user: "bbaegok", memoryMb: 1024, replicas: [{ maxLagSeconds }] };
}

/** Writes the rendered replica script into `dir`. */
export function renderReplicaScript(dir: string, spec: Omit<ReplicaScriptSpec, "stack" | "service" | "primaryContainer" | "replicaContainer" | "slot">): string {
  const path = join(dir, "replica.sh");
  writeFileSync(path, replicaScript({ stack: "prod", service: "bbaegok", primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: "replica_1", ...spec }), { mode: 0o755 });
  return path;
}

/** What `replica.sh status` prints. */
export interface ReplicationState {
  healthy: boolean;
  lagSeconds: number | null;
  behind: number;
  unit: "transactions" | "bytes";
  primaryPosition: string;
  replicaPosition: string;
  reason?: string;
}

/** Runs `replica.sh status` and reads its JSON; fails the test when it does not run. */
export async function replicaStatus(script: string, env: Record<string, string>): Promise<ReplicationState> {
  const run = await runReplica(script, env, "status");
  if (run.status !== 0) throw new Error(`replica.sh status failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout) as ReplicationState;
}

/** The environment of the replica script in a test: the exec hook and where the password files are. */
export function replicaEnv(dir: string, envs: ContainerEnvs): Record<string, string> {
  return { REPLICA_DB_EXEC: writeReplicaExecHook(dir, envs), REPLICA_SECRETS_DIR: dir, REPLICA_WAIT_SECONDS: "60" };
}

/** Runs `replica.sh <command>` with the test's environment. */
export function runReplica(script: string, env: Record<string, string>, command: string): Promise<ScriptRun> {
  return runScript(script, env, [command]);
}
