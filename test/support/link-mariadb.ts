// Real MariaDB on the two servers of test/support/link-harness.ts, each in its
// server's network namespace and listening on its link address (the replica
// on loopback too, for its own server's checks, as docker exec would), with
// the program's flags and what the MariaDB image's entrypoint makes from its
// environment; and each server's own copy of the rendered replica.sh, its
// password files (as its containers see them, in `<dir>/<side>-server`) and
// its `docker exec` stand-in, which knows that server's container alone.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { primaryReplicationFlags, replicaServerFlags, type ReplicaScriptSpec } from "../../infra/replica/render.js";
import { LINK, linkedServers, type LinkedServers, type Side } from "./link-harness.js";
import { startMariaDb, type MariaDb } from "./mariadb.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, elsewherePasswords, type ContainerEnvs, renderReplicaScript, replicaEnv, replicatedDatabase, writeReplicaRole } from "./replica-harness.js";

/** What the MariaDB image's entrypoint creates on a new server from its environment: the database and the app's login. */
export function mariadbImageInit(database: string, password: string): string {
  return `CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '${database}'@'%' IDENTIFIED BY '${password}';
GRANT ALL ON ${database}.* TO '${database}'@'%';`;
}

export interface LinkedMariaDb {
  link: LinkedServers;
  primary: MariaDb;
  replica: MariaDb;
  /** Each server's copy of replica.sh, the folder of its password files, and its environment. */
  side: Record<Side, { script: string; dir: string; env: Record<string, string> }>;
  /** What each copy was rendered from (a test renders another, a promoted one, from it). */
  spec: Omit<ReplicaScriptSpec, "stack" | "service" | "primaryContainer" | "replicaContainer" | "slot">;
  stop(): Promise<void>;
}

/** Brings both servers and the link up; nothing is set up for replication yet (each copy's `setup` does that). */
export async function linkedMariaDb(dir: string, tag: string, database: string, appPassword: string): Promise<LinkedMariaDb> {
  chmodSync(dir, 0o755);
  const link = linkedServers(dir, tag);
  for (const s of ["primary", "replica"] as const) {
    const up = link.up(s);
    assert.equal(up.status, 0, up.stderr);
  }
  const replicaFlags = replicaServerFlags({ engine: "mariadb", memoryMb: 1024, primaryHost: LINK.primary, primaryPort: 0, secretsDir: dir, slot: "replica_1" });
  const started = await Promise.allSettled([
    startMariaDb([...primaryReplicationFlags("mariadb"), `--bind-address=${LINK.primary}`], { netns: link.ns.primary }),
    startMariaDb([...replicaFlags, `--bind-address=127.0.0.1,${LINK.replica}`], { netns: link.ns.replica, optionFile: writeReplicaRole(dir) }),
  ]);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    // Nothing left behind: the server that did start, and the namespaces.
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    link.remove();
    throw failed.reason;
  }
  const [primary, replica] = started.map((s) => (s as PromiseFulfilledResult<MariaDb>).value) as [MariaDb, MariaDb];
  const init = mariadbImageInit(database, appPassword);
  primary.sql(init);
  replica.sql(`SET SESSION sql_log_bin = 0; ${init}`);
  const passwords = elsewherePasswords();
  const spec = { database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryHost: LINK.primary, primaryPort: primary.port, replicaHost: LINK.replica, replicaPort: replica.port };
  const netns = { [PRIMARY_CONTAINER]: link.ns.primary, [REPLICA_CONTAINER]: link.ns.replica };
  const side = {} as LinkedMariaDb["side"];
  for (const s of ["primary", "replica"] as const) {
    const own = join(dir, `${s}-server`);
    mkdirSync(own, { mode: 0o700 });
    for (const [file, password] of Object.entries(passwords)) writeFileSync(join(own, file), `${password}\n`, { mode: 0o400 });
    const script = renderReplicaScript(own, { ...spec, thisServer: s });
    const container: ContainerEnvs = s === "primary" ? { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: primary.socket } } : { [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: replica.socket } };
    side[s] = { script, dir: own, env: replicaEnv(own, container, netns) };
  }
  return {
    link,
    primary,
    replica,
    side,
    spec,
    async stop() {
      await Promise.all([primary.stop(), replica.stop()]);
      link.remove();
    },
  };
}
