// moto's S3 server (PyPI moto[server], pinned in scripts/install-test-deps.sh
// and installed into .test-venv/ with Debian's python3) on 127.0.0.1, for the
// S3 tests (the only S3 stand-in since s3rver, which lacks all of these, left): conditional writes (If-None-Match: * on
// PutObject and CompleteMultipartUpload answers 412 when the key exists),
// AbortMultipartUpload and ListMultipartUploads, versions (ListObjectVersions,
// reads by version id), and Object Lock's refusal of an upload without a
// checksum. It checks no signature (any key pair passes) until
// `enforceIam()`: from then on every request is authenticated and authorized
// by moto's IAM (moto's /moto-api/reset-auth, its switch for
// INITIAL_NO_AUTH_ACTION_COUNT).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./project.js";
import { freePort, requireCommand, tempDir, waitFor } from "./system.js";

export const MOTO_SERVER = join(REPO, ".test-venv", "bin", "moto_server");
export const MOTO_REGION = "ap-northeast-2";

export interface MotoBucket {
  name: string;
  /** Object Lock with a default retention (GOVERNANCE, 1 day), as prod's bucket: S3 then refuses a PutObject without a checksum. */
  objectLock?: boolean;
  /** Versioning enabled (Object Lock implies it), as every backup bucket. */
  versioned?: boolean;
}

export interface MotoServer {
  endpoint: string;
  /** Environment for the AWS CLI or SDK as the operator: moto's key, no profile or config file. */
  operatorEnv(): NodeJS.ProcessEnv;
  /** Turns IAM enforcement on: every later request needs a key of an IAM user moto knows, and that user's policies' permission. */
  enforceIam(): Promise<void>;
  /** Debian's AWS CLI against this server (as the operator, or with `env` over that); never throws; `timeoutMs` (default 60 s) for a large object. */
  aws(args: string[], env?: NodeJS.ProcessEnv, options?: { timeoutMs?: number }): { status: number; stdout: string; stderr: string };
  /** Every key under `prefix`, sorted. */
  keys(bucket: string, prefix?: string): string[];
  get(bucket: string, key: string): Buffer;
  /** Removes every version and delete marker of `key`: as if it had never been written. */
  purge(bucket: string, key: string): void;
  /** HeadObject with the checksum asked for. */
  head(bucket: string, key: string): Record<string, unknown>;
  /** Keys of the multipart uploads begun and neither completed nor aborted (ListMultipartUploads). */
  pendingUploads(bucket: string): string[];
  /** A shared-credentials file (moto accepts any key) holding `secret`, so a test can look for it in output. */
  credentialsFile(secret: string): string;
  /** A shared-credentials file holding the given key pair (an IAM user's, once IAM is enforced). */
  credentialsFileFor(accessKeyId: string, secret: string): string;
  stop(): Promise<void>;
}

/** `host`: the address it listens on and is reached at (default 127.0.0.1; a test server in a namespace reaches this machine elsewhere). */
export async function startMoto(buckets: MotoBucket[], { host = "127.0.0.1" }: { host?: string } = {}): Promise<MotoServer> {
  if (!existsSync(MOTO_SERVER)) {
    throw new Error(`moto_server is required by this test but is not installed at ${MOTO_SERVER}. Run: bash scripts/install-test-deps.sh`);
  }
  const awsCli = requireCommand("aws", "awscli");
  const dir = tempDir("moto");
  const port = await freePort();
  // Through sh, which stops moto when this process closes its stdin or dies:
  // a crashed test never leaves the server running.
  const child: ChildProcess = spawn("sh", ["-c", '"$0" -H "$3" -p "$1" >"$2" 2>&1 & pid=$!; cat >/dev/null; kill "$pid"; wait "$pid"', MOTO_SERVER, String(port), join(dir.path, "moto.log"), host], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const endpoint = `http://${host}:${port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: "moto", AWS_SECRET_ACCESS_KEY: "moto", AWS_DEFAULT_REGION: MOTO_REGION, AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null" };
  delete env.AWS_PROFILE;
  const aws = (args: string[], extra: NodeJS.ProcessEnv = {}, { timeoutMs = 60_000 } = {}) => {
    const r = spawnSync(awsCli, ["--endpoint-url", endpoint, ...args], { env: { ...env, ...extra }, encoding: "utf8", timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
    // Killed at the timeout: no status, and nothing on stderr to say why.
    const killed = r.status === null ? `aws was stopped by ${r.signal ?? "a signal"}${r.error ? ` (${r.error.message})` : ""} after at most ${timeoutMs / 1000} s\n` : "";
    return { status: r.status ?? -1, stdout: r.stdout, stderr: `${r.stderr}${killed}` };
  };
  const must = (args: string[]) => {
    const r = aws(args);
    if (r.status !== 0) throw new Error(`aws ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
  };
  let files = 0;
  const server: MotoServer = {
    endpoint,
    operatorEnv: () => ({ ...env }),
    async enforceIam() {
      const answer = await fetch(`${endpoint}/moto-api/reset-auth`, { method: "POST", body: "0" });
      if (!answer.ok) throw new Error(`moto did not turn IAM enforcement on: ${answer.status} ${await answer.text()}`);
    },
    aws,
    keys(bucket, prefix = "") {
      const listed = must(["s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--output", "json"]) as { Contents?: { Key: string }[] };
      return (listed.Contents ?? []).map((c) => c.Key).sort();
    },
    get(bucket, key) {
      const r = spawnSync(awsCli, ["--endpoint-url", endpoint, "s3", "cp", `s3://${bucket}/${key}`, "-"], { env, maxBuffer: 1024 * 1024 * 1024, timeout: 60_000 });
      if (r.status !== 0) throw new Error(`reading s3://${bucket}/${key} failed: ${r.stderr.toString()}`);
      return r.stdout;
    },
    purge(bucket, key) {
      const listed = must(["s3api", "list-object-versions", "--bucket", bucket, "--prefix", key, "--output", "json"]) as { Versions?: { Key: string; VersionId: string }[]; DeleteMarkers?: { Key: string; VersionId: string }[] };
      for (const v of [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])].filter((v) => v.Key === key)) {
        must(["s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", v.VersionId]);
      }
    },
    head(bucket, key) {
      return must(["s3api", "head-object", "--bucket", bucket, "--key", key, "--checksum-mode", "ENABLED", "--output", "json"]);
    },
    pendingUploads(bucket) {
      const listed = must(["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"]) as { Uploads?: { Key: string }[] };
      return (listed.Uploads ?? []).map((u) => u.Key).sort();
    },
    credentialsFile(secret) {
      return server.credentialsFileFor("AKIAMOTOTEST", secret);
    },
    credentialsFileFor(accessKeyId, secret) {
      const path = join(dir.path, `credentials-${++files}`);
      spawnSync("sh", ["-c", `umask 077 && cat > "$0"`, path], { input: `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secret}\n` });
      return path;
    },
    async stop() {
      child.stdin?.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      dir.remove();
    },
  };
  try {
    await waitFor(`moto_server on ${endpoint}`, () => aws(["s3api", "list-buckets"]).status === 0, 30_000, 200);
    for (const bucket of buckets) {
      must(["s3api", "create-bucket", "--bucket", bucket.name, "--create-bucket-configuration", `LocationConstraint=${MOTO_REGION}`, ...(bucket.objectLock ? ["--object-lock-enabled-for-bucket"] : [])]);
      if (bucket.versioned && !bucket.objectLock) {
        must(["s3api", "put-bucket-versioning", "--bucket", bucket.name, "--versioning-configuration", "Status=Enabled"]);
      }
      if (bucket.objectLock) {
        must(["s3api", "put-object-lock-configuration", "--bucket", bucket.name, "--object-lock-configuration", JSON.stringify({ ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 1 } } })]);
      }
    }
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
