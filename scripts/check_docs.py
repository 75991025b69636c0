"""Check the README and docs/: every relative link resolves, and every command they quote names what exists.

    python scripts/check_docs.py                 # README.md and docs/*.md; exit 1, one line per problem
    python scripts/check_docs.py docs/some.md    # only these pages

Links: every relative link (files, folders, images) must resolve inside the repository, and a `#anchor` into a
Markdown page must name one of its headings (GitHub's anchors). Commands, in code blocks and code spans:
- `snakemake ...`: every option exists (Snakemake's own parser), every target is a rule or matches a rule's
  output pattern (for any dataset), every rule named by --forcerun/--until/--omit-from exists, and a
  --profile folder exists;
- `dvc ...`: the subcommand and its options exist (DVC's parser); `dvc repro` / `dvc exp run` targets are
  stages of dvc.yaml (or match one with --glob), and `-S key=value` names a key of params.yaml;
- `segsort ...`: the subcommand and its options exist (segsort.cli.parser());
- `python stages/X.py`, `python scripts/X.py`, `python benchmarks/X.py`: the script exists and takes the
  options given (its argument parser, taken from the script without running it past parsing);
- `python -m module`: the module exists; `bash scripts/X.sh`: the script exists.
The test suite runs it (tests/test_docs.py).
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import importlib.util
import io
import os
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCRIPT_DIRS = ("stages/", "scripts/", "benchmarks/")
RULE_OPTIONS = ("--forcerun", "-R", "--until", "-U", "--omit-from", "-O")


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self):
        try:
            shown = self.path.relative_to(REPO)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.message}"


def default_pages(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


# --- Markdown -----------------------------------------------------------------------------------------------

def split_markdown(text: str) -> tuple[str, list[tuple[int, str, str]]]:
    """The page's prose (code blocks blanked, offsets kept) and its code blocks as (first line, language, text)."""
    prose, blocks, block, start, language = [], [], None, 0, ""
    for number, line in enumerate(text.split("\n"), 1):
        fence = FENCE.match(line)
        if block is None and fence:
            block, start, language = [], number + 1, line.strip()[3:].strip().lower()
            prose.append("")
        elif block is not None and fence:
            blocks.append((start, language, "\n".join(block)))
            block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def code_spans(prose: str) -> list[tuple[int, str]]:
    """Inline code spans of the prose (they may wrap across lines), with their line."""
    return [(prose.count("\n", 0, match.start()) + 1, " ".join(match.group(2).split()))
            for match in re.finditer(r"(`+)(.+?)\1", prose, flags=re.S)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link's text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    prose, _ = split_markdown(path.read_text())
    seen, found = {}, set()
    for line in prose.split("\n"):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = anchor(heading.group(1))
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return frozenset(found)


def check_links(page: Path, repo: Path = REPO) -> list[Problem]:
    text = page.read_text()
    prose, _ = split_markdown(text)
    prose = re.sub(r"(`+)(.+?)\1", lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose, flags=re.S)  # no code
    problems = []
    for match in LINK.finditer(prose):
        target, line = match.group(1), prose.count("\n", 0, match.start()) + 1
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
        if not resolved.is_relative_to(repo.resolve()):
            problems.append(Problem(page, line, f"link {target}: points outside the repository"))
        elif not resolved.exists():
            problems.append(Problem(page, line, f"link {target}: {path_part} does not exist"))
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(Problem(page, line, f"link {target}: {resolved.name} has no heading #{fragment}"))
    for number, line in enumerate(text.split("\n"), 1):
        if "../shared" in line or "/work/shared" in line:
            problems.append(Problem(page, number, "points outside the repository (../shared)"))
    return problems


# --- commands -----------------------------------------------------------------------------------------------

def commands(page: Path) -> list[tuple[int, list[str]]]:
    """Every command line quoted in the page's code blocks and code spans, as (line, words)."""
    prose, blocks = split_markdown(page.read_text())
    found = []
    for start, language, block in blocks:
        if language not in ("", "bash", "sh", "shell", "console", "text"):
            continue
        offset = 0
        for line in block.replace("\\\n", " ").split("\n"):  # continuation lines joined (line counts shift)
            found += [(start + offset, words) for words in split_command(line)]
            offset += 1
    for line, span in code_spans(prose):
        found += [(line, words) for words in split_command(span)]
    return found


def split_command(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ||, ;, |), comments dropped."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        words = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    result, current = [], []
    for word in words:
        if word and set(word) <= set(";&|"):
            result.append(current)
            current = []
        else:
            current.append(word)
    result.append(current)
    return [command for command in result if command]


class ParserFound(BaseException):
    """Raised in place of a script's argument parsing, carrying its parser (BaseException: no handler of
    the script's catches it)."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


@functools.lru_cache(maxsize=None)
def script_parser(path: Path) -> argparse.ArgumentParser | None:
    """The argument parser a script builds, taken when it parses its arguments: the script runs only up to
    there. None for a script that parses no arguments (it is never run)."""
    source = path.read_text()
    if "parse_args" not in source and "parse_known_args" not in source:
        return None
    original = argparse.ArgumentParser.parse_known_args

    def found(self, *args, **kwargs):
        raise ParserFound(self)

    argparse.ArgumentParser.parse_known_args = found
    argv, cwd = sys.argv, os.getcwd()
    try:
        sys.argv = [str(path)]
        os.chdir(REPO)
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(path), run_name="__main__")
    except ParserFound as parsed:
        return parsed.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
        sys.argv = argv
        os.chdir(cwd)
    raise RuntimeError(f"{path}: ran to the end without parsing its arguments")


def walk(parser: argparse.ArgumentParser, words: list[str], name: str):
    """Options and positionals of `words` read against `parser` and its subcommands, without requiring
    anything: (problems, positionals, {option string: values}, subcommand path)."""
    problems, positionals, values = [], [], {}
    subcommands = next((action for action in parser._actions if isinstance(action, argparse._SubParsersAction)),
                       None)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            positionals += words[i + 1:]
            break
        if word.startswith("-") and len(word) > 1:
            option, has_value, value = word.partition("=")
            action = parser._option_string_actions.get(option)
            if action is None:
                problems.append(f"{name}: no option {option}")
                i += 1
                continue
            taken = [value] if has_value else []
            rest = words[i + 1:]
            if not has_value and action.nargs != 0:
                if action.nargs is None:
                    taken = rest[:1]
                elif isinstance(action.nargs, int):
                    taken = rest[:action.nargs]
                elif action.nargs == "?":
                    taken = rest[:1] if rest and not rest[0].startswith("-") else []
                else:  # *, +, ...: every word up to the next option
                    for item in rest:
                        if item.startswith("-"):
                            break
                        taken.append(item)
            values.setdefault(action.option_strings[0], []).extend(taken)
            for alias in action.option_strings:
                values[alias] = values[action.option_strings[0]]
            i += 1 + (0 if has_value else len(taken))
            continue
        if subcommands is not None:
            if word not in subcommands.choices:
                problems.append(f"{name}: no subcommand {word!r} (there are: {', '.join(subcommands.choices)})")
                return problems, positionals, values, name
            sub_problems, sub_positionals, sub_values, path = walk(subcommands.choices[word], words[i + 1:],
                                                                   f"{name} {word}")
            return problems + sub_problems, positionals + sub_positionals, {**values, **sub_values}, path
        positionals.append(word)
        i += 1
    return problems, positionals, values, name


class Checker:
    """What exists: the workflow's rules and their outputs, dvc.yaml's stages, the tools' parsers."""

    def __init__(self, repo: Path = REPO):
        self.repo = repo

    @functools.cached_property
    def params(self) -> dict:
        return yaml.safe_load((self.repo / "params.yaml").read_text())

    @functools.cached_property
    def rules(self) -> dict[str, list[str]]:
        """Each Snakemake rule's output patterns, read by Snakemake's API (nothing is planned or run)."""
        from snakemake.api import SnakemakeApi
        from snakemake.settings.types import OutputSettings, ResourceSettings

        cwd = os.getcwd()
        try:
            os.chdir(self.repo)
            with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
                workflow = api.workflow(snakefile=self.repo / "workflow" / "Snakefile",
                                        resource_settings=ResourceSettings(cores=1), workdir=self.repo)._workflow
                return {rule.name: [str(out) for out in rule.output] for rule in workflow.rules}
        finally:
            os.chdir(cwd)

    def output_regex(self, pattern: str, constrained: bool) -> re.Pattern:
        """A rule's output pattern as a regex matching the path for any dataset."""
        dataset = re.escape(str(self.params["dataset"]))
        parts, position = [], 0
        for match in re.finditer(r"\{(\w+)(?:,([^{}]*(?:\{[^{}]*\}[^{}]*)*))?\}", pattern):
            parts.append(re.escape(pattern[position:match.start()]))
            parts.append(f"(?:{match.group(2)})" if constrained and match.group(2) else ".+")
            position = match.end()
        parts.append(re.escape(pattern[position:]))
        regex = "".join(parts)
        regex = re.sub(rf"^(data|reports)/{dataset}/", r"\1/[^/]+/", regex)
        return re.compile(regex)

    def is_target(self, target: str) -> bool:
        target = target.rstrip("/")
        if target in self.rules:
            return True
        placeholder = re.search(r"<[^>]+>", target) is not None
        sample = re.sub(r"<[^>]+>", "X", target)
        return any(self.output_regex(out, constrained=not placeholder).fullmatch(sample)
                   for outs in self.rules.values() for out in outs)

    @functools.cached_property
    def snakemake_parser(self):
        from snakemake.cli import get_argument_parser
        return get_argument_parser()

    @functools.cached_property
    def dvc_parser(self):
        from dvc.cli.parser import get_main_parser
        return get_main_parser()

    @functools.cached_property
    def segsort_parser(self):
        from segsort.cli import parser
        return parser()

    @functools.cached_property
    def dvc_stages(self) -> set[str]:
        return set((yaml.safe_load((self.repo / "dvc.yaml").read_text()) or {}).get("stages", {}))

    def has_param(self, key: str) -> bool:
        node = self.params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def check(self, words: list[str]) -> list[str]:
        """Problems of one command (words after any VAR=value prefix); [] when it is not one this checks."""
        while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
            words = words[1:]
        if not words:
            return []
        program, args = words[0], words[1:]
        if program == "snakemake":
            return self.check_snakemake(args)
        if program == "dvc":
            return self.check_dvc(args)
        if program == "segsort":
            return walk(self.segsort_parser, args, "segsort")[0]
        if program in ("python", "python3") and args[:1] == ["-m"] and len(args) > 1:
            return [] if importlib.util.find_spec(args[1].split(".")[0]) and self.module_exists(args[1]) \
                else [f"python -m {args[1]}: no such module"]
        if program in ("python", "python3") and args and args[0].startswith(SCRIPT_DIRS):
            return self.check_script(args[0], args[1:])
        if program == "bash" and args and args[0].startswith("scripts/"):
            return [] if (self.repo / args[0]).is_file() else [f"bash {args[0]}: no such script"]
        return []

    @staticmethod
    def module_exists(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            return False

    def check_snakemake(self, args: list[str]) -> list[str]:
        problems, targets, values, _ = walk(self.snakemake_parser, args, "snakemake")
        rules = [rule for option in RULE_OPTIONS for rule in values.get(option, [])]
        problems += [f"snakemake: no rule {rule!r}" for rule in dict.fromkeys(rules) if rule not in self.rules]
        problems += [f"snakemake --profile {profile}: no such folder" for profile in values.get("--profile", [])
                     if not (self.repo / profile).is_dir()]
        problems += [f"snakemake: no rule makes {target!r}" for target in targets if not self.is_target(target)]
        return problems

    def check_dvc(self, args: list[str]) -> list[str]:
        problems, targets, values, command = walk(self.dvc_parser, args, "dvc")
        if command in ("dvc repro", "dvc exp run", "dvc dag"):
            glob = "--glob" in values
            for target in targets:
                stage = target.split(":")[-1]
                if target == "dvc.yaml" or stage in self.dvc_stages or (
                        glob and any(fnmatch.fnmatchcase(name, stage) for name in self.dvc_stages)):
                    continue
                problems.append(f"{command}: dvc.yaml has no stage {target!r}")
        for assignment in values.get("--set-param", []):
            key = assignment.partition("=")[0]
            if not self.has_param(key.split(":")[-1]):
                problems.append(f"{command} -S {key}: params.yaml has no key {key!r}")
        return problems

    def check_script(self, script: str, args: list[str]) -> list[str]:
        path = self.repo / script
        if not path.is_file():
            return [f"python {script}: no such script"]
        parser = script_parser(path)
        if parser is None:
            options = [word for word in args if word.startswith("-")]
            return [f"python {script}: takes no options (got {' '.join(options)})"] if options else []
        args = args[1:] if args[:1] == ["--"] else args  # the stages' parser takes a leading `--`
        return walk(parser, args, f"python {script}")[0]


def check_pages(pages: list[Path], repo: Path = REPO) -> list[Problem]:
    checker = Checker(repo)
    problems = []
    for page in pages:
        problems += check_links(page, repo)
        for line, words in commands(page):
            problems += [Problem(page, line, message) for message in checker.check(words)]
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: README.md and docs/*.md)")
    args = p.parse_args()
    pages = [page.resolve() for page in args.pages] or default_pages()
    problems = check_pages(pages)
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(f"{len(problems)} problem(s) in {len(pages)} page(s)")
    print(f"{len(pages)} pages: every link resolves and every command names what exists")


if __name__ == "__main__":
    main()
