"""Tables of the paper with our numbers beside the paper's (references/paper_tables.yaml).

A table of params.yaml `tables` lists rows in the paper's order; each row names the model whose metrics
fill it, its label columns as shown, and `paper`: the keys that pick its row in the paper's table. For
every measured column (mIoU, f-measure) the table shows ours, the paper's and ours minus the paper's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from segsort.io import DataError

MEASURES = {"mIoU": "miou", "f-measure": "boundary_f"}  # column -> key of a metrics JSON (a fraction)


def load_paper_tables(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: the paper's tables are missing")
    return yaml.safe_load(path.read_text())


def paper_row(table: dict, name: str, match: dict) -> dict:
    """The values of the one row of the paper's `table` whose keys equal `match`."""
    found = [row for row in table["rows"] if all(row.get(key) == value for key, value in match.items())]
    if len(found) != 1:
        raise DataError(f"{name}: {len(found)} rows of the paper's table match {match} (expected exactly one)")
    return found[0]["values"]


def build_table(name: str, rows: list[dict], metrics: dict[str, dict], paper: dict) -> pd.DataFrame:
    """One table: each row's label columns and model, then per measure: ours, the paper's, the difference."""
    out = []
    for row in rows:
        if row["model"] not in metrics:
            raise DataError(f"{name}: no metrics file given for {row['model']}")
        theirs = paper_row(paper, name, row["paper"])
        line = {key: value for key, value in row.items() if key != "paper"}
        for column, key in MEASURES.items():
            ours = round(100 * metrics[row["model"]][key], 2)
            reference = theirs.get(column)
            line[column] = ours
            line[f"{column} (paper)"] = reference
            line[f"{column} Δ"] = None if reference is None else round(ours - reference, 2)
        out.append(line)
    return pd.DataFrame(out)


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of `table`: numbers with two decimals, as the paper prints them; missing values blank."""
    cells = table.astype(object).map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)
    cells = cells.where(table.notna(), "")
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, values)) + " |" for values in cells.itertuples(index=False)]
    return "\n".join(lines)


def tables_markdown(tables: dict[str, pd.DataFrame], paper: dict, dataset: str) -> str:
    """reports/tables.md: every table with the paper's caption, ours measured on `dataset`."""
    parts = [f"# Tables of the paper, reproduced on `{dataset}`\n",
             "Ours beside the paper's values (references/paper_tables.yaml) and ours minus the paper's (Δ). "
             f"The paper measured on {', '.join(sorted({t['dataset'] for t in paper.values() if t.get('dataset')}))}; "
             "on another dataset the differences say how far apart the settings are, not how well we reproduce.\n"]
    for name, table in tables.items():
        caption = paper[name]["caption"]
        parts.append(f"## {name.replace('table', 'Table ')}\n\n{caption}\n\n{markdown_table(table)}\n")
    return "\n".join(parts)
