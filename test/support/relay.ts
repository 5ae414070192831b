// TCP relays on loopback with a fault, where no network namespace is needed:
// - cuttableRelay goes silent at once, both ways, closing nothing: what a
//   database whose server lost power looks like from its clients (no reset,
//   no FIN; packets vanish). New connections then get no answer either.
// - answerLosingRelay loses the answer to one HTTP request that the server
//   carried out: what a client sees when the answer is lost on the way or
//   comes after its timeout, so that it retries a request that succeeded.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface Relay {
  port: number;
  /** Goes silent now. */
  cut(): void;
  /** Whether it has gone silent (by cut(), or by cutAfterBytes). */
  isCut(): boolean;
  close(): Promise<void>;
}

/** Relays 127.0.0.1:<port> to 127.0.0.1:<targetPort>; `cutAfterBytes`: goes silent by itself once one connection has passed that many bytes from the server (mid-dump). */
export async function cuttableRelay(targetPort: number, options: { cutAfterBytes?: number } = {}): Promise<Relay> {
  const { track, closeAll } = openSockets();
  let cut = false;
  const server = createServer((client) => {
    track(client);
    if (cut) return;
    const upstream = connect(targetPort, "127.0.0.1");
    track(upstream);
    let fromServer = 0;
    client.on("data", (d) => cut || upstream.write(d));
    upstream.on("data", (d) => {
      if (cut) return;
      fromServer += d.length;
      if (options.cutAfterBytes !== undefined && fromServer > options.cutAfterBytes) {
        cut = true;
        return;
      }
      client.write(d);
    });
    client.on("close", () => cut || upstream.destroy());
    upstream.on("close", () => cut || client.destroy());
  });
  return {
    port: await listenOnLoopback(server),
    cut: () => void (cut = true),
    isCut: () => cut,
    close: () => closeAll(server),
  };
}

/** The sockets a relay opened, and how to close the relay with all of them. */
function openSockets() {
  const sockets = new Set<Socket>();
  return {
    track: (socket: Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
    },
    closeAll: async (server: Server) => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

export interface AnswerLosingRelay {
  endpoint: string;
  /** Requests that matched: [0] reached the server and lost its answer; the later ones were relayed, or answered by `laterAnswer`. */
  matched(): string[];
  close(): Promise<void>;
}

const REQUEST_LINE = /^[A-Z]+ (\S+) HTTP\/1\.1\r\n/;
// An interim answer (100 Continue to a request sent with Expect) comes before the answer itself.
const INTERIM = /^HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n$/;

/**
 * Relays HTTP/1.1 to `target` (http://127.0.0.1:<port>). The first request
 * whose request line matches `request` reaches the server whole; when the
 * server answers, the client's connection is closed instead (an interim
 * 100 Continue still passes). A later match is relayed as any request, or,
 * with `laterAnswer` (a whole HTTP response), answered with it and not sent
 * on: how a server that answers a retry differently from moto would. With
 * `firstReachesAfterMs`, the first match is held back that long, its client
 * cut off half a second after it began: a first try still being carried out
 * while its retry is answered.
 */
export async function answerLosingRelay(target: string, request: RegExp, laterAnswer?: string, firstReachesAfterMs?: number): Promise<AnswerLosingRelay> {
  const { hostname, port } = new URL(target);
  const { track, closeAll } = openSockets();
  const matched: string[] = [];
  const server = createServer((client) => {
    track(client);
    const upstream = connect(Number(port), hostname);
    track(upstream);
    // Set once this connection carried the request whose answer is lost; HTTP/1.1 without
    // pipelining: what the server sends after it is that request's answer.
    let losing = false;
    let answered = false;
    // A held-back first try still goes to the server after its client is gone.
    let holding = false;
    client.on("data", (d: Buffer) => {
      if (answered) return;
      const line = REQUEST_LINE.exec(d.toString("latin1"));
      if (line && request.test(line[0])) {
        matched.push(line[0].trim());
        if (matched.length === 1) {
          losing = true;
          if (firstReachesAfterMs !== undefined) {
            // The rest of the request (its body) arrives within the half second.
            holding = true;
            const held: Buffer[] = [d];
            client.removeAllListeners("data");
            client.on("data", (more: Buffer) => held.push(more));
            setTimeout(() => client.destroy(), 500);
            setTimeout(() => upstream.write(Buffer.concat(held)), firstReachesAfterMs);
            return;
          }
        } else if (laterAnswer !== undefined) {
          answered = true;
          client.end(laterAnswer);
          upstream.destroy();
          return;
        }
      }
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (losing && !INTERIM.test(d.toString("latin1"))) {
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    client.on("close", () => holding || upstream.destroy());
    upstream.on("close", () => answered || client.destroy());
  });
  return {
    endpoint: `http://127.0.0.1:${await listenOnLoopback(server)}`,
    matched: () => [...matched],
    close: () => closeAll(server),
  };
}
