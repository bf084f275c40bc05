#!/bin/sh
# vm-churn-hotplug: the lab's main test. For LAB_DURATION seconds, three things at once:
#   - vm-churn: LAB_THREADS threads create, run and destroy VMs of LAB_VCPUS vCPUs;
#   - lab-cpu-churn: the guest offlines and onlines random CPUs every LAB_TOGGLE_MS;
#   - the host unplugs and re-plugs vCPUs (labrunner's hotplug controller, lab.yaml's hotplug:).
# With kvm.enable_virt_at_load=0 every first and last VM enables and disables virtualization on
# all CPUs and registers and removes KVM's CPU-hotplug callbacks, racing the CPUs coming and going.
# stdout ends with vm-churn's JSON counts; the CPU churn's counts go to stderr.
lab-cpu-churn "${LAB_TOGGLE_MS:-300}" > /tmp/cpu-churn.json &
churner=$!
/lab/tests/vm-churn-hotplug/vm-churn -t "${LAB_THREADS:-2}" -v "${LAB_VCPUS:-2}" -d "${LAB_DURATION:-120}"
status=$?
kill "$churner"
wait "$churner"
echo "cpu-churn: $(cat /tmp/cpu-churn.json)" >&2
exit "$status"
