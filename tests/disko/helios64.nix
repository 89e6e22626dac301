# Reference disko layout for hosts/helios64.toml: what `hearth gen` should write to
# generated/helios64/disko.nix (give or take formatting and the header comment).
# tests/disko_eval.rs type-checks this file and the generated one with real disko.
#
# Mapping from the host file:
# - [disks.root] device/filesystem  -> disk "root", gpt, one partition filling the disk.
#   No ESP (esp = false, extlinux). The partition starts at 16M: Rockchip's boot ROM
#   looks for idbloader at sector 64 and U-Boot at 8M if the firmware is on the eMMC.
# - [disks.pools.<pool>].disks[i]   -> disk "<pool>-<i>" (zero-based), gpt, one "zfs"
#   partition, content { type = "zfs"; pool = "<pool>"; }.
# - mode                            -> zpool mode (string).
# - options                         -> zpool options (ashift etc.).
# - rootFsOptions                   -> fixed: mountpoint=none, canmount=off, compression=lz4,
#   atime=off, xattr=sa, acltype=posixacl (Samba ACLs).
# - datasets.<name>                 -> zfs_fs "<name>" with mountpoint; recordsize,
#   compression, quota -> options; snapshots -> options."com.sun:auto-snapshot"
#   ("true"/"false", read by services.zfs.autoSnapshot).
{
  disko.devices = {
    disk = {
      root = {
        type = "disk";
        device = "/dev/disk/by-id/mmc-AJTD4R_0x5c3a9e71";
        content = {
          type = "gpt";
          partitions = {
            root = {
              start = "16M";
              size = "100%";
              content = {
                type = "filesystem";
                format = "ext4";
                mountpoint = "/";
                mountOptions = [ "noatime" ];
              };
            };
          };
        };
      };
      tank-0 = {
        type = "disk";
        device = "/dev/disk/by-id/ata-WDC_WD40EFZX-68AWUN0_WD-WX12D80H3J7K";
        content = {
          type = "gpt";
          partitions.zfs = {
            size = "100%";
            content = {
              type = "zfs";
              pool = "tank";
            };
          };
        };
      };
      tank-1 = {
        type = "disk";
        device = "/dev/disk/by-id/ata-WDC_WD40EFZX-68AWUN0_WD-WX32D90N8C2L";
        content = {
          type = "gpt";
          partitions.zfs = {
            size = "100%";
            content = {
              type = "zfs";
              pool = "tank";
            };
          };
        };
      };
      tank-2 = {
        type = "disk";
        device = "/dev/disk/by-id/ata-WDC_WD40EFZX-68AWUN0_WD-WX52D81F5R0T";
        content = {
          type = "gpt";
          partitions.zfs = {
            size = "100%";
            content = {
              type = "zfs";
              pool = "tank";
            };
          };
        };
      };
      tank-3 = {
        type = "disk";
        device = "/dev/disk/by-id/ata-WDC_WD40EFZX-68AWUN0_WD-WX72DA0K1E9P";
        content = {
          type = "gpt";
          partitions.zfs = {
            size = "100%";
            content = {
              type = "zfs";
              pool = "tank";
            };
          };
        };
      };
    };
    zpool.tank = {
      type = "zpool";
      mode = "raidz1";
      options = {
        ashift = "12";
        autotrim = "off";
      };
      rootFsOptions = {
        mountpoint = "none";
        canmount = "off";
        compression = "lz4";
        atime = "off";
        xattr = "sa";
        acltype = "posixacl";
      };
      datasets = {
        backups = {
          type = "zfs_fs";
          mountpoint = "/srv/backup";
          options = {
            recordsize = "1M";
            compression = "lz4";
            quota = "2T";
            "com.sun:auto-snapshot" = "false";
          };
        };
        documents = {
          type = "zfs_fs";
          mountpoint = "/srv/documents";
          options = {
            compression = "zstd";
            quota = "500G";
            "com.sun:auto-snapshot" = "true";
          };
        };
        media = {
          type = "zfs_fs";
          mountpoint = "/srv/media";
          options = {
            recordsize = "1M";
            compression = "lz4";
            quota = "8T";
            "com.sun:auto-snapshot" = "true";
          };
        };
        photos = {
          type = "zfs_fs";
          mountpoint = "/srv/photos";
          options = {
            recordsize = "1M";
            compression = "lz4";
            quota = "2T";
            "com.sun:auto-snapshot" = "true";
          };
        };
      };
    };
  };
}
