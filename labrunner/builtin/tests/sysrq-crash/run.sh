#!/bin/sh
# sysrq-crash: the kernel panics on purpose (sysrq c), to prove that a kernel report on the console
# makes a run fail with its title, even when the panic ends QEMU (-no-reboot, panic=-1).
echo "sysrq-crash: crashing the kernel now"
echo c > /proc/sysrq-trigger
