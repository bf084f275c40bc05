"""analysis: what the kernel said, read from text. Pure parsers with no knowledge of QEMU or runs.

- splats: kernel reports in console output, titled as syzbot titles them;
- symbols: report frames to file:line, from the kernel's vmlinux.

May import: errors, process. A run feeds it console lines live; a CLI feeds it files.
"""
