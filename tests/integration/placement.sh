#!/usr/bin/env bash
# placement: new chunks go to the fastest tier below its high watermark and
# spill down tier by tier when tiers fill (seen through `siltctl where` and
# `siltctl status`, JSON and text); ENOSPC only when every tier is full, with
# the data already written intact and mapped chunks still writable in place;
# freed space is reused, fastest tier first.
#
# Volume: chunk_size 64K, tiers t0/t1/t2 of 4M/8M/16M (64/128/256 chunks),
# high and low watermark 100% so the arithmetic is exact and the migration
# engine has no reason to move anything.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"
MiB=$((1 << 20))
SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$V" 3 64K 4M 8M 16M
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
NAME=$(silt_volume_name "$V/vol.conf")

status() { silt_ctl -m "$M" status --json; }
where() { sync "$1"; silt_ctl where --json "$1"; }
# tier_field JSON TIER FIELD: FIELD of tier TIER in a status/where JSON
tier_field() { json_get "$1" ".tiers[] | select(.name == \"$2\") | .$3 | tojson"; }

say "status of the empty volume"
s=$(status)
echo "    $s" | head -c 600; echo
check_eq "$(json_get "$s" .volume.name)" "$NAME" "volume name"
check_eq "$(json_get "$s" .volume.chunk_size)" 65536 "chunk_size"
check_eq "$(json_get "$s" .volume.mountpoint)" "$M" "mountpoint"
check_eq "$(json_get "$s" .ram.size)" 67108864 "ram size (default 64M)"
check_eq "$(json_get "$s" '[.tiers[].name] | join(",")')" "t0,t1,t2" "tiers in config order"
check_eq "$(json_get "$s" '[.tiers[].class] | join(",")')" "nvme,ssd,hdd" "classes"
check_eq "$(json_get "$s" '[.tiers[].path] | join(",")')" "$V/t0,$V/t1,$V/t2" "paths"
check_eq "$(json_get "$s" '[.tiers[].capacity] | join(",")')" "4194304,8388608,16777216" "capacities"
check_eq "$(json_get "$s" '[.tiers[].used] | join(",")')" "0,0,0" "used 0"
check_eq "$(json_get "$s" '[.tiers[].chunks] | join(",")')" "0,0,0" "no chunks"
check_eq "$(json_get "$s" '[.tiers[] | "\(.high_watermark)/\(.low_watermark)"] | join(",")')" "100/100,100/100,100/100" "watermarks"
check_eq "$(json_get "$s" '[.tiers[].compression] | join(",")')" "none,none,none" "compression"
check_eq "$(df -B1 --output=size "$M" | tail -n1 | tr -d ' ')" $((28 * MiB)) "df size = 4M + 8M + 16M"

say "a 6 MiB file fills t0 and spills to t1"
silt_random "$W/a" $((6 * MiB))
check_cmd "write 6 MiB (O_DIRECT, 64K at a time)" dd if="$W/a" of="$M/a" bs=64K oflag=direct status=none
j=$(where "$M/a")
echo "    $j"
check_eq "$(json_get "$j" .file)" "$M/a" "where: file"
check_eq "$(json_get "$j" .ino)" "$(stat -c %i "$M/a")" "where: ino"
check_eq "$(json_get "$j" .size)" $((6 * MiB)) "where: size"
check_eq "$(json_get "$j" .chunk_size)" 65536 "where: chunk_size"
check_eq "$(json_get "$j" .chunks)" 96 "where: 96 chunks"
check_eq "$(json_get "$j" '[.tiers[].name] | join(",")')" "t0,t1,t2" "where lists every tier"
check_eq "$(tier_field "$j" t0 chunks)" 64 "t0 holds 64 chunks"
check_eq "$(tier_field "$j" t0 runs)" "[[0,63]]" "t0 runs [[0,63]]"
check_eq "$(tier_field "$j" t1 chunks)" 32 "t1 holds 32 chunks"
check_eq "$(tier_field "$j" t1 runs)" "[[64,95]]" "t1 runs [[64,95]]"
check_eq "$(tier_field "$j" t2 chunks)" 0 "t2 holds none"
check_eq "$(tier_field "$j" t2 runs)" "[]" "t2 runs []"
check_eq "$(tier_field "$j" t0 class)" '"nvme"' "where: class of t0"
s=$(status)
check_eq "$(json_get "$s" '[.tiers[].chunks] | join(",")')" "64,32,0" "status chunks 64,32,0"
check_eq "$(json_get "$s" '[.tiers[].used] | join(",")')" "$((4 * MiB)),$((2 * MiB)),0" "status used 4M,2M,0"
check_ge "$(json_get "$s" .volume.write_bytes)" $((6 * MiB)) "status write_bytes"
check_ge "$(json_get "$s" .volume.writes)" 96 "status writes"
cat "$M/a" > /dev/null; silt_drop_caches; cat "$M/a" > /dev/null
s=$(status)
check_ge "$(json_get "$s" .volume.read_bytes)" $((6 * MiB)) "status read_bytes"
check_ge "$(json_get "$s" .volume.reads)" 1 "status reads"

say "text output"
out=$(silt_ctl where "$M/a" 2>&1) || fail "siltctl where $M/a exited non-zero: $out"
echo "$out" | sed 's/^/    | /'
check '[[ "$out" == *t0* && "$out" == *t1* ]]' "siltctl where names t0 and t1"
out=$(silt_ctl -m "$M" status 2>&1) || fail "siltctl -m $M status exited non-zero: $out"
echo "$out" | sed 's/^/    | /'
check '[[ "$out" == *t0* && "$out" == *t1* && "$out" == *t2* && "$out" == *"$NAME"* ]]' "siltctl status names the tiers and the volume"
if [ "$(pgrep -x siltfs | wc -l)" = 1 ]; then
	check 'silt_ctl status --json | jq -e .volume.uuid >/dev/null' "siltctl status without -m finds the only mount"
else
	skip "siltctl status without -m: other siltfs daemons are running"
fi
check 'silt_ctl where --json "$M/a" | jq -e ".ino" >/dev/null' "siltctl where without -m finds the mount of the file"
check '! silt_ctl where --json /etc/passwd >/dev/null 2>&1' "siltctl where on a file outside siltfs fails"

say "fill every tier: ENOSPC"
out=$(dd if=/dev/urandom of="$M/b" bs=64K count=500 iflag=fullblock oflag=direct 2>&1) && rc=0 || rc=$?
echo "    dd: $(echo "$out" | head -n1)"
check '[ $rc -ne 0 ]' "writing 500 chunks more than fit fails"
check '[[ "$out" == *"No space left on device"* ]]' "... with No space left on device"
check_eq "$(stat -c %s "$M/b")" $((22 * MiB)) "the 352 chunks that fit were written (22 MiB)"
j=$(where "$M/b")
check_eq "$(tier_field "$j" t0 chunks),$(tier_field "$j" t1 chunks),$(tier_field "$j" t2 chunks)" "0,96,256" "b: t1 96 chunks, t2 256"
check_eq "$(tier_field "$j" t1 runs)$(tier_field "$j" t2 runs)" "[[0,95]][[96,351]]" "b: runs"
s=$(status)
check_eq "$(json_get "$s" '[.tiers[].used] | join(",")')" "$((4 * MiB)),$((8 * MiB)),$((16 * MiB))" "status: every tier full"
check_le "$(df -B1 --output=avail "$M" | tail -n1 | tr -d ' ')" 65536 "df avail ~0"
out=$(dd if=/dev/zero of="$M/c" bs=1M count=2 conv=fsync 2>&1) && rc=0 || rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"No space left on device"* ]]' "buffered write + fsync to a new file: ENOSPC ($(echo "$out" | head -n1))"
out=$(dd if=/dev/zero of="$M/a" bs=64K seek=96 count=1 oflag=direct conv=notrunc 2>&1) && rc=0 || rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"No space left on device"* ]]' "extending a file: ENOSPC"
out=$(fallocate -l 1M "$M/fa" 2>&1) && rc=0 || rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"No space left on device"* ]]' "fallocate: ENOSPC ($out)"
silt_drop_caches
check 'cmp -s "$W/a" "$M/a"' "file a intact"
check_eq "$(stat -c %s "$M/a")" $((6 * MiB)) "file a size unchanged"

say "mapped chunks stay writable when full"
silt_random "$W/patch" $((1 * MiB))
check_cmd "O_DIRECT overwrite of 1 MiB of a" dd if="$W/patch" of="$M/a" bs=64K seek=16 oflag=direct conv=notrunc status=none
dd if="$W/patch" of="$W/a" bs=64K seek=16 conv=notrunc status=none
check_cmd "buffered overwrite of 2 MiB of b + fsync" dd if=/dev/zero of="$M/b" bs=1M count=2 conv=notrunc,fsync status=none
check_cmd "unaligned overwrite inside a chunk of a" dd if="$W/patch" of="$M/a" bs=1000 count=3 seek=123457 oflag=seek_bytes conv=notrunc,fsync status=none
dd if="$W/patch" of="$W/a" bs=1000 count=3 seek=123457 oflag=seek_bytes conv=notrunc status=none
silt_drop_caches
check 'cmp -s "$W/a" "$M/a"' "a has the new data"
check 'silt_is_zero "$M/b" 0 $((2 * MiB))' "b has the new data"
check_eq "$(json_get "$(status)" '[.tiers[].chunks] | join(",")')" "64,128,256" "no chunk moved or added"

say "metadata operations still work when full"
check 'touch "$M/empty" && mkdir "$M/dir" && mv "$M/empty" "$M/dir/e" && ln -s a "$M/sym"' "create, mkdir, rename, symlink"
check_cmd "truncate -s 100M (grow, no allocation)" truncate -s 100M "$M/dir/e"
check_cmd "rm" rm -r "$M/dir" "$M/sym"
check_le "$(json_get "$(status)" .ram.used)" "$(json_get "$(status)" .ram.size)" "ram tier used <= size"
say "punching a hole when full makes room"
check_cmd "punch 4 chunks of b" fallocate -p -o 1M -l 256K "$M/b"
check_eq "$(json_get "$(status)" '[.tiers[].chunks] | add')" 444 "4 chunks freed"
check_cmd "write 4 new chunks" dd if=/dev/urandom of="$M/e" bs=64K count=4 oflag=direct status=none
out=$(dd if=/dev/zero of="$M/e" bs=64K count=1 seek=4 oflag=direct conv=notrunc 2>&1) && rc=0 || rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"No space left on device"* ]]' "the fifth: ENOSPC again"
rm "$M/e"

say "freed space is reused, fastest tier first"
rm "$M/b"
silt_wait_for 5 '[ "$(json_get "$(status)" "[.tiers[].chunks] | add")" = 96 ]'
s=$(status)
check_eq "$(json_get "$s" '[.tiers[].chunks] | join(",")')" "64,32,0" "rm b frees its chunks"
silt_random "$W/c" $MiB
check_cmd "write 1 MiB" dd if="$W/c" of="$M/c" bs=64K oflag=direct status=none
j=$(where "$M/c")
check_eq "$(tier_field "$j" t1 runs)" "[[0,15]]" "t0 full: the new file goes to t1"
rm "$M/a"
silt_wait_for 5 '[ "$(json_get "$(status)" "[.tiers[].chunks] | add")" = 16 ]'
silt_random "$W/d" $MiB
check_cmd "write 1 MiB" dd if="$W/d" of="$M/d" bs=64K oflag=direct status=none
j=$(where "$M/d")
check_eq "$(tier_field "$j" t0 runs)" "[[0,15]]" "t0 free again: the new file goes to t0"

say "placement survives a remount"
silt_check_accounting "$M"
check_cmd "umount" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
j=$(where "$M/d")
check_eq "$(tier_field "$j" t0 runs)" "[[0,15]]" "d still on t0"
check_eq "$(tier_field "$(where "$M/c")" t1 runs)" "[[0,15]]" "c still on t1"
check 'cmp -s "$W/c" "$M/c" && cmp -s "$W/d" "$M/d"' "data intact"
check_eq "$(json_get "$(status)" '[.tiers[].chunks] | join(",")')" "16,16,0" "status chunks after remount"
silt_check_accounting "$M"
check_cmd "umount" silt_umount "$M"

say "default watermarks (90%)"
V2="$SILT_TMP/v2"; M2="$SILT_TMP/m2"
silt_make_volume "$V2" 2 64K 4M 16M
silt_mount "$V2/vol.conf" "$M2" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_cmd "write 2 MiB" dd if=/dev/urandom of="$M2/f" bs=64K count=32 oflag=direct status=none
check_cmd "write 4 MiB more" dd if=/dev/urandom of="$M2/g" bs=64K count=64 oflag=direct status=none
j=$(where "$M2/g")
n0=$(( 32 + $(tier_field "$j" t0 chunks) ))
# 90% of 64 chunk slots is 57.6: 57 if no chunk may cross the mark, 58 if
# only a tier already above it is skipped (the contract does not say).
check '[ "$n0" -ge 57 ] && [ "$n0" -le 58 ]' "t0 stops taking new chunks at its 90% high watermark ($n0 of 64)"
check_eq "$(tier_field "$j" t1 runs)" "[[$((n0 - 32)),63]]" "the rest of g went to t1"
check_cmd "umount" silt_umount "$M2"

say "a zstd-compressed tier keeps data intact"
V3="$SILT_TMP/v3"; M3="$SILT_TMP/m3"; W3="$SILT_TMP/w3"; mkdir -p "$W3"
SILT_TIER_OPTS='compression = zstd:3' silt_make_volume "$V3" 2 64K 1M 64M
silt_mount "$V3/vol.conf" "$M3" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(json_get "$(silt_ctl -m "$M3" status --json)" '[.tiers[].compression] | join(",")')" "zstd:3,zstd:3" "status shows the compression"
{ for i in $(seq 1 60000); do echo "line $i of a very compressible text file"; done; } > "$W3/text"
silt_random "$W3/rand" $((3 * MiB))
cp "$W3/text" "$M3/text"; cp "$W3/rand" "$M3/rand"
dd if="$W3/rand" of="$M3/text" bs=1000 count=5 seek=777777 oflag=seek_bytes conv=notrunc status=none
dd if="$W3/rand" of="$W3/text" bs=1000 count=5 seek=777777 oflag=seek_bytes conv=notrunc status=none
silt_drop_caches
check 'cmp -s "$W3/text" "$M3/text" && cmp -s "$W3/rand" "$M3/rand"' "text and random data read back"
# used bytes are what the chunks really take: the tiers' chunk folders on disk
chunk_du() { du -sB1 "$V3"/t*/*/chunks | awk '{ n += $1 } END { print n }'; }
sync -f "$M3"
s=$(silt_ctl -m "$M3" status --json)
used=$(json_get "$s" '[.tiers[].used] | add'); slots=$(( $(json_get "$s" '[.tiers[].chunks] | add') * 65536 ))
du0=$(chunk_du)
echo "    used $used bytes in $slots bytes of slots; the chunk folders take $du0 bytes"
check '[ "$used" -lt $(( slots * 3 / 4 )) ]' "status used counts the compressed chunks at their size ($used < 3/4 of $slots)"
check '[ "$used" -le $(( du0 + 131072 )) ] && [ "$du0" -le $(( used + 131072 )) ]' "status used = the tier folders' disk usage (within 128K: $used vs $du0)"
check_cmd "umount" silt_umount "$M3"
echo "    (tier usage on disk: t0 $(du -sk "$V3/t0" | cut -f1)K, t1 $(du -sk "$V3/t1" | cut -f1)K for $(( ($(stat -c %s "$W3/text") + 3 * MiB) / 1024 ))K of data)"
silt_mount "$V3/vol.conf" "$M3" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check 'cmp -s "$W3/text" "$M3/text" && cmp -s "$W3/rand" "$M3/rand"' "... also after a remount"
check_eq "$(json_get "$(silt_ctl -m "$M3" status --json)" '[.tiers[].used] | add')" "$used" "used bytes counted the same from the map at mount"
rm "$M3/text"
# the kernel forgets the inode, and the daemon frees it, a moment later
for _ in $(seq 1 50); do
	used=$(json_get "$(silt_ctl -m "$M3" status --json)" '[.tiers[].used] | add')
	[ "$used" = $((3 * MiB)) ] && break
	sleep 0.1
done
check_eq "$used" $((3 * MiB)) "the text file's compressed chunks given back at unlink (the random file's 3 MiB stay)"
check_cmd "umount" silt_umount "$M3"

silt_summary
