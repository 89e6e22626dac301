#!/usr/bin/env bash
# Run the derived reverse proxy for real, inside a private network namespace (started by
# tests/web_validate.rs with `unshare --net`): nothing here reaches the machine's network.
# The upstreams' addresses are put on the namespace's loopback, each upstream is a python
# http.server whose files include the service's health path, and Caddy serves the
# Caddyfile the NixOS module assembled. Then every site is fetched over HTTPS, trusting
# only the root certificate Caddy's internal CA wrote (the file docs/CATALOG.md tells users
# to copy into keys/). Prints `<site> <status> <body>` per site; logs go to $dir/*.log.
# Usage: serve.sh DIR SITE=ADDR:PORT...
set -euo pipefail
dir=$1
shift
cd "$dir"
ip link set lo up
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for spec in "$@"; do
  site=${spec%%=*} upstream=${spec#*=}
  addr=${upstream%:*} port=${upstream##*:}
  # Each upstream address on the namespace's own loopback (once).
  ip -o addr show dev lo | grep -q " $addr/" || ip addr add "$addr/32" dev lo
  python3 -m http.server --bind "$addr" --directory "www/$site" "$port" >"upstream-$site.log" 2>&1 &
  pids+=($!)
done
# Caddy's first active health check must find the upstreams up (it repeats every 10s).
for spec in "$@"; do
  upstream=${spec#*=}
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${upstream%:*}/${upstream##*:}") 2>/dev/null && break
    sleep 0.1
  done
done
HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
  caddy run --adapter caddyfile --config Caddyfile >caddy.log 2>&1 &
pids+=($!)
root=data/caddy/pki/authorities/local/root.crt
for spec in "$@"; do
  site=${spec%%=*}
  for _ in $(seq 100); do
    if [ -f "$root" ] && python3 fetch.py "$root" "$site" >"fetch-$site.out" 2>"fetch-$site.err"; then
      break
    fi
    sleep 0.1
  done
  echo "$site $(cat "fetch-$site.out" 2>/dev/null || echo "failed: $(tail -1 "fetch-$site.err")")"
done
