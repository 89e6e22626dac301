#!/bin/sh
# Benchmark: build-and-deploy a ~200 MiB closure (50 paths) for an aarch64-linux lab host,
#   A) through the deployer: built on the builder via a generated --builders list, the
#      output comes back to this machine, then `nix copy` pushes it to the target;
#   B) builder to target: built on the builder, which copies it straight to the target.
# Prints wall time of each and the bytes that passed through this machine (the lab
# bridge's own rx+tx counters: frames the bridge forwards between hosts are not counted).
# Needs root, nix, sshd, iproute2. Usage: scripts/bench-builders.sh [MiB] [paths]
set -eu

MIB=${1:-200}
PATHS=${2:-50}
HEARTH=${HEARTH:-$(pwd)/target/debug/hearth}
ID=${BENCH_LAB_ID:-bbench}
BASE=${BENCH_LAB_BASE:-10.77.233.0}
WORK=$(mktemp -d /var/tmp/hearth-bench-builders.XXXXXX)
DIR=$WORK/lab

[ "$(id -u)" = 0 ] || { echo "SKIPPED: needs root (lab hosts are network namespaces)"; exit 0; }
[ -x "$HEARTH" ] || { echo "build hearth first (cargo build), or set HEARTH"; exit 1; }

lab() { "$HEARTH" lab --id "$ID" --base "$BASE" --dir "$DIR" "$@"; }
cleanup() { lab down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
LOG=$WORK/bench.log
quiet() { "$@" 2>>"$LOG" || { tail -n 30 "$LOG" >&2; exit 1; }; }
bridge_bytes() {
    s=/sys/class/net/hb-$ID/statistics
    echo $(( $(cat "$s/rx_bytes") + $(cat "$s/tx_bytes") ))
}
set_h2() { # revision: a fresh closure (nothing cached anywhere)
    f=$DIR/hosts/h2.toml
    sed -i -e 's/^system = .*/system = "aarch64-linux"/' \
        -e "s/^payload_mib = .*/payload_mib = $MIB/" \
        -e "s/^payload_paths = .*/payload_paths = $PATHS/" \
        -e "s/^revision = .*/revision = $1/" "$f"
    "$HEARTH" -C "$DIR" gen >/dev/null
}

lab up 2 --builder h1 >/dev/null
eval "$(lab env)"
ID_FILE=/var/tmp/hearth-$ID/client/id_ed25519
[ -f "$ID_FILE" ] || ID_FILE=$(sed -n 's/^ *IdentityFile //p' "$HEARTH_LAB_SSH_CONFIG" | head -n 1)
H2=$(sed -n 's/^address = "\(.*\)"/\1/p' "$DIR/hosts/h2.toml" | head -n 1)
REV=$(( $(date +%s) % 100000 ))

echo "closure: ${MIB} MiB in ${PATHS} paths, aarch64-linux target h2 ($H2), builder h1 (emulated)"

# A) through the deployer
set_h2 "$REV"
b0=$(bridge_bytes); t0=$(now)
OUT=$(quiet "$HEARTH" -C "$DIR" builders build h2 --flake "$HEARTH_FLAKE" --via deployer --identity "$ID_FILE" | tail -n 1 | cut -d' ' -f1)
t1=$(now)
quiet nix copy --no-check-sigs --to "ssh-ng://root@$H2" "$OUT"
t2=$(now); b1=$(bridge_bytes)
SIZE=$(nix path-info -S "$OUT" | awk '{print $2}')
quiet lab console h2 -- nix-store --check-validity "$OUT" >/dev/null
A_WALL=$(echo "$t2 - $t0" | bc); A_BUILD=$(echo "$t1 - $t0" | bc); A_BYTES=$((b1 - b0))

# B) builder to target
set_h2 $((REV + 1))
b0=$(bridge_bytes); t0=$(now)
OUTB=$(quiet "$HEARTH" -C "$DIR" builders build h2 --flake "$HEARTH_FLAKE" --via target --identity "$ID_FILE" --builder-identity "$ID_FILE" | tail -n 1 | cut -d' ' -f1)
t1=$(now); b1=$(bridge_bytes)
quiet lab console h2 -- nix-store --check-validity "$OUTB" >/dev/null
if nix path-info "$OUTB" >/dev/null 2>&1; then echo "ERROR: $OUTB reached the deployer's store"; exit 1; fi
B_WALL=$(echo "$t1 - $t0" | bc); B_BYTES=$((b1 - b0))

mib() { printf '%.1f' "$(echo "scale=3; $1 / 1048576" | bc)"; }
printf '\n%-22s %10s %16s\n' "route" "wall (s)" "via deployer"
printf '%-22s %10.2f %12s MiB   (build+fetch %.2f s, push %.2f s)\n' "through deployer" "$A_WALL" "$(mib "$A_BYTES")" "$A_BUILD" "$(echo "$A_WALL - $A_BUILD" | bc)"
printf '%-22s %10.2f %12s MiB\n' "builder to target" "$B_WALL" "$(mib "$B_BYTES")"
printf 'closure size: %s MiB; the deployer carried %.1fx the closure on route A, %.3fx on route B\n' \
    "$(mib "$SIZE")" "$(echo "scale=3; $A_BYTES / $SIZE" | bc)" "$(echo "scale=3; $B_BYTES / $SIZE" | bc)"
