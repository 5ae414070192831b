// A real S3 API server for one test file, on 127.0.0.1 in a child process (the
// tests call the AWS CLI synchronously, which would stall a server in the
// test's own event loop). It checks request signatures against its one key
// pair, so wrong credentials fail as they do on AWS.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { requireCommand, tempDir } from "./system.js";

/** The key pair the server accepts (s3rver's built-in account). */
export const S3_ACCESS_KEY_ID = "S3RVER";
export const S3_SECRET_ACCESS_KEY = "S3RVER";

export interface S3Server {
  endpoint: string;
  port: number;
  /** Environment for the AWS CLI as the operator: the server's key, no profile or config file. */
  operatorEnv(): NodeJS.ProcessEnv;
  /** Runs the AWS CLI against the server as the operator; never throws. */
  aws(args: string[]): { status: number; stdout: string; stderr: string };
  /** Every key under `prefix` in `bucket`, sorted. */
  keys(bucket: string, prefix?: string): string[];
  /** An object's bytes. */
  get(bucket: string, key: string): Buffer;
  /**
   * Keys of the multipart uploads begun in `bucket` and neither completed nor
   * aborted (s3rver has no ListMultipartUploads: it keeps each as a folder).
   */
  pendingUploads(bucket: string): string[];
  /** Sets an object's LastModified as the server reports it (s3rver reports its file's mtime). */
  setLastModified(bucket: string, key: string, when: Date): void;
  /** Writes an AWS shared-credentials file with the given key pair and returns its path. */
  credentialsFile(accessKeyId: string, secretAccessKey: string): string;
  stop(): Promise<void>;
}

export async function startS3Server(buckets: string[]): Promise<S3Server> {
  const awsCli = requireCommand("aws", "awscli");
  const dir = tempDir("s3");
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(__dirname, "s3-server.ts"), join(dir.path, "data"), ...buckets], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the S3 server did not start within 20 s: ${stderr}`)), 20_000);
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the S3 server exited (${code}) before listening: ${stderr}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  let files = 0;
  const operatorEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: S3_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: S3_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION: "ap-northeast-2", AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null" };
    delete env.AWS_PROFILE;
    return env;
  };
  const aws = (args: string[]) => {
    const r = spawnSync(awsCli, ["--endpoint-url", endpoint, ...args], { env: operatorEnv(), encoding: "utf8", timeout: 60_000, maxBuffer: 256 * 1024 * 1024 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const server: S3Server = {
    endpoint,
    port,
    operatorEnv,
    aws,
    keys(bucket, prefix = "") {
      const r = aws(["s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--output", "json"]);
      if (r.status !== 0) throw new Error(`listing s3://${bucket}/${prefix} failed: ${r.stderr}`);
      const parsed = (r.stdout.trim() ? JSON.parse(r.stdout) : {}) as { Contents?: { Key: string }[] };
      return (parsed.Contents ?? []).map((c) => c.Key).sort();
    },
    get(bucket, key) {
      const r = spawnSync(awsCli, ["--endpoint-url", endpoint, "s3", "cp", `s3://${bucket}/${key}`, "-"], { env: operatorEnv(), maxBuffer: 1024 * 1024 * 1024, timeout: 60_000 });
      if (r.status !== 0) throw new Error(`reading s3://${bucket}/${key} failed: ${r.stderr.toString()}`);
      return r.stdout;
    },
    pendingUploads(bucket) {
      const uploads = join(dir.path, "data", bucket, "._S3rver_uploads");
      if (!existsSync(uploads)) return [];
      return readdirSync(uploads).map((id) => readFileSync(join(uploads, id, "key"), "utf8"));
    },
    setLastModified(bucket, key, when) {
      const parts = key.split("/");
      const file = join(dir.path, "data", bucket, ...parts.slice(0, -1), `${parts[parts.length - 1]}._S3rver_object`);
      utimesSync(file, when, when);
    },
    credentialsFile(accessKeyId, secretAccessKey) {
      const path = join(dir.path, `credentials-${++files}`);
      spawnSync("sh", ["-c", `umask 077 && cat > "$0"`, path], { input: `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n` });
      return path;
    },
    async stop() {
      if (child.exitCode === null) {
        child.stdin?.end();
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      dir.remove();
    },
  };
  return server;
}
