"""Tables of the paper with our numbers beside the paper's (references/paper_tables.yaml).

A table of params.yaml `tables` lists rows in the paper's order; each row names the model whose metrics
fill it, its label columns as shown, and `paper`: the keys that pick its row in the paper's table. Every
column shows ours and, where the paper has the same column, the paper's value and ours minus the paper's:
summary tables (mIoU, f-measure) always; per-class tables in their mean column, and per class when the
dataset's class names are the paper's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from segsort.io import DataError

SUMMARY = {"mIoU": "miou", "f-measure": "boundary_f"}  # summary columns -> keys of a metrics JSON (fractions)
BOUNDARY = {"precision": "precision", "recall": "recall", "f-measure": "f_measure"}  # a row's `metric`


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


def percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def our_values(metrics: dict, columns: list[str], class_names: tuple[str, ...], metric: str | None) -> dict:
    """Our value of each column of a table, in %.

    Summary tables (mIoU, f-measure) take the means. Per-class tables take per-class IoU, or per-class
    boundary precision/recall/F when the row names a `metric`, for our dataset's classes but the
    background (the paper prints no background column), and the mean over all classes in the paper's last
    column (`mean` or `mIoU`), as the paper averages.
    """
    if columns == list(SUMMARY):
        return {column: percent(metrics[key]) for column, key in SUMMARY.items()}
    shown = [name for name in class_names if name != "background"]
    if metric is None:
        values = {name: percent(metrics["per_class_iou"][name]) for name in shown}
        return {**values, columns[-1]: percent(metrics["miou"])}
    per_class = metrics["per_class_boundary"]
    values = {name: percent(per_class[name] and per_class[name][BOUNDARY[metric]]) for name in shown}
    mean_key = "boundary_f" if metric == "f-measure" else f"boundary_{metric}"
    return {**values, columns[-1]: percent(metrics[mean_key])}


def build_table(name: str, rows: list[dict], metrics: dict[str, dict], paper: dict, dataset: str,
                class_names: tuple[str, ...]) -> pd.DataFrame:
    """One table: each row's label columns and model, then per column ours and, where the paper has the same
    column, its value and ours minus it. Class columns are compared only on the paper's own dataset (a class
    of another dataset may share a name, as the tiny set's cat does with VOC's)."""
    compared = set(paper["columns"]) if dataset == paper.get("dataset") else {paper["columns"][-1]} | set(SUMMARY)
    out = []
    for row in rows:
        if row["model"] not in metrics:
            raise DataError(f"{name}: no metrics file given for {row['model']}")
        theirs = paper_row(paper, name, row["paper"])
        line = {key: value for key, value in row.items() if key != "paper"}
        for column, ours in our_values(metrics[row["model"]], paper["columns"], class_names,
                                       row.get("metric")).items():
            line[column] = ours
            if column in compared and column in paper["columns"]:
                reference = theirs[column]
                line[f"{column} (paper)"] = reference
                line[f"{column} Δ"] = None if reference is None or ours is None else round(ours - reference, 2)
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
