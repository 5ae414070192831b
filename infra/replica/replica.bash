# --- the replica's commands (infra/replica/replica.bash) ---
#   setup    make REPLICA a replica of PRIMARY (idempotent: an existing replica is left replicating);
#            PostgreSQL: the primary's side only, before the replica's container first starts;
#            a replica on another server (THIS_SERVER primary | replica): this server's side only
#   wait     wait until the replica replicates and is caught up (REPLICA_WAIT_SECONDS, 120)
#   status   print replication_state's JSON (promoted_state's once promoted); on the primary's server of a
#            replica elsewhere: the replica read over the link (MariaDB: its monitoring login; PostgreSQL:
#            the primary's pg_stat_replication)
#   promote  fence PRIMARY, then stop replicating and take writes on REPLICA (the runbook's npm run
#            promote); a replica on another server: on the primary's server, fence and print its
#            position; on the replica's, `promote <position>`: apply up to it, then take writes
#   unfence  take the fence off PRIMARY again: a promotion that failed before it changed REPLICA
#   writable once promoted (the flip's pulumi up, before the app moves): refuse unless REPLICA was
#            promoted on the server; make it writable if a restart since left it read-only
#   reseed [step [run]]  seed REPLICA again in place from PRIMARY, which keeps running (npm run reseed): a
#            replica that cannot catch up (status says "must be seeded again"), or any other; every step with
#            both containers here, one step (below) of a named run on each server of a replica elsewhere; run
#            detached from the session, which follows its log (detach)
#   reseed last  the last reseed or step run here, and whether it runs, ended ok, failed or was killed
#   retire   the replica was taken out of the stack (pulumi up, after removing its container): drop
#            what setup made on PRIMARY for it (PostgreSQL: its slot, which would keep WAL for ever once
#            the primary's max_slot_wal_keep_size is gone with the replica; the replication logins);
#            kept, with a warning, while a replica still replicates from PRIMARY (RETIRE_WAIT_SECONDS, 90)

# MariaDB/MySQL: a replication user with only REPLICATION SLAVE on the primary;
# the replica seeded from one consistent dump (--single-transaction: the
# primary is locked only for the instant the dump reads its GTID position),
# which sets the replica's gtid_slave_pos; then replication by GTID.
# With the replica on another server, each server's copy does its side: the
# primary's makes the replication and seeding logins; the replica's dumps the
# primary over the link (so the dump goes from one server to the other, never
# through the operator's), then makes the logins the primary's server reads
# the replica as (status, backups).
readonly DUMP_OPTIONS=(--single-transaction --gtid --master-data=1 --routines --triggers --events --hex-blob --default-character-set=utf8mb4 --databases "$DATABASE")
mariadb_setup() {
  case $THIS_SERVER in
    both)
      mariadb_primary_logins
      # shellcheck disable=SC2016 # expanded inside the container, not here
      seed_and_replicate "$PRIMARY" in_container "$PRIMARY" bash -c 'export MYSQL_PWD="$(cat "$1/db_root_password")"; shift; exec "$@"' dump "$secrets_dir" \
        "$DUMP" -uroot "${DUMP_OPTIONS[@]}" ;;
    primary) mariadb_primary_logins ;;
    replica)
      # The dump over the link runs under the link's guard: a primary gone silent fails the setup (and the up) instead of hanging it.
      # shellcheck disable=SC2016 # expanded inside the container, not here
      seed_and_replicate "$PRIMARY_HOST:$PRIMARY_PORT" in_container "$REPLICA" bash -c 'export MYSQL_PWD="$(cat "$1/replica_seed_password")"; shift; exec "$@"' dump "$secrets_dir" \
        perl -e "$LINK_STALL_GUARD" "$link_dump_stall_seconds" "$DUMP" -h "$PRIMARY_HOST" -P "$PRIMARY_PORT" -u "$SEEDING_USER" "${DUMP_OPTIONS[@]}"
      mariadb_replica_logins ;;
  esac
}

# On a replica on another server, outside its binary log (its GTIDs stay the
# primary's alone), the logins the primary's server uses over the link: one
# reads its replication state (SHOW SLAVE STATUS, @@gtid_slave_pos) with
# SLAVE MONITOR and nothing else; the backup's dumps it with the seeding
# login's read grants (below) and nothing else. Made on every setup: a
# changed password applies.
mariadb_replica_logins() {
  admin_sql "$REPLICA" <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS '$MONITOR_USER'@'%' IDENTIFIED BY '@MONITOR_PASSWORD@';
ALTER USER '$MONITOR_USER'@'%' IDENTIFIED BY '@MONITOR_PASSWORD@';
GRANT SLAVE MONITOR ON *.* TO '$MONITOR_USER'@'%';
$(mariadb_read_login "$BACKUP_USER" @BACKUP_PASSWORD@)
SQL
}

# The SQL making login $1 (password placeholder $2) with what a consistent
# dump of the service database needs and no more: SELECT, SHOW VIEW, TRIGGER
# and EVENT on it and SELECT on mysql.proc (without TRIGGER or mysql.proc the
# dump silently leaves out triggers and routines); --single-transaction takes
# no lock and, with --master-data, the position from the snapshot, so no RELOAD.
mariadb_read_login() {
  cat <<SQL
CREATE USER IF NOT EXISTS '$1'@'%' IDENTIFIED BY '$2';
ALTER USER '$1'@'%' IDENTIFIED BY '$2';
GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON \`$DATABASE\`.* TO '$1'@'%';
GRANT SELECT ON mysql.proc TO '$1'@'%';
SQL
}

# On the primary, outside its binary log (the replica keeps its own accounts).
# A replica on another server also gets a seeding login, which dumps the
# primary with read grants only (mariadb_read_login). A separate login, not
# the replicator with SELECT added, so the replication user keeps
# replication grants only.
mariadb_primary_logins() {
  local seeding=''
  if [[ $THIS_SERVER == primary ]]; then
    seeding=$(mariadb_read_login "$SEEDING_USER" @SEEDING_PASSWORD@)
  fi
  admin_sql "$PRIMARY" <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS '$REPLICATION_USER'@'%' IDENTIFIED BY '@REPLICATION_PASSWORD@';
ALTER USER '$REPLICATION_USER'@'%' IDENTIFIED BY '@REPLICATION_PASSWORD@';
GRANT REPLICATION SLAVE ON *.* TO '$REPLICATION_USER'@'%';
$seeding
SQL
}

# seed_and_replicate <where the primary is> <command printing the dump…>:
# seeds REPLICA from the dump unless it already replicates, then replicates
# from PRIMARY_HOST by GTID.
seed_and_replicate() {
  local from=$1
  shift
  if [[ -n $(admin_sql "$REPLICA" <<<'SHOW SLAVE STATUS') ]]; then
    admin_sql "$REPLICA" <<<'START SLAVE'
    replica_log info "$REPLICA already replicates from $from; left as it is"
    return
  fi
  # A replica takes no writes (its role file, a reseed's or a failback's fence): one that does was promoted and
  # holds the only copy of the app's writes since (a stack file edited back from database.primary: replica).
  if [[ $(takes_writes admin_sql "$REPLICA") == true ]]; then
    replica_log err "$REPLICA takes writes: promoted (npm run promote)? Seeding it from $PRIMARY would replace its data: refused. Once promoted, the stack file must keep database.primary: replica; npm run failback brings the original back"
    exit 1
  fi
  replica_log info "seeding $REPLICA from a consistent dump of $DATABASE on $from"
  # The replica's own binary log (its entrypoint's writes) would conflict with the primary's GTIDs.
  admin_sql "$REPLICA" <<<'STOP SLAVE; RESET SLAVE ALL; RESET MASTER;'
  # Loaded without the replica's binary log: its own GTIDs would conflict with the primary's.
  {
    echo 'SET SESSION sql_log_bin = 0;'
    "$@"
  } | admin_sql "$REPLICA"
  admin_sql "$REPLICA" <<SQL
CHANGE MASTER TO MASTER_HOST='$PRIMARY_HOST', MASTER_PORT=$PRIMARY_PORT, MASTER_USER='$REPLICATION_USER', MASTER_PASSWORD='@REPLICATION_PASSWORD@', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=10;
START SLAVE;
SQL
}

# PostgreSQL, the primary's side: a role with REPLICATION and LOGIN only, a
# physical slot (the primary keeps the WAL the replica has not received, up to
# max_slot_wal_keep_size, set here too), and a pg_hba line for its replication connections;
# for a standby on another server, the backup's role too (below).
# The replica's side is its entrypoint (pg_basebackup on an empty data folder).
# The sessions that send a password keep it out of the server's log when a statement fails (PG_UNLOGGED_STATEMENTS).
postgres_setup() {
  admin_sql "$PRIMARY" <<SQL
SET log_min_error_statement = panic;
SELECT format('CREATE ROLE %I', '$REPLICATION_USER') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$REPLICATION_USER') \\gexec
ALTER ROLE $REPLICATION_USER WITH REPLICATION LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '@REPLICATION_PASSWORD@';
SELECT pg_create_physical_replication_slot('$SLOT') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT');
SQL
  # A promoted primary has no such flag (its container is the replica's): the slot a failback makes there
  # must not keep WAL without bound while the original it feeds is stopped.
  admin_sql "$PRIMARY" >/dev/null <<<"ALTER SYSTEM SET max_slot_wal_keep_size = '$SLOT_WAL_KEEP';"
  if [[ $THIS_SERVER == primary ]]; then postgres_backup_role; fi
  # shellcheck disable=SC2016 # expanded inside the container, not here
  in_container "$PRIMARY" bash -c 'hba="$PGDATA/pg_hba.conf"; grep -qxF "$1" "$hba" || printf "%s\n" "$1" >>"$hba"' hba "host replication $REPLICATION_USER all scram-sha-256"
  admin_sql "$PRIMARY" <<<'SELECT pg_reload_conf();' >/dev/null
}

# A standby on another server: the role the primary's server's backup dumps
# it as, over the link. Made on the primary, the standby has it by
# replication: pg_read_all_data (every table, view and sequence, as SELECT
# would) and BYPASSRLS (pg_dump refuses a table with row security policies
# otherwise); nothing that writes. Made on every setup: a changed password applies.
postgres_backup_role() {
  admin_sql "$PRIMARY" <<SQL
SET log_min_error_statement = panic;
SELECT format('CREATE ROLE %I', '$BACKUP_USER') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$BACKUP_USER') \\gexec
ALTER ROLE $BACKUP_USER WITH LOGIN BYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '@BACKUP_PASSWORD@';
GRANT pg_read_all_data TO $BACKUP_USER;
SQL
}

# Waits until the replica is healthy, up to $1 seconds; prints the last state.
wait_until_replicating() {
  local deadline=$((SECONDS + $1)) state
  while :; do
    state=$(replication_state)
    if [[ $(jq -r .healthy <<<"$state") == true ]] || ((SECONDS >= deadline)); then
      printf '%s\n' "$state"
      [[ $(jq -r .healthy <<<"$state") == true ]]
      return
    fi
    sleep 1
  done
}

# Promotion (the runbook's npm run promote), in two halves, each run on the
# server holding its container: with both here, one after the other; with the
# replica on another server, npm run promote runs `promote` on the primary's
# server, then `promote <position>` on the replica's with what the first
# printed. Running either again changes nothing more.
#   fence  the original primary is fenced, so from then on it refuses the
#          app's writes (MariaDB/MySQL read_only, until its next restart;
#          PostgreSQL default_transaction_read_only by ALTER SYSTEM, which
#          lasts), and its position then is printed: everything it committed
#          (MariaDB @@gtid_binlog_pos, PostgreSQL pg_current_wal_lsn). A
#          primary whose container does not run (it is down: why one
#          promotes) cannot be fenced, is left as it is, and nothing is
#          printed; one that runs but refuses the fence is not promoted from.
#   take   the replica is given REPLICA_PROMOTE_WAIT_SECONDS (60) to apply up
#          to that position, then it stops replicating and takes writes;
#          without a position, at once, with what it has.
fence_primary() {
  if [[ $ENGINE == postgres ]]; then
    admin_sql "$PRIMARY" <<<'ALTER SYSTEM SET default_transaction_read_only = on;
SELECT pg_reload_conf();' >/dev/null
  else
    admin_sql "$PRIMARY" <<<'SET GLOBAL read_only = ON;'
  fi
}

# The fence taken off again (unfence): a promotion that failed before it
# changed anything on the replica leaves the original taking the app's
# writes, as it found it. Never once promoted: the original must stay fenced.
unfence_primary() {
  if [[ $ENGINE == postgres ]]; then
    admin_sql "$PRIMARY" <<<'ALTER SYSTEM RESET default_transaction_read_only;
SELECT pg_reload_conf();' >/dev/null
  else
    admin_sql "$PRIMARY" <<<'SET GLOBAL read_only = OFF;'
  fi
  replica_log info "$PRIMARY unfenced: it takes the app's writes again"
}

# PostgreSQL's fence makes new transactions read-only, not one already open:
# a transaction begun before it could still write and commit after the
# position is read, a write the promoted replica would never get. Those are
# given REPLICA_FENCE_DRAIN_SECONDS (10) to end; any still open then is
# ended (rolled back: its client is told it failed, never that it
# committed). MariaDB/MySQL's read_only waits for the commits in progress.
drain_after_fence() {
  local fenced_at open waited=0 limit=${REPLICA_FENCE_DRAIN_SECONDS:-10} before
  fenced_at=$(admin_sql "$PRIMARY" <<<'SELECT clock_timestamp()')
  before="backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start < '$fenced_at'::timestamptz"
  while open=$(admin_sql "$PRIMARY" <<<"SELECT count(*) FROM pg_stat_activity WHERE $before") && ((open > 0)); do
    if ((waited >= limit)); then
      admin_sql "$PRIMARY" >/dev/null <<<"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE $before"
      replica_log warning "$open transaction(s) begun on $PRIMARY before its fence still open after $limit s: ended, rolled back (their clients see them fail)"
      return
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

promote_fence() {
  local fence position
  if ! capture fence fence_primary; then
    if container_runs "$PRIMARY"; then
      # Not down, only not answering us (too many connections, a failed exec): the app may
      # still write there, and what it writes from now on the promoted replica would never get.
      replica_log err "$PRIMARY cannot be fenced (${fence//$'\n'/ }), but its container runs, so it may still take the app's writes: nothing is promoted. Run npm run promote again once it answers; to promote from it lost for good, stop its container first (docker stop $PRIMARY): one that does not run is not waited for"
      exit "$UNTOUCHED"
    fi
    replica_log warning "$PRIMARY cannot be fenced (${fence//$'\n'/ }) and its container does not run; $REPLICA is promoted with what it has"
    return 0
  fi
  replica_log info "$PRIMARY fenced: it refuses the app's writes from now on"
  if [[ $ENGINE == postgres ]]; then
    drain_after_fence
    capture position admin_sql "$PRIMARY" <<<'SELECT pg_current_wal_lsn()' || position="!$position"
  else
    capture position admin_sql "$PRIMARY" <<<'SELECT @@gtid_binlog_pos' || position="!$position"
  fi
  if [[ -z $position || $position == '!'* ]]; then
    # It answered the fence: what it committed is known only by its position, and a replica promoted without
    # waiting for it could leave writes the app was told were saved behind.
    replica_log err "$PRIMARY is fenced, but its position could not be read (${position#!}): nothing is promoted, its fence comes off again"
    unfence_primary
    exit "$UNTOUCHED"
  fi
  replica_log info "$PRIMARY's position once fenced: $position"
  printf '%s\n' "$position"
}

# Whether REPLICA (or container $1) still replicates (t or f): a MariaDB/MySQL one has its replication
# configured, a PostgreSQL one is in recovery.
still_replicates() {
  local answer on=${1:-$REPLICA}
  if [[ $ENGINE == postgres ]]; then
    answer=$(admin_sql "$on" <<<'SELECT pg_is_in_recovery()') || return
    echo "$answer"
  else
    answer=$(admin_sql "$on" <<<'SHOW SLAVE STATUS') || return
    [[ -n $answer ]] && echo t || echo f
  fi
}

# What REPLICA has applied: its GTID position (MariaDB/MySQL) or its replay LSN (PostgreSQL).
replica_position() {
  if [[ $ENGINE == postgres ]]; then
    admin_sql "$REPLICA" <<<'SELECT COALESCE(pg_last_wal_replay_lsn()::text, pg_current_wal_lsn()::text)'
  else
    admin_sql "$REPLICA" <<<'SELECT @@gtid_slave_pos'
  fi
}

# Waits up to $2 seconds until REPLICA has applied everything up to the primary's position $1.
applied_up_to() {
  local deadline=$((SECONDS + $2))
  if [[ $ENGINE != postgres ]]; then
    [[ $(admin_sql "$REPLICA" <<<"SELECT MASTER_GTID_WAIT('$1', $2)") == 0 ]]
    return
  fi
  until [[ $(admin_sql "$REPLICA" <<<"SELECT pg_last_wal_replay_lsn() >= '$1'::pg_lsn") == t ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

promote_take() {
  local position=${1:-} wait=${REPLICA_PROMOTE_WAIT_SECONDS:-60} replicates at answer
  # The position is the fence's output, passed on by npm run promote: checked before it is put in SQL.
  if [[ -n $position && ! $position =~ ^([0-9]+-[0-9]+-[0-9]+(,[0-9]+-[0-9]+-[0-9]+)*|[0-9A-F]+/[0-9A-F]+)$ ]]; then
    replica_log err "promote $position: expected the primary's position as its fence printed it (a GTID list, or a WAL LSN): refused"
    exit 2
  fi
  if ! capture replicates still_replicates; then
    replica_log err "$REPLICA does not answer (${replicates//$'\n'/ }): nothing was promoted"
    exit "$UNTOUCHED" # the header's: nothing changed on the replica, the fence may come off
  fi
  if [[ $replicates == f ]]; then
    # Promoted by an earlier run whose up then failed (npm run promote again). MariaDB's fence lasts until the
    # original's restart: one that restarted meanwhile took the app's writes, which the promoted one lacks.
    if [[ -n $position && $ENGINE != postgres ]] && ! applied_up_to "$position" 0; then
      replica_log err "$PRIMARY took writes after $REPLICA was promoted (it is at $position, $REPLICA at $(replica_position)): promoting again would lose them. Nothing was promoted, $PRIMARY's fence comes off and the app goes on writing there. $REPLICA no longer follows it: set it read-only (SET GLOBAL read_only = ON), seed it again with npm run reseed, then promote"
      exit "$UNTOUCHED"
    fi
    ensure_writable
    return
  fi
  if [[ -z $position ]]; then
    # The fence's own step prints a position whenever it fenced: none means the original's container does not run (it is down).
    replica_log warning "no position of $PRIMARY to wait for: $REPLICA is promoted with what it has ($(replica_position))"
  elif ! applied_up_to "$position" "$wait"; then
    # The original answered and holds those writes: promoting now would lose them, acknowledged to the app.
    replica_log err "$REPLICA has not applied $PRIMARY's writes up to $position after $wait s (it is at $(replica_position)): nothing was promoted, so that no write $PRIMARY acknowledged is lost, and its fence comes off again. npm run status says why it is behind; to promote from a primary lost for good, stop its container first: one whose container does not run is not waited for"
    exit "$UNTOUCHED"
  fi
  at=$(replica_position)
  replica_log info "promoting $REPLICA at $at (the primary's position: ${position:-unknown})"
  if [[ $ENGINE == postgres ]]; then
    answer=$(admin_sql "$REPLICA" <<<'SELECT pg_promote(wait => true, wait_seconds => 60) WHERE pg_is_in_recovery();')
    # pg_promote answers false, with no error, when the standby has not finished promoting within its wait.
    if [[ $answer == f ]]; then
      replica_log err "$REPLICA has not finished promoting within 60 s (pg_promote answered false): it may still come out of recovery; npm run status says when it takes writes, and npm run promote again then finishes the promotion"
      exit 1
    fi
  else
    admin_sql "$REPLICA" <<<'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;'
  fi
  replica_log info "$REPLICA promoted: it takes writes now"
}

# Both halves on this server, one after the other: PRIMARY fenced, REPLICA
# takes the writes. Exits with promote_take's status when it fails; when
# that changed nothing on REPLICA, PRIMARY's fence comes off again first.
fence_and_take() {
  local position status
  position=$(promote_fence)
  # A subshell of its own, errexit on inside (an `||` would switch it off there), so that its status is read.
  set +e
  (
    set -e
    promote_take "$position"
  )
  status=$?
  set -e
  # No position is not proof of no fence: one read that failed after the
  # fence leaves it on too, so the primary is asked when there is none.
  if ((status == UNTOUCHED)) && [[ -n $position || $(takes_writes admin_sql "$PRIMARY" 2>/dev/null) == false ]]; then unfence_primary; fi
  if ((status != 0)); then exit "$status"; fi
}

# After npm run promote (PROMOTED), REPLICA is the primary: status says
# whether it takes writes and whether the original, now out of date, still
# answers (it must stay stopped: a MariaDB/MySQL original is writable again
# after a restart, and the app must never write to it again; the program
# gives it the restart policy "no", so only a start by hand brings it back).
#   {promoted: true, healthy, writable, originalAnswers, originalWritable (null when it does not answer), reason (when not healthy)}
promoted_state() {
  local writable original answers=true follows=false reason=''
  if ! capture writable takes_writes replica_sql; then
    reason="the promoted $REPLICA does not answer: ${writable//$'\n'/ }" writable=false
  elif [[ $writable == false ]]; then
    reason="the promoted $REPLICA refuses writes (read-only)"
  fi
  original=$(takes_writes admin_sql "$PRIMARY" 2>/dev/null) || answers=false original=null
  if [[ -z $reason && $original == true ]]; then
    reason="the original $PRIMARY takes writes again (started by hand?): stop it, the app must not write there"
  fi
  # Seeded again by npm run failback's follow (a failback stopped before its return): it replicates from the promoted one.
  if [[ $original == false && $(still_replicates "$PRIMARY" 2>/dev/null) == t ]]; then follows=true; fi
  jq -cn --argjson writable "$writable" --argjson answers "$answers" --argjson original "$original" --argjson follows "$follows" --arg reason "$reason" \
    '{promoted: true, healthy: ($reason == ""), writable: $writable, originalAnswers: $answers, originalWritable: $original, originalFollows: $follows} + (if $reason == "" then {} else {reason: $reason} end)'
}

# After npm run promote (PROMOTED), the flip's pulumi up runs this before it
# moves the app: REPLICA must have been promoted on the server (a stack file
# saying so by a hand edit would move the app onto a read-only replica) and
# take writes. A MariaDB/MySQL one restarted between its promotion and this
# up started read-only, from its role file as it was then (the up rewrites
# it): made writable again here, as promote did.
ensure_writable() {
  local query='SHOW SLAVE STATUS' still writable
  [[ $ENGINE == postgres ]] && query='SELECT pg_is_in_recovery()'
  if ! capture still admin_sql "$REPLICA" <<<"$query"; then
    replica_log err "$REPLICA does not answer: ${still//$'\n'/ }"
    exit 1
  fi
  [[ $ENGINE == postgres && $still == f ]] && still=''
  if [[ -n $still ]]; then
    replica_log err "$REPLICA still replicates from $PRIMARY: it was not promoted (the stack file says database.primary: replica; npm run promote does both): refused"
    exit 1
  fi
  writable=$(takes_writes admin_sql "$REPLICA")
  if [[ $writable == false && $ENGINE != postgres ]]; then
    replica_log warning "$REPLICA was read-only (restarted since its promotion, before its role file said promoted): made writable"
    admin_sql "$REPLICA" <<<'SET GLOBAL read_only = OFF;'
    writable=$(takes_writes admin_sql "$REPLICA")
  fi
  if [[ $writable == false ]]; then
    replica_log err "$REPLICA refuses writes (read-only): the app cannot be moved to it"
    exit 1
  fi
  replica_log info "$REPLICA is the primary: it takes writes"
}

# Prints true or false: whether the database the SQL runner "$@" reaches (admin_sql <container>, or
# replica_sql: the replica, over the link from the primary's server) takes writes; fails when it does
# not answer.
takes_writes() {
  local answer
  if [[ $ENGINE == postgres ]]; then
    answer=$("$@" <<<"SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'") || return
    [[ $answer == t ]] && echo true || echo false
  else
    answer=$("$@" <<<'SELECT @@read_only') || return
    [[ $answer == 0 ]] && echo true || echo false
  fi
}

# What a replica taken out of the stack leaves on the primary: PostgreSQL, its
# slot (the primary keeps WAL for it, and the bound on that,
# max_slot_wal_keep_size, went with the replica's flags) and the replication
# and backup roles; MariaDB/MySQL, the replication and seeding logins (the
# binary log stops with the flags). The up removes the replica's container
# first; its connection may take a while to end (the primary notices at its
# next write to it), so this waits for that before it drops anything. One
# still there after the wait is a replica still replicating (never one this
# program removed): everything is kept, with a warning. Except a MariaDB
# replica elsewhere that no longer answers over the link (its server gone,
# npm run forget-server): the primary keeps a dead peer's binlog dump thread
# until TCP gives up, about 15 minutes, so that one is ended and the logins
# dropped. (PostgreSQL's walsender ends a dead one by wal_sender_timeout, 60 s.)
retire() {
  local waited=0 limit=${RETIRE_WAIT_SECONDS:-90} live query dead=false
  if [[ $ENGINE == postgres ]]; then
    query="SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active"
  else
    query="SELECT count(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'"
  fi
  while :; do
    if ! live=$(admin_sql "$PRIMARY" <<<"$query"); then
      replica_log err "$PRIMARY does not answer: the replica's slot and logins are not dropped (pulumi up tries again)"
      exit 1
    fi
    [[ $live == 0 ]] && break
    if ((waited >= limit)); then
      if [[ $ENGINE != postgres && $THIS_SERVER == primary ]] && ! replica_sql <<<'SELECT 1' >/dev/null 2>&1; then
        replica_log warning "$REPLICA does not answer at $REPLICA_HOST:$REPLICA_PORT: the replication connection still open on $PRIMARY is a dead one (its server gone); it is ended"
        dead=true
        break
      fi
      replica_log warning "a replica still replicates from $PRIMARY after ${limit} s: its slot and logins are kept"
      return 0
    fi
    sleep 2
    waited=$((waited + 2))
  done
  if [[ $ENGINE == postgres ]]; then
    admin_sql "$PRIMARY" >/dev/null <<SQL
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT';
DROP ROLE IF EXISTS $REPLICATION_USER;
DROP ROLE IF EXISTS $BACKUP_USER;
SQL
  else
    admin_sql "$PRIMARY" <<SQL
SET SESSION sql_log_bin = 0;
DROP USER IF EXISTS '$REPLICATION_USER'@'%', '$SEEDING_USER'@'%';
SQL
    if [[ $dead == true ]]; then
      local id
      for id in $(admin_sql "$PRIMARY" <<<"SELECT id FROM information_schema.processlist WHERE user = '$REPLICATION_USER' AND command LIKE 'Binlog Dump%'"); do
        admin_sql "$PRIMARY" <<<"KILL CONNECTION $id;" || true
      done
    fi
  fi
  replica_log info "the replica's slot and logins are dropped on $PRIMARY"
}

# Seeding again in place (npm run reseed): for a replica that can no longer
# catch up (status: "must be seeded again"), or one the operator no longer
# trusts, without taking it out of the stack: the primary keeps running and
# keeps its container, and so does the replica (Pulumi's state is unchanged).
# While it is seeded nothing reads a half-copied replica: the app's reads go
# to the primary (README, "Fall back to the primary…"), Metabase's fail
# until it is done, and the backup dumps the primary (status says why). Run
# again after a failure, it starts over: every step is safe to repeat.
# In six steps, each on the server holding what it changes, in this order
# (`reseed` alone runs them all, both containers on this server; a replica on
# another server gets them from npm run reseed, over two SSH connections):
#   check    (the primary's server) the primary answers: else nothing is touched
#   stop     (the replica's) out of reads and replication: PostgreSQL, the standby's container stopped;
#            MariaDB, its network logins locked, replication reset, the database dropped
#   primary  (the primary's) PostgreSQL, the slot made anew (a lost one cannot be used again, an old one
#            holds WAL from the old position); MariaDB, the replication and seeding logins
#   seed     (the replica's) PostgreSQL, its volume emptied and the container started: its entrypoint
#            seeds an empty folder by pg_basebackup; MariaDB, a consistent dump of the primary loaded
#   wait     (the primary's) until it replicates and is caught up, REPLICA_RESEED_WAIT_SECONDS (1800);
#            the seeding goes on after a failed wait
#   finish   (the replica's) MariaDB, the logins unlocked
reseed() {
  local step
  for step in check stop primary seed wait finish; do reseed_step "$step"; done
}

reseed_step() {
  local state waited=0
  case $1 in
    check)
      if ! capture state admin_sql "$PRIMARY" <<<'SELECT 1'; then
        replica_log err "$PRIMARY does not answer (${state//$'\n'/ }): $REPLICA is left as it is, nothing was seeded"
        exit 1
      fi
      replica_log info "seeding $REPLICA again from $PRIMARY; its replication before: $(replication_state)" ;;
    stop)
      # The stack file is the only other guard, and it can be behind: a
      # promotion not yet committed when CI deployed, or a hand edit, renders
      # this as a replica. One that answers and takes the app's writes is the
      # primary whatever the file says: seeding it again would drop its writes.
      # (One that does not answer, as a reseed cut after this step leaves it, goes on.)
      if [[ $(takes_writes admin_sql "$REPLICA" 2>/dev/null) == true ]]; then
        replica_log err "$REPLICA takes the app's writes: it is a primary (promoted?), not a replica to seed again; nothing was touched. If npm run promote made it the primary, the stack file must say database.primary: replica: commit it, then pulumi up"
        exit 1
      fi
      if [[ $ENGINE == postgres ]]; then
        replica_log info "stopping $REPLICA"
        docker stop --time 60 "$REPLICA" >/dev/null
      else
        app_logins lock
        admin_sql "$REPLICA" <<SQL
STOP SLAVE;
RESET SLAVE ALL;
SET SESSION sql_log_bin = 0;
DROP DATABASE IF EXISTS \`$DATABASE\`;
SQL
      fi ;;
    primary)
      if [[ $ENGINE == postgres ]]; then
        while [[ $(admin_sql "$PRIMARY" <<<"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active") != 0 ]]; do
          if ((waited >= 60)); then
            replica_log err "the slot $SLOT on $PRIMARY is still in use 60 s after $REPLICA stopped: another standby uses it? Nothing was dropped; $REPLICA stays stopped: run npm run reseed again"
            exit 1
          fi
          sleep 1
          waited=$((waited + 1))
        done
        admin_sql "$PRIMARY" >/dev/null <<<"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT';"
        postgres_setup
      else
        mariadb_primary_logins
      fi ;;
    seed)
      if [[ $ENGINE == postgres ]]; then
        local image
        image=$(docker inspect --format '{{.Config.Image}}' "$REPLICA")
        replica_log info "emptying $REPLICA's data folder ($REPLICA_DATA)"
        # PG_VERSION first: a folder left half-emptied (this stopped) has none, and the entrypoint clears such a folder.
        # shellcheck disable=SC2016 # expanded in the one-off container
        docker run --rm --network none --user 0:0 --volumes-from "$REPLICA" --entrypoint sh "$image" \
          -c 'rm -f -- "$1/PG_VERSION" && find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +' clear "$REPLICA_DATA"
        replica_log info "starting $REPLICA: its entrypoint seeds it by pg_basebackup"
        docker start "$REPLICA" >/dev/null
      else
        # What setup does on this server (both: the primary's logins again, unchanged).
        mariadb_setup
      fi ;;
    wait)
      if ! state=$(wait_until_replicating "${REPLICA_RESEED_WAIT_SECONDS:-1800}"); then
        replica_log err "$REPLICA, seeded again, does not replicate from $PRIMARY yet ($state): see npm run status; run npm run reseed again if it stays so"
        exit 1
      fi
      replica_log info "$REPLICA is seeded again and replicates from $PRIMARY: $state" ;;
    finish)
      [[ $ENGINE == postgres ]] || app_logins unlock ;;
  esac
}

# app_logins lock|unlock [container]: every login on the replica (or the
# container given) a client reaches it by over the network (the app's,
# Metabase's read-only one), outside its binary log; not root, roles (no
# host), the image's local logins (its health check) or this script's own.
# Locking also ends their open connections.
app_logins() {
  local logins user host id on=${2:-$REPLICA}
  logins=$(admin_sql "$on" <<SQL
SELECT User, Host FROM mysql.user
WHERE User NOT IN ('', 'root', 'mariadb.sys', '$REPLICATION_USER', '$SEEDING_USER', '$MONITOR_USER', '$BACKUP_USER')
  AND Host NOT IN ('', 'localhost', '127.0.0.1', '::1');
SQL
  )
  while IFS=$'\t' read -r user host; do
    [[ -n $user ]] || continue
    admin_sql "$on" <<<"SET SESSION sql_log_bin = 0; ALTER USER '$user'@'$host' ACCOUNT ${1^^};"
    if [[ $1 == lock ]]; then
      for id in $(admin_sql "$on" <<<"SELECT id FROM information_schema.processlist WHERE user = '$user'"); do
        admin_sql "$on" <<<"KILL CONNECTION $id;" 2>/dev/null || true # it may have ended by itself meanwhile
      done
    fi
    replica_log info "$user@$host on $on: ${1}ed"
  done <<<"$logins"
}

# The commands that change the databases take this server's lock first, so
# that two of them never interleave (a second npm run reseed started while
# the first loads, a promote during a reseed, pulumi up's setup during
# either): the second is refused at once, naming the first. status and wait
# only read. A replica on another server's reseed takes it step by step, so
# there it keeps two runs' steps from overlapping; in_run_order keeps them
# from alternating.
lock_file() {
  # Each copy its own (THIS_SERVER): two servers' copies never share a folder, but a test host holds both.
  printf '%s/%s-%s.lock' "$lock_dir" "$LOG_TAG" "$THIS_SERVER"
}

take_lock() {
  try_lock || refuse_held "$@"
  say_holder "$$" "$@"
}

# The lock on fd 9: fails at once when another process holds it.
try_lock() {
  local file
  file=$(lock_file)
  mkdir -p "${file%/*}"
  exec 9<>"$file"
  flock -n 9
}

refuse_held() {
  local holder
  holder=$(<"$(lock_file)")
  replica_log err "another replica.sh command is running on this server (${holder:-unknown}): $* refused; run it again once that one has ended"
  exit 1
}

# The lock file's line: what holds it, so that the refused and status can name it. say_holder <pid> <command…>
say_holder() {
  printf '%s (pid %s, since %s)\n' "${*:2}" "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$(lock_file)"
}

# Status' JSON from stdin, and when a command holds this server's lock (a
# reseed loading the replica, a setup), why the replica is not healthy says
# so: the backup's ping and npm run status then tell a reseed under way from
# a broken replica. It never takes the lock, not even for an instant (a
# setup refused because a status held it would fail an up): the holder is
# the process the lock file names, if it still runs this script (a pid is
# soon reused by another process). While none runs, a last reseed here that
# failed or was killed is said, when it ended and where its log is: the first
# place to look when the replica is not healthy after it.
with_running_command() {
  local state file holder running='' last='{}' ended=''
  state=$(cat)
  file=$(lock_file)
  if [[ -r $file ]]; then
    holder=$(<"$file")
    if running_holder "$holder" >/dev/null; then running=$holder; fi
  fi
  if [[ -z $running ]]; then
    last=$(reseed_last)
    # A failed run's end is its status file's time; a killed one left none: when it started, then.
    if [[ -s ${file%.lock}.status ]]; then ended=$(date -u -r "${file%.lock}.status" +%Y-%m-%dT%H:%M:%SZ); elif [[ -e ${file%.lock}.run ]]; then ended=$(date -u -r "${file%.lock}.run" +%Y-%m-%dT%H:%M:%SZ); fi
  fi
  jq -c --arg running "$running" --argjson last "$last" --arg ended "$ended" --arg log "${file%.lock}.log" '
    if .reason and $running != "" then .reason += "; replica.sh \($running) is running on this server"
    elif .reason and ($last.state == "failed" or $last.state == "killed") then
      .reason += "; the last reseed here \(if $last.step == "all" then "" else "(its \($last.step) step, run \($last.run)) " end)\(if $last.state == "failed" then "failed at \($ended)" else "was killed (it started at \($ended))" end): its log is \($log) on this server"
    else . end' <<<"$state"
}

# A reseed outlives the SSH session that started it (a dump loading for an
# hour, and the operator's connection drops or they press Ctrl-C): it runs in
# a session of its own, its log in a file beside the lock (this server's
# last reseed's log stays there), and this process follows that log to its
# end and exits with its status. A dropped connection ends the following,
# not the reseed. The same command run again while it runs follows it to
# its end instead of being refused; any other command is refused, naming it.
# The detached run holds the lock, taken here and passed down (fd 9).
detach() {
  local file log status holder pid
  file=$(lock_file)
  log=${file%.lock}.log status=${file%.lock}.status
  if try_lock; then
    in_run_order "$@"
    rm -f -- "$status"
    : >"$log"
    printf '%s\n' "$*" >"${file%.lock}.run"
    REPLICA_DETACHED_STATUS=$status setsid "$BASH" "$0" "$@" </dev/null >>"$log" 2>&1 &
    pid=$!
    say_holder "$pid" "$@"
  else
    holder=$(<"$file")
    if ! { [[ $holder == "$* (pid "* ]] && pid=$(running_holder "$holder"); }; then refuse_held "$@"; fi
    replica_log info "replica.sh $holder is running on this server: following its log to its end"
  fi
  exec 9>&-
  tail -n +1 -f --pid="$pid" -- "$log" >&2
  if [[ -s $status ]]; then exit "$(<"$status")"; fi
  replica_log err "${0##*/} $* (pid $pid) ended without an exit status (killed?): the log above is where it stopped; run npm run ${RUN_BY:-reseed} again"
  exit 1
}

# A named run's step (reseed <step> <run>, a replica elsewhere's) goes only
# after its step before it on this server ended ok, with nothing between:
# two npm run reseed at once (two operators, or one run again while the
# first still went) would otherwise alternate their steps on the two servers
# and one run's seeding follow the other's stopping and primary's side.
# This server's first step of a run (check, stop) goes after anything.
# Refused (exit 1) before its record is touched, so the other run goes on
# (or, its own steps split the same way on the other server, is refused
# too: nothing is left half-done that a new run does not redo).
in_run_order() {
  local before last
  [[ -n ${3:-} ]] || return 0
  before=$(step_before "$2")
  [[ -n $before ]] || return 0
  last=$(reseed_last)
  if [[ $last != "$(jq -cn --arg step "$before" --arg run "$3" '{step: $step, run: $run, state: "ok"}')" ]]; then
    replica_log err "reseed $2 $3: this server's last reseed step is $last, not $before of run $3 ended ok: another run's step came between (a second npm run reseed at once?) or the step before failed; refused: run npm run reseed again (it follows a run still going, or starts a new one)"
    exit 1
  fi
}

# This server's steps of a run, in order (RESEED_STEPS, from infra/replica/render.ts): all of them with both containers here.
server_steps() {
  local entry
  for entry in "${RESEED_STEPS[@]}"; do
    if [[ $THIS_SERVER == both || ${entry#*:} == "$THIS_SERVER" ]]; then echo "${entry%%:*}"; fi
  done
}

# The step before $1 in a run's order on this server (nothing for its first).
step_before() {
  local step before=''
  for step in $(server_steps); do
    if [[ $step == "$1" ]]; then
      echo "$before"
      return
    fi
    before=$step
  done
}

# reseed last: the last reseed (or step) this server ran, as JSON: {} when
# none; else its step ("all" for every step at once), the run it belongs to
# (npm run reseed names each run of a replica elsewhere, so that a run cut
# by a dropped connection goes on from where it stopped), and its state:
# running, ok, failed, or killed (it ended without an exit status).
reseed_last() {
  local file args step run state
  file=$(lock_file)
  [[ -s ${file%.lock}.run ]] || { echo '{}'; return; }
  args=$(<"${file%.lock}.run")
  # A failback's follow (failback.sh) runs detached under the same lock: not a reseed.
  [[ $args == reseed* ]] || { echo '{}'; return; }
  read -r _ step run <<<"$args"
  if [[ $(<"$file") == "$args (pid "* ]] && running_holder "$(<"$file")" >/dev/null; then
    state=running
  elif [[ -s ${file%.lock}.status ]]; then
    if [[ $(<"${file%.lock}.status") == 0 ]]; then state=ok; else state=failed; fi
  else
    state=killed
  fi
  jq -cn --arg step "${step:-all}" --arg run "${run:-}" --arg state "$state" '{step: $step, run: $run, state: $state}'
}

# The pid a lock file's line names, if that process still runs this script (pids are soon reused). Its
# cmdline's redirection after 2>/dev/null: a process gone is no error to print. Never this process or
# its parent (the install helper's command names this script too): a dead holder's pid reused by either.
running_holder() {
  [[ $1 =~ \(pid\ ([0-9]+), ]] && ((BASH_REMATCH[1] != $$ && BASH_REMATCH[1] != PPID)) && tr '\0' ' ' 2>/dev/null <"/proc/${BASH_REMATCH[1]}/cmdline" | grep -qF -- "$0" && echo "${BASH_REMATCH[1]}"
}

main() {
  # The up's setup commands are declared in every state with the same inputs, so they never run again on a
  # promotion or its way back; a stack promoted before that gets them at its next up, which must not fail.
  # Seeding the promoted replica from the out-of-date original would lose its writes: nothing is done, and
  # no lock taken (a failback under way holds it).
  if [[ ${1:-} == setup || ${1:-} == wait ]] && [[ $PROMOTED == true ]]; then
    replica_log info "$REPLICA is the primary (promoted): nothing to $1; it is never set up again from $PRIMARY, which is out of date"
    return 0
  fi
  case ${1:-} in
    setup | promote | unfence | writable | retire) take_lock "$@" ;;
  esac
  case ${1:-} in
    setup) if [[ $ENGINE == postgres ]]; then postgres_setup; else mariadb_setup; fi ;;
    wait)
      if ! wait_until_replicating "${REPLICA_WAIT_SECONDS:-120}"; then
        replica_log err "$REPLICA does not replicate from $PRIMARY"
        exit 1
      fi
      replica_log info "$REPLICA replicates from $PRIMARY" ;;
    status) if [[ $PROMOTED == true ]]; then promoted_state; else replication_state | with_running_command; fi ;;
    promote)
      case $THIS_SERVER in
        both)
          if [[ $# -gt 1 ]]; then
            replica_log err "promote takes no position with both containers on this server: it fences $PRIMARY and reads its position itself"
            exit 2
          fi
          fence_and_take ;;
        primary)
          if [[ $# -gt 1 ]]; then
            replica_log err "promote takes no position on the primary's server ($THIS_SERVER): it fences $PRIMARY and prints its position for the replica's server"
            exit 2
          fi
          promote_fence ;;
        replica) promote_take "${2:-}" ;;
      esac ;;
    unfence)
      if [[ $PROMOTED == true ]]; then
        replica_log err "$REPLICA is the primary (promoted): $PRIMARY stays fenced, the app must not write there: refused"
        exit 1
      fi
      unfence_primary ;;
    writable)
      if [[ $PROMOTED != true ]]; then
        replica_log err "$REPLICA is a replica (the stack file does not say database.primary: replica): refused"
        exit 1
      fi
      ensure_writable ;;
    reseed)
      if [[ $PROMOTED == true ]]; then
        replica_log err "$REPLICA is the primary (promoted); seeding it again from $PRIMARY, which is out of date, would lose its writes: refused"
        exit 1
      fi
      if [[ ${2:-} == last ]]; then
        reseed_last
        exit
      fi
      if [[ -n ${3:-} && ! ${3} =~ ^[0-9a-f]{8,32}$ ]]; then
        replica_log err "reseed $2 $3: expected a run's name of 8 to 32 hexadecimal digits (npm run reseed names its runs)"
        exit 2
      fi
      if [[ ${2:-all} == all && $THIS_SERVER != both ]]; then
        replica_log err "reseed needs $PRIMARY and $REPLICA on this server; the replica is on another server: npm run reseed runs its steps on each server"
        exit 1
      elif [[ ${2:-all} != all && " $(server_steps | tr '\n' ' ')" != *" $2 "* ]]; then
        replica_log err "reseed $2 is not a step this server runs ($THIS_SERVER): check, primary and wait run on the primary's server; stop, seed and finish on the replica's"
        exit 2
      fi
      if [[ -z ${REPLICA_DETACHED_STATUS:-} ]]; then detach "$@"; fi
      # The detached run: its status for the process following it, written before the lock goes with it.
      trap 'echo "$?" >"$REPLICA_DETACHED_STATUS"' EXIT
      if [[ ${2:-all} == all ]]; then reseed; else reseed_step "$2"; fi ;;
    retire)
      if [[ $PROMOTED == true ]]; then
        replica_log err "$REPLICA is the primary (promoted): nothing of it is retired"
        exit 1
      fi
      retire ;;
    *)
      echo "usage: $0 setup|wait|status|promote [position]|unfence|writable|reseed [check|stop|primary|seed|wait|finish [run]|last]|retire" >&2
      exit 2 ;;
  esac
}
