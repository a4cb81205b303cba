"""Reading the YAML files users write (hardware, pinned mappings, sweep specs, ``--set`` values), bounded.

Every YAML input goes through ``parse_yaml``, which bounds it before and while it is parsed: the text
is at most ``MAX_BYTES``; a first walk over the parser's events refuses nesting deeper than
``MAX_DEPTH`` and more than ``MAX_NODES`` nodes *with every alias expanded* as soon as either is
reached, before any node is built. An alias shares its anchor's Python object, so a tiny file of nested
aliases ("billion laughs") is cheap to load but would cost gigabytes to walk, print or flatten later;
counting aliases at their expanded size keeps every consumer bounded. Merge keys (``<<: *base``) are
allowed. Duplicate keys are refused (plain PyYAML keeps the last).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent, StreamEndEvent
from yaml.resolver import Resolver

from eyesim.errors import located

MAX_BYTES = 1 << 20  # 1 MB: a hardware file is ~3 kB, a sweep spec or pinned mapping a few kB
MAX_NODES = 100_000  # YAML nodes (scalars, lists, mappings) with aliases expanded
MAX_DEPTH = 64  # nesting of lists and mappings; the schemas need at most 5
_MERGE_TAG = "tag:yaml.org,2002:merge"
try:  # libyaml (C: its parser does not recurse, and it is ~20x faster) when PyYAML has it
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None


class _TooBig(Exception):
    """A YAML input over one of the limits; the message says which, where and the limit."""


class _UniqueKeyConstructor(SafeConstructor):
    """A SafeConstructor that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if key_node.value in seen:
                    msg = f"duplicate key {key_node.value!r}"
                    raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


if _Parser is not None:
    class _Loader(_Parser, _UniqueKeyConstructor, Resolver):  # type: ignore[misc, valid-type]
        """libyaml's parser and composer with safe types and unique keys (as yaml.CSafeLoader)."""

        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            _UniqueKeyConstructor.__init__(self)
            Resolver.__init__(self)
else:  # pragma: no cover - PyYAML built without libyaml
    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,  # type: ignore[no-redef]
                  yaml.composer.Composer, _UniqueKeyConstructor, Resolver):
        """PyYAML's pure-Python loader with safe types and unique keys."""

        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _UniqueKeyConstructor.__init__(self)
            Resolver.__init__(self)


def _check_limits(text: str) -> None:
    """Walk the parser's events once, refusing deep nesting and alias expansion beyond the limits early.

    An alias counts as its anchor's whole subtree; an alias inside the node it refers to is refused
    (its expansion is infinite).
    """
    loader = _Loader(text)
    nodes = 0
    sizes: dict[str, int] = {}  # expanded size of each finished anchored node
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, count at its start) of each open list/mapping
    try:
        while not loader.check_event(StreamEndEvent):
            event = loader.get_event()
            if isinstance(event, CollectionStartEvent):
                open_nodes.append((event.anchor, nodes))
                if len(open_nodes) > MAX_DEPTH:
                    raise _TooBig(f"lists and mappings nested over {MAX_DEPTH} deep{_where(event)} (the limit)")
            elif isinstance(event, CollectionEndEvent):
                anchor, start = open_nodes.pop()
                if anchor is not None:
                    sizes[anchor] = nodes - start
                continue
            elif isinstance(event, AliasEvent):
                if event.anchor not in sizes and any(anchor == event.anchor for anchor, _ in open_nodes):
                    raise _TooBig(f"alias *{event.anchor}{_where(event)} refers to a node that contains it (endless)")
                nodes += sizes.get(event.anchor, 1) - 1  # an undefined alias: the loader's own error later
            elif not isinstance(event, ScalarEvent):
                continue  # stream and document events
            elif event.anchor is not None:
                sizes[event.anchor] = 1
            nodes += 1
            if nodes > MAX_NODES:
                raise _TooBig(f"more than {MAX_NODES} YAML values once aliases are expanded{_where(event)} (the limit)")
    finally:
        loader.dispose()


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The file's text, refused beyond MAX_BYTES before it is parsed; ``what`` names the kind of file."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_BYTES + 1)  # never more, whatever the file is (a device, a growing file)
            if len(data) > MAX_BYTES:
                raise located(source, f"{_size_text(file)}is over the limit of {MAX_BYTES} bytes "
                                      f"({MAX_BYTES >> 20} MB) for a {what}")
        return data.decode("utf-8")
    except FileNotFoundError as err:
        raise located(source, f"{what} not found") from err
    except IsADirectoryError as err:
        raise located(source, f"is a directory, not a {what}") from err
    except UnicodeDecodeError as err:
        raise located(source, "not a text file (cannot be read as UTF-8)") from err
    except OSError as err:
        raise located(source, f"cannot read {what}: {err.strerror or err}") from err


def _size_text(file: Any) -> str:
    """'N bytes ' for a regular file over the limit, else nothing (a device or pipe has no size)."""
    size = os.fstat(file.fileno()).st_size
    return f"{size} bytes " if size > MAX_BYTES else ""


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as Python data (safe types, duplicate keys refused, within the limits); errors name ``source``."""
    if len(text) > MAX_BYTES:
        raise located(source, f"{len(text)} characters is over the limit of {MAX_BYTES} for YAML text")
    loader = None
    try:
        _check_limits(text)
        loader = _Loader(text)
        return loader.get_single_data()
    except _TooBig as err:
        raise located(source, str(err)) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ", ".join(part for part in (err.context, err.problem) if part)
        raise located(source, f"not valid YAML{where}: {what}") from err
    except yaml.YAMLError as err:
        raise located(source, f"not valid YAML: {err}") from err
    except (ValueError, TypeError, OverflowError) as err:  # a scalar PyYAML cannot build: 2023-02-30, 5000 digits
        raise located(source, f"not valid YAML: a value cannot be read ({str(err)[:120]})") from None
    except RecursionError:  # the depth limit should make this unreachable; never a traceback
        raise located(source, f"YAML nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """The YAML file at ``path`` as Python data, bounded (see the module docstring)."""
    return parse_yaml(read_text(path, what), str(path))
