// The Metabase container's entrypoint (infra/metabase/render.ts), run by the
// shells it meets: busybox's ash (the metabase/metabase image is Alpine-based)
// and Debian's dash. Its secrets' directory and the image's own entrypoint are
// moved into a test directory; nothing else of the script changes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { METABASE_SECRETS_MOUNT, metabaseEntrypoint } from "../../infra/metabase/render.js";
import { requireCommand, tempDir } from "../support/system.js";

const SHELLS = [
  ["busybox ash", requireCommand("busybox", "busybox-static"), ["sh"]],
  ["dash", "/bin/dash", []],
] as const;

describe("the Metabase entrypoint, run by busybox's ash and by dash", () => {
  const dir = tempDir("metabase-entrypoint");
  const secrets = join(dir.path, "secrets");
  const image = join(dir.path, "run_metabase.sh");
  // The image's entrypoint, stood in: says what it was given.
  writeFileSync(image, '#!/bin/sh\nprintf "started with MB_DB_PASS=%s MB_ENCRYPTION_SECRET_KEY=%s\\n" "$MB_DB_PASS" "$MB_ENCRYPTION_SECRET_KEY"\n', { mode: 0o755 });
  after(() => dir.remove());

  const [, , script] = metabaseEntrypoint();
  const moved = script!.replaceAll(METABASE_SECRETS_MOUNT, secrets).replace("exec /app/run_metabase.sh", `exec ${image}`);
  const secretsAre = (files: Record<string, string>) => {
    rmSync(secrets, { recursive: true, force: true });
    mkdirSync(secrets);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(secrets, name), text, { mode: 0o400 });
  };

  for (const [name, shell, args] of SHELLS) {
    const run = () => spawnSync(shell, [...args, "-c", moved], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });

    it(`${name}: exports both secrets from their files and runs the image's entrypoint`, () => {
      secretsAre({ app_db_password: "MetabaseDbPassw0rd\n", encryption_key: "0123456789abcdef0123456789abcdef\n" });
      const r = run();
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, "started with MB_DB_PASS=MetabaseDbPassw0rd MB_ENCRYPTION_SECRET_KEY=0123456789abcdef0123456789abcdef\n");
    });

    it(`${name}: a missing or empty secret file stops it, naming the file, before Metabase starts`, () => {
      for (const [what, files, missing] of [
        ["no encryption key", { app_db_password: "p\n" }, "encryption_key"],
        ["an empty encryption key", { app_db_password: "p\n", encryption_key: "\n" }, "encryption_key"],
        ["no database password", { encryption_key: "k\n" }, "app_db_password"],
      ] as const) {
        secretsAre(files);
        const r = run();
        assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
        assert.equal(r.stdout, "", `${what}: Metabase was started`);
        assert.match(r.stderr, new RegExp(`metabase: cannot read ${secrets}/${missing}, or it is empty: not starting`), what);
      }
    });
  }
});
