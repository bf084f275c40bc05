#!/bin/sh
# vm-fork-kill: after the KVM selftest hardware_disable_test. LAB_PROCS processes hold running VMs and
# are SIGKILLed at random moments, so VMs are torn down from the exit path, while the guest toggles
# CPUs every LAB_TOGGLE_MS and the host plugs and unplugs vCPUs.
lab-cpu-churn "${LAB_TOGGLE_MS:-300}" > /tmp/cpu-churn.json &
churner=$!
/lab/tests/vm-fork-kill/vm-fork-kill -p "${LAB_PROCS:-3}" -v "${LAB_VCPUS:-1}" -d "${LAB_DURATION:-60}"
status=$?
kill "$churner"
wait "$churner"
echo "cpu-churn: $(cat /tmp/cpu-churn.json)" >&2
exit "$status"
