#!/bin/sh
# kvm-smoke: nested KVM works: one thread makes, runs and destroys tiny VMs for LAB_DURATION s,
# with no CPU hotplug around it. The quickest check that a kernel and image are fit for the lab.
set -e
echo "kvm-smoke: $(uname -r), $(nproc) CPUs online, $(ls -l /dev/kvm)"
exec /lab/tests/vm-churn-hotplug/vm-churn -t 1 -v 1 -d "${LAB_DURATION:-10}"
