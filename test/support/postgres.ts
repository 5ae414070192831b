// A real PostgreSQL server for one test file. PostgreSQL refuses to run as
// root, so it runs as an unprivileged OS user created for the tests.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, requireCommand, tempDir, waitFor } from "./system.js";

export const POSTGRES_OS_USER = "bbaegok-pgtest";

export interface Postgres {
  port: number;
  /** Host of the unix socket directory. */
  socketDir: string;
  binDir: string;
  /** Runs SQL as the superuser `postgres`; returns stdout, throws with stderr on failure. */
  sql(statements: string, database?: string): string;
  /** Runs SQL as `user` with `password` over TCP; never throws. */
  sqlAs(user: string, password: string, statements: string, database: string): { status: number; stdout: string; stderr: string };
  /** What the server logged so far (its stderr, as `docker logs` shows the image's). */
  log(): string;
  stop(): Promise<void>;
}

/** The directory of PostgreSQL's server binaries (Debian keeps them per major version). */
export function postgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "postgres"))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) requireCommand("postgres", "postgresql", ["/usr/lib/postgresql/15/bin"]);
  return join(root, versions[0] ?? "15", "bin");
}

/** The uid and gid of an OS user, created (a system user) when missing. */
export function uidOf(user: string): { uid: number; gid: number } {
  if (spawnSync("id", ["-u", user]).status !== 0) {
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]);
  }
  return { uid: Number(execFileSync("id", ["-u", user], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", user], { encoding: "utf8" })) };
}

/** `args`: more server flags (`-c name=value`, e.g. a replication test's). */
export async function startPostgres(args: readonly string[] = []): Promise<Postgres> {
  const binDir = postgresBinDir();
  const psql = requireCommand("psql", "postgresql-client");
  const { uid, gid } = uidOf(POSTGRES_OS_USER);
  const dir = tempDir("postgres");
  // The temp dir is root's; the server's user must be able to reach its data.
  chmodSync(dir.path, 0o755);
  const data = join(dir.path, "data");
  mkdirSync(data);
  chownSync(data, uid, gid);
  chownSync(dir.path, uid, gid);
  const port = await freePort();
  // Started as the unprivileged user directly (not through runuser), so signals reach the server itself.
  const asUser = (bin: string, args: string[]) => spawnSync(join(binDir, bin), args, { encoding: "utf8", uid, gid, cwd: dir.path });
  const init = asUser("initdb", ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const child: ChildProcess = spawn(
    join(binDir, "postgres"),
    ["-D", data, "-p", String(port), "-k", dir.path, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=32MB", ...args],
    { stdio: ["ignore", "ignore", "pipe"], uid, gid, cwd: dir.path },
  );
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const local = (statements: string, database = "postgres") =>
    spawnSync(psql, ["-h", dir.path, "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"], { input: statements, encoding: "utf8" });

  const pg: Postgres = {
    port,
    socketDir: dir.path,
    binDir,
    sql(statements, database) {
      const result = local(statements, database);
      if (result.status !== 0) throw new Error(`SQL failed: ${result.stderr}`);
      return result.stdout;
    },
    sqlAs(user, password, statements, database) {
      const result = spawnSync(psql, ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"], {
        input: statements,
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: password },
      });
      return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
    },
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        // SIGINT: PostgreSQL's fast shutdown.
        child.kill("SIGINT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      dir.remove();
    },
  };
  try {
    await waitFor("PostgreSQL to accept connections", () => local("SELECT 1").status === 0, 60_000, 200);
  } catch (err) {
    await pg.stop();
    throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`);
  }
  return pg;
}
