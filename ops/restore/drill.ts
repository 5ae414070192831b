// The restore drill on demand: the drill script Pulumi installed on the
// server, run through a Shell (`ssh` in production, a local shell in tests,
// the same code either way), its output streamed as it comes, its exit
// status returned. The script itself restores, compares and pings.
import type { Writable } from "node:stream";
import { asRootCommand, shellQuote, type Privilege } from "../../infra/server/render.js";
import type { Shell } from "../deploy/server.js";

export interface DrillRequest {
  shell: Shell;
  /** The drill script's path where the shell runs, e.g. /srv/bbaegok/prod/backup/restore-drill.sh. */
  script: string;
  /** "sudo" on the server: the script reads root's 0600 credentials and runs Docker. */
  privilege: Privilege;
  /** Only this database of the stack; every one when undefined. */
  database?: string;
  stdout: Writable;
  stderr: Writable;
}

/** The exit status ssh gives when it could not connect or authenticate. */
export const SSH_FAILED = 255;

/** The command line the shell runs: the script (as root through the install helper when asked), with its options quoted. */
export function drillCommand(script: string, privilege: Privilege, database?: string): string {
  const options = database ? ["--database", database] : [];
  if (privilege === "sudo") return asRootCommand("run", script, ...options);
  return [script, ...options].map(shellQuote).join(" ");
}

/** Runs the drill to its end, streaming its output; resolves with its exit status. */
export function runDrill(request: DrillRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = request.shell.start(drillCommand(request.script, request.privilege, request.database));
    child.stdin.end();
    child.stdout.pipe(request.stdout, { end: false });
    child.stderr.pipe(request.stderr, { end: false });
    child.once("error", reject);
    child.once("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** One line saying what the drill's exit status means. */
export function drillOutcome(status: number, where: string, stack: string): string {
  switch (status) {
    case 0:
      return `Restore drill of ${stack} passed on ${where}: the newest backups restored and matched their manifests.`;
    case 1:
      return `Restore drill of ${stack} FAILED on ${where} (see the lines above; the ping check was told).`;
    case 2:
      return `Restore drill of ${stack} did not run: the script refused its arguments (above).`;
    case 3:
      return `Restore drill of ${stack} could not run on ${where}: a tool or its credentials are missing there (above).`;
    case 75:
      return `Restore drill of ${stack} refused: another drill is running on ${where}.`;
    case SSH_FAILED:
      return `Restore drill of ${stack} did not run: ssh could not reach ${where} (BatchMode: is your key in the SSH agent and the host key known?).`;
    default:
      return `Restore drill of ${stack} ended with status ${status} on ${where}.`;
  }
}
