"""Compare candidate model sets with the whole two-stage pipeline on the *validation* patients.

Training picks each stage's checkpoint on its own (tumor stage: ground-truth liver ROI). Which
tumor model works best behind a given liver model is a question about the full pipeline; this
answers it on the split's validation patients, so the test patients stay untouched for the
figures that get reported.

    python scripts/compare_on_val.py --data data/synth2 --split runs/default/tumor/split.json \
        --liver runs/default/liver --tumor old=resources/models/tumor new=runs/default/tumor

Prints liver and tumor Dice per patient and the mean for each tumor model; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from napari_livertumor.models import load_model
    from napari_livertumor.pipeline import InferenceConfig, Segmenter
    from napari_livertumor.training.data import index_cases, load_case
    from napari_livertumor.training.metrics import case_scores, hcc_to_output

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True, help="split.json whose 'val' list is used")
    ap.add_argument("--liver", required=True, help="liver model folder")
    ap.add_argument("--tumor", nargs="+", required=True, help="NAME=FOLDER of each tumor model")
    args = ap.parse_args(argv)

    val = json.loads(Path(args.split).read_text())["val"]
    records = {r.case_id: r for r in index_cases(args.data)}
    liver = load_model(args.liver, stage="liver")
    tumors = dict(item.split("=", 1) for item in args.tumor)
    segs = {
        name: Segmenter(
            InferenceConfig(device="cpu"),
            models={"liver": liver, "tumor": load_model(f, stage="tumor")},
        )
        for name, f in tumors.items()
    }
    rows: dict[str, list[dict]] = {name: [] for name in segs}
    for cid in val:
        ct, hcc = load_case(records[cid])
        truth = hcc_to_output(hcc)
        for name, seg in segs.items():
            s = case_scores(seg.segment(ct).labels, truth)
            rows[name].append(s)
            print(
                f"{cid} {name}: liver Dice {s['liver_dice']:.3f}, tumor Dice {s['tumor_dice']:.3f}"
            )
    for name, r in rows.items():
        t = [x["tumor_dice"] for x in r if not np.isnan(x["tumor_dice"])]
        lv = [x["liver_dice"] for x in r]
        print(
            f"{name}: mean liver Dice {statistics.mean(lv):.3f}, "
            f"mean tumor Dice {statistics.mean(t) if t else float('nan'):.3f} (n={len(t)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
