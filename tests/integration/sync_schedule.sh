#!/usr/bin/env bash
# Predictive sync timing (issue 10 point 4), through the daemons and the
# link: a primary under a bursty write load (0.7 s of 4K writes every
# 2 s, as a VM's periodic jobs) ships to its replica over the shaped veth
# pair. With `schedule = interval` a good share of the bytes on the wire go
# out while the guest writes; with `schedule = quiet` the sender finds the
# period, ships in the gaps the forecaster sees coming, and almost nothing
# goes out during the bursts. The wire is measured from outside (the
# primary side's veth tx bytes, read at each burst's start and end), not
# from what the sender says of itself. Under a steady load with no quiet
# period, the quiet schedule still ships within max_lag (a file written
# meanwhile arrives), and the replica ends equal to the primary.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sync_hosts.sh"

# journal batches, not the fold to a resync of the tests beside it (journal_max 64)
sed -i 's/^interval = .*/interval = 500ms/; s/^max_lag = .*/max_lag = 4s/; s/^journal_max = .*/journal_max = 100000/' "$pconf"
start_replica
start_primary
silt_random "$P/disk.img" $((4 << 20))
wait_same "a 4 MiB image arrives" 30

# cycles N MEASURE: N bursts (0.7 s of 4K writes at 1,000 a second) 2 s
# apart, on an absolute clock; prints the share of the wire bytes (the
# primary side's veth tx) of the last MEASURE cycles that went out during
# bursts (percent) and their total. The quiet schedule gets 9 cycles to
# find the period (it needs three, and settles in about seven).
cycles() {
	local c during gap in=0 all=0
	while read -r c during gap; do
		echo "    cycle $c: $during bytes during the burst, $gap in the gap" >&2
		if ((c >= $1 - $2)); then
			in=$((in + during)) all=$((all + during + gap))
		fi
	done < <(ip netns exec "$A" "$SILT_BURSTS" "$P/disk.img" "$1" 2000 700 1000 \
		"/sys/class/net/v-$A/statistics/tx_bytes" || echo "silt-bursts failed" >&2)
	echo $((all ? in * 100 / all : 0)) $((all))
}

# Under a sanitizer the daemons run a few times slower, and the shares
# measure that rather than the schedule: only the quiet schedule runs
# there, for its code (the period, the decisions, the replica in step).
if [ -z "${SILT_SANITIZED:-}" ]; then
	say "schedule = interval: shipping every 500 ms, bursts or not"
	read -r share_int wire_int < <(cycles 6 4)
	echo "    $share_int% of $wire_int wire bytes went out during bursts"
	wait_same "the replica follows (interval)" 30
fi

say "schedule = quiet: shipping in the gaps the forecaster sees coming"
silt_umount "$P" || silt_abort "primary does not unmount"
sed -i 's/^interval = 500ms/interval = 500ms\nschedule = quiet/' "$pconf"
start_primary
read -r share_q wire_q < <(cycles 14 5)
echo "    $share_q% of $wire_q wire bytes went out during bursts"
j=$(silt_ctl -m "$P" sync status --json)
echo "    $(json_get "$j" '.peers[0] | "schedule \(.schedule), period \(.period_ms) ms, forecasts \(.forecasts_right)/\(.forecasts) right, ships quiet \(.ships_quiet) lag \(.ships_lag) interval \(.ships_interval)"')"
check_eq "$(json_get "$j" '.peers[0].schedule')" quiet "sync status says schedule quiet"
period=$(json_get "$j" '.peers[0].period_ms')
check '((period >= 1800 && period <= 2200))' "the forecaster found the 2 s period ($period ms)"
check '(($(json_get "$j" .peers[0].forecasts_right) * 10 >= $(json_get "$j" .peers[0].forecasts) * 8))' \
	"four in five of its one-tick forecasts were right"
if [ -z "${SILT_SANITIZED:-}" ]; then
	check '((wire_q > 0 && wire_int > 0))' "both schedules shipped ($wire_int and $wire_q bytes)"
	check '((share_q <= 15))' "quiet: at most 15% of the wire during bursts ($share_q%)"
	check '((share_int >= 2 * share_q + 10))' "well below the interval schedule's share ($share_int%)"
fi
wait_same "the replica follows (quiet)" 30

say "a steady load has no quiet period: still shipped within max_lag (4 s)"
under_load "$P/disk.img" 1000
dt=$ARRIVAL_MS fpid=$FIO_PID
check '((ARRIVED))' "a file written under steady load arrives on the replica ($dt ms)"
check '((dt <= 5000))' "within max_lag and a ship ($dt ms)"
check 'silt_pid_alive $fpid' "while the load still runs"
wait "$fpid" || fail "fio steady"
wait_same "the replica ends equal to the primary" 30
silt_summary
