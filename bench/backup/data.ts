// The benchmark's database: a MariaDB server of its own (data dir, socket and
// port on 127.0.0.1, stopped at the end) and a shop-like dataset written as
// tab-separated files and loaded with LOAD DATA, batch by batch, until the
// tables take the size asked for on disk.
//
// The data is meant to compress like a real service database, neither better
// nor worse: ids and amounts, timestamps, statuses from small sets, Korean and
// English text drawn from a skewed vocabulary (a few words are common, most
// rare), JSON-ish item lists, and random hex tokens that do not compress.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { freePort, requireCommand, waitFor } from "../../test/support/system.js";

export interface BenchMariaDb {
  socket: string;
  /** Its TCP port on 127.0.0.1 (a replica and a load client connect there). */
  port: number;
  dataDir: string;
  /** Runs SQL as root over the socket; throws with stderr on failure. */
  sql(statements: string, database?: string): string;
  stop(): Promise<void>;
}

/** Server settings the numbers depend on: the image's defaults but for a buffer pool fit for a 1 GB database. */
export const SERVER_SETTINGS = ["--innodb-buffer-pool-size=512M", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"];

/** `flags`: more server flags, after SERVER_SETTINGS (a replicated pair's binary log, server id, read-only). */
export async function startBenchMariaDb(dir: string, flags: readonly string[] = []): Promise<BenchMariaDb> {
  const server = requireCommand("mariadbd", "mariadb-server", ["/usr/sbin"]);
  const installDb = requireCommand("mariadb-install-db", "mariadb-server");
  const client = requireCommand("mariadb", "mariadb-client");
  const dataDir = join(dir, "data");
  const socket = join(dir, "mysqld.sock");
  const port = await freePort();
  const install = spawnSync(installDb, ["--no-defaults", `--datadir=${dataDir}`, "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"], { encoding: "utf8" });
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stderr}`);
  const child: ChildProcess = spawn(
    server,
    [
      "--no-defaults",
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      "--user=root",
      "--skip-name-resolve",
      `--pid-file=${join(dir, "pid")}`,
      `--secure-file-priv=${dir}`,
      ...SERVER_SETTINGS,
      ...flags,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const run = (args: string[], input: string) => spawnSync(client, ["--no-defaults", `--socket=${socket}`, "-uroot", ...args], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const db: BenchMariaDb = {
    socket,
    port,
    dataDir,
    sql(statements, database) {
      const r = run(["--default-character-set=utf8mb4", "--batch", "--skip-column-names", ...(database ? [database] : [])], statements);
      if (r.status !== 0) throw new Error(`SQL failed: ${r.stderr}`);
      return r.stdout;
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    },
  };
  try {
    await waitFor("MariaDB to accept connections", () => run(["-e", "SELECT 1"], "").status === 0, 60_000, 200);
  } catch (err) {
    await db.stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return db;
}

export const SCHEMA = `
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(200) NOT NULL,
  city VARCHAR(50) NOT NULL,
  created DATETIME NOT NULL,
  bio TEXT NULL
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT PRIMARY KEY,
  customer_id INT NOT NULL,
  status VARCHAR(20) NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  created DATETIME(3) NOT NULL,
  items TEXT NOT NULL,
  note VARCHAR(500) NULL,
  tracking CHAR(32) NOT NULL,
  KEY orders_customer (customer_id)
) ENGINE=InnoDB;
CREATE TABLE events (
  id BIGINT PRIMARY KEY,
  order_id BIGINT NOT NULL,
  kind VARCHAR(30) NOT NULL,
  at DATETIME(3) NOT NULL,
  ip VARCHAR(45) NOT NULL,
  payload TEXT NOT NULL,
  KEY events_order (order_id)
) ENGINE=InnoDB;
CREATE VIEW order_totals AS SELECT customer_id, COUNT(*) AS orders, SUM(total) AS total FROM orders GROUP BY customer_id;
`;

/** A small, fast, seeded generator (xorshift32): the same data on every run. */
class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  /** Index into a vocabulary with a Zipf-like skew: a few entries very common, most rare. */
  skewed(n: number): number {
    const r = this.next();
    return Math.floor(n * r * r * r);
  }
  hex(chars: number): string {
    let s = "";
    while (s.length < chars) s += ((this.next() * 4294967296) >>> 0).toString(16).padStart(8, "0");
    return s.slice(0, chars);
  }
}

const ENGLISH = (
  "the order was shipped delivered late early customer asked refund exchange size color small large blue red green black white " +
  "package box store pickup delivery address changed phone call support ticket closed opened payment card failed retry approved " +
  "coupon discount free shipping weekend morning evening thanks please again quality good great bad broken missing item gift wrap " +
  "seoul busan incheon daegu gwangju daejeon ulsan office home apartment building floor door front back note memo request urgent"
).split(" ");

function vocabulary(random: Random): string[] {
  const words = [...ENGLISH];
  // Korean words of two or three Hangul syllables.
  for (let i = 0; i < 3000; i++) {
    const length = 2 + random.int(2);
    let word = "";
    for (let j = 0; j < length; j++) word += String.fromCharCode(0xac00 + random.int(11172));
    words.push(word);
  }
  // Shuffle so that common words mix both languages.
  for (let i = words.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [words[i], words[j]] = [words[j] as string, words[i] as string];
  }
  return words;
}

const STATUSES = ["paid", "paid", "paid", "shipped", "shipped", "delivered", "delivered", "delivered", "cancelled", "refunded"];
const KINDS = ["created", "paid", "packed", "shipped", "out_for_delivery", "delivered", "support_message", "refund_requested"];
const CITIES = ["서울", "부산", "인천", "대구", "광주", "대전", "울산", "수원", "Seoul", "Busan"];
const FAMILY = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"];

function stamp(ms: number, millis: boolean): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, millis ? 23 : 19)}`;
}

/** Escapes a value for LOAD DATA's default format (tab-separated, backslash escapes). */
function field(value: string): string {
  return value.replace(/[\\\t\n]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : "\\n"));
}

export interface Generator {
  /** Writes the next batch of about `bytes` into three files under `dir`; returns their paths and byte count. */
  batch(dir: string, bytes: number): { files: Record<"customers" | "orders" | "events", string>; bytes: number; rows: number };
}

export function generator(seed = 20260105): Generator {
  const random = new Random(seed);
  const words = vocabulary(random);
  const text = (min: number, max: number) => {
    const n = min + random.int(max - min + 1);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(words[random.skewed(words.length)] as string);
    return out.join(" ");
  };
  const start = Date.UTC(2023, 0, 1);
  let customerId = 0;
  let orderId = 0;
  let eventId = 0;
  let batchNo = 0;
  return {
    batch(dir, bytes) {
      batchNo++;
      const files = { customers: join(dir, `customers-${batchNo}.tsv`), orders: join(dir, `orders-${batchNo}.tsv`), events: join(dir, `events-${batchNo}.tsv`) };
      const fds = { customers: openSync(files.customers, "w"), orders: openSync(files.orders, "w"), events: openSync(files.events, "w") };
      const buffers = { customers: [] as string[], orders: [] as string[], events: [] as string[] };
      const sizes = { customers: 0, orders: 0, events: 0 };
      let written = 0;
      let rows = 0;
      const put = (table: keyof typeof fds, line: string) => {
        buffers[table].push(line);
        sizes[table] += line.length;
        rows++;
        if (sizes[table] > 1 << 20) flush(table);
      };
      const flush = (table: keyof typeof fds) => {
        const chunk = Buffer.from(buffers[table].join(""), "utf8");
        writeSync(fds[table], chunk);
        written += chunk.length;
        buffers[table] = [];
        sizes[table] = 0;
      };
      while (written < bytes) {
        // One customer in twenty orders; each order has two to six events.
        if (customerId === 0 || random.int(20) === 0) {
          customerId++;
          const name = `${random.pick(FAMILY)}${String.fromCharCode(0xac00 + random.int(11172))}${String.fromCharCode(0xac00 + random.int(11172))}`;
          const bio = random.int(4) === 0 ? "\\N" : field(text(8, 40));
          put("customers", `${customerId}\t${name}\tuser${customerId}.${random.hex(6)}@example.com\t${random.pick(CITIES)}\t${stamp(start + random.int(3e10), false)}\t${bio}\n`);
        }
        orderId++;
        const customer = 1 + random.int(customerId);
        const created = start + orderId * 9000 + random.int(9000);
        const lines = 1 + random.int(4);
        const items = Array.from({ length: lines }, () => `{"sku":"SKU-${100000 + random.skewed(900000)}","qty":${1 + random.int(3)},"price":${(1000 + random.int(99000)) * 10}}`);
        const note = random.int(3) === 0 ? field(text(3, 25)) : "\\N";
        const total = ((1000 + random.int(500000)) * 10 + random.int(100) / 100).toFixed(2);
        put("orders", `${orderId}\t${customer}\t${random.pick(STATUSES)}\t${total}\tKRW\t${stamp(created, true)}\t[${items.join(",")}]\t${note}\t${random.hex(32)}\n`);
        const events = 2 + random.int(5);
        for (let e = 0; e < events; e++) {
          eventId++;
          const ip = `${1 + random.int(223)}.${random.int(256)}.${random.int(256)}.${random.int(256)}`;
          const payload = `{"message":"${field(text(5, 50))}","ref":"${random.hex(16)}","amount":${random.int(1000000)}}`;
          put("events", `${eventId}\t${orderId}\t${random.pick(KINDS)}\t${stamp(created + e * 3_600_000 + random.int(3_600_000), true)}\t${ip}\t${payload}\n`);
        }
      }
      for (const table of Object.keys(fds) as (keyof typeof fds)[]) {
        flush(table);
        closeSync(fds[table]);
      }
      return { files, bytes: written, rows };
    },
  };
}

/** Bytes the database's tables take on disk (InnoDB's .ibd files). */
export function tablespaceBytes(dataDir: string, database: string): number {
  const dir = join(dataDir, database);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ibd"))
    .reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** Loads batches of the generator's data into `database` until its tables take `sizeMb` MiB on disk; `dir` is where LOAD DATA may read. */
export async function growTo(db: BenchMariaDb, dir: string, data: Generator, database: string, sizeMb: number): Promise<void> {
  const MiB = 1024 * 1024;
  while (tablespaceBytes(db.dataDir, database) < sizeMb * MiB) {
    const batch = data.batch(dir, Math.min(128 * MiB, Math.max(16 * MiB, sizeMb * MiB - tablespaceBytes(db.dataDir, database))));
    for (const [table, file] of Object.entries(batch.files)) {
      db.sql(`LOAD DATA INFILE '${file}' INTO TABLE ${table} CHARACTER SET utf8mb4;`, database);
      rmSync(file);
    }
    process.stderr.write(`  tablespace ${(tablespaceBytes(db.dataDir, database) / MiB).toFixed(0)} MiB\n`);
  }
}
