// Test images for a real Docker daemon, built offline from this machine's
// Debian packages. Each image is a root filesystem streamed as a tarball into
// `docker import`: the installed binaries, every library `ldd` names for them,
// their data files, busybox for a shell and the small tools, and the
// entrypoints in test/docker/images/. They are tagged with the exact
// references the committed stacks pin (read through the program's own config
// loader), so a real `pulumi up` runs the program's own image references —
// with Debian's versions inside (nginx:1.28.3 holds nginx 1.22, mariadb:11.4.12
// holds MariaDB 10.11, postgres:16.13 holds PostgreSQL 15): what each image
// implements of its official counterpart is in test/docker/images/CONTRACTS.md.
//
// Idempotent per daemon: an image whose tag already carries the same content
// label (a hash of every file's identity, the entrypoints and the image
// config) is left alone, so a second call only inspects, and the image ids
// the program reads (RemoteImage.imageId) stay the same. A missing host
// binary fails the build naming its Debian package; nothing is ever skipped.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { databaseSpec } from "../../infra/database/render.js";
import { listStacks } from "../../stacks/config/files.js";
import type { JdbcDriver } from "../../stacks/config/schema.js";
import { REPO } from "./project.js";
import { loadStack } from "../../stacks/config/load.js";

export type ImageKind = "nginx" | "mariadb" | "postgres" | "metabase" | "app";
export type ImageRefs = Record<ImageKind, string[]>;

/** How to reach the daemon: the environment of the `docker` CLI (DOCKER_HOST and so on). */
export interface DockerCli {
  env: NodeJS.ProcessEnv;
}

export interface BuiltImage {
  ref: string;
  /** The builder: one of the committed images', or the real Spring Boot app (tagSpringAppVersion). */
  kind: ImageKind | "spring-app";
  /** Docker's image id (sha256:…). */
  id: string;
  /** false when the tag already held an image with the same content label. */
  built: boolean;
  seconds: number;
}

export class TestImageError extends Error {
  override name = "TestImageError";
}

export const IMAGES_DIR = join(REPO, "test", "docker", "images");
/** The image label holding the hash of what the image was built from. */
export const CONTENT_LABEL = "bbaegok.test-image.content";
/** The image label naming the builder (nginx, mariadb, …). */
export const KIND_LABEL = "bbaegok.test-image";
/** The repository of the app's images; tags are versions. */
export const APP_REPOSITORY = "ghcr.io/bbaegok/bbaegok-api";
/** Set (to anything but "", "0", "false", "no") in an app container, it answers 503 on /actuator/health forever. */
export const APP_UNHEALTHY_ENV = "BBAEGOK_TEST_UNHEALTHY";
/** The app stand-in's bundled JDBC drivers (Maven artifacts, comma-separated; unset: all). */
export const APP_JDBC_DRIVERS_ENV = "BBAEGOK_TEST_JDBC_DRIVERS";
/** The app's port when SERVER_PORT is not set (Spring Boot's default). */
export const APP_DEFAULT_PORT = 8080;

/** Bump when the builder changes in a way the content hash cannot see. */
const BUILDER_VERSION = "1";
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Every image reference the committed stacks (Pulumi.<stack>.yaml) run, by the builder that makes it. */
export function committedImageRefs(projectDir = REPO): ImageRefs {
  const refs: ImageRefs = { nginx: [], mariadb: [], postgres: [], metabase: [], app: [] };
  const add = (kind: ImageKind, ref: string) => {
    if (!refs[kind].includes(ref)) refs[kind].push(ref);
  };
  for (const stack of listStacks(projectDir)) {
    const config = loadStack(stack, projectDir).config;
    if (config.proxy.mode === "owner") add("nginx", config.proxy.image);
    const db = databaseSpec(config.database).image;
    if (config.database.engine === "mysql") {
      throw new TestImageError(`stack ${stack} runs ${db}: there is no MySQL test image (test/support/docker-images.ts builds mariadb and postgres)`);
    }
    add(config.database.engine, db);
    if (config.metabase.enabled) {
      add("metabase", config.metabase.image);
      add("postgres", config.metabase.databaseImage);
    }
    add("app", config.app.image);
  }
  return refs;
}

/** The references buildTestImages() builds by default: every image the committed stacks run. */
export const COMMITTED_IMAGE_REFS: readonly string[] = Object.values(committedImageRefs()).flat();

/**
 * Builds (or finds already built) the test images: by default every reference
 * the committed stacks pin; `refs` builds exactly the references it lists
 * instead, by builder (e.g. `{ nginx: ["nginx:1.28.3"] }`).
 */
export async function buildTestImages(docker: DockerCli, refs: Partial<ImageRefs> = committedImageRefs()): Promise<BuiltImage[]> {
  const results: BuiltImage[] = [];
  for (const kind of ["nginx", "mariadb", "postgres", "metabase", "app"] as const) {
    const list = refs[kind] ?? [];
    if (list.length === 0) continue;
    const started = Date.now();
    const rootfs = ROOTFS[kind]();
    // The first image of a builder is charged with assembling the root filesystem (ldd, Go build).
    let assembly = (Date.now() - started) / 1000;
    for (const ref of list) {
      const image = await importImage(docker, kind, ref, rootfs, imageConfig(kind, ref));
      results.push({ ...image, seconds: image.seconds + assembly });
      assembly = 0;
    }
  }
  return results;
}

/**
 * Another version of the app: `ghcr.io/bbaegok/bbaegok-api:<version>`, an
 * image of its own (its own id, its version in every answer). With
 * `unhealthy`, its /actuator/health answers 503 whatever the database does:
 * a release that never turns healthy. With `jdbcDrivers`, the image bundles
 * only those drivers (as a build file decides): a datasource URL naming
 * another stops its start, as Spring Boot does. With `withoutHealthTools`, no
 * shell, curl or wget (Paketo's tiny and distroless images): the program's
 * health check cannot run in it.
 */
export async function tagAppVersion(docker: DockerCli, version: string, options: { unhealthy?: boolean; jdbcDrivers?: JdbcDriver[]; withoutHealthTools?: boolean } = {}): Promise<BuiltImage> {
  const ref = appRef(version);
  const config = imageConfig("app", ref);
  if (options.unhealthy) config.push(`ENV ${APP_UNHEALTHY_ENV}=1`);
  if (options.jdbcDrivers) config.push(`ENV ${APP_JDBC_DRIVERS_ENV}=${options.jdbcDrivers.join(",")}`);
  return importImage(docker, "app", ref, appRootFs(!options.withoutHealthTools), config);
}

/**
 * The real Spring Boot app of test/docker/images/spring-app (Spring Boot 3.5
 * with JPA, actuator, the MariaDB and PostgreSQL JDBC drivers, and the
 * read-only routing README "Read replicas" prescribes), on Debian's OpenJDK
 * 17, as `ghcr.io/bbaegok/bbaegok-api:<version>`: what the Go stand-in
 * imitates of Spring Boot (the config tree, relaxed binding, the db health
 * indicator, the drivers) is then Spring Boot's own doing.
 */
export async function tagSpringAppVersion(docker: DockerCli, version: string): Promise<BuiltImage> {
  const ref = appRef(version);
  return importImage(docker, "spring-app", ref, springRootFs(), springImageConfig(ref));
}

/** The app's image reference for a version, which must be a Docker tag. */
function appRef(version: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(version)) throw new TestImageError(`"${version}" is not a Docker tag`);
  return `${APP_REPOSITORY}:${version}`;
}

// --- the images ------------------------------------------------------------

const ROOT = { uid: 0, gid: 0 };

/**
 * The user the app images name, on purpose not the program's `app.runAs`
 * (1000:1000): a team's image names whatever its build gives it (Paketo's
 * builds their own uid, a plain Dockerfile often root), and the program must
 * run the slots as `app.runAs`, the owner of the password file, whatever it is.
 */
export const APP_IMAGE_USER = "2000:2000";
// 1000 is in /etc/passwd too, as in Ubuntu-based images (their `ubuntu` user).
const APP_USERS: User[] = [
  { name: "image", uid: 2000, gid: 2000, home: "/app", shell: "/bin/sh" },
  { name: "app", uid: 1000, gid: 1000, home: "/app", shell: "/bin/sh" },
];

function tagOf(ref: string): string {
  const at = ref.lastIndexOf(":");
  return at > ref.lastIndexOf("/") ? ref.slice(at + 1) : "latest";
}

/** Each image's config, as `docker import --change` instructions. */
function imageConfig(kind: ImageKind, ref: string): string[] {
  switch (kind) {
    case "nginx":
      return [`ENV ${PATH_ENV}`, 'ENTRYPOINT ["/docker-entrypoint.sh"]', 'CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80/tcp", "STOPSIGNAL SIGQUIT"];
    case "mariadb":
      return [`ENV ${PATH_ENV}`, "ENV LANG=C.UTF-8", 'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["mariadbd"]', "EXPOSE 3306/tcp", "VOLUME /var/lib/mysql"];
    case "postgres": {
      const major = postgresMajor();
      return [
        `ENV ${PATH_ENV}:/usr/lib/postgresql/${major}/bin`,
        `ENV PG_MAJOR=${major}`,
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=C.UTF-8",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "EXPOSE 5432/tcp",
        "VOLUME /var/lib/postgresql/data",
        "STOPSIGNAL SIGINT",
      ];
    }
    case "metabase":
      return [`ENV ${PATH_ENV}`, `ENV BBAEGOK_METABASE_VERSION=${tagOf(ref)}`, 'ENTRYPOINT ["/app/run_metabase.sh"]', "EXPOSE 3000/tcp"];
    case "app":
      return [`ENV ${PATH_ENV}`, `ENV BBAEGOK_APP_VERSION=${tagOf(ref)}`, `USER ${APP_IMAGE_USER}`, "WORKDIR /app", 'ENTRYPOINT ["/app/bbaegok-api"]', `EXPOSE ${APP_DEFAULT_PORT}/tcp`];
  }
}

interface Built {
  fs: RootFs;
  /** What runs inside, for the image's label: e.g. "Debian nginx 1.22.1-9+deb12u11". */
  inside: string;
}

const ROOTFS: Record<ImageKind, () => Built> = {
  nginx() {
    const fs = base([{ name: "nginx", uid: 101, gid: 101, home: "/nonexistent", shell: "/bin/false" }]);
    fs.binaries(["/usr/sbin/nginx"], "nginx");
    fs.binaries(["/usr/bin/curl"], "curl");
    fs.host("/etc/nginx/mime.types", "nginx-common");
    fs.localFile("/etc/nginx/nginx.conf", "nginx/nginx.conf");
    fs.localFile("/etc/nginx/conf.d/default.conf", "nginx/default.conf");
    fs.file("/usr/share/nginx/html/index.html", "<!DOCTYPE html>\n<title>Welcome to nginx!</title>\n<h1>Welcome to nginx!</h1>\n");
    fs.localFile("/docker-entrypoint.sh", "nginx/docker-entrypoint.sh", 0o755);
    fs.dir("/docker-entrypoint.d");
    // The official image sends both logs to the container's output (docker logs).
    fs.dir("/var/log/nginx");
    fs.symlink("/var/log/nginx/access.log", "/dev/stdout");
    fs.symlink("/var/log/nginx/error.log", "/dev/stderr");
    fs.dir("/var/cache/nginx");
    // Debian's nginx is built with its temp paths here (the program's nginx.conf moves them to /var/cache/nginx).
    fs.dir("/var/lib/nginx");
    fs.busybox();
    return { fs, inside: `Debian nginx ${debianVersion("nginx")}` };
  },

  mariadb() {
    const fs = base([{ name: "mysql", uid: 999, gid: 999, home: "/var/lib/mysql", shell: "/bin/false" }]);
    fs.binaries(["/usr/sbin/mariadbd", "/usr/bin/resolveip"], "mariadb-server");
    fs.binaries(["/usr/bin/mariadb", "/usr/bin/my_print_defaults"], "mariadb-client-core");
    fs.binaries(["/usr/bin/mariadb-dump", "/usr/bin/mariadb-admin", "/usr/bin/mariadb-tzinfo-to-sql"], "mariadb-client");
    fs.host("/usr/bin/mariadb-install-db", "mariadb-server");
    for (const [alias, target] of [
      ["/usr/sbin/mysqld", "mariadbd"],
      ["/usr/bin/mysql", "mariadb"],
      ["/usr/bin/mysqldump", "mariadb-dump"],
      ["/usr/bin/mysqladmin", "mariadb-admin"],
      ["/usr/bin/mysql_install_db", "mariadb-install-db"],
    ] as const) {
      fs.symlink(alias, target);
    }
    const share = "/usr/share/mysql";
    fs.tree(share, "mariadb-server", (p) => /^[^/]+\.sql$/.test(p) || p.startsWith("english") || p.startsWith("charsets"));
    fs.localFile("/etc/mysql/my.cnf", "mariadb/my.cnf");
    fs.dir("/etc/mysql/conf.d");
    fs.dir("/etc/mysql/mariadb.conf.d");
    databaseCommon(fs);
    fs.localFile("/usr/local/bin/docker-entrypoint.sh", "mariadb/docker-entrypoint.sh", 0o755);
    fs.localFile("/usr/local/bin/healthcheck.sh", "mariadb/healthcheck.sh", 0o755);
    fs.dir("/var/lib/mysql", 0o755, { uid: 999, gid: 999 });
    fs.dir("/run/mysqld", 0o1777, { uid: 999, gid: 999 });
    fs.busybox();
    return { fs, inside: `Debian MariaDB ${debianVersion("mariadb-server")}` };
  },

  postgres() {
    const major = postgresMajor();
    const pkg = `postgresql-${major}`;
    const fs = base([{ name: "postgres", uid: 999, gid: 999, home: "/var/lib/postgresql", shell: "/bin/bash" }]);
    const bin = `/usr/lib/postgresql/${major}/bin`;
    fs.binaries(["postgres", "initdb", "pg_ctl"].map((b) => `${bin}/${b}`), pkg);
    // pg_basebackup: the read replica's entrypoint seeds its standby with it (infra/replica/render.ts).
    fs.binaries(["psql", "pg_isready", "pg_dump", "pg_restore", "pg_dumpall", "pg_basebackup"].map((b) => `${bin}/${b}`), `postgresql-client-${major}`);
    // Server modules (plpgsql, the snowball dictionaries initdb loads, contrib), without the LLVM JIT: PostgreSQL runs without it.
    const lib = `/usr/lib/postgresql/${major}/lib`;
    fs.binaries(fs.tree(lib, pkg, (p) => p.endsWith(".so") && !p.startsWith("llvmjit") && !p.startsWith("bitcode")), pkg);
    const share = `/usr/share/postgresql/${major}`;
    fs.tree(share, pkg, (p) => p !== "postgresql.conf.sample");
    // As the official image does: the server listens on every interface once initialised.
    const sample = readFileSync(`${share}/postgresql.conf.sample`, "utf8").replace(/^#?(listen_addresses)\s*=\s*\S+.*$/m, "$1 = '*'");
    fs.file(`${share}/postgresql.conf.sample`, sample);
    databaseCommon(fs);
    fs.localFile("/usr/local/bin/docker-entrypoint.sh", "postgres/docker-entrypoint.sh", 0o755);
    fs.dir("/var/lib/postgresql", 0o755, { uid: 999, gid: 999 });
    fs.dir("/var/lib/postgresql/data", 0o1777, { uid: 999, gid: 999 });
    fs.dir("/run/postgresql", 0o3777, { uid: 999, gid: 999 });
    fs.busybox();
    return { fs, inside: `Debian PostgreSQL ${debianVersion(pkg)}` };
  },

  metabase() {
    const go = goBinaries();
    const fs = base([]);
    fs.file("/app/metabase", go.metabase, 0o755);
    fs.localFile("/app/run_metabase.sh", "metabase/run_metabase.sh", 0o755);
    fs.dir("/plugins", 0o777);
    fs.binaries(["/usr/bin/curl"], "curl");
    fs.busybox();
    return { fs, inside: `Go stand-in (test/docker/images/app/metabase), ${go.version}` };
  },

  app: () => appRootFs(true),
};

/**
 * The Go stand-in. `healthTools` false: no shell, curl or wget, as Paketo's
 * tiny and distroless images, where the program's health check cannot run.
 */
function appRootFs(healthTools: boolean): Built {
  const go = goBinaries();
  const fs = base(APP_USERS);
  fs.file("/app/bbaegok-api", go.api, 0o755);
  if (healthTools) {
    fs.binaries(["/usr/bin/curl"], "curl");
    fs.busybox();
  }
  return { fs, inside: `Go stand-in (test/docker/images/app), ${go.version}${healthTools ? "" : ", no shell, curl or wget"}` };
}

interface User {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** What every image has: the merged-/usr layout of the host, /etc's user files, /tmp (and, from busybox(), a shell and the small tools). */
function base(users: User[]): RootFs {
  const fs = new RootFs();
  for (const top of ["bin", "sbin", "lib", "lib64"]) {
    const path = `/${top}`;
    if (existsSync(path) && lstatSync(path).isSymbolicLink()) fs.symlink(path, readlinkSync(path));
  }
  for (const dir of ["/etc", "/home", "/root", "/run", "/usr/local/bin", "/usr/local/sbin", "/var/lib", "/var/log", "/var/cache", "/dev", "/proc", "/sys"]) fs.dir(dir, dir === "/root" ? 0o700 : 0o755);
  fs.dir("/tmp", 0o1777);
  fs.dir("/var/tmp", 0o1777);
  fs.symlink("/var/run", "../run");
  const all: User[] = [{ name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh" }, ...users, { name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent", shell: "/bin/false" }];
  fs.file("/etc/passwd", all.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:${u.shell}\n`).join(""));
  fs.file("/etc/group", all.map((u) => `${u.name === "nobody" ? "nogroup" : u.name}:x:${u.gid}:\n`).join(""));
  fs.file("/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
  return fs;
}

/**
 * The database images: bash (entrypoints, init scripts), stdbuf (the
 * backup's dumps), perl (the backup's guard of a dump over the link: the
 * official images, Debian's and Ubuntu's, carry perl-base, which both mark
 * Essential), zoneinfo, the C.UTF-8 locale their LANG names (the official
 * images have it; without it perl warned on every run of the link's guard),
 * gosu (as util-linux's setpriv), the init folder.
 */
function databaseCommon(fs: RootFs): void {
  fs.binaries(["/usr/bin/bash"], "bash");
  fs.binaries(["/usr/bin/perl"], "perl-base");
  fs.binaries(["/usr/bin/stdbuf"], "coreutils");
  fs.host("/usr/libexec/coreutils/libstdbuf.so", "coreutils");
  fs.binaries(["/usr/bin/setpriv"], "util-linux");
  fs.localFile("/usr/local/bin/gosu", "common/gosu", 0o755);
  fs.tree("/usr/share/zoneinfo", "tzdata");
  fs.tree("/usr/lib/locale/C.utf8", "libc-bin");
  fs.dir("/docker-entrypoint-initdb.d");
}

function postgresMajor(): string {
  const dir = "/usr/lib/postgresql";
  const majors = existsSync(dir) ? readdirSync(dir).filter((v) => /^\d+$/.test(v) && existsSync(`${dir}/${v}/bin/postgres`)) : [];
  if (majors.length === 0) throw missing("postgres (/usr/lib/postgresql/<major>/bin/postgres)", "postgresql-15", "apt-get install postgresql");
  return majors.sort((a, b) => Number(b) - Number(a))[0]!;
}

function debianVersion(pkg: string): string {
  const result = spawnSync("dpkg-query", ["-W", "-f=${Version}", pkg], { encoding: "utf8" });
  return result.status === 0 && result.stdout ? result.stdout : "(version unknown)";
}

/** The error for something the images are built from that this machine lacks. */
function missing(what: string, pkg: string, install = `apt-get install ${pkg}`): TestImageError {
  return new TestImageError(`${what} not installed: Debian package ${pkg} (${install}); the test images are built from this machine's packages`);
}

// --- the Go stand-ins (app and Metabase) -----------------------------------

interface GoBinaries {
  api: Buffer;
  metabase: Buffer;
  version: string;
}
let goCache: { key: string; binaries: GoBinaries } | undefined;

/** Builds test/docker/images/app (static, CGO off) once per source hash and Go version; cached in the temp dir. */
function goBinaries(): GoBinaries {
  const src = join(IMAGES_DIR, "app");
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error || go.status !== 0) throw missing("go (the Go toolchain, to build the app and Metabase stand-ins)", "golang-go", "or Go 1.24+ on PATH as the README's setup installs it");
  const version = go.stdout.trim();
  const hash = createHash("sha256").update(version);
  for (const file of listFiles(src)) hash.update(file).update("\0").update(readFileSync(join(src, file)));
  const key = hash.digest("hex").slice(0, 16);
  if (goCache?.key === key) return goCache.binaries;
  const out = join(tmpdir(), "bbaegok-test-images", `go-${key}`);
  if (!existsSync(join(out, "app")) || !existsSync(join(out, "metabase"))) {
    const work = `${out}.${process.pid}`;
    mkdirSync(work, { recursive: true });
    const build = spawnSync("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", `${work}/`, ".", "./metabase"], {
      cwd: src,
      env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=readonly -buildvcs=false" },
      encoding: "utf8",
    });
    if (build.status !== 0) throw new TestImageError(`go build of test/docker/images/app failed:\n${build.stderr}${build.error?.message ?? ""}`);
    rmSync(out, { recursive: true, force: true });
    renameSync(work, out);
    // Builds of older sources are not used again.
    const parent = join(out, "..");
    for (const old of readdirSync(parent)) if (/^go-[0-9a-f]{16}$/.test(old) && join(parent, old) !== out) rmSync(join(parent, old), { recursive: true, force: true });
  }
  const binaries = { api: readFileSync(join(out, "app")), metabase: readFileSync(join(out, "metabase")), version };
  goCache = { key, binaries };
  return binaries;
}

// --- the real Spring Boot app ---------------------------------------------

/** The JDK's libraries a headless server app never loads (AWT, sound, fonts, images); they would pull X11 and ALSA in. */
const JDK_DESKTOP_LIBRARIES = /^lib\/(lib(awt|awt_headless|awt_xawt|atk-wrapper|splashscreen|jsound|fontmanager|javajpeg|lcms|mlib_image|jawt)\.so|ct\.sym|src\.zip)$/;

/** Debian's OpenJDK (the `java` on PATH, through its alternatives link): its home folder. */
function javaHome(): string {
  const java = spawnSync("sh", ["-c", "readlink -f \"$(command -v java)\""], { encoding: "utf8" });
  const path = java.stdout.trim();
  if (java.status !== 0 || !path.endsWith("/bin/java")) throw missing("java (Debian's OpenJDK 17, for the Spring Boot test app)", "openjdk-17-jdk-headless");
  return path.slice(0, -"/bin/java".length);
}

function springImageConfig(ref: string): string[] {
  // As a Spring Boot image built the usual way: the fat jar run by java as PID 1 (SIGTERM reaches Spring), not as root.
  return [`ENV ${PATH_ENV}`, `ENV JAVA_HOME=${javaHome()}`, `ENV BBAEGOK_APP_VERSION=${tagOf(ref)}`, `USER ${APP_IMAGE_USER}`, "WORKDIR /app", 'ENTRYPOINT ["java", "-jar", "/app/app.jar"]', `EXPOSE ${APP_DEFAULT_PORT}/tcp`];
}

function springRootFs(): Built {
  const home = javaHome();
  const jar = springAppJar();
  const fs = base(APP_USERS);
  const pkg = "openjdk-17-jre-headless";
  const runtime = fs.tree(home, pkg, (p) => p === "bin/java" || p === "release" || p.startsWith("conf/") || (p.startsWith("lib/") && !JDK_DESKTOP_LIBRARIES.test(p)));
  fs.binaries(runtime.filter((p) => p.endsWith("/bin/java") || p.endsWith(".so")), pkg, [`${home}/lib`, `${home}/lib/server`]);
  // conf/ and lib/ link into Debian's /etc/java-17-openjdk (java.security, jvm.cfg, …).
  const etc = `/etc/java-${/java-(\d+)-/.exec(home)?.[1] ?? "17"}-openjdk`;
  fs.tree(etc, pkg);
  fs.symlink("/usr/bin/java", `${home}/bin/java`);
  fs.file("/app/app.jar", jar.bytes);
  // The program's health check runs curl (or wget) in the slot.
  fs.binaries(["/usr/bin/curl"], "curl");
  fs.busybox();
  return { fs, inside: `Spring Boot test app (test/docker/images/spring-app) on Debian OpenJDK ${debianVersion(pkg)}` };
}

let springCache: { key: string; path: string; bytes: Buffer } | undefined;

/** The app's jar, built by scripts/build-spring-app.sh --offline once per source hash and Java/Maven versions; cached in the temp dir (`path`). */
export function springAppJar(): { path: string; bytes: Buffer } {
  const src = join(IMAGES_DIR, "spring-app");
  const versions = spawnSync("sh", ["-c", "java -version 2>&1; mvn --version 2>&1 | head -1"], { encoding: "utf8" });
  if (spawnSync("mvn", ["--version"]).error) throw missing("mvn (Maven, to build the Spring Boot test app)", "maven");
  const hash = createHash("sha256").update(versions.stdout).update(readFileSync(join(REPO, "scripts", "build-spring-app.sh")));
  for (const file of listFiles(src)) hash.update(file).update("\0").update(readFileSync(join(src, file)));
  const key = hash.digest("hex").slice(0, 16);
  if (springCache?.key === key) return springCache;
  const jar = join(tmpdir(), "bbaegok-test-images", `spring-${key}.jar`);
  if (!existsSync(jar)) {
    mkdirSync(join(jar, ".."), { recursive: true });
    const partial = `${jar}.${process.pid}`;
    const build = spawnSync(join(REPO, "scripts", "build-spring-app.sh"), [partial, "--offline"], { encoding: "utf8" });
    if (build.status !== 0) {
      throw new TestImageError(
        `scripts/build-spring-app.sh (Maven, offline) failed: ${(build.stdout + build.stderr).trim() || build.error?.message}\n` +
          "Its Maven dependencies are fetched by scripts/install-test-deps.sh (scripts/build-spring-app.sh without --offline).",
      );
    }
    renameSync(partial, jar);
    // Jars of older sources are not used again (56 MB each).
    const parent = join(jar, "..");
    for (const old of readdirSync(parent)) if (/^spring-[0-9a-f]{16}\.jar$/.test(old) && join(parent, old) !== jar) rmSync(join(parent, old), { force: true });
  }
  springCache = { key, path: jar, bytes: readFileSync(jar) };
  return springCache;
}

function listFiles(dir: string, prefix = ""): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(dir, join(prefix, e.name)) : [join(prefix, e.name)]))
    .sort();
}

// --- the root filesystem and its tarball -----------------------------------

interface Entry {
  type: "dir" | "file" | "symlink";
  mode: number;
  uid: number;
  gid: number;
  /** A host file streamed into the tarball. */
  source?: string;
  content?: Buffer;
  target?: string;
  size: number;
  /** For the content hash: the host file's identity (device, inode, size, mtime). */
  identity: string;
}

class RootFs {
  readonly entries = new Map<string, Entry>();

  dir(path: string, mode = 0o755, owner = ROOT): void {
    this.put(path, { type: "dir", mode, ...owner, size: 0, identity: "" });
  }

  file(path: string, content: string | Buffer, mode = 0o644, owner = ROOT): void {
    const buffer = typeof content === "string" ? Buffer.from(content) : content;
    this.put(path, { type: "file", mode, ...owner, content: buffer, size: buffer.length, identity: createHash("sha256").update(buffer).digest("hex") });
  }

  /** A file of test/docker/images/ at `path` in the image. */
  localFile(path: string, relative: string, mode = 0o644): void {
    this.file(path, readFileSync(join(IMAGES_DIR, relative)), mode);
  }

  symlink(path: string, target: string): void {
    this.put(path, { type: "symlink", mode: 0o777, ...ROOT, target, size: 0, identity: target });
  }

  /** A host file at the same path; every symlink on the way (e.g. /lib -> usr/lib) is kept as a symlink. Returns its real path. */
  host(path: string, pkg: string, install?: string): string {
    if (!existsSync(path)) throw missing(path, pkg, install);
    const real = this.follow(path, 0);
    const st = statSync(real);
    if (!st.isFile()) throw new TestImageError(`${path} is not a regular file`);
    this.put(real, { type: "file", mode: st.mode & 0o7777, ...ROOT, source: real, size: st.size, identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` });
    return real;
  }

  /** A host directory tree (files and symlinks as they are) where `keep(relative path)`; returns the files' paths. */
  tree(dir: string, pkg: string, keep: (relative: string) => boolean = () => true): string[] {
    if (!existsSync(dir)) throw missing(dir, pkg);
    const files: string[] = [];
    const walk = (relative: string) => {
      for (const e of readdirSync(join(dir, relative), { withFileTypes: true })) {
        const rel = relative ? `${relative}/${e.name}` : e.name;
        const path = `${dir}/${rel}`;
        if (e.isDirectory()) walk(rel);
        else if (!keep(rel)) continue;
        else if (e.isSymbolicLink()) this.symlink(path, readlinkSync(path));
        else files.push(this.host(path, pkg));
      }
    };
    walk("");
    return files;
  }

  /**
   * Host ELF binaries (or libraries) and every shared library ldd names for
   * them; `libraryPath`: folders of a program's own libraries, which it finds
   * by itself (the JDK's libraries need the already loaded libjvm.so).
   */
  binaries(paths: string[], pkg: string, libraryPath: string[] = []): void {
    const elf: string[] = [];
    for (const path of paths) {
      const real = this.host(path, pkg);
      if (readFileSync(real).subarray(0, 4).toString("latin1") === "\x7fELF") elf.push(real);
    }
    for (const lib of sharedLibraries(elf, libraryPath)) this.host(lib, `of ${lib}`, `dpkg -S ${lib}`);
  }

  /**
   * Debian's dash as /bin/sh, busybox (static) and a link for each of its
   * applets the image does not already have. (Not busybox's own sh: Debian
   * builds it to run its applets before anything on PATH, so `sh -c setpriv`
   * would never reach util-linux's setpriv.)
   */
  busybox(): void {
    this.binaries(["/usr/bin/dash"], "dash");
    this.symlink("/usr/bin/sh", "dash");
    this.binaries(["/usr/bin/busybox"], "busybox-static");
    for (const applet of busyboxApplets("/usr/bin/busybox")) {
      const at = `/usr/bin/${applet}`;
      if (!this.entries.has(at) && !this.entries.has(`/usr/sbin/${applet}`)) this.symlink(at, "busybox");
    }
  }

  private follow(path: string, depth: number): string {
    if (depth > 40) throw new TestImageError(`too many symlinks resolving ${path}`);
    let current = "";
    for (const part of path.split("/").filter(Boolean)) {
      const next = `${current}/${part}`;
      if (lstatSync(next).isSymbolicLink()) {
        const target = readlinkSync(next);
        this.symlink(next, target);
        current = this.follow(posix.resolve(current || "/", target), depth + 1);
      } else {
        current = next;
      }
    }
    return current || "/";
  }

  private put(path: string, entry: Entry): void {
    if (!path.startsWith("/") || path.includes("//")) throw new TestImageError(`rootfs path "${path}" must be absolute and normalised`);
    const existing = this.entries.get(path);
    if (existing && (existing.type !== entry.type || existing.target !== entry.target) && !(existing.type === "dir" && entry.type === "dir")) {
      throw new TestImageError(`rootfs path ${path} added twice, as ${existing.type} and ${entry.type}`);
    }
    this.entries.set(path, entry);
  }

  /** Every entry with its parents, sorted so that a directory precedes what it holds. */
  sorted(): [string, Entry][] {
    const all = new Map(this.entries);
    for (const path of this.entries.keys()) {
      for (let dir = posix.dirname(path); dir !== "/"; dir = posix.dirname(dir)) {
        const parent = all.get(dir);
        if (parent && parent.type !== "dir") throw new TestImageError(`rootfs path ${path} lies under ${dir}, which is a ${parent.type}`);
        if (!parent) all.set(dir, { type: "dir", mode: 0o755, ...ROOT, size: 0, identity: "" });
      }
    }
    return [...all.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  fingerprint(config: readonly string[]): string {
    const hash = createHash("sha256").update(`${BUILDER_VERSION}\0${JSON.stringify(config)}\0`);
    for (const [path, e] of this.sorted()) hash.update(`${path}\0${e.type}\0${e.mode}\0${e.uid}:${e.gid}\0${e.identity}\n`);
    return hash.digest("hex");
  }

  async *tar(): AsyncGenerator<Buffer> {
    for (const [path, e] of this.sorted()) {
      const name = path.slice(1) + (e.type === "dir" ? "/" : "");
      yield* tarHeader(name, e);
      if (e.type !== "file") continue;
      if (e.content) {
        yield e.content;
      } else {
        let read = 0;
        for await (const chunk of createReadStream(e.source!)) {
          read += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        if (read !== e.size) throw new TestImageError(`${e.source} changed while it was read (${read} bytes, expected ${e.size})`);
      }
      const pad = (512 - (e.size % 512)) % 512;
      if (pad) yield Buffer.alloc(pad);
    }
    yield Buffer.alloc(1024);
  }
}

function octal(buf: Buffer, offset: number, length: number, value: number): void {
  buf.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, length, "latin1");
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let total = n + String(n).length;
  if (String(total).length !== String(n).length) total = n + String(total).length;
  return `${total}${body}`;
}

/** A ustar header, preceded by a PAX header when the name or link target does not fit. */
function* tarHeader(name: string, e: Entry): Generator<Buffer> {
  const target = e.target ?? "";
  const pax = [Buffer.byteLength(name) > 100 ? paxRecord("path", name) : "", Buffer.byteLength(target) > 100 ? paxRecord("linkpath", target) : ""].join("");
  if (pax) {
    const body = Buffer.from(pax);
    yield ustar(`PaxHeader/${name.slice(-80)}`, "x", 0o644, ROOT, body.length, "");
    yield body;
    const pad = (512 - (body.length % 512)) % 512;
    if (pad) yield Buffer.alloc(pad);
  }
  const type = e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0";
  yield ustar(name.slice(0, 100), type, e.mode, e, e.type === "file" ? e.size : 0, target.slice(0, 100));
}

function ustar(name: string, type: string, mode: number, owner: { uid: number; gid: number }, size: number, link: string): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, "utf8");
  octal(b, 100, 8, mode);
  octal(b, 108, 8, owner.uid);
  octal(b, 116, 8, owner.gid);
  octal(b, 124, 12, size);
  octal(b, 136, 12, 0);
  b.fill(" ", 148, 156);
  b.write(type, 156, 1, "latin1");
  b.write(link, 157, 100, "utf8");
  b.write("ustar\u000000", 257, 8, "latin1");
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

/** The shared libraries (and dynamic loader) `ldd` names for these ELF files; fails naming any it cannot find. */
function sharedLibraries(files: string[], libraryPath: string[] = []): string[] {
  if (files.length === 0) return [];
  const env = libraryPath.length > 0 ? { ...process.env, LD_LIBRARY_PATH: libraryPath.join(":") } : process.env;
  const result = spawnSync("ldd", files, { encoding: "utf8", maxBuffer: 16 * 1024 * 1024, env });
  if (result.error) throw missing("ldd", "libc-bin");
  const libs = new Set<string>();
  let current = "";
  for (const line of result.stdout.split("\n")) {
    if (!line.startsWith("\t") && line.endsWith(":")) current = line.slice(0, -1);
    const notFound = /^\s*(\S+) => not found/.exec(line);
    if (notFound) throw new TestImageError(`${current || files[0]} needs ${notFound[1]}, which ldd cannot find on this machine`);
    const path = /=> (\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+) \(0x/.exec(line)?.[1];
    // A library found by its loader's $ORIGIN (the JDK's) is named through "bin/../lib".
    if (path) libs.add(posix.normalize(path));
  }
  return [...libs].sort();
}

let appletCache: string[] | undefined;
function busyboxApplets(busybox: string): string[] {
  if (!appletCache) {
    const result = spawnSync(busybox, ["--list"], { encoding: "utf8" });
    if (result.status !== 0) throw missing("busybox", "busybox-static");
    appletCache = result.stdout.split("\n").filter((a) => /^[A-Za-z0-9_.[-]+$/.test(a) && a !== "busybox");
  }
  return appletCache;
}

// --- docker import ---------------------------------------------------------

function docker(cli: DockerCli, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync("docker", args, { env: cli.env, encoding: "utf8" });
  if (result.error) throw missing("docker (the CLI)", "docker.io");
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

async function importImage(cli: DockerCli, kind: BuiltImage["kind"], ref: string, built: Built, config: string[]): Promise<BuiltImage> {
  const started = Date.now();
  const content = built.fs.fingerprint(config);
  const existing = docker(cli, ["image", "inspect", "--format", `{{.Id}} {{with .Config.Labels}}{{index . "${CONTENT_LABEL}"}}{{end}}`, ref]);
  const [id, label] = existing.stdout.trim().split(" ");
  if (existing.status === 0 && label === content && id) return { ref, kind, id, built: false, seconds: (Date.now() - started) / 1000 };
  if (existing.status !== 0 && !/no such image/i.test(existing.stderr)) throw new TestImageError(`docker image inspect ${ref} failed: ${existing.stderr.trim()}`);

  const stopSignal = config.find((c) => c.startsWith("STOPSIGNAL "))?.slice("STOPSIGNAL ".length);
  const changes = [...config.filter((c) => !c.startsWith("STOPSIGNAL ")), `LABEL ${KIND_LABEL}=${kind}`, `LABEL ${CONTENT_LABEL}=${content}`, `LABEL ${KIND_LABEL}.inside=${JSON.stringify(built.inside)}`];
  const child = spawn("docker", ["import", ...changes.flatMap((c) => ["--change", c]), "--message", `bbaegok test image ${ref} (test/support/docker-images.ts)`, "-", ref], {
    env: cli.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", (err) => reject((err as NodeJS.ErrnoException).code === "ENOENT" ? missing("docker (the CLI)", "docker.io") : err));
    child.on("close", (code) => resolve(code ?? 1));
  });
  try {
    await pipeline(Readable.from(built.fs.tar()), child.stdin);
  } catch (err) {
    child.kill();
    await exited.catch(() => 1);
    throw new TestImageError(`docker import of ${ref} failed while streaming its root filesystem: ${(err as Error).message}${stderr ? `\n${stderr}` : ""}`);
  }
  const status = await exited;
  if (status !== 0) throw new TestImageError(`docker import of ${ref} failed (exit ${status}): ${stderr.trim()}`);
  const imageId = stopSignal ? withStopSignal(cli, ref, stopSignal) : stdout.trim();
  return { ref, kind, id: imageId, built: true, seconds: (Date.now() - started) / 1000 };
}

/**
 * `docker import --change` takes no STOPSIGNAL (Docker 20.10), but a commit
 * keeps the stop signal of the container it is made from: a container of the
 * imported image, created (never started) with that signal, is committed
 * under the same reference. The result has one more, empty layer.
 */
function withStopSignal(cli: DockerCli, ref: string, signal: string): string {
  const name = `bbaegok-test-image-${process.pid}-${Date.now()}`;
  const run = (args: string[]) => {
    const result = docker(cli, args);
    if (result.status !== 0) throw new TestImageError(`docker ${args.join(" ")} failed: ${result.stderr.trim()}`);
    return result.stdout.trim();
  };
  run(["create", "--name", name, "--stop-signal", signal, "--network", "none", ref]);
  try {
    const id = run(["commit", name, ref]);
    const actual = run(["image", "inspect", "--format", "{{.Config.StopSignal}}", ref]);
    if (actual !== signal) throw new TestImageError(`${ref} was committed with stop signal "${actual}", not ${signal}`);
    return id;
  } finally {
    docker(cli, ["rm", "--force", name]);
  }
}
