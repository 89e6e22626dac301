{
  description = "hearth: a NixOS homelab compiled from host files, built and deployed safely";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    disko = {
      url = "github:nix-community/disko/latest";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    agenix = {
      url = "github:ryantm/agenix";
      inputs.nixpkgs.follows = "nixpkgs";
      # Only needed for agenix's own darwin / home-manager checks.
      inputs.darwin.follows = "";
      inputs.home-manager.follows = "";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      disko,
      agenix,
    }:
    let
      inherit (nixpkgs) lib;

      linuxSystems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      allSystems = linuxSystems ++ [
        "aarch64-darwin"
        "x86_64-darwin"
      ];
      forSystems = systems: f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Written by `hearth gen` (contract: docs/ARCHITECTURE.md). A fresh clone before the
      # first `hearth gen` has no fleet yet; the package and dev shell still work.
      fleet =
        if builtins.pathExists ./generated/fleet.nix then
          import ./generated/fleet.nix
        else
          { hosts = { }; };

      # Lab hosts (hardware = "lab") are raw derivations built by the lab's own flake.
      nixosHosts = lib.filterAttrs (_: host: host.hardware != "lab") fleet.hosts;

      helios64Hosts = lib.filterAttrs (_: host: host.hardware == "helios64") nixosHosts;

      # A bootable SD image of the host's own system, for first installs that nixos-anywhere's
      # kexec route can't reach (the Helios64). NixOS's sd-image module brings its own root file
      # system (label NIXOS_SD), so disko's is switched off in the image only; the installed host
      # keeps its disko layout. The host key is not in the image (the store is world-readable):
      # `hearth image` prints how to copy it onto the card.
      mkImage =
        name:
        let
          image = self.nixosConfigurations.${name}.extendModules {
            modules = [
              "${nixpkgs}/nixos/modules/installer/sd-card/sd-image-aarch64.nix"
              { disko.enableConfig = false; }
            ];
          };
        in
        image.config.system.build.sdImage;

      mkHost =
        name: host:
        let
          # modules/nixos/<hardware>.nix, when there is one (helios64, generic-x86_64).
          hardwareModule = ./modules/nixos + "/${host.hardware}.nix";
        in
        lib.nixosSystem {
          specialArgs = {
            inherit self;
            hearthHost = host;
          };
          modules = [
            ./modules/nixos
            agenix.nixosModules.default
            host.module
          ]
          ++ lib.optional (builtins.pathExists hardwareModule) hardwareModule
          ++ [
            {
              nixpkgs.hostPlatform = host.system;
              networking.hostName = lib.mkDefault name;
              hearth.helios64.enable = lib.mkDefault (host.hardware == "helios64");
            }
          ]
          ++ lib.optionals (host.disko != null) [
            disko.nixosModules.disko
            host.disko
          ];
        };

      # Only what cargo needs, so editing docs or hosts does not rebuild the binary.
      hearthSource = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./src
          ./benches
        ];
      };

      mkHearth =
        pkgs:
        pkgs.rustPlatform.buildRustPackage {
          pname = "hearth";
          version = (lib.importTOML ./Cargo.toml).package.version;
          src = hearthSource;
          cargoLock.lockFile = ./Cargo.lock;

          nativeBuildInputs = [
            pkgs.installShellFiles
            pkgs.makeWrapper
          ];

          # The test suite needs a Nix daemon, sshd, root and network namespaces (the lab),
          # none of which exist in the build sandbox. CI runs it with ./test.sh instead.
          doCheck = false;

          postInstall =
            lib.optionalString (pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform) ''
              installShellCompletion --cmd hearth \
                --bash <($out/bin/hearth completions bash) \
                --fish <($out/bin/hearth completions fish) \
                --zsh <($out/bin/hearth completions zsh)
            ''
            # The user's own nix and ssh come first; ours are the fallback.
            + ''
              wrapProgram $out/bin/hearth \
                --suffix PATH : ${
                  lib.makeBinPath [
                    pkgs.nix
                    pkgs.openssh
                  ]
                }
            '';

          meta = {
            description = "Turn a homelab's host files into NixOS, build each system on the right machine, and deploy it safely";
            license = lib.licenses.mit;
            mainProgram = "hearth";
            platforms = lib.platforms.unix;
          };
        };
    in
    {
      nixosConfigurations = lib.mapAttrs mkHost nixosHosts;

      # `hearth image HOST` (docs/INSTALL.md).
      images = lib.mapAttrs (name: _: mkImage name) helios64Hosts;

      # Deploy metadata for tools and for `hearth`, straight from the fleet index.
      hearth = {
        hosts = lib.mapAttrs (_: host: {
          inherit (host)
            system
            hardware
            tags
            roles
            ssh
            ;
        }) fleet.hosts;
      };

      nixosModules = {
        hearth = ./modules/nixos;
        helios64 = ./modules/nixos/helios64.nix;
        generic-x86_64 = ./modules/nixos/generic-x86_64.nix;
        zfs-health = ./modules/nixos/zfs-health.nix;
      };

      packages = forSystems allSystems (pkgs: {
        hearth = mkHearth pkgs;
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.hearth;
      });

      apps = forSystems allSystems (
        pkgs:
        let
          hearth = self.packages.${pkgs.stdenv.hostPlatform.system}.hearth;
        in
        {
          default = {
            type = "app";
            program = lib.getExe hearth;
            meta.description = "hearth CLI";
          };
          # `nix run .#deploy -- helios64` from the repository root.
          deploy = {
            type = "app";
            program = toString (
              pkgs.writeShellScript "hearth-deploy" ''
                exec ${lib.getExe hearth} deploy "$@"
              ''
            );
            meta.description = "Build, push and activate hosts with magic rollback (hearth deploy)";
          };
          # `hearth install` runs this by default: the nixos-anywhere of the pinned nixpkgs,
          # so flake.lock alone decides its version (no extra input to lock).
          nixos-anywhere = {
            type = "app";
            program = "${pkgs.nixos-anywhere}/bin/nixos-anywhere";
            meta.description = "nixos-anywhere, as pinned by flake.lock (used by hearth install)";
          };
        }
      );

      checks = forSystems linuxSystems (
        pkgs:
        let
          hearth = self.packages.${pkgs.stdenv.hostPlatform.system}.hearth;
        in
        {
          package = hearth;
          # generated/ must be what `hearth gen` makes of the committed host files.
          generated-fresh = pkgs.runCommand "hearth-generated-fresh" { nativeBuildInputs = [ hearth ]; } ''
            hearth -C ${self} gen --check
            touch $out
          '';
        }
      );

      formatter = forSystems allSystems (
        pkgs:
        # generated/ is formatted by hearth itself; `hearth gen --check` would flag any change.
        pkgs.nixfmt-tree.override {
          settings.formatter.nixfmt.excludes = [ "generated/*" ];
        }
      );

      devShells = forSystems allSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.hearth ];
          packages = [
            pkgs.cargo
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.nixfmt
            pkgs.age
            pkgs.openssh
            pkgs.nixos-anywhere
            agenix.packages.${pkgs.stdenv.hostPlatform.system}.default
          ];
        };
      });
    };
}
