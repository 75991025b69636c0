"""Write docs/configuration.md, the reference of every params.yaml key, from its schema (segsort/config.py).

    python scripts/write_config_reference.py           # after editing segsort/config.py: rewrites the page
    python scripts/write_config_reference.py --check   # exit 1 if the page is stale (the test suite runs it)

The schema is the one source: each key's type, range and choices come from the pydantic models (their
annotations and Field constraints), its meaning from the field's description (the string under the field,
pydantic's use_attribute_docstrings) and each section's introduction from its class docstring. The models
are walked generically, so a new field or section appears by itself; a field without a description stops
the script (and the test), naming it, so that the page never has a gap.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from segsort.config import Params  # noqa: E402

PAGE = REPO / "docs" / "configuration.md"
HEADER = """\
<!-- Written by scripts/write_config_reference.py from segsort/config.py: do not edit by hand. After a change to
the schema, run `python scripts/write_config_reference.py`; the test suite fails while this page is stale. -->

# Configuration reference: every key of params.yaml

`params.yaml` configures every stage; its schema is `segsort/config.py` (pydantic models), and this page is
written from that schema. A stage or the DAG checks the file before it starts: an unknown or misspelt key, a
wrong type or a value out of the range given here fails at once, one line per problem naming the dotted key
(how to run stages, override a key for one run, and what a change reruns: [running.md](running.md)).

Paths with `<name>` stand for a key of your choosing (a run's, a network's, a dataset's); `[]` marks the
items of a list. Types are strict: `steps: "160"` is a string, not an integer. "required" means the key must
be present. The values the pipeline uses are those of `params.yaml` itself.
"""


class MissingDescriptions(ValueError):
    """Fields of the schema without a description: the page would have a gap."""


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def markdown_text(text: str) -> str:
    """A description on one line, with `<name>` outside code spans kept as text (not an HTML tag) and `|`
    escaped for a table cell."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(part if part.startswith("`") else part.replace("<", "&lt;") for part in parts).replace("|", "\\|")


def is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def constraints(metadata) -> str:
    """`> 0`, `≥ 0, ≤ 255`, `2 items`, `matches ...` from annotated-types / pydantic constraint objects."""
    found = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
        if isinstance(item, FieldInfo):  # an inner Annotated[..., Field(...)]: its own constraints
            inner = constraints(item.metadata)
            if inner:
                return inner
    parts = [f"{symbol} {found[name]}" for name, symbol in
             (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")) if name in found]
    low, high = found.get("min_length"), found.get("max_length")
    def items(n):
        return f"{n} item{'s' if n != 1 else ''}"
    if low is not None and low == high:
        parts.append(items(low))
    else:
        parts += [f"at least {items(low)}"] if low is not None else []
        parts += [f"at most {items(high)}"] if high is not None else []
    if "pattern" in found:
        parts.append(f"matches `{found['pattern']}`")
    return ", ".join(parts)


class Walker:
    """The sections of the reference: each model class once, with the dotted paths where it appears."""

    def __init__(self, root: type[BaseModel]):
        self.paths: dict[type[BaseModel], list[str]] = {}
        self.order: list[type[BaseModel]] = []
        self.missing: list[str] = []
        self.visit(root, "")

    def visit(self, model: type[BaseModel], path: str) -> None:
        if model in self.paths:
            self.paths[model].append(path)
            return
        self.paths[model] = [path]
        self.order.append(model)
        for name, info in model.model_fields.items():
            key = f"{path}.{name}" if path else name
            if not (info.description or "").strip():
                self.missing.append(f"{model.__name__}.{name} ({key})")
            for suffix, nested in self.nested(info.annotation):
                self.visit(nested, key + suffix)

    def nested(self, tp, suffix: str = "") -> list[tuple[str, type[BaseModel]]]:
        """The models inside a type, with the path suffix that reaches them."""
        if is_model(tp):
            return [(suffix, tp)]
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.nested(args[0], suffix)
        if origin is list:
            return self.nested(args[0], suffix + "[]")
        if origin is dict:
            return self.nested(args[1], suffix + ".<name>")
        return [found for arg in args for found in self.nested(arg, suffix)]

    def heading(self, model: type[BaseModel]) -> str:
        paths = self.paths[model]
        return "Top-level keys" if paths == [""] else ", ".join(f"`{path}`" for path in paths)

    def type_text(self, tp, metadata=()) -> str:
        """A type as a reader writes it in YAML, with its range: `int > 0`, `list[str]`, `"a" | "b"`."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.type_text(args[0], [*metadata, *args[1:]])
        limits = constraints(metadata)
        if is_model(tp):
            text = f"[{tp.__name__}](#{anchor(self.heading(tp))})"
        elif origin is typing.Literal:
            text = " \\| ".join(f"`{value}`" if not isinstance(value, str) else f'`"{value}"`' for value in args)
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in args if arg is not type(None)]
            text = " or ".join(self.type_text(arg) for arg in options)
            if len(options) < len(args):
                text += " or `null`"
        elif origin is list:
            inner = self.type_text(args[0])
            text = f"list of {'(' + inner + ')' if ' (' in inner and 'list' in inner else inner}"
        elif origin is dict:
            text = f"mapping of name → {self.type_text(args[1])}"
        elif tp is typing.Any:
            text = "any"
        else:
            text = f"`{getattr(tp, '__name__', str(tp))}`"
        return f"{text} ({limits})" if limits else text

    def section(self, model: type[BaseModel]) -> str:
        doc = inspect.cleandoc(model.__doc__ or "")
        lines = [f"## {self.heading(model)}", ""]
        if doc:
            lines += [markdown_text(doc).replace("\\|", "|"), ""]
        if model.model_config.get("extra") == "allow":
            lines += ["Other keys are allowed, and shown as they are.", ""]
        lines += ["| key | type and range | default | meaning |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            default = "required" if info.default is PydanticUndefined and info.default_factory is None else \
                f"`{'null' if info.default is None else info.default}`"
            meaning = markdown_text(info.description or "")
            lines.append(f"| `{name}` | {self.type_text(info.annotation, info.metadata)} | {default} | {meaning} |")
        return "\n".join(lines) + "\n"


def render(root: type[BaseModel] = Params) -> str:
    """The page for the schema `root`; MissingDescriptions if a field has none."""
    walker = Walker(root)
    if walker.missing:
        raise MissingDescriptions("fields without a description (add the string under each field in "
                                  "segsort/config.py): " + ", ".join(walker.missing))
    contents = "\n".join(f"- [{walker.heading(model)}](#{anchor(walker.heading(model))})" for model in walker.order)
    return "\n".join([HEADER, "## Sections", "", contents, "", *map(walker.section, walker.order)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only say whether the page is up to date (exit 1 if not)")
    args = p.parse_args()
    try:
        fresh = render()
    except MissingDescriptions as err:
        sys.exit(f"error: {err}")
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != fresh:
            sys.exit(f"{PAGE.relative_to(REPO)} is stale: run python scripts/write_config_reference.py")
        print(f"{PAGE.relative_to(REPO)} is up to date")
        return
    tmp = PAGE.with_suffix(".md.tmp")
    tmp.write_text(fresh)
    tmp.replace(PAGE)
    print(f"wrote {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
