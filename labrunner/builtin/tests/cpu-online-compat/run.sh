#!/bin/sh
# cpu-online-compat: a CPU without the virtualization the running VMs use must not come online.
# A VM stays alive throughout (vcpus-everywhere holds one, and so does lab-virt-check -k), while the
# host unplugs vCPUs and plugs them back without SVM (lab.yaml: hotplug.cpu_props {svm: false}).
#   - fixed kernels (v6.3 on, so 6.12) refuse to online such a CPU: the plug is confirmed by the
#     refusal (expect_online: false), and the run passes;
#   - 6.1 onlines it anyway (kvm_starting_cpu() ignores the failed enable): lab-virt-check reports
#     the CPU online with EFER.SVME clear, and the next vCPU that vcpus-everywhere runs there ends
#     in kvm_spurious_fault's BUG.
# stdout ends with vcpus-everywhere's JSON counts; the checker's go to stderr.
set -e
lab-virt-check -s
lab-virt-check -k -d "${LAB_DURATION:-60}" > /tmp/virt-check.json &
checker=$!
status=0
/lab/tests/cpu-online-compat/vcpus-everywhere -p "${LAB_PERIOD_MS:-200}" -d "${LAB_DURATION:-60}" || status=$?
kill "$checker" 2>/dev/null || true
wait "$checker" || true
echo "virt-check: $(cat /tmp/virt-check.json)" >&2
exit "$status"
