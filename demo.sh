#!/usr/bin/env bash
# hearth in two minutes: three throwaway test hosts, a fleet deploy with live progress, a
# config that locks a host out and rolls itself back, and a clean teardown.
# Needs root (network and mount namespaces), nix, sshd and iproute2.
set -euo pipefail
cd "$(dirname "$0")"

HEARTH=${HEARTH:-./target/debug/hearth}
if [ ! -x "$HEARTH" ]; then cargo build --quiet --bins; fi
FLEET=.hearth/lab
CONFIRM=${CONFIRM:-10}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap 'step "Tear down"; "$HEARTH" lab down' EXIT

step "Bring up 3 test hosts (network + mount namespaces, each with sshd and its own /nix)"
"$HEARTH" lab up 3
eval "$("$HEARTH" lab env)"
# `lab env` exported HEARTH_FLAKE and HEARTH_SSH_IDENTITY, which hearth reads.
deploy() {
  "$HEARTH" -C "$FLEET" deploy "$@"
}
# Edit one host's [lab] settings and regenerate the fleet.
lab_set() { # HOST KEY VALUE
  sed -i "s/^$2 = .*/$2 = $3/" "$FLEET/hosts/$1.toml"
  "$HEARTH" -C "$FLEET" gen >/dev/null
}

step "Deploy the lab fleet: one build, parallel copies, activation with magic rollback"
deploy --all

step "Deploy again: every host already runs it, so nothing is copied or activated"
deploy --all

step "Now a config whose activation takes h2's network down (a lockout)"
lab_set h2 fault '"link-down"'
lab_set h2 revision 1
if deploy h2 --confirm-timeout "$CONFIRM"; then
  echo "unexpected: the lockout deploy succeeded" >&2
  exit 1
fi
echo "(exit code 1: the deploy reports what really happened on h2)"

step "h2 read from its console, without SSH: back on its previous generation"
"$HEARTH" lab state h2

step "hearth status: the repository now builds something h2 doesn't run (drift)"
"$HEARTH" -C "$FLEET" status || true

lab_set h2 fault '"none"'
