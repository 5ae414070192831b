// The server side of a deploy on this machine, for the deploy tests and the
// switch benchmark: the real ServerControl (ops/deploy/server.ts) running its
// scripts in a local shell, Debian's nginx with the committed prod stack's
// files on loopback, two HTTP servers as the blue and green slots, and a tiny
// `docker` stand-in on PATH for the only part that is missing here, Docker:
// `docker inspect` answers from a state file per container, and
// `docker exec <proxy> …` runs the command here (nginx with this test's prefix).
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Agent, request } from "node:https";
import type { Socket } from "node:net";
import { join } from "node:path";
import { slotContainerName } from "../../infra/app/render.js";
import { MAIN_CONF, renderMainConf, stackFilePaths, stackProxyFiles, stackUpstreams, type ProxyLayout } from "../../infra/proxy/render.js";
import { edgeAddressing } from "../../infra/server/render.js";
import { localShell, SshServerControl, type Shell } from "../../ops/deploy/server.js";
import { readStackFile } from "../../stacks/config/files.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { loopbackLayout, nginxBinary, selfSignedCertificate, startNginx, type Nginx } from "./nginx.js";
import { REPO } from "./project.js";
import { requireCommand, tempDir } from "./system.js";

const DOCKER_STAND_IN = `#!/bin/sh
# docker stand-in for tests (no Docker here); only what the deploy runs:
#   docker inspect -f FORMAT NAME   from $DOCKER_STATE/NAME, one line "<status>/<health>"
#   docker exec NAME nginx ARGS     the test's nginx, with its prefix and error log
#   docker exec NAME CMD ARGS       CMD here (the proxy's loopback is this machine's)
set -eu
case "$1" in
  inspect)
    if [ ! -f "$DOCKER_STATE/$4" ]; then echo "Error: No such object: $4" >&2; exit 1; fi
    IFS=/ read -r status health < "$DOCKER_STATE/$4" || true
    case "$3" in
      "{{.State.Running}}") if [ "$status" = running ]; then echo true; else echo false; fi ;;
      *) echo "$status/$health" ;;
    esac ;;
  exec)
    shift 2
    if [ "$1" = nginx ]; then shift; exec "$NGINX_BIN" -p "$NGINX_PREFIX" -e "$NGINX_PREFIX/error.log" "$@"; fi
    exec "$@" ;;
  *) echo "docker stand-in: '$1' is not supported" >&2; exit 1 ;;
esac
`;

export const STACK = "prod";

export interface SlotApp {
  server: Server;
  port: number;
  /** The image the stand-in engine last put on the slot; the slot answers with it. */
  image: string;
  /** Status of the health-check path (the smoke check's default). */
  healthStatus: number;
}

export interface DeployServer {
  config: StackConfig;
  layout: ProxyLayout;
  nginx: Nginx;
  server: SshServerControl;
  slots: Record<Slot, SlotApp>;
  upstreamFile: string;
  proxyDir: string;
  /** Every script the ServerControl ran, for shellcheck. */
  scripts: Set<string>;
  /** Sets what `docker inspect` says of a slot's container: e.g. "running/healthy", or undefined for a missing one. */
  setContainer(slot: Slot, state: string | undefined): void;
  stop(): Promise<void>;
}

function slotApp(slot: Slot, image: string): Promise<SlotApp> {
  return new Promise((resolve) => {
    const app: SlotApp = { server: undefined as unknown as Server, port: 0, image, healthStatus: 200 };
    app.server = createServer((req, res) => {
      // Some requests are slow, so switches happen while responses are in flight.
      const delay = req.url?.includes("slow") ? 150 : 0;
      req.resume();
      req.on("end", () =>
        setTimeout(() => {
          res.statusCode = req.url === "/actuator/health" ? app.healthStatus : 200;
          res.end(`${slot} ${app.image}`);
        }, delay),
      );
    });
    app.server.listen(0, "127.0.0.1", () => {
      const address = app.server.address();
      app.port = typeof address === "object" && address ? address.port : 0;
      resolve(app);
    });
  });
}

/** The committed prod stack with blue live, served by real nginx and two local slots, driven by the real ServerControl. */
export async function startDeployServer(name: string): Promise<DeployServer> {
  requireCommand("flock", "util-linux");
  requireCommand("curl", "curl");
  const config = validateStackConfig(STACK, rawFromPulumiConfig(readStackFile(REPO, STACK).config));
  const dir = tempDir(name);
  const proxyDir = join(dir.path, "proxy");
  const dataDir = join(dir.path, "data");
  const stateDir = join(dir.path, "docker-state");
  const binDir = join(dir.path, "bin");
  for (const d of [proxyDir, dataDir, stateDir, binDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(binDir, "docker"), DOCKER_STAND_IN);
  chmodSync(join(binDir, "docker"), 0o755);

  const layout = await loopbackLayout(proxyDir);
  const slots = { blue: await slotApp("blue", config.app.image), green: await slotApp("green", config.app.image) };
  const prefix = `${config.service}-${STACK}`;
  // Each slot's fixed address on the edge network stands for its server on loopback.
  const edge = edgeAddressing(config.server.edgeSubnet);
  const address = (ipAndPort: string) => {
    const ip = ipAndPort.split(":")[0];
    const slot = ip === edge.green ? "green" : ip === edge.blue ? "blue" : undefined;
    return slot ? `127.0.0.1:${slots[slot].port}` : ipAndPort;
  };
  const local = { ...config, server: { ...config.server, dataDir } };

  // 127.0.0.1 stands in for Cloudflare, so the public route takes the tests' requests.
  writeFileSync(join(layout.confDir, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: ["127.0.0.1/32"], workerShutdownTimeout: "30s" }));
  const files = stackProxyFiles(local, STACK, layout, address);
  const paths = stackFilePaths(STACK);
  writeFileSync(join(layout.confDir, paths.conf), files.conf);
  writeFileSync(join(layout.confDir, paths.upstreams), stackUpstreams(local, STACK, "blue", address));
  selfSignedCertificate(layout, STACK, [config.domains.api, config.domains.metabase!]);
  const nginx = await startNginx(join(layout.confDir, MAIN_CONF), layout.runtimeDir, layout.listen.http);

  const proxy = { container: "bbaegok-proxy", image: "nginx:1.28.0", dir: proxyDir, internalPort: layout.listen.internal };
  const setState = (container: string, state: string | undefined) => {
    if (state === undefined) rmSync(join(stateDir, container), { force: true });
    else writeFileSync(join(stateDir, container), `${state}\n`);
  };
  setState(proxy.container, "running/");
  for (const slot of ["blue", "green"] as const) setState(slotContainerName(prefix, slot), "running/healthy");

  const here = localShell({ PATH: `${binDir}:${process.env.PATH ?? ""}`, DOCKER_STATE: stateDir, NGINX_BIN: nginxBinary(), NGINX_PREFIX: layout.runtimeDir });
  const scripts = new Set<string>();
  const shell: Shell = { where: here.where, start: (script) => (scripts.add(script), here.start(script)) };
  const server = new SshServerControl({ stack: STACK, config: local, proxy, shell, privilege: "none", address });
  return {
    config: local,
    layout,
    nginx,
    server,
    slots,
    upstreamFile: join(layout.confDir, paths.upstreams),
    scripts,
    proxyDir,
    setContainer: (slot, state) => setState(slotContainerName(prefix, slot), state),
    async stop() {
      await nginx.stop();
      await Promise.all(
        Object.values(slots).map(
          (s) =>
            new Promise<void>((resolve) => {
              s.server.close(() => resolve());
              s.server.closeAllConnections();
            }),
        ),
      );
      dir.remove();
    },
  };
}

export interface Answer {
  /** ms since the load started. */
  start: number;
  end: number;
  /** The slot that answered, or undefined when the request failed. */
  slot?: Slot;
  error?: string;
}

/**
 * Continuous load on the public route (HTTPS, keep-alive), each answer
 * recorded with its times and slot. A request sent on a kept-alive connection
 * that nginx had closed while idle (old workers do at a reload) is sent again,
 * as HTTP/1.1 clients and Cloudflare do; a request failing on a fresh
 * connection or with an error status counts as failed.
 */
export function startLoad(deployServer: DeployServer, workers = 6): { answers: Answer[]; retried: () => number; stop(): Promise<Answer[]>; now(): number } {
  const host = deployServer.config.domains.api;
  const agent = new Agent({ keepAlive: true, maxSockets: workers, rejectUnauthorized: false, servername: host });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const answers: Answer[] = [];
  let retried = 0;
  let running = true;
  const requestsOn = new WeakMap<Socket, number>();
  const get = (path: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: deployServer.layout.listen.https, path, agent, headers: { host } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      // Node marks a kept-alive socket as reused only when it takes it from the idle pool,
      // not when it hands it straight to a waiting request; count the requests per socket instead.
      let keptAlive = false;
      req.on("socket", (socket: Socket) => {
        const count = (requestsOn.get(socket) ?? 0) + 1;
        requestsOn.set(socket, count);
        keptAlive = count > 1;
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if ((req.reusedSocket || keptAlive) && err.code === "ECONNRESET") {
          retried++;
          get(path).then(resolve, reject);
        } else reject(err);
      });
      req.end();
    });
  const loops = Array.from({ length: workers }, async (_, i) => {
    for (let n = 0; running; n++) {
      const start = now();
      try {
        const body = await get(n % 3 === 0 ? `/slow/${i}` : `/fast/${i}`);
        answers.push({ start, end: now(), slot: body.split(" ")[0] as Slot });
      } catch (err) {
        answers.push({ start, end: now(), error: err instanceof Error ? err.message : String(err) });
      }
    }
  });
  return {
    answers,
    retried: () => retried,
    now,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return answers;
    },
  };
}
