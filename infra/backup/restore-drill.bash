# --- the restore drill (infra/backup/restore-drill.bash) ---
# For each target: the newest backup that has a manifest is streamed from S3
# (sha256 checked on the way) into a throwaway database server of the same
# image, then its tables, row counts and objects are compared with the
# manifest. The throwaway server is removed whatever happens. It reads with
# the drill's own read-only identity; nothing here writes to the bucket, so
# a drill's result lives in the log and the ping, not in S3.
# It also fails when that newest backup is older than the backup schedule
# allows (MAX_BACKUP_AGE_SECONDS), so a backup job that silently stopped
# running is caught on the server itself, at least once a drill.

readonly DRILL_DATABASE=restore_drill
# The dump comes from the server, so whoever owns the server writes it. It is
# restored with nothing it could use: MariaDB's client runs with --sandbox (a
# `\!` line fails instead of running), and PostgreSQL's restore and every
# query after it run as this role, the throwaway database's owner, which is
# not a superuser (no COPY ... TO PROGRAM, no server files).
readonly DRILL_ROLE=restore_drill

# The AWS CLI (Debian's awscli) with the drill's read-only identity: it only
# lists versions and reads them.
s3() {
  local args=(--region "$REGION" --cli-connect-timeout 10)
  [[ -n $endpoint_url ]] && args+=(--endpoint-url "$endpoint_url")
  aws "${args[@]}" "$@"
}

# Nothing in the bucket is trusted for being there: the server's put-only key
# cannot overwrite a key (the bucket policy demands If-None-Match: *), but a
# compromised server can add keys. So, by the rules of ops/restore/backups.ts
# (npm run restore and backup:status judge alike): every key is read at its
# FIRST version, and a key with more than one version or a delete marker is
# SUSPICIOUS; backups are ordered by S3's LastModified of the manifest, not by
# the name the server gave it; a key dated (by the time in its name) more than
# 15 min (S3's own allowed clock skew) after S3 received it is refused, so a
# future-dated key is never the newest.
# Reads `aws s3api list-object-versions` (every page: the CLI paginates) on
# stdin; prints {first: {<key>: {version, modified}}, suspicious: [<why>],
# newest: {key, version, modified} | null}, times in epoch seconds.
first_versions() {
  # shellcheck disable=SC2016 # a jq program: its $names are jq's
  jq --argjson expire_days "$EXPIRE_AFTER_DAYS" '
    # The CLI prints 2026-01-05T04:00:01.123000+00:00 (version 2) or 2026-01-05T04:00:01.123Z (version 1).
    def epoch:
      (capture("^(?<s>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?<f>[.][0-9]+)?(?<z>Z|[+-][0-9]{2}:?[0-9]{2})$")
        // error("LastModified \(.) is not an ISO 8601 time"))
      | (.s + "Z" | fromdateiso8601) + ("0\(.f // "")" | tonumber)
        - (if .z == "Z" then 0 else (if .z[0:1] == "-" then -1 else 1 end) * ((.z[1:3] | tonumber) * 3600 + (.z[-2:] | tonumber) * 60) end);
    def stamp: (capture("/(?<t>[0-9]{8}T[0-9]{6}Z)[.][^/]+$") | .t) // null;
    def stamp_epoch: try ("\(.[0:4])-\(.[4:6])-\(.[6:8])T\(.[9:11]):\(.[11:13]):\(.[13:15])Z" | fromdateiso8601) catch null;
    [(.Versions // [])[] | {key: .Key, version: .VersionId, modified: (.LastModified | epoch), marker: false}]
    + [(.DeleteMarkers // [])[] | {key: .Key, version: .VersionId, modified: (.LastModified | epoch), marker: true}]
    # S3 lists the versions of a key newest first: of two at the same LastModified, the later listed is the older.
    | to_entries | map(.value + {index: .key})
    | group_by(.key)
    | map(
        ([.[] | select(.marker | not)] | sort_by([.modified, -.index]) | first) as $first
        # Only delete markers: nothing to read.
        | select($first != null)
        # The lifecycle expires a backup with a delete marker no sooner than expire_days after it was
        # written: not counted (as ops/restore/backups.ts firstVersions).
        | ($first.modified + $expire_days * 86400) as $expires
        | {key: $first.key, version: $first.version, modified: $first.modified,
           versions: ([.[] | select((.marker | not) or .modified < $expires)] | length)}
        | (.key | stamp) as $stamp
        | . + {stamp: $stamp, refused: ($stamp != null and (($stamp | stamp_epoch) // 0) > .modified + 900)})
    | {
        first: (map({(.key): {version, modified}}) | add // {}),
        suspicious: [.[]
          | if .refused then "\(.key) is dated \(.stamp), after S3 received it (\(.modified | floor | todate); 15 min of clock skew allowed): refused, a future-dated key is never the newest backup"
            elif .versions > 1 then "\(.key) has \(.versions) versions: it was written or hidden after its first upload, which is the one read"
            else empty end],
        newest: ([.[] | select((.key | test("^[^/]+/[^/]+/[0-9]{8}T[0-9]{6}Z[.]manifest[.]json$")) and (.refused | not)) | . + {taken: (.stamp | stamp_epoch)}]
          | sort_by([.modified, .taken, .key]) | last | if . then {key, version, modified} else null end)
      }'
}

# Runs the throwaway database server: `start <engine> <image>`,
# `exec <engine> <command...>`, `stop <engine>`. On the server that is a
# container without a network; BACKUP_DRILL_DB names another program taking
# the same arguments (the tests point it at local servers).
drill_db() {
  if [[ -n ${BACKUP_DRILL_DB:-} ]]; then
    "$BACKUP_DRILL_DB" "$@"
    return
  fi
  local action=$1 engine=$2
  shift 2
  case $action in
    start)
      local env=(-e POSTGRES_HOST_AUTH_METHOD=trust -e "POSTGRES_DB=$DRILL_DATABASE")
      [[ $engine == mariadb ]] && env=(-e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e "MARIADB_DATABASE=$DRILL_DATABASE")
      [[ $engine == mysql ]] && env=(-e MYSQL_ALLOW_EMPTY_PASSWORD=yes -e "MYSQL_DATABASE=$DRILL_DATABASE")
      docker rm -f "$DRILL_CONTAINER" >/dev/null 2>&1 || true
      docker run --detach --rm --name "$DRILL_CONTAINER" --network none --label bbaegok.role=restore-drill "${env[@]}" "$1" >/dev/null || return 1
      # The images initialise with a temporary server, then restart: ready is three answers in a row.
      local ok=0 tries=0
      while ((ok < 3 && tries < 180)); do
        sleep 1
        tries=$((tries + 1))
        if drill_db exec "$engine" "${PROBE[@]}" >/dev/null 2>&1; then ok=$((ok + 1)); else ok=0; fi
      done
      ((ok == 3))
      ;;
    exec) docker exec -i "$DRILL_CONTAINER" "$@" ;;
    stop) docker rm -f "$DRILL_CONTAINER" >/dev/null 2>&1 || true ;;
  esac
}

drill_sql() {
  local engine=$1 sql=$2
  if [[ $engine == postgres ]]; then
    drill_db exec "$engine" psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$DRILL_ROLE" -d "$DRILL_DATABASE" -c "$sql"
  else
    drill_db exec "$engine" "$CLIENT" --batch --skip-column-names -uroot "$DRILL_DATABASE" -e "$sql"
  fi
}

# Prints "table<TAB>rows" for every table of the restored database.
restored_row_counts() {
  local engine=$1 table
  if [[ $engine == postgres ]]; then
    drill_sql "$engine" "$PG_COUNTS_SQL"
    return
  fi
  drill_sql "$engine" "$MYSQL_TABLES_SQL" >"$work/restored-tables.txt" || return 1
  local rows
  while IFS= read -r table; do
    rows=$(drill_sql "$engine" "SELECT COUNT(*) FROM \`${table//\`/\`\`}\`") || return 1
    printf '%s\t%s\n' "$table" "$rows"
  done <"$work/restored-tables.txt"
}

# Prints why the newest backup is stale, or nothing. Its age counts from the
# earlier of the time in its key (when the run started, by the server's
# clock) and the manifest's LastModified (S3's clock), so neither a wrong
# server clock nor a mis-named key can make an old backup look fresh.
# BACKUP_NOW (epoch seconds) is for tests.
staleness() {
  local key=$1 uploaded=$2 stamp taken now age
  stamp=${key##*/}
  stamp=${stamp%%.*}
  taken=$(date -u -d "${stamp:0:4}-${stamp:4:2}-${stamp:6:2}T${stamp:9:2}:${stamp:11:2}:${stamp:13:2}Z" +%s 2>/dev/null) || taken=0
  if uploaded=$(date -u -d "$uploaded" +%s 2>/dev/null) && ((uploaded < taken)); then
    taken=$uploaded
  fi
  now=${BACKUP_NOW:-$(date +%s)}
  age=$((now - taken))
  if ((age > MAX_BACKUP_AGE_SECONDS)); then
    printf 'STALE: the newest backup was taken %s h ago (%s), more than the %s h the backup schedule "%s" allows: the backup job has not succeeded since' \
      "$((age / 3600))" "$(date -u -d "@$taken" +%Y-%m-%dT%H:%M:%SZ)" "$((MAX_BACKUP_AGE_SECONDS / 3600))" "$BACKUP_SCHEDULE"
  fi
}

# Makes the throwaway server safe to restore an untrusted dump into: the
# PostgreSQL role without superuser that owns the database, or a check that
# the image's MariaDB/MySQL client has --sandbox (Oracle's mysql has not).
sandbox_restore() {
  local engine=$1 image=$2 help
  if [[ $engine == postgres ]]; then
    drill_db exec "$engine" psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$DRILL_DATABASE" \
      -c "CREATE ROLE $DRILL_ROLE LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB" \
      -c "ALTER DATABASE $DRILL_DATABASE OWNER TO $DRILL_ROLE" -c "ALTER SCHEMA public OWNER TO $DRILL_ROLE"
    return
  fi
  help=$(drill_db exec "$engine" "$CLIENT" --help 2>&1) || true
  if [[ $help != *--sandbox* ]]; then
    printf 'the %s client in %s has no --sandbox, so a \\! line in the dump would run as root in the container; drill with an image whose client has it (MariaDB 10.5.25, 10.6.18, 10.11.8, 11.4.2 or later)\n' "$CLIENT" "$image" >&2
    return 1
  fi
}

# Why a restore failed: the client's first error line (PostgreSQL's is
# followed by many lines of context), else its last lines.
restore_failure() {
  grep -m 1 -E 'ERROR|error' "$1" || tail -n 3 "$1" | tr '\n' ' '
}

drill_target() {
  local name=$1 engine=$2 image=$3
  local where="$STACK/$name ($engine)" folder="s3://$BUCKET/$STACK/$name/" manifest_key manifest_version key data_version sha
  log info "restore drill of $where started"
  if ! s3 s3api list-object-versions --bucket "$BUCKET" --prefix "$STACK/$name/" --output json >"$work/versions.json" 2>"$work/s3.err"; then
    log err "restore drill of $where failed: cannot list the versions under $folder: $(tail -n 3 "$work/s3.err" | tr '\n' ' ')"
    return 1
  fi
  if ! first_versions <"$work/versions.json" >"$work/keys.json" 2>"$work/jq.err"; then
    log err "restore drill of $where failed: cannot read the version listing of $folder: $(tail -n 3 "$work/jq.err" | tr '\n' ' ')"
    return 1
  fi
  local suspicious newest uploaded
  suspicious=$(jq -r '.suspicious | map("SUSPICIOUS: " + .) | join("; ")' "$work/keys.json")
  newest=$(jq -r '.newest // empty | [.key, .version, (.modified | floor)] | @tsv' "$work/keys.json")
  IFS=$'\t' read -r manifest_key manifest_version uploaded <<<"$newest"
  if [[ -z $manifest_key ]]; then
    log err "restore drill of $where failed: no backup with a manifest under $folder${suspicious:+; $suspicious}"
    return 1
  fi
  local stale
  stale=$(staleness "$manifest_key" "@$uploaded")
  if ! s3 s3api get-object --bucket "$BUCKET" --key "$manifest_key" --version-id "$manifest_version" "$work/manifest.json" >/dev/null 2>"$work/s3.err" ||
    ! key=$(jq -er .key "$work/manifest.json" 2>"$work/s3.err") || ! sha=$(jq -er .sha256 "$work/manifest.json" 2>"$work/s3.err"); then
    log err "restore drill of $where failed: cannot read the manifest s3://$BUCKET/$manifest_key (version $manifest_version): $(tail -n 3 "$work/s3.err" | tr '\n' ' ')${suspicious:+; $suspicious}"
    return 1
  fi
  # A manifest names the data object of its own run, never another key: a
  # planted manifest could otherwise point the drill at anything readable.
  local own_key="${manifest_key%.manifest.json}.sql.zst"
  [[ $engine == postgres ]] && own_key="${manifest_key%.manifest.json}.pgdump.zst"
  if [[ $key != "$own_key" ]]; then
    log err "restore drill of $where FAILED: the manifest s3://$BUCKET/$manifest_key names $key, not its own run's $own_key${suspicious:+; $suspicious}"
    return 1
  fi
  data_version=$(jq -r --arg key "$key" '.first[$key].version // empty' "$work/keys.json")
  if [[ -z $data_version ]]; then
    log err "restore drill of $where FAILED: the manifest s3://$BUCKET/$manifest_key names s3://$BUCKET/$key, which is not in the bucket${suspicious:+; $suspicious}"
    return 1
  fi

  PROBE=("$CLIENT" -uroot "$DRILL_DATABASE" -e 'SELECT 1')
  [[ $engine == postgres ]] && PROBE=(psql -X -U postgres -d "$DRILL_DATABASE" -c 'SELECT 1')
  if ! drill_db start "$engine" "$image" 2>"$work/drill.err"; then
    log err "restore drill of $where failed: the throwaway $image server did not start: $(tail -n 3 "$work/drill.err" | tr '\n' ' ')"
    drill_db stop "$engine"
    return 1
  fi

  if ! sandbox_restore "$engine" "$image" 2>"$work/drill.err"; then
    log err "restore drill of $where failed: $(tail -n 3 "$work/drill.err" | tr '\n' ' ')"
    drill_db stop "$engine"
    return 1
  fi
  local restore=("$CLIENT" --sandbox --default-character-set=utf8mb4 --max-allowed-packet=1G -uroot "$DRILL_DATABASE")
  [[ $engine == postgres ]] && restore=(pg_restore --no-owner --no-privileges --exit-on-error -U "$DRILL_ROLE" -d "$DRILL_DATABASE")
  rm -f "$work/sha.fifo"
  mkfifo "$work/sha.fifo"
  sha256sum <"$work/sha.fifo" >"$work/sha256" &
  local sha_pid=$! statuses
  set +e
  # The CLI writes the body to the file it is given and its answer (JSON) to
  # stdout: the body goes to the pipe through fd 3, the answer to a file.
  s3 s3api get-object --bucket "$BUCKET" --key "$key" --version-id "$data_version" /dev/fd/3 3>&1 >"$work/get-object.json" 2>"$work/s3.err" |
    tee "$work/sha.fifo" | zstd --decompress --stdout --quiet |
    drill_db exec "$engine" "${restore[@]}" 2>"$work/restore.err"
  statuses=("${PIPESTATUS[@]}")
  set -e
  wait "$sha_pid" || true

  local problem=''
  if ((statuses[0] != 0)); then
    problem="download of s3://$BUCKET/$key (version $data_version) failed: $(tail -n 3 "$work/s3.err" | tr '\n' ' ')"
  elif [[ $(cut -d' ' -f1 <"$work/sha256") != "$sha" ]]; then
    problem="s3://$BUCKET/$key does not match its manifest's sha256"
  elif ((statuses[2] != 0 || statuses[3] != 0)); then
    problem="the restore into the throwaway server failed: $(restore_failure "$work/restore.err")"
  elif ! restored_row_counts "$engine" 2>"$work/restore.err" | LC_ALL=C sort >"$work/actual-tables.tsv"; then
    problem="could not count the restored rows: $(tail -n 3 "$work/restore.err" | tr '\n' ' ')"
  else
    jq -r '.tables[] | "\(.name)\t\(.rows)"' "$work/manifest.json" | LC_ALL=C sort >"$work/expected-tables.tsv"
    jq -r '.objects[] | "\(.type)\t\(.name)"' "$work/manifest.json" | LC_ALL=C sort >"$work/expected-objects.tsv"
    if [[ $engine == postgres ]]; then
      drill_sql "$engine" "$PG_OBJECTS_SQL" 2>>"$work/restore.err" | LC_ALL=C sort >"$work/actual-objects.tsv"
    else
      drill_sql "$engine" "$MYSQL_OBJECTS_SQL" 2>>"$work/restore.err" | LC_ALL=C sort >"$work/actual-objects.tsv"
    fi
    if ! diff "$work/expected-tables.tsv" "$work/actual-tables.tsv" >"$work/diff"; then
      problem="restored tables or row counts differ from the manifest (< manifest, > restored): $(head -n 10 "$work/diff" | grep '^[<>]' | tr '\n' ' ')"
    elif ! diff "$work/expected-objects.tsv" "$work/actual-objects.tsv" >"$work/diff"; then
      problem="restored views, routines, triggers or events differ from the manifest (< manifest, > restored): $(head -n 10 "$work/diff" | grep '^[<>]' | tr '\n' ' ')"
    fi
  fi
  drill_db stop "$engine"
  if [[ -n $stale ]]; then
    problem="${problem:+$problem; and }$stale"
  fi
  if [[ -n $suspicious ]]; then
    problem="${problem:+$problem; and }$suspicious"
  fi
  if [[ -n $problem ]]; then
    log err "restore drill of $where FAILED for s3://$BUCKET/$key: $problem"
    return 1
  fi
  log info "restore drill of $where passed: s3://$BUCKET/$key restored, $(wc -l <"$work/actual-tables.tsv") tables and $(wc -l <"$work/actual-objects.tsv") objects match the manifest"
}

usage() {
  printf 'usage: %s [--scheduled] [--database <name>]\n' "$(basename "$0")" >&2
  exit 2
}

main() {
  local scheduled='' only=''
  while (($# > 0)); do
    case $1 in
      --scheduled) scheduled=1 ;;
      --database)
        (($# >= 2)) || usage
        only=$2
        shift
        ;;
      *) usage ;;
    esac
    shift
  done
  if [[ -n $scheduled ]] && ! schedule_is_due "$SCHEDULE"; then
    exit 0
  fi
  local target name engine image failures=0 selected=()
  for target in "${TARGETS[@]}"; do
    read -r name _ <<<"$target"
    [[ -z $only || $name == "$only" ]] && selected+=("$target")
  done
  if ((${#selected[@]} == 0)); then
    local names
    names=$(printf '%s, ' "${TARGETS[@]%% *}")
    printf 'restore drill of stack %s: no database "%s" here; its databases: %s\n' "$STACK" "$only" "${names%, }" >&2
    exit 2
  fi
  require_tools aws zstd jq flock curl sha256sum
  use_server_credentials
  take_lock "restore drill"
  work=$(mktemp -d "${TMPDIR:-/tmp}/$LOG_TAG-drill.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  for target in "${selected[@]}"; do
    read -r name engine _ _ image <<<"$target"
    use_engine_tools "$engine"
    if ! drill_target "$name" "$engine" "$image"; then
      failures=$((failures + 1))
    fi
  done
  if ((failures > 0)); then
    log err "restore drill of stack $STACK: $failures of ${#selected[@]} databases FAILED"
    ping_health_check /fail
    exit 1
  fi
  log info "restore drill of stack $STACK: ${#selected[@]} of ${#TARGETS[@]} databases restored, matched their manifests and are within the backup schedule"
  # /log records the drill without resetting the backup check's timer.
  ping_health_check /log
}

main "$@"
