# ZFS pool health check (modules/nixos/zfs-health.nix runs it from a timer).
# Settings come from the environment:
#   HEARTH_ZFS_POOLS          space-separated pools that must be imported
#   HEARTH_ZFS_TEXTFILE_DIR   where to write zfs-health.prom for node-exporter ("" = none)
#   HEARTH_ZFS_FAULT_LED      LED brightness file set to 1 while unhealthy ("" = none)
# Exit status 1 when any pool is unhealthy or missing; the details go to stdout with
# journal priority prefixes. tests/zfs_health.rs runs it against a fake `zpool`.
textfile_dir=${HEARTH_ZFS_TEXTFILE_DIR:-}
fault_led=${HEARTH_ZFS_FAULT_LED:-}
read -r -a expected_pools <<< "${HEARTH_ZFS_POOLS:-}"

summary=$(zpool status -x 2>&1) || true
healthy=1
case "$summary" in
  "all pools are healthy" | "no pools available") ;;
  *) healthy=0 ;;
esac
# A pool that is not imported at all is the worst case, and `zpool status -x` is silent about it.
missing=()
for pool in "${expected_pools[@]}"; do
  if ! zpool list -H -o name "$pool" > /dev/null 2>&1; then
    missing+=("$pool")
    healthy=0
  fi
done

if [ -n "$textfile_dir" ]; then
  tmp=$(mktemp "$textfile_dir/.zfs-health.XXXXXX")
  {
    echo "# HELP hearth_zfs_pool_healthy 1 when the pool's health is ONLINE."
    echo "# TYPE hearth_zfs_pool_healthy gauge"
    echo "# HELP hearth_zfs_pool_errors Read, write and checksum errors on the pool's top-level vdev row."
    echo "# TYPE hearth_zfs_pool_errors gauge"
    zpool list -H -o name,health | while read -r pool health; do
      up=0
      [ "$health" = ONLINE ] && up=1
      echo "hearth_zfs_pool_healthy{pool=\"$pool\",health=\"$health\"} $up"
      zpool status -p "$pool" | awk -v p="$pool" '
        !seen && $1 == p && NF >= 5 {
          seen = 1
          printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"read\"} %s\n", p, $3
          printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"write\"} %s\n", p, $4
          printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"checksum\"} %s\n", p, $5
        }'
    done
    for pool in "${missing[@]}"; do
      echo "hearth_zfs_pool_healthy{pool=\"$pool\",health=\"MISSING\"} 0"
    done
    echo "# HELP hearth_zfs_healthy 1 when zpool status -x reports all pools healthy."
    echo "# TYPE hearth_zfs_healthy gauge"
    echo "hearth_zfs_healthy $healthy"
    echo "hearth_zfs_health_last_run_seconds $(date +%s)"
  } > "$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$textfile_dir/zfs-health.prom"
fi

if [ -n "$fault_led" ] && [ -w "$fault_led" ]; then
  if [ "$healthy" = 1 ]; then echo 0 > "$fault_led"; else echo 1 > "$fault_led"; fi
fi

if [ "$healthy" = 1 ]; then
  echo "all pools healthy"
  exit 0
fi
# <3> = error priority in the journal (SyslogLevelPrefix).
for pool in "${missing[@]}"; do echo "<3>pool $pool is not imported"; done
while IFS= read -r line; do echo "<3>$line"; done <<< "$summary"
exit 1
