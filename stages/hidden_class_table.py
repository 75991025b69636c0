"""Stage: the hidden-class table and figure (params.yaml hidden_class): the class's IoU on val, and the
other classes' mIoU, for the run trained with the class and for the run that never saw it, with each
number of images added to its bank (segsort/hidden_class.py)."""
from pathlib import Path

import pandas as pd

from segsort.data import hidden_class
from segsort.hidden_class import hidden_class_figure, hidden_class_rows
from segsort.io import DataError, atomic_path
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--reference", required=True, type=Path, nargs="+",
                   help="metrics JSON of the run trained with the class, at each k of kNN (the preset's first)")
    p.add_argument("--reference-bank", required=True, type=Path, help="that run's bank")
    p.add_argument("--metrics", required=True, type=Path, nargs="+",
                   help="metrics JSON of the hidden-class run at every bank and k, named <images added>.json")
    p.add_argument("--banks", required=True, type=Path, nargs="+", help="those banks, named <images added>.h5")
    p.add_argument("--out", required=True, type=Path, help="CSV to write")
    p.add_argument("--figure", required=True, type=Path, help="PNG to write")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    name, class_id = hidden_class(params)
    banks = {int(path.stem): path for path in args.banks}
    missing = [str(path) for path in args.metrics if int(path.stem) not in banks]
    if missing:
        raise DataError(f"{', '.join(missing)}: no bank named like it among --banks")
    grown = [(int(path.stem), path, banks[int(path.stem)]) for path in args.metrics]
    rows = hidden_class_rows(args.reference, args.reference_bank, grown, name, class_id)
    table = pd.DataFrame(rows)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(args.figure) as tmp:
        hidden_class_figure(rows, tmp, f"{name} hidden from {params['hidden_class']['run']}, then added to its bank\n"
                                       f"({params['dataset']} val)")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
