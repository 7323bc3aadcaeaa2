"""Write a synthetic cohort in the HCC-TACE-Seg download layout or a NIfTI layout.

TCIA layout (as NBIA downloads it)::

    OUT/HCC_001/03-14-1999-NA-PP CAPLIVER PROTO.-10975/4.000000-LIVER 3 PHASE CAP-83135/1-001.dcm …
    OUT/HCC_001/03-14-1999-NA-PP CAPLIVER PROTO.-10975/300.000000-Segmentation-91221/1-1.dcm
    OUT/HCC-TACE-Seg_clinical_data-V2.xlsx   (sheet "data table")  + .csv

NIfTI layout::

    OUT/imagesTr/HCC_001.nii.gz   OUT/labelsTr/HCC_001.nii.gz (0..4)   OUT/clinical.csv/.xlsx
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fileio import atomic_path, atomic_write_text
from ..io.volume import CTVolume
from ..progress import Reporter, as_reporter
from .clinical import make_clinical_table
from .intensity import PHASES
from .phantom import Phantom, generate_phantom

CLINICAL_XLSX = "HCC-TACE-Seg_clinical_data-V2.xlsx"
CLINICAL_CSV = "HCC-TACE-Seg_clinical_data-V2.csv"
#: segment label text per class, as in the real SEG files
SEGMENT_TEXT = {1: "Liver", 2: "Mass", 3: "Portal vein", 4: "Abdominal aorta"}


def case_seed(seed: int, index: int) -> int:
    """The phantom seed of case ``index`` (0-based) in a cohort drawn with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def manifest_seeds(manifests) -> tuple[set[int], str | None]:
    """The phantom seeds the cohorts' ``synth_manifest.json`` files list (a benchmark's or a
    calibration's phantoms must not be among them), and, when none of those files exists, the
    line saying that nothing could be checked (else None)."""
    paths = [Path(m) for m in manifests]
    seeds: set[int] = set()
    for path in paths:
        if path.is_file():
            seeds |= {
                int(c["seed"]) for c in json.loads(path.read_text(encoding="utf-8")) if "seed" in c
            }
    if any(path.is_file() for path in paths):
        return seeds, None
    where = "under data/ " if all(path.parts[:1] == ("data",) for path in paths) else ""
    looked = ", ".join(map(str, paths))
    return seeds, (
        f"training seeds not checked: no synth_manifest.json found {where}(looked for {looked})"
    )


def make_cohort(
    out_dir: str | Path,
    n_cases: int,
    seed: int = 0,
    layout: str = "tcia",
    shape: str = "small",
    quirks: bool = False,
    *,
    phase: str | None = None,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate ``n_cases`` phantoms and write them with a clinical table.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing. A folder that already holds anything is refused unless
        ``overwrite`` (the TCIA layout uses the real download's names, so a mistyped path must
        never replace real patients or their clinical table).
    n_cases : int
        Patients ``HCC_001`` … ``HCC_{n_cases:03d}``.
    seed : int
        Cohort seed; case ``i`` uses :func:`case_seed` ``(seed, i)``.
    layout : {"tcia", "nifti"}
    shape : {"small", "medium", "full"}
    quirks : bool
        TCIA layout only: patients get a second contrast phase stacked in the series (another
        ``AcquisitionNumber``), a duplicated slice position (higher ``InstanceNumber``), or SEG
        frames in reversed order and shuffled segment numbers — as in the real download.
        Patients 1, 2, 3 (then 4, 5, 6 …) get one of each in turn, others at random.
    phase : str, optional
        Force one contrast phase for every case.
    overwrite : bool
        Write into a non-empty folder: case folders of the same names and the tables are
        replaced, and the cases of an earlier synthetic cohort there (its
        ``synth_manifest.json``) that this one does not regenerate are removed, so the folder
        holds one consistent cohort. Nothing else in the folder is touched.
    reporter : Reporter, optional
        Progress (``"synth"``, case, total) and cancellation.

    Returns
    -------
    Path
        ``out_dir``.
    """
    if layout not in ("tcia", "nifti"):
        raise ValueError(f"layout must be 'tcia' or 'nifti', not {layout!r}")
    if n_cases < 1:
        raise ValueError("n_cases must be at least 1")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "cannot create the output folder: a file of that name exists")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        shown = ", ".join(present[:4]) + (", …" if len(present) > 4 else "")
        raise InputError(
            out,
            f"the folder is not empty ({len(present)} entries: {shown}); choose a new folder, "
            "or pass --force (overwrite=True) to replace a synthetic cohort written there",
        )
    if present and not (out / "synth_manifest.json").is_file():  # --force, but no cohort here
        raise InputError(
            out,
            "--force (overwrite=True) replaces a synthetic cohort, and this folder holds none (no "
            "synth_manifest.json) but other files: choose a new or empty folder",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create the output folder ({exc})") from exc
    if present:
        _check_only_ours(out, n_cases)  # before anything is removed
        _remove_stale_cases(out, n_cases, layout)
    # the folder is this command's from now on: a run stopped before the real manifest is
    # written can be redone with --force, and its cases are known (a stub listing them; it
    # replaces an earlier cohort's manifest too, whose lists of files this run's cases no
    # longer match)
    planned = [
        {"TCIA_ID": f"HCC_{i + 1:03d}", "planned": True}
        | (
            {
                "image": f"imagesTr/HCC_{i + 1:03d}.nii.gz",
                "label": f"labelsTr/HCC_{i + 1:03d}.nii.gz",
            }
            if layout == "nifti"
            else {}
        )
        for i in range(n_cases)
    ]
    # written whole or not at all: a full disk left a 0-byte manifest, which --force then
    # could not read
    atomic_write_text(out / "synth_manifest.json", json.dumps(planned))
    reporter = as_reporter(reporter)
    infos, ids, manifest = [], [], []
    for i in range(n_cases):
        reporter.check()
        reporter.update("synth", i, n_cases)
        pid = f"HCC_{i + 1:03d}"
        cseed = case_seed(seed, i)
        ph = generate_phantom(cseed, shape, phase=phase)
        ph.ct.meta["patient_id"] = pid
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i, 7]))
        if layout == "tcia":
            files = _write_tcia_case(out, pid, ph, cseed, rng, quirks)
        else:
            files = _write_nifti_case(out, pid, ph)
        infos.append(ph.info)
        ids.append(pid)
        manifest.append({"TCIA_ID": pid, "seed": cseed, **_jsonable(ph.info), **files})
    reporter.update("synth", n_cases, n_cases)
    table = make_clinical_table(infos, seed, ids)
    if layout == "tcia":
        xlsx, csv = out / CLINICAL_XLSX, out / CLINICAL_CSV
    else:
        xlsx, csv = out / "clinical.xlsx", out / "clinical.csv"
    _atomic(csv, lambda p: table.to_csv(p, index=False))
    _atomic(xlsx, lambda p: _write_xlsx(table, p))
    atomic_write_text(out / "synth_manifest.json", json.dumps(manifest, indent=1))
    return out


def _check_only_ours(out: Path, n_cases: int) -> None:
    """Refuse ``--force`` when a patient folder it would replace or remove holds files this
    command did not write (a user's notes, another series), or a NIfTI file it would write over
    (``imagesTr/HCC_003.nii.gz``) is not its own: nothing is removed then."""
    try:
        old = json.loads((out / "synth_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = []
    entries = {
        str(e.get("TCIA_ID")): e
        for e in (old if isinstance(old, list) else [])
        if isinstance(e, dict)
    }
    pids = set(entries) | {f"HCC_{i + 1:03d}" for i in range(n_cases)}
    foreign: list[Path] = []
    for pid in sorted(pids):
        # the NIfTI layout's files of the patient: written over, or removed
        for sub, key in (("imagesTr", "image"), ("labelsTr", "label")):
            f = out / sub / f"{pid}.nii.gz"
            listed = (entries.get(pid) or {}).get(key)
            # a manifest written on Windows before names it with "\\"
            listed = str(listed).replace("\\", "/") if listed else None
            if f.is_file() and listed != f"{sub}/{pid}.nii.gz":
                foreign.append(f)
        folder = out / pid
        if not folder.is_dir():
            continue
        entry = entries.get(pid)
        listed = set((entry or {}).get("written") or [])
        for f in sorted(folder.rglob("*")):
            if not f.is_file():
                continue
            rel = str(f.relative_to(out))
            # a case listed without its files (an older cohort, a stopped run's): its DICOM,
            # and the temporary files a killed write leaves (".1-001.dcm.partial")
            temp = f.name.startswith(".") and f.suffix in (".partial", ".tmp")
            ours = temp or (rel in listed if listed else (entry is not None and f.suffix == ".dcm"))
            if not ours:
                foreign.append(f)
    if foreign:
        shown = ", ".join(str(f.relative_to(out)) for f in foreign[:3])
        raise InputError(
            out,
            f"--force (overwrite=True) would remove {len(foreign)} file(s) this command did not "
            f"write ({shown}"
            f"{', …' if len(foreign) > 3 else ''}): move them out of the patient folders "
            "(or imagesTr/ and labelsTr/), or "
            "choose a new folder; nothing was removed",
        )


def _remove_stale_cases(out: Path, n_cases: int, layout: str = "tcia") -> None:
    """Remove the cases an earlier cohort's manifest lists beyond the first ``n_cases``, and
    all of it when it was written in the other layout (its NIfTI files and clinical tables
    would otherwise be read beside the new cohort)."""
    manifest = out / "synth_manifest.json"
    if not manifest.is_file():
        return
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    old = [e for e in old if isinstance(e, dict)] if isinstance(old, list) else []
    old_layout = "nifti" if any("image" in e for e in old) else "tcia"
    keep = {f"HCC_{i + 1:03d}" for i in range(n_cases)}
    if old_layout != layout:
        keep = set()
        tables = (
            ("clinical.xlsx", "clinical.csv")
            if old_layout == "nifti"
            else (CLINICAL_XLSX, CLINICAL_CSV)
        )
        for name in tables:
            (out / name).unlink(missing_ok=True)
    for entry in old:
        pid = str(entry.get("TCIA_ID", "")) if isinstance(entry, dict) else ""
        if not pid.startswith("HCC_") or pid in keep:
            continue
        for key in ("image", "label"):  # NIfTI layout: files; TCIA layout: the patient folder
            rel = entry.get(key)
            if rel and (out / rel).is_file():
                (out / rel).unlink()
        if (out / pid).is_dir():
            shutil.rmtree(out / pid)
    for sub in ("imagesTr", "labelsTr"):  # left empty by the NIfTI cohort removed
        folder = out / sub
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# ------------------------------------------------------------------------------- writers
def _write_tcia_case(out: Path, pid: str, ph: Phantom, cseed: int, rng, quirks: bool) -> dict:
    from pydicom.uid import generate_uid

    from ..io.dicom_write import write_ct_series
    from ..io.seg import write_dicom_seg

    case_dir = out / pid
    if case_dir.exists():
        shutil.rmtree(case_dir)
    year = int(rng.integers(1996, 2012))
    date = f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}-{year}"
    study = case_dir / f"{date}-NA-PP CAPLIVER PROTO.-{int(rng.integers(10000, 99999))}"
    series_no = int(rng.choice([2, 3, 4, 5, 103, 104]))
    series = study / f"{series_no}.000000-LIVER 3 PHASE CAP-{int(rng.integers(10000, 99999))}"
    seg_dir = study / f"300.000000-Segmentation-{int(rng.integers(10000, 99999))}"
    # a seed's UIDs differ with what changes its pixels (its shape and phase): a cohort of
    # another shape or phase is other images, never the same SOP instances rewritten
    tag = _uid_tag(cseed, ph, quirks)
    uid = {k: generate_uid(entropy_srcs=[f"{tag}-{k}"]) for k in ("study", "series", "for")}
    mm, dd, yyyy = date.split("-")
    kw = dict(
        patient_id=pid,
        study_uid=uid["study"],
        series_uid=uid["series"],
        frame_of_reference_uid=uid["for"],
        study_date=f"{yyyy}{mm}{dd}",
        study_description="PP CAPLIVER PROTO.",
        series_number=series_no,
        series_description="LIVER 3 PHASE CAP",
        contrast_agent=None if ph.info["phase"] == "non-contrast" else "IV contrast",
        contrast_phase=ph.info["phase"],
    )
    files = write_ct_series(ph.ct, series, **kw)
    facts = {"ct_series": str(series.relative_to(out)), "quirks": []}
    # every quirk shows up in any cohort of 3+ patients: patient 1, 2, 3 get one each, in turn
    turn = (int(pid.split("_")[1]) - 1) % 3
    draw = rng.random(3) < 0.15
    if quirks and (turn == 0 or draw[0]):
        _stack_second_phase(ph, series, kw, cseed, len(files))
        facts["quirks"].append("second phase stacked (AcquisitionNumber 2)")
    if quirks and (turn == 1 or draw[1]):
        _duplicate_slice(files, rng, len(files))
        _jitter_positions(files, rng)
        facts["quirks"].append("duplicate slice position")
        facts["quirks"].append("slice positions with rounding errors")
    reverse = bool(quirks and (turn == 2 or draw[2]))
    if reverse:
        facts["quirks"].append("SEG frames reversed")
    # a tumor-free phantom's SEG still describes its Mass segment, without frames: a tumor
    # looked for and not found (a SEG that describes none is read with a warning)
    present = [v for v in SEGMENT_TEXT if v == 2 or (ph.labels == v).any()]
    order = list(rng.permutation(present)) if quirks else present
    segments = [(int(v), SEGMENT_TEXT[int(v)]) for v in order]
    write_dicom_seg(
        ph.labels,
        ph.ct,
        seg_dir / "1-1.dcm",
        segments,
        source_files=files,
        algorithm_type="MANUAL",
        reverse_frames=reverse,
        series_number=300,  # as HCC-TACE-Seg numbers its ground-truth SEGs
        # seeded, as the CT's: the same seed writes the same bytes (a cohort written again
        # with --force is not taken for new ground truth by convert's cache)
        series_uid=generate_uid(entropy_srcs=[f"{tag}-seg-series"]),
        sop_instance_uid=generate_uid(entropy_srcs=[f"{tag}-seg"]),
        created=datetime.datetime(int(yyyy), int(mm), int(dd), 12, 0, 0),
    )
    facts["seg"] = str((seg_dir / "1-1.dcm").relative_to(out))
    if quirks:  # the study also holds other series, as the real download does
        pre = _pre_contrast(ph, cseed)
        number = 2 if series_no != 2 else 1
        pre_dir = study / f"{number}.000000-PRE LIVER-{int(rng.integers(10000, 99999))}"
        pre_uid = generate_uid(entropy_srcs=[f"{tag}-pre"])
        write_ct_series(
            pre,
            pre_dir,
            **{
                **kw,
                "series_uid": pre_uid,
                "series_number": number,
                "series_description": "PRE LIVER",
                "contrast_agent": None,
                "contrast_phase": "non-contrast",
            },
        )
        facts["other_series"] = [str(pre_dir.relative_to(out))]
    # every file of the case, so that --force later removes these and nothing a user added
    facts["written"] = sorted(str(f.relative_to(out)) for f in case_dir.rglob("*") if f.is_file())
    return facts


def _uid_tag(cseed: int, ph: Phantom, quirks: bool) -> str:
    """What a case's UIDs are drawn from: its seed, and what changes its files (shape, phase,
    quirks): the same seed in another shape or phase gave other pixels under the same UIDs, and
    convert took the second cohort for the first moved, replacing its conversion."""
    return f"synth-{cseed}-{ph.info['shape']}-{ph.info['phase']}" + ("-quirks" if quirks else "")


def _pre_contrast(ph: Phantom, cseed: int) -> CTVolume:
    """The same patient without contrast, reconstructed at twice the slice thickness."""
    plain = generate_phantom(cseed, ph.info["shape"], phase="non-contrast").ct
    n = plain.shape[0] // 2
    arr = plain.array[: 2 * n].reshape(n, 2, *plain.shape[1:]).mean(axis=1)
    dz, dy, dx = plain.spacing
    x0, y0, z0 = plain.origin
    return CTVolume(
        np.rint(arr).astype(np.int16),
        spacing=(2 * dz, dy, dx),
        origin=(x0, y0, z0 + dz / 2),
        meta={**plain.meta, "description": "PRE LIVER"},
    )


def _stack_second_phase(ph: Phantom, series: Path, kw: dict, cseed: int, n: int) -> None:
    """Another phase of the same anatomy in the same series folder, AcquisitionNumber 2."""
    import pydicom
    from pydicom.uid import generate_uid

    from ..io.dicom_write import write_ct_series

    other = [p for p in PHASES if p != ph.info["phase"]]
    second = generate_phantom(cseed, ph.info["shape"], phase=other[cseed % len(other)])
    tmp = series.parent / (series.name + ".acq2.tmp")
    tmp_uid = generate_uid(entropy_srcs=[kw["series_uid"], "acquisition 2"])
    kw2 = {
        **kw,
        "series_uid": tmp_uid,
        "contrast_phase": second.info["phase"],
        "contrast_agent": None if second.info["phase"] == "non-contrast" else "IV contrast",
    }
    paths = write_ct_series(
        second.ct, tmp, **kw2, acquisition_number=2, instance_number_start=n + 1
    )
    width = max(3, len(str(2 * n)))
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = kw["series_uid"]
        ds.save_as(series / f"1-{n + k + 1:0{width}d}.dcm")
    shutil.rmtree(tmp)


def _duplicate_slice(files: list[Path], rng, n: int) -> None:
    """A second copy of one slice (same position, higher InstanceNumber, new SOP UID)."""
    import pydicom
    from pydicom.uid import generate_uid

    k = int(rng.integers(0, n))
    ds = pydicom.dcmread(files[k])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, "dup"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = int(ds.InstanceNumber) + 10 * n
    ds.save_as(files[k].parent / f"1-{n + 500:03d}.dcm")


def _jitter_positions(files: list[Path], rng, n: int = 5) -> None:
    """Round-off in a few ImagePositionPatient z values (a few µm), as scanners write them."""
    import pydicom

    for k in rng.choice(len(files), size=min(n, len(files)), replace=False):
        ds = pydicom.dcmread(files[int(k)])
        pos = [float(x) for x in ds.ImagePositionPatient]
        pos[2] += float(rng.choice([-1, 1]) * rng.uniform(0.001, 0.004))
        ds.ImagePositionPatient = [f"{x:.6f}" for x in pos]
        ds.save_as(files[int(k)])


def _write_nifti_case(out: Path, pid: str, ph: Phantom) -> dict:
    from ..io.nifti import write_nifti

    img = out / "imagesTr" / f"{pid}.nii.gz"
    lab = out / "labelsTr" / f"{pid}.nii.gz"
    img.parent.mkdir(parents=True, exist_ok=True)
    lab.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(ph.ct, img)
    write_nifti(ph.labels, lab, reference=ph.ct, labels=True)
    # with "/" on every system (the manifest is compared by --force later)
    return {"image": img.relative_to(out).as_posix(), "label": lab.relative_to(out).as_posix()}


#: the time written into the spreadsheet (its properties, its zip entries): the same seed,
#: the same bytes (openpyxl wrote the time of writing: every cohort's XLSX differed)
_XLSX_TIME = (2000, 1, 1, 0, 0, 0)


def _write_xlsx(table, path) -> None:
    """``table`` as an .xlsx of one sheet, "data table", byte for byte the same each run."""
    import io
    import re
    import zipfile

    buffer = io.BytesIO()
    table.to_excel(buffer, sheet_name="data table", index=False)
    stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*_XLSX_TIME).encode()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + stamp + rb"\g<2>",
                    data,
                )
            info = zipfile.ZipInfo(item.filename, date_time=_XLSX_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = item.external_attr
            dst.writestr(info, data)


def _atomic(path: Path, write) -> None:
    # (fileio's: a failed write leaves no temporary file, and its error names ``path``)
    with atomic_path(path, suffix=path.suffix) as tmp:
        write(tmp)


def _jsonable(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
