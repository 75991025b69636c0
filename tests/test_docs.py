"""The README and docs/: the configuration page is the rendering of the schema, every relative link resolves,
and every command they quote names a rule, stage, subcommand or option that exists (scripts/check_docs.py).
The checks themselves are shown to fail on a broken page."""
import importlib.util
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check_docs = script("check_docs")
reference = script("write_config_reference")


def test_the_configuration_page_is_written_from_the_schema():
    """Fails when segsort/config.py changed and docs/configuration.md was not written again."""
    assert (REPO / "docs" / "configuration.md").read_text() == reference.render(), \
        "docs/configuration.md is stale: run python scripts/write_config_reference.py"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class Inner(Strict):
    """An inner section."""
    mode: Literal["fast", "exact"]
    """How it runs."""
    undocumented: int


class Outer(Strict):
    """The root."""
    size: Annotated[int, Field(ge=2, le=9)] = 3
    """A size."""
    parts: dict[str, Inner]
    """The parts by name."""


def test_a_field_without_a_description_stops_the_generator():
    with pytest.raises(reference.MissingDescriptions, match=r"Inner\.undocumented \(parts\.<name>\.undocumented\)"):
        reference.render(Outer)


def test_new_fields_and_sections_appear_with_their_ranges_and_choices():
    Inner.model_fields["undocumented"].description = "Now documented."
    try:
        page = reference.render(Outer)
    finally:
        Inner.model_fields["undocumented"].description = None
    assert "| `size` | `int` (≥ 2, ≤ 9) | `3` | A size. |" in page
    assert "## `parts.<name>`" in page and "An inner section." in page
    assert '| `mode` | `"fast"` \\| `"exact"` | required | How it runs. |' in page
    assert "[Inner](#partsname)" in page


def test_every_link_and_command_of_the_readme_and_docs():
    problems = check_docs.check_pages(check_docs.default_pages())
    assert not problems, "\n".join(map(str, problems))


BROKEN_PAGE = """\
# A page

## Its section

A [good link](other.md), a [good anchor](other.md#the-heading), [this page's section](#its-section),
[a folder](sub/) and [a web page](https://example.org/x.md).
A [broken link](missing.md), a [broken anchor](other.md#no-such-heading), [outside](../../elsewhere/x.md).
`[not a link](in-code.md)`

```bash
snakemake --cores 2 reports/tiny/table3.csv
snakemake --cores 2 --no-such-option
dvc repro table3
dvc repro no_such_stage
```

Run `segsort predict photos/ --model m.pt --out out/ --no-such-option`, or
`python stages/evaluate.py --set inference.knn_k=5`, `python stages/evaluate.py --no-such-option`.
"""


def test_the_check_fails_on_a_broken_link_and_a_nonexistent_option(tmp_path):
    (tmp_path / "other.md").write_text("# The heading\n")
    (tmp_path / "sub").mkdir()
    page = tmp_path / "broken.md"
    page.write_text(BROKEN_PAGE)
    links = [problem.message for problem in check_docs.check_links(page, tmp_path)]
    assert links == ["link missing.md: missing.md does not exist",
                     "link other.md#no-such-heading: other.md has no heading #no-such-heading",
                     "link ../../elsewhere/x.md: points outside the repository"]
    checker = check_docs.Checker()
    found = [(line, message) for line, words in check_docs.commands(page) for message in checker.check(words)]
    assert found == [(12, "snakemake: no option --no-such-option"),
                     (14, "dvc repro: dvc.yaml has no stage 'no_such_stage'"),
                     (17, "segsort predict: no option --no-such-option"),
                     (18, "python stages/evaluate.py: no option --no-such-option")]
