// Docker's part of the app's and Metabase's reads from a replica on another
// server, for real: the rendered WireGuard link between two network
// namespaces (test/support/link-harness.ts), and the test host's dockerd
// (Debian's) in the primary server's namespace with its iptables on, as a
// server's dockerd runs. What listens on the replica's link address stands
// for the replica's published port and answers with the address it sees.
// A container on a routed bridge (the slots and Metabase on the stack's edge
// network) gets there from the primary server's link address (Docker's
// masquerading: the one peer the replica's end of the link accepts); one on
// an internal network only (the data network) does not get there at all.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { docker, importBusyboxImage, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { LINK, linkedServers, type LinkedServers } from "../support/link-harness.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const IMAGE = "bbdk-busybox-client:test";
const EDGE_SUBNET = "172.30.10.0/24"; // the prod stack's edge subnet
const PORT = 3306; // the replica's published port
const tag = String(process.pid % 100000);

/** Answers every HTTP request with the client's address as the server sees it. */
const PEER_ECHO = `
import http.server, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (self.client_address[0] + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
`;

describe("Docker on the primary's server: the slots' routed edge network reaches the replica's link address, masqueraded as the primary's link address", () => {
  const dir = tempDir("link-masquerade");
  let link: LinkedServers;
  let host: DockerHost;
  let listener: ChildProcess;

  before(async () => {
    link = linkedServers(dir.path, tag);
    for (const side of ["primary", "replica"] as const) {
      const up = link.up(side);
      assert.equal(up.status, 0, up.stderr);
    }
    const python = requireCommand("python3", "python3");
    listener = spawn("ip", link.inNs("replica", python, "-c", PEER_ECHO, LINK.replica, String(PORT)), { stdio: "ignore" });
    host = await startDockerHost({ netns: link.ns.primary });
    importBusyboxImage(host, IMAGE, ["/bin/busybox", "sleep", "3600"]);
    docker(["network", "create", "--driver", "bridge", "--subnet", EDGE_SUBNET, `edge-${tag}`], { host });
    docker(["network", "create", "--driver", "bridge", "--internal", `data-${tag}`], { host });
  });

  after(async () => {
    await host?.stop();
    listener?.kill("SIGKILL");
    link?.remove();
    dir.remove();
  });

  const fetchFrom = (network: string) =>
    // busybox's nc, not its wget: a static glibc binary resolving anything (wget does, even for an address) crashes in an empty image.
    docker(["run", "--rm", "--network", network, IMAGE, "/bin/sh", "-c", `set -o pipefail; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 ${LINK.replica} ${PORT} | /bin/busybox tail -n 1`], { host, allowFailure: true });

  it("a container on a routed bridge reaches the replica's link address, seen there as the primary server's link address", async () => {
    let last = { status: 0, stdout: "", stderr: "" };
    await waitFor("the listener on the replica's link address", () => (last = fetchFrom(`edge-${tag}`)).stdout.trim() !== "", 30_000, 500).catch((err: Error) => {
      const nat = spawnSync("ip", link.inNs("primary", "iptables-save", "-t", "nat"), { encoding: "utf8" }).stdout;
      throw new Error(`${err.message}: ${last.stderr.trim()}\nthe primary's NAT table:\n${nat}`);
    });
    assert.equal(last.stdout.trim(), LINK.primary);
  });

  it("a container on an internal network only does not get there", () => {
    const r = fetchFrom(`data-${tag}`);
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /unreachable|timed out|refused/i, JSON.stringify(r));
  });
});
