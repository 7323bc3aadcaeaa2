"""``livertumor convert INPUT -o CT.nii.gz``: a DICOM CT series (or a NIfTI) to NIfTI, geometry kept.

``INPUT`` is a folder holding one or more DICOM series (the CT series a DICOM SEG
there references, else the one with the most slices, unless ``--series``), one DICOM file (its series), or a NIfTI file. ``--list`` prints the series found
and writes nothing. The output is written to a temporary name and renamed; an existing output is
kept unless ``--force``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write_text, check_writable_folder


def add_arguments(parser) -> None:
    parser.add_argument("input", type=Path, help="DICOM folder or file, or a .nii/.nii.gz CT")
    parser.add_argument(
        "-o", "--output", type=Path, help="output .nii.gz (or .nii); required unless --list"
    )
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to convert")
    parser.add_argument(
        "--acquisition",
        type=int,
        metavar="N",
        help="AcquisitionNumber to convert when one series stacks several phases",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument(
        "--list", action="store_true", help="list the DICOM series found and exit (no output)"
    )
    parser.add_argument(
        "--meta", type=Path, metavar="JSON", help="also write the source metadata as JSON here"
    )


def run(args) -> int:
    from ..io.nifti import is_nifti_path, read_nifti, write_nifti

    source: Path = args.input
    if not source.exists():
        raise InputError(source, "file or folder not found")
    if args.list:
        from ..io.dicom import discover_series

        found = discover_series(source)
        if not found:
            raise InputError(source, "no DICOM series found")
        for info in found:
            print(info.summary())
        return 0
    if args.output is None:
        raise InputError(None, "give the output file with -o CT.nii.gz")
    output: Path = args.output
    if output.is_dir():
        raise InputError(output, "is a folder: -o takes the NIfTI file to write, e.g. -o ct.nii.gz")
    if not is_nifti_path(output):
        raise InputError(output, "the output name must end in .nii.gz or .nii")
    if output.exists() and not args.force:
        raise InputError(output, "already exists; use --force to overwrite it")
    check_writable_folder(output.parent)  # a file in the way, a read-only folder: said first
    if args.meta is not None:  # found out before anything is written
        if args.meta.is_dir():
            raise InputError(args.meta, "--meta takes a JSON file name, and this is a folder")
        if args.meta.exists() and not args.force:
            raise InputError(args.meta, "already exists; use --force to overwrite it")
        # its folder too: the NIfTI was written, then --meta failed naming a temporary file
        check_writable_folder(args.meta.parent)
    if source.is_file() and is_nifti_path(source):
        volume = read_nifti(source)
    else:
        from ..io import nifti_files_in
        from ..io.dicom import read_dicom_series

        try:
            volume = read_dicom_series(source, args.series, acquisition=args.acquisition)
        except InputError as exc:
            niftis = nifti_files_in(source) if source.is_dir() else []
            if exc.problem == "no DICOM files found" and niftis:
                raise InputError(
                    source,
                    f"no DICOM files found; it holds {len(niftis)} NIfTI file(s) "
                    f"({', '.join(p.name for p in niftis[:3])}{', …' if len(niftis) > 3 else ''}"
                    "): give one of them, or the folder of a DICOM series",
                ) from exc
            raise
    for warning in volume.meta.get("warnings", []):
        print(f"livertumor convert: warning: {warning}", file=sys.stderr)
    write_nifti(volume, output)
    if args.meta is not None:
        meta = {k: v for k, v in volume.meta.items() if k != "files"}
        meta.update(
            shape=list(volume.shape), spacing=list(volume.spacing), affine=volume.affine.tolist()
        )
        _write_json(args.meta, meta)
    z, y, x = volume.shape
    dz, dy, dx = volume.spacing
    print(
        f"wrote {output}: {x}x{y}x{z} voxels, {dx:.3g}x{dy:.3g}x{dz:.3g} mm, "
        f"series '{volume.meta.get('description', '')}' ({volume.meta.get('series_uid', '-')})"
    )
    return 0


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))
