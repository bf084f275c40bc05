#!/bin/sh
# kvm-smoke scenario: nested KVM is usable, and VMs can be made, run and torn down for LAB_DURATION s.
set -e
echo "kvm-smoke: $(uname -r), $(nproc) CPUs online, /dev/kvm: $(ls -l /dev/kvm)"
exec /lab/tests/kvm-smoke/kvm-smoke "${LAB_DURATION:-10}"
