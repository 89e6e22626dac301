# The hearth lab fleet: NixOS-like test hosts built without nixpkgs.
# Written by `hearth lab up`; each host's settings come from generated/fleet.nix
# (`hearth gen`), so edit hosts/<name>.toml, not this file.
{
  description = "hearth lab fleet";

  outputs = { self }:
    let
      fleet = import ./generated/fleet.nix;
      labNames = builtins.filter (n: fleet.hosts.${n}.hardware == "lab") (builtins.attrNames fleet.hosts);
      defaults = { fault = "none"; payloadMib = 0; payloadPaths = 1; payloadPort = 8080; revision = 0; };

      # One payload store path: deterministic content, so a rebuild is reproducible;
      # the revision is part of the content, so a new revision means new paths.
      payloadPart = system: lab: i: derivation {
        name = "lab-payload-r${toString lab.revision}-${toString i}";
        inherit system;
        builder = "/bin/sh";
        bytes = toString (lab.payloadMib * 1048576 / lab.payloadPaths);
        seed = "hearth lab payload, revision ${toString lab.revision}, part ${toString i}";
        args = [ "-c" ''PATH=/usr/bin:/bin; yes "$seed" | head -c "$bytes" > "$out"'' ];
      };

      toplevel = name: host:
        let
          lab = defaults // (if host.lab or null == null then { } else host.lab);
          payload = if lab.payloadMib == 0 then [ ] else builtins.genList (payloadPart host.system lab) lab.payloadPaths;
        in
        derivation {
          name = "nixos-system-${name}-lab-r${toString lab.revision}";
          system = host.system;
          builder = "/bin/sh";
          hostName = name;
          inherit (lab) fault;
          payloadPort = toString lab.payloadPort;
          revision = toString lab.revision;
          inherit payload;
          switchBody = builtins.readFile ./switch-to-configuration.sh;
          args = [ "-c" ''
            PATH=/usr/bin:/bin
            set -e
            mkdir -p "$out/bin"
            {
              echo '#!/bin/sh'
              echo "HOST_NAME='$hostName'"
              echo "FAULT='$fault'"
              echo "PAYLOAD_PORT='$payloadPort'"
              echo "TOPLEVEL='$out'"
              printf '%s\n' "$switchBody"
            } > "$out/bin/switch-to-configuration"
            chmod 555 "$out/bin/switch-to-configuration"
            # Units, for hosts booted with systemd (NixOS's etc/systemd/system). The sshd
            # unit names the revision, so every new revision restarts sshd as a changed unit.
            mkdir -p "$out/etc/systemd/system"
            if [ "$fault" = payload-down ]; then run=/bin/sleep\ infinity; else run="$out/bin/switch-to-configuration run-payload"; fi
            printf '%s\n' '[Unit]' "Description=hearth lab payload of $hostName (revision $revision)" \
              '[Service]' "ExecStart=$run" > "$out/etc/systemd/system/lab-payload.service"
            printf '%s\n' '[Unit]' 'Description=hearth lab sshd' '[Service]' \
              "Environment=LAB_REVISION=$revision" \
              'ExecStart=/bin/sh -c ". /nix/var/lab/env && exec /usr/sbin/sshd -D -f $$SSHD_CONFIG"' \
              'KillMode=process' 'Restart=on-failure' > "$out/etc/systemd/system/lab-sshd.service"
            echo "lab-r$revision" > "$out/nixos-version"
            echo "$fault" > "$out/lab-fault"
            : > "$out/payload"
            for p in $payload; do echo "$p" >> "$out/payload"; done
          '' ];
        };
    in
    {
      nixosConfigurations = builtins.listToAttrs (map
        (name: {
          inherit name;
          value.config.system.build.toplevel = toplevel name fleet.hosts.${name};
        })
        labNames);
    };
}
