#!/usr/bin/env bash
# integrity: a byte flipped in a tier file is never read back as data
# (issue 11 point 1), through the mount and the real CLI.
#
# Two volumes, each an image demoted by the migration engine (one churn
# epoch: every chunk from the nvme tier to the hdd tier) onto an hdd tier:
#  - A: plain chunks, one XXH3 per 4 KiB block in their records;
#  - B: a zstd tier: compressible chunks stored compressed (a header with
#    checksums of the raw chunk and of the stored bytes), incompressible
#    ones raw (the record's XXH3 of the chunk); rewriting one block of a
#    damaged compressed chunk salvages it (fs/rw.c): that block reads back,
#    the others still read as EIO.
# Bytes are flipped in the tier files, in data, in headers and in the
# padding of compressed slots. Then, with the RAM tier off and O_DIRECT
# reads (nothing cached anywhere): every damaged block or chunk reads as
# EIO, every other block reads back right, each damaged chunk raises a
# checksum event naming its inode, chunk and tier, and `siltctl scrub`
# finds exactly the damaged chunks (exit 1). Rewriting the damaged blocks
# (4 KiB, O_DIRECT) heals them: they read back the new data, and a second
# scrub is clean; so does a remount.
. "$(dirname "$0")/lib.sh"
set +e

MiB=$((1 << 20))
CS=65536
W="$SILT_TMP/w"; mkdir -p "$W"

# flip FILE OFFSET: invert the byte at OFFSET of FILE, durably.
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $(( (b ^ 0xff) & 0xff )))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc,fsync status=none
}
# dread FILE OFF LEN: LEN bytes at OFF with O_DIRECT, to stdout
dread() { dd if="$1" iflag=direct,skip_bytes,count_bytes skip="$2" count="$3" bs=64k status=none; }
# eio FILE OFF LEN: the O_DIRECT read fails with EIO
eio() { local err; err=$(dread "$@" 2>&1 >/dev/null); [[ $err == *"Input/output error"* ]]; }
# same FILE OFF LEN REF: the O_DIRECT read matches REF at OFF
same() { cmp -s <(dread "$1" "$2" "$3") <(silt_range "$4" "$2" "$3"); }
# tier_file VOL INO TIER: the tier file of INO's chunks (segment 0) on TIER
tier_file() { silt_chunk_files "$1" "$2" | grep "/$3/" | head -n1; }
checksum_events() { json_get "$(silt_ctl -m "$1" events -n 1000 --json)" '[.events[] | select(.kind == "checksum") | .text] | .[]'; }

# make_vol VOL MNT: a volume with an nvme tier t0 and an hdd tier t1 (its
# extra options in TIER1_OPTS), migration only when asked, no RAM tier
make_vol() {
	SILT_VOLUME_OPTS=$'[ram]\nsize = 0\n[placement]\npolicy = lru\nepoch = 1h' silt_make_volume "$1" 2 64K
	sed -i 's/^class = ssd$/class = hdd/' "$1/vol.conf"
	[ -n "${TIER1_OPTS:-}" ] && sed -i "/^\[tier t1\]/a $TIER1_OPTS" "$1/vol.conf"
	silt_mount "$1/vol.conf" "$2" || silt_abort "cannot mount $1: $(cat "$SILT_LAST_ERR")"
}
demote() {
	silt_ctl -m "$1" migrate churn >/dev/null && silt_ctl -m "$1" migrate >/dev/null &&
		silt_ctl -m "$1" migrate off >/dev/null
}

say "plain chunks on an hdd tier: one checksum per 4 KiB block"
VA="$SILT_TMP/a"; MA="$SILT_TMP/ma"
make_vol "$VA" "$MA"
silt_random "$W/p" $((2 * MiB))
dd if="$W/p" of="$MA/p" bs=1M oflag=direct status=none
check_cmd "one churn epoch demotes the image" demote "$MA"
check_eq "$(silt_where_tier_chunks "$MA/p" t1)" 32 "all 32 chunks on the hdd tier t1"
ino=$(stat -c %i "$MA/p")
tf=$(tier_file "$VA" "$ino" t1)
check '[ -f "$tf" ]' "the image's tier file on t1: ${tf#"$SILT_TMP"/}"
# one flip in each of these chunks, in a different block each time
flipped=(2 5 9 14 20 27)
declare -A blk
for k in "${flipped[@]}"; do
	blk[$k]=$(( (k * 7) % 16 ))
	flip "$tf" $(( k * CS + blk[$k] * 4096 + (k * 131) % 4096 ))
done
bad=0 good=0
for k in "${flipped[@]}"; do
	off=$(( k * CS + blk[$k] * 4096 ))
	eio "$MA/p" "$off" 4096 && bad=$((bad + 1))
	# the chunk's other blocks are whole: they read back right
	other=$(( k * CS + ((blk[$k] + 8) % 16) * 4096 ))
	same "$MA/p" "$other" 4096 "$W/p" && good=$((good + 1))
done
check_eq "$bad" ${#flipped[@]} "every flipped block reads as EIO"
check_eq "$good" ${#flipped[@]} "the other blocks of the damaged chunks read back right"
ok=0
for k in 0 1 3 4 6 7 8 10 11 12 13 15 16 17 18 19 21 22 23 24 25 26 28 29 30 31; do
	same "$MA/p" $((k * CS)) $CS "$W/p" && ok=$((ok + 1))
done
check_eq "$ok" 26 "the 26 chunks not touched read back right"
ev=$(checksum_events "$MA")
n=0
for k in "${flipped[@]}"; do
	grep -q "inode $ino chunk $k block ${blk[$k]} on tier t1" <<<"$ev" && n=$((n + 1))
done
check_eq "$n" ${#flipped[@]} "a checksum event for each, naming inode, chunk, block and tier"
s=$(silt_ctl -m "$MA" scrub --json); rc=$?
check_eq "$rc" 1 "siltctl scrub exits 1"
check_eq "$(json_get "$s" .damaged)" ${#flipped[@]} "scrub finds the ${#flipped[@]} damaged chunks ($(json_get "$s" .checked) checked)"
check_eq "$(json_get "$s" .checked)" 32 "scrub checked every chunk of the hdd tier"
# a guest rewriting the damaged blocks: they heal
for k in "${flipped[@]}"; do
	off=$(( k * CS + blk[$k] * 4096 ))
	dd if=/dev/urandom of="$W/p" bs=4096 count=1 seek=$((off / 4096)) conv=notrunc status=none
	silt_range "$W/p" "$off" 4096 | dd of="$MA/p" bs=4096 seek=$((off / 4096)) oflag=direct conv=notrunc status=none ||
		fail "rewriting block ${blk[$k]} of chunk $k"
done
check 'cmp -s <(dread "$MA/p" 0 $((2 * MiB))) "$W/p"' "after the damaged blocks were rewritten, the whole image reads back right"
check_cmd "a second scrub is clean" silt_ctl -m "$MA" scrub
check_cmd "umount" silt_umount "$MA"
silt_mount "$VA/vol.conf" "$MA" || silt_abort "cannot mount again: $(cat "$SILT_LAST_ERR")"
check 'cmp -s <(dread "$MA/p" 0 $((2 * MiB))) "$W/p"' "... and after a remount"
check_cmd "umount" silt_umount "$MA"

say "a compressed tier: compressed and raw chunks, headers and padding"
VB="$SILT_TMP/b"; MB="$SILT_TMP/mb"
TIER1_OPTS='compression = zstd:3' make_vol "$VB" "$MB"
{ for i in $(seq 1 30000); do echo "line $i of a very compressible text"; done; } | head -c $MiB > "$W/z"
silt_random "$W/zr" $MiB
cat "$W/zr" >> "$W/z"
dd if="$W/z" of="$MB/z" bs=1M oflag=direct status=none
check_cmd "one churn epoch demotes the image" demote "$MB"
check_eq "$(silt_where_tier_chunks "$MB/z" t1)" 32 "all 32 chunks on the zstd tier t1"
ino=$(stat -c %i "$MB/z")
tf=$(tier_file "$VB" "$ino" t1)
# a compressed slot: a 32-byte header (stored_len at byte 12), the frame,
# zeros to the end of its block, the rest punched
stored() { od -An -tu4 -j $(( $1 * CS + 12 )) -N4 "$tf" | tr -d ' '; }
check '[ "$(stored 1)" -gt 0 ] && [ "$(stored 1)" -lt 8192 ]' "chunk 1 is stored compressed ($(stored 1) bytes)"
declare -A where
k=1;  flip "$tf" $(( k * CS + 0 ));                       where[$k]="the header's magic"
k=4;  flip "$tf" $(( k * CS + 12 ));                      where[$k]="the header's stored length"
k=6;  flip "$tf" $(( k * CS + 20 ));                      where[$k]="the header's checksum"
k=9;  flip "$tf" $(( k * CS + 32 + $(stored 9) / 2 ));    where[$k]="the middle of the frame"
k=12; flip "$tf" $(( k * CS + 32 + $(stored 12) ));       where[$k]="the padding after the frame"
k=20; flip "$tf" $(( k * CS + 40000 ));                   where[$k]="a raw (incompressible) chunk"
zflipped=(1 4 6 9 12 20)
for k in "${zflipped[@]}"; do
	# on a compressed tier a chunk is checked whole (the raw ones too: the
	# record's XXH3), so any block of it reads as EIO
	check 'eio "$MB/z" $(( k * CS + 8192 )) 4096' "chunk $k, flipped in ${where[$k]}: reads as EIO"
done
ok=0
for k in $(seq 0 31); do
	[[ " ${zflipped[*]} " == *" $k "* ]] && continue
	same "$MB/z" $((k * CS)) $CS "$W/z" && ok=$((ok + 1))
done
check_eq "$ok" 26 "the 26 chunks not touched read back right"
ev=$(checksum_events "$MB")
n=0
for k in "${zflipped[@]}"; do grep -q "inode $ino chunk $k on tier t1" <<<"$ev" && n=$((n + 1)); done
check_eq "$n" ${#zflipped[@]} "a checksum event for each, naming inode, chunk and tier"
s=$(silt_ctl -m "$MB" scrub --json); rc=$?
check_eq "$rc" 1 "siltctl scrub exits 1"
check_eq "$(json_get "$s" .damaged)" ${#zflipped[@]} "scrub finds the ${#zflipped[@]} damaged chunks"
check_eq "$(json_get "$s" .checked)" 32 "scrub checked every chunk of the zstd tier"
# rewriting one 4 KiB block of a damaged compressed chunk: the block reads
# back, the rest of the chunk stays damaged (EIO) until it is rewritten too
k=9
dd if=/dev/urandom of="$W/z" bs=4096 count=1 seek=$(( k * 16 + 3 )) conv=notrunc status=none
check_cmd "rewriting block 3 of the damaged compressed chunk $k" \
	dd if="$W/z" of="$MB/z" bs=4096 count=1 skip=$(( k * 16 + 3 )) seek=$(( k * 16 + 3 )) oflag=direct conv=notrunc status=none
check 'same "$MB/z" $(( k * CS + 3 * 4096 )) 4096 "$W/z"' "the rewritten block reads back"
check 'eio "$MB/z" $(( k * CS + 5 * 4096 )) 4096' "a block of chunk $k not rewritten still reads as EIO"
# a guest rewriting the damaged chunks whole: they heal
for k in "${zflipped[@]}"; do
	dd if="$W/z" of="$MB/z" bs=$CS count=1 skip=$k seek=$k oflag=direct conv=notrunc status=none ||
		fail "rewriting chunk $k"
done
check 'cmp -s <(dread "$MB/z" 0 $((2 * MiB))) "$W/z"' "after the damaged chunks were rewritten, the whole image reads back right"
check_cmd "a second scrub is clean" silt_ctl -m "$MB" scrub
check_cmd "umount" silt_umount "$MB"

silt_summary
