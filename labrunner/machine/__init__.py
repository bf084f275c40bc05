"""machine: one booted guest and the host's hands on it.

- qemu: the QEMU command line (pure argv builders), the accelerator probe, the QEMU process;
- qmp: the QMP monitor, every message journalled;
- console: the serial console, timestamped into console.log, fed to listeners line by line;
- guest: commands in the guest, over SSH or the serial shell;
- session: kernel + image + QEMU + console + QMP + guest access, started and always stopped together;
- hotplug: the host's vCPU plug/unplug schedule over QMP, each action confirmed by the guest.

May import: build, config, errors, process. It knows nothing of tests, verdicts or reports.
"""
