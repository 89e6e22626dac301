# Evaluate flake.nix's `outputs` offline with stand-in inputs: nixpkgs.lib from a
# nix-community/nixpkgs.lib checkout, and fakes for nixosSystem, the package set, disko
# and agenix that return their arguments. This checks the flake's own logic (which hosts
# become nixosConfigurations, which modules each gets, what the package, apps, checks and
# shells are made of), not nixpkgs. Used by tests/flake_eval.rs:
#
#   nix-instantiate --eval --strict --json tests/flake/eval.nix \
#     --arg nixpkgsLib /work/ext/nixpkgs.lib --arg flakeDir /path/to/a/copy/of/the/repo
{
  nixpkgsLib,
  flakeDir,
}:
let
  lib = import (nixpkgsLib + "/lib");
  flake = import (flakeDir + "/flake.nix");

  systems = [
    "x86_64-linux"
    "aarch64-linux"
    "aarch64-darwin"
    "x86_64-darwin"
  ];

  fake = name: attrs: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  }
  // attrs;

  fakePkgs =
    system:
    let
      platform = {
        inherit system;
        isLinux = lib.hasSuffix "-linux" system;
      };
    in
    {
      stdenv = {
        hostPlatform = platform;
        buildPlatform = platform // {
          canExecute = other: other.system == system;
        };
      };
      rustPlatform.buildRustPackage =
        args:
        fake "${args.pname}-${args.version}" {
          inherit args;
          meta = args.meta;
        };
      writeShellScript = name: text: fake name { inherit text; };
      runCommand =
        name: env: script:
        fake name { inherit env script; };
      mkShell = args: fake "shell" { inherit args; };
      nixfmt-tree = {
        override = args: fake "nixfmt-tree" { overrideArgs = args; };
      };
    }
    // lib.genAttrs [
      "installShellFiles"
      "makeWrapper"
      "nix"
      "openssh"
      "cargo"
      "clippy"
      "rustfmt"
      "rust-analyzer"
      "nixfmt"
      "age"
      "nixos-anywhere"
    ] (name: fake name { });

  nixpkgs = {
    outPath = "/nixpkgs";
    lib = lib // {
      nixosSystem = args: {
        nixosSystemArgs = args;
        extendModules = ext: {
          config.system.build.sdImage.imageModules = ext.modules;
        };
      };
    };
    legacyPackages = lib.genAttrs systems fakePkgs;
  };
  disko = {
    nixosModules.disko = "<disko module>";
  };
  agenix = {
    nixosModules.default = "<agenix module>";
    packages = lib.genAttrs systems (system: {
      default = fake "agenix" { };
    });
  };

  outputs = flake.outputs {
    inherit nixpkgs disko agenix;
    self = outputs // {
      outPath = toString flakeDir;
    };
  };

  describeModule =
    m:
    if builtins.isPath m then
      "path:" + lib.removePrefix (toString flakeDir + "/") (toString m)
    else if builtins.isString m then
      m
    else if builtins.isAttrs m then
      {
        attrs = m;
      }
    else
      "other";
in
{
  description = flake.description;
  inputs = lib.mapAttrs (_: i: i.url) flake.inputs;
  nixosConfigurations = lib.mapAttrs (_: c: {
    specialArgs = builtins.attrNames c.nixosSystemArgs.specialArgs;
    modules = map describeModule c.nixosSystemArgs.modules;
  }) outputs.nixosConfigurations;
  hearthHosts = outputs.hearth.hosts;
  images = lib.mapAttrs (_: i: map describeModule i.imageModules) outputs.images;
  nixosModules = lib.mapAttrs (_: m: describeModule m) outputs.nixosModules;
  packages = lib.mapAttrs (_: p: {
    default = p.default.name;
    pname = p.hearth.args.pname;
    cargoLock = describeModule p.hearth.args.cargoLock.lockFile;
    doCheck = p.hearth.args.doCheck;
    mainProgram = p.hearth.meta.mainProgram;
    postInstall = p.hearth.args.postInstall;
  }) outputs.packages;
  apps = lib.mapAttrs (_: a: {
    default = a.default.program;
    deploy = a.deploy.program;
    deployType = a.deploy.type;
    nixosAnywhere = a.nixos-anywhere.program;
  }) outputs.apps;
  deployScript = (builtins.head (builtins.attrValues outputs.apps)).deploy.program;
  checks = lib.mapAttrs (_: c: {
    names = builtins.attrNames c;
    generatedFresh = c.generated-fresh.script;
  }) outputs.checks;
  formatter = lib.mapAttrs (_: f: f.overrideArgs) outputs.formatter;
  devShells = lib.mapAttrs (_: s: map (p: p.name) s.default.args.packages) outputs.devShells;
}
