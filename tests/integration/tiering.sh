#!/usr/bin/env bash
# tiering: chunks move between tiers while the volume is in use (issue 8
# points 2-5 and 8), through the mount and the real CLI.
#
#  - hot chunks rise: a file spills from a small fast tier; its tail is read
#    again and again; `siltctl migrate` (one epoch now) lifts the hot chunks
#    to the fast tier and sends the coldest down to make room; the data is
#    unchanged through it, after dropping caches and after a remount;
#  - `siltctl heat FILE` shows the hot runs, `siltctl policy` shows and
#    changes the policy live, a bad name is refused and changes nothing;
#  - watermarks: a tier above its high watermark (after a remount with lower
#    ones) is drained to its low watermark, coldest first;
#  - write-promote: a write into a chunk on the slow tier moves it up first
#    (and does not with write_promote = no);
#  - the background engine (epoch 300 ms) does the same by itself, and
#    `siltctl status` shows its backlog and counters;
#  - the RAM tier serves repeated O_DIRECT reads of a hot chunk (hits
#    counted), and a write is seen at once afterwards;
#  - no write lost while chunks move: qemu-io pattern writes and reads on
#    raw and qcow2 images (cache=none) under the churn migration (every
#    chunk to the other tier every 200 ms), across remounts.
. "$(dirname "$0")/lib.sh"
set +e

MiB=$((1 << 20))
V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"
placement() { json_get "$(silt_ctl -m "$M" status --json)" ".placement.$1"; }
on_tier() { silt_where_tier_chunks "$M/$1" "$2"; }
# runs FILE TIER: the chunk runs of FILE on TIER, as "a-b,c-d"
runs() { json_get "$(silt_ctl where --json "$M/$1")" ".tiers[] | select(.name == \"$2\") | .runs | map(\"\(.[0])-\(.[1])\") | join(\",\")"; }

# An epoch only when asked (1h), so that what moves is what the test asked for.
SILT_VOLUME_OPTS=$'[placement]\npolicy = lru\nepoch = 1h' silt_make_volume "$V" 2 64K 4M
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

say "hot chunks rise"
silt_random "$W/f" $((16 * MiB))
dd if="$W/f" of="$M/f" bs=1M oflag=direct status=none
hot0=$(on_tier f t0)
check_eq "$(runs f t0)" "0-$((hot0 - 1))" "the file's first $hot0 chunks are on t0, the rest spilled"
# read the last $hot0 chunks (as many as t0 holds) again and again: the
# policy's hot set becomes exactly them
h1=$((256 - hot0))
for i in 1 2 3; do
	dd if="$M/f" of=/dev/null bs=64k skip=$h1 count=$hot0 iflag=direct status=none
done
h=$(silt_ctl heat --json "$M/f")
check_eq "$(json_get "$h" '[.runs[] | select(.hot) | "\(.first)-\(.last)"] | join(",")')" "$h1-255" \
	"siltctl heat shows chunks $h1-255 hot, and only them"
check 'silt_ctl heat "$M/f" | grep -qE "^ *$h1 +255 +t1 .* yes"' "siltctl heat prints a table"
moved=$(json_get "$(silt_ctl -m "$M" migrate --json)" .moved)
check_eq "$moved" $((2 * hot0)) "siltctl migrate ran an epoch and moved $moved chunks"
check_eq "$(runs f t0)" "$h1-255" "the hot chunks $h1-255 are on the fast tier now"
check_eq "$(on_tier f t0)" "$hot0" "and nothing else: the coldest made room"
check_eq "$(placement promoted)" "$hot0" "status: $hot0 promoted"
check_eq "$(placement demoted)" "$hot0" "status: $hot0 demoted"
check_eq "$(placement pending)" 0 "status: no backlog left"
check 'cmp -s "$W/f" "$M/f"' "the data is unchanged"
out=$(silt_ctl heat "$M/f" --png "$W/heat.png") || true
check "file '$W/heat.png' | grep -q 'PNG image data, 512 x 32, 8-bit/color RGB'" "siltctl heat --png draws a picture ($out)"
# pixel of chunk K (64 a row, 8x8 pixels each), decoded here
pixel() {
	python3 - "$W/heat.png" "$1" <<'PY'
import struct, sys, zlib
d = open(sys.argv[1], "rb").read(); k = int(sys.argv[2]); i = 8; idat = b""
while i < len(d):
	n, t = struct.unpack(">I4s", d[i:i + 8]); idat += d[i + 8:i + 8 + n] if t == b"IDAT" else b""; i += 12 + n
w = struct.unpack(">I", d[16:20])[0]; raw = zlib.decompress(idat); y, x = k // 64 * 8, k % 64 * 8
o = y * (w * 3 + 1) + 1 + x * 3
print("%d,%d,%d" % tuple(raw[o:o + 3]))
PY
}
t0px=$(pixel 255) t1px=$(pixel 0)
check "[ '$t0px' != '$t1px' ]" "a hot chunk on t0 ($t0px) and a cold one on t1 ($t1px) differ"
check "grep -q 't0 rgb(60,120,255) t1 rgb(40,200,90)' <<<\"\$out\"" "the colours are named, fastest tier first"
# brightness: a pixel's share of its tier's full colour
share() { echo $(( 100 * ( $(tr , + <<<"$1") ) / ( $2 ) )); }
check "[ $(share "$t0px" 435) -gt $(share "$(pixel $((h1 - 1)))" 330) ]" \
	"the hot chunk ($t0px of 60,120,255) is drawn brighter than the cold one next to it ($(pixel $((h1 - 1))) of 40,200,90)"
silt_drop_caches
check 'cmp -s "$W/f" "$M/f"' "... after dropping caches"
check_cmd "umount" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount again: $(cat "$SILT_LAST_ERR")"
check 'cmp -s "$W/f" "$M/f"' "... and after a remount"
check_eq "$(runs f t0)" "$h1-255" "the placement survives the remount"
silt_check_accounting "$M"

say "the policy, live"
check_eq "$(placement policy)" lru "status: policy lru (from the config)"
check_cmd "siltctl policy arc" silt_ctl -m "$M" policy arc
check_eq "$(placement policy)" arc "status: policy arc now"
check_eq "$(json_get "$(silt_ctl -m "$M" policy --json)" .policy)" arc "siltctl policy shows it"
out=$(silt_ctl -m "$M" policy belady 2>&1); rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *belady* ]]' "a policy that cannot run online is refused: $out"
check_eq "$(placement policy)" arc "and nothing changed"
check_cmd "umount" silt_umount "$M"

say "watermarks: a tier above its high watermark drains to its low one"
sed -i 's/^epoch = 1h$/epoch = 1h/' "$V/vol.conf"
printf 'high_watermark = 50%%\nlow_watermark = 25%%\n' > "$SILT_TMP/wm"
awk -v wm="$(cat "$SILT_TMP/wm")" '{ print } /^\[tier t0\]/ { print wm }' "$V/vol.conf" > "$V/wm.conf"
silt_mount "$V/wm.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
cap=$(json_get "$(silt_ctl -m "$M" status --json)" '.tiers[0].capacity')
low=$((cap / 100 * 25 / 65536))
silt_ctl -m "$M" migrate >/dev/null
check '[ "$(on_tier f t0)" -le "$low" ] && [ "$(on_tier f t0)" -ge $((low - 1)) ]' \
	"t0 drained from $hot0 chunks to its low watermark ($(on_tier f t0) chunks, low watermark $low)"
check 'cmp -s "$W/f" "$M/f"' "the data is unchanged"
check_cmd "umount" silt_umount "$M"

say "write-promote"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
rm -f "$M/f"; sync
silt_random "$W/g" $((8 * MiB))
# fill t0, then make room on it: g's tail stays on t1
dd if=/dev/zero of="$M/fill" bs=1M count=4 oflag=direct status=none
dd if="$W/g" of="$M/g" bs=1M oflag=direct status=none
rm -f "$M/fill"; sync
check_eq "$(on_tier g t0)" 0 "g was written while t0 was full: all on t1"
dd if="$W/g" of="$M/g" bs=4k count=1 skip=33 seek=33 conv=notrunc oflag=direct status=none
check_eq "$(runs g t0)" "2-2" "a 4K write into chunk 2 moved that chunk up first"
check 'cmp -s "$W/g" "$M/g"' "the data is right"
check_cmd "umount" silt_umount "$M"
sed 's/^class = ssd$/class = ssd\nwrite_promote = no/' "$V/vol.conf" > "$V/nopromote.conf"
silt_mount "$V/nopromote.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
dd if="$W/g" of="$M/g" bs=4k count=1 skip=65 seek=65 conv=notrunc oflag=direct status=none
check_eq "$(runs g t0)" "2-2" "with write_promote = no, a write into chunk 4 leaves it on t1"
check_cmd "umount" silt_umount "$M"

say "the engine on its own, and the RAM tier"
sed -e 's/^epoch = 1h$/epoch = 300ms/' -e 's/^\[placement\]$/[ram]\nsize = 1M\n[placement]/' "$V/vol.conf" > "$V/bg.conf"
silt_mount "$V/bg.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check '[ "$(json_get "$(silt_ctl -m "$M" status --json)" .placement.epoch_ms)" = 300 ]' "status: epoch 300 ms"
for i in 1 2 3 4 5 6; do dd if="$M/g" of=/dev/null bs=64k skip=100 count=20 iflag=direct status=none; done
check 'silt_wait_for 20 "[ \"\$(on_tier g t0)\" -ge 20 ]"' "within 20 s the engine lifted g's 20 hot chunks ($(runs g t0))"
check 'silt_wait_for 10 "[ \"\$(placement epochs)\" -gt 1 ]"' "status counts the epochs ($(placement epochs) ran)"
j=$(silt_ctl -m "$M" status --json)
check '[ -n "$(json_get "$j" .placement.pending_bytes)" ] && [ -n "$(json_get "$j" .placement.rate)" ]' \
	"status shows the backlog (pending $(json_get "$j" .placement.pending), $(json_get "$j" .placement.pending_bytes) bytes) and the rate"
h0=$(json_get "$j" .ram.hits)
for i in 1 2 3 4 5; do dd if="$M/g" of="$SILT_TMP/r" bs=4k skip=1601 count=1 iflag=direct status=none; done
check 'cmp -s "$SILT_TMP/r" <(dd if="$W/g" bs=4k skip=1601 count=1 status=none)' "repeated O_DIRECT reads of one block are right"
check '[ "$(json_get "$(silt_ctl -m "$M" status --json)" .ram.hits)" -gt "$h0" ]' \
	"and the RAM tier answered some ($(json_get "$(silt_ctl -m "$M" status --json)" '.ram | "\(.hits) hits, \(.fills) fills"'))"
dd if=/dev/zero of="$M/g" bs=4k count=1 seek=1601 conv=notrunc oflag=direct status=none
dd if="$M/g" of="$SILT_TMP/r" bs=4k skip=1601 count=1 iflag=direct status=none
check 'cmp -s "$SILT_TMP/r" <(head -c 4096 /dev/zero)' "after a write, the next read sees it (not the RAM tier's old copy)"
check_cmd "umount" silt_umount "$M"

say "qemu-io under churn: no write lost while every chunk moves"
VC="$SILT_TMP/vc"; MC="$SILT_TMP/mc"
SILT_VOLUME_OPTS=$'[placement]\nmigration = churn\nepoch = 200ms\nrate = 4G\nbusy_rate = 4G' \
	silt_make_volume "$VC" 2 64K 4M
silt_mount "$VC/vol.conf" "$MC" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
qemu-img create -q -f raw "$MC/r.img" 16M
qemu-img create -q -f qcow2 "$MC/q.qcow2" 16M
# Round r writes 32 pieces of 16K, piece q at q*512K + r*20K (+ q*512 for
# odd alignment): rounds never overlap, so every round's patterns stay
# readable to the end. Each round reads its own back at once.
pat() { printf '0x%02x' $(( ($1 * 37 + 1) % 251 + 1 )); }
piece() { echo "$(pat $(($1 * 32 + $2))) $(( $2 * 524288 + $1 * 20480 + $2 * 512 )) 16k"; }
churn_round() {
	local img=$1 fmt=$2 r=$3 cmds=() q
	for q in $(seq 0 31); do cmds+=("write -P $(piece "$r" "$q")"); done
	for q in $(seq 0 31); do cmds+=("read -P $(piece "$r" "$q")"); done
	silt_qio "$fmt" "$img" "${cmds[@]}"
}
# every piece of rounds 0 .. UPTO-1, read again
churn_verify() {
	local img=$1 fmt=$2 upto=$3 cmds=() r q
	for ((r = 0; r < upto; r++)); do
		for q in $(seq 0 31); do cmds+=("read -P $(piece "$r" "$q")"); done
	done
	silt_qio "$fmt" "$img" "${cmds[@]}"
}
bad=0
for r in $(seq 0 7); do
	churn_round "$MC/r.img" raw "$r" || { bad=1; echo "    raw round $r"; }
	churn_round "$MC/q.qcow2" qcow2 "$r" || { bad=1; echo "    qcow2 round $r"; }
	churn_verify "$MC/r.img" raw "$r" && churn_verify "$MC/q.qcow2" qcow2 "$r" || { bad=1; echo "    rounds before $r"; }
	if [ "$r" = 3 ]; then
		silt_umount "$MC" && silt_mount "$VC/vol.conf" "$MC" || silt_abort "cannot remount: $(cat "$SILT_LAST_ERR")"
		churn_verify "$MC/r.img" raw 4 && churn_verify "$MC/q.qcow2" qcow2 4 || { bad=1; echo "    after the remount"; }
	fi
done
check_eq "$bad" 0 "8 rounds of 32 pattern writes on raw and qcow2, each round's and every earlier one's read back, a remount between: all right"
moved=$(json_get "$(silt_ctl -m "$MC" status --json)" .placement.moved)
check '[ "${moved:-0}" -ge 20 ]' "the engine moved chunks meanwhile ($moved since the remount)"
check_cmd "umount" silt_umount "$MC"
silt_mount "$VC/vol.conf" "$MC" || silt_abort "cannot mount again: $(cat "$SILT_LAST_ERR")"
check 'churn_verify "$MC/r.img" raw 8 && churn_verify "$MC/q.qcow2" qcow2 8' "after a last remount, every round's patterns are there"
check_cmd "qemu-img check is clean" qemu-img check -q "$MC/q.qcow2"
check_cmd "umount" silt_umount "$MC"

silt_summary
