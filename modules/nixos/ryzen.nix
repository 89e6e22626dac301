# hosts/nixos.toml lists this file under `modules`: the escape hatch for what the
# host-file format does not cover. Here: the CPU vendor and SSD trim for the Ryzen box.
{
  hearth.genericX86_64.cpu = "amd";

  # The root is btrfs on NVMe: weekly TRIM instead of the `discard` mount option.
  services.fstrim.enable = true;

  # Builds for the fleet run here; keep a few GB free for them.
  nix.settings.min-free = 5 * 1024 * 1024 * 1024;
}
