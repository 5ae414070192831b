#!/usr/bin/env bash
# Builds the real Spring Boot test app (test/docker/images/spring-app) into the
# jar file named by $1, with Maven in a copy of its sources under a temporary
# folder (nothing is written into the repository). With --offline, only from
# the local Maven repository (~/.m2): what the tests run, whose network is
# loopback only. Without it, Maven fetches what ~/.m2 lacks from Maven Central:
# what scripts/install-test-deps.sh runs once.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || { [ $# -eq 2 ] && [ "$2" != --offline ]; }; then
  echo "usage: $0 <out.jar> [--offline]" >&2
  exit 2
fi
out=$1
offline=()
[ "${2:-}" = --offline ] && offline=(--offline)
src="$(cd "$(dirname "$0")/../test/docker/images/spring-app" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src/pom.xml" "$src/src" "$work/"
mvn --batch-mode --quiet -Dstyle.color=never "${offline[@]}" -DskipTests -f "$work/pom.xml" package
cp "$work/target/app.jar" "$out"
