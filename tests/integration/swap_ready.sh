#!/usr/bin/env bash
# Swap readiness of the daemon (issue: "ready to serve swap"): once mounted
# and detached, the daemon has locked its memory (mlockall in the FUSE init
# callback), keeps a bounded number of threads under load, and a swap area
# on a loop device over a file on siltfs can be made, enabled and disabled.
# Memory pressure tests of swap itself come with the swap issue.
. "$(dirname "$0")/lib.sh"

vol=$SILT_TMP/v
mnt=$SILT_TMP/m
mkdir -p "$vol" "$mnt"
silt_make_volume "$vol" 2 64K
silt_mount "$vol/vol.conf" "$mnt" "threads=8"

pid=$(silt_daemon_pids "$mnt" | head -n1)
check '[ -n "$pid" ]' "daemon pid found"

say "memory is locked after init"
# the first request runs the init callback; it has by now
ls "$mnt" >/dev/null
locked=$(awk '/^VmLck:/ {print $2}' "/proc/$pid/status")
if [ -n "${SILT_SANITIZED:-}" ]; then
  skip "VmLck ${locked:-0} kB: AddressSanitizer makes mlockall a no-op in this build"
else
  check_ge "${locked:-0}" 1024 "VmLck ${locked:-0} kB (mlockall done)"
fi

say "threads stay bounded under parallel load"
fallocate -l 64M "$mnt/load"
jobs_=()
for j in 1 2 3 4 5 6; do
  dd if=/dev/zero of="$mnt/load" bs=64K count=300 seek=$((j * 100)) conv=notrunc oflag=direct status=none &
  jobs_+=($!)
done
max=0
for _ in $(seq 1 20); do
  n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
  [ "$n" -gt "$max" ] && max=$n
  sleep 0.05
done
wait "${jobs_[@]}"
# 8 FUSE workers + main + control + completion + 3 of RocksDB, and the
# kernel's io_uring workers (at most 1 per class for each worker's
# synchronous ring and for its asynchronous lane)
check_le "$max" 40 "at most 40 threads with threads=8 (saw $max)"
names=$(cat /proc/"$pid"/task/*/comm | sort -u | tr '\n' ' ')
check '[[ "$names" == *silt-ctl* && "$names" == *silt-aio* ]]' "our threads are named ($names)"
workers=$(cat /proc/"$pid"/task/*/comm | grep -c '^silt-fuse-[0-7]$' || true)
check_eq "$workers" 8 "threads=8 gives 8 FUSE workers, silt-fuse-0..7"

say "a swap area on a loop device over a siltfs file"
dd if=/dev/zero of="$mnt/swapfile" bs=1M count=64 oflag=direct status=none
chmod 600 "$mnt/swapfile"
silt_losetup "$mnt/swapfile" --direct-io=on
check_cmd "mkswap on the loop device" mkswap "$SILT_LOOP"
if silt_swapon "$SILT_LOOP"; then
  pass "swapon $SILT_LOOP"
  check 'grep -q "^$SILT_LOOP " /proc/swaps' "listed in /proc/swaps"
  check_cmd "swapoff" swapoff "$SILT_LOOP"
  SILT_SWAPS=()
else
  fail "swapon $SILT_LOOP"
fi
silt_lodetach "$SILT_LOOP"
check_cmd "umount" silt_umount "$mnt"

silt_summary
