"""Draw the pipeline's rule graph, as Snakemake itself reports it, into docs/dag.png (and docs/dag.md, the
same graph as Mermaid text).

    python scripts/draw_dag.py          # from the repository root, with the environment of scripts/setup.sh

Snakemake prints the graph (`snakemake --rulegraph mermaid-js --forceall`); this script only lays it
out: one column per depth (a rule sits one column right of the deepest rule it needs), rules in a column
ordered by the mean row of what they need, an arrow from each rule to each rule that uses its outputs
(none from a rule to itself: a training run started from another run of the same rule).
"""
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rule_graph() -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    """Snakemake's Mermaid text, its nodes (id -> rule) and edges (needed rule id, using rule id)."""
    text = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "mermaid-js", "--forceall"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    nodes = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", text, flags=re.M))
    edges = re.findall(r"^\s*(id\d+) --> (id\d+)", text, flags=re.M)
    # a rule that needs another job of itself (a run initialised from another run) is not drawn as a loop
    return text, nodes, [(a, b) for a, b in edges if nodes[b] != "all" and a != b]


def layout(nodes: dict[str, str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    needs = {node: [a for a, b in edges if b == node] for node in nodes if nodes[node] != "all"}
    depth = {}

    def depth_of(node):
        if node not in depth:
            depth[node] = 1 + max((depth_of(parent) for parent in needs[node]), default=-1)
        return depth[node]

    columns = {}
    for node in needs:
        columns.setdefault(depth_of(node), []).append(node)
    position = {}
    for column in sorted(columns):
        members = sorted(columns[column], key=lambda n: (sum(position[p][1] for p in needs[n]) / len(needs[n])
                                                         if needs[n] else 0, nodes[n]))
        for row, node in enumerate(members):
            position[node] = (column, row - (len(members) - 1) / 2)
    return position


def main() -> None:
    text, nodes, edges = rule_graph()
    position = layout(nodes, edges)
    width = max(x for x, _ in position.values()) + 1
    height = max(sum(1 for p in position.values() if p[0] == x) for x in range(width))
    figure, axes = plt.subplots(figsize=(2.9 * width, 0.55 * height + 1))
    boxes = {node: axes.text(x, y, nodes[node], ha="center", va="center", fontsize=8, zorder=2,
                             bbox=dict(boxstyle="round,pad=0.3", fc="#e8f0fa", ec="#4a6fa5", lw=0.6))
             for node, (x, y) in position.items()}
    figure.canvas.draw()  # sizes the boxes, so that the arrows can end at their edges
    for a, b in edges:
        axes.annotate("", xy=position[b], xytext=position[a], zorder=1,
                      arrowprops=dict(arrowstyle="->", color="0.55", lw=0.6, mutation_scale=10,
                                      patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch()))
    axes.set_xlim(-0.6, width - 0.4)
    axes.set_ylim(-height / 2 - 0.5, height / 2 + 0.5)
    axes.invert_yaxis()
    axes.axis("off")
    axes.set_title("The pipeline's rules (snakemake --rulegraph): each arrow goes from a rule to one that uses its outputs",
                   fontsize=9)
    out = REPO / "docs"
    out.mkdir(exist_ok=True)
    figure.savefig(out / "dag.png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    (out / "dag.md").write_text("# The pipeline's rule graph\n\nMade by `python scripts/draw_dag.py` from "
                                "`snakemake --rulegraph mermaid-js --forceall`.\n\n```mermaid\n" + text.strip()
                                + "\n```\n")
    print(f"{out / 'dag.png'}: {len(position)} rules, {len(edges)} dependencies")


if __name__ == "__main__":
    main()
