#!/usr/bin/env bash
# ext4_loop: a file on siltfs works as the backing file of a loop device
# (the way swap files and some VM setups use it), with and without
# --direct-io=on: mkfs.ext4, files written, unmounted, `e2fsck -fn` clean,
# remounted with the data intact; fstrim inside ext4 punches holes into the
# image; and the image is still clean and intact after siltfs is remounted.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; E="$SILT_TMP/e"
mkdir -p "$E"
silt_make_volume "$V" 2 64K
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

# fill DIR: put files of several sizes, a directory tree and a symlink into DIR
fill() {
	local d=$1 i
	head -c $((8 << 20)) /dev/urandom > "$d/big"
	head -c $((1 << 20)) /dev/urandom > "$d/medium"
	for i in $(seq 1 40); do
		mkdir -p "$d/tree/$((i % 7))"
		head -c $((i * 997)) /dev/urandom > "$d/tree/$((i % 7))/f$i"
	done
	ln -s medium "$d/link"
}
# manifest DIR: checksums of every file under DIR plus the symlink target
manifest() { (cd "$1" && find . -type f -exec sha256sum {} + | LC_ALL=C sort && readlink link); }
fsck_clean() {
	local out rc=0
	out=$(e2fsck -fn "$1" 2>&1) || rc=$?
	[ $rc -eq 0 ] || { echo "$out" | tail -n 8 | sed 's/^/    | /'; return 1; }
}
chunks() { sync "$1"; silt_where_total_chunks "$1"; }

declare -A MAN
for dio in off on; do
	say "loop device with direct-io=$dio"
	img="$M/ext4-$dio.img"
	truncate -s 256M "$img"
	silt_losetup "$img" --direct-io="$dio"; dev=$SILT_LOOP
	check '[ -b "$dev" ]' "losetup -f --show --direct-io=$dio: $dev"
	want=0; [ $dio = on ] && want=1
	check_eq "$(losetup -n -O DIO "$dev" | tr -d ' ')" "$want" "loop device reports DIO=$want"
	check_cmd "mkfs.ext4" mkfs.ext4 -q -F "$dev"
	silt_track_mount "$E"
	check_cmd "mount the ext4" mount "$dev" "$E"
	fill "$E"
	MAN[$dio]=$(manifest "$E")
	sync
	check_cmd "umount the ext4" umount "$E"
	silt_drop_caches
	check 'fsck_clean "$dev"' "e2fsck -fn clean"
	check_cmd "mount again" mount "$dev" "$E"
	check '[ "$(manifest "$E")" == "${MAN[$dio]}" ]' "files intact after remount"
	before=$(chunks "$img")
	rm "$E/big"
	sync
	out=$(fstrim -v "$E" 2>&1) && rc=0 || rc=$?
	if [ $rc -ne 0 ] && [[ "$out" == *"not supported"* ]]; then
		skip "fstrim: the loop device offers no discard ($out)"
	else
		check '[ $rc -eq 0 ]' "fstrim ($out)"
		sync
		after=$(chunks "$img")
		check_le "$after" $((before - 100)) "fstrim punched the freed 8 MiB out of the image ($before -> $after chunks)"
	fi
	head -c $((8 << 20)) /dev/urandom > "$E/big"
	MAN[$dio]=$(manifest "$E")
	check_cmd "umount the ext4" umount "$E"
	check 'fsck_clean "$dev"' "e2fsck -fn clean after fstrim and rewrite"
	check_cmd "losetup -d" silt_lodetach "$dev"
done

say "after remounting siltfs"
check_cmd "umount siltfs" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
for dio in off on; do
	silt_losetup "$M/ext4-$dio.img" --direct-io="$dio"; dev=$SILT_LOOP
	check 'fsck_clean "$dev"' "direct-io=$dio image: e2fsck -fn clean"
	check_cmd "mount" mount "$dev" "$E"
	check '[ "$(manifest "$E")" == "${MAN[$dio]}" ]' "direct-io=$dio image: files intact"
	check_cmd "umount the ext4" umount "$E"
	check_cmd "losetup -d" silt_lodetach "$dev"
done
check_cmd "umount siltfs" silt_umount "$M"

silt_summary
