#!/usr/bin/env bash
# Deploy benchmark: prints figures (not a test). Needs root, nix, sshd, iproute2.
#   HOSTS=8 MIB=200 PATHS=50 CONFIRM=5 ROUNDS=3 scripts/bench-deploy.sh
#   HEARTH_LAB_SYSTEMD=1 scripts/bench-deploy.sh     # the same, on hosts that boot systemd
# Measures, in one run against fresh test hosts:
#   - hearth deploy of a fresh ~200 MiB / ~50-path closure to 8 hosts vs the floor
#     (plain parallel `nix copy` of a same-sized fresh closure); target <= 1.15 x floor.
#     Interleaved rounds (ROUNDS, default 3), medians reported: the machine is noisy.
#   - a no-op redeploy of the 8 hosts; target < 1 s
#   - a lockout: activation -> host back on its old generation (target <= confirm + 1 s)
#     and activation -> deployer exit (target <= confirm + 3 s)
# Slow deployer link (fan-out; `tc tbf` on the deployer's side of the lab bridge only,
# host-to-host stays fast), same HOSTS/MIB/PATHS:
#   - unthrottled, ROUNDS rounds of: floor, cold fan-out (SSH masters closed first), warm
#     fan-out and --no-fan-out (taking turns going first); target: fan-out never slower
#     than --no-fan-out, cold <= 1.15 x floor
#   - RATES="20:1,200:2" (Mbit/s:rounds): floor and hearth with fan-out on the throttled
#     link; targets: deployer bytes <= 1.3 x one closure, <= 0.35 x floor at 20 Mbit/s
#     (the 20 Mbit/s floor alone takes ~11 min for 8 x 200 MiB)
#   Every round is printed, then medians; earlier closures are removed between steps.
#   SKIP_SLOW_LINK=1 skips it; ONLY_SLOW_LINK=1 runs only it.
set -euo pipefail
cd "$(dirname "$0")/.."
# `scripts/bench-deploy.sh --systemd`: the same figures on hosts that boot systemd
# (as HEARTH_LAB_SYSTEMD=1).
if [ "${1:-}" = --systemd ]; then export HEARTH_LAB_SYSTEMD=1; shift; fi
echo "lab hosts: $([ "${HEARTH_LAB_SYSTEMD:-}" = 1 ] && echo "systemd as PID 1" || echo "plain (no systemd)")"
# Release build: the figures are for the tool as shipped.
if [ -z "${ONLY_SLOW_LINK:-}" ]; then
  cargo test --release --quiet --test deploy_bench -- --ignored --nocapture --test-threads=1
fi
if [ -z "${SKIP_SLOW_LINK:-}" ]; then
  command -v tc >/dev/null || { echo "tc (iproute2) is needed for the slow-link section" >&2; exit 1; }
  cargo test --release --quiet --test fanout_bench -- --ignored --nocapture --test-threads=1
fi
