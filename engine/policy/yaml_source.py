"""Reads a policy directory's YAML files into one document, remembering where every key came from.

Duplicate keys (inside a file or across files) are errors, not silently overwritten values; every
problem is reported with its file and line so a policy author can fix it before review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import PolicyProblem

PathPart = str | int
POLICY_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass
class PolicySource:
    """The merged document plus the node tree of each top-level key, for error locations."""

    directory: Path
    document: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    _owners: dict[str, tuple[str, yaml.Node]] = field(default_factory=dict)

    def file_of(self, path: Sequence[PathPart]) -> str:
        if path and isinstance(path[0], str) and path[0] in self._owners:
            return self._owners[path[0]][0]
        return next(iter(self.files), str(self.directory))

    def locate(self, path: Sequence[PathPart]) -> str:
        """``line N (a.b[2].c)`` for a path in the merged document, as precisely as known."""
        dotted = dotted_path(path)
        if not path or not isinstance(path[0], str) or path[0] not in self._owners:
            return dotted
        node: yaml.Node = self._owners[path[0]][1]
        for part in path[1:]:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return f"{node.start_mark.line + 1} ({dotted})"

    def problem(self, path: Sequence[PathPart], message: str) -> PolicyProblem:
        return PolicyProblem(file=self.file_of(path), location=self.locate(path), message=message)


def dotted_path(path: Sequence[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _child(node: yaml.Node, part: PathPart) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                child: yaml.Node = value
                return child
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item
    return None


# libyaml's parser when PyYAML was built with it (the wheels are): a reload parses the policy
# 10x faster and holds the GIL for that much less. The constructor stays PyYAML's safe one.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return dict(loader.construct_pairs(node, deep=True))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data built from that same tree: one parse."""
    loader = _StrictLoader(text)
    try:
        tree = loader.get_single_node()
        return tree, (loader.construct_document(tree) if tree is not None else None)
    finally:
        loader.dispose()


def read_policy_dir(directory: Path) -> tuple[PolicySource, list[PolicyProblem]]:
    """Merge every YAML file of a policy directory by top-level key."""
    source = PolicySource(directory=directory)
    problems: list[PolicyProblem] = []
    files = sorted(p for p in directory.iterdir() if p.suffix in POLICY_FILE_SUFFIXES)
    if not files:
        problems.append(PolicyProblem(str(directory), "", "no .yaml files in policy directory"))
    for file in files:
        name = str(file)
        raw = file.read_bytes()
        source.files[name] = raw
        try:
            tree, data = _parse(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(PolicyProblem(name, "", f"not UTF-8 text: {exc}"))
            continue
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f"{mark.line + 1}" if mark else ""
            problems.append(PolicyProblem(name, line, f"invalid YAML: {exc.problem or exc}"))
            continue
        except yaml.YAMLError as exc:
            problems.append(PolicyProblem(name, "", f"invalid YAML: {exc}"))
            continue
        if data is None:  # an empty file contributes nothing
            continue
        if not isinstance(data, dict) or not isinstance(tree, yaml.MappingNode):
            problems.append(PolicyProblem(name, "1", "top level must be a mapping of keys"))
            continue
        for key_node, value_node in tree.value:
            key = str(key_node.value)
            if key in source._owners:
                other = source._owners[key][0]
                problems.append(
                    PolicyProblem(
                        name,
                        f"{key_node.start_mark.line + 1} ({key})",
                        f"key {key!r} is already defined in {other}; keep it in one file",
                    )
                )
                continue
            source._owners[key] = (name, value_node)
            source.document[key] = data[key]
    return source, problems
