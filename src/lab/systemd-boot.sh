# Boot of a hearth lab host with systemd (stage 1 + 2). Runs as PID 1 of the host's own
# pid, mount, uts and ipc namespaces, inside its network namespace:
#   nsenter --net=/run/netns/<ns> unshare --pid --fork --mount --uts --ipc --propagation private \
#     sh systemd-boot.sh <host dir> <host name> <cgroup name>
# It composes a private root on a tmpfs (the machine's /usr and /etc read-only; its own
# /run, /tmp, /var, /dev, /etc/systemd, unit directory, journal), makes the boot entry the
# current system as NixOS's stage 2 does, and execs systemd. systemd there never sees the
# machine's units, generators, fstab, consoles, /tmp or /var/tmp.
set -eu
DIR=$1
NAME=$2
CG=$3
R=$DIR/sysroot
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# Own cgroup subtree in every hierarchy systemd manages, so `lab down` finds and removes
# whatever systemd creates beneath it.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p "/sys/fs/cgroup/$CG" && echo $$ > "/sys/fs/cgroup/$CG/cgroup.procs"
else
  for h in systemd unified; do
    if [ -d "/sys/fs/cgroup/$h" ]; then
      mkdir -p "/sys/fs/cgroup/$h/$CG" && echo $$ > "/sys/fs/cgroup/$h/$CG/cgroup.procs"
    fi
  done
fi

mkdir -p "$R"
mount -t tmpfs -o mode=755 lab-root "$R"
cd "$R"
mkdir -p usr etc nix proc sys dev run tmp var root home oldroot
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
[ ! -d /usr/lib64 ] || ln -s usr/lib64 lib64
mount --rbind /usr usr
mount -o remount,bind,ro usr
# The lab's unit directory instead of the machine's; no generators (fstab, getty, sysv…).
mount --bind "$DIR/systemd/units" usr/lib/systemd/system
mount --bind "$DIR/systemd/empty" usr/lib/systemd/system-generators
mount --bind /etc etc
mount -o remount,bind,ro etc
mount --bind "$DIR/systemd/etc" etc/systemd
mount --bind "$DIR/etc-nix" etc/nix
for f in passwd group shadow sudoers fstab machine-id hostname; do
  [ -e "$DIR/etc/$f" ] || continue
  [ -e "etc/$f" ] || continue
  mount --bind "$DIR/etc/$f" "etc/$f"
done
mount --bind "$DIR/nix" nix
mount -t proc proc proc
# Kernel settings are the machine's: read-only, whatever runs inside.
mount --bind proc/sys proc/sys
mount -o remount,bind,ro proc/sys
mount -t sysfs -o ro sysfs sys
mount --rbind /sys/fs/cgroup sys/fs/cgroup
mount -t tmpfs -o mode=755 lab-dev dev
for n in null zero full random urandom tty; do
  touch "dev/$n"
  mount --bind "/dev/$n" "dev/$n"
done
mkdir dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts dev/pts
ln -s pts/ptmx dev/ptmx
mount -t tmpfs -o mode=1777 shm dev/shm
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr
# The "console" is a file in the host's tree, not the machine's terminal.
touch dev/console
mount --bind "$DIR/systemd/console.log" dev/console
mount -t tmpfs -o mode=755 lab-run run
mkdir -p run/sshd run/lock
mount --bind "$DIR/tmp" tmp
mount -t tmpfs -o mode=755 lab-var var
mkdir -p var/tmp var/lib var/log/journal var/cache
mount --bind "$DIR/systemd/journal" var/log/journal
mount --bind "$DIR/root" root
mount --bind "$DIR/home" home
# The lab's run dir at its own path: sshd's config, keys and pid file name it, and a
# builder host reaches other hosts with the lab's client key (as on plain hosts, which
# see the machine's file system).
RUN=$(dirname "$(dirname "$DIR")")
mkdir -p "$R$RUN"
mount --bind "$RUN" "$R$RUN"

pivot_root . oldroot
cd /
umount -l /oldroot
rmdir /oldroot

# Stage 2: the boot entry becomes the running system, with its units.
STATE=/nix/var/lab
if [ -L "$STATE/boot-system" ]; then
  ln -sfn "$(readlink "$STATE/boot-system")" "$STATE/current-system"
  ln -sfn "$(readlink "$STATE/boot-system")" /run/current-system
  "$STATE/boot-system/bin/switch-to-configuration" link-units >/dev/null
fi
hostname "$NAME"
# The network comes up at boot whatever the last activation did to it.
ip link set lo up
ip link set eth0 up
exec env -i container=hearth-lab PATH="$PATH" /lib/systemd/systemd --system
