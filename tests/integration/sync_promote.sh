#!/usr/bin/env bash
# Promotion and split brain, through the daemons and siltctl: the primary
# host fails, its replica is promoted (`siltctl replica promote`); the old
# primary comes back and writes: both sides see the split brain, neither
# ships over the other, nothing is applied; the old host, made a replica of
# the new primary, refuses it (its own writes since the split would be
# lost) until the operator says `siltctl replica discard-local`, after
# which it is a replica of the new primary, byte for byte. The operator's
# facts go too: pins, live placement rules and the event log made on the
# primary show on the replica (siltctl pins, policy, events), their removal
# too, and the promoted volume mounts with them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sync_hosts.sh"

say "a replica in step"
start_primary
mkdir "$P/vms"
silt_random "$P/vms/disk.img" $((1 << 20))
echo one > "$P/vms/a.txt"
start_replica
wait_same "the replica is in step" 30

say "pins, live rules and events made on the primary reach the replica"
img=$(stat -c %i "$P/vms/disk.img") txt=$(stat -c %i "$P/vms/a.txt")
pins_of() { silt_ctl -m "$1" pins --json | jq -r '[(.pins // [])[] | "\(.ino):\(.tier)"] | sort | join(",")'; }
rules_of() { silt_ctl -m "$1" policy --json | jq -r '[(.rules // [])[] | select(.from == "live") | .name] | join(",")'; }
has_event() { silt_ctl -m "$1" events --json -n 1000 | jq -e --arg t "$2" '[.events[].text] | any(. == $t)' >/dev/null; }
facts_are() { # facts_are MOUNT PINS RULES
	[ "$(pins_of "$1")" = "$2" ] && [ "$(rules_of "$1")" = "$3" ]
}
check_cmd "pin disk.img t0" silt_ctl -m "$P" pin "$P/vms/disk.img" t0
check_cmd "pin a.txt t0" silt_ctl -m "$P" pin "$P/vms/a.txt" t0
check_cmd "policy rule add imgs" silt_ctl -m "$P" policy rule add imgs 'match=vms/*.img' weight=5
check_cmd "policy rule add notes" silt_ctl -m "$P" policy rule add notes 'match=*.txt' max_tier=t0
pins2=$(printf '%s\n' "$img:t0" "$txt:t0" | sort | paste -sd,)
check_eq "$(pins_of "$P")" "$pins2" "the primary has both pins"
check "silt_wait_for 15 'facts_are \"\$R\" \"\$pins2\" imgs,notes'" \
	"the running replica shows both pins and both live rules"
check "has_event '$R' 'placement rule notes added: match=*.txt max_tier=t0'" "and the primary's event of the last rule"
check "has_event '$R' 'inode $img pinned to tier t0'" "and of the pin"
check_cmd "unpin a.txt" silt_ctl -m "$P" unpin "$P/vms/a.txt"
check_cmd "policy rule rm notes" silt_ctl -m "$P" policy rule rm notes
check "silt_wait_for 15 'facts_are \"\$R\" $img:t0 imgs'" \
	"the unpin and the rule rm reach it too"
check "silt_wait_for 15 \"has_event '$R' 'placement rule notes removed'\"" "with their events"
wait_same "the files are still in step" 30

say "the primary host fails; the replica is promoted"
kill -9 "$PPID_"
wait "$PPID_" 2>/dev/null || true
fusermount3 -uz "$P" 2>/dev/null || umount -l "$P"
check_cmd "siltctl replica promote" silt_ctl -m "$R" replica promote
check_eq "$(json_get "$(silt_ctl -m "$R" sync status --json)" '.peers[0].state')" promoted "the replica says promoted"
check "facts_are '$R' $img:t0 imgs" "the promoted volume has the primary's pin and live rule"

say "the old primary comes back and writes: refused, nothing applied"
start_primary
echo split > "$P/vms/old-side.txt"
refused() { json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].error' | grep -q "split brain"; }
silt_wait_for 15 refused || true
check refused "the old primary is told: split brain"
check "grep -q 'split brain' '$RLOG'" "the promoted side logged it"
silt_drop_caches
check "[ ! -e '$R/vms/old-side.txt' ]" "nothing of the old primary's reaches the promoted volume"

say "the promoted volume serves; the old host becomes its replica: it refuses, its own writes would go"
silt_umount "$P" || silt_abort "old primary does not unmount"
silt_umount "$R" || silt_abort "promoted replica does not unmount"
sed -i '/^\[sync\]/,$d' "$pconf" "$rconf"
cat >> "$rconf" <<EOC
[sync]
private_key = $rsec
interval = 200ms

[peer old]
address = 10.239.$n.1:7412
public_key = $ppub
EOC
cat >> "$pconf" <<EOC
[sync]
private_key = $psec
listen = 10.239.$n.1:7412
state = $SILT_TMP/p/state

[peer new]
public_key = $rpub
EOC
SILT_IN_NS=$B silt_mount_fg "$rconf" "$R" || silt_abort "the promoted volume does not mount read-write"
RLOG=$SILT_LAST_ERR
check "facts_are '$R' $img:t0 imgs" "mounted as the primary, the promoted volume follows the pin and the live rule"
check "has_event '$R' 'placement rule notes removed'" "and keeps the event log it took"
check_cmd "a live rule on the new primary" silt_ctl -m "$R" policy rule add later 'match=after-*'
echo after > "$R/vms/after-promote.txt"
SILT_IN_NS=$A silt_mount_fg "$pconf" "$P" ro || silt_abort "the old primary does not mount as a replica"
PLOG=$SILT_LAST_ERR
split() { json_get "$(silt_ctl -m "$R" sync status --json)" '.peers[0].error' | grep -q "split brain: both sides changed"; }
silt_wait_for 15 split || true
check split "the new primary is refused: both sides changed since the split"
check "grep -q 'discard-local' '$PLOG'" "the old host logged the split brain and the resolutions"
silt_drop_caches
check "[ -e '$P/vms/old-side.txt' ] && [ ! -e '$P/vms/after-promote.txt' ]" "nothing was applied: the old host's writes are there"

say "keep-separate: the old host refuses the peer for good"
check_cmd "siltctl replica keep-separate" silt_ctl -m "$P" replica keep-separate
apart() { json_get "$(silt_ctl -m "$R" sync status --json)" '.peers[0].error' | grep -q "kept as a separate volume"; }
silt_wait_for 15 apart || true
check apart "the new primary is told the old host keeps itself apart"
silt_drop_caches
check "[ -e '$P/vms/old-side.txt' ] && [ ! -e '$P/vms/after-promote.txt' ]" "and still nothing is applied"

say "the explicit resolution: discard the old host's changes since the split"
check_cmd "siltctl replica discard-local" silt_ctl -m "$P" replica discard-local
wait_same "the old host is a replica of the new primary" 30
check "[ ! -e '$P/vms/old-side.txt' ] && [ -e '$P/vms/after-promote.txt' ]" "its own write is gone, by request"
check "silt_wait_for 15 'facts_are \"\$P\" $img:t0 imgs,later'" "the full sync brought the new primary's pins and live rules"
check "has_event '$P' 'placement rule later added: match=after-*'" "and its event log"

silt_umount "$P"
silt_umount "$R"
silt_summary
