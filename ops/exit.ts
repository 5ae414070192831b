// The exit statuses every command of this repository shares (README, "Exit
// statuses"). One meaning per number, so a script or CI job can act on them
// without knowing which command ran: 2 is always "fix the command line or the
// stack file", never a result.
import { StackFileError } from "../stacks/config/files.js";
import { StackConfigError } from "../stacks/config/validate.js";

export const EXIT = {
  /** Done; for a check, everything is as it should be. */
  ok: 0,
  /** The operation failed, or the check found a problem (a stale backup, drift, a failed drill). */
  failed: 1,
  /** Bad input: the command line, an unknown stack or an invalid stack file. Nothing was done. */
  usage: 2,
  /** A check could not run (S3 or the engine unreachable, a tool missing): nothing is known either way. */
  unknown: 3,
} as const;

/** The stack's file is missing or invalid: the operator's input, so EXIT.usage. */
export function isStackFileProblem(err: unknown): err is StackFileError | StackConfigError {
  return err instanceof StackFileError || err instanceof StackConfigError;
}

/**
 * Reads a command's stack file. Its config, or, said on `errors`, the status
 * to exit with: EXIT.usage for the stack file (the operator's input),
 * EXIT.failed for anything else.
 */
export function readStackOrExit<T>(command: string, read: () => T, errors: { line(text: string): void }): { config: T } | { exit: number } {
  try {
    return { config: read() };
  } catch (err) {
    errors.line(`${command}: ${(err as Error).message}`);
    return { exit: isStackFileProblem(err) ? EXIT.usage : EXIT.failed };
  }
}

/**
 * Runs a command's main and exits with the status it returns. An error it did
 * not expect is printed with its stack and exits `crash`: EXIT.failed for an
 * operation, EXIT.unknown for a check (a crash finds no problem, it finds nothing).
 */
export function runCommand(name: string, main: () => Promise<number>, crash: number = EXIT.failed): void {
  main().then(exitAfterOutput, (err: unknown) => {
    process.stderr.write(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    exitAfterOutput(crash);
  });
}

/**
 * Exits once what was written to stdout and stderr has left the process: into
 * a pipe Node writes asynchronously, and a bare process.exit cut `npm run plan
 * -- --json | jq` off after the pipe's first 64 KiB. An empty write's callback
 * runs after every earlier write of that stream.
 */
export function exitAfterOutput(code: number): void {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
