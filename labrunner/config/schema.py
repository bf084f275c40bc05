"""The machinery every lab.yaml section's schema is written in: YAML that remembers the line of each
key, a cursor (Ctx) that turns any mistake into "FILE:LINE: key.path: message", and small checkers
that compose into a declarative table of fields per section."""

import difflib
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml

from ..errors import ConfigError


class Map(dict):
    """A YAML mapping that remembers the line of each key."""

    line = 0

    def __init__(self):
        super().__init__()
        self.lines: Dict[str, int] = {}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: 10x faster, same marks
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    m = Map()
    m.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise ConfigError(loader.name, line, "", f"key {key!r} is not a string")
        if key in m:
            raise ConfigError(loader.name, line, key, f"duplicate key (first at line {m.lines[key]})")
        m[key] = loader.construct_object(value_node, deep=True)
        m.lines[key] = line
    return m


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(path, 0, "", f"cannot read: {e.strerror}") from None
    loader = None
    try:
        loader = _Loader(text)  # checks every character first
        loader.name = str(path)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(path, mark.line + 1 if mark else 0, "", f"invalid YAML: {_one_line(e.problem or e.context)}"
                          ) from None
    except yaml.reader.ReaderError as e:  # a byte YAML does not allow (a NUL, a control character)
        line = text[:e.position].count("\n") + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character  # libyaml gives its code
        raise ConfigError(path, line, "", f"invalid YAML: character {char!r} is not allowed") from None
    except yaml.YAMLError as e:
        raise ConfigError(path, 0, "", f"invalid YAML: {_one_line(str(e))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(text) -> str:
    return " ".join(str(text).split())


class Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, path: Path, keypath: str, node: Any, line: int):
        self.path, self.keypath, self.node, self.line = path, keypath, node, line

    def error(self, message: str, key: Optional[str] = None):
        line = self.line
        if key is not None and isinstance(self.node, Map):
            line = self.node.lines.get(key, line)
        keypath = f"{self.keypath}.{key}" if key and self.keypath else (key or self.keypath)
        return ConfigError(self.path, line, keypath, message)

    def item(self, i: int) -> "Ctx":
        """The I-th item of the list here, at its own line when YAML gave it one (a mapping)."""
        node = self.node[i]
        return Ctx(self.path, f"{self.keypath}[{i}]", node, getattr(node, "line", 0) or self.line)

    def child(self, key: str) -> "Ctx":
        node = self.node[key]
        line = getattr(node, "line", 0) or self.node.lines.get(key, self.line)
        return Ctx(self.path, f"{self.keypath}.{key}" if self.keypath else key, node, line)


def mapping(ctx: Ctx, fields: Dict[str, Tuple[Any, Any]]) -> Dict[str, Any]:
    """Check a mapping against FIELDS {key: (checker, default)}; a default of REQUIRED must be given."""
    if ctx.node is None:
        ctx.node = Map()
    if not isinstance(ctx.node, dict):
        raise ctx.error(f"expected a mapping, got {kind(ctx.node)}")
    for key in ctx.node:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ctx.error(f"unknown key{hint}", key)
    out = {}
    for key, (check, default) in fields.items():
        if key in ctx.node:
            out[key] = check(ctx.child(key))
        elif default is REQUIRED:
            raise ctx.error(f"missing required key '{key}'")
        else:
            out[key] = default
    return out


REQUIRED = object()


def kind(value: Any) -> str:
    return {dict: "a mapping", Map: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def string(ctx: Ctx) -> str:
    if not isinstance(ctx.node, str):
        raise ctx.error(f"expected a string, got {kind(ctx.node)}")
    return ctx.node


def integer(minimum: int = 0):
    def check(ctx: Ctx) -> int:
        if isinstance(ctx.node, bool) or not isinstance(ctx.node, int):
            raise ctx.error(f"expected an integer, got {kind(ctx.node)}")
        if ctx.node < minimum:
            raise ctx.error(f"must be at least {minimum}, got {ctx.node}")
        return ctx.node
    return check


def boolean(ctx: Ctx) -> bool:
    if not isinstance(ctx.node, bool):
        raise ctx.error(f"expected true or false, got {kind(ctx.node)}")
    return ctx.node


def regex_list(ctx: Ctx) -> Tuple[str, ...]:
    """Titles or regular expressions (matched with re.search against a report's title)."""
    patterns = str_list(ctx)
    for i, p in enumerate(patterns):
        try:
            re.compile(p)
        except re.error as e:
            raise ctx.error(f"item {i + 1} is not a valid regular expression: {e}")
    return patterns


def choice(*choices: str):
    def check(ctx: Ctx) -> str:
        value = string(ctx)
        if value not in choices:
            raise ctx.error(f"must be one of {', '.join(choices)}, got '{value}'")
        return value
    return check


def str_list(ctx: Ctx) -> Tuple[str, ...]:
    if not isinstance(ctx.node, list) or not all(isinstance(x, str) for x in ctx.node):
        raise ctx.error(f"expected a list of strings, got {kind(ctx.node)}")
    return tuple(ctx.node)


_SIZE = re.compile(r"^(\d+)\s*([MG])(?:i?B)?$", re.I)


def memory(ctx: Ctx) -> int:
    """A size in MiB: an integer, or a string such as '1G' or '512M'."""
    if isinstance(ctx.node, int) and not isinstance(ctx.node, bool):
        mib = ctx.node
    else:
        m = _SIZE.match(ctx.node) if isinstance(ctx.node, str) else None
        if not m:
            raise ctx.error(f"expected a size such as 1024, '512M' or '2G', got {ctx.node!r}")
        mib = int(m.group(1)) * (1024 if m.group(2).upper() == "G" else 1)
    if mib < 64:
        raise ctx.error(f"{mib} MiB is too small to boot a guest")
    return mib


def named(ctx: Ctx, entry):
    """A section of named entries, each checked by ENTRY(ctx, name)."""
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error("expected a mapping of named entries")
    return {name: entry(ctx.child(name), name) for name in ctx.node}


def _find(root: Path, value: str, builtin: Sequence[Path], suffix: str) -> Path:
    """VALUE relative to ROOT (the lab.yaml's folder) if it is there, else a built-in of that name
    in the BUILTIN folders (SUFFIX added when missing: fragment 'kvm' is kvm.config)."""
    value = os.path.expanduser(value)
    own = (root / value).resolve()
    if own.exists() or os.path.isabs(value):
        return own
    for folder in builtin:
        for name in (value, value + suffix) if suffix and not value.endswith(suffix) else (value,):
            if (folder / name).exists():
                return (folder / name).resolve()
    return own


def path_in(root: Path, builtin: Sequence[Path] = ()):
    def check(ctx: Ctx) -> Path:
        return _find(root, string(ctx), builtin, "")
    return check


def file_list(root: Path, builtin: Sequence[Path] = (), suffix: str = ""):
    def check(ctx: Ctx) -> Tuple[Path, ...]:
        if not isinstance(ctx.node, list):
            raise ctx.error(f"expected a list of files, got {kind(ctx.node)}")
        out = []
        for i, item in enumerate(ctx.node):
            if not isinstance(item, str):
                raise ctx.error(f"item {i + 1}: expected a file name")
            path = _find(root, item, builtin, suffix)
            if not path.is_file():
                raise ctx.error(f"item {i + 1}: {path} does not exist"
                                + (" (nor a built-in of that name)" if builtin else ""))
            out.append(path)
        return tuple(out)
    return check


def number(minimum: float):
    def check(ctx: Ctx) -> float:
        if isinstance(ctx.node, bool) or not isinstance(ctx.node, (int, float)):
            raise ctx.error(f"expected a number, got {kind(ctx.node)}")
        if ctx.node < minimum:
            raise ctx.error(f"must be at least {minimum}, got {ctx.node}")
        return float(ctx.node)
    return check

