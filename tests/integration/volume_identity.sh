#!/usr/bin/env bash
# volume_identity: the first mount of a config with empty tier folders
# creates the volume (stderr "created volume", a tier.id marker in every tier
# folder); a remount finds it again with the data; and a tier folder that
# belongs to another volume, a missing tier folder, or a tier folder whose
# marker is gone (blank disk) is refused with a message naming the folder,
# without writing anything anywhere.
# (A metadata store of a newer format version is covered by a C unit test.)
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

A="$SILT_TMP/a"; B="$SILT_TMP/b"; MNT="$SILT_TMP/mnt"
silt_make_volume "$A" 3 64K
silt_make_volume "$B" 2 64K

# try_refused DESC CONF FOLDER WATCHED...: siltfs CONF must fail (status 1)
# naming FOLDER on stderr, mount nothing, and leave the WATCHED trees exactly
# as they were (listing and checksums).
try_refused() {
	local desc=$1 conf=$2 folder=$3; shift 3
	local before after rc=0 err="$SILT_TMP/refused.err"
	say "$desc"
	before=$(silt_tree_state "$@")
	timeout 30 "$SILTFS" "$conf" "$MNT" </dev/null >/dev/null 2>"$err" || rc=$?
	sed 's/^/    [siltfs] /' "$err" | head -n 5
	check_eq "$rc" 1 "$desc: siltfs exits 1"
	check 'grep -qF "$folder" "$err"' "$desc: message names $folder"
	if silt_is_mounted "$MNT"; then
		fail "$desc: $MNT got mounted"
		silt_umount "$MNT" || true
	else
		pass "$desc: nothing mounted"
	fi
	after=$(silt_tree_state "$@")
	if [ "$before" == "$after" ]; then
		pass "$desc: nothing written"
	else
		fail "$desc: tier folders changed: $(diff <(echo "$before") <(echo "$after") | head -n 10 | tr '\n' ' ')"
	fi
}

say "first mount creates the volume"
silt_track_mount "$MNT"
silt_mount "$A/vol.conf" "$MNT" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check 'grep -q "created volume" "$SILT_LAST_ERR"' "stderr says 'created volume'"
check 'grep -q "created volume $(silt_volume_name "$A/vol.conf")" "$SILT_LAST_ERR"' "... with the volume name"
uuid=$(json_get "$(silt_ctl -m "$MNT" status --json)" .volume.uuid || true)
check '[[ "$uuid" =~ ^[0-9a-fA-F-]{32,36}$ ]]' "siltctl status shows a uuid ($uuid)"
check 'grep -qF "$uuid" "$SILT_LAST_ERR"' "stderr names the uuid"
for t in t0 t1 t2; do
	check '[ -s "$A/$t/tier.id" ]' "tier.id marker in $t"
	check 'grep -qF "$uuid" "$A/$t/tier.id" 2>/dev/null || grep -qF "$(echo "$uuid" | tr -d -)" "$A/$t/tier.id"' \
		"$t/tier.id carries the volume uuid"
done
silt_random "$SILT_TMP/data" $((3 << 20))
cp "$SILT_TMP/data" "$MNT/file"
mkdir "$MNT/dir"
echo hello > "$MNT/dir/small"
sum=$(silt_sum "$SILT_TMP/data")
check_cmd "umount" silt_umount "$MNT"

say "remount finds the volume and its data"
silt_mount "$A/vol.conf" "$MNT" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check '! grep -q "created volume" "$SILT_LAST_ERR"' "no 'created volume' on remount"
check_eq "$(silt_sum "$MNT/file" 2>&1)" "$sum" "3 MiB file intact"
check_eq "$(cat "$MNT/dir/small" 2>&1)" hello "small file in a directory intact"
check_eq "$(json_get "$(silt_ctl -m "$MNT" status --json)" .volume.uuid)" "$uuid" "same uuid"
check_cmd "umount" silt_umount "$MNT"

# Volume B exists on its own folders.
silt_mount "$B/vol.conf" "$MNT" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo b > "$MNT/b-file"
silt_umount "$MNT"

# A's config with t1 pointing at B's t1 (a folder of another volume).
sed "s|^path = $A/t1\$|path = $B/t1|" "$A/vol.conf" > "$SILT_TMP/a-with-b.conf"
check 'grep -q "$B/t1" "$SILT_TMP/a-with-b.conf"' "(config with B's folder written)"
try_refused "tier folder of another volume" "$SILT_TMP/a-with-b.conf" "$B/t1" "$A" "$B"

# A brand-new volume whose tiers are an empty folder and a folder of A: not
# all empty, so nothing may be created.
mkdir -p "$SILT_TMP/fresh/t0"
cat > "$SILT_TMP/fresh.conf" <<EOF
[volume]
name = fresh

[tier t0]
path = $SILT_TMP/fresh/t0
class = nvme

[tier t1]
path = $A/t2
class = hdd
EOF
try_refused "new volume over a used folder" "$SILT_TMP/fresh.conf" "$A/t2" "$A" "$SILT_TMP/fresh"
check '[ -z "$(ls -A "$SILT_TMP/fresh/t0")" ]' "new volume: its empty folder stayed empty"

mv "$A/t1" "$A/t1.away"
try_refused "missing tier folder" "$A/vol.conf" "$A/t1" "$A"
mv "$A/t1.away" "$A/t1"

# A blank disk mounted at t1: the folder is there but empty.
shopt -s dotglob
mkdir "$SILT_TMP/t1.saved"
mv "$A/t1"/* "$SILT_TMP/t1.saved/"
try_refused "emptied tier folder (blank disk)" "$A/vol.conf" "$A/t1" "$A"
check '[ -z "$(ls -A "$A/t1")" ]' "blank folder still empty"
mv "$SILT_TMP/t1.saved"/* "$A/t1/"

# Only the marker is gone (the chunk files are still there).
mv "$A/t2/tier.id" "$SILT_TMP/tier.id.saved"
try_refused "tier folder without marker" "$A/vol.conf" "$A/t2" "$A"
mv "$SILT_TMP/tier.id.saved" "$A/t2/tier.id"

# Marker of B copied into A's t0 (a disk of another volume at that path).
cp "$A/t0/tier.id" "$SILT_TMP/tier.id.a0"
cp "$B/t0/tier.id" "$A/t0/tier.id"
try_refused "marker of another volume" "$A/vol.conf" "$A/t0" "$A" "$B"
cp "$SILT_TMP/tier.id.a0" "$A/t0/tier.id"

# Volume C has its data on all three tiers (1M + 1M + the rest).
C="$SILT_TMP/c"
SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$C" 3 64K 1M 1M 64M
silt_mount "$C/vol.conf" "$MNT" || silt_abort "cannot mount C: $(cat "$SILT_LAST_ERR")"
cp "$SILT_TMP/data" "$MNT/file"
check_eq "$(silt_ctl where --json "$MNT/file" | jq -c '[.tiers[].chunks]')" "[16,16,16]" "volume C: the 3 MiB file spans the three tiers"
silt_umount "$MNT"

# The config lists the folders of t1 and t2 the other way round.  Both carry
# C's marker; the daemon must refuse, or mount with the data intact.
awk -v a="$C/t1" -v b="$C/t2" '$0 == "path = " a { print "path = " b; next } $0 == "path = " b { print "path = " a; next } { print }' \
	"$C/vol.conf" > "$SILT_TMP/c-swapped.conf"
say "tier folders swapped in the config"
state=$(silt_tree_state "$C")
rc=0; timeout 30 "$SILTFS" "$SILT_TMP/c-swapped.conf" "$MNT" </dev/null >/dev/null 2>"$SILT_TMP/swap.err" || rc=$?
sed 's/^/    [siltfs] /' "$SILT_TMP/swap.err" | head -n 3
if [ $rc -eq 0 ] && silt_wait_mounted "$MNT" 10; then
	check_eq "$(silt_sum "$MNT/file" 2>&1)" "$sum" "swapped folders accepted: data must be intact"
	silt_umount "$MNT"
else
	check_eq "$rc" 1 "swapped folders refused with exit status 1"
	check '[ "$(silt_tree_state "$C")" == "$state" ]' "... nothing written"
fi

head -n "$(($(grep -n '^\[tier t2\]' "$C/vol.conf" | cut -d: -f1) - 1))" "$C/vol.conf" > "$SILT_TMP/c-without-t2.conf"
check '! grep -q t2 "$SILT_TMP/c-without-t2.conf"' "(config without t2 written)"
say "a tier holding data left out of the config"
state=$(silt_tree_state "$C")
rc=0; timeout 30 "$SILTFS" "$SILT_TMP/c-without-t2.conf" "$MNT" </dev/null >/dev/null 2>"$SILT_TMP/rm.err" || rc=$?
sed 's/^/    [siltfs] /' "$SILT_TMP/rm.err" | head -n 3
check_eq "$rc" 1 "refused with exit status 1"
if silt_is_mounted "$MNT"; then fail "... but mounted"; silt_umount "$MNT"; fi
check '[ "$(silt_tree_state "$C")" == "$state" ]' "... nothing written"

mkdir "$SILT_TMP/c-new"
{ cat "$C/vol.conf"; printf '\n[tier t3]\npath = %s\nclass = hdd\n' "$SILT_TMP/c-new"; } > "$SILT_TMP/c-plus.conf"
try_refused "a blank tier folder added to an existing volume" "$SILT_TMP/c-plus.conf" "$SILT_TMP/c-new" "$C" "$SILT_TMP/c-new"

silt_mount "$C/vol.conf" "$MNT" || silt_abort "cannot mount C: $(cat "$SILT_LAST_ERR")"
check_eq "$(silt_sum "$MNT/file" 2>&1)" "$sum" "volume C intact with its own config"
check_cmd "umount C" silt_umount "$MNT"

say "after all the refusals the volume still mounts with its data"
if silt_mount "$A/vol.conf" "$MNT"; then
	check_eq "$(silt_sum "$MNT/file" 2>&1)" "$sum" "3 MiB file intact"
	check_eq "$(cat "$MNT/dir/small" 2>&1)" hello "small file intact"
	check_cmd "umount" silt_umount "$MNT"
else
	fail "remount of the restored volume A: $(cat "$SILT_LAST_ERR")"
fi
if silt_mount "$B/vol.conf" "$MNT"; then
	check_eq "$(cat "$MNT/b-file" 2>&1)" b "volume B intact"
	check_cmd "umount B" silt_umount "$MNT"
else
	fail "remount of volume B: $(cat "$SILT_LAST_ERR")"
fi

silt_summary
