// Run as a child process by test/support/s3.ts: an S3 API server on 127.0.0.1
// (s3rver: multipart uploads, signature checks against its one key pair).
// Prints {"port": N} once listening; stops when its parent closes stdin, so a
// crashed test never leaves it running.
import S3rver from "@20minutes/s3rver";

// Named so benchmarks can tell its CPU from the rest (bench/cpu.ts).
process.title = "s3-stand-in";
const [directory, ...buckets] = process.argv.slice(2);
if (!directory) throw new Error("usage: s3-server.ts <directory> [bucket...]");
const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
server.run().then(
  (address: { port: number }) => {
    process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  },
  (err: unknown) => {
    process.stderr.write(`S3 server did not start: ${String(err)}\n`);
    process.exit(1);
  },
);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
