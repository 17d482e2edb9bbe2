#!/usr/bin/env bash
# concurrency: several processes at once on one volume, the way a VM with
# several I/O queues or several VMs use it: writers on disjoint but
# unaligned records of one file (sharing blocks and chunks, buffered and
# O_DIRECT, also across a tier spill) lose no update; parallel creates in
# one directory all show up in readdir, also after a remount; readers and
# writers of different files at the same time see their own data; SIGTERM
# with direct I/O in flight stops the daemon cleanly.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"
MiB=$((1 << 20))
SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$V" 2 64K 4M 256M
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

say "concurrent writers on one file"
# silt-stripes FILE WRITERS RECSIZE NRECS [direct|verify]: prints ok or the bad record
check_eq "$("$SILT_STRIPES" "$M/s1" 4 1000 4000 2>&1)" ok "4 buffered writers, 1000-byte records (4 MB)"
check_eq "$("$SILT_STRIPES" "$M/s2" 4 1000 4000 direct 2>&1)" ok "4 O_DIRECT writers, 1000-byte records"
check_eq "$("$SILT_STRIPES" "$M/s3" 6 513 8000 direct 2>&1)" ok "6 O_DIRECT writers, 513-byte records"
check_eq "$("$SILT_STRIPES" "$M/s4" 3 65537 40 direct 2>&1)" ok "3 O_DIRECT writers, records of a chunk + 1 byte"
rm -f "$M/s1" "$M/s2" "$M/s3" "$M/s4"
# t0 holds 4 MiB: this file is spread over both tiers while it is written
check_eq "$("$SILT_STRIPES" "$M/s5" 4 4000 3000 direct 2>&1)" ok "4 O_DIRECT writers across the t0 -> t1 spill (12 MB)"
j=$(sync "$M/s5"; silt_ctl where --json "$M/s5")
check '[ "$(json_get "$j" ".tiers[1].chunks")" -gt 0 ]' "... the file does span both tiers ($(json_get "$j" '[.tiers[].chunks] | join("+")') chunks)"
silt_drop_caches
check_eq "$("$SILT_STRIPES" "$M/s5" 4 4000 3000 verify 2>&1)" ok "... and reads back right after drop_caches"

say "parallel creates in one directory"
mkdir "$M/d"
pids=()
for w in 1 2 3 4; do
	( for i in $(seq 1 250); do echo "$w.$i" > "$M/d/f-$w-$i"; done ) &
	pids+=($!)
done
wait "${pids[@]}"
check_eq "$(ls "$M/d" | wc -l)" 1000 "1000 files created by 4 processes are listed"
check_eq "$(cat "$M/d/f-3-250")" 3.250 "content of one of them"
pids=()
for w in 1 2; do
	( for i in $(seq 1 250); do mv "$M/d/f-$w-$i" "$M/d/g-$w-$i"; rm "$M/d/f-$((w + 2))-$i"; done ) &
	pids+=($!)
done
wait "${pids[@]}"
check_eq "$(ls "$M/d" | grep -c '^g-')" 500 "500 renamed in parallel"
check_eq "$(ls "$M/d" | wc -l)" 500 "500 removed in parallel"

say "readers and writers of different files at the same time"
silt_random "$W/src" $((8 * MiB))
cp "$W/src" "$M/r0"
pids=()
for i in 1 2 3; do cp "$W/src" "$M/w$i" & pids+=($!); done
for i in 1 2 3; do ( for n in 1 2 3; do cmp -s "$W/src" "$M/r0" || echo bad; done > "$W/reader$i" ) & pids+=($!); done
wait "${pids[@]}"
check '[ ! -s "$W/reader1" ] && [ ! -s "$W/reader2" ] && [ ! -s "$W/reader3" ]' "3 readers saw the right data while 3 writers wrote"
silt_drop_caches
check 'cmp -s "$W/src" "$M/w1" && cmp -s "$W/src" "$M/w2" && cmp -s "$W/src" "$M/w3"' "the 3 writers' files are right"

say "after a remount"
check_cmd "umount" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(ls "$M/d" | wc -l)" 500 "directory still has 500 entries"
check_eq "$(cat "$M/d/g-2-17")" 2.17 "renamed file content"
check 'cmp -s "$W/src" "$M/w3"' "written file intact"
silt_check_accounting "$M"

say "SIGTERM with direct I/O in flight"
# fio keeps 32 asynchronous reads and writes queued on chunks that have a
# home (the daemon's asynchronous path, its own session loop); the daemon
# must stop, answer or fail them all, and leave a volume that mounts clean.
dd if=/dev/urandom of="$M/q" bs=1M count=16 oflag=direct status=none
pid=$(silt_daemon_pids "$M" | head -n1)
fio --name=q --filename="$M/q" --size=16M --ioengine=io_uring --direct=1 --rw=randrw \
	--bs=4k --iodepth=32 --time_based --runtime=30 --output=/dev/null 2>/dev/null &
fpid=$!
sleep 2
check 'kill -0 $fpid 2>/dev/null' "fio is running"
kill -TERM "$pid"
check 'silt_wait_pids_gone 30 $pid' "daemon exits on SIGTERM"
check 'silt_wait_pids_gone 30 $fpid' "fio is not left hanging (its I/O was answered or failed)"
kill -9 "$fpid" 2>/dev/null || true
wait "$fpid" 2>/dev/null || true
silt_is_mounted "$M" && { fail "still mounted after SIGTERM"; umount -l "$M"; }
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount after SIGTERM: $(cat "$SILT_LAST_ERR")"
check_eq "$(stat -c %s "$M/q")" $((16 * MiB)) "the file keeps its size"
check 'cmp -s "$W/src" "$M/w3"' "other files intact"
silt_check_accounting "$M"
check_cmd "umount" silt_umount "$M"

silt_summary
