"""A small TOML writer for the configuration files the campaign generates.

It covers what medbot's configuration uses: tables, arrays of tables, strings,
integers, booleans and arrays of those. Strings are written as basic strings with
JSON escapes, which TOML shares for the characters that need escaping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Value = str | int | float | bool | Sequence["Value"] | Mapping[str, "Value"]


def dumps(document: Mapping[str, Any]) -> str:
    """Return ``document`` as TOML text."""
    lines: list[str] = []
    _write_table(document, (), lines)
    return "\n".join(lines) + "\n"


def _is_table(value: Value) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Value) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(item, Mapping) for item in value)
    )


def _write_table(table: Mapping[str, Value], path: tuple[str, ...], lines: list[str]) -> None:
    nested = []
    for key, value in table.items():
        if _is_table(value) or _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in nested:
        child = (*path, key)
        header = ".".join(_key(part) for part in child)
        if isinstance(value, Mapping):
            lines.extend(["", f"[{header}]"])
            _write_table(value, child, lines)
            continue
        assert isinstance(value, Sequence)
        for item in value:
            assert isinstance(item, Mapping)
            lines.extend(["", f"[[{header}]]"])
            _write_table(item, child, lines)


def _key(key: str) -> str:
    if key and all(char.isascii() and (char.isalnum() or char in "-_") for char in key):
        return key
    return json.dumps(key, ensure_ascii=False)


def _scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(key)} = {_scalar(item)}" for key, item in value.items())
        return "{ " + inner + " }"
    return "[" + ", ".join(_scalar(item) for item in value) + "]"
