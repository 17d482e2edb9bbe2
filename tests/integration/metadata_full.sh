#!/usr/bin/env bash
# metadata_full: a full filesystem under the metadata store (issue 7 point 3).
#
# A. The default layout: the metadata store on the fast tier's filesystem,
#    here a 64 MiB ext4. Files are written until ENOSPC, which must come
#    only when both tiers are full; the store must still take writes then
#    (the tiers keep room free for it); foreign files then fill the rest of
#    the filesystem, and the daemon must stay up. Every acknowledged byte is
#    there afterwards, and the volume mounts again.
# B. The store's own filesystem (metadata = PATH on a 48 MiB ext4) fills
#    up with a foreign file: metadata changes are refused with ENOSPC before
#    RocksDB sees the full disk (it would abort the daemon), reads go on,
#    and changes work again as soon as space is freed. Mounting while it is
#    full is refused, saying why and writing nothing. Then the disk fails
#    (ext4 aborts, the filesystem turns read-only underneath): metadata turns read-only
#    (EROFS) with a clear log line instead of an abort, the daemon unmounts
#    cleanly, and the volume mounts with everything once the disk is back.
. "$(dirname "$0")/lib.sh"
set +e

MiB=$((1 << 20))
V="$SILT_TMP/v"; M="$SILT_TMP/m"
mkdir -p "$V/t0" "$V/t1" "$V/meta"

# small_ext4 NAME SIZE DIR: an ext4 of SIZE on a loop device, mounted on DIR.
small_ext4() {
	truncate -s "$2" "$SILT_TMP/$1.img"
	mkfs.ext4 -q -F "$SILT_TMP/$1.img" || silt_abort "mkfs.ext4 $1"
	mount -o loop "$SILT_TMP/$1.img" "$3" || silt_abort "mount $1"
	silt_track_mount "$3"
}

# tier_json NAME: one tier's record from siltctl status --json.
tier_json() { json_get "$(silt_ctl -m "$M" status --json)" ".tiers[] | select(.name == \"$1\")"; }
room() { local j; j=$(tier_json "$1"); echo $(( $(json_get "$j" .capacity) - $(json_get "$j" .used) )); }
big=$(head -c 60000 /dev/zero | tr '\0' x)

say "A: the store on the fast tier's 64 MiB filesystem"
small_ext4 t0 64M "$V/t0"
cat > "$V/a.conf" <<EOF
[volume]
name = fullA
[tier t0]
path = $V/t0
class = nvme
[tier t1]
path = $V/t1
class = hdd
capacity = 96M
EOF
silt_mount "$V/a.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
declare -A sums=()
n=0
for i in $(seq 1 40); do
	if ! dd if=/dev/urandom of="$M/f$i" bs=1M count=4 oflag=direct conv=fsync status=none 2>"$SILT_TMP/dd.err"; then
		grep -q "No space left" "$SILT_TMP/dd.err" && pass "f$i: ENOSPC once the tiers are full" ||
			fail "f$i: $(cat "$SILT_TMP/dd.err")"
		break
	fi
	sums[f$i]=$(silt_sum "$M/f$i"); n=$i
done
check '[ "$n" -ge 20 ]' "$n files of 4 MiB were written before ENOSPC"
sleep 1.2 # the tiers look at their filesystems at most once a second
check '[ "$(room t0)" -lt $((2 * MiB)) ] && [ "$(room t1)" -lt $((2 * MiB)) ]' \
	"ENOSPC came when both tiers were full (room left: t0 $(room t0), t1 $(room t1) bytes)"
free_kb=$(df -k --output=avail "$V/t0" | tail -n 1)
check '[ "$free_kb" -ge $((24 * 1024)) ]' "chunks left room for the metadata on t0's filesystem (${free_kb} KiB free)"
ok=0
for i in $(seq 1 60); do
	"$SILT_XATTR" set "$M/f1" "user.m$i" "$big" >/dev/null 2>&1 && ok=$((ok + 1))
done
check_eq "$ok" 60 "the store still takes 3.5 MB of metadata (xattrs) with the data tiers full"
rm -f "$M/f2" && unset "sums[f2]"
check '[ ! -e "$M/f2" ]' "unlink works with the tiers full"

say "A: foreign files fill the rest of t0's filesystem"
dd if=/dev/zero of="$V/t0/foreign" bs=1M status=none 2>/dev/null; sync
{
	for i in $(seq 1 20); do echo "small $i" > "$M/small$i"; "$SILT_XATTR" set "$M/f1" "user.n$i" "$big"; done
	dd if=/dev/urandom of="$M/late" bs=1M count=2 oflag=direct status=none
} >/dev/null 2>&1
pid=$(silt_daemon_pids "$M" | head -n 1)
check '[ -n "$pid" ] && kill -0 "$pid"' "the daemon is still up"
if ! { [ -n "$pid" ] && kill -0 "$pid"; } 2>/dev/null; then
	echo "--- the end of its log:"; tail -n 25 /var/log/siltfs/fullA.log 2>&1
fi
check 'silt_ctl -m "$M" status >/dev/null' "siltctl status still answers"
bad=0
for f in "${!sums[@]}"; do [ "$(silt_sum "$M/$f")" == "${sums[$f]}" ] || bad=$((bad + 1)); done
check_eq "$bad" 0 "all ${#sums[@]} acknowledged files read back intact"
check_cmd "umount" silt_umount "$M"
rm -f "$V/t0/foreign"
silt_mount "$V/a.conf" "$M" || fail "mount again after freeing the space: $(cat "$SILT_LAST_ERR")"
bad=0
for f in "${!sums[@]}"; do [ "$(silt_sum "$M/$f")" == "${sums[$f]}" ] || bad=$((bad + 1)); done
check_eq "$bad" 0 "after the remount, all acknowledged files intact"
check_eq "$("$SILT_XATTR" get "$M/f1" user.m60 | tr -d '\n' | wc -c)" 60000 "and their metadata"
check_cmd "umount" silt_umount "$M"

say "B: the store's own filesystem fills up"
small_ext4 meta 48M "$V/meta"
mkdir -p "$V/b0"
cat > "$V/b.conf" <<EOF
[volume]
name = fullB
metadata = $V/meta/db
[tier t0]
path = $V/b0
class = nvme
EOF
silt_mount_fg "$V/b.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
dd if=/dev/urandom of="$M/keep" bs=1M count=4 oflag=direct conv=fsync status=none
sum=$(silt_sum "$M/keep")
touch "$M/x"
n=0
for i in $(seq 1 20); do "$SILT_XATTR" set "$M/x" "user.b$i" "$big" && n=$i; done
dd if=/dev/zero of="$V/meta/foreign" bs=1M status=none 2>/dev/null; sync
err=$("$SILT_XATTR" set "$M/x" user.late "$big" 2>&1)
check '[[ "$err" == *ENOSPC* ]]' "with its filesystem full, a metadata change is refused with ENOSPC ($err)"
check '! touch "$M/y" 2>/dev/null' "so is a create"
check 'kill -0 "$SILT_FG_PID"' "the daemon is still up"
check_eq "$(silt_sum "$M/keep")" "$sum" "data reads still work"
check 'grep -q "refusing metadata changes" "$SILT_LAST_ERR"' "the log says why and what to do"
rm -f "$V/meta/foreign"; sync
sleep 0.3
check 'touch "$M/y"' "once space is freed, metadata changes work again, without a remount"
check '"$SILT_XATTR" set "$M/x" user.late "$big"' "... and xattrs"
check_cmd "umount" silt_umount "$M"
check '! grep -q "Assertion" "$SILT_LAST_ERR"' "no RocksDB assertion"

say "B: mounting while the store's filesystem is full"
dd if=/dev/zero of="$V/meta/foreign" bs=1M status=none 2>/dev/null; sync
ls_before=$(ls -l "$V/meta/db" | LC_ALL=C sort)
out=$(timeout 60 "$SILTFS" "$V/b.conf" "$M" 2>&1); rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"free space there"* ]]' "is refused, saying why: $out"
check_eq "$(ls -l "$V/meta/db" | LC_ALL=C sort)" "$ls_before" "and writes nothing there"
rm -f "$V/meta/foreign"

say "B: the store's disk fails (ext4 aborts: its filesystem turns read-only underneath)"
silt_mount_fg "$V/b.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(silt_sum "$M/keep")" "$sum" "after the remount: data intact"
check_eq "$("$SILT_XATTR" list "$M/x" | wc -l)" "$((n + 1))" "and every acknowledged xattr"
mount -o remount,abort "$V/meta"
err=$("$SILT_XATTR" set "$M/x" user.ro "$big" 2>&1)
check '[[ "$err" == *EROFS* ]]' "a failed write inside the store turns metadata read-only: EROFS ($err)"
check '! touch "$M/z" 2>/dev/null' "creates fail too"
check 'kill -0 "$SILT_FG_PID"' "the daemon is still up (no abort)"
check_eq "$(silt_sum "$M/keep")" "$sum" "data reads still work"
check 'grep -q "metadata is read-only" "$SILT_LAST_ERR"' "the log says the metadata is read-only and what to do"
check_cmd "umount" silt_umount "$M"
check '! grep -q "Assertion" "$SILT_LAST_ERR"' "no RocksDB assertion, also at close"
umount "$V/meta" && e2fsck -fy "$SILT_TMP/meta.img" >/dev/null 2>&1
mount -o loop "$SILT_TMP/meta.img" "$V/meta" || silt_abort "cannot mount the store's filesystem again"
silt_mount "$V/b.conf" "$M" || fail "mount again once the disk is back: $(cat "$SILT_LAST_ERR")"
check_eq "$("$SILT_XATTR" list "$M/x" | wc -l)" "$((n + 1))" "every acknowledged xattr is there"
check 'touch "$M/z"' "and metadata changes work"
check_cmd "umount" silt_umount "$M"

say "moving the store, as docs/usage.md says"
mv "$V/meta/db" "$V/b0/moved-meta"
sed -i "s|^metadata = .*|metadata = $V/b0/moved-meta|" "$V/b.conf"
silt_mount "$V/b.conf" "$M" || fail "mount with the store moved: $(cat "$SILT_LAST_ERR")"
check_eq "$(silt_sum "$M/keep")" "$sum" "the volume mounts from the moved store, data intact"
check_cmd "umount" silt_umount "$M"

silt_summary
