# restic restore test (modules/nixos/restic-restore-test.nix runs it from a timer on a
# backup-target host). Settings come from the environment:
#   HEARTH_RESTORE_SETS          JSON list of {client, repository, path}: one per backed-up path
#   HEARTH_RESTORE_SAMPLE        files to restore per path (chosen at random)
#   HEARTH_RESTORE_SCRATCH       scratch directory; each run works in a fresh subdirectory of
#                                it and removes that afterwards
#   HEARTH_RESTORE_TEXTFILE_DIR  where to write restore-test.prom ("" = none)
#   RESTIC_PASSWORD_FILE         the repositories' password (read by restic itself)
# For each set it lists the latest snapshot's files under the path, restores a sample with
# `restic restore --verify` (restic re-reads and hashes what it wrote) and checks that each
# file is back with its recorded size. Exit status 1 when any set fails.
# tests/restore_test.rs runs it against real restic repositories.
sets=${HEARTH_RESTORE_SETS:-[]}
sample=${HEARTH_RESTORE_SAMPLE:-5}
scratch=${HEARTH_RESTORE_SCRATCH:?HEARTH_RESTORE_SCRATCH is not set}
textfile_dir=${HEARTH_RESTORE_TEXTFILE_DIR:-}

# A label value in the exposition format: backslash, double quote and newline escaped.
label() {
  local v=${1//\\/\\\\}
  v=${v//\"/\\\"}
  printf '%s' "${v//$'\n'/\\n}"
}

# restic --include patterns are globs: escape the glob characters of a literal path.
literal_pattern() {
  printf '%s' "$1" | sed 's/[][*?\\]/\\&/g'
}

# test_set REPOSITORY PATH WORKDIR: prints the number of files checked; status 1 on failure.
test_set() {
  local repo=$1 path=$2 work=$3 listing picked n=0 line file size got
  if ! listing=$(restic -r "$repo" ls --json --recursive latest "$path" 2>"$work.err"); then
    echo "<3>restore test: cannot list the latest snapshot of $repo: $(tail -n 2 "$work.err")" >&2
    return 1
  fi
  picked=$(printf '%s\n' "$listing" |
    jq -c 'select(.struct_type == "node" and .type == "file") | {path, size}' |
    shuf -n "$sample")
  if [ -z "$picked" ]; then
    echo "<3>restore test: the latest snapshot of $repo holds no file under $path" >&2
    return 1
  fi
  while IFS= read -r line; do
    file=$(jq -r .path <<< "$line")
    size=$(jq -r .size <<< "$line")
    if ! restic -r "$repo" restore latest --verify --target "$work" \
      --include "$(literal_pattern "$file")" > /dev/null 2> "$work.err"; then
      echo "<3>restore test: restoring $file from $repo failed: $(tail -n 2 "$work.err")" >&2
      return 1
    fi
    got=$(stat -c %s "$work$file" 2> /dev/null || echo missing)
    if [ "$got" != "$size" ]; then
      echo "<3>restore test: $file from $repo came back with size $got, expected $size" >&2
      return 1
    fi
    n=$((n + 1))
  done <<< "$picked"
  echo "$n"
}

mkdir -p "$scratch"
run=$(mktemp -d "$scratch/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
metrics=()
failed=0
count=$(jq 'length' <<< "$sets")
for ((i = 0; i < count; i++)); do
  client=$(jq -r ".[$i].client" <<< "$sets")
  repo=$(jq -r ".[$i].repository" <<< "$sets")
  path=$(jq -r ".[$i].path" <<< "$sets")
  ok=1
  if ! files=$(test_set "$repo" "$path" "$run/$i"); then
    ok=0
    files=0
    failed=1
  else
    echo "restore test: $client $path: $files file(s) restored and verified"
  fi
  labels="client=\"$(label "$client")\",path=\"$(label "$path")\""
  metrics+=("hearth_restore_test_success{$labels} $ok" "hearth_restore_test_files{$labels} $files")
done

if [ -n "$textfile_dir" ]; then
  tmp=$(mktemp "$textfile_dir/.restore-test.XXXXXX")
  {
    echo "# HELP hearth_restore_test_success 1 when a sample of the path restored and verified."
    echo "# TYPE hearth_restore_test_success gauge"
    echo "# HELP hearth_restore_test_files Files restored and verified in the last run."
    echo "# TYPE hearth_restore_test_files gauge"
    if [ ${#metrics[@]} -gt 0 ]; then printf '%s\n' "${metrics[@]}"; fi
    echo "# HELP hearth_restore_test_last_run_timestamp_seconds When the restore test last ran."
    echo "# TYPE hearth_restore_test_last_run_timestamp_seconds gauge"
    echo "hearth_restore_test_last_run_timestamp_seconds $(date +%s)"
  } > "$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$textfile_dir/restore-test.prom"
fi
exit "$failed"
