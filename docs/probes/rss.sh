#!/bin/sh
# Peak resident memory of one command: max RSS from `/usr/bin/time -v`, and the peaks of
# RssAnon / RssFile sampled from /proc/<pid>/status every 20 ms (a sample can miss a short peak,
# so the two sampled peaks need not add up to the max RSS). Prints the command's own output, then
# one summary line with the load average before and after.
#
#   docs/probes/rss.sh target/release/sluicegate bench --pipeline \
#       --input /work/sa/data/lines_1000000.txt --fixed-batch 1000000 --repeat 3
#
# A `--dir` is added (a fresh temporary directory, removed afterwards) unless one is given.
set -u
case " $* " in
*" --dir "*) dir="" ;;
*)
	dir=$(mktemp -d)
	set -- "$@" --dir "$dir/run"
	;;
esac
load0=$(cut -d' ' -f1-3 /proc/loadavg)
tv=$(mktemp)
/usr/bin/time -v -o "$tv" "$@" &
tpid=$!
# The child of /usr/bin/time is the measured process.
pid=""
while [ -z "$pid" ] && kill -0 "$tpid" 2>/dev/null; do
	pid=$(pgrep -P "$tpid" | head -n1)
	[ -z "$pid" ] && sleep 0.005
done
anon=0
file=0
while [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; do
	set -- $(awk '/^RssAnon:/{a=$2} /^RssFile:/{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null) 0 0
	[ "$1" -gt "$anon" ] && anon=$1
	[ "$2" -gt "$file" ] && file=$2
	sleep 0.02
done
wait "$tpid"
rc=$?
maxrss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tv")
minflt=$(awk -F': ' '/Minor .*page faults/{print $2}' "$tv")
rm -f "$tv"
[ -n "$dir" ] && rm -rf "$dir"
echo "rss: exit $rc; max RSS ${maxrss} kB ($((maxrss / 1024)) MiB); peak RssAnon ${anon} kB ($((anon / 1024)) MiB); peak RssFile ${file} kB ($((file / 1024)) MiB); minor faults ${minflt}; load before ${load0}, after $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
