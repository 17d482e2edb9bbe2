#!/usr/bin/env bash
# Placement rules, the rest of issue 11 point 2 and point 5, through the
# mount and the real siltctl, on two-tier volumes (t0 2 MiB, 64 KiB chunks:
# 28 chunks under its high watermark; LRU; migration only when asked):
#
#  - weight: two files of 32 chunks, written and read alike (chunk by chunk,
#    interleaved, O_DIRECT), compete for t0. Without a weight they share it
#    evenly; with [rule hot] weight = 10 on one, after `siltctl migrate`
#    epochs that one holds clearly more of t0; a live rule with a weight on
#    the other turns it round;
#  - live rules (siltctl policy rule add/rm): applied at once to the files
#    already there (their chunks move into the rule), shown by siltctl
#    policy (from live or config, --json too), logged in the event log,
#    kept across a remount; a live rule hides the config's of its name and
#    removing it brings that back; a config rule cannot be removed live;
#  - bad input (unknown tier, bad glob, bad weight, unknown key, a name
#    taken, more than 32 rules) is refused with a message naming it, and
#    changes nothing; a bad weight in the config is refused at mount,
#    naming the line.
. "$(dirname "$0")/lib.sh"

V=$SILT_TMP/v M=$SILT_TMP/m W=$SILT_TMP/w
CH=$((64 << 10)) N=32
mkdir -p "$W"
silt_random "$W/a" $((N * CH))
silt_random "$W/b" $((N * CH))
on() { silt_where_tier_chunks "$M/$1" "$2"; }
rules_json() { silt_ctl -m "$M" policy --json | jq -c '.rules'; }
mount_it() { silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"; }

# a fresh volume at $V (with the rules in $1 appended to its config), mounted
new_volume() {
	rm -rf "$V"
	SILT_VOLUME_OPTS=$'[ram]\nsize = 0\n[placement]\npolicy = lru\nepoch = 1h' silt_make_volume "$V" 2 64K 2M
	printf '%s' "${1:-}" >> "$V/vol.conf"
	mount_it
}

# a.img and b.img, chunk by chunk in turn: t0 gets as many of each
write_both() {
	local i
	for ((i = 0; i < N; i++)); do
		dd if="$W/a" of="$M/a.img" bs=64k skip=$i seek=$i count=1 conv=notrunc oflag=direct status=none
		dd if="$W/b" of="$M/b.img" bs=64k skip=$i seek=$i count=1 conv=notrunc oflag=direct status=none
	done
}

# read both the same way (chunk by chunk in turn) $1 times, then migrate
read_both_and_migrate() {
	local p i
	for ((p = 0; p < $1; p++)); do
		for ((i = 0; i < N; i++)); do
			dd if="$M/a.img" of=/dev/null bs=64k skip=$i count=1 iflag=direct status=none
			dd if="$M/b.img" of=/dev/null bs=64k skip=$i count=1 iflag=direct status=none
		done
	done
	for p in 1 2 3; do silt_ctl -m "$M" migrate >/dev/null || fail "siltctl migrate failed"; done
}

say "without a weight, two files used alike share the fast tier"
new_volume
write_both
read_both_and_migrate 4
a0=$(on a.img t0) b0=$(on b.img t0)
echo "  (t0 chunks: a.img $a0, b.img $b0)"
check "[ \$((a0 + b0)) -ge 20 ] && [ \$((a0 - b0)) -le 4 ] && [ \$((b0 - a0)) -le 4 ]" \
	"about even: a.img $a0, b.img $b0 chunks on t0"

say "a live rule with a weight: the weighted file wins t0"
check_cmd "policy rule add hotb match=b.img weight=10" silt_ctl -m "$M" policy rule add hotb match=b.img weight=10
read_both_and_migrate 4
a1=$(on a.img t0) b1=$(on b.img t0)
echo "  (t0 chunks: a.img $a1, b.img $b1)"
check_ge "$b1" $((a1 + 16)) "b.img (weight 10) holds clearly more of t0 than a.img ($a1)"
check "cmp -s '$W/a' '$M/a.img' && cmp -s '$W/b' '$M/b.img'" "both read back intact"
silt_umount "$M" || silt_abort "cannot unmount"

say "a config rule with a weight"
new_volume $'\n[rule hot]\nmatch = a.img\nweight = 10\n'
write_both
read_both_and_migrate 4
a2=$(on a.img t0) b2=$(on b.img t0)
echo "  (t0 chunks: a.img $a2, b.img $b2)"
check_ge "$a2" $((b2 + 16)) "a.img ([rule hot] weight = 10) holds clearly more of t0 than b.img ($b2)"
j=$(silt_ctl -m "$M" policy --json)
check_eq "$(json_get "$j" '.rules[0] | "\(.name) \(.weight) \(.from) \(.line)"')" "hot 10 config $(grep -n '^\[rule hot\]' "$V/vol.conf" | cut -d: -f1)" \
	"siltctl policy --json: hot, weight 10, from the config, its line"

say "a live rule applies at once to the files already there"
rm "$M/a.img" "$M/b.img"
check "silt_wait_for 20 '[ \"\$(json_get \"\$(silt_ctl -m \"\$M\" status --json)\" \".tiers[0].chunks\")\" = 0 ]'" "t0 is empty again"
mkdir -p "$M/cold"
dd if="$W/a" of="$M/cold/x" bs=64k count=8 oflag=direct status=none
check_eq "$(on cold/x t0)" 8 "cold/x is born on t0"
out=$(silt_ctl -m "$M" policy rule add cold 'match=cold/*' pin=t1)
check "grep -qE '^cold +cold/\\* +t1 +1 +live' <<<\"\$out\"" "rule add prints the new rule ($out)"
migrate_on_t1() { silt_ctl -m "$M" migrate >/dev/null; [ "$(on cold/x t1)" = 8 ]; }
check "silt_wait_for 20 migrate_on_t1" "its chunks move to t1 (the rule's pin)"
check "cmp -s <(head -c $((8 * CH)) '$W/a') '$M/cold/x'" "and read back intact"
j=$(silt_ctl -m "$M" policy --json)
check_eq "$(json_get "$j" '[.rules[] | "\(.name):\(.from)"] | join(",")')" "cold:live,hot:config" \
	"siltctl policy: the live rule first, then the config's"
check "silt_ctl -m '$M' policy | grep -qE '^cold +cold/\\* +t1 +1 +live +1'" "and as a table (matched 1)"
check "silt_ctl -m '$M' events --json | jq -e '[.events[].text] | any(test(\"placement rule cold added: match=cold/\\\\* pin=t1\"))' >/dev/null" \
	"the event log says so"

say "a live rule hides the config's of its name"
j=$(silt_ctl -m "$M" policy --json rule add hot match=b.img weight=20)
check_eq "$(json_get "$j" '"\(.name) \(.from) \(.weight) \(.overrides)"')" "hot live 20 yes" \
	"rule add hot --json: live, weight 20, hiding the config's"
j=$(silt_ctl -m "$M" policy --json)
check_eq "$(json_get "$j" '[.rules[] | "\(.name):\(.from):\(.overrides)"] | join(",")')" "cold:live:no,hot:live:yes" \
	"one rule hot, the live one, overriding"

say "a remount"
silt_umount "$M" || silt_abort "cannot unmount"
mount_it
check_eq "$(rules_json | jq -r '[.[] | "\(.name):\(.from):\(.weight)"] | join(",")')" "cold:live:1,hot:live:20" \
	"the live rules are back, in the same order"
dd if="$W/a" of="$M/cold/x" bs=64k seek=8 count=4 oflag=direct status=none
check_eq "$(on cold/x t1)" 12 "new chunks of cold/x are born on t1 (the live rule, after the remount)"
check_eq "$(on cold/x t0)" 0 "none on t0"

say "removing live rules"
check_eq "$(silt_ctl -m "$M" policy --json rule rm hot | jq -r .removed)" hot "rule rm hot (--json)"
check_eq "$(rules_json | jq -r '[.[] | "\(.name):\(.from):\(.weight)"] | join(",")')" "cold:live:1,hot:config:10" \
	"the config's rule hot is back"
check_cmd "rule rm cold" silt_ctl -m "$M" policy rule rm cold
dd if="$W/a" of="$M/cold/x" bs=64k seek=12 count=4 oflag=direct status=none
check_eq "$(on cold/x t0)" 4 "cold/x is free again: new chunks go to t0"
rc=0; err=$(silt_ctl -m "$M" policy rule rm hot 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q 'rule hot comes from the config (.*vol.conf:[0-9]*)' <<<\"\$err\"" \
	"a config rule cannot be removed live ($err)"
rc=0; err=$(silt_ctl -m "$M" policy rule rm nosuch 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q 'no rule nosuch' <<<\"\$err\"" "nor a rule that is not there ($err)"

say "bad input changes nothing"
check_cmd "rule add keep" silt_ctl -m "$M" policy rule add keep 'match=keep/*' max_tier=t1
before=$(rules_json)
refused() { # MESSAGE-REGEX ARGS...: refused, saying so, nothing changed
	local want=$1 rc=0 err; shift
	err=$(silt_ctl -m "$M" policy rule add "$@" 2>&1) || rc=$?
	check "[ $rc -ne 0 ] && grep -qE -- \"\$want\" <<<\"\$err\" && [ \"\$(rules_json)\" = '$before' ]" \
		"refused: $* ($err)"
}
refused 'rule x: pin = t9: no such tier' x match=a pin=t9
refused 'rule x: match = \[ab: not a glob' x 'match=[ab'
refused 'rule x: weight = 0: must be a whole number from 1 to 100' x match=a weight=0
refused 'rule x: weight = 101: must be' x match=a weight=101
refused 'rule x: weight = 2x: must be' x match=a weight=2x
refused "rule x: unknown key 'colour'" x match=a colour=red
refused 'rule x: has no match' x pin=t1
refused 'rule keep exists already' keep match=a
refused 'rule x: min_tier = t0 is faster than max_tier = t1' x match=a min_tier=t0 max_tier=t1
for ((i = 0; i < 30; i++)); do silt_ctl -m "$M" policy rule add "r$i" "match=r$i/*" >/dev/null || fail "rule add r$i"; done
check_eq "$(rules_json | jq length)" 32 "32 rules in all (30 + keep, live; hot, config)"
before=$(rules_json)
refused 'too many rules \(at most 32' x match=a
for ((i = 0; i < 30; i++)); do silt_ctl -m "$M" policy rule rm "r$i" >/dev/null || fail "rule rm r$i"; done
silt_umount "$M" || silt_abort "cannot unmount"
mount_it
check_eq "$(rules_json | jq -r '[.[] | "\(.name):\(.from)"] | join(",")')" "keep:live,hot:config" \
	"after a remount: keep and hot, nothing of what was refused or removed"
check_cmd "umount" silt_umount "$M"

say "a bad weight in the config"
sed -i 's/^weight = 10$/weight = 500/' "$V/vol.conf"
silt_mount_refused "$V/vol.conf" "$M" 'vol.conf:[0-9]+: weight = 500: must be a whole number from 1 to 100' \
	"refused at mount, naming the line"

silt_summary
