"""YAML for the human-edited tables, keeping the line of every mapping for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policies._errors import PolicyBundleError


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the (1-based) line it starts on, and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    seen: set[object] = set()
    key_lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
        key_lines[str(key)] = key_node.start_mark.line + 1
    mapping = LineDict({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = key_lines
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse `path`; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyBundleError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyBundleError(f"not valid YAML: {exc.problem}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyBundleError(f"not valid YAML: {exc}", file=path) from None


def line_of(value: object, key: str | None = None) -> int | None:
    """The line of `key` in the mapping `value` if known, else of the mapping itself."""
    if not isinstance(value, LineDict):
        return None
    return value.key_lines.get(key, value.line) if key is not None else value.line
