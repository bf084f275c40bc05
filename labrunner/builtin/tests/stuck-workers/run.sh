#!/bin/sh
# stuck-workers: workers that block in the kernel while the main loop keeps printing, to prove that the
# lab judges a hang by the workload's progress counters, not by its output. Each worker waits forever in
# open() of a FIFO nobody writes; the main loop prints the same "progress" counters every 2 s, as
# vm-churn's main thread does when its churn threads are stuck.
mkfifo /tmp/stuck-workers.fifo
for i in 1 2; do
	cat /tmp/stuck-workers.fifo > /dev/null &
done
echo "progress vm_cycles=0 workers=2"
while :; do
	sleep 2
	echo "progress vm_cycles=0 workers=2"
done
