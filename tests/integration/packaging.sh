#!/usr/bin/env bash
# packaging: what `meson install` gives an admin (docs/usage.md,
# "Installing"). `meson install --destdir` puts exactly the files that the
# table in docs/usage.md lists, where it lists them; the man pages render
# without warnings and cover every siltctl command, every siltfs -o option
# and every config key (as the CLI and the config parser name them); the
# bash completion completes commands, their options, siltfs mount points
# and files; installed into the system (and removed after), man(1) finds
# the pages and systemd-analyze verify accepts the unit; the example config
# mounts as it is but for its paths; --version prints the project version.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

D="$SILT_TMP/dest"
prefix=$(meson introspect "$BUILDDIR" --buildoptions | jq -r '.[] | select(.name == "prefix") | .value')
version=$(meson introspect "$BUILDDIR" --projectinfo | jq -r .version)

say "meson install --destdir puts every file where docs/usage.md says"
check_cmd "meson install --destdir" meson install -C "$BUILDDIR" --no-rebuild --quiet --destdir "$D"
documented=$(sed -n '/^## Installing/,/^## [^I]/p' "$SRCDIR/docs/usage.md" | grep -oE '^\| `/[^`]+`' |
	tr -d '|` ' | sed "s|^/usr/local/|$prefix/|" | LC_ALL=C sort)
installed=$(cd "$D" && find . \( -type f -o -type l \) | sed 's|^\.||' | LC_ALL=C sort)
check '[ "$(echo "$documented" | grep -c .)" -ge 10 ]' "docs/usage.md lists the installed files ($(echo "$documented" | grep -c .))"
check_eq "$installed" "$documented" "the installed files are exactly the documented ones"
for f in bin/siltfs bin/siltctl bin/siltfs-sim; do
	check '[ -x "$D$prefix/$f" ] && cmp -s "$D$prefix/$f" "$BUILDDIR/$(basename $f)"' "$prefix/$f is the build's, executable"
done
check '[ -x "$D/sbin/umount.fuse.siltfs" ]' "/sbin/umount.fuse.siltfs is executable"
unit="$D$prefix/lib/systemd/system/siltfs@.service"
check 'grep -qx "ExecStart=$prefix/bin/siltfs /etc/siltfs/%i.conf \${SILTFS_MOUNTPOINT} -o \${SILTFS_OPTIONS}" "$unit"' \
	"the unit runs the installed daemon on /etc/siltfs/<instance>.conf"

say "man pages"
man8="$D$prefix/share/man/man8"; man5="$D$prefix/share/man/man5"
for page in "$man8/siltfs.8" "$man8/siltctl.8" "$man5/siltfs.conf.5"; do
	warn=$(LC_ALL=C MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
	check '[ -z "$warn" ]' "$(basename "$page") renders without warnings${warn:+: $warn}"
	check 'lexgrog "$page" | grep -q " - "' "$(basename "$page") has a NAME line ($(lexgrog "$page" | cut -d'"' -f2))"
	check 'LC_ALL=C MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "siltfs $version"' "$(basename "$page") names version $version"
done
# text PAGE: the rendered page
text() { LC_ALL=C MANWIDTH=200 man -l "$1" 2>/dev/null; }
for c in $("$SILTCTL" --list-commands); do
	check 'text "$man8/siltctl.8" | grep -qE "^       $c( |\$)"' "siltctl(8) describes the command $c"
done
for o in $("$SILTFS" --help | grep -oE -- '-o [a-z_]+=' | sed 's/-o //'); do
	check 'text "$man8/siltfs.8" | grep -qE "^ +$o"' "siltfs(8) describes -o $o"
done
# the config parser lists every key it takes when it meets an unknown one
C="$SILT_TMP/c"; mkdir -p "$C/t0" "$C/mnt"
for section in volume ram "tier x" "rule r"; do
	{ echo "[volume]"; echo "name = c"; [ "$section" != volume ] && echo "[$section]"
	  [ "$section" = "tier x" ] && echo "path = $C/t0"; echo "no_such_key = 1"; } > "$C/vol.conf"
	keys=$("$SILTFS" "$C/vol.conf" "$C/mnt" 2>&1 | sed -n 's/.*(expected \(.*\))$/\1/p' | tr -d ,)
	check '[ -n "$keys" ]' "[$section]: the parser names its keys ($keys)"
	for k in $keys; do
		check 'text "$man5/siltfs.conf.5" | grep -qE "^       $k( |\$)"' "siltfs.conf(5) describes [$section] $k"
	done
done

say "bash completion"
# shellcheck source=/dev/null
. "$D$prefix/share/bash-completion/completions/siltctl"
# comp WORD...: the completions of the last WORD after siltctl WORD...
comp() {
	COMP_WORDS=("$SILTCTL" "$@"); COMP_CWORD=$#; COMPREPLY=()
	_siltctl
	echo "${COMPREPLY[*]}"
}
check_eq "$(comp "")" "$(echo $("$SILTCTL" --list-commands))" "siltctl <TAB>: the commands"
check_eq "$(comp st)" status "siltctl st<TAB>"
check_eq "$(comp --json w)" where "siltctl --json w<TAB>"
check_eq "$(comp help l)" log "siltctl help l<TAB>"
check_eq "$(comp log -)" "-n -c --json --help" "siltctl log -<TAB>: its options"
check_eq "$(comp --j)" --json "siltctl --j<TAB>"
V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 1 64K
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo x > "$M/file.img"
check '[[ " $(comp -m "") " == *" $M "* ]]' "siltctl -m <TAB>: siltfs mount points"
check_eq "$(comp where "$M/fi")" "$M/file.img" "siltctl where FILE<TAB>: files"
check_eq "$(comp status "")" "" "siltctl status <TAB>: nothing (no FILE)"

say "the example config"
E="$SILT_TMP/e"; EM="$SILT_TMP/em"
mkdir -p "$E/nvme" "$E/hdd" "$EM"; silt_track_mount "$EM"
sed -e "s|/srv/nvme/silt|$E/nvme|" -e "s|/srv/hdd/silt|$E/hdd|" -e "s|^name = vm |name = ex-$(basename "$SILT_TMP") |" \
	"$D$prefix/share/doc/siltfs/example.conf" > "$E/vol.conf"
rc=0; silt_mount "$E/vol.conf" "$EM" || rc=$?
check_eq "$rc" 0 "the example config mounts ($(cat "$SILT_LAST_ERR"))"
echo example > "$EM/f"
j=$(silt_ctl where --json "$EM/f" 2>&1)
check_eq "$(json_get "$j" '.tiers[0].name')" nvme "its first tier is nvme ($j)"
silt_umount "$EM"

say "installed into the system"
silt_install_system || silt_abort "cannot install the build into the system"
check_eq "$(realpath "$(man -w siltfs)")/$(realpath "$(man -w 5 siltfs.conf)")" \
	"$prefix/share/man/man8/siltfs.8/$prefix/share/man/man5/siltfs.conf.5" "man finds siltfs(8) and siltfs.conf(5)"
check_eq "$(siltctl --version)/$(siltfs --version | cut -d' ' -f1-2)" "siltctl $version/siltfs $version" "--version: $version"
U="$SILT_TMP/units"; mkdir -p "$U"
ln -s "$prefix/lib/systemd/system/siltfs@.service" "$U/siltfs@vm.service"
out=$(timeout 60 systemd-analyze verify "$U/siltfs@vm.service" 2>&1); rc=$?
check '[ $rc -eq 0 ] && [ -z "$out" ]' "systemd-analyze verify siltfs@vm.service: clean${out:+ ($out)}"
silt_umount "$M"

silt_summary
