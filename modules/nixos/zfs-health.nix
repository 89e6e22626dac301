# ZFS pool health report: a timer runs `zpool status -x`, logs unhealthy pools to the
# journal at error priority, fails the unit (so `systemctl --failed` and hearth's deploy
# health checks see it), writes node-exporter textfile metrics, and can light a fault LED.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.hearth.zfsHealth;
  nodeExporter = config.services.prometheus.exporters.node;

  check = pkgs.writeShellApplication {
    name = "hearth-zfs-health";
    runtimeInputs = [
      config.boot.zfs.package
      pkgs.coreutils
      pkgs.gawk
    ];
    text = builtins.readFile ./zfs-health.sh;
  };
in
{
  options.hearth.zfsHealth = {
    enable = lib.mkEnableOption "periodic ZFS pool health reports (`zpool status -x`)";

    pools = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "tank" ];
      description = ''
        Pools that must be imported. A listed pool that is missing counts as unhealthy
        (`zpool status -x` alone does not notice a pool that failed to import).
      '';
    };

    interval = lib.mkOption {
      type = lib.types.str;
      default = "hourly";
      example = "*:0/15";
      description = "How often to check, as a systemd OnCalendar expression.";
    };

    textfileDirectory = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = if nodeExporter.enable then "/var/lib/hearth/node-exporter" else null;
      defaultText = lib.literalExpression ''if config.services.prometheus.exporters.node.enable then "/var/lib/hearth/node-exporter" else null'';
      description = ''
        Directory for node-exporter textfile metrics (`hearth_zfs_pool_healthy`,
        `hearth_zfs_pool_errors`, `hearth_zfs_healthy`); null writes none. hearth's
        node-exporter service creates the default directory and reads it.
      '';
    };

    faultLed = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/sys/class/leds/helios64:red:fault/brightness";
      description = "A LED brightness file to set to 1 while a pool is unhealthy.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = config.boot.supportedFilesystems.zfs or false;
        message = "hearth.zfsHealth.enable needs ZFS (boot.supportedFilesystems.zfs = true).";
      }
    ];

    systemd.services.hearth-zfs-health = {
      description = "Report ZFS pool health";
      after = [ "zfs-import.target" ];
      wants = [ "zfs-import.target" ];
      environment = {
        HEARTH_ZFS_POOLS = lib.concatStringsSep " " cfg.pools;
        HEARTH_ZFS_TEXTFILE_DIR = toString cfg.textfileDirectory;
        HEARTH_ZFS_FAULT_LED = toString cfg.faultLed;
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe check;
      };
    };

    systemd.timers.hearth-zfs-health = {
      description = "Report ZFS pool health periodically";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "5min";
        OnCalendar = cfg.interval;
        Persistent = true;
        RandomizedDelaySec = "2min";
      };
    };

    # hearth's node-exporter service creates /var/lib/hearth/node-exporter and points the
    # textfile collector at it (one owner: a second --collector.textfile.directory flag
    # would stop the exporter).
  };
}
