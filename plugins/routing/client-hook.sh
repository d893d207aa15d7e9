
# ---- the hook itself (plugins/routing/client-hook.sh); the lines above are the configuration ----
#
# miredo runs this synchronously, three times per re-qualification (down, destroy, up) and waits:
# every millisecond here delays the handover, so a run costs one shell and one or two `ip`:
#   down           one `ip -batch` of flushes (a flush deletes only what exists);
#   destroy        with a table, one `ip -batch` flushing the profile's rules; else nothing;
#   up             one `ip` that reads the tunnel, then one `ip -batch` of exactly the difference
#                  to the profile's end state (nothing at all when it is already there).
# Anything this shell does not recognise as miredo's ordinary input (bad variables included), a
# configuration newer than this file, or a profile it does not handle is handed to the full hook,
# which validates and applies exactly the same end state (and says what is wrong, exit 2).
# Exit status: 0 applied or nothing to do, 1 the kernel refused an operation, 2 bad input.

set -f
nl='
'
IFS=" 	$nl" # a shell takes IFS from its environment: miredo's is clean, a hand-run one may not be
# The configuration and this file are trusted as root's only.  Their permission bits cannot be read
# without starting a program (a millisecond on every run): the full hook, `orchestrator
# check-config` and the daemon check those.
for path in "$0" "${0%/*}" "$config" "${config%/*}"; do
	if [ ! -O "${path:-/}" ]; then
		printf 'orchestrator hook: %s: refusing to run: it must be owned by root and writable by nobody else\n' "$path" >&2
		exit 2
	fi
done
if [ "$config" -nt "$0" ]; then
	printf 'orchestrator hook: %s is newer than %s: applied through the full hook; run `orchestrator hook --print-client-hook` again to make this hook fast again\n' "$config" "$0" >&2
	full_hook
fi

# canonical TEXT: succeeds when TEXT is an IPv6 address written as inet_ntop writes it (as miredo
# does), leaving its 32 hexadecimal digits in $hex.  Any other spelling goes to the full hook.
canonical() {
	case $1 in '' | *[!0-9a-f:]* | *:::* | *::*::* | :[!:]* | *[!:]:) return 1 ;; esac
	case $1 in
	*::*) before=${1%%::*} after=${1#*::} ;;
	*) before=$1 after= ;;
	esac
	hex= groups=0
	hex_groups "$before" || return 1
	head=$hex head_groups=$groups
	hex= groups=0
	hex_groups "$after" || return 1
	case $1 in
	*::*)
		[ $((head_groups + groups)) -le 6 ] || return 1
		gap=$((8 - head_groups - groups))
		fill=
		while [ ${#fill} -lt $((gap * 4)) ]; do fill=${fill}0000; done
		hex=$head$fill$hex
		;;
	*)
		[ "$head_groups" -eq 8 ] || return 1
		hex=$head gap=0
		;;
	esac
	# inet_ntop writes the first longest run of two or more zero groups as "::", and nothing else.
	best=0 best_at=0 run=0 at=0 rest=$hex
	while [ -n "$rest" ]; do
		if [ "${rest%"${rest#????}"}" = 0000 ]; then
			run=$((run + 1))
			[ "$run" -gt "$best" ] && best=$run best_at=$((at - run + 1))
		else
			run=0
		fi
		rest=${rest#????}
		at=$((at + 1))
	done
	if [ "$best" -lt 2 ]; then
		[ "$gap" -eq 0 ]
	else
		[ "$gap" -eq "$best" ] && [ "$best_at" -eq "$head_groups" ]
	fi
}

# hex_groups TEXT: appends the groups of TEXT ("2001:0:c633") to $hex, four digits each, counting
# them in $groups; fails on an empty group, more than four digits or a leading zero.
hex_groups() {
	[ -n "$1" ] || return 0
	IFS=:
	# shellcheck disable=SC2086 # split at ":" on purpose (globbing is off)
	set -- $1
	unset IFS
	for group in "$@"; do
		case $group in '' | ?????* | 0?*) return 1 ;; esac
		while [ ${#group} -lt 4 ]; do group=0$group; done
		hex=$hex$group
		groups=$((groups + 1))
	done
}

# route_fields WORDS...: the destination, gateway, metric and device of a unicast route as
# `ip -N -o route show` prints it; fails on nothing at all.
route_fields() {
	[ $# -gt 0 ] || return 1
	r_via= r_metric=0 r_dev=
	r_dst=$1
	shift
	while [ $# -ge 2 ]; do
		case $1 in
		via) r_via=$2 ;;
		metric) r_metric=$2 ;;
		dev) r_dev=$2 ;;
		*) shift && continue ;;
		esac
		shift 2
	done
}

# -- miredo's variables: the ordinary ones are checked here, anything else goes to the full hook --

case ${STATE-} in up | down | destroy) ;; *) full_hook ;; esac
iface=${IFACE-}
case $iface in '' | *[!A-Za-z0-9_.-]* | ????????????????*) full_hook ;; esac
profile_of "$iface" || full_hook
link_mtu=
if [ -n "${MTU-}" ] || { [ "$STATE" = up ] && [ "$mtu" = tunnel ]; }; then
	case ${MTU-} in '' | *[!0-9]* | 0* | ??????*) full_hook ;; esac
	[ "$MTU" -ge 1280 ] && [ "$MTU" -le 65535 ] || full_hook
	link_mtu=$MTU
fi
alias_prefix='orchestrator hook:'

# -- down: flushed and down, whatever is there; destroy: only what outlives the link --------------

if [ "$STATE" = destroy ]; then
	# miredo deletes the link next, and the kernel its addresses and routes with it: only the rules
	# at the profile's priority into its table (they name no device) would stay behind.
	[ -n "$table" ] || exit 0
	exec "$ip" -6 -batch - <<BATCH
link set dev $iface alias "$alias_prefix applying destroy"
rule flush pref $prio table $table
link set dev $iface alias "$alias_prefix destroy"
BATCH
fi
if [ "$STATE" = down ]; then
	flush_table=
	[ -z "$table" ] || flush_table="rule flush pref $prio table $table${nl}route flush table $table type unicast"
	# The end is marked before the link goes down: the kernel reports no alias of a link that is down.
	exec "$ip" -6 -batch - <<BATCH
link set dev $iface alias "$alias_prefix applying down"
$flush_table
address flush dev $iface
route flush table main dev $iface type unicast
link set dev $iface alias "$alias_prefix down"
link set dev $iface down
BATCH
fi

# -- up: read the tunnel, write the difference ---------------------------------------------------

canonical "${ADDRESS-}" || full_hook
# shellcheck disable=SC2254 # the declared prefix is a pattern on purpose
case $hex in $prefix_pattern) ;; *) full_hook ;; esac
case $hex in 00000000000000000000000000000000 | 00000000000000000000000000000001 | ff* | fe[89ab]* | 00000000000000000000ffff*) full_hook ;; esac
canonical "${LLADDRESS-}" || full_hook
case $hex in fe[89ab]*) ;; *) full_hook ;; esac
address=$ADDRESS ll=$LLADDRESS
[ "$mtu" = tunnel ] && end_mtu=$link_mtu || end_mtu=$mtu
use_table=
[ -n "$table" ] && [ "$source_rule" = true ] && use_table=1

read_table=
[ -z "$table" ] || read_table="route show table $table${nl}rule show pref $prio table $table"
# `link show` comes last: in a batch it leaves `ip` listing links only, for every later command.
current=$("$ip" -N -6 -o -batch - 2>/dev/null <<BATCH
address show dev $iface
route show table main dev $iface
$read_table
link show dev $iface
BATCH
) || full_hook # no such interface: the full hook says so

# Objects the profile does not recognise are deleted as `ip` prints them; anything that would not
# read back as the same object (a multipath or source-specific route, a peer address, a rule with
# more selectors, a name `ip -batch` would misread) is left to the full hook, before any write.
link_up= link_mtu_now= alias= have_address= have_ll= have_route= have_table_route= have_rule=
del_rules= del_table= del_main= del_addresses=
while IFS= read -r line; do
	case $line in
	[0-9]*": $iface: <"*)
		flags=${line#*<} && flags=${flags%%>*}
		case ",$flags," in *,UP,*) link_up=1 ;; esac
		link_mtu_now=${line#*> mtu } && link_mtu_now=${link_mtu_now%% *}
		case $line in *"    alias "*) alias=${line##*"    alias "} ;; esac
		break # `link show` came last; an alias may hold line breaks of its own
		;;
	*"["* | *nexthop* | *" from "* | *"#"* | *'"'* | *" peer "*) full_hook ;;
	[0-9]*:"	"*)
		rule=${line#*:	}
		# shellcheck disable=SC2086 # split into words on purpose (globbing is off)
		set -- $rule
		[ $# -eq 4 ] && [ "$1" = from ] && [ "$3" = lookup ] && [ "$4" = "$table" ] || full_hook
		case $2 in *[!0-9a-f:/]*) [ "$2" = all ] || full_hook ;; esac
		if [ -n "$use_table" ] && [ "$2" = "$address" ]; then
			have_rule=1
		else
			del_rules="${del_rules}rule del pref $prio $rule$nl"
		fi
		;;
	*" inet6 "*)
		entry=${line#* inet6 } && entry=${entry%% *}
		case $entry in
		"$address/$prefixlen") have_address=1 ;;
		"$ll/64") have_ll=1 ;;
		"$ll"/*) del_addresses="${del_addresses}address del $entry dev $iface$nl" ;;
		fe[89ab][0-9a-f]:*) ;; # another link-local address: the kernel's own, not the profile's
		*) del_addresses="${del_addresses}address del $entry dev $iface$nl" ;;
		esac
		;;
	[0-9]" "* | [0-9][0-9]" "* | [0-9][0-9][0-9]" "*) ;; # a route of another type (its number first)
	*" dev "*)
		# shellcheck disable=SC2086
		route_fields $line || full_hook
		case $r_dev in '' | *[!A-Za-z0-9_.-]*) full_hook ;; esac
		if [ -n "$use_table" ] && [ "$r_dst" = default ] && [ "$r_via" = "$gateway" ] &&
			[ "$r_metric" = 1024 ] && [ "$r_dev" = "$iface" ]; then
			have_table_route=1
		else
			del_table="${del_table}route del $r_dst${r_via:+ via $r_via} dev $r_dev table $table metric $r_metric$nl"
		fi
		;;
	*[!" 	"]*)
		case " $line " in *" proto 2 "*) continue ;; esac # the kernel's, made for an address
		# shellcheck disable=SC2086
		route_fields $line || full_hook
		if [ "$r_dst" = default ] && [ "$r_via" = "$gateway" ] && [ "$r_metric" = "$metric" ]; then
			have_route=1
		else
			del_main="${del_main}route del $r_dst${r_via:+ via $r_via} dev $iface table main metric $r_metric$nl"
		fi
		;;
	esac
done <<CURRENT
$current
CURRENT

changes=$del_rules$del_table$del_main$del_addresses
[ -n "$link_up" ] || changes="${changes}link set dev $iface up$nl"
[ "$link_mtu_now" = "$end_mtu" ] || changes="${changes}link set dev $iface mtu $end_mtu$nl"
[ -n "$have_address" ] || changes="${changes}address add $address/$prefixlen dev $iface$nl"
[ -n "$have_ll" ] || changes="${changes}address add $ll/64 dev $iface$nl"
route="default${gateway:+ via $gateway onlink} dev $iface"
[ -n "$have_route" ] || changes="${changes}route add $route table main metric $metric$nl"
if [ -n "$use_table" ]; then
	[ -n "$have_table_route" ] || changes="${changes}route add $route table $table metric 1024$nl"
	[ -n "$have_rule" ] || changes="${changes}rule add from $address pref $prio table $table$nl"
fi
done_alias="$alias_prefix up $address $ll ${link_mtu:--}"
if [ -z "$changes" ]; then
	[ "$alias" != "$done_alias" ] || exit 0
	exec "$ip" -6 -batch - <<BATCH
link set dev $iface alias "$done_alias"
BATCH
fi

if "$ip" -6 -batch - <<BATCH; then
link set dev $iface alias "$alias_prefix applying up"
$changes
link set dev $iface alias "$done_alias"
BATCH
	exit 0
fi
# Someone changed the tunnel between the read and the writes (the daemon restoring a route): read
# and plan once more.
case $0 in /*)
	if [ -z "${ORCHESTRATOR_HOOK_AGAIN-}" ]; then
		export ORCHESTRATOR_HOOK_AGAIN=1
		exec "$0"
	fi
	;;
esac
"$ip" link set dev "$iface" alias "$alias_prefix failed up" 2>/dev/null
printf 'orchestrator hook: %s: the kernel refused an operation (ip says which line above); applying again converges\n' "$iface" >&2
exit 1
