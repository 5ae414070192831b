// A TCP relay on loopback that can go silent at once, both ways, closing
// nothing: what a database whose server lost power looks like from its
// clients (no reset, no FIN; packets vanish), where no network namespace is
// needed. New connections then get no answer either.
import { connect, createServer, type Socket } from "node:net";

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
  const sockets = new Set<Socket>();
  let cut = false;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  };
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
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => void (cut = true),
    isCut: () => cut,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
