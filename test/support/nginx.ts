// A real nginx for one test file: its own prefix, config and runtime dirs,
// ports on 127.0.0.1; stopped at the end.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { requireCommand, waitFor } from "./system.js";

export interface Nginx {
  /** `nginx -t` on the current files: status and nginx's own message. */
  test(): { ok: boolean; output: string };
  /** Graceful reload (new workers; old ones finish their requests). */
  reload(): void;
  stop(): Promise<void>;
}

export function nginxBinary(): string {
  return requireCommand("nginx", "nginx", ["/usr/sbin"]);
}

export async function startNginx(confFile: string, runtimeDir: string, httpPort: number): Promise<Nginx> {
  const bin = nginxBinary();
  mkdirSync(runtimeDir, { recursive: true });
  const base = ["-p", runtimeDir, "-e", join(runtimeDir, "error.log"), "-c", confFile];
  const run = (extra: string[]) => spawnSync(bin, [...base, ...extra], { encoding: "utf8" });
  const check = run(["-t"]);
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const child: ChildProcess = spawn(bin, [...base, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const { connect } = await import("node:net");
  await waitFor(
    `nginx to listen on ${httpPort}`,
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(httpPort, "127.0.0.1", () => {
          socket.destroy();
          resolve(true);
        });
        socket.on("error", () => resolve(false));
      }),
    15_000,
  ).catch((err: Error) => {
    child.kill("SIGKILL");
    throw new Error(`${err.message}\n${log}`);
  });
  return {
    test() {
      const result = run(["-t"]);
      return { ok: result.status === 0, output: result.stderr };
    },
    reload() {
      const result = run(["-s", "reload"]);
      if (result.status !== 0) throw new Error(`nginx reload failed: ${result.stderr}`);
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGQUIT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    },
  };
}
