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


def seed_statistics(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (%) of each summary column over the runs of one model with
    different seeds (the std is left blank for a single run)."""
    out = {"seeds": len(runs)}
    for column, key in SUMMARY.items():
        values = pd.Series([100 * run[key] for run in runs])
        out[column] = round(float(values.mean()), 2)
        out[f"{column} std"] = round(float(values.std(ddof=1)), 2) if len(values) > 1 else None
    return out


def build_table(name: str, rows: list[dict], metrics: dict[str, dict], paper: dict, dataset: str,
                class_names: tuple[str, ...], replicates: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """One table: each row's label columns and model, then per column ours and, where the paper has the same
    column, its value and ours minus it. Class columns are compared only on the paper's own dataset (a class
    of another dataset may share a name, as the tiny set's cat does with VOC's).

    replicates: for a summary table, the metrics of each model's runs with other seeds; every row then shows
    the number of seeds and, per column, the mean over them (compared with the paper) and the standard deviation.
    """
    compared = set(paper["columns"]) if dataset == paper.get("dataset") else {paper["columns"][-1]} | set(SUMMARY)
    if replicates is not None and paper["columns"] != list(SUMMARY):
        raise DataError(f"{name}: runs of several seeds are averaged in summary tables ({list(SUMMARY)}) only")
    out = []
    for row in rows:
        if row["model"] not in metrics:
            raise DataError(f"{name}: no metrics file given for {row['model']}")
        theirs = paper_row(paper, name, row["paper"])
        line = {key: value for key, value in row.items() if key != "paper"}
        if "network" in metrics[row["model"]]:  # the network trained: on the tiny dataset, a stand-in's
            line["network"] = metrics[row["model"]]["network"]
        if replicates is None:
            ours_by_column = our_values(metrics[row["model"]], paper["columns"], class_names, row.get("metric"))
        else:
            ours_by_column = seed_statistics([metrics[row["model"]], *replicates.get(row["model"], [])])
        for column, ours in ours_by_column.items():
            line[column] = ours
            if f"{column} std" in ours_by_column:  # the spread over seeds beside the mean it belongs to
                line[f"{column} std"] = ours_by_column[f"{column} std"]
            if column in compared and column in paper["columns"]:
                reference = theirs[column]
                line[f"{column} (paper)"] = reference
                line[f"{column} Δ"] = None if reference is None or ours is None else round(ours - reference, 2)
        out.append(line)
    return pd.DataFrame(out)


def server_table(name: str, rows: list[dict], packages: dict[str, tuple[str, int]], paper: dict,
                 server: str) -> pd.DataFrame:
    """A table of the test split (Table 7): each row's label columns, model and submission package (path,
    images) for `server`, beside the paper's values; ours come from the server, not from this pipeline."""
    out = []
    for row in rows:
        if row["model"] not in packages:
            raise DataError(f"{name}: no submission package given for {row['model']}")
        path, images = packages[row["model"]]
        theirs = paper_row(paper, name, row["paper"])
        line = {key: value for key, value in row.items() if key != "paper"}
        line.update({"submission": path, "images": images, "scored by": server})
        line.update({f"{column} (paper)": theirs[column] for column in paper["columns"]})
        out.append(line)
    return pd.DataFrame(out)


def latency_table(paper: dict, latency: pd.DataFrame, bank_size: int, sweep_miou: dict[tuple[int, int], float],
                  softmax_miou: float | None, miou_source: str) -> pd.DataFrame:
    """Table 4: for each of the paper's rows, the latency benchmark's time shares, overall time and memory
    (its run with a bank of `bank_size` prototypes) and the inference sweep's mIoU, beside the paper's.
    Times and memory of other hardware differ in absolute terms, so each row also shows its ratio to
    softmax, ours and the paper's: the comparable quantity."""
    columns = {"k-means % time": "kmeans_pct", "kNN % time": "knn_pct", "Overall time": "time_ms",
               "memory": "memory_mib"}
    softmax = latency[latency["method"] == "softmax"]
    segsort = latency[(latency["method"] == "segsort") & (latency["bank"] == bank_size)]
    if len(softmax) != 1 or segsort.empty:
        raise DataError(f"Table 4: the latency benchmark needs one softmax row and SegSort rows with a bank of "
                        f"{bank_size} prototypes (found {len(softmax)} and {len(segsort)})")
    paper_softmax = paper["rows"][0]["values"]
    out = []
    for row in paper["rows"]:
        setting = (row["kmeans_iterations"], row["knn_k"])
        if row["method"] == "Softmax":
            ours, miou = softmax.iloc[0], softmax_miou
        else:
            found = segsort[(segsort["kmeans_iterations"] == setting[0]) & (segsort["knn_k"] == setting[1])]
            if len(found) != 1 or setting not in sweep_miou:
                raise DataError(f"Table 4: no latency run or no inference sweep result for {row['method']}")
            ours, miou = found.iloc[0], sweep_miou[setting]
        line = {"Method": row["method"]}
        for column, key in columns.items():
            value = ours[key]
            line[column] = None if pd.isna(value) else round(float(value), 2)
            line[f"{column} (paper)"] = row["values"][column]
        for column, key in (("Overall time", "time_ms"), ("memory", "memory_mib")):
            line[f"{column} vs softmax"] = round(float(ours[key] / softmax.iloc[0][key]), 4)
            line[f"{column} vs softmax (paper)"] = round(row["values"][column] / paper_softmax[column], 4)
        line["mIoU"] = miou
        line["mIoU (paper)"] = row["values"]["mIoU"]
        line["mIoU Δ"] = None if miou is None else round(miou - row["values"]["mIoU"], 2)
        out.append(line)
    table = pd.DataFrame(out)
    table["time and memory of"] = f"{ours['network']}, {ours['image_size']}, {ours['device']}, bank {bank_size}"
    table["mIoU of"] = miou_source
    return table


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
        base, _, variant = name.partition("_")
        title, caption = base.replace("table", "Table "), paper[base]["caption"]
        if variant == "seeds":  # the same table, each row's runs trained with every seed
            title += ", over seeds"
            caption += (" Here each row's mean and sample standard deviation over its training seeds (`seeds`: "
                        "params.yaml `seed` and `replicate_seeds`; a row that trains nothing has one).")
        parts.append(f"## {title}\n\n{caption}\n\n{markdown_table(table)}\n")
    return "\n".join(parts)
