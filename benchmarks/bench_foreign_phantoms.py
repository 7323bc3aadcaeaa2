"""Accuracy on phantoms built another way: a check against learning our own generator's quirks.

    python benchmarks/bench_foreign_phantoms.py [--cases 12] [--models resources/models]
                                                [--compare OTHER_MODELS_DIR]

The shipped models are trained on ``napari_livertumor.synth``. A network can score well on more
of the same while keying on how that generator paints (its texture, its tumor edges) rather than
on what a liver or a tumor looks like. This script draws its abdomens with code that shares
nothing with ``synth``: organs are unions of ellipsoids with a smooth wobble, the liver has a
smooth perfusion/fat heterogeneity field of up to 12 HU SD, the noise is white then blurred,
lesions are wobbly ellipsoids with phase-dependent contrast, sometimes a necrotic centre or an
enhancing rim, and one case in five has none. It is crude in other ways than ``synth`` is, which
is the point: what both generators agree on is what a model should have learnt.

Scores per case: liver Dice, tumor Dice (NaN when prediction and truth are both empty), lesions
found / false (``training.metrics.lesion_detection``), and tumor volume called in tumor-free
livers. With ``--compare`` a second model folder is scored on the same phantoms in the same run.
Results: ``benchmarks/results/foreign_phantoms.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # (a sibling module)
from _outputs import out_paths as _out_paths  # noqa: E402

SEED_BASE = 5_100_000  # a range no other benchmark or training set uses


# ----------------------------------------------------------------------------- the phantoms
class _Grid:
    def __init__(self, shape, spacing):
        nz, ny, nx = shape
        dz, dy, dx = spacing
        self.shape, self.spacing = shape, spacing
        self.z = (np.arange(nz, dtype=np.float32) * dz)[:, None, None]
        self.y = ((np.arange(ny, dtype=np.float32) - ny / 2) * dy)[None, :, None]
        self.x = ((np.arange(nx, dtype=np.float32) - nx / 2) * dx)[None, None, :]

    def ellipsoid(self, c, r):
        """Normalised radius: < 1 inside."""
        return (
            ((self.z - c[0]) / r[0]) ** 2
            + ((self.y - c[1]) / r[1]) ** 2
            + ((self.x - c[2]) / r[2]) ** 2
        )

    def cylinder(self, c, r, z0=-1e9, z1=1e9):
        """A vertical tube (y, x centre ``c``, radius ``r``) between heights ``z0`` and ``z1``."""
        inside = ((self.y - c[0]) ** 2 + (self.x - c[1]) ** 2) < r**2
        return inside & (self.z >= z0) & (self.z <= z1)

    def smooth(self, rng, corr_mm: float) -> np.ndarray:
        """Unit-SD Gaussian random field with correlation length ``corr_mm``."""
        coarse = [
            max(4, int(n * s / corr_mm * 2)) for n, s in zip(self.shape, self.spacing, strict=True)
        ]
        f = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), 1.0)
        f = ndi.zoom(
            f,
            [n / c for n, c in zip(self.shape, coarse, strict=True)],
            order=1,
            grid_mode=True,
            mode="nearest",
        )
        f = f[: self.shape[0], : self.shape[1], : self.shape[2]]
        return (f - f.mean()) / (f.std() + 1e-6)


def foreign_phantom(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict]:
    """``(ct int16 (z, y, x), labels uint8 (0/1 liver/2 tumor), spacing, facts)``.

    Array axes as the project's: x index grows toward the patient's left, y toward posterior,
    z toward the head.
    """
    rng = np.random.default_rng(seed)
    dz = float(rng.choice([1.25, 2.5, 3.0, 5.0]))
    nz = int(round(rng.uniform(180, 260) / dz))
    dxy = float(rng.uniform(0.65, 0.9))
    g = _Grid((nz, 512, 512), (dz, dxy, dxy))
    top = nz * dz
    phase = str(rng.choice(["non-contrast", "arterial", "portal venous"], p=[0.2, 0.4, 0.4]))
    liver_hu = {"non-contrast": (50, 65), "arterial": (65, 85), "portal venous": (95, 125)}
    liv = rng.uniform(*liver_hu[phase])
    blood = {"non-contrast": 42, "arterial": 260, "portal venous": 165}[phase]
    portal = {"non-contrast": 42, "arterial": 110, "portal venous": 175}[phase]

    ct = np.full(g.shape, -1000.0, np.float32)
    ax, ay = rng.uniform(150, 190), rng.uniform(115, 150)
    r_body = np.sqrt((g.y / ay) ** 2 + (g.x / ax) ** 2) + 0.0 * g.z
    body = r_body < 1
    fat_frac = rng.uniform(0.06, 0.2)
    ct[body] = rng.uniform(-115, -85)  # subcutaneous fat
    wall = body & (r_body < 1 - fat_frac)
    ct[wall] = rng.uniform(40, 60)  # muscle wall
    cavity = r_body < 1 - fat_frac - rng.uniform(0.05, 0.09)
    ct[cavity] = rng.uniform(-110, -80)  # visceral fat

    zc = top * rng.uniform(0.55, 0.7)  # liver centre height
    wob = g.smooth(rng, 40.0) * rng.uniform(0.05, 0.15)
    right = g.ellipsoid(
        (zc, rng.uniform(-20, 5), -ax * rng.uniform(0.35, 0.5)),
        (rng.uniform(55, 75), ay * rng.uniform(0.5, 0.65), ax * rng.uniform(0.35, 0.45)),
    )
    left = g.ellipsoid(
        (zc + rng.uniform(10, 30), -ay * rng.uniform(0.25, 0.4), ax * rng.uniform(0.0, 0.15)),
        (rng.uniform(30, 45), ay * rng.uniform(0.25, 0.35), ax * rng.uniform(0.25, 0.4)),
    )
    liver = (np.minimum(right, left) + wob < 1) & cavity
    spleen = (
        g.ellipsoid((zc - 10, ay * 0.3, ax * 0.6), (rng.uniform(40, 60), 45, 28)) + wob < 1
    ) & cavity
    kid = np.zeros(g.shape, bool)
    for side in (-1, 1):
        kid |= g.ellipsoid((zc - rng.uniform(50, 80), ay * 0.45, side * ax * 0.4), (50, 28, 24)) < 1
    kid &= cavity & ~liver
    stomach = (g.ellipsoid((zc + 20, -ay * 0.35, ax * 0.4), (45, 40, 45)) < 1) & cavity & ~liver
    spine_c = (ay * 0.68, 0.0)
    vert = g.cylinder(spine_c, 19)
    aorta = g.cylinder((ay * 0.45, ax * 0.1), rng.uniform(9, 13))
    ivc = g.cylinder((ay * 0.3, -ax * 0.15), rng.uniform(10, 13), z1=zc + 60)

    ct[stomach] = rng.uniform(10, 35)
    ct[stomach & (g.y < -ay * 0.5)] = -900  # gas
    ct[spleen] = liv + rng.uniform(-10, 15)
    ct[kid] = {"non-contrast": 32, "arterial": 170, "portal venous": 165}[phase]
    ct[liver] = liv
    ct[vert] = rng.uniform(180, 260)
    ct[vert & ~g.cylinder(spine_c, 16)] = 600  # cortex
    ct[aorta] = blood + 40 * (phase == "arterial")
    ct[ivc] = {"non-contrast": 42, "arterial": 90, "portal venous": 150}[phase]
    for k in range(int(top // 25)):  # ribs: thin arcs on the back and sides
        ring = np.abs(r_body - (1 - fat_frac - 0.03)) < 0.02
        ct[ring & (np.abs(g.z - (k * 25 + 10)) < 5) & (g.y > -ay * 0.2)] = 450

    # hepatic / portal vessels: straight tubes fanning out from the hilum
    hilum = np.array([zc - 10, 0.0, -ax * 0.2])
    for _ in range(int(rng.integers(6, 12))):
        d = rng.normal(size=3) * [0.5, 1.0, 1.0] + [0, 0, -1.2]
        d /= np.linalg.norm(d)
        rel = [g.z - hilum[0], g.y - hilum[1], g.x - hilum[2]]
        t = d[0] * rel[0] + d[1] * rel[1] + d[2] * rel[2]
        dist2 = rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2 - t**2
        tube = liver & (t > 0) & (t < rng.uniform(50, 110)) & (dist2 < rng.uniform(2, 5) ** 2)
        ct[tube] = portal
    # parenchymal heterogeneity (perfusion, fat): what a texture-keyed model calls tumor
    het_sd = rng.uniform(0, 12)
    ct += (het_sd * g.smooth(rng, rng.uniform(8, 40))) * liver

    labels = liver.astype(np.uint8)
    core = ndi.binary_erosion(liver, iterations=6)
    lz, ly, lx = np.nonzero(core[:, ::4, ::4])
    n_tumors = 0 if rng.random() < 0.2 else int(rng.integers(1, 5))
    tumors = []
    for _ in range(n_tumors):
        j = rng.integers(len(lz))
        c = (lz[j] * dz, (ly[j] * 4 - 256) * dxy, (lx[j] * 4 - 256) * dxy)
        r = float(np.exp(rng.uniform(np.log(5), np.log(35))))
        e = g.ellipsoid(c, (r * rng.uniform(0.8, 1.2), r * rng.uniform(0.8, 1.2), r))
        e = e + 0.15 * g.smooth(rng, max(r, 8.0))
        t = (e < 1) & liver
        if phase == "arterial" and rng.random() < 0.6:
            contrast = rng.uniform(15, 60)
        elif phase == "non-contrast":
            contrast = rng.uniform(-35, -10)
        else:
            contrast = rng.uniform(-40, -12)
        ct[t] = liv + contrast
        if r > 15 and rng.random() < 0.5:
            ct[t & (e < 0.35)] = rng.uniform(10, 30)  # necrosis
        if phase == "portal venous" and rng.random() < 0.4:
            ct[t & (e > 0.75)] = liv + 10  # enhancing capsule
        labels[t] = 2
        tumors.append({"radius_mm": round(r, 1), "contrast_hu": round(float(contrast), 1)})

    noise_sd = rng.uniform(8, 25)
    blur = rng.uniform(0.4, 1.0)
    ct = ndi.gaussian_filter(ct, (0.3, blur / dxy, blur / dxy))
    noise = rng.standard_normal(g.shape).astype(np.float32)
    noise = ndi.gaussian_filter(noise, (0, 0.7, 0.7))
    ct += noise * (noise_sd / noise.std()) * body
    facts = {
        "seed": seed,
        "shape": list(g.shape),
        "spacing": [dz, round(dxy, 3), round(dxy, 3)],
        "phase": phase,
        "liver_hu": round(float(liv), 1),
        "heterogeneity_sd_hu": round(float(het_sd), 1),
        "noise_sd_hu": round(float(noise_sd), 1),
        "tumors": tumors,
    }
    return np.clip(ct, -1024, 3000).astype(np.int16), labels, (dz, dxy, dxy), facts


# ----------------------------------------------------------------------------- scoring
def score(models_dir: Path, phantoms, refine: bool, tta: str = "none") -> list[dict]:
    from napari_livertumor.io.volume import CTVolume
    from napari_livertumor.models import load_model
    from napari_livertumor.pipeline import InferenceConfig, Segmenter, segment_ct
    from napari_livertumor.training.metrics import case_scores, lesion_detection

    models = {st: load_model(models_dir / st, stage=st) for st in ("liver", "tumor")}
    cfg = InferenceConfig(device="cpu", refine=refine, tta=tta)
    seg = Segmenter(cfg, models=models)
    rows = []
    for ct, truth, spacing, facts in phantoms:
        t0 = time.perf_counter()
        res = segment_ct(CTVolume(ct, spacing=spacing), cfg, models=seg)
        pred = res.labels
        vox_ml = float(np.prod(spacing)) / 1000.0
        pt, tt = pred == 2, truth == 2
        det = lesion_detection(pt, tt, spacing)
        sc = case_scores(pred, truth)
        rows.append(
            {
                "seed": facts["seed"],
                "liver_dice": round(sc["liver_dice"], 4),
                "tumor_dice": sc["tumor_dice"],
                "tumor_ml_true": round(float(tt.sum()) * vox_ml, 2),
                "tumor_ml_pred": round(float(pt.sum()) * vox_ml, 2),
                "false_tumor_ml": round(float((pt & ~tt).sum()) * vox_ml, 2),
                **det,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"  {models_dir}: {rows[-1]}", flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    td = [r["tumor_dice"] for r in rows if not math.isnan(r["tumor_dice"])]
    free = [r for r in rows if r["tumor_ml_true"] == 0]
    return {
        "cases": len(rows),
        "liver_dice_mean": round(float(np.mean([r["liver_dice"] for r in rows])), 4),
        "tumor_dice_mean": round(float(np.mean(td)), 4) if td else math.nan,
        "tumor_dice_n": len(td),
        "lesions_found": f"{sum(r['lesions_found'] for r in rows)}/"
        f"{sum(r['lesions_true'] for r in rows)}",
        "false_lesions_per_case": round(sum(r["lesions_false"] for r in rows) / len(rows), 2),
        "false_tumor_ml_median": round(float(np.median([r["false_tumor_ml"] for r in rows])), 2),
        "tumor_free_cases": len(free),
        "tumor_free_with_false_tumor": sum(r["tumor_ml_pred"] > 0 for r in free),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument(
        "--models", default="resources/models", help="relative to the repository, or a path"
    )
    ap.add_argument("--compare", default=None, help="a second models folder, same phantoms")
    ap.add_argument("--label", default=None, help="name of --models in the report")
    ap.add_argument("--compare-label", default=None, help="name of --compare in the report")
    ap.add_argument("--no-refine", action="store_true")
    tta = ["none", "inplane", "all"]
    ap.add_argument("--tta", default="none", choices=tta, help="mirrored tumor passes")
    ap.add_argument("--compare-tta", default=None, choices=tta, help="for --compare (--tta)")
    ap.add_argument(
        "--out",
        default=str(RESULTS / "foreign_phantoms"),
        help="report name: NAME.json and NAME.md (a name ending in .json: the .md beside it)",
    )
    args = ap.parse_args(argv)
    # the shipped models wherever it is run from (it failed outside the repository, after
    # drawing every phantom); the report still names them "resources/models"
    from napari_livertumor.errors import ModelError
    from napari_livertumor.models import load_model

    label = args.label or args.models
    repo = Path(__file__).resolve().parent.parent
    if not Path(args.models).is_dir() and (repo / args.models).is_dir():
        args.models = str(repo / args.models)
    for folder in filter(None, (args.models, args.compare)):
        for stage in ("liver", "tumor"):
            try:
                load_model(Path(folder) / stage, stage=stage)
            except ModelError as exc:
                print(f"bench_foreign_phantoms: {exc}", file=sys.stderr)
                return 1

    t0 = time.perf_counter()
    phantoms = [foreign_phantom(SEED_BASE + i) for i in range(args.cases)]
    print(f"{len(phantoms)} phantoms drawn in {time.perf_counter() - t0:.0f} s", flush=True)
    refine = not args.no_refine
    runs = {label: score(Path(args.models), phantoms, refine, args.tta)}
    if args.compare:
        name = args.compare_label or args.compare
        runs[name] = score(Path(args.compare), phantoms, refine, args.compare_tta or args.tta)
    out = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "phantoms": [p[3] for p in phantoms],
        "refine": not args.no_refine,
        "tta": {label: args.tta}
        | (
            {args.compare_label or args.compare: args.compare_tta or args.tta}
            if args.compare
            else {}
        ),
        "results": {k: {"summary": summary(v), "per_case": v} for k, v in runs.items()},
    }
    out_json, out_md = _out_paths(args.out)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(out, indent=1))
    lines = [
        "# Phantoms built another way (`benchmarks/bench_foreign_phantoms.py`)",
        "",
        f"{out['date_utc']} UTC; {args.cases} phantoms, seeds {SEED_BASE}–"
        f"{SEED_BASE + args.cases - 1}; refinement {'on' if out['refine'] else 'off'}; "
        "mirrored tumor passes: " + ", ".join(f"`{k}` {v}" for k, v in out["tta"].items()) + ".",
        "",
        "| models | liver Dice | tumor Dice (n) | lesions found | false lesions per case | "
        "median false tumor mL | tumor-free cases with tumor called |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, v in out["results"].items():
        s = v["summary"]
        lines.append(
            f"| `{k}` | {s['liver_dice_mean']:.3f} | {s['tumor_dice_mean']:.3f} "
            f"({s['tumor_dice_n']}) | {s['lesions_found']} | {s['false_lesions_per_case']} | "
            f"{s['false_tumor_ml_median']} | {s['tumor_free_with_false_tumor']}/"
            f"{s['tumor_free_cases']} |"
        )
    names = list(out["results"])
    lines += [
        "",
        "Per case (liver Dice / tumor Dice / false tumor mL, for each models folder in the order "
        "above):",
        "",
        "| seed | phase | heterogeneity SD HU | noise SD HU | lesions (radius mm, contrast HU) | "
        + " | ".join(f"`{k}`" for k in names)
        + " |",
        "|---" * (5 + len(names)) + "|",
    ]
    for i, f in enumerate(out["phantoms"]):
        les = ", ".join(f"{t['radius_mm']:.0f}/{t['contrast_hu']:+.0f}" for t in f["tumors"])
        cells = []
        for k in names:
            r = out["results"][k]["per_case"][i]
            cells.append(f"{r['liver_dice']:.3f} / {r['tumor_dice']:.3f} / {r['false_tumor_ml']}")
        lines.append(
            f"| {f['seed']} | {f['phase']} | {f['heterogeneity_sd_hu']} | {f['noise_sd_hu']} | "
            f"{les or 'none'} | " + " | ".join(cells) + " |"
        )
    out_md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
