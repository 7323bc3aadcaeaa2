"""``livertumor convert INPUT -o CT.nii.gz``: a DICOM CT series (or a NIfTI) to NIfTI, geometry kept.

``INPUT`` is a folder holding one or more DICOM series (the CT series a DICOM SEG
there references, else an axial original series with the most slices, unless ``--series``), one DICOM file (its series), or a NIfTI file. ``--list`` prints the series found
and writes nothing. The output is written to a temporary name and renamed; an existing output is
kept unless ``--force``.

``-o FOLDER`` (a name without a NIfTI ending) converts every patient found in ``INPUT`` (the
cases ``livertumor segment`` would read: a folder of patient folders, an NBIA download, NIfTI
files, a CSV list) into a NIfTI dataset that ``train``, ``evaluate`` and ``segment`` read::

    FOLDER/imagesTr/<case>.nii.gz   FOLDER/labelsTr/<case>.nii.gz   a patient with a DICOM SEG
    FOLDER/imagesTs/<case>.nii.gz                                  a patient without one
    FOLDER/<the clinical table>     FOLDER/convert.json            what was converted, from where

Ground truth keeps the HCC-TACE-Seg classes (0 other, 1 liver, 2 tumor, 3 portal vein,
4 aorta) on the CT's own grid. A patient already converted from the same, unchanged input is
kept (``--force`` writes it again), so an interrupted conversion is finished by running it
again; one whose source files changed, or one in imagesTs/ whose folder has gained a DICOM SEG
since, is converted again; one of the same name from another input is refused (its files kept). One patient that fails
is said and the others are converted (exit status 1).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import InputError, LiverTumorError
from ..fileio import (
    atomic_path,
    atomic_write_text,
    check_path_lengths,
    check_writable_folder,
    file_lock,
    remove_stale_temps,
    same_file,
    temp_prefix,
)
from . import acquisition_arg

log = logging.getLogger(__name__)
#: what a dataset's classes are called in its per-case line
_CLASS_NAMES = {1: "liver", 2: "tumor", 3: "portal vein", 4: "aorta"}


def add_arguments(parser) -> None:
    parser.add_argument("input", type=Path, help="DICOM folder or file, or a .nii/.nii.gz CT")
    parser.add_argument(
        "-o",
        "--output",
        help="output .nii.gz (or .nii); or a FOLDER (a name without that ending): every patient "
        "in INPUT into FOLDER/imagesTr + labelsTr (those with a DICOM SEG) or imagesTs; "
        "required unless --list",
    )
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to convert")
    parser.add_argument(
        "--acquisition",
        type=acquisition_arg,
        metavar="N",
        help="AcquisitionNumber to convert when one series stacks several phases (or the pass "
        "number, 1..n, of passes stacked with no AcquisitionNumber: --list shows them); 'pass N' "
        "for pass N where passes are numbered apart from their AcquisitionNumbers (an "
        "acquisition holding two reconstructions, a step-and-shoot scan's chunks joined: a "
        "number that is one pass's number and another's AcquisitionNumber is refused); of a "
        "series stacking none, the AcquisitionNumber all its slices carry converts it whole, and "
        "of one joining parts at a seam, one part alone; '1+2' for parts of one scan joined at "
        "their seams beside passes within their stretch; 'none' for the slices with no "
        "AcquisitionNumber stacked beside numbered ones",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument(
        "--clinical",
        type=Path,
        metavar="TABLE",
        help="-o FOLDER: the clinical table (XLSX/CSV) to copy into FOLDER (default: the one "
        "beside the patients); one there already that differs is replaced, the earlier one "
        "kept beside it",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the DICOM series found and exit (no output)"
    )
    parser.add_argument(
        "--meta",
        type=Path,
        metavar="JSON",
        help="also write the source metadata as JSON here (it holds the "
        "patient's name and ID, the study date and UIDs)",
    )


def _refuse_meta_over_a_scan(meta: Path, output: Path, source: Path) -> None:
    """``--meta`` never names the CT being written or a file of the input (it wrote its JSON
    over the NIfTI just written, or over one of the patient's DICOM files with --force)."""

    def where(p: Path) -> Path:
        try:
            return p.resolve()
        except OSError:
            return p.absolute()

    m = where(meta)
    if m == where(output):
        raise InputError(meta, "--meta names the CT file this writes: give the JSON another name")
    src = where(source)
    if m == src or (source.is_dir() and src in m.parents):
        raise InputError(
            meta, "--meta names a file of the input scan: give the JSON a name outside it"
        )
    if meta.name.lower().endswith((".nii", ".nii.gz", ".dcm")):
        raise InputError(meta, "--meta writes JSON: a name ending in .json, not a scan's")


def run(args) -> int:
    from ..signals import sigterm_as_interrupt

    # SIGTERM as Ctrl-C here too: a stop while one CT is written leaves no temporary file
    with sigterm_as_interrupt():
        return _run(args)


def _run(args) -> int:
    from ..io.dicom import SEVERAL_PATIENTS
    from ..io.nifti import is_nifti_path, read_nifti, write_nifti

    source: Path = args.input
    if args.output is None and not args.list:
        # a missing required option: a usage error (exit 2), as argparse's, before the input
        print(
            "livertumor convert: error: give the output file with -o CT.nii.gz (or a folder "
            "for a dataset), or --list",
            file=sys.stderr,
        )
        return 2
    if not source.exists():
        raise InputError(source, "file or folder not found")
    if args.list:
        from ..io.dicom import _skipped_text, discover_series, printable

        unreadable: list = []
        found = discover_series(source, unreadable=unreadable)
        if not found:
            raise InputError(
                source,
                "no DICOM series found" + (f"; {_skipped_text(unreadable)}" if unreadable else ""),
            )
        # (a header's text, its control characters escaped: printed raw, they move the cursor)
        patients = sorted({printable(info.patient_id or "?") for info in found if info.is_image})
        for info in found:
            # rows of two patients can look the same: each says whose it is
            whose = f"{printable(info.patient_id or '?')}: " if len(patients) > 1 else ""
            print(whose + info.summary())
        if len(patients) > 1:
            log.warning(
                "%s %d patients (%s): --series picks one", SEVERAL_PATIENTS, len(patients),
                ", ".join(patients),
            )  # fmt: skip
        if unreadable:
            log.warning("%s", _skipped_text(unreadable))
        return 0
    output = Path(args.output)
    as_folder = str(args.output).endswith(("/", os.sep))  # "-o nifti/": a folder, said so
    if as_folder and is_nifti_path(output):
        raise InputError(
            output,
            "a folder named like a NIfTI file: give -o ct.nii.gz for one CT, or a folder name "
            "without that ending for a NIfTI dataset",
        )
    if as_folder or _is_dataset_output(output):
        return _convert_to_dataset(args, source, output)
    if getattr(args, "clinical", None) is not None:
        raise InputError(
            args.clinical,
            "--clinical is for a dataset (-o FOLDER), whose root gets the clinical table; one "
            "CT converted to a NIfTI file takes none",
        )
    if output.is_dir():
        raise InputError(output, "is a folder: -o takes the NIfTI file to write, e.g. -o ct.nii.gz")
    if not is_nifti_path(output):
        raise InputError(
            output,
            "the output name must end in .nii.gz or .nii (one CT), or be a folder (a name "
            "without an ending, or ending in /): every patient into a NIfTI dataset",
        )
    if output.exists() and source.is_file() and os.path.samefile(output, source):
        # (with --force it rewrote its own input: a float NIfTI came back rounded to int16)
        raise InputError(output, "is the input itself: give the converted CT another name")
    if output.exists() and not args.force:
        raise InputError(output, "already exists; use --force to overwrite it")
    if output.is_symlink() and not output.exists() and not args.force:
        raise InputError(
            output,
            f"is a link to a missing file ({os.readlink(output)}): remove it, name another "
            "output, or use --force to replace the link",
        )
    check_path_lengths(output, [output], choose="an output path (-o)")  # (Windows' MAX_PATH)
    check_writable_folder(output.parent)  # a file in the way, a read-only folder: said first
    if args.meta is not None:  # found out before anything is written
        check_path_lengths(args.meta, [args.meta], choose="a --meta path")
        if args.meta.is_dir():
            raise InputError(args.meta, "--meta takes a JSON file name, and this is a folder")
        _refuse_meta_over_a_scan(args.meta, output, source)
        if args.meta.exists() and not args.force:
            raise InputError(args.meta, "already exists; use --force to overwrite it")
        # its folder too: the NIfTI was written, then --meta failed naming a temporary file
        check_writable_folder(args.meta.parent)
    if source.is_file() and is_nifti_path(source):
        volume = read_nifti(source)
    else:
        from ..io import load_ct

        # as segment reads it: a PNG, a folder of NIfTI files or of masks only, are said so
        volume = load_ct(source, args.series, acquisition=args.acquisition)
    if volume.shape[0] == 1:  # segment and the Load panel refuse it; written, but said
        print(
            "livertumor convert: warning: a single image (a scout or localizer?), not a CT "
            "volume: written as a one-slice NIfTI, which segment refuses",
            file=sys.stderr,
        )
    for warning in volume.meta.get("warnings", []):
        if SEVERAL_PATIENTS in warning and not args.series:
            # one of them, chosen by the tool, written with exit 0: a script took it for the
            # patient it meant
            raise InputError(
                source,
                f"{warning.split(';')[0]}: one CT file takes one patient's scan. Give that "
                "patient's folder, or --series UID (`livertumor convert FOLDER --list` lists "
                "them), or give -o a folder name to convert each patient into a NIfTI dataset",
            )
        print(f"livertumor convert: warning: {warning}", file=sys.stderr)
    modality = str(volume.meta.get("modality") or "CT").upper()
    if modality != "CT":  # converted as asked (--series), but said, and kept in the header
        from ..io.dicom import printable

        print(
            f"livertumor convert: warning: {source}: the series is {printable(modality)}, not "
            "CT: written, its header's description marked so; segment refuses it (unless "
            "--allow-non-ct)",
            file=sys.stderr,
        )
    from ..pipeline import _label_map_values

    label_values = _label_map_values(volume.array)
    if label_values:  # converted all the same (a label map may be what is wanted), but said
        print(
            f"livertumor convert: warning: {source} holds only the values {label_values}: a "
            "label map (a segmentation), not a CT in Hounsfield units; segment will refuse it",
            file=sys.stderr,
        )
    else:
        for note in _hu_notes(volume, source):
            print(f"livertumor convert: warning: {source}: {note}", file=sys.stderr)
    if (volume.meta.get("nifti_qform") or {}).get("from_zero_pixdim"):
        # the qform nibabel made of a pixdim of 0 (1 mm) is not this new CT's: it gets the
        # sform's geometry whole (given it, SimpleITK read 1 mm slices where we said 8.56)
        volume.meta.pop("nifti_qform")
    # without --force, not even a file another run wrote there meanwhile is replaced
    write_nifti(volume, output, overwrite=bool(args.force))
    if args.meta is not None:
        meta = {k: v for k, v in volume.meta.items() if k not in ("files", "unused_files")}
        meta.update(
            shape=list(volume.shape), spacing=list(volume.spacing), affine=volume.affine.tolist()
        )
        try:
            _write_json(args.meta, meta)
        except OSError as exc:
            raise InputError(
                args.meta,
                f"could not be written ({exc.strerror or exc}); the CT itself was written to "
                f"{output} (kept)",
            ) from exc
    from ..io.dicom import printable
    from ..io.volume import Reorientation, spacing_text

    # told as the panels and segment see it (axial slices): a transposed NIfTI (KiTS's) was
    # "96 slices of 96x32, 3.87x9.44 mm pixels" where Load says 32 slices of 9.44 mm
    turn = Reorientation.to_standard(volume.direction)
    z, y, x = (volume.shape[a] for a in turn.perm)
    dims = "x".join(map(str, volume.shape[::-1]))  # the header's: x y z of the array stored
    stored = "" if tuple(turn.perm) == (0, 1, 2) else f" (stored as {dims}: the header's dims)"
    print(
        f"wrote {output}: {z} slices of {y}x{x}{stored}, "
        f"{spacing_text(turn.apply_spacing(volume.spacing), 'x')}, "
        f"series '{printable(volume.meta.get('description', ''))}' "
        f"({printable(volume.meta.get('series_uid', '-'))})"
    )
    return 0


#: the Decathlon-style index ``convert -o FOLDER`` writes beside ``convert.json``
DATASET_JSON = "dataset.json"

#: the classes of the label maps (HCC-TACE-Seg's five; a NIfTI dataset's 0/1/2 are the first)
DATASET_LABELS = {"0": "background", "1": "liver", "2": "tumor", "3": "portal vein", "4": "aorta"}


def decathlon_index(outdir: Path, cases: list[dict], source=None) -> dict:
    """The ``dataset.json`` of the Medical Segmentation Decathlon for the converted cases
    whose image is there: ``training`` (image and label, ``./imagesTr/…``), ``test`` (the
    images without a ground truth, ``./imagesTs/…``); a case being written or failed is left
    out."""
    training, test = [], []
    for row in sorted(cases, key=lambda r: str(r.get("case", ""))):
        image, labels = row.get("image"), row.get("labels")
        if row.get("status") in ("pending", "failed") or not image:
            continue
        if not (outdir / str(image)).is_file():
            continue
        if labels and (outdir / str(labels)).is_file():
            training.append({"image": f"./{image}", "label": f"./{labels}"})
        else:
            test.append(f"./{image}")
    return {
        "name": Path(outdir).resolve().name,
        "description": "abdominal CT with liver and tumor labels, converted by "
        # the source folder by its name (a path holds the user's folders, often a patient's
        # name above a download: dataset.json is the file passed on with the images)
        f"napari-livertumor{f' from {_folder_name(source)}' if source else ''} (convert.json "
        "names each case's source)",
        "reference": "the source data's (HCC-TACE-Seg: doi:10.7937/TCIA.5FNA-0924)",
        "licence": "the source data's",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": dict(DATASET_LABELS),
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }


def _folder_name(source) -> str:
    return Path(str(source).rstrip("/\\")).name or str(source)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------- -o FOLDER
def _is_dataset_output(output: Path) -> bool:
    """A folder, or a name with no ending at all (``-o nifti``): a dataset to write. A folder
    with a NIfTI name (``ct.nii.gz/``) is said to be in the way, as before."""
    from ..io.nifti import is_nifti_path

    if is_nifti_path(output):
        return False
    return output.is_dir() or (not output.exists() and not output.suffix)


def _convert_to_dataset(args, source: Path, outdir: Path) -> int:
    from dataclasses import replace

    from ..io.nifti import is_nifti_path
    from ..signals import exit_status, sigterm_as_interrupt
    from .segment import discover_cases

    if args.series or args.acquisition is not None:
        raise InputError(
            None,
            "--series and --acquisition choose one series: give -o a .nii.gz file for it, "
            "not a folder",
        )
    clinical = getattr(args, "clinical", None)
    if clinical is not None:  # read now: not found unreadable after hours of converting
        from ..io.clinical import read_clinical

        if not Path(clinical).exists():
            raise InputError(
                clinical, "clinical table not found (--clinical takes an XLSX or CSV file)"
            )
        read_clinical(clinical)  # (a folder, an unreadable file: said, naming it)
        from ..training.data import NOT_CLINICAL

        name = Path(clinical).name
        if (
            Path(clinical).suffix.lower() not in (".xlsx", ".csv")
            or name.lower() in NOT_CLINICAL
            or name.startswith((".", "~"))
        ):
            raise InputError(
                clinical,
                "train finds a dataset's clinical table as an .xlsx or .csv file (not a hidden "
                "one, nor metadata.csv): save it as one under another name, then give that",
            )
    if args.meta is not None:
        raise InputError(
            args.meta,
            "--meta is for one CT; a folder output gets every case's source and metadata in "
            f"{outdir / 'convert.json'}",
        )
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "is a file: -o takes a folder (or a .nii.gz file)")
    if source.is_dir() and same_file(source.resolve(), outdir.resolve()):
        # (said as that: it was "no CT found outside the output folder")
        raise InputError(
            outdir,
            "the output folder is the input folder: give another -o (a new folder, beside "
            "the input or inside it)",
        )
    if source.is_dir():
        from ..io import holds_no_scan_file, no_dicom_error

        if holds_no_scan_file(source):
            # said as `segment` says it, before OUT is made: it said only "no DICOM files
            # found" and left an empty dataset (convert.json, dataset.json, imagesTs/)
            raise no_dicom_error(source)
    made = [p for p in (outdir, *outdir.absolute().parents) if not p.exists()]
    outdir.mkdir(parents=True, exist_ok=True)
    check_writable_folder(outdir)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):  # a read-only one: said before any reading
        if (outdir / sub).exists():
            check_writable_folder(outdir / sub)
    found = discover_cases([source])
    out_resolved = outdir.resolve()
    folded = str(out_resolved).casefold()

    def in_output(path: Path) -> bool:  # (spelled in another letter case: macOS keeps both)
        path = path.resolve()
        return any(
            p == out_resolved or (str(p).casefold() == folded and same_file(p, out_resolved))
            for p in (path, *path.parents)
        )

    # the dataset written inside its own input is not a patient of it on the next run
    cases = [c for c in found if not in_output(c.path)]
    if not cases:
        raise InputError(source, "no CT found outside the output folder")
    # one patient's (or study's) folder given: its case is named by its PatientID, as a folder
    # of patients names each by its folder (and the clinical table by that ID)
    by_patient = len(cases) == 1 and cases[0].path.resolve() == source.resolve()
    for i, case in enumerate(cases):
        if by_patient and not is_nifti_path(case.path):
            cases[i] = _named_by_patient(case)
        elif case.patient is not None:  # named by its PatientID too: bounded alike
            cases[i] = replace(case, name=_bounded_name(case.name))
    files, direct = _dataset_files(outdir, cases, clinical)
    try:  # the names known: every file's path fits Windows' limit, or nothing is written
        check_path_lengths(outdir, files, direct=direct)
    except InputError:
        for folder in made:  # those made above for the checks (deepest first): not left
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    print(
        f"converting {len(cases)} case(s) from {source} into {outdir}"
        + (" (existing ones kept: --force writes them again)" if not args.force else ""),
        flush=True,
    )
    rows: list[dict] = []
    summary = {"source": str(source), "output": str(outdir), "cases": rows}
    earlier = _earlier_rows(outdir / "convert.json", force=args.force)
    chosen_earlier = _earlier_choice(outdir / "convert.json")  # (before this run rewrites it)
    interrupted: KeyboardInterrupt | None = None
    table_error: str | None = None  # the clinical table's copy failed: said with the cases'

    record = outdir / "convert.json"
    #: this run, in its pending records (its own, when it stops, go with it)
    import platform
    import uuid

    run_id = f"{os.getpid()}@{platform.node()}:{uuid.uuid4().hex[:12]}"

    def write_summary() -> None:
        # the file tells what the folder holds: a case refused here keeps its earlier row, and
        # the cases of earlier runs not given this time stay listed while their images are
        # there. Written after every case: a run killed outright (kill -9, a crash) leaves the
        # record of what it converted, which a rerun checks (its cases were kept unchecked).
        # Read again and written holding its lock: runs into one folder at once (a job
        # array) each wrote what it had read at its start, and lost the others' records
        with file_lock(record.with_name(f"{temp_prefix(record)}lock"), wait_s=60.0) as held:
            if not held:
                log.warning("%s: another run held it for over a minute; written anyway", record)
            try:
                now = _earlier_rows(record, force=True)
            except Exception:  # noqa: BLE001 - as read at the start
                now = {}
            others = {**earlier, **now}  # (another run's rows as they are now)
            listed = [
                # a case of this run refused: its record as this run found it
                (earlier.get(r["case"]) or others[r["case"]])
                if r.get("untouched") and r["case"] in others
                else r
                for r in rows
            ]
            given = {r["case"] for r in rows}
            listed += [
                r
                for name, r in sorted(others.items())
                if name not in given
                and r.get("image")
                and (
                    (outdir / str(r["image"])).is_file()
                    or _pending_elsewhere(r, run_id)
                    # stopped while it moved a case between imagesTs/ and imagesTr/: its
                    # old image is there (without a record, refused by every later run)
                    or (r.get("status") == "pending" and _an_image_of(outdir, name))
                )
            ]
            summary["cases"] = [
                {k: v for k, v in r.items() if k not in ("untouched", "said")} for r in listed
            ]
            _write_json(record, summary)
            # the Medical Segmentation Decathlon's index of the same folder: MONAI's
            # load_decathlon_datalist reads it, nnU-Net's nnUNetv2_convert_MSD_dataset converts
            # from it (a failed write is said, never the conversion's end)
            try:
                # (nnU-Net's converter asserts an imagesTs/ folder, even an empty one)
                (outdir / "imagesTs").mkdir(exist_ok=True)
                _write_json(
                    outdir / DATASET_JSON,
                    decathlon_index(outdir, summary["cases"], source=summary.get("source")),
                )
            except OSError as exc:
                log.warning("%s not written: %s", outdir / DATASET_JSON, exc)
            if held:  # a killed run's temporary copies (a minute old: no run's at work)
                remove_stale_temps(record, 60.0, ".tmp")

    def pending(row: dict) -> None:
        """Record a case as being written before its files are put in place: a run killed
        between the two left an image no record told of, refused by every later run."""
        rows.append({**row, "status": "pending", "run": run_id, "pending_since": time.time()})
        try:
            write_summary()
        finally:
            rows.pop()

    try:
        with sigterm_as_interrupt():
            for i, case in enumerate(cases, 1):  # (named above)
                row = _convert_case(
                    case,
                    outdir,
                    force=args.force,
                    nifti=is_nifti_path(case.path),
                    earlier=earlier.get(case.name),
                    pending=pending,
                )
                if row["status"] == "kept" and case.name in earlier:  # what it was made from
                    row = {**earlier[case.name], **row}
                    row.pop("ground_truth_new", None)  # said by the run that took it up
                    if STOPPED_NOTE in (row.get("warnings") or []):  # (an older version's)
                        row["warnings"] = [w for w in row["warnings"] if w != STOPPED_NOTE]
                    if "labels" not in row or not (outdir / str(row["labels"])).is_file():
                        row.pop("labels", None)  # (its record's, gone since)
                        row.pop("label_voxels", None)
                before = earlier.get(case.name) or {}
                if (
                    row["status"] == "failed"
                    and before.get("image")
                    and all(
                        (outdir / str(before[k])).is_file()
                        for k in ("image", "labels")
                        if before.get(k)
                    )
                ):
                    # its earlier image is still there, made from what the record says: the
                    # record stays (without it, the next run refused that image as unknown)
                    row["untouched"] = True
                rows.append(row)
                print(f"[{i}/{len(cases)}] {_case_line(row)}", flush=True)
                # (a kept case's row holds its earlier run's warnings: said then)
                said = [*row.get("said", []), *row.get("warnings", [])]
                for warning in said if row["status"] != "kept" else []:
                    print(f"livertumor convert: {case.name}: warning: {warning}", file=sys.stderr)
                summary["interrupted"] = True  # until the last case is in
                write_summary()
            # the table goes with this input's patients: not beside another cohort's images
            # when every case was refused
            if any(r["status"] in ("written", "kept") for r in rows):
                # the dataset's patients: this run's and earlier runs' still there
                ours = {r["case"] for r in rows if r["status"] in ("written", "kept")}
                ours |= {
                    name
                    for name, r in earlier.items()
                    if r.get("image") and (outdir / str(r["image"])).is_file()
                }
                try:
                    summary["clinical"] = _copy_clinical(
                        source,
                        outdir,
                        force=args.force,
                        chosen=clinical,
                        cases=sorted(ours),
                        chosen_before=chosen_earlier,
                    )
                except OSError as exc:  # a full disk: the cases' lines and counts still said
                    from ..cli import _os_error_path

                    where = _os_error_path(exc)
                    table_error = (
                        f"clinical table not copied: {f'{where}: ' if where else ''}"
                        f"{exc.strerror or exc}"
                    )
                # a table chosen with --clinical: later runs keep it without a warning
                if clinical is not None and summary["clinical"] == _target_name(clinical):
                    summary["clinical_chosen"] = str(Path(clinical).resolve())
                elif chosen_earlier and summary["clinical"] == _target_name(chosen_earlier):
                    summary["clinical_chosen"] = chosen_earlier
    except KeyboardInterrupt as exc:
        interrupted = exc
    summary["interrupted"] = interrupted is not None
    write_summary()
    # a folder of several patients converted before as one case (by an earlier version): that
    # image is one of the patients now converted each on their own, so it is in twice
    split = {str(Path(c.path).resolve()) for c in cases if c.patient is not None}
    given = {r["case"] for r in rows}
    for name, r in sorted(earlier.items()):
        # (a row with a patient is one of this split's, whose files have left the folder)
        if (
            name not in given
            and r.get("source_path") in split
            and r.get("image")
            and ("patient" not in r)
        ):
            if (outdir / str(r["image"])).is_file():
                print(
                    f"livertumor convert: warning: {r['image']} was converted from "
                    f"{r['source_path']} as one case; that folder holds several patients, now "
                    "each a case of its own, so one of them is in the dataset twice: remove "
                    f"{r['image']} (and its labels) before training",
                    file=sys.stderr,
                )
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed:
        print(f"livertumor convert: {r['case']} failed: {r['error']}", file=sys.stderr)
    if table_error is not None:
        print(f"livertumor convert: error: {table_error}", file=sys.stderr)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("written", "kept", "failed")}
    labelled = sum(bool(r.get("labels")) for r in rows if r["status"] != "failed")
    if interrupted:
        print(
            f"livertumor convert: interrupted after {len(rows)} of {len(cases)} case(s); the "
            "files written are whole. Run the same command again to convert the rest.",
            file=sys.stderr,
        )
        return exit_status(interrupted)
    print(
        f"{counts['written']} written, {counts['kept']} kept, {counts['failed']} failed; "
        f"{labelled} with ground truth (imagesTr/ + labelsTr/), "
        f"{len(rows) - len(failed) - labelled} without (imagesTs/). Summary: "
        f"{outdir / 'convert.json'}"
    )
    if labelled:
        print(f"train on it: livertumor train --data {outdir} --out RUN_FOLDER")
    return 1 if failed or table_error is not None else 0


#: why a case recorded as pending (a run stopped while writing it) is converted again
STOPPED_NOTE = "a run was stopped while it wrote this case: converted again"

#: how long another run's record of a case it is writing, with no image there, is kept (a
#: case is written in minutes at most: older, that run was stopped before placing it)
PENDING_KEPT_S = 3600.0


def _dataset_files(outdir: Path, cases, clinical) -> tuple[list[Path], list[Path]]:
    """The files ``convert -o FOLDER`` writes for ``cases``, written through temporary names
    and as named: each case's image and labels (the three folders' names are of one length),
    the records, and the clinical table's copy (the replaced one's beside it, dated)."""
    files = [outdir / "convert.json", outdir / DATASET_JSON]
    files += [outdir / "imagesTr" / f"{case.name}.nii.gz" for case in cases]
    direct = []
    if clinical is not None:
        target = outdir / _target_name(clinical)
        files.append(target)
        direct.append(target.with_name(f"{target.name}.replaced-{'0' * 8}-{'0' * 6}"))
    return files, direct


def _an_image_of(outdir: Path, case: str) -> bool:
    return any((outdir / sub / f"{case}.nii.gz").is_file() for sub in ("imagesTr", "imagesTs"))


def _pending_elsewhere(row: dict, run_id: str) -> bool:
    """A record of a case another run is writing now, its image not placed yet: kept (dropped,
    a kill after the image was placed left it unrecorded). This run's own, when it stopped,
    and another's an hour old are not."""
    if row.get("status") != "pending" or row.get("run") == run_id:
        return False
    try:
        # (a time ahead of this clock, another machine's or an edit: as far off either way)
        return abs(time.time() - float(row.get("pending_since") or 0)) < PENDING_KEPT_S
    except (TypeError, ValueError):
        return False


def _earlier_choice(path: Path) -> str | None:
    """The table an earlier run was given with --clinical (``convert.json``), if any."""
    try:
        chosen = json.loads(path.read_text(encoding="utf-8")).get("clinical_chosen")
    except (OSError, ValueError, AttributeError):
        return None
    return chosen if isinstance(chosen, str) else None


def _target_name(table: str | Path) -> str:
    """The name a clinical table gets in the dataset: its own, the ending in lower case (train
    looks for *.xlsx and *.csv)."""
    table = Path(table)
    return table.stem + table.suffix.lower()


def _earlier_rows(path: Path, *, force: bool = False) -> dict[str, dict]:
    """The cases an earlier run's ``convert.json`` describes (none when there is none).

    One that cannot be read is refused (InputError) unless ``force``: every patient would have
    no record, be refused, and the file be replaced by rows that know nothing."""
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("cases", [])
        return {r["case"]: r for r in rows if isinstance(r, dict) and r.get("status") != "failed"}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        if force:
            return {}
        raise InputError(
            path,
            f"cannot be read ({type(exc).__name__}: {exc}): it records what each image of the "
            "folder was converted from. Move it aside and run again (each image there is then "
            "refused as unrecorded), or use --force to convert every patient again",
        ) from exc


def _named_by_patient(case):
    """``case`` named by the PatientID of the CT its folder holds (a study folder's name is a
    date and a protocol); as it was when that cannot be read."""
    from dataclasses import replace

    from ..io.dicom import discover_series
    from .segment import _safe

    try:
        ids = {s.patient_id for s in discover_series(case.path) if s.is_ct and s.patient_id}
    except LiverTumorError:
        return case
    return replace(case, name=_bounded_name(_safe(ids.pop()))) if len(ids) == 1 else case


#: a case name from a PatientID longer than this, in bytes, is shortened: a file name has 255
#: at most, with ``.nii.gz`` added. Only a name whose file could not be written is: shorter
#: ones were written as they are before (a rerun into such a dataset must find its cases
#: again, not convert them anew under a second name)
_LONG_CASE_NAME = 255 - len(".nii.gz")


def _bounded_name(name: str) -> str:
    """``name``, or for a long one (a PatientID of 300 characters: "File name too long") its
    first 40 bytes and a hash of it whole, as :func:`fileio.temp_prefix` shortens a long name:
    two long IDs that begin alike stay two cases, and a rerun finds the same name."""
    import hashlib

    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= _LONG_CASE_NAME:
        return name
    digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:12]
    # (a letter of several bytes cut at the 40th: left out, not half written)
    return f"{raw[:40].decode('utf-8', 'ignore')}-{digest}"


def _ground_truth_files(path: Path, *, nifti: bool) -> list[str]:
    """The ground-truth files a case's source holds: its DICOM SEG objects (whichever series
    they are drawn on), or a NIfTI dataset image's label map; named within the case's folder
    (the dataset's, for a NIfTI), so a download moved or named another way is the same."""
    if nifti:
        labels = _dataset_labels(path)
        return [_within(labels, path.parent.parent)] if labels is not None else []
    from ..io.dicom import discover_series

    try:
        found = discover_series(path)
    except LiverTumorError:
        return []
    return sorted(_within(f, path) for s in found if s.modality == "SEG" for f in s.files)


def _within(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _same_scan(case, earlier: dict, *, nifti: bool) -> bool:
    """Is a case found elsewhere (a download moved or copied) the scan converted before? A DICOM
    folder holding the same series (by UID) is; a NIfTI cannot be told apart by its name."""
    if nifti or not earlier.get("series_uid"):
        return False
    from ..io.dicom import discover_series

    try:
        return any(s.uid == earlier["series_uid"] for s in discover_series(case.path))
    except LiverTumorError:
        return False


def _source_stamp(path: Path, *, nifti: bool, outdir: Path | None = None) -> list:
    """What a case's source is now: a NIfTI image's (and its dataset labels') size and time,
    or a DICOM folder's :func:`_source_signature` (``outdir`` inside it left out)."""
    if not nifti:
        return _source_signature(path, skip=outdir)
    stamp: list = []
    for f in (path, _dataset_labels(path)):
        try:
            st = Path(f).stat() if f is not None else None
        except OSError:
            st = None
        stamp.append([st.st_size, st.st_mtime_ns] if st is not None else None)
    return stamp


def _source_signature(path: Path, skip: Path | None = None) -> list[int]:
    """How many files a case's source folder holds and the newest modification time: unchanged,
    no file was added (its DICOM headers need not be read again to know). A folder ``skip``
    inside it (the dataset being written there) is not counted."""
    count, newest = 0, 0
    skip_real = os.path.realpath(skip) if skip is not None else None
    from ..fileio import walk

    for root, dirs, files in walk(path):
        if skip_real is not None:
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip_real]
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
            except OSError:
                continue
            count += 1
    return [count, newest]


def _gained_ground_truth(case, *, nifti: bool, earlier: dict | None) -> list[str]:
    """Ground-truth files of a case converted to imagesTs/ that its conversion did not see (a
    DICOM SEG downloaded later): the case is converted again, to imagesTr/ if one is its own."""
    seen = (earlier or {}).get("ground_truth_seen")
    if (
        not nifti
        and isinstance(seen, list)
        and (earlier or {}).get("source_signature") == _source_signature(case.path)
    ):
        return []  # no file added or changed since: no header read again
    now = _ground_truth_files(case.path, nifti=nifti)
    if not isinstance(seen, list):  # converted by an older version, or convert.json lost
        return now
    return sorted(set(now) - {str(s) for s in seen})


def _convert_case(
    case,
    outdir: Path,
    *,
    force: bool,
    nifti: bool,
    earlier: dict | None = None,
    pending=None,
) -> dict:
    """Read one case, write its CT (and ground truth), and say what was done. ``earlier`` is
    its row in the last run's ``convert.json``, if any; ``pending(row)`` records the case
    before its files are put in place."""
    row: dict = {"case": case.name, "source": str(case.path)}
    if case.patient is not None:  # one patient of a folder holding several
        row["patient"] = case.patient
    name = f"{case.name}.nii.gz"
    tr, ts, lab = outdir / "imagesTr" / name, outdir / "imagesTs" / name, outdir / "labelsTr" / name
    for final in (tr, ts, lab):  # a killed run's copies, whether it is kept or written now
        remove_stale_temps(final, STALE_TEMP_S)
    gained: list[str] = []
    changed = ""
    if not force and (tr.exists() or ts.exists()):
        image = tr if tr.exists() else ts
        made_from = (earlier or {}).get("source_path")
        stamp = (earlier or {}).get("source_stamp")
        here = str(Path(case.path).resolve())
        if earlier is None:
            # no record of what it was converted from (convert.json removed, or a file put
            # there by hand): it cannot be told from another patient of the same name
            row.update(
                status="failed",
                untouched=True,
                error=f"{outdir / image.relative_to(outdir)} exists, but convert.json has no "
                "record of what it was converted from; nothing was overwritten: use another "
                "output folder, or --force to convert it again",
            )
            return row
        same = stamp is None or stamp == _source_stamp(case.path, nifti=nifti, outdir=outdir)
        if (
            not same
            and made_from not in (None, here)
            and not _same_scan(case, earlier, nifti=nifti)
        ):
            # another patient's folder of the same name (a new download, another cohort)
            row.update(
                status="failed",
                untouched=True,
                error=f"{outdir / image.relative_to(outdir)} was converted from another input "
                f"({made_from}); nothing was overwritten: use another output folder, or --force "
                "to replace it",
            )
            return row
        if image == ts:  # a DICOM SEG downloaded since: converted again, to imagesTr/
            gained = _gained_ground_truth(case, nifti=nifti, earlier=earlier)
        if earlier.get("status") == "pending":  # a run was stopped while it put it in place
            changed = STOPPED_NOTE
        elif image == tr and not lab.exists():  # its label map deleted since: made again
            changed = f"its label map {lab.relative_to(outdir)} is gone: converted again"
        elif not same and not gained:
            changed = (
                "its source files changed since it was converted: converted again"
                if made_from in (None, here)
                else f"converted before from {made_from}, the same scan by its series UID but "
                "with other file times (moved or copied?): converted again"
            )
        if not changed and not gained:
            row.update(status="kept", image=str(image.relative_to(outdir)))
            if image == tr and lab.exists():
                row["labels"] = str(lab.relative_to(outdir))
            return row
    t0 = time.perf_counter()
    try:
        volume, labels, warnings = _read_case(case.path, nifti=nifti, patient=case.patient)
        if changed == STOPPED_NOTE:
            # said by this run, not kept in convert.json: written whole now, the case's record
            # told of a stopped write for good
            row["said"] = [changed]
        elif changed:
            warnings.insert(0, changed)
        warnings += _hu_notes(volume, case.path)
        if volume.shape[0] < 2:  # written, as asked; said, as segment and training refuse it
            warnings.append(
                "one slice only: segment and training need at least 2 (a scout or a key image?)"
            )
        row.update(_volume_facts(volume), warnings=warnings)
        # what the case was made from: a later run keeps it only for the same, unchanged input
        row.update(
            source_path=str(Path(case.path).resolve()),
            source_stamp=_source_stamp(case.path, nifti=nifti, outdir=outdir),
        )
        if pending is not None:
            target = tr if labels is not None else ts
            pending({**row, "image": str(target.relative_to(outdir))})
        if labels is not None:
            counts = {
                _CLASS_NAMES[k]: int(n)
                for k, n in enumerate(_bincount(labels))
                if k in _CLASS_NAMES and n
            }
            _write_pair(volume, labels, tr, lab)
            for stale in (ts,):  # converted before without its SEG: not twice in the dataset
                stale.unlink(missing_ok=True)
            row.update(
                image=str(tr.relative_to(outdir)),
                labels=str(lab.relative_to(outdir)),
                label_voxels=counts,
            )
        else:
            _write_image(volume, ts)
            for stale in (tr, lab):
                stale.unlink(missing_ok=True)
            row["image"] = str(ts.relative_to(outdir))
            # what a rerun compares with, to take up a SEG added to the download later
            row["ground_truth_seen"] = _ground_truth_files(case.path, nifti=nifti)
            if not nifti:
                row["source_signature"] = _source_signature(case.path)
        if gained:
            row["ground_truth_new"] = [Path(f).name for f in gained]
        row.update(status="written", seconds=round(time.perf_counter() - t0, 2))
    except (LiverTumorError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        text = str(exc) or type(exc).__name__  # an input error already names its file
        if isinstance(exc, OSError) and getattr(exc, "filename", None):
            text = f"{exc.filename}: {exc.strerror or exc}"
        if isinstance(exc, MemoryError):  # numpy's "Unable to allocate 900. MiB ..."
            text = f"out of memory ({text}): close other programs, or use a bigger machine"
        row.update(status="failed", error=text)
    except Exception as exc:  # noqa: BLE001 - one patient's surprise must not end the run
        log.debug("%s", case.name, exc_info=True)
        row.update(
            status="failed",
            error=f"unexpected error ({type(exc).__name__}: {exc}); input {case.path}",
        )
    return row


def _axis_codes(volume) -> str:
    """Where a volume's stored x, y, z index axes point ("LPS", "RAS"…)."""
    from ..io.volume import Reorientation

    return Reorientation.to_standard(volume.direction).codes


def _read_case(path: Path, *, nifti: bool, patient: str | None = None):
    """The case's CT (``patient``'s, of a folder holding several), its ground truth from the
    DICOM SEG drawn on it (or None) and warnings."""
    if nifti:
        from ..io.nifti import read_nifti

        volume = read_nifti(path)
        warnings = list(volume.meta.get("warnings", []))
        label_path = _dataset_labels(path)
        if label_path is None:
            return volume, None, warnings
        try:  # a NIfTI dataset's image: its labels come along, checked against its grid
            labels = read_nifti(label_path)
        except LiverTumorError as exc:
            warnings.append(
                f"its labels {label_path} could not be read ({exc}); the CT goes to imagesTs/"
            )
            return volume, None, warnings
        if not volume.fits_labels(labels):
            # the same voxels stored in another axis order (a RAS-saved label map): turned
            # onto the CT's, as training and evaluate read them
            lab_std, _ = labels.to_standard()
            ct_std, turn = volume.to_standard()
            if not ct_std.fits_labels(lab_std):
                warnings.append(
                    f"its labels {label_path} lie on another grid; the CT goes to imagesTs/"
                )
                return volume, None, warnings
            warnings.append(
                f"its labels {label_path} are stored in another axis order "
                f"({_axis_codes(labels)} against the CT's {_axis_codes(volume)}): "
                "written in the CT's"
            )
            array = turn.undo(lab_std.array)
        else:
            array = labels.array
        return volume, _with_liver(array, f"its labels {label_path} hold", warnings), warnings
    from ..io.dicom import read_dicom_series
    from ..io.seg import read_dicom_seg

    volume = read_dicom_series(path, patient_id=patient)
    warnings = list(volume.meta.get("warnings", []))
    seg_files = [Path(f) for f in volume.meta.get("seg_files", [])]
    if not seg_files:
        others = [Path(f).name for f in volume.meta.get("other_seg_files") or ()]
        if others:  # the patient's ground truth is there, but drawn on a series that is not
            warnings.append(
                f"the folder's DICOM SEG ({', '.join(others[:3])}) is drawn on another series "
                "than the one read (missing from the folder?): no ground truth; the CT goes to "
                "imagesTs/"
            )
        return volume, None, warnings
    if len(seg_files) > 1:
        warnings.append(
            f"{len(seg_files)} DICOM SEGs are drawn on this series; the first "
            f"({seg_files[0].name}) is the ground truth written"
        )
    try:
        labels = read_dicom_seg(seg_files[0], volume, warnings=warnings)
    except LiverTumorError as exc:
        warnings.append(f"its DICOM SEG could not be read ({exc}); the CT goes to imagesTs/")
        return volume, None, warnings
    said = f"its DICOM SEG ({seg_files[0].name}) holds"
    return volume, _with_liver(labels, said, warnings), warnings


def _with_liver(labels, they_hold: str, warnings: list[str]):
    """``labels``, or None (the CT goes to imagesTs/, said) when they hold no liver: training
    skips such a patient and evaluate cannot score it. ``they_hold``: "its DICOM SEG (1-1.dcm)
    holds"."""
    from ..training.data import NO_LIVER_WHY

    counts = _bincount(labels)
    if counts[1]:
        return labels
    held = ", ".join(_CLASS_NAMES[k] for k, n in enumerate(counts) if k in _CLASS_NAMES and n)
    # said once: the SEG reader's note that it describes no liver segment goes for this one
    warnings[:] = [w for w in warnings if not w.endswith(NO_LIVER_WHY)]
    warnings.append(
        f"{they_hold} no liver{f' (only {held})' if held else ''}: {NO_LIVER_WHY}; the CT goes "
        "to imagesTs/"
    )
    return None


def _dataset_labels(image: Path) -> Path | None:
    """``labelsTr/<case>.nii.gz`` of an ``imagesTr/<case>[_0000].nii.gz`` image, if there."""
    if image.parent.name != "imagesTr":
        return None
    name = image.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            stem, ext = name[: -len(suffix)], name[-len(suffix) :]
            break
    else:
        return None
    labels_dir = image.parent.parent / "labelsTr"
    for candidate in (stem, stem[:-5] if stem.endswith("_0000") else None):
        if candidate:
            for e in (ext, ".nii.gz", ".nii"):
                if (labels_dir / f"{candidate}{e}").is_file():
                    return labels_dir / f"{candidate}{e}"
    return None


def _bincount(labels):
    import numpy as np

    return np.bincount(np.asarray(labels, dtype=np.uint8).ravel(), minlength=5)


def _write_image(volume, path: Path) -> None:
    from ..io.nifti import write_nifti

    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(volume, path)


#: a temporary file older than this is a killed run's (one case is written in seconds); a
#: younger one may be another run's, writing the same case now
STALE_TEMP_S = 3600.0


def _write_pair(volume, labels, image: Path, label_path: Path) -> None:
    """The label map first, the CT last: a CT in imagesTr/ means its case is whole (the case
    check on the next run looks at the CT)."""
    import numpy as np

    from ..io.nifti import write_nifti

    label_path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(volume.with_array(np.asarray(labels, dtype=np.uint8)), label_path, labels=True)
    try:
        _write_image(volume, image)
    except BaseException:  # no label map left without its CT (nor a CT of an earlier run)
        label_path.unlink(missing_ok=True)
        raise


def _hu_notes(volume, source) -> list[str]:
    """What segment and the Load panel say of values that do not look like HU (a rescale
    intercept not applied: every value 1024 too high), said by convert too: its NIfTI went on
    to training without a word. Values no CT holds, which segment refuses, are said, not
    refused: the file is written as asked."""
    from ..pipeline import _hu_warnings

    try:
        return _hu_warnings(volume.array, source)
    except InputError as exc:
        return [f"segment will refuse it: {exc.problem}"]


def _volume_facts(volume) -> dict:
    meta = volume.meta
    return {
        "shape": list(volume.shape),
        "spacing": [round(float(v), 4) for v in volume.spacing],
        "patient_id": meta.get("patient_id"),
        "series_uid": meta.get("series_uid"),
        "description": meta.get("description"),
        "phase": meta.get("phase"),
    }


def _case_line(row: dict) -> str:
    if row["status"] == "failed":
        return f"{row['case']}: failed (said below)"
    if row["status"] == "kept":
        extra = f" + {row['labels']}" if row.get("labels") else ""
        return f"{row['case']}: kept {row['image']}{extra} (already there)"
    from ..io.volume import spacing_text

    z, y, x = row["shape"]
    line = (
        f"{row['case']}: {row['image']} {z} slices of {y}x{x}, {spacing_text(row['spacing'], 'x')}"
    )
    if row.get("labels"):
        classes = ", ".join(row.get("label_voxels", {})) or "no labelled voxel"
        line += f" + {row['labels']} ({classes})"
    if row.get("ground_truth_new"):
        new = ", ".join(row["ground_truth_new"][:3])
        more = len(row["ground_truth_new"]) - 3
        line += f" (again: new ground truth {new}" + (f" and {more} more" if more > 0 else "")
        line += ")" if row.get("labels") else "; not drawn on this CT, so it stays unlabelled)"
    return line


def _same_table(a, b) -> bool:
    """Whether two read clinical tables hold the same values: the encoded columns equal, and
    the text columns kept as they were read (an XLSX written again carries its own write time,
    and an XLSX and its CSV export write 18 and 18.0: the same table said to differ)."""
    import pandas as pd

    def text(table):
        cols = [c for c in table.raw.columns if c not in table.frame.columns]
        return table.raw[cols].map(lambda v: "" if pd.isna(v) else str(v).strip())

    try:
        return a.frame.equals(b.frame) and text(a).equals(text(b))
    except Exception:  # noqa: BLE001 - not comparable: not known to be the same
        return False


def _copy_clinical(
    source: Path,
    outdir: Path,
    *,
    force: bool,
    chosen: Path | None = None,
    cases: list[str] | None = None,
    chosen_before: str | None = None,
) -> str | None:
    """The clinical table (``chosen``, else the one beside the patients), read and copied to
    the dataset's root, where ``train`` finds it; returns the name of the table ``train``
    reads there afterwards (None: none).

    The table ``train`` reads there now is kept when it holds the same values, or when it
    differs and the new one was not ``chosen`` (nor ``force``; one chosen on an earlier run,
    ``chosen_before``, is kept without a warning); one that cannot be read is replaced. A
    replaced table, and any other that ``train`` would read before the new one, is renamed
    ``<name>.replaced-<date>`` (a name no reader looks for) once the new one is in place. The
    notes of the table the dataset ends up with, and how many of ``cases`` (the dataset's
    patients) have a row in it, are said. A new table that cannot be read, or (chosen) that
    has a row for none of the patients, is not copied."""
    from ..io.clinical import read_clinical, row_ids_for
    from ..training.data import find_clinical

    def read_by_train() -> Path | None:  # (its notes about other files: not said here)
        data_log = logging.getLogger("napari_livertumor.training.data")
        level = data_log.level
        data_log.setLevel(logging.WARNING)
        try:
            found = find_clinical(outdir)
        finally:
            data_log.setLevel(level)
        return found if found is not None and found.parent.resolve() == outdir.resolve() else None

    if chosen is not None:
        table = Path(chosen)
    elif source.is_dir():
        table = find_clinical(source)
    else:
        table = None
    warn = "livertumor convert: warning:"
    reading = read_by_train()  # the table train reads in the dataset now
    there = None
    if reading is not None:
        try:
            there = read_clinical(reading)
        except InputError as exc:
            print(f"{warn} the dataset's clinical table cannot be read: {exc}", file=sys.stderr)

    def keep(why: str | None) -> str | None:
        if why:
            print(f"{warn} {why}", file=sys.stderr)
        if there is not None:
            _say_clinical(there, cases)
        return reading.name if reading is not None else None

    if table is None:  # nothing new: the dataset's own table (if any) stays the one read
        return keep(None)
    try:
        new = read_clinical(table)
    except InputError as exc:
        kept = (
            f"The dataset keeps its table {reading.name}"
            if reading is not None
            else "The dataset has no clinical table (training runs without the clinical weak term)"
        )
        return keep(
            f"clinical table not copied: {exc}\n  {kept}: fix the table and convert again, or "
            "give another with --clinical"
        )
    if cases and chosen is not None and not row_ids_for(cases, new.frame.index):
        return keep(
            f"clinical table not copied: {table} has a row for none of the dataset's "
            f"{len(cases)} patient(s) (another cohort's table?)"
        )
    target = outdir / _target_name(table)
    inside = table.resolve() == target.resolve()  # chosen where it is: nothing to copy
    if there is not None and not inside:
        if reading.read_bytes() == table.read_bytes() or _same_table(there, new):
            if chosen is not None:
                print(f"clinical table: {reading} holds the same values as {table}: kept")
            return keep(None)
        if chosen is None and not force:
            if chosen_before and reading.name == _target_name(chosen_before):
                log.info("clinical table: %s kept (chosen with --clinical before)", reading)
                return keep(None)
            return keep(
                f"{reading} differs from {table}; kept (--clinical {table} replaces it, the "
                "earlier one kept beside it)"
            )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside: dict[str, str] = {}
    if not inside:
        with atomic_path(target, suffix=target.suffix) as tmp:
            shutil.copyfile(table, tmp)
            if target.exists():  # replaced: a copy kept under another name, then published
                aside[target.name] = _aside(target, stamp, copy=True)
    # a table train would read before the new one (another name found first): set aside too
    for _ in range(50):  # (each round renames one file: a guard, never reached)
        found = read_by_train()
        if found is None or found == target:
            break
        aside[found.name] = _aside(found, stamp)
    _say_clinical(new, cases)
    if read_by_train() != target:  # (a name train would pass over: said, never silent)
        print(f"{warn} {target} is not the table train finds in {outdir}", file=sys.stderr)
    if aside:
        shown = ", ".join(f"{a} as {b}" for a, b in aside.items())
        print(
            f"clinical table {'chosen' if inside else 'replaced'}: {target} (set aside: "
            f"{shown}; rename back to use again)"
        )
    elif inside:
        print(f"clinical table chosen: {target} (in the dataset already)")
    else:
        print(f"clinical table copied: {target}")
    return target.name


def _aside(path: Path, stamp: str, *, copy: bool = False) -> str:
    """Rename ``path`` to ``<name>.replaced-<stamp>`` (``-2``… when taken), or with ``copy``
    copy it there (the file itself about to be replaced in one step); the new name."""
    earlier = path.with_name(f"{path.name}.replaced-{stamp}")
    n = 1
    while earlier.exists():
        n += 1
        earlier = path.with_name(f"{path.name}.replaced-{stamp}-{n}")
    if copy:
        shutil.copy2(path, earlier)
    else:
        os.replace(path, earlier)
    return earlier.name


def _say_clinical(table, cases: list[str] | None) -> None:
    """A clinical table's notes, and how many of ``cases`` have a row in it."""
    from ..io.clinical import row_ids_for

    for line in table.report[1:]:
        if line.startswith("WARNING: "):
            print(
                f"livertumor convert: warning: clinical table: {line.removeprefix('WARNING: ')}",
                file=sys.stderr,
            )
        else:
            print(f"clinical table: {line}")
    if cases:
        matched = row_ids_for(cases, table.frame.index)
        without = [c for c in cases if c not in matched]
        unused = sorted(set(table.frame.index) - set(matched.values()))
        line = f"clinical table: {len(matched)} of {len(cases)} patient(s) have a row"
        if without:
            line += f"; without one: {', '.join(without[:5])}" + (" …" if len(without) > 5 else "")
        if unused:
            line += f"; {len(unused)} row(s) of patients not in this dataset"
        print(line)
