"""Cedar policy files as statements with line numbers.

cedarpy's parse and validation errors carry no location, so the engine parses each
statement on its own and reports the file and line where the failing one starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Statement:
    file: Path
    line: int  # 1-based line of the statement's first token (its first annotation)
    text: str


def split_statements(path: Path, text: str) -> list[Statement]:
    """Split on `;` outside string literals and `//` comments (Cedar has no other kind)."""
    statements: list[Statement] = []
    start, line, start_line = 0, 1, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            i = _end_of_line(text, i)
            continue
        elif ch == '"':
            i, line = _end_of_string(text, i, line)
        elif not ch.isspace() and not start_line:
            start_line = line
        if ch == ";":
            statements.append(Statement(path, start_line, text[start : i + 1]))
            start, start_line = i + 1, 0
        i += 1
    if start_line:  # text after the last `;`: an unterminated statement
        statements.append(Statement(path, start_line, text[start:]))
    return statements


def _end_of_line(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end


def _end_of_string(text: str, i: int, line: int) -> tuple[int, int]:
    """Index of the closing quote of the string opening at `i` (or the end), and the line."""
    i += 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\":
            i += 1
        elif text[i] == "\n":
            line += 1
        i += 1
    return i, line
