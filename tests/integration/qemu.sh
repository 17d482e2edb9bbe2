#!/usr/bin/env bash
# qemu: the qemu block layer works on siltfs the way libvirt uses it: raw and
# qcow2 images created, written and read with cache=none (O_DIRECT) at
# aligned and odd offsets, qcow2 checks clean (also with a snapshot),
# convert raw <-> qcow2 keeps data and sparseness, `qemu-img map` sees holes
# through SEEK_DATA/SEEK_HOLE, preallocation=falloc allocates, resize works,
# and everything is the same after a remount.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"
MiB=$((1 << 20))
silt_make_volume "$V" 2 64K
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

# data_at MAPJSON OFFSET: the "data" flag of the qemu-img map extent at OFFSET
data_at() { jq -r --argjson o "$2" '[.[] | select(.start <= $o and $o < .start + .length)][0].data' <<<"$1"; }
chunks() { sync "$1"; silt_where_total_chunks "$1"; }

say "create images"
check_cmd "qemu-img create -f raw 64M" qemu-img create -q -f raw "$M/r.img" 64M
check_cmd "qemu-img create -f qcow2 64M" qemu-img create -q -f qcow2 "$M/q.qcow2" 64M
check_eq "$(stat -c %s "$M/r.img")" $((64 * MiB)) "raw image size"
# (qemu-img writes the first 4 KiB of a new raw image: one chunk at most)
check_le "$(chunks "$M/r.img")" 1 "a new raw image allocates (almost) nothing"

say "qemu-io -t none on the raw image"
check 'silt_qio raw "$M/r.img" "write -P 0xab 0 1M" "read -P 0xab 0 1M"' "write/read 1M at 0, pattern 0xab"
check 'silt_qio raw "$M/r.img" "write -P 0xcd 32M 1M" "read -P 0xcd 32M 1M"' "write/read 1M at 32M"
check 'silt_qio raw "$M/r.img" "write -P 0x5a 12345 100000" "read -P 0x5a 12345 100000" "read -P 0xab 0 12345" "read -P 0xab 112345 936231"' \
	"write 100000 bytes at the odd offset 12345; neighbours intact"
check 'silt_qio raw "$M/r.img" "read -P 0 1M 31M" "read -P 0 33M 31M"' "unwritten ranges read zeros"
check 'silt_qio raw "$M/r.img" "write -z 32M 64k" "read -P 0 32M 64k" "read -P 0xcd 34537472 64k"' "write -z (zero range) inside the data"
check 'silt_qio raw "$M/r.img" "discard 40M 1M" "read -P 0 40M 1M"' "discard (punch hole) reads zeros"
check 'silt_qio raw "$M/r.img" "flush"' "flush (fdatasync)"

say "qemu-img map shows holes"
map=$(qemu-img map -f raw --output=json "$M/r.img" 2>&1) || fail "qemu-img map: $map"
echo "    $(echo "$map" | tr -d '\n ' | head -c 400)"
for pair in 0:true $((MiB - 1)):true $MiB:false $((16 * MiB)):false $((32 * MiB + 65536)):true \
	$((33 * MiB - 1)):true $((33 * MiB)):false $((63 * MiB)):false; do
	o=${pair%:*} want=${pair#*:}
	check_eq "$(data_at "$map" "$o")" "$want" "map: data at offset $o is $want"
done
n=$(chunks "$M/r.img")
check '[ "$n" -ge 31 ] && [ "$n" -le 32 ]' "raw image has 31-32 chunks: 1M at 0, 1M at 32M (one maybe zeroed away): $n"

say "qemu-io -t none on the qcow2 image"
check 'silt_qio qcow2 "$M/q.qcow2" "write -P 0x11 0 1M" "write -P 0x22 5000000 77777" "read -P 0x11 0 1M" "read -P 0x22 5000000 77777" "read -P 0 10M 1M"' \
	"qcow2 writes at 0 and at the odd offset 5000000"
out=$(qemu-img check "$M/q.qcow2" 2>&1) && rc=0 || rc=$?
check '[ $rc -eq 0 ] && [[ "$out" == *"No errors were found"* ]]' "qemu-img check clean ($(echo "$out" | head -n1))"
check_cmd "qemu-img snapshot -c" qemu-img snapshot -c snap1 "$M/q.qcow2"
check 'silt_qio qcow2 "$M/q.qcow2" "write -P 0x33 0 64k"' "write after the snapshot (copy on write)"
check 'qemu-img snapshot -l "$M/q.qcow2" | grep -q snap1' "snapshot listed"
check_cmd "qemu-img check after the snapshot" qemu-img check -q "$M/q.qcow2"

say "convert raw -> qcow2 -> raw"
check_cmd "convert raw -> qcow2 (-t none -T none)" qemu-img convert -t none -T none -f raw -O qcow2 "$M/r.img" "$M/rq.qcow2"
check_cmd "qemu-img check of the converted image" qemu-img check -q "$M/rq.qcow2"
check_cmd "qemu-img compare raw vs qcow2" qemu-img compare -q -f raw -F qcow2 "$M/r.img" "$M/rq.qcow2"
check_cmd "convert qcow2 -> raw" qemu-img convert -t none -T none -f qcow2 -O raw "$M/rq.qcow2" "$M/rr.img"
check 'cmp -s "$M/r.img" "$M/rr.img"' "round trip is byte-identical"
check_le "$(chunks "$M/rr.img")" 40 "round-tripped raw image stays sparse"
map2=$(qemu-img map -f raw --output=json "$M/rr.img" 2>&1)
check_eq "$(data_at "$map2" $((16 * MiB))),$(data_at "$map2" 0)" "false,true" "round-tripped raw: hole at 16M, data at 0"
check_cmd "convert qcow2 (with snapshot) -> raw" qemu-img convert -f qcow2 -O raw "$M/q.qcow2" "$M/qr.img"
check 'silt_qio raw "$M/qr.img" "read -P 0x33 0 64k" "read -P 0x11 64k 960k" "read -P 0x22 5000000 77777"' "converted qcow2 content"

say "parallel and asynchronous I/O"
check_cmd "convert -W -m 8 (8 coroutines, out-of-order writes) to qcow2" \
	qemu-img convert -W -m 8 -t none -T none -f raw -O qcow2 "$M/r.img" "$M/rw.qcow2"
check_cmd "... identical" qemu-img compare -q -f raw -F qcow2 "$M/r.img" "$M/rw.qcow2"
check_cmd "qemu-img bench: 2000 random 4k writes, queue depth 16, cache=none" \
	qemu-img bench -w -t none -c 2000 -d 16 -s 4k -S 12345678 -f qcow2 "$M/rw.qcow2"
check_cmd "qemu-img check after the bench" qemu-img check -q "$M/rw.qcow2"
check 'silt_qio raw "$M/r.img" "aio_write -P 0x61 4M 64k" "aio_write -P 0x62 4259840 64k" "aio_flush" "read -P 0x61 4M 64k" "read -P 0x62 4259840 64k"' \
	"qemu-io aio_write x2 + aio_flush"
if qemu-io -f raw -t none -i io_uring -c "read 0 4k" "$M/r.img" >/dev/null 2>&1; then
	out=$(qemu-io -f raw -t none -i io_uring -c "write -P 0x63 8M 1M" -c "read -P 0x63 8M 1M" "$M/r.img" 2>&1) && rc=0 || rc=$?
	check '[ $rc -eq 0 ] && ! grep -qiE "fail|error" <<<"$out"' "qemu-io with aio=io_uring"
else
	skip "qemu-io -i io_uring is not available"
fi

say "resize"
check_cmd "qemu-img resize +16M" qemu-img resize -q -f raw "$M/r.img" +16M
check_eq "$(stat -c %s "$M/r.img")" $((80 * MiB)) "resized to 80M"
check 'silt_qio raw "$M/r.img" "write -P 0x77 79M 1M" "read -P 0x77 79M 1M" "read -P 0 64M 15M"' "write in the grown part"

say "after a remount"
sum_r=$(silt_sum "$M/r.img"); sum_q=$(silt_sum "$M/q.qcow2")
check_cmd "umount" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(silt_sum "$M/r.img")" "$sum_r" "raw image unchanged"
check_eq "$(silt_sum "$M/q.qcow2")" "$sum_q" "qcow2 image unchanged"
check_cmd "qemu-img check" qemu-img check -q "$M/q.qcow2"
check_cmd "qemu-img compare raw vs converted qcow2" qemu-img compare -q -f raw -F qcow2 "$M/rr.img" "$M/rq.qcow2"
map3=$(qemu-img map -f raw --output=json "$M/r.img" 2>&1)
check_eq "$(data_at "$map3" $((16 * MiB))),$(data_at "$map3" $((79 * MiB)))" "false,true" "holes and data still where they were"

say "preallocation"
check_cmd "qemu-img create preallocation=falloc 16M" qemu-img create -q -f raw -o preallocation=falloc "$M/pre.img" 16M
check_eq "$(chunks "$M/pre.img")" 256 "falloc preallocation maps all 256 chunks"
check 'silt_qio raw "$M/pre.img" "read -P 0 0 16M" "write -P 0x42 1M 1M" "read -P 0x42 1M 1M"' "preallocated image reads zeros, takes writes"
check_cmd "umount" silt_umount "$M"

silt_summary
