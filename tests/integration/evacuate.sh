#!/usr/bin/env bash
# Evacuate, tier states and pins (issue 11, points 2 and 3), through the
# mount and the real CLI, on a three-tier volume (nvme 8 MiB, ssd, hdd 3 MiB):
#   - siltctl evacuate t0 moves every chunk off it while a writer runs, the
#     data stays intact, t0 is evacuated (siltctl tiers) and takes no new
#     chunk, across a remount; --cancel makes it active again;
#   - an evacuation that the other tiers cannot hold is refused before
#     anything moves, naming the sizes;
#   - a slow evacuation cancelled half way leaves chunks where they are;
#     started again and interrupted by an unmount, it resumes at the next
#     mount and ends;
#   - siltctl pin FILE t2 brings the file's chunks to t2 and keeps its new
#     ones there, across a remount; unpin; wrong tier or a directory are
#     refused with a clear error; the events name what happened.
. "$(dirname "$0")/lib.sh"

MiB=$((1 << 20))
V=$SILT_TMP/v M=$SILT_TMP/m W=$SILT_TMP/w
mkdir -p "$W"
SILT_VOLUME_OPTS=$'[ram]\nsize = 0\n[placement]\nmigration = off\nepoch = 200ms' \
	silt_make_volume "$V" 3 64K 8M - 3M
mount_it() { silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"; }
mount_it

chunks_on() { silt_where_tier_chunks "$1" "$2"; }          # FILE TIER
tier_json() { json_get "$(silt_ctl -m "$M" tiers --json)" ".tiers[] | select(.name == \"$1\") | .$2"; }
same() { cmp -s "$1" "$2"; }

say "a file on the fast tier, then evacuate it while a writer runs"
silt_random "$W/a" $((4 * MiB))
cp "$W/a" "$M/a"
check_eq "$(chunks_on "$M/a" t0)" 64 "the file's 64 chunks are on t0"
# the writer: 64 KiB blocks into b, the same into a copy here
silt_random "$W/bsrc" $((2 * MiB))
cp "$W/bsrc" "$M/b" && cp "$W/bsrc" "$W/b"
( for i in $(seq 0 40); do
	off=$((RANDOM % 32))
	dd if=/dev/urandom of="$W/blk" bs=64K count=1 status=none
	dd if="$W/blk" of="$M/b" bs=64K seek=$off conv=notrunc status=none || exit 1
	dd if="$W/blk" of="$W/b" bs=64K seek=$off conv=notrunc status=none
done ) &
wp=$!
rc=0; out=$(silt_ctl -m "$M" evacuate t0) || rc=$?
wrc=0; wait "$wp" || wrc=$?
check_eq "$rc" 0 "siltctl evacuate t0 exits 0 ($out)"
check_eq "$wrc" 0 "the writer ran through the evacuation"
check_eq "$(tier_json t0 state)" evacuated "siltctl tiers: t0 evacuated"
check_eq "$(tier_json t0 chunks)" 0 "t0 holds no chunk"
silt_drop_caches
check "same '$W/a' '$M/a'" "the evacuated file reads back intact"
check "same '$W/b' '$M/b'" "the file written during the evacuation reads back as written"
check "[ \"\$(chunks_on '$M/a' t1)\" -eq 64 ]" "its chunks went to the next tier, t1"
silt_random "$W/c" $MiB
cp "$W/c" "$M/c"
check_eq "$(chunks_on "$M/c" t0)" 0 "a new file's chunks avoid the evacuated tier"
txt=$(silt_ctl -m "$M" tiers)
check "grep -q '^t0 .*evacuated' <<<\"\$txt\"" "siltctl tiers shows the state in its table"

say "a remount keeps it evacuated"
silt_umount "$M" || silt_abort "cannot unmount"
mount_it
check_eq "$(tier_json t0 state)" evacuated "t0 still evacuated after the remount"
silt_random "$W/d" $MiB
cp "$W/d" "$M/d"
check_eq "$(chunks_on "$M/d" t0)" 0 "and still takes no chunk"
check "same '$W/a' '$M/a'" "the data is intact after the remount"

say "refused when the others cannot hold it"
before=$(tier_json t1 chunks)
rc=0; err=$(silt_ctl -m "$M" evacuate t1 2>&1) || rc=$?
check_eq "$rc" 1 "evacuating t1 into a 3 MiB t2 (t0 evacuated) fails"
check "grep -q 'room for' <<<\"\$err\"" "the error says how much room there is ($err)"
check_eq "$(tier_json t1 chunks)" "$before" "nothing moved"
check_eq "$(tier_json t1 state)" active "t1 stays active"
rc=0; err=$(silt_ctl -m "$M" evacuate t9 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q 'no tier called t9' <<<\"\$err\"" "an unknown tier is named ($err)"

say "cancel: t0 takes chunks again"
check_cmd "evacuate --cancel t0" silt_ctl -m "$M" evacuate --cancel t0
check_eq "$(tier_json t0 state)" active "t0 active again"
silt_random "$W/e" $MiB
cp "$W/e" "$M/e"
check_eq "$(chunks_on "$M/e" t0)" 16 "a new file goes to t0 again"
silt_random "$W/f" $((4 * MiB))
cp "$W/f" "$M/f"

say "slow: cancelled half way, then interrupted by an unmount and resumed"
silt_umount "$M" || silt_abort "cannot unmount"
sed -i 's/^epoch = 200ms$/epoch = 200ms\nrate = 1M\nbusy_rate = 1M/' "$V/vol.conf"
mount_it
on0=$(tier_json t0 chunks)
check_cmd "evacuate --no-wait t0" silt_ctl -m "$M" evacuate --no-wait t0
# (at 1 MiB/s the 80 chunks take 5 s: cancel as soon as some moved)
silt_wait_for 10 '[ "$(tier_json t0 chunks)" -lt $on0 ]' || true
check_cmd "evacuate --cancel t0" silt_ctl -m "$M" evacuate --cancel t0
sleep 0.5 # the batch in flight lands
left=$(tier_json t0 chunks)
check "[ $left -gt 0 ] && [ $left -lt $on0 ]" "cancelled half way: $left of $on0 chunks still on t0"
sleep 1
check_eq "$(tier_json t0 chunks)" "$left" "nothing moves after the cancel"
check_cmd "evacuate --no-wait t0 again" silt_ctl -m "$M" evacuate --no-wait t0
sleep 0.5
silt_umount "$M" || silt_abort "cannot unmount"
sed -i '/^rate = 1M$/d; /^busy_rate = 1M$/d' "$V/vol.conf"
mount_it
check "grep -q 'resuming its evacuation' '$(silt_volume_log "$V")'" "the next mount resumes it"
check "silt_wait_for 30 '[ \"\$(tier_json t0 state)\" = evacuated ]'" "and it ends: t0 evacuated"
for f in a b c d e f; do
	check "same '$W/$f' '$M/$f'" "$f intact"
done
check_cmd "evacuate --cancel t0 (evacuated)" silt_ctl -m "$M" evacuate --cancel t0

say "pins"
check_cmd "pin c t2" silt_ctl pin "$M/c" t2
check "silt_wait_for 30 '[ \"\$(chunks_on \"$M/c\" t2)\" = 16 ]'" "c's chunks moved to t2"
check "same '$W/c' '$M/c'" "c intact on t2"
dd if=/dev/urandom bs=64K count=4 status=none >> "$W/c"
tail -c $((256 << 10)) "$W/c" >> "$M/c"
check_eq "$(chunks_on "$M/c" t2)" 20 "its new chunks are born on t2"
silt_umount "$M" || silt_abort "cannot unmount"
mount_it
pins=$(silt_ctl -m "$M" pins --json)
check_eq "$(json_get "$pins" '.pins[0].ino')" "$(stat -c %i "$M/c")" "the pin survives a remount"
check_eq "$(json_get "$pins" '.pins[0].tier')" t2 "to t2"
check_eq "$(chunks_on "$M/c" t2)" 20 "and the chunks stayed on t2"
dd if=/dev/urandom bs=64K count=4 status=none >> "$W/c"
tail -c $((256 << 10)) "$W/c" >> "$M/c"
check_eq "$(chunks_on "$M/c" t2)" 24 "new chunks still born on t2: the pin holds after the remount"
check "same '$W/c' '$M/c'" "c intact after the remount"
rc=0; err=$(silt_ctl pin "$M/c" nope 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q 'no tier called nope' <<<\"\$err\"" "a pin to an unknown tier is refused ($err)"
mkdir -p "$M/dir"
rc=0; err=$(silt_ctl pin "$M/dir" t1 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q 'not a regular file' <<<\"\$err\"" "a directory is refused ($err)"
check_cmd "unpin c" silt_ctl unpin "$M/c"
check_eq "$(json_get "$(silt_ctl -m "$M" pins --json)" '.pins | length')" 0 "no pin left"
ev=$(silt_ctl -m "$M" events -n 100)
check "grep -q 'evacuation of tier t0 started' <<<\"\$ev\"" "the events say the evacuation started"
check "grep -q 'tier t0 evacuated' <<<\"\$ev\"" "and ended"
check "grep -q 'pinned to tier t2' <<<\"\$ev\"" "and the pin"
check_cmd "umount" silt_umount "$M"

silt_summary
