#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Needs root for the lab tests;
# without root they report themselves as skipped.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --locked --bins
./target/debug/hearth gen --check
# cargo hides a passing test's output, so say here which suites will skip themselves.
# Under HEARTH_REQUIRE_EVAL=1 (.ci/run) nothing skips: what is missing fails the test instead.
strict="${HEARTH_REQUIRE_EVAL:-0}"
if [ "$(id -u)" != 0 ] && [ "$strict" != 1 ]; then
  echo "SKIPPED: lab, deploy and builder end-to-end tests need root (they pass without running)"
fi
vendor="$(pwd)/../shared/vendor"
for pair in "HEARTH_DISKO:disko" "HEARTH_NIXPKGS_LIB:nixpkgs-lib" "HEARTH_NIXPKGS_SPARSE:nixpkgs-sparse"; do
  var="${pair%%:*}" dir="${!var:-$vendor/${pair#*:}}"
  if [ ! -d "$dir" ] && [ "$strict" != 1 ]; then
    echo "SKIPPED: evaluation tests that need $var ($dir does not exist; see docs/FLAKE.md)"
  fi
done
if ! command -v caddy >/dev/null && [ "$strict" != 1 ]; then
  echo "SKIPPED: caddy validate of the derived reverse-proxy config needs the Debian package caddy"
fi
cargo test --locked -- --test-threads=2
# Every deploy, fault, builder and install lab test once more against hosts that boot systemd
# (docs/TESTING.md); the reboot and isolation tests pick their kind themselves.
if [ "$(id -u)" = 0 ]; then
  HEARTH_LAB_SYSTEMD=1 cargo test --locked --test deploy_lab --test deploy_faults \
    --test builders_lab --test builders_deploy --test install_lab -- --test-threads=2
fi
