#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and mount a demo
# volume in ./demo whose three tiers (nvme, ssd, hdd) are local folders;
# write a demo VM image the way a guest would (an OS install at the start,
# scattered writes later) and show where its chunks live; then the guest
# reads its scattered blocks again and the hot chunks rise to the fast tier.
#
# The volume stays mounted afterwards so you can look around:
#   build/siltctl -m demo/mnt status
#   build/siltctl where demo/mnt/vm.img
#   build/siltctl heat demo/mnt/vm.img
#   build/siltctl -m demo/mnt events
#   build/siltctl -m demo/mnt log
#   umount demo/mnt
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh >/dev/null

top=$PWD/demo
mkdir -p "$top"/{nvme,ssd,hdd,mnt}
if mountpoint -q "$top/mnt"; then
  umount "$top/mnt"
fi
cat > "$top/demo.conf" <<CONF
# siltfs demo volume: three tiers, fastest first (see docs/usage.md)
[volume]
name = demo
chunk_size = 64K
log_file = $top/demo.log

[ram]
size = 64M

[tier nvme]
path = $top/nvme
class = nvme
capacity = 64M

[tier ssd]
path = $top/ssd
class = ssd
capacity = 256M

[tier hdd]
path = $top/hdd
class = hdd
capacity = auto
CONF

echo "== mounting $top/mnt"
build/siltfs "$top/demo.conf" "$top/mnt"
rm -f "$top/mnt/vm.img"

echo "== creating a 2 GiB raw VM image (sparse) and writing to it like a guest"
qemu-img create -q -f raw "$top/mnt/vm.img" 2G
# an OS install: 400 MiB written sequentially at the start of the disk
dd if=/dev/urandom of="$top/mnt/vm.img" bs=1M count=400 conv=notrunc oflag=direct status=none
# later life: scattered 64 KiB writes over the whole disk
scattered=$(for i in $(seq 1 40); do echo $(( (i * 7919) % 32768 )); done)
for k in $scattered; do
  dd if=/dev/urandom of="$top/mnt/vm.img" bs=64K count=1 seek="$k" conv=notrunc oflag=direct status=none
done
sync "$top/mnt/vm.img"

# how many of the 40 scattered chunks live on the tier named $1
on_tier() {
  build/siltctl where --json "$top/mnt/vm.img" | jq --arg t "$1" --argjson ks "[$(echo $scattered | tr ' ' ,)]" \
    '[.tiers[] | select(.name == $t) | .runs[] as $r | $ks[] | select(. >= $r[0] and . <= $r[1])] | length'
}

echo
echo "== siltctl status"
build/siltctl -m "$top/mnt" status
echo
echo "== siltctl where vm.img"
build/siltctl where "$top/mnt/vm.img"
echo
echo "== the scattered chunks: $(on_tier nvme) of 40 on nvme, $(on_tier hdd) on hdd"
echo "== the guest reads its scattered blocks again, three times"
for pass in 1 2 3; do
  for k in $scattered; do
    dd if="$top/mnt/vm.img" of=/dev/null bs=64K count=1 skip="$k" iflag=direct status=none
  done
done
echo "== siltctl migrate (one epoch now; the engine also runs by itself every few seconds)"
build/siltctl -m "$top/mnt" migrate
echo
echo "== hot data rose: $(on_tier nvme) of the 40 scattered chunks on nvme now, $(on_tier hdd) on hdd"
build/siltctl where "$top/mnt/vm.img"
echo
echo "== qemu-img map (allocated regions come from the chunk map)"
qemu-img map -f raw "$top/mnt/vm.img" | head -8
echo
echo "== siltctl log (the daemon's last log lines)"
build/siltctl -m "$top/mnt" log -n 5
echo
echo "The volume is still mounted on $top/mnt; 'umount $top/mnt' when done."
