// A stand-in for Docker's embedded DNS server, on 127.0.0.1 over UDP: answers
// A queries for the names it is told (like running containers), NXDOMAIN for
// the others (like a stopped or missing container), or nothing at all for the
// names told to hang (a DNS server that does not answer).
import { createSocket, type Socket } from "node:dgram";

export interface StandInDns {
  port: number;
  /** Makes `name` resolve to `address` (a running container). */
  set(name: string, address: string): void;
  /** Makes `name` unknown: NXDOMAIN, as Docker answers for a stopped or missing container. */
  remove(name: string): void;
  /** Makes queries for `name` go unanswered. */
  hang(name: string): void;
  /** Names asked for so far, in order. */
  readonly asked: string[];
  close(): Promise<void>;
}

function questionName(message: Buffer): { name: string; end: number } {
  const labels: string[] = [];
  let at = 12;
  while (at < message.length) {
    const length = message[at]!;
    if (length === 0) return { name: labels.join(".").toLowerCase(), end: at + 1 };
    labels.push(message.subarray(at + 1, at + 1 + length).toString("ascii"));
    at += 1 + length;
  }
  throw new Error("DNS query without a complete question");
}

function answer(query: Buffer, address: string | undefined): Buffer {
  const { end } = questionName(query);
  const question = query.subarray(12, end + 4);
  const qtype = query.readUInt16BE(end);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  const rd = query[2]! & 0x01;
  const answers = address !== undefined && qtype === 1 ? 1 : 0;
  header[2] = 0x80 | 0x04 | rd; // response, authoritative, recursion desired echoed
  header[3] = 0x80 | (address === undefined ? 3 : 0); // recursion available; NXDOMAIN when unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers, 6);
  if (answers === 0) return Buffer.concat([header, question]);
  const record = Buffer.alloc(16);
  record.writeUInt16BE(0xc00c, 0); // name: pointer to the question
  record.writeUInt16BE(1, 2); // A
  record.writeUInt16BE(1, 4); // IN
  record.writeUInt32BE(1, 6); // TTL 1 s
  record.writeUInt16BE(4, 10);
  address!.split(".").forEach((octet, i) => (record[12 + i] = Number(octet)));
  return Buffer.concat([header, question, record]);
}

export async function startDns(): Promise<StandInDns> {
  const names = new Map<string, string>();
  const hanging = new Set<string>();
  const asked: string[] = [];
  const socket: Socket = createSocket("udp4");
  socket.on("message", (message, peer) => {
    try {
      const { name } = questionName(message);
      asked.push(name);
      if (hanging.has(name)) return;
      socket.send(answer(message, names.get(name)), peer.port, peer.address);
    } catch {
      // Not a query we understand: stay silent, as a real server drops garbage.
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  return {
    port: socket.address().port,
    set: (name, address) => {
      hanging.delete(name);
      names.set(name.toLowerCase(), address);
    },
    remove: (name) => {
      hanging.delete(name);
      names.delete(name.toLowerCase());
    },
    hang: (name) => hanging.add(name.toLowerCase()),
    asked,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
