"""Read a policy file (YAML, or TOML with the same tree) and remember where each field is.

YAML is composed into nodes first (``yaml.compose``), so every field path gets the line of its
key; TOML (``tomllib``, which keeps no positions) gets its lines from a small scan of table
headers and ``key =`` assignments. Either way, validation errors name the field and the line.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from regsweep.retention.schema import Issue, LineMap, PolicyError, PolicyFile, parse_policy

MAX_POLICY_BYTES = 4 * 1024 * 1024


def load_policy(path: str | Path) -> PolicyFile:
    """Read and validate the policy at ``path`` (``.toml`` is TOML, anything else YAML, which
    also covers JSON). Raises PolicyError (exit 2) naming the field and line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise PolicyError(
            str(p), [Issue("", None, f"cannot read the policy file: {e.strerror}")]
        ) from e
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(str(p), [Issue("", None, "policy file is larger than 4 MiB")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(str(p), [Issue("", None, f"not UTF-8 text ({e})")]) from e
    fmt = "toml" if p.suffix.lower() == ".toml" else "yaml"
    pf = loads_policy(text, fmt=fmt, source=str(p))
    # in_use_files are relative to the policy file, as an operator keeps them side by side.
    files = tuple(str(p.parent / f) for f in pf.protect.in_use_files)
    return replace(pf, protect=replace(pf.protect, in_use_files=files))


def loads_policy(text: str, *, fmt: str = "yaml", source: str = "<policy>") -> PolicyFile:
    tree, lines = read_tree(text, fmt=fmt, source=source)
    return parse_policy(tree, lines, source)


def read_tree(text: str, *, fmt: str = "yaml", source: str = "<policy>") -> tuple[Any, LineMap]:
    """The decoded tree and its field-path -> line map; syntax errors raise PolicyError."""
    if fmt == "toml":
        try:
            tree = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"line (\d+)", str(e))
            raise PolicyError(
                source, [Issue("", int(m.group(1)) if m else None, f"TOML syntax error: {e}")]
            ) from e
        return tree, LineMap(toml_lines(text))
    if fmt == "json":
        try:
            return json.loads(text), LineMap()
        except json.JSONDecodeError as e:
            raise PolicyError(source, [Issue("", e.lineno, f"JSON syntax error: {e.msg}")]) from e
    return _yaml_tree(text, source)


# -- YAML ----------------------------------------------------------------------------------------


def _yaml_tree(text: str, source: str) -> tuple[Any, LineMap]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, LineMap()
        lines: dict[str, int] = {}
        issues: list[Issue] = []
        tree = _build(loader, node, "", lines, issues)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(x for x in (e.context, e.problem) if x)
        raise PolicyError(source, [Issue("", line, f"YAML syntax error: {msg}")]) from e
    except yaml.YAMLError as e:
        raise PolicyError(source, [Issue("", None, f"YAML error: {e}")]) from e
    finally:
        loader.dispose()
    if issues:
        raise PolicyError(source, issues)
    return tree, LineMap(lines)


def _build(
    loader: yaml.SafeLoader, node: yaml.Node, path: str, lines: dict[str, int], issues: list[Issue]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # merge keys (<<)
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, str):
                key = str(key)
            sub = f"{path}.{key}" if path else key
            if key in out:
                issues.append(Issue(sub, knode.start_mark.line + 1, f"duplicate key {key!r}"))
            lines[sub] = knode.start_mark.line + 1
            out[key] = _build(loader, vnode, sub, lines, issues)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, f"{path}[{i}]", lines, issues) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


# -- TOML ----------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(?:#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")


def _toml_key(text: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', text)
    return [a or b or c for a, b, c in parts]


def toml_lines(text: str) -> dict[str, int]:
    """Best-effort field path -> line for a TOML document: table headers (``[a.b]``, array
    tables ``[[policies.rules]]`` counted per parent) and ``key = value`` lines, dotted keys
    included. Values spanning lines map to their first line."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    current = ""
    depth = 0  # inside a multi-line array or inline table: skip
    in_string = False
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_string:
            if '"""' in line or "'''" in line:
                in_string = False
            continue
        if depth > 0:
            depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
            continue
        h = _HEADER.match(line)
        if h and not _ASSIGN.match(line):
            keys = _toml_key(h.group(2))
            array = h.group(1) == "[["
            path = ""
            for i, k in enumerate(keys):
                path = f"{path}.{k}" if path else k
                if path in counters and not (array and i == len(keys) - 1):
                    path = f"{path}[{counters[path]}]"
            if array:
                base = path
                # enclosing array tables are already indexed in ``path``; count this one
                counters[base] = counters.get(base, -1) + 1
                path = f"{base}[{counters[base]}]"
                # forget counters of nested arrays of a previous element
                for k in [k for k in counters if k.startswith(path + ".")]:
                    del counters[k]
            lines.setdefault(path, no)
            current = path
            continue
        a = _ASSIGN.match(line)
        if a:
            keys = _toml_key(a.group(1))
            path = current
            for k in keys:
                path = f"{path}.{k}" if path else k
                lines.setdefault(path, no)
            rest = line[a.end() :]
            if (
                rest.strip().startswith(('"""', "'''"))
                and rest.count('"""') + rest.count("'''") == 1
            ):
                in_string = True
            depth = rest.count("[") + rest.count("{") - rest.count("]") - rest.count("}")
            depth = max(depth, 0)
    return lines
