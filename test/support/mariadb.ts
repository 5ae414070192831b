// A real MariaDB server for one test file: its own data dir, socket and port on
// 127.0.0.1, started fresh and stopped at the end.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, requireCommand, tempDir, waitFor } from "./system.js";

export interface MariaDb {
  port: number;
  socket: string;
  /** Runs SQL as root (over the socket); returns stdout, throws with stderr on failure. */
  sql(statements: string, database?: string): string;
  /** Runs SQL as `user` over TCP; returns the exit status and output, never throws. */
  sqlAs(user: string, password: string, statements: string, database?: string): { status: number; stdout: string; stderr: string };
  /** Stops the server and starts it again on the same data, socket and port with `args` instead (a container replaced, its volume kept); after crash(), starts it again (InnoDB recovers). */
  restart(args: readonly string[]): Promise<void>;
  /** Kills the server with SIGKILL (a crash, a power cut): its clients' connections are closed by the kernel, mid-whatever. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `args`: more server flags (a replication test's binary log, server id; a
 * later --bind-address wins). `netns`: the server, and sqlAs's client, run in
 * that network namespace (another server in a link test); sql reaches it by
 * its socket, which a namespace does not hide. `optionFile`: the one option
 * file the server reads (a replica's rendered role, as its container's
 * conf.d has it), at every start: a restart reads what it says then;
 * otherwise none.
 */
export async function startMariaDb(args: readonly string[] = [], { netns, optionFile }: { netns?: string; optionFile?: string } = {}): Promise<MariaDb> {
  const server = requireCommand("mariadbd", "mariadb-server", ["/usr/sbin"]);
  const installDb = requireCommand("mariadb-install-db", "mariadb-server");
  const client = requireCommand("mariadb", "mariadb-client");
  const dir = tempDir("mariadb");
  const data = join(dir.path, "data");
  const socket = join(dir.path, "mysqld.sock");
  const port = await freePort();
  // Each server's temporary tables in its own folder, not the shared /tmp: a CI run once saw the bootstrap's
  // '/tmp/#sql-temptable-…' vanish under it (ENOENT on its delete), failing a suite's setup.
  const scratch = join(dir.path, "tmp");
  mkdirSync(scratch);
  const install = spawnSync(installDb, ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db", `--tmpdir=${scratch}`], { encoding: "utf8" });
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stderr}`);
  const inNetns = (argv: string[]) => (netns ? ["ip", "netns", "exec", netns, ...argv] : argv);
  let log = "";
  let child: ChildProcess;
  let exited: Promise<void>;
  const launch = (extra: readonly string[]) => {
    const serverArgv = inNetns([
      server,
      optionFile ? `--defaults-file=${optionFile}` : "--no-defaults", `--datadir=${data}`, `--socket=${socket}`, `--port=${port}`, "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci", `--pid-file=${join(dir.path, "pid")}`, `--tmpdir=${scratch}`, "--innodb-buffer-pool-size=64M", ...extra]);
    // ip netns exec execs the server: the child is mariadbd itself, as without a namespace.
    child = spawn(serverArgv[0]!, serverArgv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  };
  const halt = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  };
  const accepting = async () => {
    try {
      await waitFor("MariaDB to accept connections", () => run(["--no-defaults", `--socket=${socket}`, "-uroot", "-e", "SELECT 1"], "").status === 0, 60_000, 200);
    } catch (err) {
      await db.stop();
      throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`);
    }
  };
  launch(args);

  const run = (args: string[], input: string) => spawnSync(client, args, { input, encoding: "utf8" });
  const db: MariaDb = {
    port,
    socket,
    sql(statements, database) {
      const result = run(["--no-defaults", "--default-character-set=utf8mb4", `--socket=${socket}`, "-uroot", "--batch", "--skip-column-names", ...(database ? [database] : [])], statements);
      if (result.status !== 0) throw new Error(`SQL failed: ${result.stderr}`);
      return result.stdout;
    },
    sqlAs(user, password, statements, database) {
      const argv = inNetns([client, "--no-defaults", "--default-character-set=utf8mb4", "-h127.0.0.1", `-P${port}`, `-u${user}`, "--batch", "--skip-column-names", ...(database ? [database] : [])]);
      const result = spawnSync(argv[0]!, argv.slice(1), {
        input: statements,
        encoding: "utf8",
        env: { ...process.env, MYSQL_PWD: password },
      });
      return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
    },
    async restart(newArgs) {
      await halt();
      if (child.exitCode !== 0 && child.signalCode !== "SIGKILL") throw new Error(`MariaDB did not stop cleanly (exit ${child.exitCode}):\n${log.slice(-2000)}`);
      launch(newArgs);
      await accepting();
    },
    async crash() {
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      await halt();
      dir.remove();
    },
  };
  await accepting();
  return db;
}
