// The prod stack's backups under mocks: bucket settings from Pulumi.prod.yaml,
// least-privilege identities, secrets kept secret, a valid cron file.
import { checkStackBackups } from "../support/backup-stack.js";

checkStackBackups("prod");
