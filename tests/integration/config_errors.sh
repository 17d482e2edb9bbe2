#!/usr/bin/env bash
# config_errors: every kind of bad config file makes `siltfs CONF MNT` refuse
# to start: exit status 1, a "vol.conf:LINE: ..." message naming the right
# line on stderr, nothing written into any tier folder, nothing mounted.
# A valid config (positive control) mounts, so the refusals are not just a
# daemon that can't start at all.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

# Each case lives in its own directory: C/vol.conf, C/t0, C/t1 (empty).
ncase=0
new_case() {
	ncase=$((ncase + 1))
	CASE="$SILT_TMP/case$ncase"
	mkdir -p "$CASE/t0" "$CASE/t1" "$CASE/mnt"
	silt_track_mount "$CASE/mnt"
}

# expect_refused DESC LINES...: run siltfs on $CASE/vol.conf (written by the
# caller); LINES are the acceptable line numbers ("any" = any number).
expect_refused() {
	local desc=$1; shift
	local err="$CASE/stderr" rc=0 l ok=0 got
	say "$desc"
	timeout 30 "$SILTFS" "$CASE/vol.conf" "$CASE/mnt" </dev/null >/dev/null 2>"$err" || rc=$?
	sed 's/^/    [siltfs] /' "$err" | head -n 5
	check_eq "$rc" 1 "$desc: exit status 1"
	got=$(grep -oE 'vol\.conf:[0-9]+:' "$err" | head -n1 | tr -dc '0-9')
	for l in "$@"; do
		if [ "$l" == any ] && [ -n "$got" ]; then ok=1; fi
		if [ "$l" == "$got" ]; then ok=1; fi
	done
	if [ $ok = 1 ]; then
		pass "$desc: stderr names vol.conf:$got:"
	else
		fail "$desc: stderr should contain vol.conf:{$(echo "$@" | tr ' ' ,)}: (got line '${got}'): $(head -c 300 "$err")"
	fi
	check '[ -z "$(find "$CASE/t0" "$CASE/t1" -mindepth 1 | head -n1)" ]' "$desc: tier folders still empty"
	if silt_is_mounted "$CASE/mnt"; then
		fail "$desc: $CASE/mnt got mounted"
		silt_umount "$CASE/mnt" || true
	else
		pass "$desc: nothing mounted"
	fi
}

# expect_words TEXT...: the last refusal's stderr contains every TEXT.
expect_words() {
	local w
	for w in "$@"; do
		check 'grep -qF -- "$w" "$CASE/stderr"' "... stderr says '$w'"
	done
}

# conf BODY: write $CASE/vol.conf from BODY, where @T0@ and @T1@ stand for
# the case's tier folders.  Line numbers in the cases below count from 1 at
# the first line of BODY.
conf() { sed -e "s|@T0@|$CASE/t0|g" -e "s|@T1@|$CASE/t1|g" > "$CASE/vol.conf"; }

# --- positive control --------------------------------------------------------
new_case
conf <<'EOF'
[volume]
name = good
chunk_size = 64K

[tier fast]
path = @T0@
class = nvme
capacity = 64M
high_watermark = 90%
low_watermark = 75%
compression = none

[tier slow]
path = @T1@
class = hdd
compression = zstd:3
EOF
say "valid config mounts"
if silt_mount "$CASE/vol.conf" "$CASE/mnt"; then
	pass "valid config: mounted"
	check_cmd "valid config: umount" silt_umount "$CASE/mnt"
else
	fail "valid config: siltfs $CASE/vol.conf $CASE/mnt failed: $(cat "$SILT_LAST_ERR")"
fi

# --- the refusals -------------------------------------------------------------
new_case
conf <<'EOF'
[volume]
name = bad
colour = blue

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "unknown key in [volume]" 3

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
speed = fast
EOF
expect_refused "unknown key in [tier]" 7

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size = 3K

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "chunk_size 3K (not a power of two)" 3

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size = 8M

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "chunk_size 8M (too big)" 3

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size = 2K

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "chunk_size 2K (too small)" 3

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = tape
EOF
expect_refused "bad class" 6

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier b]
path = relative/t1
class = hdd
EOF
expect_refused "relative tier path" 9

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier b]
class = hdd
capacity = 1G
EOF
# The line of the section header.
expect_refused "tier without path" 8

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier a]
path = @T1@
class = hdd
EOF
# The second header.
expect_refused "duplicate tier name, back to back" 8

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier b]
path = @T1@
class = hdd

[tier a]
class = hdd
EOF
expect_refused "duplicate tier name, not back to back" 12

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
high_watermark = 50%
low_watermark = 80%
EOF
# Section header (4) or either watermark line (7, 8).
expect_refused "low_watermark above high_watermark" 4 7 8

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
high_watermark = 150%
EOF
expect_refused "high_watermark 150%" 7

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
compression = zstd:99
EOF
expect_refused "compression zstd:99" 7

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
compression = lz4
EOF
expect_refused "compression lz4" 7

# net tiers: timeout and retries (class net only)
for bad in "timeout = soon" "timeout = 50ms" "timeout = 1h" "retries = -1" "retries = 11" "retries = two"; do
	new_case
	conf <<EOF
[volume]
name = bad

[tier a]
path = @T0@
class = net
$bad
EOF
	expect_refused "net tier: $bad" 7
	expect_words "$bad"
done

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
timeout = 2s
class = hdd
EOF
expect_refused "timeout on an hdd tier" 6
expect_words "timeout and retries are for class net tiers"

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
capacity = lots
EOF
expect_refused "capacity not a size" 7

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size 64K

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "syntax error (no '=')" 3

new_case
conf <<'EOF'
[volume]
name = bad

[tier a
path = @T0@
class = nvme
EOF
expect_refused "syntax error (unclosed section header)" 4

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size = 64K
EOF
# No line is "the" wrong one: any line number will do, the contract says
# every mistake is reported as file:line.
expect_refused "no tier at all" any

new_case
conf <<'EOF'
[volume]
chunk_size = 64K

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "volume without name" any

new_case
conf <<'EOF'
[volume]
name = bad/name

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "volume name with '/'" 2

new_case
conf <<'EOF'
[volume]
name = bad

[cache]
size = 1G

[tier a]
path = @T0@
class = nvme
EOF
# The header.
expect_refused "unknown section" 4

new_case
conf <<'EOF'
[volume]
name = bad

[cache]

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "unknown section without keys" 4

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier b]
path = @T0@
class = hdd
EOF
# The second section (8) or its path line (9).
expect_refused "two tiers with the same path" 8 9

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
path_extra
EOF
expect_refused "syntax error at the end" 7

# --- config hygiene: what used to be accepted silently or misreported -------
new_case
conf <<'EOF'
[volume]
name = x
name = y

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "a key given twice (it used to be last-wins)" 3
expect_words "name is set twice in [volume], at lines 2 and 3"

new_case
conf <<'EOF'
[tier a]
path = @T0@
class = nvme
EOF
expect_refused "no [volume] section" 1
expect_words "there is no [volume] section"

new_case
: > "$CASE/vol.conf"
expect_refused "an empty file (it used to say line 0)" 1
expect_words "the file is empty"

new_case
conf <<'EOF'
[volume]
name = bad

[tier a] path = @T0@
class = nvme
EOF
expect_refused "text after a section header (it used to be dropped)" 4
expect_words "text after the section header [tier a]"

new_case
{ printf '[volume]\nname = bad\n[tier a]\nclass = nvme\npath = %s/' "$CASE/t0"; head -c 250 /dev/zero | tr '\0' x; echo; } > "$CASE/vol.conf"
expect_refused "a line longer than the parser takes (it used to be split in two)" 5
expect_words "line too long"

new_case
conf <<'EOF'
[volume]
name = bad
chunk_size = 4M

[tier a]
path = @T0@
class = nvme
capacity = 2M
EOF
expect_refused "a capacity with no room for one chunk" 8
expect_words "no room for one chunk"

new_case
conf <<'EOF'
[volume]
name = bad

[tier a]
path = @T0@
class = nvme
capacity = 0x10G
EOF
expect_refused "a capacity in hex" 7

new_case
mkdir -p "$CASE/meta"
echo precious > "$CASE/meta/notes"
conf <<EOF
[volume]
name = bad
metadata = $CASE/meta

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "metadata = a folder with other files in it" 3
expect_words "is not empty"
check_eq "$(ls -A "$CASE/meta")" notes "... the metadata folder holds only what it held"

new_case
mkdir -p "$CASE/mnt/inner"
conf <<EOF
[volume]
name = bad

[tier a]
path = @T0@
class = nvme

[tier b]
path = $CASE/mnt/inner
class = hdd
EOF
expect_refused "a tier folder inside the mountpoint" 9
expect_words "is inside the mountpoint"

new_case
conf <<EOF
[volume]
name = bad
metadata = $CASE/mnt/not/yet/there

[tier a]
path = @T0@
class = nvme
EOF
expect_refused "metadata (not yet created) inside the mountpoint" 3
expect_words "is inside the mountpoint"
check '[ ! -e "$CASE/mnt/not" ]' "... and it was not created"

# A BOM, CRLF line ends, indented keys and ';' / '#' inline comments are
# read as meant ('#' without a space before it is part of the value).
new_case
mkdir -p "$CASE/t#1"
{
	printf '\xef\xbb\xbf[tier fast]   ; a BOM first, and [volume] last\r\n'
	printf '    path = %s    # indented, with a comment\r\n' "$CASE/t0"
	printf '\tclass = nvme\t; a tab\r\n'
	printf '[tier slow]\n  path = %s ; the # in the name stays\n  class = hdd\n' "$CASE/t#1"
	printf '[volume]\n  name = lexed # a comment\n  chunk_size = 128K\n'
} > "$CASE/vol.conf"
say "BOM, CRLF, indentation and inline comments"
if silt_mount "$CASE/vol.conf" "$CASE/mnt"; then
	st=$(silt_ctl -m "$CASE/mnt" status --json)
	check_eq "$(json_get "$st" .volume.name)" lexed "volume name read through the comment"
	check_eq "$(json_get "$st" .volume.chunk_size)" 131072 "indented chunk_size is a key, not a continuation"
	check_eq "$(json_get "$st" '.tiers | map(.name + "=" + .path) | join(" ")')" "fast=$CASE/t0 slow=$CASE/t#1" \
		"tier paths without their comments"
	check_cmd "umount" silt_umount "$CASE/mnt"
else
	fail "BOM/comments config: $(cat "$SILT_LAST_ERR")"
fi

# A capacity beyond what the tier filesystem holds mounts (a thin disk may
# grow) but says so; a capacity that fits says nothing.
small="$SILT_TMP/small"
mkdir -p "$small"
silt_track_mount "$small"
if mount -t tmpfs -o size=16M tmpfs "$small"; then
	for cap in 1G 8M; do
		new_case
		mkdir -p "$small/$cap"
		# (the metadata elsewhere: its filesystem must keep 16 MiB free)
		conf <<EOF
[volume]
name = cap
metadata = $CASE/meta

[tier a]
path = $small/$cap
class = nvme
capacity = $cap
EOF
		say "capacity = $cap on a 16 MiB filesystem"
		if silt_mount "$CASE/vol.conf" "$CASE/mnt"; then
			if [ $cap = 1G ]; then
				check 'grep -q "vol.conf:8: \[tier a\] capacity = 1.0 GiB is more than its filesystem holds (16.0 MiB" "$SILT_LAST_ERR"' \
					"capacity 1G: mounted, with a warning naming the line and the filesystem size"
			else
				check '! grep -q "more than its filesystem" "$SILT_LAST_ERR"' "capacity 8M: mounted, no warning"
			fi
			check_cmd "umount" silt_umount "$CASE/mnt"
		else
			fail "capacity = $cap: $(cat "$SILT_LAST_ERR")"
		fi
	done
	umount "$small"
else
	skip "capacity warning: cannot mount a tmpfs"
fi

say "missing config file"
new_case
rc=0
timeout 30 "$SILTFS" "$CASE/nonexistent.conf" "$CASE/mnt" </dev/null >/dev/null 2>"$CASE/stderr" || rc=$?
check_eq "$rc" 1 "missing config: exit status 1"
check 'grep -q "nonexistent.conf" "$CASE/stderr"' "missing config: message names the file"
check '! silt_is_mounted "$CASE/mnt"' "missing config: nothing mounted"

silt_summary
