#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Needs root for the lab tests;
# without root they report themselves as skipped.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --locked --bins
./target/debug/hearth gen --check
# cargo hides a passing test's output, so say here which suites will skip themselves.
if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: lab, deploy and builder end-to-end tests need root (they pass without running)"
fi
if [ -z "${HEARTH_DISKO:-}" ] || [ -z "${HEARTH_NIXPKGS_LIB:-}" ]; then
  echo "SKIPPED: disko_eval, compile_disko, nixos_modules, flake_eval need HEARTH_DISKO and HEARTH_NIXPKGS_LIB (checkouts of nix-community/disko and nix-community/nixpkgs.lib; see docs/FLAKE.md)"
fi
cargo test --locked -- --test-threads=2
# Every deploy, fault and builder lab test once more against hosts that boot systemd
# (docs/TESTING.md); the reboot and isolation tests pick their kind themselves.
if [ "$(id -u)" = 0 ]; then
  HEARTH_LAB_SYSTEMD=1 cargo test --locked --test deploy_lab --test deploy_faults \
    --test builders_lab --test builders_deploy -- --test-threads=2
fi
