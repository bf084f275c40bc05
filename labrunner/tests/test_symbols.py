"""Symbolisation: the pure parsers, then nm and addr2line for real on a small program built with -g."""
import shutil
import subprocess

import pytest

from labrunner.analysis import symbols

NM = """\
ffffffff81000000 0000000000000040 T kvm_dev_ioctl
ffffffff81000100 0000000000000010 t helper
ffffffff81000200 0000000000000020 t helper
ffffffff81000300 D some_data
ffffffff81000400 0000000000000008 d table
"""


def test_nm_keeps_text_symbols_with_sizes():
    table = symbols.parse_nm(NM)
    assert table == {"kvm_dev_ioctl": [(0xffffffff81000000, 0x40)],
                     "helper": [(0xffffffff81000100, 0x10), (0xffffffff81000200, 0x20)]}


def test_frame_address_uses_the_printed_size_to_pick_a_static_function():
    table = symbols.parse_nm(NM)
    assert symbols.frame_address(" helper+0x4/0x20", table, top=True) == 0xffffffff81000204
    # below the top a frame is a return address: the call is one byte before it
    assert symbols.frame_address(" kvm_dev_ioctl+0x10/0x40", table, top=False) == 0xffffffff8100000f
    # the kernel prints the size padded up to the next symbol
    assert symbols.frame_address(" kvm_dev_ioctl+0x10/0x50", table, top=True) == 0xffffffff81000010
    assert symbols.frame_address(" helper+0x4/0x80", table, top=True) is None  # no such size: unsure
    assert symbols.frame_address(" helper+0x4/0x30", table, top=True) is None  # either could be padded to it
    assert symbols.frame_address(" missing+0x4/0x30", table, top=True) is None
    assert symbols.frame_address(" ? no frame here", table, top=True) is None


def test_addr2line_output_groups_inlined_callers_and_drops_the_cache_prefix():
    out = ("kvm_dev_ioctl at /root/.cache/labrunner/build/linux-x-1a2b/src/arch/x86/kvm/../../../virt/kvm/kvm_main.c:5123\n"
           "__mutex_lock_common at /root/.cache/labrunner/build/linux-x-1a2b/src/kernel/locking/mutex.c:608\n"
           " (inlined by) __mutex_lock at /root/.cache/labrunner/build/linux-x-1a2b/src/kernel/locking/mutex.c:752"
           " (discriminator 2)\n"
           "?? ??:0\n")
    assert symbols.parse_addr2line(out) == [["virt/kvm/kvm_main.c:5123"],
                                            ["kernel/locking/mutex.c:608", "kernel/locking/mutex.c:752"],
                                            ["??"]]


def test_argv_are_plain_lists():
    assert symbols.nm_argv("/k/vmlinux") == ["nm", "-S", "--defined-only", "/k/vmlinux"]
    assert symbols.addr2line_argv("/k/vmlinux") == ["addr2line", "-e", "/k/vmlinux", "-f", "-i", "-p"]


PROGRAM = """\
int sink;

__attribute__((noinline)) int guilty(int x)
{
    sink += x;
    return sink * 3;
}

int main(void)
{
    return guilty(4);
}
"""


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_symbolize_for_real_on_a_program_with_line_tables(tmp_path):
    src, exe = tmp_path / "prog.c", tmp_path / "prog"
    src.write_text(PROGRAM)
    subprocess.run(["gcc", "-g", "-O1", "-o", str(exe), str(src)], check=True)
    table = symbols.parse_nm(subprocess.run(symbols.nm_argv(exe), capture_output=True, text=True).stdout)
    (addr, size), = table["guilty"]
    reports = [{"frames": [{"function": "guilty", "raw": f" guilty+0x4/{size:#x}"},
                           {"function": "nothing", "raw": " nothing+0x4/0x10"}]}]
    assert symbols.symbolize(reports, exe) == 1
    frame = reports[0]["frames"][0]
    assert frame["source"].startswith(f"{src}:") and 3 <= int(frame["source"].rsplit(":", 1)[1]) <= 7
    assert "source" not in reports[0]["frames"][1]
