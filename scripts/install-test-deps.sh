#!/usr/bin/env bash
# Installs what the test suite runs for real on a fresh Debian machine: nginx,
# MariaDB, PostgreSQL, the AWS CLI, Debian's boto3 for python3, zstd, shellcheck,
# wrk, strace, Docker (docker.io), OpenSSH's server and client, sudo, busybox-static,
# OpenJDK 17 and Maven; then the npm packages; the Spring Boot test app's Maven
# dependencies (Maven Central, into ~/.m2); then moto's S3 server (PyPI, pinned) in .test-venv/;
# then Pulumi's engine and the program's plugins, built from the Go module proxy
# (npm run engine:install: a few seconds when Go's caches and .engine/ are warm).
# Packages already present are left alone. Services are NOT started by the
# install (the tests start their own on loopback, with their own data dirs).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nginx || need+=(nginx)
have mariadbd || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
have mariadb || need+=(mariadb-client)
have mariadb-dump || need+=(mariadb-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
have pg_dump || need+=(postgresql-client)
# Debian's AWS CLI in /usr/bin: the backup scripts run as root through sudo on
# the test server, whose PATH (secure_path) does not see an aws elsewhere.
[ -x /usr/bin/aws ] || need+=(awscli)
# The backup's uploader (infra/backup/s3-put.py) runs on Debian's python3 with Debian's boto3.
/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need+=(python3-boto3)
# The virtualenv moto's S3 server is installed into.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
have zstd || need+=(zstd)
# The replica link's WireGuard keys and files are checked by the real wg (test/unit/link-render.test.ts).
have wg || need+=(wireguard-tools)
# The link test brings WireGuard up in network namespaces; a kernel without its module
# (as here) makes wg-quick use the userspace implementation.
have wireguard-go || need+=(wireguard-go)
# ...and pings the primary over it from the replica's namespace (test/real/replica-link.test.ts).
have ping || need+=(iputils-ping)
# The link's boot unit is checked by systemd's own parser (test/unit/link-render.test.ts) and booted by systemd itself (test/real/link-boot.test.ts).
have systemd-analyze || need+=(systemd)
have shellcheck || need+=(shellcheck)
have wrk || need+=(wrk)
# The real Spring Boot test app (test/docker/images/spring-app): built by Maven, run on Debian's OpenJDK 17.
have javac || need+=(openjdk-17-jdk-headless)
have mvn || need+=(maven)
# The proxy's access-log test counts nginx's write(2) calls.
have strace || need+=(strace)
have flock || need+=(util-linux)
have runuser || need+=(util-linux)
have curl || need+=(curl)
# The test "home server" (test/support/docker-host.ts): dockerd and sshd started by hand.
have dockerd || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
have sshd || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
have ssh || need+=(openssh-client)
have sudo || need+=(sudo)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# Debian's cron: its parser (crontab) checks the rendered /etc/cron.d files; its daemon runs them on a server booted by systemd (test/real/cron-boot.test.ts).
have crontab || need+=(cron)

if [ "${#need[@]}" -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "install-test-deps: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Keep package scripts from starting system services: tests run their own.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "install-test-deps: system packages already present"
fi

cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund --loglevel=error

# moto's S3 server, the S3 stand-in of every test (versions, conditional
# writes, multipart uploads, Object Lock, IAM): test/support/moto.ts runs
# .test-venv/bin/moto_server.
MOTO_VERSION=5.2.5
if [ "$(.test-venv/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$MOTO_VERSION" ]; then
  echo "install-test-deps: installing moto[server]==$MOTO_VERSION into .test-venv/"
  /usr/bin/python3 -m venv .test-venv
  .test-venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
else
  echo "install-test-deps: moto $MOTO_VERSION already in .test-venv/"
fi

# The engine build needs Go 1.21 or later (go.mod files name 1.26; a newer Go
# than the machine's is fetched from the Go module proxy when GOTOOLCHAIN allows).
if ! have go; then
  echo "install-test-deps: Go is not installed; the engine build needs it (https://go.dev/doc/install, or Debian's golang-go from bookworm-backports)" >&2
  exit 1
fi
# The Spring Boot test app's Maven dependencies, fetched from Maven Central into
# ~/.m2 by one build (the tests build it again offline: test/support/docker-images.ts).
echo "install-test-deps: the Spring Boot test app's Maven dependencies"
spring_out=$(mktemp -d)
scripts/build-spring-app.sh "$spring_out/app.jar"
rm -rf "$spring_out"

npm run -s engine:install
