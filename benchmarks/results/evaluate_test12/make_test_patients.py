"""The 12 held-out test patients of the shipped models' split, exactly as
`synth --cases 60 --seed 1 --layout nifti --shape full` writes them (case i uses case_seed(1, i))."""
import json, sys
from pathlib import Path
from napari_livertumor.synth.cohort import _write_nifti_case, case_seed
from napari_livertumor.synth import generate_phantom
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
test = json.load(open("/work/main/resources/models/tumor/split.json"))["test"]
for pid in test:
    i = int(pid.split("_")[1]) - 1
    ph = generate_phantom(case_seed(1, i), "full")
    ph.ct.meta["patient_id"] = pid
    _write_nifti_case(out, pid, ph)
    print(pid, flush=True)
