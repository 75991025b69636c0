"""Stage: make the dataset in VOC layout (the embedded tiny dataset is generated offline)."""
from pathlib import Path

from segsort.data.tiny import generate_tiny_dataset
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--out", required=True, type=Path, help="dataset root to create")
    args = p.parse_args()
    params = load_params(args.params)
    if params["dataset"] != "tiny":
        raise RuntimeError(f"dataset {params['dataset']!r} is not supported yet (supported: tiny)")
    generate_tiny_dataset(args.out, params["tiny"], params["seed"])


if __name__ == "__main__":
    main()
