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
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lab hosts: $([ "${HEARTH_LAB_SYSTEMD:-}" = 1 ] && echo "systemd as PID 1" || echo "plain (no systemd)")"
# Release build: the figures are for the tool as shipped.
exec cargo test --release --quiet --test deploy_bench -- --ignored --nocapture --test-threads=1
