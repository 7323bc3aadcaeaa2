"""NIfTI read/write (nibabel) with the exact grid and affine of the source CT."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .. import memory
from ..errors import Cancelled, InputError
from ..fileio import atomic_path
from ..progress import ProgressFn, Reporter
from .volume import CTVolume

log = logging.getLogger(__name__)


def is_nifti_path(path: str | Path) -> bool:
    """True when the file name ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def read_nifti(path: str | Path, *, reporter: Reporter | ProgressFn | None = None) -> CTVolume:
    """Read a 3D NIfTI file as a :class:`CTVolume`.

    Integer data keep their stored dtype (``int16`` CT, ``uint8`` labels), so a file written
    by :func:`write_nifti` reads back bit for bit. Float data (or scaled integers) that are
    integral or span a HU-like range are rounded to ``int16``; others (e.g. probabilities) stay
    ``float32``. NaNs are replaced by the smallest finite
    value and reported in ``meta["warnings"]`` (their number, infinities included, in
    ``meta["nonfinite_voxels"]``: a label map with them is refused by its readers). A 4D (or 5D) file with one volume is accepted; 2D and
    true 4D data raise :class:`InputError`.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file.
    reporter : napari_livertumor.progress.Reporter, optional
        Progress (``"nifti slices"``, per slab of slices read) and cancellation between slabs.

    Returns
    -------
    CTVolume
        ``array`` in ``(z, y, x)`` order; geometry from the file's sform (or qform).
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    warnings: list[str] = []
    from ..progress import as_reporter

    reporter = as_reporter(reporter)
    try:
        img = _load_image(path, warnings)
    except Exception as exc:  # nibabel raises many types for corrupt files
        what = _what_it_is(path)
        if what:
            raise InputError(path, f"not a NIfTI file: it is {what}") from exc
        raise InputError(path, f"not a readable NIfTI file ({exc})") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(path, f"not a NIfTI image ({type(img).__name__})")
    shape = img.shape
    if len(shape) > 3 and all(n == 1 for n in shape[3:]):  # one volume stored 4D (or 5D)
        shape = shape[:3]
    if len(shape) != 3:
        _close(img)
        message = f"expected a 3D image, got {len(img.shape)}D data of shape {tuple(img.shape)}"
        volumes = int(np.prod(img.shape[3:], dtype=np.int64)) if len(img.shape) > 3 else 0
        if volumes > 1 and len(shape) > 3:
            # (a multiphase or dynamic series saved as one file: refused with no way on)
            message += (
                f": it holds {volumes} volumes (contrast phases or time points, say) and one "
                "CT is segmented at a time. Save the one to segment as its own 3D file, e.g. "
                "with nibabel: img = nibabel.load(path); nibabel.save(img.slicer[..., i], "
                "'phase_i.nii.gz') (i = 0 for the first), or FSL's fslsplit, then open that"
            )
        raise InputError(path, message)
    if 0 in shape:
        _close(img)
        raise InputError(path, f"the image holds no voxels (its shape is {tuple(img.shape)})")
    try:  # before a voxel is read: refusals of the header cost no time (File > Open waits)
        _check_size(path, img, shape)
        raw = _raw_header(path, img)
        layout = _check_layout(path, img, raw, warnings)
        _check_voxel_sizes(path, img, raw)
    except InputError:
        _close(img)
        raise
    try:
        found: dict = {}
        data = _load_data(img, warnings, path, reporter, found)
        if layout is not None and layout["gzipped"]:  # its length, once decompressed
            _check_gz_length(path, img, raw, layout, warnings)
    except (InputError, Cancelled):  # already says what is wrong with the data
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"the image data cannot be read (truncated file?): {exc}") from exc
    finally:
        # the file is kept open while it is read (keep_file_open): closed now, also when the
        # read failed or was stopped (the exception's traceback holds the image, and Windows
        # could not replace or delete a file left open)
        _close(img)
    data = data.reshape(shape)
    affine = img.affine
    codes = (int(img.header["sform_code"]), int(img.header["qform_code"]))
    if affine is None or not np.all(np.isfinite(affine)):
        raise InputError(path, _affine_refusal(img, raw, affine, codes))
    if codes == (0, 0):
        zooms = ", ".join(f"{z:g}" for z in img.header.get_zooms()[:3])
        axes = "".join(nib.aff2axcodes(affine))
        warnings.append(
            f"the header gives no orientation (sform and qform codes 0): its axes are taken "
            f"as {axes} (how nibabel and FSL read such a header; ITK-based tools may read "
            f"another), with voxel sizes {zooms} mm from pixdim; the labels are written the "
            "same way. If left/right or front/back look wrong, the file needs its orientation"
        )
    qform_apart = None
    zero_pixdim = False
    m = np.asarray(affine, float)[:3, :3]
    unit = m / np.maximum(np.linalg.norm(m, axis=0), 1e-12)
    shear = float(np.degrees(np.arccos(np.clip(abs(np.linalg.det(unit)), 0.0, 1.0))))
    if codes[0] > 0 and codes[1] > 0:
        off = _corner_distance(img.get_qform(), affine, shape)
        zero = [
            i
            for i in (1, 2, 3)
            if raw is not None and not (np.isfinite(raw.pixdim[i]) and raw.pixdim[i])
        ]
        if off > 0.5:
            qform_apart = img.get_qform()  # kept for the labels either way
        if off > 0.5 and shear <= 0.05 and zero:  # the qform's cause: a voxel size of 0 (NaN)
            # labels keep this qform (each tool overlays them where it places this CT); a
            # converted CT gets the sform's geometry whole: given this qform back, it said 1 mm
            # slices in pixdim where the sform said 8.56 mm, and SimpleITK read it so
            zero_pixdim = True
            named = ", ".join(f"pixdim[{i}] is {raw.pixdim[i]:g}" for i in zero)
            axes = " ".join("xyz"[i - 1] for i in zero)
            sizes = " × ".join(
                f"{z:.3g}" for z in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
            )
            warnings.append(
                f"{path.name}: the header's {named} (no voxel size along {axes}): the sform, "
                f"intact, is used (voxels of {sizes} mm, as nibabel, FSL and napari read "
                "them). Tools that take voxel sizes from pixdim (SimpleITK and other ITK-based "
                f"tools) read 1 mm along {axes} instead, and place this CT up to {off:.1f} mm "
                "elsewhere. Its labels keep this header's qform, so each tool overlays them "
                "where it places this CT; a converted CT (livertumor convert) gets the sform's "
                "voxel sizes in pixdim and a qform from the sform, so every tool reads it "
                "alike. Fix this file's header (e.g. nibabel's header.set_zooms) and save it"
            )
        elif off > 0.5 and shear <= 0.05:  # (a sheared sform has no exact qform: its own)
            warnings.append(
                f"the header's sform and qform disagree: voxels up to {off:.1f} mm apart. The "
                "sform is used (as nibabel, FSL, napari and current ITK/SimpleITK do); a tool "
                "that reads the qform (FreeSurfer, older ITK) shows this CT elsewhere. The labels "
                "get this file's "
                "own sform and qform, so every tool places them where it places the CT"
            )
    if shear > 0.05:
        warnings.append(
            f"the grid is sheared by {shear:.2f} degrees (a gantry-tilted series): slices are "
            "offset in-plane; kept as the file stores them (not resampled)"
        )
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    # a series of another modality converted by this tool says so in its description
    stored = bytes(img.header["descrip"].tobytes()).split(b"\0")[0].decode("ascii", "replace")
    other = _NON_CT_MARK.match(stored)
    meta = {
        "source": str(path),
        "modality": other.group(1) if other else "CT",
        "description": path.name,
        "patient_id": case_name(path),
        # the layer's name: the file's, and its folder's where the file's says nothing of whom
        # (P1/ct.nii.gz and P2/ct.nii.gz were "ct.nii.gz" and "ct.nii.gz [2]" everywhere)
        "display_name": _display_name(path),
        "warnings": warnings,
        # kept for the labels written on this grid: a reader that takes a header without
        # codes its own way (ITK) then reads the CT and its labels the same way
        "nifti_codes": codes,
    }
    if found.get("nonfinite"):  # replaced by a value: a label map with them is refused
        meta["nonfinite_voxels"] = found["nonfinite"]
    units = str(img.header.get_xyzt_units()[0])
    if units in ("meter", "micron"):  # read as mm (as nibabel does); named if sizes look wrong
        meta["nifti_units"] = units  # and the labels are written in the same units
        zooms = " × ".join(f"{z:g}" for z in img.header.get_zooms()[:3])
        warnings.append(
            f"{path.name}: the header gives its voxel sizes in {units}s; the units are "
            f"ignored and the sizes taken as mm ({zooms} mm), as nibabel reads them. ITK-based "
            "tools (3D Slicer, ITK-SNAP, SimpleITK) convert them, and show this CT "
            f"{'1000 times larger' if units == 'meter' else '1000 times smaller'}; the labels "
            f"are written in {units}s too, so those tools place them on it. If the sizes are "
            "really mm, set the header's units to mm"
        )
    negative = [i for i in (1, 2, 3) if raw is not None and raw.pixdim[i] < 0]
    if negative:
        warnings.append(
            f"{path.name}: the header has a negative voxel size ("
            + ", ".join(f"pixdim[{i}] = {raw.pixdim[i]:g}, along {'xyz'[i - 1]}" for i in negative)
            + "), which tools read differently: nibabel (and this package, napari, FSL) takes "
            "its absolute value, ITK-based tools (3D Slicer, ITK-SNAP, SimpleITK) mirror that "
            "axis, so they show this CT flipped along it. The labels are written with this "
            "file's own geometry fields (pixdim, qform, sform), so each tool places them on the "
            "CT where it places the CT; fix the header (positive pixdim) for one reading"
        )
        # (the labels were written with positive sizes: overlaid in ITK they missed the CT)
        meta["nifti_geometry"] = {"affine": np.asarray(affine).tolist(), **raw.geometry}
    if len(img.shape) > 3:  # one volume stored 4D or 5D: its labels are stored so too
        meta["nifti_shape"] = tuple(int(n) for n in img.shape)
    if qform_apart is not None:  # written back with labels on this grid (see above)
        meta["nifti_qform"] = {"qform": qform_apart.tolist(), "affine": np.asarray(affine).tolist()}
        if zero_pixdim:  # (nibabel's 1 mm for a pixdim of 0: a converted CT leaves it out)
            meta["nifti_qform"]["from_zero_pixdim"] = True
    try:
        return CTVolume.from_affine(array, affine, meta)
    except ValueError as exc:
        raise InputError(path, _affine_refusal(img, raw, affine, codes)) from exc


def _affine_refusal(img, raw: _RawHeader | None, affine, codes: tuple[int, int]) -> str:
    """Why ``affine`` (the header's sform, else its qform, else pixdim: nibabel's choice)
    cannot place the voxels, naming the header field and axis, and how to fix the file ("the
    file has no valid affine" and "affine has a zero-length axis" said neither)."""
    header = raw.header if raw is not None else img.header
    if codes[0] > 0:
        field, names = f"sform (sform_code {codes[0]})", ("srow_x", "srow_y", "srow_z")
    elif codes[1] > 0:
        field = f"qform (qform_code {codes[1]})"
        names = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")
    else:
        field, names = "pixdim (sform and qform codes 0)", ()
    pixdim = np.asarray(header["pixdim"], float)[1:4]
    said = "pixdim says " + " × ".join(f"{v:.3g}" for v in pixdim) + " mm"
    fix = (
        ". Re-save it with a correct affine, e.g. with nibabel: img = nibabel.load(path); "
        "img.set_sform(A, code=1); img.set_qform(A, code=1); nibabel.save(img, 'fixed.nii.gz'), "
        "A being its 4×4 voxel-to-mm matrix (from the scanner's DICOM, say)"
    )
    m = None if affine is None else np.asarray(affine, float)[:3, :3]
    if m is None or not np.all(np.isfinite(np.asarray(affine, float))):
        bad = [n for n in names if not np.all(np.isfinite(np.asarray(header[n], float)))]
        if codes[0] <= 0 and not np.all(np.isfinite(pixdim)):  # (the qform's sizes are pixdim's)
            bad.append("pixdim")
        where = f": {', '.join(bad)}" if bad else ""
        return (
            f"invalid geometry: the header's {field} holds NaN or infinite values{where}, so "
            "its voxels cannot be placed" + fix
        )
    lengths = np.linalg.norm(m, axis=0)
    sizes = " × ".join(f"{v:.3g}" for v in lengths)
    zero = [i for i in range(3) if lengths[i] <= 0]
    if zero:
        # the voxel grid's axes (i, j, k), not the world's x, y, z the srow_* rows are
        ordinal = ("first", "second", "third")
        what = (
            "gives the voxels no length along their "
            + " and ".join(ordinal[i] for i in zero)
            + f" ax{'e' if len(zero) > 1 else 'i'}s ({', '.join('ijk'[i] for i in zero)})"
        )
        if codes[0] > 0:  # the axis is a column of the three rows
            what += (
                " ("
                + " and ".join(f"srow_x[{i}], srow_y[{i}], srow_z[{i}]" for i in zero)
                + " are 0)"
            )
    else:  # (a sheared grid whose slice axis lies in the plane of its rows and columns)
        what = (
            "puts the voxels' third axis (k, slice to slice) in the plane of the other two "
            "(slices 0 mm apart)"
        )
    return (
        f"invalid geometry: the header's {field} {what}: voxel sizes {sizes} mm ({said}), "
        "so its slices cannot be placed" + fix
    )


def _corner_distance(a: np.ndarray, b: np.ndarray, shape) -> float:
    """How far apart (mm) two affines put the corner voxels of a grid of ``shape`` (x, y, z)."""
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
         for k in (0, shape[2] - 1)]
    ).T  # fmt: skip
    return float(
        np.linalg.norm((np.asarray(a) @ corners - np.asarray(b) @ corners)[:3], axis=0).max()
    )


def _close(img) -> None:
    """Close the file an image read with ``keep_file_open`` holds (never raises)."""
    opener = getattr(getattr(img, "dataobj", None), "_opener", None)
    try:
        if opener is not None and not opener.closed:
            opener.close_if_mine()
        # the stream a file named for the other compression was read from (_load_image's)
        holder = (getattr(img, "file_map", None) or {}).get("image")
        stream = getattr(holder, "fileobj", None)
        if stream is not None and getattr(stream, "name", None) is not None:
            stream.close()
    except Exception:  # noqa: BLE001 - closing is a courtesy; nibabel closes it when freed
        pass


def _load_image(path: Path, warnings: list[str]):
    """``nib.load``, or, for a file whose name says the other compression than its content
    (a plain NIfTI named .nii.gz, a gzipped one named .nii), the image read by its content."""
    import gzip

    import nibabel as nib

    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    named_gz = path.name.lower().endswith(".gz")
    if gzipped == named_gz:
        # read into memory: a mapped .nii stayed open while the volume lived (on Windows the
        # file could then not be replaced or deleted while napari showed it)
        # the file kept open while it is read slab by slab: a .gz is then decompressed once,
        # from front to back (reopened, each slab decompressed it from the start again); it
        # is closed with the image, which read_nifti does not keep
        return nib.load(str(path), mmap=False, keep_file_open=True)
    warnings.append(
        f"named {'.nii.gz' if named_gz else '.nii'} but "
        f"{'gzip-compressed' if gzipped else 'not compressed'}: read by its content"
    )
    # read as a stream, its header first: the size and memory checks then run before its
    # voxels are read (the whole file was decompressed first: 8 MB naming 8 GB of voxels
    # took 5.6 GB before it failed, where the same file named .nii.gz was refused at once)
    fh = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 - the image's
    try:
        try:
            return nib.Nifti1Image.from_stream(fh)
        except Exception:  # noqa: BLE001 - a NIfTI-2 file, else the caller's message
            fh.seek(0)
            return nib.Nifti2Image.from_stream(fh)
    except BaseException:
        fh.close()
        raise


#: deflate's largest compression ratio (about 1032:1): a .gz can hold no more than this
_MAX_DEFLATE_RATIO = 1032


def _check_size(path: Path, img, shape) -> None:
    """Refuse a header that claims more voxels than the file can hold (a truncated file, a
    damaged header) before memory is asked for them: a 300-byte file claiming 2048³ voxels
    failed as "out of memory: use a bigger machine"."""
    try:
        need = int(np.prod(shape, dtype=np.int64)) * img.get_data_dtype().itemsize
        offset = int(getattr(img.dataobj, "offset", 0) or 0)  # the header's is reset on load
        size = path.stat().st_size
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
    except Exception:  # noqa: BLE001 - no check: the read says what is wrong
        return
    most = size * _MAX_DEFLATE_RATIO if gzipped else size - offset
    if need <= most:
        return

    def amount(n: float) -> str:
        return next(
            f"{n / 2**p:.{1 if p else 0}f} {u}"
            for p, u in ((30, "GiB"), (20, "MiB"), (10, "KiB"), (0, "bytes"))
            if n >= 2**p or p == 0
        )  # fmt: skip

    holds = (
        f"a {amount(size)} compressed file holds at most about {amount(most)}"
        if gzipped
        else f"the file holds {amount(max(most, 0))} after its header"
    )
    raise InputError(
        path,
        f"the header claims {' × '.join(map(str, shape))} voxels of {img.get_data_dtype()} "
        f"({amount(need)}), but {holds}: a truncated file or a damaged header",
    )


def _check_voxel_sizes(path: Path, img, raw: _RawHeader | None) -> None:
    """Refuse a voxel size of 0 or NaN where the grid comes from pixdim (no sform): nibabel
    sets a 0 to 1 as it loads (said only in its log), so volumes in mL came out wrong."""
    if int(img.header["sform_code"]) != 0 or raw is None:
        return
    pixdim = raw.pixdim
    bad = [i for i in (1, 2, 3) if not (np.isfinite(pixdim[i]) and pixdim[i])]
    if bad:
        named = ", ".join(f"pixdim[{i}] = {pixdim[i]:g}" for i in bad)
        raise InputError(
            path,
            f"the header gives no voxel size along {'x y z'.split()[bad[0] - 1]} ({named}) "
            "and no sform: its volumes in mL cannot be known"
            + (" (nibabel reads a 0 as 1 mm)" if pixdim[bad[0]] == 0 else "")
            + ". Fix the header's voxel sizes (e.g. nibabel's header.set_zooms) and save it",
        )


class _RawHeader:
    """A NIfTI header as the file stores it (nibabel's check, when loading, sets a pixdim of 0
    to 1 and a negative one to its absolute value, saying so only in its own log; it takes a
    vox_offset of 0 in a single file as the file's start) and the 4 bytes after it."""

    def __init__(self, header, after: bytes, gzipped: bool):
        self.header = header
        self.after = after
        self.gzipped = gzipped
        self.size = type(header).template_dtype.itemsize  # 348 (NIfTI-1) or 540 (NIfTI-2)
        self.pixdim = np.asarray(header["pixdim"], float)

    @property
    def geometry(self) -> dict:
        """The fields that place the voxels, as stored (copied to the labels of a CT whose
        header tools read differently, so each tool reads both the same way)."""
        h = self.header
        return {
            "pixdim": [float(v) for v in h["pixdim"][:4]],
            "quatern": [float(h[k]) for k in ("quatern_b", "quatern_c", "quatern_d")],
            "qoffset": [float(h[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")],
            "qform_code": int(h["qform_code"]),
            "srow": [[float(v) for v in h[k]] for k in ("srow_x", "srow_y", "srow_z")],
            "sform_code": int(h["sform_code"]),
        }


def _raw_header(path: Path, img) -> _RawHeader | None:
    """The header as the file stores it; None when it cannot be read again (nibabel's reading
    then stands)."""
    import gzip

    klass = type(img.header)
    size = klass.template_dtype.itemsize
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"  # by content, as the image was read
        with (gzip.open if gzipped else open)(path, "rb") as fh:
            head = fh.read(size + 4)
        return _RawHeader(klass(head[:size], check=False), head[size:], gzipped)
    except Exception:  # noqa: BLE001 - no second opinion
        return None


#: an extension's code is even and below this (NIfTI-1's list; niftilib's check)
_MAX_ECODE = 64


def _extensions(raw: _RawHeader, path: Path, start: int, stop: int, most: int) -> int:
    """Where the chain of header extensions that begins at byte ``start`` ends (``start``
    when none does): followed while it lies before byte ``stop``, each extension checked as
    niftilib checks it (a size of at least 16, a multiple of 16, within ``most`` bytes of the
    file, an even code)."""
    import gzip

    order = "<" if raw.header.endianness == "<" else ">"
    pos = start
    try:
        with (gzip.open if raw.gzipped else open)(path, "rb") as fh:
            while pos < stop:
                fh.seek(pos)
                head = fh.read(8)
                if len(head) < 8:
                    break
                esize, ecode = (int(v) for v in np.frombuffer(head, f"{order}i4"))
                if esize < 16 or esize % 16 or pos + esize > most or ecode % 2:
                    break
                if not 0 <= ecode < _MAX_ECODE:
                    break
                pos += esize
    except Exception:  # noqa: BLE001 - read as far as it could be
        pass
    return pos


def _check_layout(path: Path, img, raw: _RawHeader | None, warnings: list[str]) -> dict | None:
    """Refuse a single-file NIfTI whose voxels would be read from the wrong place: a vox_offset
    inside the header (0: nibabel read the header's bytes as voxels, the volume wrapped, liver
    Dice 0.27, with plausible volumes and no warning) or inside its extensions (flagged, but
    vox_offset not past them: 16 voxels off); warn of an uncompressed file longer than its
    header accounts for. Returns what the .gz check after the read needs (None: no check)."""
    if raw is None or not bytes(raw.header["magic"]).startswith(b"n+"):
        return None  # (a header of a .hdr/.img pair: its voxels lie in another file)
    first = raw.size + 4  # 352 (NIfTI-1) or 544 (NIfTI-2): the header and its extension flag
    offset = float(raw.header["vox_offset"])
    try:
        need = int(np.prod(img.shape, dtype=np.int64)) * img.get_data_dtype().itemsize
        size = path.stat().st_size
    except Exception:  # noqa: BLE001 - no check: the read says what is wrong
        return None
    if not np.isfinite(offset) or offset < first:
        where = "" if raw.gzipped else f"; its size puts them at byte {size - need}"
        raise InputError(
            path,
            f"the header says its voxels start at byte {offset:g} (vox_offset), inside its "
            f"{first}-byte header (and extension flag): read from there, the header's own bytes "
            "would be taken for voxels (the volume shifted and wrapped), and tools read such a "
            f"file differently{where}. A damaged header: a single-file NIfTI's voxels start at "
            f"byte {first} or after; set vox_offset where they are and save it again",
        )
    offset = int(offset)
    flagged = raw.after[:1] not in (b"", b"\0")
    most = size if not raw.gzipped else offset + need + (1 << 30)
    end = _extensions(raw, path, first, offset, most) if flagged else first
    if end > offset:
        raise InputError(
            path,
            f"its header extensions (its extension flag is set) run to byte {end}, past byte "
            f"{offset} where the header says its voxels start (vox_offset): they would be read "
            f"{end - offset} bytes early, from inside the extensions. A damaged header: set "
            "vox_offset past them (or clear the extension flag) and save it again",
        )
    layout = {"offset": offset, "need": need, "flagged": flagged, "gzipped": raw.gzipped}
    if not raw.gzipped and size > offset + need:
        _longer(path, raw, layout, size - offset - need, warnings)
    return layout


def _longer(path: Path, raw: _RawHeader, layout: dict, excess: int, warnings: list[str]) -> None:
    """A file ``excess`` bytes longer than its header's vox_offset and voxels: refused when
    flagged extensions at vox_offset account for them exactly (the voxels follow those), else
    warned of."""
    offset, need = layout["offset"], layout["need"]
    if layout["flagged"] and offset == raw.size + 4:
        end = _extensions(raw, path, offset, offset + excess, offset + need + excess)
        if end == offset + excess:  # the voxels follow the extensions: read from vox_offset,
            raise InputError(  # they would be excess bytes off
                path,
                f"the header says its voxels start at byte {offset} (vox_offset), but its "
                f"extension flag is set and {excess} bytes of extensions begin there; the "
                f"voxels follow them, at byte {offset + excess}: read from {offset} they would "
                f"be {excess} bytes off. A damaged header: set vox_offset to {offset + excess} "
                "and save it again",
            )
    warnings.append(
        f"{path.name}: the file{', decompressed,' if layout['gzipped'] else ''} holds "
        f"{excess}{'+' if excess >= 1 << 20 else ''} bytes more than its header accounts for "
        f"({need} bytes of voxels from byte {offset}, its vox_offset): if vox_offset or the "
        "dimensions are wrong, the voxels are read shifted (the image then looks wrapped or "
        "smeared): check it"
    )


def _check_gz_length(path: Path, img, raw, layout: dict, warnings: list[str]) -> None:
    """A .nii.gz's decompressed length against vox_offset + voxels: its gzip trailer says it
    (one gzip member: the usual case), else the stream read on past the voxels."""
    end = layout["offset"] + layout["need"]
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, 2)
            if int.from_bytes(fh.read(4), "little") == end % 2**32:
                return
        opener = getattr(img.dataobj, "_opener", None)
        stream = getattr(opener, "fobj", None)
        if stream is None:
            return
        stream.seek(end)
        excess = len(stream.read(1 << 20))
    except Exception:  # noqa: BLE001 - no check: what was read stands
        return
    if excess:
        _longer(path, raw, layout, excess, warnings)


def write_nifti(
    data: CTVolume | np.ndarray,
    path: str | Path,
    reference: CTVolume | None = None,
    *,
    shown_as: str | Path | None = None,
    overwrite: bool = True,
    labels: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """Write a volume or a ``(z, y, x)`` array as NIfTI, atomically.

    Parameters
    ----------
    data : CTVolume or ndarray, shape (Z, Y, X)
        The image. An array takes its grid from ``reference`` (e.g. a label map on its CT).
    path : str or Path
        ``.nii`` or ``.nii.gz``. Written to a temporary file in the same folder, then renamed.
    reference : CTVolume, optional
        Grid for an array; when ``data`` is a volume, it must have the same shape. A grid
        read from a NIfTI header without orientation codes is written without them too.
    shown_as : str or Path, optional
        The name messages give the file (when ``path`` is a temporary name).
    overwrite : bool
        False: never replace a file at ``path``, not even one written by another process
        while this one wrote (``FileExistsError``).
    labels : bool
        A label map (segment's, a ground truth): its header declares it one
        (``NIFTI_INTENT_LABEL``, described as "label map of" its CT), not the CT it lies on.
    notes : list of str, optional
        Receives what a reader of the file should know, as the log says it (once: the same
        for every file of a grid): a sheared grid's qform off by so many mm.

    Returns
    -------
    Path
        The file written.
    """
    import nibabel as nib

    path = Path(path)
    if not is_nifti_path(path):
        raise InputError(path, "the output name must end in .nii or .nii.gz")
    if isinstance(data, CTVolume):
        volume = data
        if reference is not None and reference.shape != volume.shape:
            raise InputError(path, f"shape {volume.shape} differs from reference {reference.shape}")
    else:
        array = np.asarray(data)
        if array.ndim != 3:
            raise InputError(path, f"expected a 3D (z, y, x) array, got shape {array.shape}")
        if reference is None:
            volume = CTVolume(array)
        else:
            if reference.shape != array.shape:
                raise InputError(
                    path, f"array shape {array.shape} differs from reference {reference.shape}"
                )
            volume = reference.with_array(array)
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        if array.size and (
            array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max
        ):
            raise InputError(  # a cast would wrap them (2**40 was written as 0)
                path,
                f"values from {array.min()} to {array.max()} do not fit the 32-bit integers a "
                "NIfTI label map or CT is written in",
            )
        array = array.astype(np.int32)
    elif array.dtype == np.float64 or array.dtype == np.float16:
        array = array.astype(np.float32)
    stored = np.transpose(array, (2, 1, 0))
    extra = len(volume.meta.get("nifti_shape") or ()) - 3
    if extra > 0 and stored.ndim == 3:  # the CT's (x, y, z, 1) or (x, y, z, 1, 1)
        stored = stored.reshape(stored.shape + (1,) * extra)
    img = nib.Nifti1Image(stored, volume.affine)
    img.header.set_data_dtype(array.dtype)
    # the CT's own units (a header in meters read as mm): ITK converts the CT's sizes, and
    # labels said to be in mm lay 1000 times smaller, off the CT
    img.header.set_xyzt_units(volume.meta.get("nifti_units") or "mm")
    sform_code, qform_code = (int(c) for c in volume.meta.get("nifti_codes") or (1, 1))
    d = np.asarray(volume.direction, float)
    sheared = not np.allclose(d.T @ d, np.eye(3), atol=1e-4)
    if (sform_code, qform_code) == (0, 0) and np.allclose(
        img.header.get_base_affine(), volume.affine, atol=1e-4
    ):  # as the CT's header: no orientation codes (only on its own grid, as read)
        img.set_sform(volume.affine, code=0)
        img.set_qform(volume.affine, code=0)
    else:
        # the CT's own codes (2: aligned to another scan; 0: that transform left unused), so
        # tools that pair files by their codes pair the labels with their CT (a CT with codes
        # 2/2 got labels with 2/1, one with a sform alone labels with a qform too). 1
        # (scanner-based) only where a reader would be left without a grid it reads: a CT
        # without codes written on another grid, or a sheared grid with no qform (ITK-based
        # readers refuse a file whose only transform is sheared)
        keep_sform = sform_code > 0 or (qform_code > 0 and not sheared)
        img.set_sform(volume.affine, code=sform_code if keep_sform else 1)
        keep_qform = qform_code > 0 or (keep_sform and not sheared)
        img.set_qform(volume.affine, code=qform_code if keep_qform else 1)
        own = volume.meta.get("nifti_qform")
        if own and np.allclose(own["affine"], volume.affine, atol=1e-4):
            # the CT's qform disagreed with its sform: kept, so a tool that reads the qform
            # puts the labels where it puts the CT
            img.set_qform(np.asarray(own["qform"]), code=qform_code or 1)
    if sheared:
        # sheared axes (a gantry-tilted series): the sform holds them exactly; a qform cannot,
        # so nibabel stores the nearest rotation, and readers that use the qform (ITK, Slicer,
        # SimpleITK; they refuse a file whose only geometry is sheared) place voxels off by up
        # to the amount said here
        corners = np.array(
            [
                [i, j, k, 1.0]
                for i in (0, array.shape[2] - 1)
                for j in (0, array.shape[1] - 1)
                for k in (0, array.shape[0] - 1)
            ]  # fmt: skip
        ).T
        off = float(
            np.linalg.norm((img.get_qform() @ corners - volume.affine @ corners)[:3], axis=0).max()
        )
        said = (
            "the grid is sheared (a gantry-tilted series, not resampled): the sform holds it "
            "exactly; tools that read the qform (ITK, 3D Slicer, SimpleITK) place voxels up to "
            f"{off:.1f} mm off"
        )
        log.warning("%s: %s", shown_as or path, said)
        if notes is not None and f"NIfTI files: {said}" not in notes:  # (the Export panel)
            notes.append(f"NIfTI files: {said}")
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    description = str(volume.meta.get("description", ""))
    modality = str(volume.meta.get("modality") or "CT").upper()
    if labels:  # a label map on its CT's grid: said so (its CT's description read as its own)
        img.header.set_intent("label")
        description = "label map" + (f" of {description}" if description else "")
    elif modality != "CT" and _NON_CT_MARK.fullmatch(f"{modality} image: "):
        # an MR or PET series converted (convert --series): read back, it is no CT either
        # (it was segmented as one without a word)
        description = f"{modality} image: {description}"
    img.header["descrip"] = description[:79].encode("ascii", "replace")
    geometry = volume.meta.get("nifti_geometry")
    if geometry and np.allclose(geometry["affine"], volume.affine, atol=1e-4):
        _own_geometry(img, geometry)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    with atomic_path(path, suffix=suffix, exclusive=not overwrite, shown_as=shown_as) as tmp:
        nib.save(img, tmp)
    return path


def _own_geometry(img, geometry: dict) -> None:
    """Give ``img`` (on its CT's own grid) the geometry fields of the CT's header as it stored
    them, a negative pixdim included: nibabel reads that as its absolute value, ITK mirrors the
    axis; labels written with positive sizes then lay off the CT in ITK tools (Dice 0), and
    with the CT's own fields each tool reads both the same way."""
    img.update_header()  # shape and dtype now: nibabel would otherwise redo the geometry as
    # it saves (it cannot read a qform with a negative pixdim: HeaderDataError)
    hdr = img.header
    pixdim = hdr["pixdim"].copy()
    pixdim[:4] = geometry["pixdim"]
    hdr["pixdim"] = pixdim
    for key, value in zip(
        ("quatern_b", "quatern_c", "quatern_d"), geometry["quatern"], strict=True
    ):
        hdr[key] = value
    for key, value in zip(
        ("qoffset_x", "qoffset_y", "qoffset_z"), geometry["qoffset"], strict=True
    ):
        hdr[key] = value
    for key, row in zip(("srow_x", "srow_y", "srow_z"), geometry["srow"], strict=True):
        hdr[key] = row
    hdr["qform_code"] = geometry["qform_code"]
    hdr["sform_code"] = geometry["sform_code"]
    img.update_header = lambda: None  # saved as set here (this image is written, then freed)


# --------------------------------------------------------------------------- helpers
#: voxels converted at a time when a float (or scaled) file is read as HU
_CHUNK = 1 << 22
#: about this many voxels read at a time (between two progress reports and cancel checks)
_SLAB_VOXELS = 1 << 24


def _load_data(
    img, warnings: list[str], path: Path, reporter=None, found: dict | None = None
) -> np.ndarray:
    on_disk = img.get_data_dtype()
    if on_disk.kind == "c" or on_disk.fields is not None:
        raise InputError(path, f"the voxels are {on_disk} values, not CT numbers")
    # the proxy's scaling: nibabel empties the header's scl_slope/scl_inter when it loads a
    # file, and a scaled int16 file read as unscaled came back as float64, unrounded
    slope = getattr(img.dataobj, "slope", None)
    inter = getattr(img.dataobj, "inter", None)
    if slope is None and inter is None:
        slope, inter = img.header.get_slope_inter()
    scaled = (slope not in (None, 1.0)) or (inter not in (None, 0.0))
    in_place = np.issubdtype(on_disk, np.integer) and not scaled
    # refused before a voxel is read when it cannot fit (the kernel would end the process,
    # napari with it, when the pages were touched): in place, or as float then int16 HU
    per_voxel = on_disk.itemsize if in_place else (8 if on_disk == np.float64 else 4) + 2
    memory.require(
        int(np.prod(img.shape)) * per_voxel,
        f"reading its {' × '.join(map(str, img.shape[:3]))} voxels (x, y, z; {on_disk}"
        + (", scaled" if scaled else "")
        + ")",
        path,
    )
    if in_place:
        return _read_slabs(img, on_disk, reporter)
    try:
        # a scaled integer file's values fit float32 exactly (HU, halves): half of float64
        values = _read_slabs(img, np.float64 if on_disk == np.float64 else np.float32, reporter)
        return _as_hu(values, warnings, path, found)
    except MemoryError:
        # read as float32 (float64 for such a file), then converted to int16
        per_voxel = (8 if on_disk == np.float64 else 4) + 2
        need = np.prod(img.shape) * per_voxel / 1e9
        raise InputError(
            path,
            f"not enough memory to read it: its {' × '.join(map(str, img.shape))} voxels are "
            f"stored as {on_disk}{' with a scaling' if scaled else ''}, about {need:.1f} GB "
            "while they are read as HU. Free memory, or save the scan as int16 HU without a "
            "scaling (as scanners store CT): it is then read in place, in about "
            f"{np.prod(img.shape) * 2 / 1e9:.1f} GB",
        ) from None


def _read_slabs(img, dtype, reporter=None) -> np.ndarray:
    """The image's (scaled) voxels as ``dtype``, in the file's order, read a slab of slices at
    a time: progress between slabs, and a stop asked for is heard within one (a 900-slice
    scan was read in one call, and Cancel waited for all of it)."""
    shape = tuple(img.shape)
    out = np.empty(shape, dtype, order="F")
    n = shape[2]  # the file's slowest spatial axis (a fourth of length 1 may follow)
    step = max(1, _SLAB_VOXELS // max(1, shape[0] * shape[1]))
    for k in range(0, n, step):
        if reporter is not None:
            reporter.check()
            reporter.update("nifti slices", k, n)
        where = (slice(None), slice(None), slice(k, k + step)) + (slice(None),) * (len(shape) - 3)
        out[where] = img.dataobj[where]
    if reporter is not None:
        reporter.update("nifti slices", n, n)
    return out


#: the start of the description a non-CT series converted to NIfTI is written with (DICOM's
#: modality codes of images; only these, so another tool's description is not taken for one)
_NON_CT_MARK = re.compile(
    r"(MR|PT|NM|US|CR|DX|MG|XA|RF|XC|OT|SC|DR|RG|IO|PX|GM|SM|ES|OP|OCT|ST) image: "
)


def _as_hu(
    values: np.ndarray, warnings: list[str], path: Path, found: dict | None = None
) -> np.ndarray:
    """A float (or scaled) file's voxels as int16 HU when they look like CT numbers, else
    float32; converted a few million voxels at a time. The number of NaN and infinite voxels
    replaced goes to ``found["nonfinite"]`` (a label map with them is refused: see
    :func:`refuse_nonfinite_labels`).

    Converting the whole array at once held five full-size copies (float32, its finite mask, a
    rounded copy, the comparison's temporaries, the int16 cast): a 900-slice float32 scan
    peaked at 4.9 GB, 3.5 times its int16 twin. Now: the values read and the result.
    """
    order = "F" if values.flags.f_contiguous and not values.flags.c_contiguous else "C"
    flat = values.reshape(-1, order=order)  # a view of a contiguous array: no copy

    def part_of(k: int) -> np.ndarray:
        return flat[k : k + _CHUNK].astype(np.float64)

    # NaN and -inf go to the minimum, +inf to the maximum (a saturated bright voxel, metal: as
    # the minimum it was air)
    n_bad, n_top, low, high, integral = 0, 0, np.inf, -np.inf, True
    for k in range(0, flat.size, _CHUNK):
        part = part_of(k)
        finite = np.isfinite(part)
        if not finite.all():
            n_bad += int(finite.size - np.count_nonzero(finite))
            n_top += int(np.count_nonzero(np.isposinf(part)))
            part = part[finite]
        if part.size:
            low, high = min(low, float(part.min())), max(high, float(part.max()))
            # (as np.allclose(rounded, data, atol=1e-3) measured it)
            if integral:
                integral = bool(np.all(np.abs(np.rint(part) - part) <= 1e-3 + 1e-5 * np.abs(part)))
    if n_bad == flat.size:
        raise InputError(path, "every voxel is NaN or infinite")
    if found is not None and n_bad:
        found["nonfinite"] = n_bad
    if n_bad - n_top:
        warnings.append(
            f"{n_bad - n_top} NaN/infinite voxels replaced by the minimum value {low:g}"
        )
    if n_top:
        warnings.append(f"{n_top} +infinite voxels replaced by the maximum value {high:g}")
    hu_like = high - low > 100  # a CT, not a probability map
    as_int = (integral or hu_like) and np.rint(low) >= -32768 and np.rint(high) <= 32767
    if not as_int and values.dtype == np.float32 and not n_bad:
        return values  # a probability map already float32: kept as read
    out = np.empty(values.shape, np.int16 if as_int else np.float32, order=order)
    out_flat = out.reshape(-1, order=order)
    for k in range(0, flat.size, _CHUNK):
        part = part_of(k)
        if n_bad:
            if n_top:
                part[np.isposinf(part)] = high
            part[~np.isfinite(part)] = low
        out_flat[k : k + _CHUNK] = np.rint(part) if as_int else part
    if as_int and not integral:
        warnings.append("non-integer HU values rounded to int16")
    return out


def case_name(path: Path) -> str:
    """The file's name without its suffix, or its folder's when the file's is a generic one
    (``P1/ct.nii.gz``: ``P1``; KiTS's ``case_00000/imaging.nii.gz``: ``case_00000``), past up
    to two generic folders (``P1/images/ct.nii.gz``: ``P1``). The folder as it is on disk,
    whatever the path given (``ct.nii.gz`` from inside ``P1``: ``P1``)."""
    stem = _stem(path)
    if stem.lower() not in GENERIC_NAMES:
        return stem
    folder = Path(path).absolute().parent
    for _ in range(3):
        if folder.name and folder.name.lower() not in GENERIC_NAMES:
            return folder.name
        folder = folder.parent
    return stem


def stem_of(path: Path) -> str:
    """A NIfTI file's name without its suffix."""
    return _stem(Path(path))


def _display_name(path: Path) -> str:
    """``ct`` for ``ct.nii.gz``; ``P1 ct`` for ``P1/ct.nii.gz`` (a generic file name)."""
    stem, case = _stem(path), case_name(path)
    return stem if case == stem else f"{case} {stem}"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


#: file names that say nothing of whose scan it is: the folder's name is the case's
GENERIC_NAMES = frozenset(
    {"ct", "image", "img", "imaging", "volume", "vol", "scan", "data", "series", "input",
     "ct_image", "image_ct", "source", "original", "raw", "labels", "label", "mask", "seg",
     "segmentation", "ground_truth", "gt", "truth",
     # folders that hold many patients' files: no case's name either
     "images", "imagestr", "imagests", "labelstr", "labelsts", "masks", "nifti",
     "scans", "volumes", "cts", "niftis", "output", "outputs"}
)  # fmt: skip


#: words of a NIfTI file's name that say it holds a label map (LiTS's segmentation-0.nii, KiTS's
#: segmentation.nii.gz, liver_mask.nii.gz), unless a word says it is a scan (ct_seg_input?)
LABEL_MAP_WORDS = frozenset(
    {"seg", "segmentation", "segmentations", "label", "labels", "mask", "masks", "gt", "truth",
     "groundtruth", "annotation", "annotations"}
)  # fmt: skip
SCAN_WORDS = frozenset({"ct", "image", "img", "imaging", "volume", "vol", "scan"})


def named_as_label_map(path: str | Path) -> bool:
    """Whether a NIfTI file's name says it is a label map, not a scan (by words of its name:
    ``segmentation-0.nii``, ``segmentation.nii.gz``, ``liver_mask.nii.gz``; not
    ``volume-0.nii`` nor ``ct_labelled.nii.gz``)."""
    import re

    words = {w for w in re.split(r"[^a-z]+", _stem(Path(path)).lower()) if w}
    return bool(words & LABEL_MAP_WORDS) and not words & SCAN_WORDS


#: the corrected copies dcm2niix writes beside a CT series it saves as ``X.nii(.gz)``, as its
#: source (nii_dicom_batch.cpp) names them: its suffix, then ``_1``, the number of the one
#: volume nii_saveNII3D writes. Most corrected first, with what each is (said in the log)
DCM2NIIX_CORRECTED = (
    ("_Tilt_Eq_1", "its gantry tilt and uneven slice spacing resampled away"),
    (
        "_Eq_1",
        "resampled to even slice spacing; this file's spacing varies, which NIfTI cannot hold, "
        "so its slices lie at one spacing, misplaced",
    ),
    ("_Tilt_1", "its gantry tilt resampled away; this file keeps the tilt as a sheared grid"),
)
#: dcm2niix's masks of a series' DICOM overlays (``X_ROI1`` .. ``X_ROI16``): no scans
_DCM2NIIX_OVERLAY = re.compile(r"(.+)_ROI([1-9]|1[0-6])")


def _dcm2niix_series(stem: str) -> tuple[str, int | None]:
    """The series a NIfTI file's stem names as dcm2niix spells its corrected copies, and which
    copy of :data:`DCM2NIIX_CORRECTED` it is: ``("X", 0)`` for ``X_Tilt_Eq_1`` (its longest
    suffix: not ``X_Tilt`` of ``_Eq_1``), ``("X", None)`` for ``X`` itself."""
    for rank, (suffix, _why) in enumerate(DCM2NIIX_CORRECTED):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], rank
    return stem, None


def dcm2niix_passed_over(paths: list[Path]) -> dict[Path, tuple[Path | None, str]]:
    """Of the NIfTI files of one folder, those to pass over where dcm2niix wrote a corrected
    copy of the same series beside them: ``X`` when ``X_Tilt_1``, ``X_Eq_1`` or
    ``X_Tilt_Eq_1`` is there (each had been segmented as a patient of its own), and the less
    corrected copies beside the most corrected, ``X`` there or not (``X.nii.gz`` deleted,
    ``X_Tilt_1`` and ``X_Tilt_Eq_1`` were the one scan segmented as two patients: QA adv60),
    mapped to (the copy kept: the most corrected, what it is); and the overlay masks
    ``X_ROI<n>`` of a series there, no scans, mapped to (None, what they are). Names as
    dcm2niix spells them, case and all (``p1`` beside ``P1_EQ_1`` is no such pair: QA rev59)."""
    series: dict[str, list[tuple[int, Path]]] = {}  # a series' files, the most corrected first
    for p in paths:
        base, rank = _dcm2niix_series(_stem(p))
        series.setdefault(base, []).append((len(DCM2NIIX_CORRECTED) if rank is None else rank, p))
    passed: dict[Path, tuple[Path | None, str]] = {}
    for _base, files in sorted(series.items()):
        files.sort(key=lambda f: (f[0], str(f[1])))
        rank, kept = files[0]
        # a corrected copy beside less corrected files of its series (one copy in .nii and in
        # .nii.gz alone is no such pair: left to the cases' naming, as before)
        if rank < len(DCM2NIIX_CORRECTED) and any(r != rank for r, _p in files):
            for _rank, p in files[1:]:
                passed[p] = (kept, DCM2NIIX_CORRECTED[rank][1])
    for p in paths:
        overlay = _DCM2NIIX_OVERLAY.fullmatch(_stem(p))
        if overlay and overlay.group(1) in series and p not in passed:
            passed[p] = (None, f"dcm2niix's mask of a DICOM overlay of {overlay.group(1)}")
    return passed


def dcm2niix_copy_of(path: str | Path) -> tuple[Path, str] | None:
    """The corrected copy dcm2niix wrote beside the series ``path`` (the most corrected of
    :data:`DCM2NIIX_CORRECTED` there; of a copy ``path`` itself, one more corrected than it)
    and what it is, or None: a few names looked up, not the folder listed (a shell's
    ``*.nii.gz`` names thousands of files)."""
    path = Path(path)
    base, rank = _dcm2niix_series(_stem(path))
    for suffix, why in DCM2NIIX_CORRECTED[:rank]:
        for ext in (".nii.gz", ".nii"):
            copy = path.with_name(f"{base}{suffix}{ext}")
            if copy.is_file():
                return copy, why
    return None


#: what a ground truth's values mean, said when a label map holds others
TRUTH_CLASSES_TEXT = (
    "a ground truth holds the classes 0 background, 1 liver, 2 tumor (3 portal vein, 4 aorta, "
    "as HCC-TACE-Seg's)"
)


def refuse_nonfinite_labels(path: str | Path, volume: CTVolume) -> None:
    """Refuse a label map read by :func:`read_nifti` that held NaN or infinite voxels: read as
    a CT they become its lowest value, which in a label map is background (a ground truth with
    NaN in every third liver voxel scored liver Dice 0.78 instead of 0.96, without a word)."""
    n = int(volume.meta.get("nonfinite_voxels") or 0)
    if n:
        raise InputError(
            path,
            f"{n} NaN or infinite voxels in a label map: no class can be read from them (taken "
            "as background, its volumes and any scores against it would be wrong). Give them "
            "their class (or 0) and save it again",
        )


def ground_truth_classes(path: str | Path, volume: CTVolume) -> np.ndarray:
    """A NIfTI ground truth's classes as uint8 (``volume``: the map as :func:`read_nifti`
    read it, maybe turned), or a refusal naming what it holds: NaN or
    infinite voxels, HU (a scan), a 0/255 mask (3D-IRCADb's: wrapped to nothing it should be,
    it scored a Dice of 0 without a word), fractions (a probability map), values above 4.
    One check for every reader of a ground truth (Load CT, evaluate and train, File > Open)."""
    refuse_nonfinite_labels(path, volume)
    array = np.asarray(volume.array)
    if not array.size:
        return array.astype(np.uint8)
    low, high = float(np.min(array)), float(np.max(array))  # (no sort of a whole scan)
    fractional = array.dtype.kind == "f" and bool(np.any(array != np.round(array)))
    if low >= 0 and high <= 4 and not fractional:
        return array.astype(np.uint8)
    found = ""
    if low < -100:  # HU: a scan
        what = "a scan's values, not a label map's: choose the label map drawn on this CT"
    else:  # the values that are no class, named (as training named them; a scan's unsorted)
        bad = np.unique(array[(array < 0) | (array > 4) | (array != np.round(array))])
        found = ", found " + ", ".join(f"{v:g}" for v in bad[:6]) + (", …" if bad.size > 6 else "")
        if high == 255 and low >= 0 and not np.any((array > 0) & (array < 255)):
            # (0 and 255 alone: classes with 255 for "ignore" are no liver mask, whose advice
            # made the ignored voxels liver)
            what = "a mask of 0 and 255 is no such map (as a liver mask: set 255 to 1)"
        elif high == 255 and bad.tolist() == [255]:
            what = "255 is no class here (another dataset's 'ignore' value? set it to 0)"
        elif fractional:
            what = "fractional values are no classes (a probability map? threshold it first)"
        else:
            what = "values above 4 are no class here (another dataset's organ numbers?)"
    raise InputError(
        path, f"holds values from {low:g} to {high:g}: {TRUTH_CLASSES_TEXT}{found}; {what}"
    )


#: leading bytes of formats a file named .nii(.gz) may really be
_MAGIC = (
    (b"\x89PNG", "a PNG picture"),
    (b"\xff\xd8\xff", "a JPEG picture"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"NRRD", "an NRRD image"),
)


def _what_it_is(path: Path) -> str | None:
    """What a file that nibabel could not read holds, when its first bytes say (a PNG renamed
    .nii.gz, a DICOM file, an empty file, text), else None (a damaged NIfTI, maybe)."""
    import gzip

    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
        if head[:2] == b"\x1f\x8b":
            try:
                with gzip.open(path, "rb") as fh:
                    head = fh.read(512)
            except Exception:  # noqa: BLE001 - OSError, EOFError, zlib.error: all damage
                return "a damaged or cut-short gzip file"
    except OSError:
        return None
    if not head:
        return "an empty file"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[128:132] == b"DICM":
        return "a DICOM file (give its folder)"
    if int.from_bytes(head[:4], "little") in (348, 540) or int.from_bytes(head[:4], "big") in (
        348,
        540,
    ):
        return None  # a NIfTI header: damaged further on
    if not head.strip(b"\x00"):
        return "zero bytes only (an unfinished download?)"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # only a character cut by the 512-byte read may be incomplete, at its very end
        if len(head) < 512 or exc.reason != "unexpected end of data":
            return None
    return "a text file"
