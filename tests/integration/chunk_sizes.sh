#!/usr/bin/env bash
# chunk_sizes: the data path is right at both ends of the chunk size range,
# 4K and 4M: a 24 MiB file written in large and odd-sized pieces spills from
# a small first tier to the second and reads back byte-exact (also after a
# remount); chunk counts, truncate (zeroed tail), punch hole and
# SEEK_DATA/SEEK_HOLE follow the chunk size.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

MiB=$((1 << 20))
for cs in 4K 4M; do
	case $cs in
	4K) CS=4096;     cap0=1M ;;
	4M) CS=4194304;  cap0=8M ;;
	esac
	V="$SILT_TMP/v$cs"; M="$SILT_TMP/m$cs"; W="$SILT_TMP/w$cs"
	mkdir -p "$W"
	SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$V" 2 "$cs" "$cap0" 256M
	silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	chunks() { sync "$1"; silt_where_total_chunks "$1"; }
	say "chunk_size $cs: write and read back"
	check_eq "$(json_get "$(silt_ctl -m "$M" status --json)" .volume.chunk_size)" "$CS" "status: chunk_size $CS"
	silt_random "$W/f" $((24 * MiB))
	check_cmd "cp 24 MiB" cp "$W/f" "$M/f"
	silt_random "$W/p" 100000
	for off in 1 4095 4097 65535 $((CS - 1)) $((CS * 2 + 12345)) $((20 * MiB + 777)); do
		dd if="$W/p" of="$M/f" bs=777 count=50 seek="$off" oflag=seek_bytes conv=notrunc status=none
		dd if="$W/p" of="$W/f" bs=777 count=50 seek="$off" oflag=seek_bytes conv=notrunc status=none
	done
	silt_drop_caches
	check 'cmp -s "$W/f" "$M/f"' "24 MiB file with odd-sized overwrites reads back"
	n=$((24 * MiB / CS))
	j=$(sync "$M/f"; silt_ctl where --json "$M/f")
	check_eq "$(json_get "$j" '[.tiers[].chunks] | add')" "$n" "$n chunks mapped"
	t0=$(( (${cap0%M} * MiB) / CS ))
	check_eq "$(json_get "$j" '.tiers[0].chunks')" "$t0" "t0 ($cap0) holds $t0 chunks, the rest spilled to t1"

	say "chunk_size $cs: truncate, punch, seek"
	cut=$((10 * MiB + 1000))
	truncate -s "$cut" "$M/f"
	check_eq "$(chunks "$M/f")" $(( (cut + CS - 1) / CS )) "truncate to $cut frees chunks"
	truncate -s $((24 * MiB)) "$M/f"
	silt_drop_caches
	check 'cmp -s <(head -c "$cut" "$W/f") <(head -c "$cut" "$M/f")' "data below the cut intact"
	check 'silt_is_zero "$M/f" "$cut" $((24 * MiB - cut))' "grown tail reads zeros"
	before=$(chunks "$M/f")
	fallocate -p -o "$CS" -l $((CS * 2)) "$M/f"
	check_eq "$(chunks "$M/f")" $((before - 2)) "punching chunks 1-2 frees them"
	check 'silt_is_zero "$M/f" "$CS" $((CS * 2))' "punched chunks read zeros"
	check_eq "$("$SILT_SEEK" "$M/f" hole 0 || true)" "$CS" "SEEK_HOLE 0 -> $CS"
	want=ENXIO; [ $(( (cut - 1) / CS )) -ge 3 ] && want=$((CS * 3))
	check_eq "$("$SILT_SEEK" "$M/f" data "$CS" || true)" "$want" "SEEK_DATA $CS -> $want"
	head -c "$cut" "$W/f" > "$W/g"; truncate -s $((24 * MiB)) "$W/g"
	dd if=/dev/zero of="$W/g" bs="$CS" seek=1 count=2 conv=notrunc status=none

	say "chunk_size $cs: after a remount"
	check_cmd "umount" silt_umount "$M"
	silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	check 'cmp -s "$W/g" "$M/f"' "file content as expected after remount"
	silt_check_accounting "$M"
	check_cmd "umount" silt_umount "$M"
done

silt_summary
