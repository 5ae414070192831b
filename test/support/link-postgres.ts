// Real PostgreSQL on the two servers of test/support/link-harness.ts: each
// process in its server's network namespace as the database's OS user (the
// server refuses root), in a process group of its own, so that stopping it
// also stops what it started (the replica entrypoint's pg_basebackup).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { postgresReplicaEntrypoint, primaryReplicationFlags, replicaServerFlags } from "../../infra/replica/render.js";
import { LINK, type LinkedServers, type Side } from "./link-harness.js";
import { POSTGRES_OS_USER, postgresBinDir, uidOf } from "./postgres.js";
import { requireCommand, waitFor } from "./system.js";

/** A process started in a namespace: its stderr so far, and its exit. */
export interface NsProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  log(): string;
}

export interface LinkedPostgres {
  binDir: string;
  /** psql as postgres through a server's socket folder (the port all servers here share), statements on stdin. */
  sql(socket: string, statements: string, database: string): SpawnSyncReturns<string>;
  /** The same, failing the test unless it succeeds; its output, trimmed. */
  must(socket: string, statements: string, database: string): string;
  /** Folders made 0700 and owned by the database's OS user. */
  ownedFolders(...paths: string[]): void;
  /** Runs argv on that server as the database's OS user (PATH leads to PostgreSQL's programs). */
  start(side: Side, argv: string[], env?: Record<string, string>): NsProcess;
  /**
   * A primary on the primary's server: initdb into `data`, any address let in
   * with a password (as the official image leaves it: the port is only ever
   * on a link address), listening on its link address only (what the
   * program's port binding makes of its container), with the program's
   * replication flags; resolves once it answers.
   */
  startPrimary(options: { data: string; socket: string }): Promise<NsProcess>;
  /**
   * A standby on the replica's server, as its container runs it: the
   * rendered entrypoint (its base backup of the primary over the link) then
   * the server with the program's replica flags, listening on its link
   * address only (what the program's port binding makes of its container);
   * the password files in `secretsDir`. Resolves once it answers.
   */
  startStandby(options: { dir: string; data: string; socket: string; secretsDir: string }): Promise<NsProcess>;
  /** Stops every process started (SIGINT, then SIGKILL), each with its group. */
  stop(): Promise<void>;
}

/** Every server listens on `port` (each on its own address); `cwd`, the test's folder, is opened to the database's OS user. */
export function linkedPostgres(link: LinkedServers, cwd: string, port: number): LinkedPostgres {
  requireCommand("setpriv", "util-linux");
  chmodSync(cwd, 0o755);
  const { uid, gid } = uidOf(POSTGRES_OS_USER);
  const binDir = postgresBinDir();
  const psql = requireCommand("psql", "postgresql-client");
  const sql = (socket: string, statements: string, database: string) =>
    spawnSync(psql, ["-h", socket, "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"], { input: statements, encoding: "utf8" });
  const started: ChildProcess[] = [];
  const ownedFolders = (...paths: string[]) => {
    for (const path of paths) {
      mkdirSync(path, { mode: 0o700 });
      chownSync(path, uid, gid);
    }
  };
  const start = (side: Side, argv: string[], env: Record<string, string> = {}): NsProcess => {
    const child = spawn("ip", [...link.inNs(side, "setpriv"), `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", ...argv], {
      env: { PATH: `${binDir}:/usr/bin:/bin`, ...env },
      stdio: ["ignore", "ignore", "pipe"],
      cwd,
      detached: true,
    });
    let log = "";
    child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    started.push(child);
    return { child, exited, log: () => log };
  };
  return {
    binDir,
    sql,
    must(socket, statements, database) {
      const r = sql(socket, statements, database);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    },
    ownedFolders,
    start,
    async startPrimary({ data, socket }) {
      ownedFolders(data, socket);
      const init = spawnSync(join(binDir, "initdb"), ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"], { uid, gid, cwd, encoding: "utf8" });
      if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
      writeFileSync(join(data, "pg_hba.conf"), `${readFileSync(join(data, "pg_hba.conf"), "utf8")}host all all all scram-sha-256\n`);
      const primary = start("primary", [join(binDir, "postgres"), "-D", data, "-p", String(port), "-k", socket, "-c", `listen_addresses=${LINK.primary}`, "-c", "fsync=off", ...primaryReplicationFlags("postgres")]);
      await waitFor("the primary to accept connections", () => sql(socket, "SELECT 1", "postgres").status === 0, 60_000, 200).catch((err: Error) => {
        throw new Error(`${err.message}\n${primary.log().slice(-2000)}`);
      });
      return primary;
    },
    async startStandby({ dir, data, socket, secretsDir }) {
      ownedFolders(data, socket);
      const spec = { engine: "postgres" as const, memoryMb: 1024, primaryHost: LINK.primary, primaryPort: port, secretsDir, slot: "replica_1" };
      const entrypoint = join(dir, "replica-entrypoint.sh");
      writeFileSync(entrypoint, postgresReplicaEntrypoint(spec), { mode: 0o755 });
      const standby = start("replica", [entrypoint, join(binDir, "postgres"), "-D", data, "-p", String(port), "-k", socket, "-c", `listen_addresses=${LINK.replica}`, "-c", "fsync=off", ...replicaServerFlags(spec)], { PGDATA: data });
      await waitFor("the standby to accept connections", () => sql(socket, "SELECT 1", "postgres").status === 0, 90_000, 300).catch((err: Error) => {
        throw new Error(`${err.message}\n${standby.log().slice(-3000)}`);
      });
      return standby;
    },
    async stop() {
      const signal = (sig: NodeJS.Signals) => {
        for (const child of started) if (child.pid) spawnSync("kill", [`-${sig}`, "--", `-${child.pid}`]);
      };
      signal("SIGINT");
      await new Promise((r) => setTimeout(r, 2000));
      signal("SIGKILL");
    },
  };
}
