#!/bin/bash
# healthcheck.sh of the MariaDB test image: the official image's health check
# script (https://mariadb.com/kb/en/using-healthcheck-sh/), with the tests
# this project uses. Arguments are read in order; each --<test> runs at once
# and a failing one exits 1. Options: --su=USER / --su USER / --su-mysql (run
# the rest as that user), --datadir=DIR, --no-defaults, --defaults-file=F,
# --defaults-extra-file=F, --defaults-group-suffix=S. Tests: connect,
# innodb_initialized, innodb_buffer_pool_loaded. The client reads
# $datadir/.my-healthcheck.cnf (written by the entrypoint) by default. If no
# connect test passed, the script ends with one, as the official one does.
# Replication, Galera and mariadbupgrade tests are not implemented here
# (test/docker/images/CONTRACTS.md) and fail loudly.
set -eo pipefail

datadir=/var/lib/mysql
defaults=()
nodefaults=
connect_s=
if [ -f "$datadir/.my-healthcheck.cnf" ]; then
  defaults=(--defaults-extra-file="$datadir/.my-healthcheck.cnf")
fi

client() {
  mariadb ${nodefaults:+--no-defaults} "${defaults[@]}" --skip-ssl --skip-ssl-verify-server-cert "$@"
}

socket_sql() {
  client --protocol socket -B --skip-column-names -e "$1"
}

# The server accepts TCP connections (authentication is not judged: access denied is connected).
connect() {
  local s
  s=$(socket_sql 'select @@skip_networking' 2>/dev/null) || s=
  case "$s" in
    0 | 1)
      connect_s=$s
      return "$s"
      ;;
  esac
  s=$(client -h localhost --protocol tcp --skip-column-names --batch --skip-print-query-on-error -e 'select @@skip_networking' 2>&1) || true
  case "$s" in
    0 | 'ERROR 1820 (HY000)'* | 'ERROR 4151 (HY000):'* | 'ERROR 1226 (42000)'* | ERROR\ 1[0-9][0-9][0-9]\ \(28000\):*)
      connect_s=0
      ;;
    1 | 'ERROR 2002 (HY000):'*)
      connect_s=1
      ;;
    *)
      echo "Unknown error $s" >&2
      connect_s=1
      ;;
  esac
  return "$connect_s"
}

# InnoDB finished its recovery and start.
innodb_initialized() {
  [ "$(socket_sql "select 1 from information_schema.ENGINES WHERE engine='innodb' AND support in ('YES', 'DEFAULT', 'ENABLED')")" = 1 ]
}

innodb_buffer_pool_loaded() {
  [[ $(socket_sql "select VARIABLE_VALUE from information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='Innodb_buffer_pool_load_status'") == *'load completed'* ]]
}

if [ $# -eq 0 ]; then
  echo "At least one argument required" >&2
  exit 1
fi

while [ $# -gt 0 ]; do
  test=
  case "$1" in
    --su=*) exec gosu "${1#*=}" "${BASH_SOURCE[0]}" "${@:2}" ;;
    --su) exec gosu "$2" "${BASH_SOURCE[0]}" "${@:3}" ;;
    --su-mysql) exec gosu mysql "${BASH_SOURCE[0]}" "${@:2}" ;;
    --datadir=*) datadir=${1#*=} ;;
    --datadir)
      shift
      datadir=$1
      ;;
    --no-defaults)
      defaults=()
      nodefaults=1
      ;;
    --defaults-file=* | --defaults-extra-file=* | --defaults-group-suffix=*)
      defaults=("$1")
      nodefaults=
      ;;
    --connect | --innodb_initialized | --innodb_buffer_pool_loaded) test=${1#--} ;;
    --replication* | --galera_online | --galera_ready | --mariadbupgrade)
      echo "healthcheck $1 is not implemented in this test image (test/docker/images/CONTRACTS.md)" >&2
      exit 1
      ;;
    *)
      echo "healthcheck unknown option or test '${1#--}'" >&2
      exit 1
      ;;
  esac
  if [ -n "$test" ] && ! "$test"; then
    echo "healthcheck $test failed" >&2
    exit 1
  fi
  shift
done

if [ "$connect_s" != 0 ]; then
  connect
  exit $?
fi
