# restic restore tests on a backup-target host: a timer restores a random sample of the
# latest snapshot of every backed-up path of every client repository the host serves into a
# scratch directory, verifies it, and writes node-exporter textfile metrics
# (`hearth_restore_test_success`) that hearth's derived alert rules watch.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.hearth.resticRestoreTest;

  check = pkgs.writeShellApplication {
    name = "hearth-restic-restore-test";
    runtimeInputs = [
      pkgs.restic
      pkgs.jq
      pkgs.coreutils
      pkgs.gnused
    ];
    text = builtins.readFile ./restic-restore-test.sh;
  };
in
{
  options.hearth.resticRestoreTest = {
    enable = lib.mkEnableOption "periodic restic restore tests";

    sets = lib.mkOption {
      type = lib.types.listOf (
        lib.types.submodule {
          options = {
            client = lib.mkOption { type = lib.types.str; };
            repository = lib.mkOption { type = lib.types.str; };
            path = lib.mkOption { type = lib.types.str; };
          };
        }
      );
      default = [ ];
      description = "One entry per client repository and backed-up path.";
    };

    sample = lib.mkOption {
      type = lib.types.ints.positive;
      default = 5;
      description = "Files restored per path.";
    };

    schedule = lib.mkOption {
      type = lib.types.str;
      default = "weekly";
      description = "systemd OnCalendar expression.";
    };

    scratch = lib.mkOption {
      type = lib.types.str;
      default = "/var/cache/hearth-restore-test";
      description = "Scratch directory for restored files.";
    };

    passwordFile = lib.mkOption {
      type = lib.types.str;
      description = "File holding the repositories' password.";
    };

    textfileDirectory = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default =
        if config.services.prometheus.exporters.node.enable then "/var/lib/hearth/node-exporter" else null;
      defaultText = lib.literalExpression ''if config.services.prometheus.exporters.node.enable then "/var/lib/hearth/node-exporter" else null'';
      description = "node-exporter textfile directory for `restore-test.prom`; null writes none.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.hearth-restic-restore-test = {
      description = "Restore a sample of every backup and verify it";
      after = [ "network-online.target" ];
      environment = {
        HEARTH_RESTORE_SETS = builtins.toJSON (map (s: { inherit (s) client repository path; }) cfg.sets);
        HEARTH_RESTORE_SAMPLE = toString cfg.sample;
        HEARTH_RESTORE_SCRATCH = cfg.scratch;
        HEARTH_RESTORE_TEXTFILE_DIR = toString cfg.textfileDirectory;
        RESTIC_PASSWORD_FILE = cfg.passwordFile;
        RESTIC_CACHE_DIR = "/var/cache/hearth-restore-test-cache";
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe check;
        Nice = 10;
        IOSchedulingClass = "idle";
      };
    };

    systemd.timers.hearth-restic-restore-test = {
      description = "Restore-test the backups periodically";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.schedule;
        Persistent = true;
        RandomizedDelaySec = "1h";
      };
    };
  };
}
