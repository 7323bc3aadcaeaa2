"""Write the 12 held-out test patients of the shipped models' split into a NIfTI dataset folder,
exactly as ``livertumor synth --cases 60 --seed 1 --layout nifti --shape full`` writes them
(case i of a cohort uses ``case_seed(seed, i)``), without the other 48.

    python benchmarks/results/evaluate_test12/make_test_patients.py data/test12
    livertumor evaluate --data data/test12 --models resources/models -o evaluation
"""

import json
import sys
from pathlib import Path

from napari_livertumor.models import default_model_dir
from napari_livertumor.synth import case_seed, generate_phantom
from napari_livertumor.synth.cohort import _write_nifti_case

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
split = json.loads((default_model_dir("tumor") / "split.json").read_text())
for pid in split["test"]:
    i = int(pid.split("_")[1]) - 1
    phantom = generate_phantom(case_seed(1, i), "full")
    phantom.ct.meta["patient_id"] = pid
    _write_nifti_case(out, pid, phantom)
    print(pid, flush=True)
