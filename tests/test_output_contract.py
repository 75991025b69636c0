"""Every command's --out against each kind of path a user may give it: nothing the command did not write is
removed or changed, and what is refused is refused in one line, with no traceback.

An existing file, a folder with content, the input itself, a read-only folder and a name without an
extension, for `segsort predict`, `segsort explain` and a representative stage (stages/tables_markdown.py,
which writes through segsort.io.atomic_path as every stage does)."""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segsort.cli import main as segsort_cli

pytestmark = pytest.mark.slow  # the CLI runs on a small model and its bank

REPO = Path(__file__).resolve().parents[1]
KINDS = ("existing_file", "folder_with_content", "input_itself", "read_only_folder", "no_extension")
# What each command does with each kind: "ok" (writes its outputs) or "refused" (one line, exit 1).
EXPECTED = {
    "predict": {"existing_file": "refused", "folder_with_content": "ok", "input_itself": "refused",
                "read_only_folder": "refused", "no_extension": "ok"},
    "explain": {"existing_file": "refused", "folder_with_content": "refused", "input_itself": "refused",
                "read_only_folder": "refused", "no_extension": "refused"},
    "stage": {"existing_file": "ok", "folder_with_content": "refused", "input_itself": "refused",
              "read_only_folder": "refused", "no_extension": "ok"},
}


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder with a file in it that no process of this user can write into: a read-only tmpfs mount for
    root (whom file modes do not stop), the file mode otherwise."""
    path.mkdir()
    (path / "kept.txt").write_text("kept")
    mounted = False
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)]).returncode != 0:
            pytest.skip("root cannot mount a read-only folder here")
        (path / "kept.txt").write_text("kept")
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        mounted = True
    else:
        path.chmod(0o555)
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)
        else:
            path.chmod(0o755)


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def out_path(kind: str, command: str, root: Path, the_input: Path, read_only: Path) -> Path:
    if kind == "existing_file":
        (root / "existing.md").write_text("precious")
        return root / "existing.md"
    if kind == "folder_with_content":
        (root / "d" / "sub").mkdir(parents=True)
        (root / "d" / "keep.txt").write_text("precious")
        (root / "d" / "sub" / "keep.txt").write_text("precious too")
        return root / "d"
    if kind == "input_itself":
        return the_input
    if kind == "read_only_folder":
        return read_only if command == "predict" else read_only / "out.png"
    return root / "why"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_an_output_never_costs_the_user_a_file(command, kind, tmp_path, small_dataset, model_and_bank,
                                               params_path, capfd):
    model_path, bank_path, _ = model_and_bank
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(photos / "a.jpg")
    tables = sorted((REPO / "reports" / "tiny").glob("table[1-3].csv"))
    the_input = {"predict": photos, "explain": photos / "a.jpg", "stage": tmp_path / "table1.csv"}[command]
    (tmp_path / "table1.csv").write_bytes(tables[0].read_bytes())
    with read_only_folder(tmp_path / "read_only") as read_only:
        out = out_path(kind, command, tmp_path, the_input, read_only)
        before = snapshot(tmp_path)
        if command == "stage":
            result = subprocess.run([sys.executable, "stages/tables_markdown.py", "--tables", str(tmp_path / "table1.csv"),
                                     *map(str, tables[1:]), "--paper", "references/paper_tables.yaml",
                                     "--out", str(out)], cwd=REPO, capture_output=True, text=True)
            code, err = result.returncode, result.stderr
        else:
            args = [command, str(the_input), "--model", str(model_path), "--bank", str(bank_path), "--out", str(out),
                    "--params", str(params_path), "--device", "cpu"]
            code = segsort_cli(args + (["--segments", "1", "--neighbours", "1"] if command == "explain" else []))
            err = capfd.readouterr().err
        after = snapshot(tmp_path)
    assert "Traceback" not in err, err
    if EXPECTED[command][kind] == "refused":
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and str(out) in errors[0], err
        assert after == before  # nothing written, nothing changed
        return
    assert code == 0, err
    replaced = {out} if out in before else set()  # an earlier version of the output itself may be replaced
    assert {p: before[p] for p in before if p not in replaced} == \
        {p: after.get(p) for p in before if p not in replaced}  # every other byte as it was
    written = (set(after) - set(before)) | {p for p in replaced if after[p] != before[p]}
    assert written and all(p == out or out in p.parents for p in written)  # and nothing written beside --out
