"""Mangled names a kernel stack can show, made readable the way syzbot's titles print them: Rust's v0
scheme (Rust for Linux) and the C++ of an out-of-tree test module."""

import re
from typing import Optional


class _RustV0:
    """Rust's v0 symbol mangling, the paths a kernel stack shows: crate roots, nested names, inherent and
    trait impls, back-references. Generic arguments are not handled: demangle() then returns None."""

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def demangle(self) -> Optional[str]:
        try:
            return self.path()
        except (IndexError, ValueError):
            return None

    def _base62(self) -> int:
        if self.s[self.i] == "_":
            self.i += 1
            return 0
        j = self.s.index("_", self.i)
        digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        n = 0
        for c in self.s[self.i:j]:
            n = n * 62 + digits.index(c)
        self.i = j + 1
        return n + 1

    def _disambiguator(self) -> None:
        if self.s[self.i] == "s":
            self.i += 1
            self._base62()

    def _ident(self) -> str:
        j = self.i
        while self.s[j].isdigit():
            j += 1
        n, self.i = int(self.s[self.i:j]), j
        if self.s[self.i] == "_":
            self.i += 1
        name = self.s[self.i:self.i + n]
        self.i += n
        return name

    def path(self) -> str:
        tag = self.s[self.i]
        self.i += 1
        if tag == "C":
            self._disambiguator()
            return self._ident()
        if tag == "N":
            self.i += 1  # namespace: value, type, closure... all print as ::
            parent = self.path()
            self._disambiguator()
            return f"{parent}::{self._ident()}"
        if tag in "MX":
            self._disambiguator()
            self.path()  # the impl's module: not printed
            type_ = self.path()
            return f"<{type_} as {self.path()}>" if tag == "X" else f"<{type_}>"
        if tag == "B":
            back = _RustV0(self.s)
            back.i = self._base62()
            return back.path()
        raise ValueError(tag)


def rust(symbol: str) -> Optional[str]:
    """A v0 symbol ("_R...") as a path, such as <kernel::Foo as core::ops::Drop>::drop; None if unknown."""
    return _RustV0(symbol[2:]).demangle()


def cpp(symbol: str) -> str:
    """The plain name of an Itanium-mangled symbol: _Z8fakeNameiii is fakeName."""
    cm = re.match(r"_Z(\d+)", symbol)
    return (symbol[cm.end():cm.end() + int(cm.group(1))] or symbol) if cm else symbol
