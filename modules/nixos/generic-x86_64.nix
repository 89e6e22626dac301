# Any UEFI x86_64 machine (`hardware = "generic-x86_64"`). The generated host module
# imports this file only on such hosts, so it acts as soon as it is imported, like a
# nixos-hardware profile; everything is mkDefault so a host module can override it.
{ config, lib, ... }:
let
  cfg = config.hearth.genericX86_64;
  amd = cfg.cpu == "amd" || cfg.cpu == "both";
  intel = cfg.cpu == "intel" || cfg.cpu == "both";
in
{
  options.hearth.genericX86_64 = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Generic x86_64 hardware defaults (on when this module is imported).";
    };
    cpu = lib.mkOption {
      type = lib.types.enum [
        "amd"
        "intel"
        "both"
      ];
      default = "both";
      description = ''
        CPU vendor, for the KVM module and microcode updates. `both` works anywhere but
        logs a harmless error for the other vendor's KVM module; a host module sets it.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    boot.initrd.availableKernelModules = [
      "nvme"
      "xhci_pci"
      "ahci"
      "usbhid"
      "usb_storage"
      "sd_mod"
    ];
    boot.kernelModules = lib.optional amd "kvm-amd" ++ lib.optional intel "kvm-intel";
    boot.loader.efi.canTouchEfiVariables = lib.mkDefault true;

    hardware.enableRedistributableFirmware = lib.mkDefault true;
    hardware.cpu.amd.updateMicrocode = lib.mkDefault (
      amd && config.hardware.enableRedistributableFirmware
    );
    hardware.cpu.intel.updateMicrocode = lib.mkDefault (
      intel && config.hardware.enableRedistributableFirmware
    );

    services.fwupd.enable = lib.mkDefault true;
  };
}
