"""Stage: HED-owt-ucm pseudo-segments: the UCM of every contour map, cut by params `pseudo_segments`.

Writes OUT/<id>.png (uint8 segment ids 0..n-1, grey PNG) and OUT/ucm/<id>.npz (the ucm2, uint16), so a
different cut can be made later from the stored UCMs alone. The segments are cut from the stored
(quantised) UCM, so they always agree with it. Images are processed on --cores processes; an
interrupted run keeps its finished images and, rerun with the same inputs and parameters, does the rest.
"""
import sys
from pathlib import Path

from tqdm import tqdm

from segsort.contours.owt_ucm import segment_contour_file
from segsort.io import DataError, ResumableFolder, files_fingerprint
from segsort.parallel import map_with_progress
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--contours", required=True, type=Path, help="folder of <id>.png contour maps (hed_contours)")
    p.add_argument("--out", required=True, type=Path, help="pseudo-segment folder to create")
    p.add_argument("--cores", type=int, help="worker processes (default: params `threads`)")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    cfg = params["pseudo_segments"]

    if not args.contours.is_dir():
        raise DataError(f"{args.contours}: contour folder is missing")
    paths = sorted(args.contours.glob("*.png"))
    if not paths:
        raise DataError(f"{args.contours}: no contour maps (*.png) in the folder")
    folder = ResumableFolder(args.out, files_fingerprint(paths, cfg))
    (folder.work / "ucm").mkdir(exist_ok=True)
    todo = [path for path in paths if not folder.done(f"{path.stem}.png", f"ucm/{path.stem}.npz")]
    if len(todo) < len(paths):
        print(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already done")
    jobs = [(path, folder.work, cfg) for path in todo]
    for messages in map_with_progress(segment_contour_file, jobs, args.cores or params["threads"],
                                      "owt-ucm segments"):
        for message in messages:
            tqdm.write(f"warning: {message}", file=sys.stderr)
    folder.finish()


if __name__ == "__main__":
    main()
