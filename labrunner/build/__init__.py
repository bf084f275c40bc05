"""build: the artifacts a guest boots, made from lab.yaml's entries and cached by content.

- kernel: any kernel entry to a bootable image (a path, a Debian package, or a source recipe);
- debian: Debian packages through apt (prebuilt linux-image, linux-source);
- kbuild: kernels built from source recipes (tree, patches, config fragments) in warm directories;
- image: the guest's initramfs (busybox, the lab's tests and agents, KVM modules, the SSH keys).

May import: config, errors, process. Never a booted machine, a run or anything above.
"""
