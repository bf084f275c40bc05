#!/bin/sh
# kvm-selftests: the kernel's own KVM selftests (tools/testing/selftests/kvm), which labrunner builds
# from the tree of the kernel under test and puts in /lab/selftests with their plan (lab.yaml's
# selftests:). One round runs each once, in order; rounds go on while LAB_DURATION lasts. Meanwhile
# lab-cpu-churn offlines and onlines CPUs every LAB_TOGGLE_MS, and the host plugs and unplugs vCPUs.
# Around each selftest's own output, two lines labrunner reads (labrunner/analysis/tap.py):
#   lab-selftest: begin NAME round N uptime T
#   lab-selftest: end NAME exit STATUS uptime T
# A selftest still running at its time limit is killed (exit 137), with whatever it forked, and the
# round goes on.
plan=/lab/selftests/plan
[ -s "$plan" ] || { echo "kvm-selftests: no $plan: the test has no selftests: list" >&2; exit 2; }
uptime() { read -r up _ < /proc/uptime; echo "$up"; }
# What a selftest killed at its limit leaves behind: the processes it forked, which still hold VMs
# (hardware_disable_test forks 512, one at a time), and would slow or wedge every selftest after it.
reap() {
	for exe in /proc/[0-9]*/exe; do
		case "$(readlink "$exe" 2>/dev/null)" in
		/lab/selftests/kvm/*) pid=${exe#/proc/}; kill -9 "${pid%/exe}" 2>/dev/null ;;
		esac
	done
}
# POSIX semaphores (hardware_disable_test's sem_open) live in /dev/shm
grep -q " /dev/shm " /proc/mounts || { mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm; }
lab-cpu-churn "${LAB_TOGGLE_MS:-300}" > /tmp/cpu-churn.json &
churner=$!
start=$(uptime)
end=$(( ${start%.*} + ${LAB_DURATION:-180} ))
round=0
tab=$(printf '\t')
while :; do
	round=$((round + 1))
	while IFS="$tab" read -r name limit args; do
		now=$(uptime)
		# the first round runs whole; later ones stop when the time is up
		[ "$round" -gt 1 ] && [ "${now%.*}" -ge "$end" ] && break 2
		echo "lab-selftest: begin $name round $round uptime $now"
		# shellcheck disable=SC2086 # ARGS are words, as lab.yaml gives them
		timeout -s KILL "$limit" "/lab/selftests/kvm/$name" $args < /dev/null 2>&1
		status=$?
		reap
		echo "lab-selftest: end $name exit $status uptime $(uptime)"
	done < "$plan"
	now=$(uptime)
	[ "${now%.*}" -ge "$end" ] && break
done
kill "$churner"
wait "$churner"
echo "cpu-churn: $(cat /tmp/cpu-churn.json)" >&2
echo "{\"rounds\": $round}"
