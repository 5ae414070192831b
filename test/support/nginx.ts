// A real nginx for one test file: its own prefix, config and runtime dirs,
// ports on 127.0.0.1; stopped at the end. Plus the loopback twin of the
// production layout and self-signed certificates made with openssl.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { MAIN_CONF, stackFilePaths } from "../../infra/proxy/contract.js";
import { renderMainConf, stackProxyFiles, type ProxyLayout } from "../../infra/proxy/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { loopbackAddresses } from "./edge.js";
import { freePort, requireCommand, waitFor } from "./system.js";

export interface Nginx {
  /** The master process (its workers are its children). */
  pid: number;
  /** `nginx -t` on the current files: status and nginx's own message. */
  test(): { ok: boolean; output: string };
  /** Graceful reload (new workers; old ones finish their requests). */
  reload(): void;
  /** The command line that runs this nginx with extra arguments, for scripts under test. */
  commandLine(extra: string): string;
  stop(): Promise<void>;
}

export function nginxBinary(): string {
  return requireCommand("nginx", "nginx", ["/usr/sbin"]);
}

/**
 * The production layout on loopback: the same directory structure under
 * `root`, free ports on 127.0.0.1, logs and temp files of its own.
 */
export async function loopbackLayout(root: string): Promise<ProxyLayout> {
  const confDir = join(root, "live");
  const runtimeDir = join(root, "run");
  for (const dir of [confDir, runtimeDir, ...["conf.d", "upstreams", "certs"].map((d) => join(confDir, d))]) mkdirSync(dir, { recursive: true });
  // Workers (nginx's default user when started as root) write temp files here.
  chmodSync(runtimeDir, 0o777);
  return {
    confDir,
    runtimeDir,
    pidFile: join(runtimeDir, "nginx.pid"),
    accessLog: join(runtimeDir, "access.log"),
    errorLog: join(runtimeDir, "error.log"),
    listen: { address: "127.0.0.1", http: await freePort(), https: await freePort(), internal: await freePort() },
  };
}

/** A self-signed certificate for `names`, written where the layout expects `stack`'s certificate. */
export function selfSignedCertificate(layout: ProxyLayout, stack: string, names: readonly string[]): void {
  const openssl = requireCommand("openssl", "openssl");
  execFileSync(
    openssl,
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`, "-keyout", join(layout.confDir, "certs", `${stack}.key`), "-out", join(layout.confDir, "certs", `${stack}.crt`)],
    { stdio: "ignore" },
  );
}

/**
 * Prod's rendered proxy files on loopback in `root`, its API on `host` with
 * both slots sent to one stand-in on 127.0.0.1:`upstreamPort`, 127.0.0.1 in
 * Cloudflare's place, Metabase off, a self-signed certificate. For tests of
 * one aspect of prod's configuration; nginx is the caller's to start.
 */
export async function prodOnLoopback(root: string, host: string, upstreamPort: number): Promise<ProxyLayout> {
  const prod = loadStack("prod").config;
  const config = { ...prod, domains: { ...prod.domains, api: host }, metabase: { ...prod.metabase, enabled: false } };
  const layout = await loopbackLayout(root);
  writeFileSync(join(layout.confDir, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "5s" }));
  const files = stackProxyFiles(config, "prod", layout, "blue", loopbackAddresses({ prod: config }, () => upstreamPort));
  writeFileSync(join(layout.confDir, stackFilePaths("prod").conf), files.conf);
  writeFileSync(join(layout.confDir, stackFilePaths("prod").upstreams), files.upstreams);
  selfSignedCertificate(layout, "prod", [host]);
  return layout;
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
  // Listening means this nginx's master wrote its pid file, which it does once it has bound every port: a
  // connect alone may reach another process that took the port first (freePort's race), and nginx, failing
  // to bind, retries for 2.5 s and exits. It exiting before it listened fails the start with its own words.
  const pidFile = join(runtimeDir, "nginx.pid");
  const ownPidFile = () => {
    try {
      return Number(readFileSync(pidFile, "utf8").trim()) === child.pid;
    } catch {
      return false;
    }
  };
  let started = false;
  const died = new Promise<never>((_, reject) => void exited.then(() => started || reject(new Error(`nginx exited (${child.exitCode ?? child.signalCode}) before it listened`))));
  await Promise.race([
    waitFor(
      `nginx (pid ${child.pid}) to listen on ${httpPort}`,
      () =>
        ownPidFile() &&
        new Promise<boolean>((resolve) => {
          const socket = connect(httpPort, "127.0.0.1", () => {
            socket.destroy();
            resolve(true);
          });
          socket.on("error", () => resolve(false));
        }),
      15_000,
    ),
    died,
  ])
    .then(() => {
      started = true;
    })
    .catch((err: Error) => {
      child.kill("SIGKILL");
      throw new Error(`${err.message}\n${log}`);
    });
  return {
    pid: child.pid!,
    test() {
      const result = run(["-t"]);
      return { ok: result.status === 0, output: result.stderr };
    },
    reload() {
      const result = run(["-s", "reload"]);
      if (result.status !== 0) throw new Error(`nginx reload failed: ${result.stderr}`);
    },
    commandLine: (extra) => [bin, ...base, extra].join(" "),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGQUIT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    },
  };
}

/** A client certificate and its key (PEM), as a TLS client presents them. */
export interface ClientCertificate {
  cert: string;
  key: string;
}

/**
 * Client certificates for Authenticated Origin Pulls tests, made with openssl
 * under `dir`: `pinned` is self-signed for client authentication (the shape
 * infra/tls/origin-pulls.ts gives Cloudflare), `caSigned` is signed by a test
 * CA (`ca`), and the strangers are what nginx must refuse: a self-signed one
 * with the pinned one's very subject but its own key, and one signed by
 * another CA.
 */
export function clientCertificates(dir: string): { ca: string; pinned: ClientCertificate; caSigned: ClientCertificate; samePinnedSubject: ClientCertificate; otherCaSigned: ClientCertificate } {
  const openssl = requireCommand("openssl", "openssl");
  mkdirSync(dir, { recursive: true });
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  writeFileSync(
    join(dir, "client.cnf"),
    "[req]\ndistinguished_name = dn\nx509_extensions = client\n[dn]\n[client]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\n",
  );
  const key = (name: string) => run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
  const selfSigned = (name: string, subject: string) => {
    key(name);
    run("req", "-x509", "-new", "-config", "client.cnf", "-key", `${name}.key`, "-subj", subject, "-days", "1", "-out", `${name}.crt`);
  };
  const authority = (name: string) => {
    key(name);
    run("req", "-x509", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-days", "1", "-addext", "keyUsage=critical,keyCertSign", "-out", `${name}.crt`);
  };
  const signedBy = (name: string, ca: string) => {
    key(name);
    run("req", "-new", "-config", "client.cnf", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`);
    run("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "1", "-extfile", "client.cnf", "-extensions", "client", "-out", `${name}.crt`);
  };
  const read = (name: string): ClientCertificate => ({ cert: readFileSync(join(dir, `${name}.crt`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") });
  selfSigned("pinned", "/CN=bbaegok-infra prod origin pulls");
  selfSigned("same-subject", "/CN=bbaegok-infra prod origin pulls");
  authority("test-ca");
  authority("other-ca");
  signedBy("ca-signed", "test-ca");
  signedBy("other-ca-signed", "other-ca");
  return { ca: read("test-ca").cert, pinned: read("pinned"), caSigned: read("ca-signed"), samePinnedSubject: read("same-subject"), otherCaSigned: read("other-ca-signed") };
}
