#!/usr/bin/env bash
# volume_identity: the first mount of a config with empty tier folders
# creates the volume (stderr "created volume", a tier.id marker in every tier
# folder); a remount finds it again with the data; and a tier folder that
# belongs to another volume, a missing first tier folder (the metadata's
# home; other missing tiers mount without them, see tier_recover.sh), or a
# tier folder whose marker is gone (blank disk) is refused with a message
# naming the folder, without writing anything anywhere.
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

# A missing tier folder (a disk not mounted yet) mounts without it
# (tier_recover.sh), but not the first tier's: the metadata is there.
mv "$A/t0" "$A/t0.away"
try_refused "missing first tier folder (it holds the metadata)" "$A/vol.conf" "$A/t0" "$A"
mv "$A/t0.away" "$A/t0"

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

# --- tier folders that are one folder, or nest ------------------------------
# refused_says TEXT: the last try_refused's stderr contains TEXT.
refused_says() { local text=$1; check 'grep -qF -- "$text" "$SILT_TMP/refused.err"' "... stderr says '$text'"; }

# two_tiers CONF P0 P1 [EXTRA]: a config of volume "pair" with tiers t0 (nvme)
# and t1 (hdd) at P0 and P1; EXTRA goes into [volume].
two_tiers() {
	printf '[volume]\nname = pair\n%s\n[tier t0]\npath = %s\nclass = nvme\n\n[tier t1]\npath = %s\nclass = hdd\n' \
		"${4:-}" "$2" "$3" > "$1"
}

S="$SILT_TMP/shared"
mkdir -p "$S/t0" "$S/sub/inner" "$S/bind"
ln -s t0 "$S/link"
two_tiers "$S/link.conf" "$S/t0" "$S/link"
try_refused "two tiers, one folder through a symlink (new volume)" "$S/link.conf" "$S/link" "$S"
refused_says "[tier t1] path = $S/link and [tier t0] path = $S/t0 (line 5) are the same directory"
refused_says "nothing was written"
silt_track_mount "$S/bind"
if mount --bind "$S/t0" "$S/bind"; then
	two_tiers "$S/bind.conf" "$S/t0" "$S/bind"
	try_refused "two tiers, one folder through a bind mount" "$S/bind.conf" "$S/bind" "$S/t0"
	refused_says "are the same directory"
	mkdir -p "$S/t0/x"
	two_tiers "$S/bindnest.conf" "$S/t0" "$S/bind/x"
	try_refused "a tier inside another through a bind mount" "$S/bindnest.conf" "$S/bind/x" "$S/t0"
	refused_says "[tier t1] path = $S/bind/x is inside the folder of [tier t0]"
	rmdir "$S/t0/x"
	umount "$S/bind"
else
	fail "cannot bind-mount $S/t0"
fi
two_tiers "$S/nest.conf" "$S/sub/inner" "$S/sub"
try_refused "the outer folder listed second" "$S/nest.conf" "$S/sub/inner" "$S"
refused_says "[tier t0] path = $S/sub/inner is inside the folder of [tier t1] ($S/sub, line 9): tier folders must not be nested"

# metadata = inside a tier's chunk folder (moved there by hand)
M="$SILT_TMP/mv"
silt_make_volume "$M" 2 64K
silt_mount "$M/vol.conf" "$MNT" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo m > "$MNT/m"
silt_umount "$MNT"
mu=$(sed -n 's/^volume=//p' "$M/t0/tier.id")
mv "$M/t0/$mu/meta" "$M/t1/$mu/chunks/meta"
sed "s|^name = .*|&\nmetadata = $M/t1/$mu/chunks/meta|" "$M/vol.conf" > "$M/inchunks.conf"
try_refused "metadata inside a tier's chunk folder" "$M/inchunks.conf" "$M/t1/$mu/chunks" "$M"
refused_says "inchunks.conf:3: metadata = $M/t1/$mu/chunks/meta is inside the chunk folder of tier t1"
mv "$M/t1/$mu/chunks/meta" "$M/t0/$mu/meta"

# A volume that siltfs 0.1 created with t1 -> t0 (a symlink) and then used:
# its state is rebuilt here the way that code left it, which is: one folder
# with t0's tier.id (t1 was formatted first, then t0 over it), the metadata
# under it, and both tiers' chunks in the same files, each in its own slot.
# (Checked once against a volume made by the binary of main at 90a9318.)
# shared_volume DIR: that state, with the 3 MiB file: chunks 0-15 on t0 and
# 16-47 on t1; prints the uuid.
shared_volume() {
	local d=$1 u f
	SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$d" 2 64K 1M
	silt_mount "$d/vol.conf" "$MNT" >&2 || silt_abort "cannot mount $d: $(cat "$SILT_LAST_ERR")"
	cp "$SILT_TMP/data" "$MNT/file"
	[ "$(silt_ctl where --json "$MNT/file" | jq -c '[.tiers[].chunks]')" == "[16,32]" ] || silt_abort "$d: not 16+32 chunks"
	silt_umount "$MNT" >&2
	u=$(sed -n 's/^volume=//p' "$d/t0/tier.id")
	for f in "$d/t1/$u/chunks"/*; do # t1's slots into the same file of t0 (t1's holes skipped)
		dd if="$f" of="$d/t0/$u/chunks/${f##*/}" bs=64K conv=notrunc,sparse status=none
	done
	rm -rf "$d/t1"
	ln -s t0 "$d/t1"
	echo "$u"
}

# recovered CONF SPLIT: mount CONF with -o split_tier=SPLIT, then again
# without it; both times the 3 MiB file is intact, with chunks 16 on t0 and
# 32 on t1. The first mount's stderr is left in $SILT_TMP/split.err.
recovered() {
	local conf=$1 split=$2 opt
	for opt in "split_tier=$split" ""; do
		if [ -n "$opt" ]; then say "recovery: mount with -o $opt"; else say "recovery: mount again, without split_tier"; fi
		if ! silt_mount "$conf" "$MNT" $opt; then
			fail "mount ${opt:+-o $opt}: $(cat "$SILT_LAST_ERR")"
			continue
		fi
		[ -n "$opt" ] && cp "$SILT_LAST_ERR" "$SILT_TMP/split.err"
		check_eq "$(silt_sum "$MNT/file" 2>&1)" "$sum" "the 3 MiB file is intact"
		check_eq "$(silt_ctl where --json "$MNT/file" | jq -c '[.tiers[].chunks]')" "[16,32]" "chunks 16 on t0, 32 on t1"
		check_cmd "umount" silt_umount "$MNT"
	done
}

L="$SILT_TMP/legacy"
lu=$(shared_volume "$L")
try_refused "a volume made with two tiers in one folder" "$L/vol.conf" "$L/t1" "$L"
refused_says "If volume $lu was created like this"
refused_says "mount once with -o split_tier=t1:t0"
rm "$L/t1"
mkdir "$L/t1"
try_refused "... its t1 given an empty folder, mounted without split_tier" "$L/vol.conf" "$L/t1" "$L"
refused_says "see -o split_tier"
recovered "$L/vol.conf" t1:t0
check 'grep -qF "split tier t1 out of the folder of tier t0: 32 chunks (2.0 MiB) now in $L/t1" "$SILT_TMP/split.err"' \
	"stderr said what moved"
check 'grep -qx "tier=t1" "$L/t1/tier.id"' "t1's new folder carries t1's marker"
lf=$(ls "$L/t1/$lu/chunks")
check_eq "$(ls "$L/t0/$lu/chunks")" "$lf" "(one tier file each, for the file's inode $lf)"
check 'cmp -s <(silt_range "$L/t1/$lu/chunks/$lf" $((16 << 16)) $((32 << 16))) <(silt_range "$SILT_TMP/data" $((16 << 16)) $((32 << 16)))' \
	"t1's chunks are in t1's folder, in their slots"
check '[ $(( $(stat -c "%b * %B" "$L/t0/$lu/chunks/$lf") )) -le $((17 << 16)) ]' \
	"t1's slots are freed in t0's file ($(stat -c '%b blocks of %B bytes' "$L/t0/$lu/chunks/$lf"))"

# The other way round: the shared folder stays with t1 (its marker is
# rewritten) and t0, which holds the metadata by default, moves out.
R="$SILT_TMP/reverse"
ru=$(shared_volume "$R")
rm "$R/t1"
mkdir "$R/n0"
two_tiers "$R/rev.conf" "$R/n0" "$R/t0"
sed -i 's|^path = .*n0$|&\ncapacity = 1M\nhigh_watermark = 100%\nlow_watermark = 100%|' "$R/rev.conf"
rc=0; timeout 30 "$SILTFS" "$R/rev.conf" "$MNT" -o split_tier=t0:t1 </dev/null >/dev/null 2>"$SILT_TMP/rev.err" || rc=$?
check_eq "$rc" 1 "split_tier=t0:t1 without metadata =: refused"
check 'grep -qF "set metadata = $R/t0/$ru/meta in [volume] first" "$SILT_TMP/rev.err"' "... saying where the metadata is and what to set"
check '[ -z "$(ls -A "$R/n0")" ]' "... and t0's new folder is still empty"
two_tiers "$R/rev.conf" "$R/n0" "$R/t0" "metadata = $R/t0/$ru/meta"
sed -i 's|^path = .*n0$|&\ncapacity = 1M\nhigh_watermark = 100%\nlow_watermark = 100%|' "$R/rev.conf"
recovered "$R/rev.conf" t0:t1
check 'grep -qx "tier=t1" "$R/t0/tier.id" && grep -qx "tier=t0" "$R/n0/tier.id"' "markers: the shared folder now names t1, the new one t0"

# split_tier naming the wrong source: nothing of t1 is in t0's folder (t1's
# real folder was emptied: a blank disk); refused before writing anything.
W="$SILT_TMP/wrong"
SILT_TIER_OPTS=$'high_watermark = 100%\nlow_watermark = 100%' silt_make_volume "$W" 2 64K 1M
silt_mount "$W/vol.conf" "$MNT" || silt_abort "cannot mount $W: $(cat "$SILT_LAST_ERR")"
cp "$SILT_TMP/data" "$MNT/file"
silt_umount "$MNT"
mv "$W/t1" "$W/t1.real"
mkdir "$W/t1"
state=$(silt_tree_state "$W")
rc=0; timeout 30 "$SILTFS" "$W/vol.conf" "$MNT" -o split_tier=t1:t0 </dev/null >/dev/null 2>"$SILT_TMP/wrong.err" || rc=$?
sed 's/^/    [siltfs] /' "$SILT_TMP/wrong.err" | head -n 3
check_eq "$rc" 1 "split_tier from a folder that holds none of the tier's chunks: refused"
check 'grep -qF "none of the 32 chunks of tier t1 has data in $W/t0" "$SILT_TMP/wrong.err"' "... saying so"
check '[ "$(silt_tree_state "$W")" == "$state" ]' "... nothing written"

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
