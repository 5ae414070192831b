# --- the backup run (infra/backup/backup.bash) ---
# For each target: dump -> zstd -> `aws s3 cp -` to <stack>/<database>/<UTC>.<ext>,
# streamed (no full-size temp file), then the manifest <...>.manifest.json.
# The manifest is the only mark of a good backup and is written last: a run
# that fails at any stage leaves at most a data object without a manifest,
# which restores, drills and the status never pick. Such objects cannot be
# deleted from here (the server's identity may only put objects, and Object
# Lock keeps them); the lifecycle rules expire them.
# Uploads carry a CRC32 checksum: S3 refuses an upload without one (or
# Content-MD5) into a bucket with Object Lock, and older CLIs do not add it.

# Counts what passes through a MySQL/MariaDB dump: rows per table and bytes.
# Rows are the tuples of the INSERT statements, whether the dump writes them
# on one line or one per line (MariaDB 10.11+), quoted strings skipped.
# Counting the stream itself gives the rows of the dump's own snapshot, not
# those of a second query a moment later.
count_sql_dump() {
  perl -e '
    my (%rows, $bytes, $table);
    while (my $line = <STDIN>) {
      $bytes += length $line;
      if (!defined $table) {
        next unless $line =~ /\AINSERT INTO `((?:[^`]|``)+)` VALUES ?/;
        ($table = $1) =~ s/``/`/g;
        $rows{$table} //= 0;
        $line = substr $line, $+[0];
      }
      $line =~ s/\x27(?:[^\x27\\]++|\\.)*+\x27//gs;
      $rows{$table} += () = $line =~ /(?:\A|\),)\(/g;
      undef $table if $line =~ /\);\s*\z/;
    }
    open my $out, ">", $ARGV[0] or die "cannot write $ARGV[0]: $!";
    print $out ($bytes // 0), "\n";
    print "$_\t$rows{$_}\n" for sort keys %rows;
  ' "$1"
}

count_bytes() {
  local bytes
  bytes=$(wc -c)
  printf '%s\n' "$bytes" >"$1"
}

# $1 name, $2 engine, $3 container, $4 admin user. Prints the server version.
database_version() {
  case $2 in
    postgres) db_exec "$3" "$2" psql -X -A -t -v ON_ERROR_STOP=1 -U "$4" -d "$1" -c 'SHOW server_version' ;;
    *) db_exec "$3" "$2" "$CLIENT" --batch --skip-column-names -u"$4" "$1" -e 'SELECT VERSION()' ;;
  esac
}

# Reads lines from the PostgreSQL session until the end marker.
read_session_until_end() {
  local line
  while IFS= read -r -t 600 line <&"${PG_SESSION[0]}"; do
    [[ $line == '--end--' ]] && return 0
    printf '%s\n' "$line"
  done
  return 1
}

# Dumps one database; returns non-zero after logging what failed.
backup_target() {
  local name=$1 engine=$2 container=$3 admin=$4
  local started=${EPOCHREALTIME/[.,]/} stamp ext key manifest_key version snapshot=''
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  ext=$([[ $engine == postgres ]] && echo pgdump.zst || echo sql.zst)
  key="$STACK/$name/$stamp.$ext"
  manifest_key="$STACK/$name/$stamp.manifest.json"
  local where="$STACK/$name ($engine in container $container)"
  log info "backup of $where to s3://$BUCKET/$key started"

  if ! version=$(database_version "$name" "$engine" "$container" "$admin" 2>"$work/db.err"); then
    log err "backup of $where failed: the database did not answer: $(tail -n 3 "$work/db.err" | tr '\n' ' ')"
    return 1
  fi

  # What the manifest lists, and (PostgreSQL) the snapshot the dump shares.
  if [[ $engine == postgres ]]; then
    coproc PG_SESSION { db_exec "$container" "$engine" psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$admin" -d "$name" 2>"$work/session.err"; }
    printf '%s\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' 'SELECT pg_export_snapshot();' >&"${PG_SESSION[1]}"
    IFS= read -r -t 60 snapshot <&"${PG_SESSION[0]}" || snapshot=''
    printf '%s\n' "$PG_COUNTS_SQL" "SELECT '--end--';" "$PG_OBJECTS_SQL" "SELECT '--end--';" >&"${PG_SESSION[1]}"
    if [[ -z $snapshot ]] || ! read_session_until_end >"$work/counts.tsv" || ! read_session_until_end >"$work/objects.tsv"; then
      log err "backup of $where failed: could not read the table list in a snapshot: $(tail -n 3 "$work/session.err" | tr '\n' ' ')"
      end_postgres_session
      return 1
    fi
  else
    if ! db_exec "$container" "$engine" "$CLIENT" --batch --skip-column-names -u"$admin" "$name" -e "$MYSQL_TABLES_SQL" >"$work/tables.txt" 2>"$work/db.err" ||
      ! db_exec "$container" "$engine" "$CLIENT" --batch --skip-column-names -u"$admin" "$name" -e "$MYSQL_OBJECTS_SQL" >"$work/objects.tsv" 2>>"$work/db.err"; then
      log err "backup of $where failed: could not list its tables: $(tail -n 3 "$work/db.err" | tr '\n' ' ')"
      return 1
    fi
  fi

  # Side consumers of the stream: rows and bytes of the dump, size and sha256 of what is uploaded.
  rm -f "$work"/*.fifo
  mkfifo "$work/raw.fifo" "$work/sha.fifo" "$work/size.fifo"
  if [[ $engine == postgres ]]; then
    count_bytes "$work/dump-bytes" <"$work/raw.fifo" &
  else
    count_sql_dump "$work/dump-bytes" <"$work/raw.fifo" >"$work/counts.tsv" &
  fi
  local raw_pid=$!
  sha256sum <"$work/sha.fifo" >"$work/sha256" &
  local sha_pid=$!
  count_bytes "$work/size" <"$work/size.fifo" &
  local size_pid=$!

  local statuses
  set +e
  dump_database "$name" "$engine" "$container" "$admin" "$snapshot" 2>"$work/dump.err" |
    tee "$work/raw.fifo" |
    zstd --quiet --stdout -T0 "-$ZSTD_LEVEL" |
    tee "$work/sha.fifo" "$work/size.fifo" |
    s3 s3 cp - "s3://$BUCKET/$key" --only-show-errors --content-type application/zstd --checksum-algorithm CRC32 2>"$work/upload.err"
  statuses=("${PIPESTATUS[@]}")
  set -e
  wait "$raw_pid" "$sha_pid" "$size_pid" || true
  [[ $engine == postgres ]] && end_postgres_session

  local stages=(dump tee zstd tee upload) i failed=()
  for i in "${!statuses[@]}"; do
    ((statuses[i] == 0)) || failed+=("${stages[i]} (exit ${statuses[i]})")
  done
  if ((${#failed[@]} > 0)); then
    local detail
    detail=$(tail -n 3 "$work/dump.err" "$work/upload.err" 2>/dev/null | grep -v '^==>' | grep -v '^$' | tr '\n' ' ')
    log err "backup of $where failed at: ${failed[*]}; no manifest written, s3://$BUCKET/$key is not a backup. $detail"
    return 1
  fi

  local sha size dump_bytes duration_us
  sha=$(cut -d' ' -f1 <"$work/sha256")
  size=$(<"$work/size")
  dump_bytes=$(head -n 1 "$work/dump-bytes")
  duration_us=$((${EPOCHREALTIME/[.,]/} - started))
  if [[ $engine != postgres ]]; then
    # Tables with no INSERT line have no rows.
    awk -F'\t' 'FILENAME == ARGV[1] { rows[$1] = $2; next } { print $1 "\t" ($1 in rows ? rows[$1] : 0) }' "$work/counts.tsv" "$work/tables.txt" >"$work/tables.tsv"
  else
    cp "$work/counts.tsv" "$work/tables.tsv"
  fi

  if ! jq -n \
    --arg stack "$STACK" --arg database "$name" --arg engine "$engine" --arg version "$version" \
    --arg key "$key" --arg createdAt "$(date -u -d "@${started:0:-6}" +%Y-%m-%dT%H:%M:%SZ)" --arg sha256 "$sha" \
    --argjson size "$size" --argjson dumpBytes "$dump_bytes" --argjson durationUs "$duration_us" \
    --rawfile tables "$work/tables.tsv" --rawfile objects "$work/objects.tsv" \
    '{format: 1, stack: $stack, database: $database, engine: $engine, serverVersion: $version,
      key: $key, createdAt: $createdAt, compression: "zstd", size: $size, sha256: $sha256,
      dumpBytes: $dumpBytes, durationSeconds: ($durationUs / 1000000),
      tables: [$tables | split("\n")[] | select(length > 0) | split("\t") | {name: .[0], rows: (.[1] | tonumber)}],
      objects: [$objects | split("\n")[] | select(length > 0) | split("\t") | {type: .[0], name: .[1]}]}' >"$work/manifest.json"; then
    log err "backup of $where failed: could not write its manifest; s3://$BUCKET/$key is not a backup"
    return 1
  fi
  if ! s3 s3 cp "$work/manifest.json" "s3://$BUCKET/$manifest_key" --only-show-errors --content-type application/json --checksum-algorithm CRC32 2>"$work/upload.err"; then
    log err "backup of $where failed: the manifest upload failed, so s3://$BUCKET/$key is not a backup: $(tail -n 3 "$work/upload.err" | tr '\n' ' ')"
    return 1
  fi
  log info "backup of $where done: s3://$BUCKET/$key, $size bytes compressed from $dump_bytes, sha256 $sha, $((duration_us / 1000000)) s"
}

end_postgres_session() {
  if [[ -n ${PG_SESSION_PID:-} && -n ${PG_SESSION[1]:-} ]]; then
    { printf '%s\n' 'COMMIT;' '\q' >&"${PG_SESSION[1]}"; } 2>/dev/null || true
    wait "$PG_SESSION_PID" 2>/dev/null || true
  fi
}

# The consistent dump, on stdout.
dump_database() {
  local name=$1 engine=$2 container=$3 admin=$4 snapshot=$5
  if [[ $engine == postgres ]]; then
    # Uncompressed custom format: zstd compresses better and faster than pg_dump's zlib.
    db_exec "$container" "$engine" pg_dump --format=custom --compress=0 --snapshot="$snapshot" -U "$admin" -d "$name"
  else
    local dump=mariadb-dump
    [[ $engine == mysql ]] && dump=mysqldump
    db_exec "$container" "$engine" "$dump" "${MYSQL_DUMP_OPTIONS[@]}" -u"$admin" "$name"
  fi
}

main() {
  if [[ ${1:-} == --scheduled ]] && ! schedule_is_due "$SCHEDULE"; then
    exit 0
  fi
  require_tools aws zstd jq perl flock curl sha256sum
  use_server_credentials
  take_lock backup
  work=$(mktemp -d "${TMPDIR:-/tmp}/$LOG_TAG.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  local target name engine container admin failures=0
  for target in "${TARGETS[@]}"; do
    read -r name engine container admin _ <<<"$target"
    use_engine_tools "$engine"
    if ! backup_target "$name" "$engine" "$container" "$admin"; then
      failures=$((failures + 1))
    fi
  done
  # Keys carry the second a run started: holding the lock one more second
  # means the next run can never reuse this run's keys.
  sleep 1
  if ((failures > 0)); then
    log err "backup of stack $STACK: $failures of ${#TARGETS[@]} databases FAILED"
    ping_health_check /fail
    exit 1
  fi
  log info "backup of stack $STACK: all ${#TARGETS[@]} databases backed up"
  ping_health_check ''
}

main "$@"
