#!/bin/sh
# A stand-in for nixos-anywhere's install phase, for `hearth install --installer` in the lab
# (tests/install_lab.rs): lab hosts can't kexec or partition, and there is no nixpkgs here.
# It takes the arguments hearth passes to nixos-anywhere and does observably what the install
# phase does: build the system, copy its closure, set the system profile, place
# --extra-files, activate. In the lab a host's /etc/ssh is the sshd directory in its own tree
# (SSHD_CONFIG in /nix/var/lab/env), so the files under etc/ssh go there.
set -eu
flake="" target="" port=22 ident="" extra="" opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --flake) flake=$2; shift ;;
    --target-host) target=$2; shift ;;
    -p|--ssh-port) port=$2; shift ;;
    -i) ident=$2; shift ;;
    --ssh-option) opts="$opts -o $2"; shift ;;
    --extra-files) extra=$2; shift ;;
    --chown|--option) shift 2 ;;
    --phases|--build-on) shift ;;
    *) echo "installer stand-in: unexpected argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$flake" ] && [ -n "$target" ] && [ -n "$extra" ] || { echo "installer stand-in: missing --flake, --target-host or --extra-files" >&2; exit 2; }
host=${flake##*#}
ref=${flake%#*}
# Like nixos-anywhere: the installer's key is not checked (hearth's own known_hosts comes first).
sshopts="-p $port $opts -o StrictHostKeyChecking=no -o BatchMode=yes${ident:+ -i $ident}"
on_target() { ssh $sshopts "$target" "$@"; }

echo "### building $host ###"
json=$(nix build --no-link --json "$ref#nixosConfigurations.$host.config.system.build.toplevel")
out=$(printf '%s' "$json" | sed -n 's/.*"out":"\([^"]*\)".*/\1/p')
[ -n "$out" ] || { echo "installer stand-in: no out path in: $json" >&2; exit 1; }

echo "### copying the closure ###"
NIX_SSHOPTS="$sshopts" nix copy --no-check-sigs --to "ssh://$target" "$out"

echo "### installing ###"
on_target "nix-env -p /nix/var/nix/profiles/system --set '$out'"
# Extra files, then activation, in one session: once the new host key is in place the next
# login sees another key (after a real install, the reboot does that).
echo "### placing extra files, activating ###"
tar -C "$extra/etc/ssh" -cf - . | on_target '. /nix/var/lab/env; tar -C "${SSHD_CONFIG%/*}" -xf - --no-same-owner --no-overwrite-dir && '"'$out/bin/switch-to-configuration' switch"
echo "### installation finished ###"
