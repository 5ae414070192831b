// The stack's own outputs from its last run: which slot serves and what each
// runs (the rollout starts from there), and what recreates the database (its
// planned downtime is said before it happens).
//
// Read with the engine's built-in `readStackOutputs` invoke rather than a
// StackReference resource, because an invoke can be retried: on a local file
// backend the engine writes the stack's checkpoint while this run reads it,
// and the file backend's reader can see the file change under it ("failed to
// load checkpoint: EOF", gocloud fileblob stats, then opens). Any other error
// is not retried.
import * as pulumi from "@pulumi/pulumi";

const READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs";
const ATTEMPTS = 8;

/** The outputs a run reads back (what this program exports under these names). */
export interface LastRun {
  appSlots?: unknown;
  databaseRuntime?: unknown;
}

async function read(name: string): Promise<LastRun> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = (await pulumi.runtime.invoke(READ_STACK_OUTPUTS, { name })) as { outputs?: LastRun };
      return result.outputs ?? {};
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (attempt >= ATTEMPTS || !/failed to load checkpoint/.test(message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

/** The outputs `stack` of this project exported on its last successful run (none before the first). */
export function lastRunOutputs(stack: string): pulumi.Output<LastRun> {
  return pulumi.output(read(`${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`));
}
