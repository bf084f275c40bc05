"""splats: kernel bug reports ("splats") in console output, titled the way syzbot titles them.

Pure: it imports nothing of the lab. Its modules, from the bottom up:
- text: a console line cleaned to the kernel's own text, and the patterns rules read lines with;
- demangle: Rust v0 and C++ names;
- frames: which frame is guilty (the skip list, canonical names, stall anchors);
- stacks: a finished report's stacks, and the guilty frame by a format's sources;
- rules: title rules that belong to some formats, named in their rows;
- formats: the table of report kinds, the one place to read what each does;
- report: a report, its crash type and signature;
- parser: the line-fed state machine that finds reports and assembles them.
"""

from .formats import ANY_HEADER, FORMATS, LOCKDEP_FORMATS, LOCKDEP_OFF_FORMATS, Format
from .frames import frame_name, good_frame
from .parser import MAX_LINES, Parser, parse_file, parse_lines
from .report import Report, normalize_title, signature, title_type
from .text import clean

__all__ = ["ANY_HEADER", "FORMATS", "LOCKDEP_FORMATS", "LOCKDEP_OFF_FORMATS", "Format", "MAX_LINES", "Parser",
           "Report", "clean", "frame_name", "good_frame", "normalize_title", "parse_file", "parse_lines",
           "signature", "title_type"]
