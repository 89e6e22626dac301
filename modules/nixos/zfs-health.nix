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
    text = ''
      textfile_dir=${lib.escapeShellArg (toString cfg.textfileDirectory)}
      fault_led=${lib.escapeShellArg (toString cfg.faultLed)}

      summary=$(zpool status -x 2>&1) || true
      healthy=1
      case "$summary" in
        "all pools are healthy" | "no pools available") ;;
        *) healthy=0 ;;
      esac

      if [ -n "$textfile_dir" ]; then
        tmp=$(mktemp "$textfile_dir/.zfs-health.XXXXXX")
        {
          echo "# HELP hearth_zfs_pool_healthy 1 when the pool's health is ONLINE."
          echo "# TYPE hearth_zfs_pool_healthy gauge"
          echo "# HELP hearth_zfs_pool_errors Read, write and checksum errors on the pool's top-level vdev row."
          echo "# TYPE hearth_zfs_pool_errors gauge"
          zpool list -H -o name,health | while read -r pool health; do
            up=0
            [ "$health" = ONLINE ] && up=1
            echo "hearth_zfs_pool_healthy{pool=\"$pool\",health=\"$health\"} $up"
            zpool status -p "$pool" | awk -v p="$pool" '
              !seen && $1 == p && NF >= 5 {
                seen = 1
                printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"read\"} %s\n", p, $3
                printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"write\"} %s\n", p, $4
                printf "hearth_zfs_pool_errors{pool=\"%s\",kind=\"checksum\"} %s\n", p, $5
              }'
          done
          echo "# HELP hearth_zfs_healthy 1 when zpool status -x reports all pools healthy."
          echo "# TYPE hearth_zfs_healthy gauge"
          echo "hearth_zfs_healthy $healthy"
          echo "hearth_zfs_health_last_run_seconds $(date +%s)"
        } > "$tmp"
        chmod 0644 "$tmp"
        mv "$tmp" "$textfile_dir/zfs-health.prom"
      fi

      if [ -n "$fault_led" ] && [ -w "$fault_led" ]; then
        if [ "$healthy" = 1 ]; then echo 0 > "$fault_led"; else echo 1 > "$fault_led"; fi
      fi

      if [ "$healthy" = 1 ]; then
        echo "all pools healthy"
        exit 0
      fi
      # <3> = error priority in the journal (SyslogLevelPrefix).
      while IFS= read -r line; do echo "<3>$line"; done <<< "$summary"
      exit 1
    '';
  };
in
{
  options.hearth.zfsHealth = {
    enable = lib.mkEnableOption "periodic ZFS pool health reports (`zpool status -x`)";

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
        `hearth_zfs_pool_errors`, `hearth_zfs_healthy`); null writes none. When node-exporter
        runs on the host, its textfile collector is pointed here.
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

    systemd.tmpfiles.rules = lib.optional (
      cfg.textfileDirectory != null
    ) "d ${toString cfg.textfileDirectory} 0755 root root -";

    services.prometheus.exporters.node.extraFlags = lib.mkIf (
      nodeExporter.enable && cfg.textfileDirectory != null
    ) [ "--collector.textfile.directory=${toString cfg.textfileDirectory}" ];
  };
}
