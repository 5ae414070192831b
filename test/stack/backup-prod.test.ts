// The prod stack's backups under mocks: bucket settings from Pulumi.prod.yaml,
// least-privilege identities, secrets kept secret, a valid cron file.
import assert from "node:assert/strict";
import { it } from "node:test";
import { loadStack } from "../../stacks/config/load.js";
import { checkStackBackups } from "../support/backup-stack.js";
import { REPO } from "../support/project.js";

checkStackBackups("prod");

// The README's threat model rests on this: prod's backups are locked in
// compliance mode, which no AWS identity (root included) can shorten or lift,
// so a stolen admin key or CI deploy key cannot delete a recent backup. The
// plan check above makes the bucket follow the file; this keeps the file so.
it("locks prod's backups in compliance mode for at least 30 days", () => {
  const lock = loadStack("prod", REPO).config.backup.objectLock;
  assert.equal(lock.mode, "compliance");
  assert.ok(lock.days >= 30, `prod's Object Lock keeps backups ${lock.days} days`);
});
