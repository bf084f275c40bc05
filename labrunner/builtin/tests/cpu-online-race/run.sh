#!/bin/sh
# cpu-online-race: the racy sibling of cpu-online-compat. Plain VM churn keeps KVM's count of VMs
# crossing 0 <-> 1 (every first VM enables virtualization on the online CPUs, every last one
# disables it) while the guest offlines and onlines CPUs and the host unplugs and plugs vCPUs. On
# 6.1, hardware_enable_all() walks cpu_online_mask without cpus_read_lock(): a CPU coming online
# during that walk can miss the enable. lab-virt-check (a VM of its own at each check, so the count
# still reaches zero between them) reports a CPU online with virtualization off.
# stdout ends with vm-churn's JSON counts; the CPU churn's and the checker's go to stderr.
set -e
lab-virt-check -s
lab-cpu-churn "${LAB_TOGGLE_MS:-300}" > /tmp/cpu-churn.json &
churner=$!
lab-virt-check -i "${LAB_CHECK_MS:-20}" -d "${LAB_DURATION:-60}" > /tmp/virt-check.json &
checker=$!
status=0
/lab/tests/vm-churn-hotplug/vm-churn -t "${LAB_THREADS:-2}" -v "${LAB_VCPUS:-1}" -d "${LAB_DURATION:-60}" || status=$?
kill "$churner" "$checker" 2>/dev/null || true
wait "$churner" || true
wait "$checker" || true
echo "cpu-churn: $(cat /tmp/cpu-churn.json)" >&2
echo "virt-check: $(cat /tmp/virt-check.json)" >&2
exit "$status"
