// scripts/ci-newest.sh, the deploy jobs' "is this run's commit still main's
// newest?", run with real git against a real git server: git http-backend
// (git's own smart-HTTP server) behind a small HTTP front that, as GitHub does
// for a private repository, answers 401 without the job token's basic
// authentication.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";

const SCRIPT = join(REPO, "scripts", "ci-newest.sh");
const TOKEN = "ghs_jobtoken0123456789abcdefghijklmnopqrst";

describe("scripts/ci-newest.sh against git http-backend", () => {
  const dir = tempDir("ci-newest");
  const git = requireCommand("git", "git");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir.path, GIT_CONFIG_NOSYSTEM: "1", GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };
  const must = (args: string[], cwd = dir.path) => {
    const r = spawnSync(git, args, { cwd, env, encoding: "utf8" });
    assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  let server: Server;
  let remote: string;
  const commits: string[] = [];
  const authorizations: (string | undefined)[] = [];

  before(async () => {
    must(["init", "-q", "--bare", "-b", "main", "app.git"]);
    must(["init", "-q", "-b", "main", "work"]);
    const work = join(dir.path, "work");
    for (const n of [1, 2]) {
      writeFileSync(join(work, "stack.yaml"), `release: ${n}\n`);
      must(["add", "stack.yaml"], work);
      must(["commit", "-q", "-m", `release ${n}`], work);
      commits.push(must(["rev-parse", "HEAD"], work));
    }
    must(["push", "-q", join(dir.path, "app.git"), "main"], work);
    const expected = `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString("base64")}`;
    server = createServer((req, res) => {
      authorizations.push(req.headers.authorization);
      if (req.headers.authorization?.toLowerCase() !== expected.toLowerCase()) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="GitHub"' }).end();
        return;
      }
      const url = new URL(req.url ?? "/", "http://x");
      // git's CGI server: its answer is CGI headers, a blank line, then the body.
      const cgi = spawn(git, ["http-backend"], {
        env: {
          ...env,
          GIT_PROJECT_ROOT: dir.path,
          GIT_HTTP_EXPORT_ALL: "1",
          REQUEST_METHOD: req.method ?? "GET",
          PATH_INFO: url.pathname,
          QUERY_STRING: url.search.slice(1),
          CONTENT_TYPE: req.headers["content-type"] ?? "",
          GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        },
      });
      req.pipe(cgi.stdin);
      const out: Buffer[] = [];
      cgi.stdout.on("data", (d: Buffer) => out.push(d));
      cgi.once("close", () => {
        const all = Buffer.concat(out);
        const end = all.indexOf("\r\n\r\n");
        const headers = all.subarray(0, end).toString("latin1").split("\r\n").map((l) => l.split(/:\s*/, 2) as [string, string]);
        const status = Number(headers.find(([k]) => k.toLowerCase() === "status")?.[1]?.split(" ")[0] ?? 200);
        res.writeHead(status, Object.fromEntries(headers.filter(([k]) => k.toLowerCase() !== "status")));
        res.end(all.subarray(end + 4));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    remote = `http://127.0.0.1:${(server.address() as { port: number }).port}/app.git`;
  });
  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    dir.remove();
  });

  /** The script as a deploy step runs it; spawn (not spawnSync): the git server runs in this process. */
  const check = (args: string[], token: string | null = TOKEN) =>
    new Promise<{ status: number; stdout: string; stderr: string; output: string }>((resolve) => {
      const output = join(dir.path, `output-${Math.random().toString(16).slice(2)}`);
      writeFileSync(output, "");
      const child = spawn("bash", [SCRIPT, ...args], { env: { ...env, GITHUB_OUTPUT: output, ...(token === null ? {} : { GITHUB_TOKEN: token }) } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("close", (code) => resolve({ status: code ?? -1, stdout, stderr, output: readFileSync(output, "utf8") }));
    });

  it("says newest=true for main's head, authenticated with the job's token, printing nothing", async () => {
    const r = await check([remote, "main", commits[1]!]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.output, "newest=true\n");
    assert.equal(r.stdout + r.stderr, "");
    assert.ok(authorizations.some((a) => /^basic /i.test(a ?? "")), `git sent no basic authentication: ${JSON.stringify(authorizations)} ${r.stdout}`);
  });

  it("says newest=false for an older commit, with a notice naming the commit that deploys instead", async () => {
    const r = await check([remote, "main", commits[0]!]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.output, "newest=false\n");
    assert.equal(r.stdout, `::notice title=Not deployed: main has moved on::main is at ${commits[1]} now; this run's ${commits[0]} is not deployed here, the run of ${commits[1]} deploys it with everything before it\n`);
  });

  it("stops the job when main cannot be read: no token, a wrong token, no such branch; the token is never printed", async () => {
    for (const [what, token, branch] of [["no token", null, "main"], ["a wrong token", "ghs_wrong", "main"], ["no such branch", TOKEN, "release"]] as const) {
      const r = await check([remote, branch, commits[1]!], token);
      assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
      assert.equal(r.output, "", `${what}: an answer was written`);
      assert.match(r.stdout, new RegExp(`^::error title=Cannot read ${branch}::git ls-remote of ${branch} at ${remote.replace(/[.]/g, "\\.")} failed, so whether ${commits[1]} is still its newest commit is unknown; not deploying`), what);
      assert.ok(!(r.stdout + r.stderr).includes(TOKEN), `${what}: the token was printed`);
    }
  });

  it("is a usage error without GITHUB_OUTPUT, with a wrong count of arguments, or with a commit that is not a full id", async () => {
    const noOutput = spawnSync("bash", [SCRIPT, remote, "main", commits[1]!], { env, encoding: "utf8" });
    assert.equal(noOutput.status, 2);
    assert.equal((await check([remote, "main"])).status, 2);
    const short = await check([remote, "main", commits[1]!.slice(0, 7)]);
    assert.equal(short.status, 2);
    assert.match(short.stderr, /is not a full commit id/);
  });

  it("is shellcheck-clean", () => {
    const r = spawnSync(requireCommand("shellcheck", "shellcheck"), ["--severity=style", SCRIPT], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
