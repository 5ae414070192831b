// Shared by the tests that run real parts (nginx, MariaDB, PostgreSQL, S3):
// a missing tool fails the test loudly with what to install, never skips.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What installs the tests' tools; the benches' own peers say their own way (`install`). */
const TEST_DEPS = "bash scripts/install-test-deps.sh";

/** The absolute path of `command`, or an error naming the Debian package to install and how. */
export function requireCommand(command: string, debianPackage: string, extraDirs: string[] = [], install = TEST_DEPS): string {
  const path = [...extraDirs, ...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin"].join(":");
  try {
    return execFileSync("sh", ["-c", `command -v ${command}`], { env: { ...process.env, PATH: path }, encoding: "utf8" }).trim();
  } catch {
    throw new Error(`${command} is required here but is not installed. Run: ${install} (Debian package: ${debianPackage})`);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (typeof address !== "object" || address === null) return reject(new Error("no port"));
      server.close(() => resolve(address.port));
    });
  });
}

/** A fresh temporary directory and its removal. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `check` until it returns true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
