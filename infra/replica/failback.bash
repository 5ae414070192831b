# --- the failback's commands (infra/replica/failback.bash) ---
# This copy of the script is rendered with the roles swapped (failbackScript
# in infra/replica/render.ts): PRIMARY is the promoted replica's container,
# which takes the app's writes since npm run promote, and REPLICA the
# original's, out of date and fenced. npm run failback runs, through it:
#   follow   the original is seeded again as a replica of the promoted one
#            (its own data dumped first into FAILBACK_DIR: writes a promotion
#            without a fence left on it alone), then waits until it is caught
#            up; run again, a following original is only waited for. The
#            seeding runs detached, as a reseed does (replica.bash, detach)
#   return   the switchover back: the promoted one is fenced, the original
#            applies up to its position, stops replicating and takes writes;
#            then the promoted one's app logins are locked (it is out of date
#            from then on: the app's reads, routed to it by the stack file
#            once it says database.primary: original, fall back to the
#            primary until npm run reseed seeds it again)
#   status   the original's replication from the promoted one (replica.sh status's JSON)
# Both containers on this server only: a replica elsewhere is refused.

# Where the original's own data is dumped before follow drops it (root's, 0700).
failback_dir() {
  printf '%s\n' "${FAILBACK_DIR:-$FAILBACK_DIR_DEFAULT}"
}

# The original's database, dumped into failback_dir before follow overwrites
# it: a promotion made while the original was down (no fence) leaves the
# writes it committed last on it alone, and this is the only copy left of
# them. Made once per failback: the marker file names the dump, and a follow
# run again after its seeding began (the original then half-seeded, its
# dump already taken) does not dump again. Fails, and nothing is dropped,
# when the dump fails.
dump_original() {
  local dir marker file
  dir=$(failback_dir)
  marker=$dir/original-dumped
  if [[ -s $marker ]]; then
    replica_log info "$REPLICA's own data was dumped before its seeding began ($(<"$marker")): not dumped again"
    return
  fi
  mkdir -p "$dir"
  chmod 0700 "$dir"
  file=$dir/$REPLICA-$(date -u +%Y%m%dT%H%M%SZ).sql.zst
  replica_log info "dumping $REPLICA's $DATABASE into $file before it is seeded again (its writes since the promotion, if any, are there only)"
  # shellcheck disable=SC2016 # expanded inside the container, not here
  if [[ $ENGINE == postgres ]]; then
    in_container "$REPLICA" pg_dump -U postgres --no-password "$DATABASE" | zstd -q -3 -o "$file.partial"
  else
    in_container "$REPLICA" bash -c 'export MYSQL_PWD="$(cat "$1/db_root_password")"; shift; exec "$@"' dump "$secrets_dir" \
      "$DUMP" -uroot --single-transaction --routines --triggers --events --hex-blob --default-character-set=utf8mb4 --databases "$DATABASE" | zstd -q -3 -o "$file.partial"
  fi
  mv -- "$file.partial" "$file"
  printf '%s\n' "$file" >"$marker"
  replica_log info "$REPLICA's own data is in $file ($(stat -c %s "$file") bytes)"
}

# Whether REPLICA already follows PRIMARY (t or f): MariaDB/MySQL, it replicates from PRIMARY_HOST;
# PostgreSQL, it is in recovery (a standby: the original never is, but once follow seeded it).
follows_promoted() {
  local answer
  if [[ $ENGINE == postgres ]]; then
    answer=$(admin_sql "$REPLICA" <<<'SELECT pg_is_in_recovery()') || return
    echo "$answer"
  else
    answer=$(admin_sql "$REPLICA" --column-names --vertical <<<'SHOW SLAVE STATUS') || return
    [[ $answer == *"Master_Host: $PRIMARY_HOST"$'\n'* ]] && echo t || echo f
  fi
}

# PostgreSQL: the original's data replaced by a base backup of the promoted
# one, through the slot, taken by a one-off container of the original's
# image on its volumes and in the promoted one's network namespace; then the
# standby's settings in its postgresql.auto.conf (its container's flags are
# the primary's, left as they are: the container is not re-created) and
# standby.signal. The connection's password stays in the password file both
# containers mount. Then the original is started: a standby of the promoted.
postgres_seed_original() {
  local image uid
  image=$(docker inspect --format '{{.Config.Image}}' "$REPLICA")
  if [[ $image != "$(docker inspect --format '{{.Config.Image}}' "$PRIMARY")" ]]; then
    replica_log err "$REPLICA runs $image, $PRIMARY $(docker inspect --format '{{.Config.Image}}' "$PRIMARY"): a base backup needs the same PostgreSQL on both; nothing was changed"
    exit 1
  fi
  uid=$DATABASE_UID
  replica_log info "stopping $REPLICA"
  docker stop --time 60 "$REPLICA" >/dev/null
  replica_log info "base backup of $PRIMARY into $REPLICA's data folder ($REPLICA_DATA)"
  # shellcheck disable=SC2016 # expanded in the one-off container
  docker run --rm --network "container:$PRIMARY" --user "$uid" --volumes-from "$REPLICA" --entrypoint bash "$image" -c '
    set -euo pipefail
    data=$1 secrets=$2 port=$3 user=$4 slot=$5 host=$6
    rm -f -- "$data/PG_VERSION"
    find "$data" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
    PGPASSFILE=$secrets/replication.pgpass pg_basebackup --no-password -h 127.0.0.1 -p "$port" -U "$user" -D "$data" -X stream -S "$slot" --checkpoint=fast
    printf "%s\n" "# The original following the promoted replica (npm run failback): removed when it takes writes again." \
      "primary_conninfo = '"'"'host=$host port=$port user=$user passfile=$secrets/replication.pgpass application_name=$slot'"'"'" \
      "primary_slot_name = '"'"'$slot'"'"'" "hot_standby_feedback = on" >>"$data/postgresql.auto.conf"
    touch "$data/standby.signal"' \
    seed "$REPLICA_DATA" "$secrets_dir" "$PRIMARY_PORT" "$REPLICATION_USER" "$SLOT" "$PRIMARY_HOST"
  replica_log info "starting $REPLICA: a standby of $PRIMARY"
  docker start "$REPLICA" >/dev/null
}

failback_follow() {
  local state follows
  if ! capture state takes_writes admin_sql "$PRIMARY" || [[ $state != true ]]; then
    # npm run failback run again after a failed up that came after its return: nothing to follow.
    if [[ $state == false ]] && returned_before; then
      replica_log info "$REPLICA already takes writes and $PRIMARY is fenced: returned before, nothing to follow"
      return
    fi
    replica_log err "$PRIMARY, the promoted primary, does not take writes (${state//$'\n'/ }): $REPLICA is left as it is"
    exit 1
  fi
  if admin_sql "$REPLICA" <<<'SELECT 1' >/dev/null 2>&1; then
    :
  elif [[ $ENGINE == postgres && -s $(failback_dir)/original-dumped ]]; then
    # Its seeding began (its data dumped, then replaced): cut short, by a power cut in its base backup, a
    # half-copied folder may never start again; seeded again without starting it (nothing of it is lost).
    replica_log info "$REPLICA does not answer and its seeding began before: seeded again"
    follows=f
  else
    # Stopped since the promotion (a reboot, or by hand: Docker does not start it again, its restart policy is no).
    replica_log info "starting $REPLICA (stopped since the promotion)"
    docker start "$REPLICA" >/dev/null
    wait_until_answers "$REPLICA" 120
  fi
  if [[ -z ${follows:-} ]] && ! capture follows follows_promoted; then
    replica_log err "$REPLICA does not answer (${follows//$'\n'/ }): nothing was changed"
    exit 1
  fi
  if [[ $follows == t ]]; then
    replica_log info "$REPLICA already follows $PRIMARY: waiting until it is caught up"
  else
    dump_original
    if [[ $ENGINE == postgres ]]; then
      # A slot an earlier failback left holds WAL from then: made afresh.
      admin_sql "$PRIMARY" >/dev/null <<<"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active;"
      postgres_setup
      postgres_seed_original
    else
      app_logins lock
      # Read-only from here (the fence at the promotion went with any restart since): only replication writes to it.
      admin_sql "$REPLICA" <<SQL
SET GLOBAL read_only = ON;
STOP SLAVE;
RESET SLAVE ALL;
SET SESSION sql_log_bin = 0;
DROP DATABASE IF EXISTS \`$DATABASE\`;
SQL
      mariadb_setup
      app_logins unlock
    fi
  fi
  if ! state=$(wait_until_replicating "${REPLICA_RESEED_WAIT_SECONDS:-1800}"); then
    replica_log err "$REPLICA does not follow $PRIMARY yet ($state): run npm run failback again (it waits for a seeded original)"
    exit 1
  fi
  replica_log info "$REPLICA follows $PRIMARY, caught up: $state"
}

# Waits until container $1's server answers, up to $2 seconds.
wait_until_answers() {
  local deadline=$((SECONDS + $2))
  until admin_sql "$1" <<<'SELECT 1' >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      replica_log err "$1 does not answer $2 s after its start: nothing was changed"
      exit 1
    fi
    sleep 1
  done
}

# The promoted one, out of date once the original takes writes: every login
# a client reaches it by is locked and its connections ended (MariaDB/MySQL:
# app_logins; PostgreSQL: every role that may log in but the administrator,
# replication and backup ones), so the app's reads fall back to the primary
# until npm run reseed seeds it again (which brings the logins back with the
# original's data).
lock_promoted() {
  if [[ $ENGINE == postgres ]]; then
    # Fenced (default_transaction_read_only): this session alone writes.
    admin_sql "$PRIMARY" >/dev/null <<SQL
SET default_transaction_read_only = off;
SELECT format('ALTER ROLE %I NOLOGIN', rolname) FROM pg_roles
WHERE rolcanlogin AND rolname NOT IN ('postgres', '$REPLICATION_USER', '$BACKUP_USER') \\gexec
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename NOT IN ('postgres', '$REPLICATION_USER', '$BACKUP_USER');
SQL
  else
    app_logins lock "$PRIMARY"
  fi
  replica_log info "$PRIMARY's logins locked: it is out of date until npm run reseed seeds it again"
}

# Whether return was done before: the original takes writes and follows nothing, the promoted one is fenced.
returned_before() {
  [[ $(follows_promoted 2>/dev/null) == f ]] && [[ $(takes_writes admin_sql "$REPLICA" 2>/dev/null) == true ]] && [[ $(takes_writes admin_sql "$PRIMARY" 2>/dev/null || echo false) == false ]]
}

failback_return() {
  local follows
  if ! capture follows follows_promoted || [[ $follows != t ]]; then
    if returned_before; then
      replica_log info "$REPLICA already takes writes and $PRIMARY is fenced: returned before"
      lock_promoted
      # A run that switched and then failed left the marker: a later failback's follow must dump the original again.
      rm -f -- "$(failback_dir)/original-dumped"
      return
    fi
    replica_log err "$REPLICA does not follow $PRIMARY (${follows//$'\n'/ }): run npm run failback again, which seeds it first; nothing was changed"
    exit 1
  fi
  fence_and_take
  if [[ $ENGINE == postgres ]]; then
    # The standby's settings follow wrote, taken out: a primary has no use for them, and a reseed's base backup copies the file.
    # The switch is made: what is left is tidying, said when it fails, never a failed return.
    admin_sql "$REPLICA" >/dev/null <<<'ALTER SYSTEM RESET primary_conninfo; ALTER SYSTEM RESET primary_slot_name; ALTER SYSTEM RESET hot_standby_feedback; SELECT pg_reload_conf();' ||
      replica_log warning "$REPLICA keeps the standby's settings in its postgresql.auto.conf (inert without standby.signal)"
    # The slot the original streamed through would keep the promoted one's WAL until its reseed.
    admin_sql "$PRIMARY" >/dev/null <<<"SET default_transaction_read_only = off; SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active;" ||
      replica_log warning "the slot $SLOT on $PRIMARY is left: its reseed removes it"
  fi
  lock_promoted
  rm -f -- "$(failback_dir)/original-dumped"
  replica_log info "$REPLICA is the primary again; $PRIMARY is fenced"
}

failback_main() {
  if [[ $THIS_SERVER != both ]]; then
    replica_log err "npm run failback needs $PRIMARY and $REPLICA on one server; the replica is on another server: not built yet"
    exit 1
  fi
  case ${1:-} in
    follow)
      if [[ -z ${REPLICA_DETACHED_STATUS:-} ]]; then detach "$@"; fi
      trap 'echo "$?" >"$REPLICA_DETACHED_STATUS"' EXIT
      failback_follow ;;
    return)
      take_lock "$@"
      failback_return ;;
    status) replication_state ;;
    *)
      echo "usage: $0 follow|return|status (the failback's copy: replica.sh has the replica's other commands)" >&2
      exit 2 ;;
  esac
}
