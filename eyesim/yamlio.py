"""Reading the YAML files users write (hardware, pinned mappings, sweep specs): one-line errors, no duplicate keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from eyesim.errors import located

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (plain PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if key_node.value in seen:
                    msg = f"duplicate key {key_node.value!r}"
                    raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The file's text; ``what`` names the kind of file in messages (e.g. "hardware file")."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise located(source, f"{what} not found") from err
    except IsADirectoryError as err:
        raise located(source, f"is a directory, not a {what}") from err
    except UnicodeDecodeError as err:
        raise located(source, "not a text file (cannot be read as UTF-8)") from err
    except OSError as err:
        raise located(source, f"cannot read {what}: {err.strerror or err}") from err


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as Python data (safe loading, duplicate keys refused)."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ", ".join(part for part in (err.context, err.problem) if part)
        raise located(source, f"not valid YAML{where}: {what}") from err
    except yaml.YAMLError as err:
        raise located(source, f"not valid YAML: {err}") from err


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    return parse_yaml(read_text(path, what), str(path))
