"""Parse one config file's text: safe YAML only, bounded in size, aliases and depth, with line and column kept.

The YAML node tree is kept beside the data so that a problem found later (by validation or policy) can name the
line of the key it is about (`node_at`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot import messages
from bot.config.problems import BUILT_IN_DEFAULTS, ConfigProblem, format_path, kind

MAX_CONFIG_BYTES: Final = 64 * 1024
MAX_ALIASES: Final = 100
MAX_EXPANDED_NODES: Final = 100_000
MAX_NESTING: Final = 64


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed file, independent of where it came from (so it can be cached by blob sha)."""

    data: dict[Hashable, Any]
    node: Node | None


@dataclass(frozen=True, slots=True)
class Layer:
    """One file of a config's chain: its name as problems tell it, its blob sha ("" offline), data and node tree."""

    name: str
    sha: str
    data: dict[Hashable, Any]
    node: Node | None


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """Why a file's text is not a config, without its file name: cached by blob sha, named when reported."""

    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    general: str = messages.CONFIG_GENERAL_YAML

    def problem(self, file: str) -> ConfigProblem:
        return ConfigProblem(file, self.path, self.message, self.line, self.column, general=self.general)


class ParseError(Exception):
    """`parse_yaml`'s only exception (the loader turns it into a `ConfigError` naming the file)."""

    def __init__(self, failure: ParseFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _SafeBoundedLoader(_BaseLoader):
    """A safe loader (libyaml's when available) that refuses duplicate keys; `check_expansion` bounds aliases."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _value in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key `{key_node.value}`", key_node.start_mark
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep)


def check_expansion(root: Node) -> None:
    """Bound the size and depth of the document once aliases are expanded, and refuse recursive aliases."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) → (expanded nodes, height)
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    references = 0
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            references += len(children)
            # Every reference beyond one per distinct node is an alias (`*name`).
            if references - len(sizes) > MAX_ALIASES:
                raise ParseError(ParseFailure(f"more than {MAX_ALIASES} aliases (*name); write the values out"))
            active.discard(key)
            total, height = 1, 1
            for child in children:
                child_total, child_height = sizes[id(child)]
                total += child_total
                height = max(height, child_height + 1)
            if total > MAX_EXPANDED_NODES:
                raise ParseError(
                    ParseFailure(f"the document expands to more than {MAX_EXPANDED_NODES} values (alias bomb?)")
                )
            if height > MAX_NESTING:
                raise ParseError(ParseFailure(f"values are nested more than {MAX_NESTING} levels deep"))
            sizes[key] = (total, height)
            continue
        if key in sizes:
            continue
        if key in active:
            raise ParseError(ParseFailure("an alias refers to a value that contains it (recursive alias)"))
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str) -> Parsed:
    """Parse one config file's text into a mapping (raising `ParseError` with line and column when it is not)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ParseError(
            ParseFailure(f"the file is {size:,} bytes; Kickoff reads config files of at most {MAX_CONFIG_BYTES:,}",
                          general=messages.CONFIG_GENERAL_TOO_LARGE)
        )
    loader: _SafeBoundedLoader | None = None
    try:
        loader = _SafeBoundedLoader(text)
        node = loader.get_single_node()
        if node is not None:
            check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
    except ParseError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise ParseError(ParseFailure(f"invalid YAML: {problem}", line=line, column=column)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char[0]) if char else 0
        failure = ParseFailure(
            f"invalid YAML: the control character U+{code:04X} is not allowed", line=line, column=column
        )
        raise ParseError(failure) from None
    except yaml.YAMLError as exc:
        raise ParseError(ParseFailure(f"invalid YAML: {exc}")) from None
    except RecursionError:
        raise ParseError(ParseFailure("values are nested too deeply")) from None
    except Exception as exc:
        # PyYAML's constructors raise plain ValueError and friends on values like `2001-13-45`; untrusted text must
        # not turn into anything but a problem report.
        raise ParseError(ParseFailure(f"invalid YAML value: {exc}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return Parsed({}, node)
    if not isinstance(data, dict):
        message = f"the top level must be a mapping of keys such as `agents:` or `limits:`, not {kind(data)}"
        raise ParseError(ParseFailure(message, line=1, column=1, general=message))
    return Parsed(data, node)


def node_at(node: Node | None, loc: Sequence[str | int]) -> tuple[int, Node | None]:
    """How many parts of `loc` exist in the YAML tree, and the node of the deepest one (its key, for mappings)."""
    depth = 0
    found: Node | None = None
    for part in loc:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                    depth, found, node = depth + 1, key_node, value_node
                    break
            else:
                return depth, found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            depth, found = depth + 1, node
        else:
            return depth, found
    return depth, found


def problem_at_layers(
    layers: Sequence[Layer], loc: Sequence[str | int], message: str, general: str = ""
) -> ConfigProblem:
    """Attribute a problem to the file that supplied the value at `loc` (the most specific file that has it)."""
    best: tuple[int, Layer | None] = (-1, None)
    for layer in reversed(layers):
        depth = node_at(layer.node, loc)[0]
        if depth > best[0]:
            best = (depth, layer)
    chosen = best[1]
    if chosen is None:
        return ConfigProblem(BUILT_IN_DEFAULTS, format_path(loc), message, general=general, loc=tuple(loc))
    return problem_at(chosen, loc, message, general)


def problem_at(layer: Layer, loc: Sequence[str | int], message: str, general: str = "") -> ConfigProblem:
    """A problem in `layer`, at the line and column of the deepest part of `loc` that the file has."""
    node = node_at(layer.node, loc)[1]
    line = column = None
    if node is not None and node.start_mark is not None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
    return ConfigProblem(layer.name, format_path(loc), message, line, column, general=general, loc=tuple(loc))
