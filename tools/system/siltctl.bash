# bash completion for siltctl                               -*- shell-script -*-
#
# Commands, their options and whether they take a FILE come from siltctl
# itself (--list-commands, help COMMAND), so a new command completes
# without touching this file.

_siltctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local prog=${COMP_WORDS[0]} i cmd="" usage
	COMPREPLY=()

	case $prev in
	-m)
		COMPREPLY=($(compgen -W "$(awk '$3 == "fuse.siltfs" { print $2 }' /proc/self/mounts 2>/dev/null)" -- "$cur"))
		return ;;
	-s)
		COMPREPLY=($(compgen -f -- "${cur:-/run/siltfs/}"))
		return ;;
	-c)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	-n)
		return ;;
	esac
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-m | -s) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-m -s --json --help --version --list-commands" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$prog" --list-commands 2>/dev/null)" -- "$cur"))
		fi
		return
	fi
	if [[ $cmd == help ]]; then
		COMPREPLY=($(compgen -W "$("$prog" --list-commands 2>/dev/null)" -- "$cur"))
		return
	fi
	# the command's usage line: "usage: siltctl [...] CMD [-n LINES] [--json] FILE"
	usage=$("$prog" help "$cmd" 2>/dev/null | sed -n "1s/^.* $cmd\( \|\$\)//p")
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(grep -o -- '-[-a-z]*' <<<"$usage") --help" -- "$cur"))
	elif [[ $usage == *FILE* ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _siltctl siltctl
