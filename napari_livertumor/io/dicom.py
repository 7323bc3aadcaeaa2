"""DICOM CT series: discovery, choice, geometric sort, rescale and parallel pixel decode (pydicom).

Reading is two passes. The header pass reads every file with ``stop_before_pixels`` and groups
them by ``SeriesInstanceUID`` (and by ``AcquisitionNumber`` when one series stacks several
acquisitions over the same stretch: shared, shifted or overlapping positions). The chosen
series is sorted along the slice normal — never by file name — checked for duplicates, gaps,
uneven spacing and gantry tilt, and only then are its pixels decoded, in a thread pool,
straight into the output array.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .. import memory
from ..errors import InputError
from ..progress import Reporter, as_reporter
from ._dicom_geometry import (
    _NON_IMAGE_MODALITIES,
    SliceHeader,
    fold_reacquired,
    is_localizer,
    parts_in_a_row,
    phase_from_text,
    stack_geometry,
    stack_step,
    stacked_slices,
    trim_seams,
)
from ._dicom_pixels import compare_duplicates, decode_slices, fill_gaps, mend_damaged
from .volume import CTVolume, spacing_text

log = logging.getLogger(__name__)

#: SOP classes we read as CT slices (CT Image Storage and the legacy-converted enhanced one).
_NATIVE_LE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
_MULTIFRAME_HINT = (
    " (multi-frame objects other than Enhanced CT with per-frame positions are not supported: "
    "export the series as one file per slice)"
)


#: Secondary Capture Image Storage and its multi-frame kinds (1.2.840.10008.5.1.4.1.1.7.x)
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


#: the reader's note of a folder's other series, not read (the Load panel and ``evaluate``
#: leave it out when the series read was chosen: a row, the ground truth's)
OTHERS_NOT_READ = "other series in the folder not read"


#: control characters (C0 with tab and newline, DEL, C1) as messages show them: a header's
#: text printed raw (a SeriesDescription holding ESC [ 2 J, a newline and a forged line) moves
#: a terminal's cursor, clears or recolours it, or adds lines the tool never wrote
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def printable(text: object) -> str:
    """``text`` (a DICOM header's string, most often) as a message shows it: its control
    characters escaped as Python writes them (``\\x1b``, ``\\n``), the rest as it is."""
    return str(text).translate(_ESCAPED)


@dataclass
class SeriesInfo:
    """One image series found in a folder tree (one acquisition of it, when it stacks several)."""

    uid: str
    description: str
    modality: str
    n_slices: int
    spacing: tuple[float, float, float] | None
    phase: str
    files: list[Path] = field(repr=False)
    acquisition: int | None = None
    series_number: int | None = None
    patient_id: str = ""
    study_uid: str = ""
    #: the study's date, YYYYMMDD as DICOM writes it ("" when not said)
    study_date: str = ""
    sop_class_uid: str = ""
    is_image: bool = True
    sop_instance_uids: frozenset[str] = field(default=frozenset(), repr=False)
    multiframe: bool = False
    not_image: str = ""
    #: the slices' plane: "axial", "coronal", "sagittal" (nearest), or "" when unknown
    plane: str = ""
    #: ImageType says DERIVED (a reformat, a reconstruction made from other images)
    derived: bool = False
    #: distinct slice positions (images at one table position count once)
    n_positions: int = 0
    #: those positions (mm along the slice normal, to 0.1 mm)
    positions: frozenset[float] = field(default=frozenset(), repr=False)
    #: how the passes of a series stacking them without AcquisitionNumber were told apart
    #: ("InstanceNumber", "folder", "reconstruction"; "AcquisitionNumber, reconstruction"
    #: where an acquisition holds several, told apart within it so; "chunks, AcquisitionTime"
    #: where each pass is a step-and-shoot scan's chunks, joined); ``acquisition`` is then
    #: the pass's number, 1..n
    passes_by: str = ""
    #: of such a pass told apart within an acquisition, its AcquisitionNumber
    acquisition_number: int | None = None
    #: of a pass joined from chunks each under its own AcquisitionNumber (a step-and-shoot
    #: scan's: ``passes_by`` "chunks, <the order they were scanned in, by what>"), their numbers
    chunks: tuple[int, ...] = ()
    #: of parts of one scan under AcquisitionNumbers of their own, one after another along
    #: the body and joined at their seams, listed beside passes lying within their stretch
    #: (an arterial liver pass within a chest and an abdomen part): their numbers;
    #: ``acquisition`` is then None (``acquisition_label`` "acq 1+2"; read as
    #: ``acquisition="1+2"``)
    joined: tuple[int, ...] = ()
    #: slices with no AcquisitionNumber stacked beside numbered acquisitions (removed from
    #: some of them): ``acquisition`` is then None, said as "the slices with no
    #: AcquisitionNumber" (``acquisition_label`` "acq none"; read as ``acquisition="none"``)
    unnumbered: bool = False
    #: of such a pass, how it was reconstructed where its passes differ ("kernel B70f", "slice
    #: thickness 1 mm"; "" where they do not): reconstructions of one scan (a soft-tissue and a
    #: lung kernel), not phases, when ``same_scan``
    reconstruction: str = ""
    #: the same as ``(attribute, value)`` pairs: (("kernel", "B70f"), ("slice thickness", "1"))
    recon_attributes: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: its passes differ in how they were reconstructed and in nothing that says they were
    #: scanned at other moments (their AcquisitionTime is the same, or untagged)
    same_scan: bool = False
    #: its passes' AcquisitionTime sets them at other moments (phases, whatever their kernels)
    other_moments: bool = False
    #: of such passes, the moment this one was scanned at (1, 2 ... in the order they were
    #: scanned, by AcquisitionTime; passes of one moment are reconstructions of one scan), 0
    #: where no time says
    moment: int = 0
    #: its kernel is known to be sharper (noisier) than another's of the same moment (a lung
    #: beside a soft-tissue reconstruction), or a sharp (lung, bone) one beside a soft-tissue
    #: pass at another moment: the smoother one is read by default
    sharper: bool = False
    #: an Enhanced CT series (multi-frame files; ``n_slices`` counts their frames), read
    #: through highdicom
    enhanced: bool = False
    #: the series' files that are no Enhanced CT (classic slices, other objects) when its
    #: Enhanced CT files hold more slices and are read: not read
    left_out: list[Path] = field(default_factory=list, repr=False)
    #: the series' files a load leaves out of the volume, counted by why ("1 localizer"), ""
    #: when none: ``n_slices`` counts the slices it stacks
    left_out_note: str = ""
    #: why a load refuses the series, found from its headers (its slices differ in size: the
    #: series list showed it as any other, and Load then refused it), "" when it reads
    refusal: str = ""

    @property
    def left_out_brief(self) -> str:
        """``left_out_note`` as the Load panel's row ends with it, in fewer words: the slices at
        a seam as "2 seam slice(s)", and none said of parts joined beside passes (their label,
        "acq 1+2", says it: the whole note cut the docked row's description to "…"). The
        row's tooltip, :meth:`summary`, says it in full."""
        seam = re.compile(rf"(, )?(\d+) {re.escape(_SEAM_LEFT_OUT)}")
        if self.joined:
            return seam.sub("", self.left_out_note).removeprefix(", ")
        return seam.sub(r"\1\2 seam slice(s)", self.left_out_note)

    @property
    def acquisition_label(self) -> str:
        """ "acq 2" (its AcquisitionNumber), "pass 2" (no AcquisitionNumber; "pass 2, kernel
        B70f" of passes reconstructed differently; "pass 3, acq 2, kernel B70f" of one
        within an acquisition holding several; "pass 2, acq 5–8" of one joined from chunks;
        "acq 1+2" of parts of one scan joined at their seams beside passes within them; "acq
        none" of slices with no AcquisitionNumber beside numbered ones), or "". Its parts
        apart by commas, none in brackets: the Load panel's rows and the layers' names put it
        in brackets ("(pass 3 (acq 2), kernel B70f)" read badly)."""
        if self.unnumbered:  # (it was "", its Load panel row "acq None")
            label = "acq none"
        elif self.acquisition is None:
            return f"acq {'+'.join(map(str, self.joined))}" if self.joined else ""
        else:
            label = f"{'pass' if self.passes_by else 'acq'} {self.acquisition}"
        if self.acquisition_number is not None:  # (a pass within an acquisition)
            label += f", acq {self.acquisition_number}"
        if self.chunks:  # (a pass joined from chunks)
            label += f", acq {numbers_text(self.chunks)}"
        return f"{label}, {printable(self.reconstruction)}" if self.reconstruction else label

    @property
    def is_ct(self) -> bool:
        return self.is_image and self.modality == "CT"

    @property
    def label(self) -> str:
        """How a radiologist names the series: its number and description (as a PACS viewer
        lists them), the UID only when it has neither."""
        parts = []
        if self.series_number is not None:
            parts.append(f"#{self.series_number}")
        if self.description:
            parts.append(f"'{self.description}'")
        # (the header's text: printed as it is, it could move the terminal's cursor)
        return printable(" ".join(parts) if parts else self.uid)

    def summary(self) -> str:
        """The series in one line, as listings and messages show it (control characters of
        its header's text escaped: they reach a terminal)."""
        return printable(self._summary())

    def _summary(self) -> str:
        if not self.is_image and self.multiframe and self.modality not in _NON_IMAGE_MODALITIES:
            return (
                f"{self.modality} #{self.series_number} '{self.description}': "
                f"{self.n_slices} multi-frame image(s)"
                + (f" ({self.not_image})" if self.not_image else "")
                + f", not read here (export one file per slice), uid {self.uid}"
            )
        if (
            not self.is_image
            and self.modality not in _NON_IMAGE_MODALITIES
            and ("Position" in self.not_image or "Orientation" in self.not_image)
        ):  # images with pixels, stripped of where they lie (by an anonymiser, say)
            # a secondary capture (a screenshot: a dose page, a key image) never has one
            capture = self.sop_class_uid.startswith(_SECONDARY_CAPTURE)
            why = (
                "a secondary capture: a screenshot, a dose page"
                if capture
                else "a damaged header"
                if "finite numbers" in self.not_image
                else "removed by an anonymiser?"
            )
            return (
                f"{self.modality} #{self.series_number} '{self.description}': "
                f"{self.n_slices} image(s) without a position in the patient "
                f"({self.not_image}: {why}), not read here, uid {self.uid}"
            )
        if not self.is_image:
            return (
                f"{self.modality} #{self.series_number} '{self.description}': "
                f"{self.n_slices} non-image object(s)"
                + (f" ({self.not_image})" if self.not_image else "")
                + f", uid {self.uid}"
            )
        acq = f" {self.acquisition_label}" if self.acquisition_label else ""
        held = f" in {len(self.files)} Enhanced CT file(s)" if self.enhanced else ""
        if self.n_slices == 1 and self.spacing:  # one image: pixels, no slice spacing of its own
            sp = "pixels " + "x".join(f"{s:.3g}" for s in self.spacing[1:]) + " mm"
        else:
            sp = spacing_text(self.spacing, "x") if self.spacing else "spacing ? mm"
        # (no description: its folder tells it apart, as 3D-IRCADb's scan from its masks)
        where = f" in {series_folder(self)}" if not self.description and self.files else ""
        return (
            f"{self.modality or '(no modality)'} #{self.series_number} '{self.description}'{acq}"
            f"{where}: {self.n_slices} slice(s){held}"
            + (f" (+{self.left_out_note} left out)" if self.left_out_note else "")
            + (" (cannot be read as one volume)" if self.refusal else "")
            + f", {sp}, phase {self.phase}, uid {self.uid}"
        )


def discover_series(
    root: str | Path,
    *,
    reporter: Reporter | None = None,
    unreadable: list | None = None,
    own_segs: list | None = None,
    seg_refs: set | None = None,
) -> list[SeriesInfo]:
    """Find every DICOM series under ``root`` (a folder tree or one file).

    Files that are not DICOM are skipped silently; DICOM files that cannot be parsed are skipped
    and, when ``unreadable`` is given, appended to it as ``(path, problem)``. DICOM SEGs this
    tool's models made (no ground truth) are left out too, and appended to ``own_segs`` when
    given (the Load panel says they are there). Series whose
    ``AcquisitionNumber`` values repeat the same slice positions are reported once per
    acquisition. ``seg_refs``, when given, is filled with the SOP instances the DICOM SEGs
    found reference (which series and pass :func:`read_dicom_series` reads depends on them:
    :func:`proposed_series`).

    Returns
    -------
    list of SeriesInfo
        Sorted as :func:`read_dicom_series` prefers them: CT image series first, axial before
        other planes, original before derived, then most slices first (of a series stacking
        several passes, which one it reads is :func:`proposed_series`'s to say).
    """
    root = Path(root)
    _exists(root)  # (a folder on the way that cannot be entered: said, not "none found")
    headers, skipped = _scan(_dicomdir_folder(root), as_reporter(reporter), own_segs)
    if unreadable is not None:
        unreadable.extend(skipped)
    headers, _ = _drop_identical_copies(headers)  # listed as many slices as a load reads
    if seg_refs is not None:  # (as read_dicom_series gathers them)
        seg_refs.update(*(h.referenced_uids for h in headers))
    return [info for info, _ in _group(headers)]


#: how a series read from a folder of several patients' scans says so (callers add their advice)
SEVERAL_PATIENTS = "the folder holds the scans of"


def numbers_text(numbers: Collection[int]) -> str:
    """Numbers as a message says them, runs joined: "1–4", "1–4, 9", "2, 5"."""
    runs: list[list[int]] = []
    for k in sorted(numbers):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(
        f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs
    )


def normalise_folder_id(text: str) -> str:
    """A folder name or PatientID compared loosely: case, spaces, '-' and '_' aside, and
    whether an accent is stored apart (macOS names é as e + ´)."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFC", str(text or ""))
    return re.sub(r"[\s_\-]+", "", text).casefold()


def read_dicom_series(
    path: str | Path,
    series_uid: str | None = None,
    *,
    acquisition: int | str | None = None,
    prefer_sop_instance_uids: Collection[str] | None = None,
    reporter: Reporter | None = None,
    max_workers: int | None = None,
    any_modality: bool = False,
    patient_id: str | None = None,
) -> CTVolume:
    """Read one CT series from a folder tree (or the series of one file) as a :class:`CTVolume`.

    Parameters
    ----------
    path : str or Path
        A folder (searched recursively) or one DICOM file (its folder's series of that UID).
    series_uid : str, optional
        The ``SeriesInstanceUID`` to read. Default: the CT series with the most slices.
    acquisition : int or str, optional
        For a series stacking several acquisitions, which ``AcquisitionNumber`` to read
        (default: the one with the most slices, then the latest: by AcquisitionTime where
        every slice has one, else by number); of passes stacked with no AcquisitionNumber, the
        pass's number (1..n). Where a series' passes are numbered 1..n apart from their
        AcquisitionNumbers (an acquisition holding two reconstructions; a step-and-shoot scan's
        chunks joined into passes), ``"pass 3"`` reads pass 3; a bare number is read as the
        pass of that number only where it is no other pass's AcquisitionNumber (else refused,
        the passes listed: it would read another acquisition than that AcquisitionNumber).
        Of a series joining parts of one scan under AcquisitionNumbers of their own (a chest
        and an abdomen part overlapping at a seam), that AcquisitionNumber's slices alone;
        ``"1+2"``, those parts joined (read by default over passes stacked within their
        stretch, which are listed beside them: an arterial liver pass); of a series whose
        slices are all that AcquisitionNumber (its only one), the series whole. ``"none"``
        (also ``"acq none"``, its row's label): the slices with no AcquisitionNumber stacked
        beside numbered ones (of a series none of whose slices has one and that stacks no
        passes, the series whole). A number the series lacks is refused, naming those it has.
    prefer_sop_instance_uids : collection of str, optional
        SOP instance UIDs a DICOM SEG references: among the candidate series/acquisitions, the
        one holding most of them is read (picks the right phase of a stacked series). Without
        it, a DICOM SEG found in the same folder tree decides between the acquisitions of a
        stacked series (not between series).
    reporter : Reporter, optional
        Progress (``"dicom headers"``, ``"dicom pixels"``) and cancellation.
    max_workers : int, optional
        Threads for pixel decoding (default: up to 8, bounded by the CPU count).
    any_modality : bool
        Without ``series_uid``, choose among image series of any modality when the folder holds
        no CT (CT series still come first). Default: a folder without CT is refused.
    patient_id : str, optional
        Of a folder holding several patients' scans (a PACS export in one folder), read this
        ``PatientID``'s (its series chosen as above); the others' are not said as not read.

    Returns
    -------
    CTVolume
        int16 HU ``(z, y, x)`` sorted along the slice normal; ``meta`` holds patient/study/series
        identity, ``phase``, ``sop_instance_uids`` and ``files`` in array order, and ``warnings``.
    """
    path = Path(path)
    reporter = as_reporter(reporter)
    if not _exists(path):
        raise InputError(path, "file or folder not found")
    path = _dicomdir_folder(path)
    root = path.parent if path.is_file() else path
    file_given = False
    own_segs: list = []
    headers, skipped = _scan(path if path.is_dir() else root, reporter, own_segs)
    if path.is_file():
        own = next((h for h in headers if h.path == path), None)
        if own is None and path in own_segs:  # not unreadable: a result, not a scan
            raise InputError(
                path,
                f"{OWN_SEG} (not a CT): open its CT, then this file over it (File > Open)",
            )
        if own is None:  # with the reason a folder's scan gives (a header cut short...)
            problem = next((why for f, why in skipped if f == path), None)
            raise InputError(
                path,
                f"not a readable DICOM file: {problem}" if problem else "not a readable DICOM file",
            )
        if own.modality == "SEG" and series_uid is None:
            ct = [
                g.uid
                for g, _ in _group(headers)
                if g.is_image and own.referenced_uids & g.sop_instance_uids
            ]
            where = (
                f"its CT series ({ct[0]}) is in this folder: give the folder"
                if ct
                else "give the folder of the CT series it was drawn on (or the patient's folder)"
            )
            raise InputError(path, f"is a DICOM SEG (a segmentation), not a CT image; {where}")
        if own.is_image and own.modality not in ("CT", "") and not any_modality and not series_uid:
            raise InputError(
                path,
                f"is a {printable(own.modality)} image, not CT: the models expect CT in "
                "Hounsfield units",
            )
        series_uid = series_uid or own.series_uid
        if (
            acquisition is None
            and not prefer_sop_instance_uids
            and own.is_image
            and series_uid in (None, own.series_uid)
        ):
            # one file stands for its series, and of a series stacking phases for its own
            prefer_sop_instance_uids = {own.sop_uid}
            file_given = True
    # the same slices copied into several folders (an export unpacked twice): read once
    headers, copies = _drop_identical_copies(headers, keep=path if path.is_file() else None)
    groups = _group(headers)
    if patient_id is not None:
        theirs = [(g, m) for g, m in groups if g.patient_id == patient_id]
        if groups and not theirs:
            held = sorted({g.patient_id for g, _ in groups})
            raise InputError(
                path,
                f"no scan of patient {patient_id!r} here (it holds "
                + ", ".join(repr(x) for x in held[:6])
                + (" …" if len(held) > 6 else "")
                + ")",
            )
        groups = theirs
    if not groups:
        if skipped:
            raise InputError(path, f"no readable DICOM image; {_skipped_text(skipped)}")
        raise InputError(path, "no DICOM files found")
    # a DICOM SEG in the same folder tells which acquisition of a stacked series was segmented
    seg_refs = frozenset().union(*(h.referenced_uids for h in headers))
    try:
        info, members = _choose(
            path, groups, series_uid, acquisition, prefer_sop_instance_uids, seg_refs, any_modality
        )
    except InputError as exc:  # the series asked for may be in what could not be read
        if not skipped:
            raise
        # (a CT series folder of mode 000 beside its SEG said only "the CT series they were
        # drawn on is not in this folder")
        raise InputError(path, f"{exc.problem}; {_skipped_text(skipped)}") from None
    warnings: list[str] = []
    if skipped:
        warnings.append(_skipped_text(skipped))
    copies = [(h, kept) for h, kept in copies if h.series_uid == info.uid]
    if copies:
        h, kept = copies[0]
        warnings.append(
            f"{len(copies)} file(s) identical to another (a copy: the same SOPInstanceUID and "
            f"bytes) ignored, e.g. {_shown_under(h.path, root)} (the same as "
            f"{_shown_under(kept.path, root)})"
        )
    # a file cut short inside its SeriesInstanceUID carries the start of the UID only: a
    # "series" of its own, no image; named (its slice is then missing, or mended, and said)
    cut = sorted(
        f"{h.path.parent.name}/{h.path.name}"
        for h in headers
        if not h.is_image  # (a whole series numbered <root>.3 beside <root>.30 is no cut file)
        # cut there, it holds nothing of what follows the UID: no Rows, no pixels (a report
        # or secondary capture whose UID happens to begin alike is a whole object)
        and h.rows <= 0
        and h.pixel_offset is None
        and h.modality not in _NON_IMAGE_MODALITIES
        and h.series_uid != info.uid
        and len(h.series_uid) > 8
        and info.uid.startswith(h.series_uid)
    )
    if cut:
        warnings.append(
            f"{len(cut)} file(s) cut short inside their header, not read: {', '.join(cut[:6])}"
            + (" …" if len(cut) > 6 else "")
        )
    siblings = [g for g, _ in groups if g.uid == info.uid and g is not info]
    if all(g is not info for g, _ in groups):  # (an acquisition of parts joined, read alone)
        whole = next(m for g, m in groups if g.uid == info.uid and g.acquisition is None)
        # (the parts joined; a slice re-acquired under a number of its own is its part's)
        joined = _parts_joined(whole) or sorted({h.acquisition_number for h in whole} - {None})
        numbers = _and(joined) if len(joined) < 4 else f"{joined[0]}–{joined[-1]}"
        warnings.append(
            f"read AcquisitionNumber {info.acquisition} alone, as asked: series {info.label} "
            f"joins AcquisitionNumbers {numbers} into one volume, as parts "
            "of one scan one after another along the body (leave the acquisition out to read "
            "it whole)"
        )
        siblings = []
    passes_said = ("", "")
    if siblings:
        refs = set(prefer_sop_instance_uids or ()) or set(seg_refs)
        # a pass asked for that is the one read unasked (the Load panel's proposed row) is
        # said with the reason it is proposed, not as "the one chosen"
        asked = acquisition is not None and (
            _choose(path, groups, info.uid, None, prefer_sop_instance_uids, seg_refs)[0] is not info
        )
        how = {"asked": asked, "file_name": path.name if file_given else ""}
        warnings.append(_passes_note(info, siblings, refs, **how))
        # (the Load panel says it in one line, the warning's CLI words left out)
        passes_said = (warnings[-1], _passes_line(info, [g for g, _ in groups], refs, **how))
    # the other patients' series are said as theirs, not listed as this patient's not read
    # (an Enhanced CT of the patient is one too: passed over, it is said, with why)
    others = [
        g
        for g, _ in groups
        if g.uid != info.uid
        and (g.is_image or (g.multiframe and g.modality not in _NON_IMAGE_MODALITIES))
        and g.patient_id == info.patient_id
    ]
    # (another patient's SEG or report alone is no scan of theirs left unread)
    strangers = sorted(
        {g.patient_id for g, _ in groups if g.is_image and g.patient_id != info.patient_id}
    )
    if strangers:
        shown = ", ".join(repr(x) for x in strangers[:6]) + (" …" if len(strangers) > 6 else "")
        if series_uid is None:
            warnings.append(
                f"{SEVERAL_PATIENTS} {len(strangers) + 1} patients; {info.patient_id!r} was "
                f"read, not {shown}: give each patient's own folder"
            )
        else:  # a series named by its UID (a SEG's) is no guess among them, but still said:
            # training read a patient folder holding a misfiled study and never mentioned it
            other = "another patient" if len(strangers) == 1 else f"{len(strangers)} other patients"
            folder = normalise_folder_id(path.name)
            own = folder == normalise_folder_id(info.patient_id)
            theirs = [x for x in strangers if normalise_folder_id(x) == folder]
            if theirs:  # the scan read is the stranger in a folder named after another patient
                warnings.append(
                    f"{info.patient_id!r} was read from the folder of {theirs[0]!r}, whose "
                    f"scans were not read: is this study of {info.patient_id!r} filed in the "
                    "wrong patient's folder?"
                )
            else:
                warnings.append(
                    f"the folder also holds the scans of {other} ({shown}), not read"
                    # a patient's own folder (not an export of many): a study filed by mistake
                    + (": a study filed in the wrong patient's folder?" if own else "")
                )
    if others:
        refs = frozenset(prefer_sop_instance_uids or ()) or frozenset(seg_refs)
        if file_given:  # the file given named its series (no SEG was looked at)
            why = f"the one holding {path.name}"
        elif series_uid is not None and refs & info.sop_instance_uids:
            why = "the one its DICOM SEG references"
        elif series_uid is not None:
            why = "as asked"
        else:
            why = why_chosen(info, others, refs)
        where = f" in {series_folder(info)}" if not info.description and info.files else ""
        warnings.append(
            f"read {info.modality} {info.label}{where} ({info.n_slices} slices: {why}); "
            f"{len(others)} {OTHERS_NOT_READ}: "
            # a study of another day is said as one (a follow-up read as "1 other series")
            + "; ".join(o.summary() + _another_study(o, info) for o in others[:6])
        )
    frame_numbers = None
    if info.enhanced:  # multi-frame files, read whole through highdicom
        from ._dicom_enhanced import read_enhanced

        geometry, array, frame_numbers = read_enhanced(members, warnings, reporter, path)
        if info.left_out:
            names = ", ".join(p.name for p in info.left_out[:3])
            warnings.append(
                f"{len(info.left_out)} file(s) of the series that are no Enhanced CT left out "
                f"({names}{', …' if len(info.left_out) > 3 else ''}): it is read from its "
                "Enhanced CT file(s), which hold more slices"
            )
    else:
        mark = len(warnings)
        geometry = stack_geometry(members, warnings)
        damaged: dict[int, InputError] = {}
        pixel_notes: list[str] = []
        rows, cols = geometry.shape_yx
        n_read = len(geometry.slices)
        n_grid = n_read + sum(n for _, n, _ in geometry.fill)  # with missing slices filled in
        memory.require(  # the int16 stack, and the filled one beside it while it is made
            (n_read + (n_grid if geometry.fill else 0)) * rows * cols * 2,
            f"reading its {n_read} slices of {rows} × {cols} pixels",
            path,
        )
        array = decode_slices(
            geometry.slices, geometry.shape_yx, reporter, max_workers, pixel_notes, damaged
        )
        if geometry.duplicates:  # copies of a position that differ: the one read may be wrong
            compare_duplicates(geometry, array, damaged, pixel_notes)
        unread: list[int] = []
        if damaged:  # a few cut-short or undecodable slices: mended like missing ones, said
            geometry, array, unread = mend_damaged(
                members, geometry, array, damaged, warnings, mark
            )
        warnings += pixel_notes
        array = fill_gaps(array, geometry.fill, unread)
    first = geometry.slices[0]
    meta = {
        "patient_id": first.patient_id,
        "patient_name": first.patient_name,
        "study_uid": first.study_uid,
        "series_uid": info.uid,
        "frame_of_reference_uid": first.frame_of_reference_uid,
        "description": info.description,
        "study_description": first.study_description,
        "study_date": first.study_date,
        "series_number": info.series_number,
        "acquisition_number": info.acquisition,
        # "acq 2" / "pass 2" of a series stacking several, else "" (in its layer's name)
        "acquisition_label": info.acquisition_label,
        "modality": info.modality,
        "phase": info.phase,
        "contrast_agent": first.contrast_agent,
        "source": str(path),
        "sop_class_uid": first.sop_class_uid,
        "sop_instance_uids": geometry.sop_instance_uids,
        "files": [str(p) if p else "" for p in geometry.files],
        # the series' files that gave no slice here (a duplicate left out, a file whose pixels
        # could not be read): still this series' files, so a multi-select of them adds nothing
        "unused_files": sorted(
            (
                {str(h.path) for h in members}
                | {str(p) for p in info.left_out}
                | {str(h.path) for h, _ in copies}
            )
            - {str(p) for p in geometry.files if p}
        ),
        # per z: the InstanceNumber (the image number a PACS viewer shows; None in a gap)
        "instance_numbers": geometry.instance_numbers,
        # (the header's text some carry escaped: a terminal shows them)
        "warnings": [printable(w) for w in warnings],
        # of a series stacking passes: its warning above, and the same in one line
        "passes_warning": printable(passes_said[0]),
        "passes_line": printable(passes_said[1]),
        # the DICOM SEG files of the folder drawn on this series (a ground truth to offer)
        "seg_files": sorted(
            str(h.path)
            for h in headers
            if h.modality == "SEG" and h.referenced_uids & set(geometry.sop_instance_uids)
        ),
        # the patient's other DICOM SEGs there, drawn on none of this series' images: a ground
        # truth whose CT series is not in the folder (or is another one) is said, not ignored
        "other_seg_files": sorted(
            str(h.path)
            for h in headers
            if h.modality == "SEG"
            and not h.referenced_uids & set(geometry.sop_instance_uids)
            and (h.patient_id or "") == (first.patient_id or "")
        ),
    }
    if frame_numbers is not None:
        # per z: the frame of its multi-frame file (1-based; ``files`` and
        # ``sop_instance_uids`` repeat the file's): what a DICOM SEG on it references
        meta["frame_numbers"] = frame_numbers
    return CTVolume(
        array=array,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        meta=meta,
    )


#: value representations a DICOM file without a preamble may start with (explicit VR)
_START_VRS = {b"AE", b"CS", b"DA", b"DS", b"IS", b"LO", b"OB", b"PN", b"SH", b"ST", b"TM",
              b"UI", b"UL", b"US"}  # fmt: skip


def is_dicom_file(path: str | Path) -> bool:
    """Cheap check: the ``DICM`` marker at byte 128, or (an old export without a preamble)
    a first element of group 0002 or 0008 with a plausible VR or length."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8 or head[:2] not in (b"\x08\x00", b"\x02\x00"):
        return False
    if head[4:6] in _START_VRS:  # explicit VR little endian
        return True
    return int.from_bytes(head[4:8], "little") < 0x10000  # implicit VR: a short first value


def _dicomdir_folder(path: Path) -> Path:
    """A DICOMDIR (the index of a CD or USB export, what a file dialog offers) stands for
    the folder it indexes: its series are read from the files there."""
    return path.parent if path.is_file() and path.name.upper() == "DICOMDIR" else path


# --------------------------------------------------------------------------- header pass
def _scan(
    root: Path, reporter: Reporter, own_segs: list | None = None
) -> tuple[list[SliceHeader], list[tuple[Path, str]]]:
    skipped: list[tuple[Path, str]] = []
    files = [root] if root.is_file() else _files_under(root, skipped)
    headers: list[SliceHeader] = []
    total = len(files)
    for i, f in enumerate(files):
        if i % 32 == 0:
            reporter.check()
            reporter.update("dicom headers", i, total)
        header, problem = _read_header_cached(f)
        if header is not None:
            headers.append(header)
        elif problem == OWN_SEG:
            if own_segs is not None:
                own_segs.append(f)
        elif problem:
            skipped.append((f, problem))
    reporter.update("dicom headers", total, total)
    return headers, skipped


#: the "problem" of a DICOM SEG this tool's models made: not unreadable, and not read as a series
OWN_SEG = "a segmentation made by this tool's models"
#: the "problem" of a folder of the tree that could not be listed (its files were not looked at)
FOLDER_NOT_READ = "folder not read"
#: the folder a zip made on macOS holds beside its files: their AppleDouble ``._*`` copies
#: (resource forks, no scans), passed over as the hidden files they hold are
MACOS_ZIP_FOLDER = "__MACOSX"

#: the most a deflated DICOM file (Deflated Explicit VR Little Endian: its dataset zipped)
#: may inflate to. pydicom inflates the whole file in memory before it reads even its header
#: (its pixels too, whatever ``stop_before_pixels`` says), and 3.4 MB of such a file held
#: 3.5 GB of zeros: 7 GB of memory and half a minute, per file. A CT slice holds 0.5 MB of
#: pixels (512 × 512 × 2 bytes; 2 MB at 1024²), and a whole study of 2,000 of them in one
#: Enhanced CT file just under 1 GiB: no CT file needs more.
MAX_INFLATED = 1 << 30
#: the "problem" of a deflated DICOM file that inflates past MAX_INFLATED (a zip bomb)
DEFLATE_BOMB = (
    "deflated DICOM that inflates past 1 GiB (no CT file needs that much: a decompression "
    "bomb?): not read"
)
#: value representations of explicit VR whose length takes 4 bytes (the others' take 2)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())


def refuse_deflate_bomb(path: str | Path) -> None:
    """Raise :class:`InputError` naming ``path`` when it is a deflated DICOM file inflating past
    :data:`MAX_INFLATED` (:data:`DEFLATE_BOMB`): to call before ``pydicom.dcmread`` reads a
    file that discovery did not (pydicom inflates it whole first). Unreadable files pass: the
    read that follows says what is wrong with them."""
    try:
        with open(path, "rb") as fp:
            bomb = _deflate_bomb(fp)
    except OSError:
        return
    if bomb:
        raise InputError(path, DEFLATE_BOMB)


def _deflate_bomb(fp) -> bool:
    """Whether the file open in ``fp`` (at its start; put back there) is a deflated DICOM file
    inflating past :data:`MAX_INFLATED`: measured as it inflates, in pieces of 1 MiB that are
    counted and dropped, before pydicom inflates it whole."""
    start = fp.tell()
    try:
        at = _deflated_dataset_at(fp)
        if at is None:
            return False
        fp.seek(at)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while not inflater.eof:
            # (64 kB in inflates to 66 MB at most: its rest, kept to go on, stays small)
            data = inflater.unconsumed_tail or fp.read(1 << 16)
            if not data:
                break  # cut short: pydicom says so
            total += len(inflater.decompress(data, 1 << 20))
            if total > MAX_INFLATED:
                return True
        return False
    except zlib.error:  # damaged: pydicom says so (having inflated no more than counted here)
        return False
    finally:
        fp.seek(start)


def _deflated_dataset_at(fp) -> int | None:
    """Where the zipped dataset of a deflated DICOM file starts (``fp`` at the file's start),
    or None for any other file. Its file meta information (group 0002, explicit VR little
    endian) is walked through cheaply; only a deflated one (or one not walked through so: pydicom
    reads it otherwise) is read by pydicom itself, for the place it starts inflating at."""
    start = fp.tell()
    fp.seek(start + 128)
    fp.seek(start + 132 if fp.read(4) == b"DICM" else start)
    syntax = b""
    while True:
        head = fp.read(8)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            break  # the meta information ends (or there is none)
        vr = head[4:6]
        if vr in _SHORT_VRS:
            length = int.from_bytes(head[6:8], "little")
        elif vr in _LONG_VRS and len(more := fp.read(4)) == 4:
            length = int.from_bytes(more, "little")
        else:  # implicit VR, cut short: read as pydicom reads it
            syntax = None
            break
        if length == 0xFFFFFFFF:  # an undefined length: likewise
            syntax = None
            break
        if head[2:4] == b"\x10\x00":  # (0002,0010) TransferSyntaxUID (the last one counts)
            syntax = fp.read(length)
        else:
            fp.seek(length, 1)
    # (whatever its VR, and pydicom's stripping of it: a value not holding the UID is not it)
    if syntax is not None and DeflatedExplicitVRLittleEndian.encode() not in syntax:
        return None
    fp.seek(start)
    try:  # (pydicom's own private readers: a pydicom without them leaves the file to it)
        from pydicom.filereader import (
            _read_command_set_elements,
            _read_file_meta_info,
            read_preamble,
        )

        read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return None
        _read_command_set_elements(fp)  # (as pydicom does: they are not zipped)
    except Exception:  # noqa: BLE001 - a damaged header: pydicom's read says what is wrong
        return None
    return fp.tell()


def os_problem(exc: OSError) -> str:
    """An OS error in words: "permission denied" (its strerror, lower case)."""
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _exists(path: Path) -> bool:
    """Whether ``path`` exists. A folder on the way to it that cannot be entered (Python
    raises then) is an :class:`InputError` naming the path: "permission denied"."""
    try:
        return path.exists()
    except OSError as exc:
        raise InputError(path, os_problem(exc)) from None


def _files_under(root: Path, skipped: list) -> list[Path]:
    """The files of the folder tree ``root`` (sorted; hidden files, such as macOS's AppleDouble
    ``._*`` files, DICOMDIRs and ``__MACOSX`` folders aside). A folder in it that cannot be
    listed is appended to ``skipped`` (its series would be missing without a word); ``root``
    itself, raised as an :class:`InputError` ("permission denied")."""

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        if where == root:
            if isinstance(exc, FileNotFoundError):  # gone: nothing found, as before
                return
            raise InputError(root, os_problem(exc))
        skipped.append((where, f"{FOLDER_NOT_READ} ({os_problem(exc)})"))

    files = []
    from ..fileio import walk

    for folder, dirs, names in walk(root, onerror=failed):
        dirs[:] = [d for d in dirs if d != MACOS_ZIP_FOLDER]
        for name in names:
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            p = Path(folder) / name
            try:
                if p.is_file():
                    files.append(p)
            except OSError as exc:  # listed, but not to be looked at (a folder without x)
                skipped.append((p, f"cannot be read ({os_problem(exc)})"))
    return sorted(files)


def _drop_identical_copies(
    headers: list[SliceHeader], keep: Path | None = None
) -> tuple[list[SliceHeader], list[tuple[SliceHeader, SliceHeader]]]:
    """One header per DICOM file copied several times: a file found again byte for byte (the
    same SOP instance, at the same place, copied into another folder) is left out. Returns the
    headers kept and ``(copy left out, the one kept)`` pairs; the first found is kept
    (``keep``, a file given, before it). Files that share a SOPInstanceUID but not their bytes
    (one cut short, pixels that differ, an anonymiser's blunder) are all kept: the repeated
    positions' own checks then read the intact one and say which differ."""
    groups: dict[tuple, list[SliceHeader]] = {}
    copy_of: dict[int, SliceHeader] = {}
    for h in sorted(headers, key=lambda h: keep is None or h.path != keep):  # (stable)
        if not h.sop_uid:
            continue
        group = groups.setdefault(_identity(h), [])
        same = next((g for g in group if _same_bytes(g.path, h.path)), None)
        if same is None:
            group.append(h)
        else:
            copy_of[id(h)] = same
    if not copy_of:
        return headers, []
    kept = [h for h in headers if id(h) not in copy_of]
    copies = [(h, copy_of[id(h)]) for h in headers if id(h) in copy_of]
    return kept, copies


def _same_bytes(a: Path, b: Path) -> bool:
    """Whether files ``a`` and ``b`` hold the same bytes (False if either cannot be read)."""
    import filecmp

    try:
        return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _identity(h: SliceHeader) -> tuple:
    """What two copies of one object share (an object merely given the same SOPInstanceUID,
    another slice of another size, is told apart)."""
    where = None if h.position is None else tuple(np.round(h.position, 3))
    return (
        h.sop_uid,
        h.series_uid,
        where,
        h.orientation,
        h.pixel_spacing,
        (h.rows, h.cols),
        h.instance_number,
        h.acquisition_number,
        h.n_frames,
    )


def _shown_under(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (the folder read), else whole."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


#: headers read lately, by file (path, size, modification time): a folder of several
#: patients' scans is read once per patient, and a series listed (Find series, a batch telling
#: its patients apart) is read again to load it; the file unchanged, its header is not parsed
#: again. Bounded (once full, no more are kept): about 6 kB each.
_HEADER_CACHE: dict[Path, tuple[tuple, SliceHeader | None, str | None]] = {}
_HEADER_CACHE_MAX = 20_000


def _read_header_cached(path: Path) -> tuple[SliceHeader | None, str | None]:
    import copy

    try:
        st = path.stat()
    except OSError:
        return _read_header(path)
    # a copy keeping the modification time (cp -p, rsync -a, an unzip) replaces the file: its
    # inode or change time differ, which no program sets back
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)
    hit = _HEADER_CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        header, problem = hit[1], hit[2]
        return (copy.copy(header) if header is not None else None), problem
    header, problem = _read_header(path)
    if problem is not None and problem.startswith("cannot be read"):
        return header, problem  # (a file being written, a lock): read again next time
    # full: nothing more is kept (dropping the oldest made a folder larger than the cache
    # read every file again for each of its patients)
    if len(_HEADER_CACHE) < _HEADER_CACHE_MAX:
        _HEADER_CACHE[path] = (stamp, header, problem)
    return (copy.copy(header) if header is not None else None), problem


def _read_header(path: Path) -> tuple[SliceHeader | None, str | None]:
    """Header of one file, or ``(None, problem)``; ``problem`` is None for non-DICOM files."""
    try:
        with open(path, "rb") as fp:
            start = fp.read(132)
            fp.seek(0)
            if (start[128:132] == b"DICM" or start[:2] == b"\x02\x00") and _deflate_bomb(fp):
                return None, DEFLATE_BOMB  # (pydicom would inflate it whole first)
            if start[128:132] == b"DICM":
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
                if "SeriesInstanceUID" not in ds or "SOPInstanceUID" not in ds:
                    return None, "incomplete DICOM header (truncated file?)"
            elif start[:2] in (b"\x08\x00", b"\x02\x00") and len(start) >= 8:
                # no preamble, but it starts like a DICOM dataset (group 0002 or 0008)
                try:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                except Exception:
                    return None, None
                if "SeriesInstanceUID" not in ds or "SOPClassUID" not in ds:
                    return None, None
            elif path.suffix.lower() in (".dcm", ".dicom", ".ima"):
                if len(start) < 132:  # shorter than the preamble and "DICM": cut short?
                    size = len(start)
                    plain = size > 0 and _is_text(start)
                    return None, (
                        f"named like a DICOM file but only {size} byte{'s' if size != 1 else ''} "
                        + (
                            "of text (not DICOM)"  # a note renamed, not a file cut short
                            if plain
                            else "long (empty or cut short)"
                        )
                    )
                return None, "named like a DICOM file but is not one (no DICOM header)"
            else:
                return None, None  # not DICOM: never parse arbitrary files
            if str(ds.get("Modality", "")) == "SEG" and _model_output(ds):
                # this tool's own automatic SEG (segment --dicom-seg into the patient's
                # folder): no ground truth, and no series of the scan
                log.debug("%s: a segmentation made by this tool's models; not read", path)
                return None, OWN_SEG
            pixel_offset, excess = _pixel_offset(fp, ds)
    except OSError as exc:  # "permission denied", not the errno and the whole path again
        return None, f"cannot be read ({os_problem(exc)})"
    except EOFError as exc:
        return None, f"cannot be read ({exc})"
    except InvalidDicomError as exc:
        return None, f"invalid DICOM ({exc})"
    except Exception as exc:  # pydicom raises many kinds on corrupt headers
        return None, f"corrupt DICOM header ({type(exc).__name__}: {exc})"
    try:
        return SliceHeader.from_dataset(path, ds, pixel_offset, excess), None
    except Exception as exc:
        return None, f"unusable DICOM header ({type(exc).__name__}: {exc})"


def _is_text(data: bytes) -> bool:
    """Printable text (UTF-8, a BOM allowed, else Windows' cp1252; any white space): a note,
    not a file cut short."""
    for codec in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        return all(ch.isprintable() or ch.isspace() for ch in text)
    return False


def _model_output(ds) -> bool:
    from .seg import is_model_output

    return is_model_output(ds)


def _pixel_offset(fp, ds) -> tuple[int | None, int]:
    """Byte offset of native little-endian 16-bit pixel values, for a direct read (else None),
    and how many bytes the pixel data holds beyond one Rows × Columns frame (0 when unknown)."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts not in _NATIVE_LE or ds.get("BitsAllocated") != 16:
        return None, 0
    if ds.get("SamplesPerPixel", 1) != 1 or ds.get("NumberOfFrames", 1) not in (1, "1", None):
        return None, 0
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00":
        return None, 0
    if ts == ExplicitVRLittleEndian:
        if head[4:6] not in (b"OW", b"OB"):
            return None, 0
        length, offset = int.from_bytes(head[8:12], "little"), start + 12
    else:
        length, offset = int.from_bytes(head[4:8], "little"), start + 8
    expected = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * 2
    if length == 0xFFFFFFFF or length < expected:
        return None, 0  # encapsulated or short: let pydicom decide (and explain)
    return offset, length - expected


# --------------------------------------------------------------------------- grouping
def _group(headers: list[SliceHeader]) -> list[tuple[SeriesInfo, list[SliceHeader]]]:
    by_uid: dict[str, list[SliceHeader]] = {}
    for h in headers:
        by_uid.setdefault(h.series_uid, []).append(h)
    groups = []
    for uid, members in by_uid.items():
        members, other_kind = _one_kind(members)
        first_new = len(groups)
        acquisitions = _split_acquisitions(members)
        chunked = _join_chunks(acquisitions)
        if chunked is not None:  # a step-and-shoot scan's chunks, joined into its passes
            how, chains = chunked
            parts = [[h for _, part in chain for h in part] for chain in chains]
            infos = []
            for k, (chain, part) in enumerate(zip(chains, parts, strict=True), start=1):
                info = _series_info(uid, part, k)
                info.passes_by, info.chunks = f"chunks, {how}", tuple(acq for acq, _ in chain)
                groups.append((info, part))
                infos.append(info)
            _name_reconstructions(infos, parts)
            acquisitions = []
        # an acquisition holding several passes of its own (a phase reconstructed twice, both
        # under its AcquisitionNumber) was refused as slices held twice: its passes are told
        # apart as those of a series without AcquisitionNumber, and all numbered 1..n
        within = [
            _split_passes(part) if len(acquisitions) > 1 else None for acq, part in acquisitions
        ]
        if any(within):
            parts, numbers = [], []
            for (acq, part), split in zip(acquisitions, within, strict=True):
                for each in split[1] if split else [part]:
                    parts.append(each)
                    numbers.append(acq)
            infos = []
            how = next(split[0] for split in within if split)
            for k, (part, acq) in enumerate(zip(parts, numbers, strict=True), start=1):
                info = _series_info(uid, part, k)
                info.passes_by, info.acquisition_number = f"AcquisitionNumber, {how}", acq
                groups.append((info, part))
                infos.append(info)
            _name_reconstructions(infos, parts)
            acquisitions = []
        for acq, part in acquisitions:
            groups.append((_series_info(uid, part, acq), part))
            if acq is None and len(acquisitions) > 1:  # (parts joined, passes within them)
                groups[-1][0].joined = _parts_joined(part)
                # (else slices with no AcquisitionNumber beside numbered ones)
                groups[-1][0].unnumbered = not groups[-1][0].joined
        if len(acquisitions) > 1:
            # acquisitions set at moments, and told apart by kernel, as passes are: two
            # phases numbered against their times read the earlier, and a lung kernel
            # numbered after its soft-tissue reconstruction was read, named as neither
            _name_reconstructions(
                [info for info, _ in groups[first_new:]], [part for _, part in acquisitions]
            )
        # (of the series whole only: slices with no AcquisitionNumber beside numbered ones
        # were split with all the series' slices, each numbered one listed twice)
        if (
            len(acquisitions) == 1
            and groups[-1][0].acquisition is None
            and not groups[-1][0].joined
        ):
            passes = _split_passes(members)
            if passes is not None:  # passes stacked with no AcquisitionNumber: told apart
                how, parts = passes
                del groups[-1]
                infos = []
                for k, part in enumerate(parts, start=1):
                    info = _series_info(uid, part, k)
                    info.passes_by = how
                    groups.append((info, part))
                    infos.append(info)
                _name_reconstructions(infos, parts)
        for info, _ in groups[first_new:]:
            info.left_out = [h.path for h in other_kind]
    # in the order a folder's series are offered: the one read by default first
    groups.sort(key=lambda g: (not g[0].is_ct, *_rank(g[0]), g[0].series_number or 0))
    return groups


def _one_kind(members: list[SliceHeader]) -> tuple[list[SliceHeader], list[SliceHeader]]:
    """A series holding both classic slices and Enhanced CT files under one UID is read as the
    kind holding more slices: ``(the Enhanced files, the classic files left out)``, or ``(all
    of them, [])`` (the Enhanced files among them are left out and named as no single slice
    by the classic stacking)."""
    enhanced = [h for h in members if h.enhanced]
    if not enhanced or len(enhanced) == len(members):
        return members, []
    n_classic = sum(1 for h in members if h.is_image)
    if sum(h.n_frames for h in enhanced) > n_classic:
        return enhanced, [h for h in members if not h.enhanced]
    return members, []


def _split_acquisitions(members: list[SliceHeader]) -> list[tuple[int | None, list[SliceHeader]]]:
    """Split by AcquisitionNumber only when acquisitions image the same stretch (stacked phases).

    Two acquisitions are stacked phases when they share most positions, or when their ranges
    overlap by more than half a slice (shifted, or partly covering each other as an
    arterial liver-only pass does a portal-venous abdomen). Consecutive chunks of one scan
    (step-and-shoot rotations, one acquisition per slice) never overlap and stay one volume;
    so do parts that lie one after another along the body, each overlapping the next at a
    seam only (a chest part and an abdomen part sharing 2 slices: :func:`_seams_only`), the
    slices of the part scanned later read at the seam (:func:`trim_seams`). Such parts beside
    passes lying within their stretch (an arterial liver pass within the abdomen part) are
    joined into one, ``(None, their slices)``, listed after the passes, each stacked beside
    it under its AcquisitionNumber (:func:`_chain_of_parts`).
    """
    by_acq: dict[int | None, list[SliceHeader]] = {}
    for h in members:
        by_acq.setdefault(h.acquisition_number, []).append(h)
    if len(by_acq) < 2:
        return [(None, members)]

    def where(part):
        return sorted({round(h.location, 1) for h in part if h.location is not None})

    # a slice or two re-acquired under another AcquisitionNumber, at positions a larger
    # acquisition already has, is no phase of its own: it joins that acquisition, where the
    # duplicate rule (the higher InstanceNumber wins) picks between the copies (and at a
    # seam, trim_seams groups the parts alike)
    by_acq = fold_reacquired(by_acq)
    if len(by_acq) < 2:
        return [(None, members)]
    locations = [where(part) for part in by_acq.values()]
    stacked = any(
        _same_stretch(a, b) for i, a in enumerate(locations) for b in locations[i + 1 :] if a and b
    )
    if not stacked or (_seams_only(locations) and not _phases_differ(by_acq.values())):
        return [(None, members)]
    split = sorted(by_acq.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    chain = _chain_of_parts(by_acq)
    if chain is None or _join_chunks(split) is not None:
        return split
    # parts of one scan joined at their seams, and the passes lying within their stretch
    joined = [h for acq in chain for h in by_acq[acq]]
    return [kv for kv in split if kv[0] not in chain] + [(None, joined)]


def _chain_of_parts(by_acq: dict[int | None, list[SliceHeader]]) -> list[int] | None:
    """Of acquisitions stacked over one stretch, those that are parts of one scan lying one
    after another along the body, overlapping at seams only (a chest and an abdomen part),
    beside passes each lying wholly within their stretch (an arterial liver pass within the
    abdomen): the parts' AcquisitionNumbers, to be joined into one volume, the passes left
    stacked beside it (QA rev65 B: the chest was dropped, and all three said to be "over
    the same stretch"). A pass lies within the others where each of its positions lies in
    the span of one of them; the parts are the acquisitions lying within none. None where
    there is no such chain (fewer than two parts, no seams only between them, parts naming
    phases that differ, a pass reaching beyond the parts): acquisitions stacked, as before."""
    if None in by_acq:
        return None
    where = {
        acq: sorted({round(h.location, 1) for h in part if h.location is not None})
        for acq, part in by_acq.items()
    }
    if not all(where.values()):
        return None

    def within(acq, others) -> bool:
        spans = [(where[o][0] - 0.05, where[o][-1] + 0.05) for o in others if o != acq]
        return all(any(lo <= p <= hi for lo, hi in spans) for p in where[acq])

    passes = [acq for acq in by_acq if within(acq, by_acq)]
    chain = [acq for acq in by_acq if acq not in passes]
    if (
        not passes
        or len(chain) < 2
        or not all(within(acq, chain) for acq in passes)
        or not _seams_only([where[acq] for acq in chain])
        or _phases_differ([by_acq[acq] for acq in chain])
    ):
        return None
    return sorted(chain)


def _phases_differ(parts) -> bool:
    """Do acquisitions name contrast phases of their own, known and not the same (a portal
    venous abdomen and a delayed pass below it, minutes later)? Stacked phases then, however
    little they overlap: no parts of one scan joined at a seam (QA today64 B: read as one
    volume, labelled portal venous). Each one's phase is read as a series' is (its first
    image, :func:`phase_from_text`); an unnamed one ("unknown", "contrast") says nothing."""
    named = set()
    for part in parts:
        first = next((h for h in part if h.is_image), part[0])
        phase = phase_from_text(
            first.series_description, first.contrast_agent, first.image_comments
        )
        if first.modality in ("CT", "") and phase not in ("unknown", "contrast"):
            named.add(phase)
    return len(named) > 1


#: of the positions on either side of a seam (the parts of the scan below and above it), at
#: most this share lies where two parts overlap: a seam (real scanners overlap a chest and an
#: abdomen part by a slice or a few, 1–2 cm of thin slices), not a second pass over that stretch
_SEAM_SHARE = 0.2


def _seams_only(locations: list[list[float]]) -> bool:
    """Do acquisitions at these sorted positions lie one after another along the body, each
    overlapping only the next one, and that at a seam: by at most ``_SEAM_SHARE`` of the
    positions either side of it (the parts before it together, and those after)? The parts of
    one scan (a chest then an abdomen acquisition, step-and-shoot chunks of each), not stacked
    phases: a phase shifted by a few slices overlaps most of the other's stretch, and a
    partial pass (an arterial liver-only one inside a portal-venous abdomen) lies wholly
    within it. AcquisitionTime says nothing here: the parts of one scan may be seconds apart,
    or minutes. Parts that name phases of their own, not the same, are kept apart by
    :func:`_split_acquisitions` (:func:`_phases_differ`)."""
    if any(not part for part in locations) or len(locations) < 2:
        return False
    order = parts_in_a_row(locations)
    if order is None:
        return False
    parts = [locations[k] for k in order]
    # the positions of the parts up to each seam, and of those after it (only neighbours
    # overlap: the seam's positions are the two parts' there)
    below, above, held = [], [], set()
    for part in parts[:-1]:
        held |= set(part)
        below.append(len(held))
    held = set()
    for part in parts[:0:-1]:
        held |= set(part)
        above.append(len(held))
    above.reverse()
    for k, (a, b) in enumerate(zip(parts, parts[1:], strict=False)):
        seam = {p for p in (*a, *b) if b[0] <= p <= a[-1]}
        if len(seam) > _SEAM_SHARE * min(below[k], above[k]):
            return False
    return True


#: seconds between one chunk's last slice and the next one's first beyond which they are no
#: chunks of one step-and-shoot pass (a rotation and a table step take a second or two; the
#: next contrast phase comes tens of seconds later)
_CHUNK_GAP_S = 10.0

#: ... unless the next chunk goes on along the stretch from where the pass stopped, up to this
#: pause (a tube cooling, a breath held again: a pass paused 15 s halfway was cut in two
#: halves, read as two passes over the same stretch: QA adv61b)
_CHUNK_PAUSE_S = 60.0

#: of the positions the chunks cover together, the share each pass joined from them covers:
#: passes over part of it are halves of one pass, or one phase's half spliced to another's
#: (QA adv61b), not phases to choose between
_CHUNK_COVER = 0.85


def _join_chunks(
    acquisitions: list[tuple[int | None, list[SliceHeader]]],
) -> tuple[str, list[list[tuple[int, list[SliceHeader]]]]] | None:
    """Acquisitions split by :func:`_split_acquisitions` that are the chunks of stacked passes
    (a step-and-shoot scan numbers each rotation, or each slice, an acquisition of its own;
    two phases of it stacked in one series were split into 8 "acquisitions" and one chunk
    read, a quarter of a phase: QA adv61): ``(the order they were taken in, the chunks of each
    pass)``. Taken in the order they were scanned (by AcquisitionTime where every slice has
    one, else by InstanceNumber, else by AcquisitionNumber), chunks at positions of their own
    are one pass until a position comes again (or, timed, more than ``_CHUNK_GAP_S`` pass,
    unless the chunk goes on from where the pass stopped within ``_CHUNK_PAUSE_S``). None
    where no chunks join, or the passes so made do not each tile nearly all of the stretch
    (their chunks interleaved, or covering under ``_CHUNK_COVER`` of the positions the chunks
    hold: halves of one pass, a phase's half joined to another's): acquisitions, as before.
    The passes are in the order of their AcquisitionNumbers."""
    if len(acquisitions) < 3 or any(acq is None for acq, _ in acquisitions):
        return None
    every = [h for _, part in acquisitions for h in part]
    if any(not h.is_image or h.location is None or h.n_frames != 1 for h in every):
        return None
    where = [{round(h.location, 1) for h in part} for _, part in acquisitions]
    if any(len(w) != len(part) for w, (_, part) in zip(where, acquisitions, strict=True)):
        return None  # (a chunk holding a position twice: two reconstructions, say)
    times = [h.acquisition_time for h in every]
    if all(t is not None for t in times) and any(t != 0 for t in times):
        how = "AcquisitionTime"
        # the day's clock read on from its longest pause: a scan across midnight runs on
        held = sorted(set(times))
        pauses = [b - a for a, b in zip(held, held[1:], strict=False)] + [
            held[0] + 86400 - held[-1]
        ]
        start = held[(int(np.argmax(pauses)) + 1) % len(held)]

        def clock(h):
            return (h.acquisition_time - start) % 86400

        def when(k):
            return (min(clock(h) for h in acquisitions[k][1]), min(_numbers(k)))
    elif len({h.instance_number for h in every}) == len(every):
        how = "InstanceNumber"

        def when(k):
            return (min(_numbers(k)),)
    else:
        how = "AcquisitionNumber"

        def when(k):
            return (acquisitions[k][0],)

    def _numbers(k):
        return [h.instance_number for h in acquisitions[k][1]]

    every_position = sorted(set().union(*where))

    def goes_on(held: set, k: int) -> bool:  # (chunk k lies next to the pass, beyond its end)
        lo, hi = min(held), max(held)
        if min(where[k]) > hi:
            return not any(hi < p < min(where[k]) for p in every_position)
        if max(where[k]) < lo:
            return not any(max(where[k]) < p < lo for p in every_position)
        return False

    chains: list[list[int]] = []
    for k in sorted(range(len(acquisitions)), key=when):
        if chains:
            held = set().union(*(where[j] for j in chains[-1]))
            if how == "AcquisitionTime":
                pause = when(k)[0] - max(clock(h) for j in chains[-1] for h in acquisitions[j][1])
                near = pause <= _CHUNK_GAP_S or (pause <= _CHUNK_PAUSE_S and goes_on(held, k))
            else:
                near = True
            if near and not held & where[k] and not _same_stretch(sorted(held), sorted(where[k])):
                chains[-1].append(k)
                continue
        chains.append([k])
    if len(chains) < 2 or len(chains) == len(acquisitions):
        return None
    for chain in chains:
        # each pass tiles nearly all of the stretch, its chunks one after another along it
        spans = sorted((min(where[j]), max(where[j])) for j in chain)
        if any(a[1] >= b[0] for a, b in zip(spans, spans[1:], strict=False)):
            return None
        if sum(len(where[j]) for j in chain) < _CHUNK_COVER * len(every_position):
            return None
    # (numbered by their AcquisitionNumbers, as their acquisitions were: acq 1-4 pass 1)
    chains.sort(key=lambda chain: min(acquisitions[j][0] for j in chain))
    return how, [[acquisitions[j] for j in chain] for chain in chains]


def _split_passes(members: list[SliceHeader]) -> tuple[str, list[list[SliceHeader]]] | None:
    """Passes stacked in one series with no AcquisitionNumber to tell them apart (removed by an
    anonymiser, or the same in every file; HCC-TACE-Seg stacks two contrast phases in 21 of
    105 series): most positions held n ≥ 2 times. Told apart by InstanceNumber (scanners number
    a series' images in the order they were made: a pass ends where a position comes again),
    else by the folders the files lie in; each pass must then hold each position at most once
    and most of them (a pass missing a slice is one: its gap is filled as in any series).
    None when they cannot be told apart, or the series is no such stack (a few duplicate
    positions are the duplicate rule's; the geometry step says what else it is)."""
    images = [h for h in members if h.is_image and h.location is not None and h.n_frames == 1]
    if len(images) != len(members) or len(images) < 4:
        return None
    # a copy of a file (the same SOP instance) is one slice: the first one found stands
    images = list({(h.sop_uid or str(h.path)): h for h in images}.values())
    counts = Counter(round(h.location, 1) for h in images)
    n_passes, n_positions = max(counts.values()), len(counts)
    if n_passes < 2 or n_positions < 2 or sum(c > 1 for c in counts.values()) < n_positions / 2:
        return None

    def passes(parts):
        return len(parts) == n_passes and all(
            len({round(h.location, 1) for h in part}) == len(part) >= n_positions / 2
            for part in parts
        )

    # split by how they were reconstructed (kernel, thickness, field of view, matrix): two
    # reconstructions each numbered from 1 in one folder were refused, though their kernels
    # tell them apart; a split by number or folder that mixes reconstructions is no pass
    by_recon: dict[tuple, list[SliceHeader]] = {}
    for h in sorted(images, key=lambda h: (h.instance_number, str(h.path))):
        by_recon.setdefault(_recon_key(h), []).append(h)
    recon = sorted(by_recon.values(), key=lambda part: part[0].instance_number)
    recon_ok = len(recon) > 1 and passes(recon)

    def one_recon_each(parts):
        return not recon_ok or all(len({_recon_key(h) for h in part}) == 1 for part in parts)

    by_number = sorted(images, key=lambda h: (h.instance_number, str(h.path)))
    if len({h.instance_number for h in images}) == len(images):
        parts: list[list[SliceHeader]] = [[]]
        for h in by_number:
            if any(round(o.location, 1) == round(h.location, 1) for o in parts[-1]):
                parts.append([])  # a position again: the next pass begins
            parts[-1].append(h)
        # passes that run opposite ways, one of them short: the slice where one ends and the
        # other begins may be either's (a pass missing its last slice took the next one's
        # first): not told apart
        ways = {np.sign(part[-1].location - part[0].location) for part in parts if len(part) > 1}
        ambiguous = len(ways) > 1 and any(len(part) < n_positions for part in parts)
        if passes(parts) and not ambiguous and one_recon_each(parts):
            return "InstanceNumber", parts
    folders: dict[Path, list[SliceHeader]] = {}
    for h in by_number:
        folders.setdefault(h.path.parent, []).append(h)
    parts = [folders[f] for f in sorted(folders, key=lambda f: folders[f][0].instance_number)]
    if passes(parts) and one_recon_each(parts):
        return "folder", parts
    if recon_ok:
        return "reconstruction", recon
    return None


def _recon_key(h: SliceHeader) -> tuple:
    """How a slice was reconstructed: what tells apart reconstructions of one scan."""
    return (
        h.convolution_kernel,
        None if h.slice_thickness is None else round(h.slice_thickness, 2),
        None if h.reconstruction_diameter is None else round(h.reconstruction_diameter, 1),
        h.rows,
        h.cols,
        None if h.pixel_spacing is None else tuple(round(v, 3) for v in h.pixel_spacing),
    )


#: how :func:`_name_reconstructions` names each reconstruction attribute: its words, and
#: the unit after its values
_RECON_ATTRIBUTES = (
    ("kernel", ""),
    ("slice thickness", " mm"),
    ("field of view", " mm"),
    ("matrix", ""),
    ("pixel size", " mm"),
)


def _recon_values(part: list[SliceHeader]) -> tuple[str, ...]:
    """A pass's reconstruction attributes as messages write them (the most common value of
    its slices; "" where untagged), in the order of ``_RECON_ATTRIBUTES``."""

    def most(values):
        values = [v for v in values if v not in (None, "")]
        return Counter(values).most_common(1)[0][0] if values else ""

    return (
        printable(most(h.convolution_kernel.replace("\\", " ") for h in part)),
        # (rounded as _recon_key compares them: 2.5 and 2.50001 are one thickness)
        most(f"{round(h.slice_thickness, 2):g}" for h in part if h.slice_thickness is not None),
        most(f"{round(h.reconstruction_diameter, 1):g}" for h in part if h.reconstruction_diameter),
        most(f"{h.cols}×{h.rows}" for h in part if h.rows > 0 and h.cols > 0),
        most(f"{h.pixel_spacing[0]:.3g}" for h in part if h.pixel_spacing is not None),
    )


#: GE's kernels, smoothest first (a number each: equal numbers are not ranked)
_GE_KERNELS = {
    "SOFT": 1, "STANDARD": 2, "DETAIL": 3, "CHEST": 4, "LUNG": 5, "BONE": 5, "BONEPLUS": 6,
    "EDGE": 6, "ULTRA": 7,
}  # fmt: skip

#: Siemens' kernel names as the scanner writes them: a family letter, a subgroup letter or
#: none, two digits of sharpness, a letter or none (B30f, Br40d, Bl57d, I30f, Qr40d)
_SIEMENS_KERNEL = re.compile(r"[A-Z][a-z]?(\d{2})[a-z]?")
#: the same in any case (B30F, BR40D: as some PACS and anonymisers rewrite them), from
#: Siemens' own family and subgroup letters only: Canon's FC03 or FL04 is no Siemens B03
_SIEMENS_KERNEL_ANY_CASE = re.compile(r"[BCDHIJQSTU][RFLVCP]?(\d{2})[SFDHU]?", re.IGNORECASE)

#: a kernel this sharp or sharper, of its vendor's numbers, is a sharp (lung, bone) one, whose
#: images are far noisier than the soft-tissue images the models expect (Siemens B50f and up,
#: GE's LUNG, BONE and up); below it a soft-tissue one (B30f, Br40d, B45f; STANDARD, DETAIL)
_SHARP_FROM = {"Siemens": 50, "GE": 5}


def kernel_sharpness(kernel: str) -> tuple[str, int] | None:
    """How sharp (noisy) a ConvolutionKernel is, as ``(vendor, number)`` where its name says
    so, else None. Siemens writes its sharpness in the name's two digits (B30f soft tissue,
    B70f lung; Br40d, Bl57d, I30f alike; uppercase B30F, BR40D as some archives rewrite them);
    GE names a few kernels (SOFT, STANDARD ... BONEPLUS). Others (Philips' letters, Canon's FC
    numbers) do not order by name: not ranked."""
    first = kernel.split("\\")[0].strip()
    match = _SIEMENS_KERNEL.fullmatch(first) or _SIEMENS_KERNEL_ANY_CASE.fullmatch(first)
    if match:
        return "Siemens", int(match.group(1))
    if first.upper() in _GE_KERNELS:
        return "GE", _GE_KERNELS[first.upper()]
    return None


def is_sharp_kernel(rank: tuple[str, int] | None) -> bool:
    """A :func:`kernel_sharpness` that is a sharp (lung, bone) kernel's."""
    return rank is not None and rank[1] >= _SHARP_FROM[rank[0]]


#: seconds between the AcquisitionTime of two passes' slices at one position that make them
#: other moments (contrast phases lie tens of seconds apart; reconstructions of one scan share
#: each position's time)
_OTHER_MOMENT_S = 2.0


def _clock_gap(a: float, b: float) -> float:
    """Seconds between two times of day, across midnight (23:59:59 and 00:00:01 are 2 s)."""
    gap = abs(a - b) % 86400
    return min(gap, 86400 - gap)


def _moments(parts: list[list[SliceHeader]]) -> list[int] | None:
    """The moment each pass was scanned at, by AcquisitionTime (1, 2 ... in the order they
    were scanned, across midnight): passes whose slices at each position they share hold one time (within
    ``_OTHER_MOMENT_S``) are one moment, reconstructions of one scan. Compared per position,
    not as each pass's span of times: a pass crossing midnight spanned the whole day, and
    phases a second apart overlapped, both taken for one moment (QA adv60). None where the
    times do not say: one missing, or all 000000 (an anonymiser's)."""
    # (an acquisition's files that are no located slice, an Enhanced CT's, say nothing here)
    parts = [[h for h in part if h.is_image and h.location is not None] for part in parts]
    times = [h.acquisition_time for part in parts for h in part]
    if not all(parts) or any(t is None for t in times) or all(t == 0 for t in times):
        return None
    at = [{round(h.location, 1): h.acquisition_time for h in part} for part in parts]

    def one_moment(a: dict, b: dict) -> bool:
        shared = a.keys() & b.keys()
        if shared:
            return all(_clock_gap(a[p], b[p]) < _OTHER_MOMENT_S for p in shared)
        # (no position in common: one moment where their times touch)
        return any(_clock_gap(x, y) < _OTHER_MOMENT_S for x in a.values() for y in b.values())

    moment = list(range(len(parts)))  # joined: each pass's moment, the first pass of it
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            if moment[j] != moment[i] and one_moment(at[i], at[j]):
                old, new = max(moment[i], moment[j]), min(moment[i], moment[j])
                moment = [new if m == old else m for m in moment]
    # numbered in the order they were scanned: "later" is said of a moment, not of a pass's
    # number (QA rev60: an arterial B70f numbered after the portal venous pass was "later")
    first = sorted(set(moment))  # each moment's first pass
    order = sorted(first, key=lambda m: sum(_after(at[m], at[o]) for o in first if o != m))
    numbers = {m: k for k, m in enumerate(order, start=1)}
    return [numbers[m] for m in moment]


def _after(a: dict, b: dict) -> bool:
    """Was a pass whose slices' times (by position) are ``a`` scanned after one's at ``b``:
    compared where they share positions (else over all their slices), across midnight."""
    pairs = [(a[p], b[p]) for p in a.keys() & b.keys()]
    pairs = pairs or [(x, y) for x in a.values() for y in b.values()]
    return float(np.median([(x - y + 43200) % 86400 - 43200 for x, y in pairs])) > 0


def _name_reconstructions(infos: list[SeriesInfo], parts: list[list[SliceHeader]]) -> None:
    """Say how passes stacked in one series were reconstructed where they differ (kernel,
    slice thickness, field of view, matrix, pixel size; a value one pass lacks is said as not
    recorded): each pass's ``reconstruction``. Their AcquisitionTime, compared position by
    position, sets each at a ``moment``: passes of one moment are reconstructions of one scan,
    of several moments contrast phases (``other_moments``; some of them perhaps reconstructed
    twice); all at one moment, the passes are reconstructions of one scan (``same_scan``; a
    soft-tissue and a lung kernel of the same acquisition), not the contrast phases the passes
    were all said to be. Without times (or with an anonymiser's 000000) they stay passes to
    check, their differences said.

    ``sharper`` (read after the others): of one moment's reconstructions (of all passes where
    no time says), a kernel whose name says it is sharper than another's; and whatever the
    moments, a sharp (lung, bone) kernel beside a soft-tissue pass. So the portal venous phase
    in its soft-tissue kernel is read, not its lung reconstruction (QA adv60: arterial B30f,
    portal venous B30f and B70f read the B70f), and times never make the noisier kernel the
    one read: an arterial B30f and a later B70f read the B30f, said, as without times."""
    # each pass's moment, whether or not they were reconstructed differently: of two B30f
    # phases numbered against their times (pass 1 at 10:16, pass 2 at 10:15), "the latest"
    # read was the earlier phase, by its number (the rule asks the moment first). One scan
    # only where every slice's AcquisitionTime says so: a time missing, or 000000 (an
    # anonymiser's), is no evidence, and phases reconstructed differently (a thin arterial
    # pass, a thick venous one) are phases still (QA rev59: called "not contrast phases")
    moments = _moments(parts)
    if moments is not None:
        for info, m in zip(infos, moments, strict=True):
            info.moment = m
            info.other_moments = max(moments) > 1
    values = [_recon_values(part) for part in parts]
    differ = [
        i
        for i in range(len(_RECON_ATTRIBUTES))
        if any(v[i] for v in values) and len({v[i] for v in values}) > 1
    ]
    if not differ:
        return
    for info, v in zip(infos, values, strict=True):
        info.recon_attributes = tuple((_RECON_ATTRIBUTES[i][0], v[i]) for i in differ)
        info.reconstruction = ", ".join(
            f"{_RECON_ATTRIBUTES[i][0]} {v[i]}{_RECON_ATTRIBUTES[i][1]}"
            if v[i]
            else f"no {_RECON_ATTRIBUTES[i][0]} recorded"
            for i in differ
        )
    if moments is not None:  # (passes alike at one moment are no reconstructions told apart)
        # (parts of one moment at positions of their own are no reconstructions of it)
        overlaid = all(any(g.positions & o.positions for o in infos if o is not g) for g in infos)
        for info in infos:
            info.same_scan = max(moments) == 1 and overlaid
    if 0 not in differ:
        return
    kernels = [Counter(h.convolution_kernel for h in part).most_common(1)[0][0] for part in parts]
    ranks = [kernel_sharpness(k) if k else None for k in kernels]
    # of kernels the names rank, the smoother one of a moment's reconstructions is read, and
    # of all passes where no time tells phases from reconstructions (QA rev59b: the lung
    # kernel, the later pass, was read): a phase is rarely reconstructed with another kernel,
    # and a sharp kernel's noise misleads the models
    moment_of = moments or [0] * len(parts)
    for m in set(moment_of):
        same = [k for k in range(len(parts)) if moment_of[k] == m]
        of = [ranks[k] for k in same]
        if len(same) > 1 and all(of) and len({r[0] for r in of}) == 1:
            smoothest = min(r[1] for r in of)
            for k in same:
                infos[k].sharper = ranks[k][1] > smoothest
    # and a sharp (lung, bone) kernel is never read over a soft-tissue one of another moment:
    # the models expect soft-tissue images, and the later phase's lung kernel is far noisier
    # than the earlier phase's (a phase next to B31f, Br44d, is ranked by the phase rule)
    for k, r in enumerate(ranks):
        if is_sharp_kernel(r) and any(o and o[0] == r[0] and not is_sharp_kernel(o) for o in ranks):
            infos[k].sharper = True


def reconstruction_differences(infos: list[SeriesInfo]) -> str:
    """What tells apart the passes ``infos`` (a series' stacked passes, in order, or some of
    them) where they were reconstructed differently: "kernel B30f vs B70f" ("" when they were
    not; "kernel (none recorded) vs B70f" where one lacks it). A value several of them hold is
    said once, with which: "kernel B30f (passes 1 and 2) vs B70f (pass 3)" (QA adv61: "B30f vs
    B30f vs B70f" said passes 1 and 2 were reconstructed differently)."""
    per_pass = [dict(info.recon_attributes) for info in infos]
    word = "pass" if infos and infos[0].passes_by else "acquisition"
    said = []
    for name, unit in _RECON_ATTRIBUTES:
        if not all(name in p for p in per_pass):
            continue
        shown = [p[name] or "(none recorded)" for p in per_pass]
        if len(set(shown)) == len(shown):
            said.append(f"{name} {' vs '.join(shown)}{unit}")
        elif len(set(shown)) > 1:
            held: dict[str, list[SeriesInfo]] = {}
            for info, value in zip(infos, shown, strict=True):
                held.setdefault(value, []).append(info)
            said.append(
                f"{name} "
                + " vs ".join(
                    f"{value}{unit if value != '(none recorded)' else ''} "
                    f"({_numbered(word, _numbers_of(them))})"
                    for value, them in held.items()
                )
            )
    return " and ".join([", ".join(said[:-1]), said[-1]] if len(said) > 1 else said)


def _numbered(word: str, numbers: list) -> str:
    """ "pass 3", "passes 1 and 2", "acquisitions 1, 2 and 4"; of :func:`_numbers_of`'s
    list, "acquisition 1 and the slices with no AcquisitionNumber", or those slices alone."""
    counted = sum(isinstance(k, int) for k in numbers)
    if not counted:
        return _and(numbers)
    return f"{word}{('es' if word == 'pass' else 's') * (counted > 1)} {_and(numbers)}"


#: how a message names slices with no AcquisitionNumber stacked beside numbered ones (said
#: as "acquisition 0", "acquisition None": QA mut65 A, acq69)
_UNNUMBERED = "the slices with no AcquisitionNumber"


def _numbers_of(infos: list[SeriesInfo]) -> list:
    """The numbers of the passes (or acquisitions) ``infos``, sorted, as a message lists them
    (:func:`_numbered`, :func:`_and`): slices with no AcquisitionNumber last, said so."""
    numbers: list = sorted(g.acquisition for g in infos if g.acquisition is not None)
    return numbers + [_UNNUMBERED] * any(g.acquisition is None for g in infos)


def _one(word: str, info: SeriesInfo) -> tuple[str, str]:
    """ "pass 3", "acquisition 2", or "the slices with no AcquisitionNumber", with the verb
    that goes with it: ``(said, "is" or "are")``."""
    return _numbered(word, _numbers_of([info])), "are" if info.acquisition is None else "is"


def _and(numbers: list) -> str:
    """ "1 and 2", "1, 2 and 4"."""
    shown = [str(k) for k in numbers]
    return f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 else "".join(shown)


def _moments_text(passes: list[SeriesInfo]) -> str:
    """Passes of a series at several moments, some of them reconstructed more than once, as
    a warning says them: "their AcquisitionTime sets them at 2 moments, contrast phases:
    pass 1; passes 2 and 3, reconstructions of one scan that differ in kernel B30f vs B70f"
    ("acquisition 1; acquisitions 2 and 3" of acquisitions told apart by their number)."""
    word = "pass" if passes[0].passes_by else "acquisition"
    moments: dict[int, list[SeriesInfo]] = {}
    for g in passes:
        moments.setdefault(g.moment, []).append(g)
    said = []
    for same in moments.values():
        if len(same) == 1:
            said.append(_numbered(word, _numbers_of(same)))
            continue
        how = reconstruction_differences(same)
        # reconstructions of one scan only where they image the same positions: parts at
        # positions of their own whose times touch (a step-and-shoot scan's chunks) are
        # one scan's parts (QA adv61b: ten chunks were "reconstructions of one scan")
        shared = [
            bool(g.positions & o.positions) for i, g in enumerate(same) for o in same[i + 1 :]
        ]
        said.append(
            f"{_numbered(word, _numbers_of(same))}, "
            + (
                "reconstructions of one scan"
                if all(shared)
                else "parts and reconstructions of one scan"
                if any(shared)
                else "parts of one scan at positions of their own"
            )
            + (f" that differ in {how}" if how else "")
        )
    return (
        f"their AcquisitionTime sets them at {len(moments)} moments, contrast phases: "
        + "; ".join(said)
    )


def _same_stretch(a: list[float], b: list[float]) -> bool:
    """Do two sorted position lists image the same stretch of the body (see above)?"""
    if len(set(a) & set(b)) > 0.5 * min(len(a), len(b)):
        return True
    if len(a) < 2 or len(b) < 2:
        return False
    step = min(float(np.median(np.diff(a))), float(np.median(np.diff(b))))
    overlap = min(a[-1], b[-1]) - max(a[0], b[0])
    return overlap > 0.5 * step


def _another_study(other: SeriesInfo, read: SeriesInfo) -> str:
    """`` (another study, 1998-06-12: give its folder, or choose it: --series, or Find
    series in the Load panel)`` when ``other`` is of
    another study than the series ``read``; "" otherwise."""
    if not other.study_uid or not read.study_uid or other.study_uid == read.study_uid:
        return ""
    date = other.study_date
    shown = f", {date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 and date.isdigit() else ""
    return (
        f" (another study{shown}: give its folder, or choose it: --series, or Find series in "
        "the Load panel)"
    )


def _series_info(uid: str, members: list[SliceHeader], acq: int | None) -> SeriesInfo:
    # judged by an image slice, not the file sorting first: one header without a position
    # would make a whole series a "non-image object" (the geometry step names that file)
    first = next((h for h in members if h.is_image), members[0])
    # an Enhanced CT series: multi-frame files only, each frame a slice
    enhanced = all(h.enhanced for h in members)
    stacked, note, refusal = members, "", ""
    n_slices = sum(1 for h in members if not h.enhanced)  # (objects, of a non-image series)
    if first.is_image and not enhanced:  # counted and spaced as a load stacks them
        stacked, note, refusal = _stacked(members)
        first, n_slices = stacked[0], len(stacked)
    where = (
        [loc for h in members for loc in h.frame_locations]
        if enhanced
        else [h.location for h in stacked if h.location is not None]
    )
    spacing = None
    if (first.is_image or enhanced) and first.pixel_spacing is not None:
        # the step a load stacks at (of a series thinner in places, the finer one; its
        # median step was listed while the load stacked at half of it)
        dz = stack_step({round(loc, 3) for loc in where})
        if dz is None:
            dz = first.slice_thickness or 1.0
        spacing = (dz, first.pixel_spacing[0], first.pixel_spacing[1])
    return SeriesInfo(
        uid=uid,
        description=first.series_description,
        modality=first.modality,
        n_slices=sum(h.n_frames for h in members) if enhanced else n_slices,
        left_out_note=note,
        refusal=refusal,
        spacing=spacing,
        # contrast phases are a CT's (an MR's "portal venous" came from a contrast agent tag)
        phase=phase_from_text(first.series_description, first.contrast_agent, first.image_comments)
        if first.modality in ("CT", "")
        else "unknown",
        files=[h.path for h in members],
        acquisition=acq,
        series_number=first.series_number,
        patient_id=first.patient_id,
        study_date=str(first.study_date or ""),
        study_uid=first.study_uid,
        sop_class_uid=first.sop_class_uid,
        is_image=first.is_image or enhanced,
        enhanced=enhanced,
        sop_instance_uids=frozenset(h.sop_uid for h in members),
        multiframe=any(h.n_frames > 1 for h in members),
        not_image=first.not_image,
        plane=_plane(first.orientation),
        derived=first.image_type.startswith("DERIVED"),
        n_positions=len({round(loc, 1) for loc in where}),
        positions=frozenset(round(loc, 1) for loc in where),
    )


#: the slices at a seam a load leaves out, as ``SeriesInfo.left_out_note`` counts them
_SEAM_LEFT_OUT = "overlapping slice(s) of two parts of the scan"


def _stacked(members: list[SliceHeader]) -> tuple[list[SliceHeader], str, str]:
    """The slices of an image series a load stacks (:func:`stacked_slices`, from the headers
    alone), the files it leaves out counted by why ("1 localizer, 2 of another size,
    orientation or pixel spacing"; "" when none), and why a load refuses the series ("" when
    it does not; such a series is listed with all its slices)."""
    images = [h for h in members if h.is_image]
    try:
        stacked = stacked_slices(images, [])
    except InputError as exc:
        return images, "", exc.problem
    scouts = sum(is_localizer(h) for h in images)
    scouts = scouts if scouts < len(images) else 0  # a series of localizers keeps them
    odd = len(images) - len(stacked) - scouts
    seam = 0
    if all(h.location is not None for h in stacked):  # (parts overlapping at a seam)
        kept = {id(h) for h in trim_seams(sorted(stacked, key=lambda h: h.location), [])}
        seam = len(stacked) - len(kept)
        stacked = [h for h in stacked if id(h) in kept]
    unplaced = sum(1 for h in members if not h.is_image and h.modality not in _NON_IMAGE_MODALITIES)
    parts = [
        f"{scouts} localizer{'s' * (scouts > 1)}" * bool(scouts),
        f"{odd} of another size, orientation or pixel spacing" * bool(odd),
        f"{seam} {_SEAM_LEFT_OUT}" * bool(seam),
        f"{unplaced} file(s) not usable as slices" * bool(unplaced),
    ]
    return stacked, ", ".join(p for p in parts if p), ""


def _plane(orientation) -> str:
    """The anatomical plane nearest the slices of ``orientation`` (ImageOrientationPatient)."""
    if orientation is None:
        return ""
    normal = np.abs(np.cross(orientation[:3], orientation[3:]))
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]  # LPS: x, y, z


#: a series at fewer distinct positions than this (a scout, a bolus-tracking or monitoring
#: series: images at one or a few table positions) is never preferred for its plane or ImageType
SHORT_SERIES = 5


def _rank(info: SeriesInfo, wanted=frozenset()) -> tuple:
    """Which series a folder gives when none is asked for: the smallest rank."""
    return (
        -len(wanted & info.sop_instance_uids),
        info.n_positions < SHORT_SERIES,
        info.plane not in ("axial", ""),
        info.derived,
        in_mask_folder(info),
        # of reconstructions of one scan, a sharp (lung, bone) kernel after the soft-tissue one
        info.sharper,
        -info.n_slices,
    )


#: words of a series' folder (or description) that say its images are masks drawn on a scan
#: (3D-IRCADb's MASKS_DICOM/liver/: CT images of 0 and 255 as many as the scan's)
_MASK_WORDS = frozenset(
    {"mask", "masks", "label", "labels", "labelled", "labeled", "labelmap", "labelmaps",
     "segmentation", "segmentations"}
)  # fmt: skip


def series_folder(info: SeriesInfo) -> str:
    """The last two folders of a series' first file (``MASKS_DICOM/liver``), to tell series
    apart that have no description."""
    parent = Path(info.files[0]).absolute().parent if info.files else None
    return "" if parent is None else "/".join(parent.parts[-2:])


def in_mask_folder(info: SeriesInfo) -> bool:
    """Whether the series' folder (its last two) or description names it a set of masks."""
    import re

    text = f"{series_folder(info)} {info.description or ''}".lower()
    return bool(set(re.split(r"[^a-z]+", text)) & _MASK_WORDS)


def why_chosen(info: SeriesInfo, others: list[SeriesInfo], wanted=frozenset()) -> str:
    """Why ``info`` was read rather than ``others`` (by :func:`_rank`), in words."""
    if wanted & info.sop_instance_uids:
        return "the one the DICOM SEG here was drawn on"
    bigger = [o for o in others if o.n_slices > info.n_slices]
    reasons = []
    if info.n_positions >= SHORT_SERIES and any(o.n_positions < SHORT_SERIES for o in bigger):
        reasons.append(
            f"a scan, preferred to a series of images at under {SHORT_SERIES} positions "
            "(monitoring, bolus tracking)"
        )
    if info.plane == "axial" and any(o.plane not in ("axial", "") for o in bigger):
        reasons.append("axial slices, preferred to a reformat in another plane")
    if not info.derived and any(o.derived for o in bigger):
        reasons.append("original images, preferred to a derived series")
    if not in_mask_folder(info) and any(in_mask_folder(o) for o in others):
        masks = sorted({series_folder(o) for o in others if in_mask_folder(o)})
        reasons.append(
            f"a scan, preferred to series in folders named as masks ({', '.join(masks[:3])}"
            + (", ..." if len(masks) > 3 else "")
            + ")"
        )
    return "; ".join(reasons) or "the most slices"


def _later_sharp(info: SeriesInfo, siblings: list[SeriesInfo]) -> list[SeriesInfo]:
    """Of the passes ``siblings`` beside the one read, ``info``, those passed over for their
    sharp kernel though scanned at a later moment (by AcquisitionTime, not by their number:
    QA rev60 called an arterial B70f numbered after the portal venous pass read "later"): the
    phase rule set aside, said (the later phase may be the one wanted)."""
    return [g for g in siblings if g.sharper and g.moment and g.moment > info.moment]


#: why :func:`_choose` reads a pass of a stacked series when nothing else decides: of passes
#: no time sets apart, the last one; of passes at several moments, the latest scanned
_LATEST = "most slices, then the latest"
_LATEST_BY_TIME = "most slices, then the latest by AcquisitionTime"


def _passes_note(
    info: SeriesInfo,
    siblings: list[SeriesInfo],
    refs,
    *,
    asked=False,
    file_name="",
    panel=False,
) -> str:
    """What :func:`read_dicom_series` says of a series stacking several passes: which one it
    reads (``info``, not ``siblings``) and why; ``asked``: the pass was asked for
    (``acquisition``), ``file_name``: the file given stands for its pass, ``refs``: the SOP
    instances the folder's DICOM SEGs reference; ``panel``: worded for the Load panel's row
    (another pass: "choose its row", not the CLI's ``--acquisition``)."""
    # (slices with no AcquisitionNumber beside numbered ones were said as "0": QA mut65 A)
    numbers = ", ".join(
        str(a) for a in sorted(g.acquisition for g in siblings if g.acquisition is not None)
    )
    if any(g.acquisition is None for g in siblings):
        numbers += " or " * bool(numbers) + "the slices with no AcquisitionNumber"
    if asked:  # (the Load panel's row, --acquisition)
        why = "the one chosen"
    elif file_name:
        why = f"the one holding {file_name}"
    elif refs & info.sop_instance_uids:
        # of passes DICOM SEGs reference alike (a SEG drawn on each), the rule decided
        # among them: said so (QA adv61: "the one its DICOM SEG was drawn on" of either)
        alike = _referenced_alike(info, siblings, refs)
        if alike:
            rule_why = _LATEST_BY_TIME if info.other_moments else _LATEST
            word = "pass" if info.passes_by else "acquisition"
            why = (
                f"DICOM SEGs reference it and {_numbered(word, _numbers_of(alike))} alike"
                "; of those, " + _kernel_why(info, alike, rule_why, panel=panel)
            )
        elif any(refs & g.sop_instance_uids for g in siblings):
            why = "the one DICOM SEGs reference most"
        else:
            why = "the one a DICOM SEG references"
    else:
        # the rule's "latest" is the latest moment where the passes' AcquisitionTime says it
        # (it was said of pass 2 at 10:15 beside pass 1 at 10:16), else the last pass
        why = _LATEST_BY_TIME if info.other_moments else _LATEST
    rule = why in (_LATEST, _LATEST_BY_TIME)  # read by the rule, no other reason
    if info.joined or any(g.joined for g in siblings):
        return _joined_note(info, siblings, "" if rule else why, panel=panel)
    passes = sorted([info, *siblings], key=lambda g: g.acquisition or 0)
    n = len(passes)
    differ = reconstruction_differences(passes)
    if rule:
        why = _kernel_why(info, siblings, why, panel=panel)
    recon = f"{info.reconstruction}, " if info.reconstruction else ""
    if info.acquisition_number is not None:  # (a pass within an acquisition)
        recon = f"acq {info.acquisition_number}, {recon}"
    if info.chunks:  # (a pass joined from chunks)
        recon = f"acq {numbers_text(info.chunks)}, {recon}"
    if info.same_scan:
        # (a pass read asked for, or by a SEG, says so; the rule's words are the others)
        another = (
            ". To read another, choose its row"
            if panel
            else ". To read another, choose its row in the Load panel (Find series) "
            f"or give --acquisition {_asked_as(siblings[0])}"
        )
        also = ", ".join(f"{_and(_numbers_of([g]))} ({g.reconstruction})" for g in siblings)
    if not info.passes_by:  # each told apart by its AcquisitionNumber
        read = _UNNUMBERED if info.acquisition is None else f"AcquisitionNumber {info.acquisition}"
        if info.same_scan:  # one scan reconstructed twice, each numbered: no phase to check
            return (
                f"series {info.label} stacks {n} reconstructions of one scan over the same "
                f"stretch, not contrast phases: they differ in {differ}, at the same "
                f"AcquisitionTime; read {read} "
                f"({info.reconstruction}, {info.n_slices} slices; {why}), not {also}{another}"
            )
        return (
            f"series {info.label} stacks {n} acquisitions over the same stretch; read "
            f"{read} ({recon}{info.n_slices} slices; {why}), not "
            f"{numbers}" + _differences_text(info, passes, differ)
        )
    ways = {
        "InstanceNumber": "their InstanceNumber",
        "folder": "the folders their files lie in",
        "reconstruction": "how they were reconstructed",
    }
    # (an AcquisitionNumber shared by several passes tells them apart no more than none)
    shared = info.passes_by.startswith("AcquisitionNumber, ")
    chunked = info.passes_by.startswith("chunks, ")
    if chunked:  # a step-and-shoot scan's chunks, each its AcquisitionNumber, joined
        told = (
            f"their chunks in the order of their {info.passes_by.split(', ')[1]}, a pass "
            "ending where a position comes again"
        )
        order = "by their AcquisitionNumbers"
        numbered = (
            ", each scanned in chunks under AcquisitionNumbers of their own (step-and-shoot: "
            + "; ".join(numbers_text(g.chunks) for g in passes)
            + ")"
        )
    elif shared:
        held = Counter(g.acquisition_number for g in passes)
        several = sorted(a for a, k in held.items() if k > 1 and a is not None)
        # (passes among slices with no AcquisitionNumber beside numbered ones: it said
        # "within acquisition None")
        several += [_UNNUMBERED] * (held[None] > 1)
        under = (
            "with no AcquisitionNumber"
            if several == [_UNNUMBERED]
            else "under one AcquisitionNumber" + " or none" * (held[None] > 1)
        )
        told = (
            f"their AcquisitionNumber and, within {_numbered('acquisition', several)}, "
            f"{ways[info.passes_by.split(', ')[1]]}"
        )
    else:
        told = ways[info.passes_by]
    if not chunked:
        order = "in that order"
        numbered = (
            f", some of them {under}"
            if shared
            else " with no AcquisitionNumber that tells them apart (removed by an anonymiser?)"
        )
    if info.same_scan:  # the same moment reconstructed twice: no phase to check
        return (
            f"series {info.label} stacks {n} reconstructions of one scan over the same "
            f"stretch, not contrast phases: they differ in {differ}, at the same "
            "AcquisitionTime. "
            + (
                "Some of them share an AcquisitionNumber"
                if shared and under == "under one AcquisitionNumber"
                else f"Some of them are {under}"
                if shared
                else "Each was scanned in chunks under AcquisitionNumbers of its own"
                if chunked
                else "No AcquisitionNumber tells them apart"
            )
            + f"; told apart by {told}, numbered "
            f"1–{n} {order}: read pass {info.acquisition} ({recon}"
            f"{info.n_slices} slices; {why}), not {also}{another}"
        )
    return (
        f"series {info.label} stacks {n} passes over the same stretch{numbered}"
        f"; told apart by {told}, numbered 1–{n} {order}: "
        f"read pass {info.acquisition} ({recon}{info.n_slices} slices; {why}), not "
        f"{numbers}"
        + _differences_text(info, passes, differ)
        + ". Check the phase by looking at it"
    )


#: why :func:`_choose` reads parts of one scan joined at their seams over the passes lying
#: within their stretch when nothing else decides
_WHOLE_SCAN = "the whole scan, the other acquisitions lying within its stretch"


def _joined_note(info: SeriesInfo, siblings: list[SeriesInfo], why: str, *, panel=False) -> str:
    """What :func:`_passes_note` says of a series joining parts of one scan at their seams
    beside passes lying within their stretch (QA rev65 B: "stacks 3 acquisitions over the
    same stretch" of a chest, an abdomen and an arterial pass, the chest dropped): which was
    read (``info``) and why (``why``; "" where by the rule: the joined parts, the whole
    scan)."""
    whole = info if info.joined else next(g for g in siblings if g.joined)
    passes = sorted(g.acquisition or 0 for g in [info, *siblings] if not g.joined)
    parts = _and(list(whole.joined))
    said = (
        f"series {info.label} joins AcquisitionNumbers {parts} into one volume, as parts of "
        "one scan one after another along the body (overlapping at their seams), and stacks "
        f"{_numbered('acquisition', passes)} within their stretch; read "
    )
    if info.joined:
        read = f"AcquisitionNumbers {parts} joined ({info.n_slices} slices; {why or _WHOLE_SCAN})"
        other = str(passes[-1])
        not_read = _and(passes)
    else:
        read = f"AcquisitionNumber {info.acquisition} ({info.n_slices} slices; {why or _LATEST})"
        other = "+".join(map(str, whole.joined))
        not_read = f"{parts} joined" + "".join(
            f", {g.acquisition}" for g in siblings if not g.joined
        )
    another = (
        ". To read another, choose its row"
        if panel
        else f". To read another, give --acquisition {other} (or choose its row in the Load "
        "panel: Find series)"
    )
    return f"{said}{read}, not {not_read}{another}"


def _referenced_alike(info: SeriesInfo, siblings: list[SeriesInfo], refs) -> list[SeriesInfo]:
    """Of ``siblings``, the passes the DICOM SEGs (their references ``refs``) reference as much
    as ``info`` (a SEG drawn on each): the SEGs did not choose between them, the rule did."""
    held = len(refs & info.sop_instance_uids)
    return [g for g in siblings if held and len(refs & g.sop_instance_uids) == held]


def _kernel_why(info: SeriesInfo, siblings: list[SeriesInfo], why: str, *, panel=False) -> str:
    """Why :func:`_passes_note` says ``info`` is read by the rule (``why``: "most slices, then
    the latest", by AcquisitionTime or not) where kernels had a say: the smoother kernel of a
    moment, a sharp (lung, bone) kernel of a later one set aside, kernels not ranked."""
    word = "pass" if info.passes_by else "acquisition"
    if info.same_scan:  # the same moment reconstructed twice
        if any(g.sharper for g in siblings):
            return (
                f"{_of_the_smoother(info, siblings) or 'the smoother kernel'}: the models "
                "expect soft-tissue images, and a sharp (lung, bone) kernel's are far noisier"
            )
        kernels = [dict(g.recon_attributes).get("kernel") for g in [info, *siblings]]
        if all(k is not None for k in kernels):  # (they differ in kernel)
            return why + (
                f": not every {word}'s kernel is recorded"
                if "" in kernels
                else ": the kernels' names do not say which is smoother"
            )
        return why
    later = _later_sharp(info, siblings)
    # (a sharp reconstruction of the moment read, or of passes no time sets apart)
    own = [g for g in siblings if g.sharper and g.moment == info.moment]
    smoother = _of_the_smoother(info, siblings) or "the smoother kernel"
    if later:
        return (
            f"{smoother}, though {' '.join(_one(word, later[-1]))} later "
            + ("(choose its row)" if panel else f"(--acquisition {_asked_as(later[-1])})")
            + ": a sharp (lung, bone) kernel's images are far noisier than the soft-tissue "
            "ones the models expect"
        )
    if own:
        among = _of_the_smoother(info, siblings)
        return (
            "the latest, in the smoother of its kernels"
            + (f" ({among})" if among else "")
            + ": the models expect soft-tissue images, and a sharp (lung, bone) kernel's are "
            "far noisier"
            if info.other_moments and all(g.moment <= info.moment for g in siblings)
            else f"{smoother}: the models expect soft-tissue images, and a "
            "sharp (lung, bone) kernel's are far noisier"
        )
    return why


def _of_the_smoother(info: SeriesInfo, siblings: list[SeriesInfo]) -> str:
    """Of several passes in the smoother kernel at the moment of ``info`` (no time, or one
    time, sets them apart: passes 1 and 2 in B30f beside a B70f), which the rule read among
    them: "the latest of the smoother kernel's passes (1 and 2)" (by number: it was said as
    "the smoother kernel", pass 1's too: QA adv61); "" where it is the only one."""
    peers = [g for g in siblings if not g.sharper and g.moment == info.moment]
    if not peers:
        return ""
    numbers = _numbers_of([info, *peers])
    which = (
        "the one with most slices"
        if all(g.n_slices < info.n_slices for g in peers)
        else "the latest"
        if not info.moment  # (no time: the latest is the last numbered, as the rule's words)
        else "the last numbered"  # (one moment: none of them is later)
    )
    word = "passes" if info.passes_by else "acquisitions"
    return f"{which} of the smoother kernel's {word} ({_and(numbers)})"


def _differences_text(info: SeriesInfo, passes: list[SeriesInfo], differ: str) -> str:
    """What a warning adds of passes (or acquisitions) at several moments some of which are
    reconstructions of one scan, or that were reconstructed differently: " (their
    AcquisitionTime sets them at 2 moments ...)", " (they were reconstructed differently too:
    kernel B30f vs B70f)"; "" where neither."""
    if info.other_moments and len({g.moment for g in passes}) < len(passes):
        return f" ({_moments_text(passes)})"
    if not differ:
        return ""
    return (
        f" (they were reconstructed differently too: {differ}"
        + (
            ""
            if info.other_moments
            else "; no AcquisitionTime says whether they are phases or reconstructions of one scan"
        )
        + ")"
    )


def passes_brief(
    info: SeriesInfo,
    series: list[SeriesInfo],
    seg_refs: Collection[str] = frozenset(),
    *,
    asked=False,
    file_name="",
) -> str:
    """The pass ``info`` of a series stacking several (``series``: the folder's, as
    :func:`discover_series` lists them), the one read, and why, in one line as the Load
    panel's status says it: "pass 2 (kernel B30f), the latest phase by its time; pass 3 is
    pass 1 in a sharper kernel (B70f)" ("" for a series stacking none). The reader's whole
    warning, its CLI flags and doubts, filled 16 lines of the dock (QA rev60): its row's
    tooltip holds it. Said from the facts the warning says (the passes' moments, kernels,
    ``sharper``), by no rule of its own; ``asked`` and ``file_name`` as it takes them."""
    siblings = sorted(
        (s for s in series if s.uid == info.uid and s is not info), key=lambda g: g.acquisition or 0
    )
    if not siblings:
        return ""
    passes = [info, *siblings]
    later = _later_sharp(info, siblings)
    name = "pass" if info.passes_by else "acquisition"
    refs = frozenset(seg_refs)

    def by_rule(among: list[SeriesInfo]) -> str:  # (read by the rule over ``among``)
        own = [g for g in among if g.sharper and g.moment == info.moment]
        # the latest phase by AcquisitionTime (said only where it is: more slices outrank it)
        latest = info.other_moments and all(g.moment <= info.moment for g in among)
        smoother = _of_the_smoother(info, among)
        if _later_sharp(info, among) or own:
            if latest:
                return "the latest phase, in the smoother kernel" + (
                    f" ({smoother})" if smoother else ""
                )
            return smoother or "the smoother kernel"
        if latest:
            return "the latest phase by its time"
        return _LATEST_BY_TIME if info.other_moments else _LATEST

    if asked:
        why = "the one chosen"
    elif file_name:
        why = f"the one holding {file_name}"
    elif info.joined and not refs & info.sop_instance_uids:
        why = _WHOLE_SCAN
    elif refs & info.sop_instance_uids:
        alike = _referenced_alike(info, siblings, refs)
        why = (
            f"of the {name}{'es' if name == 'pass' else 's'} DICOM SEGs were drawn on "
            f"({_and(_numbers_of([info, *alike]))}), {by_rule(alike)}"
            if alike
            else "the one its DICOM SEG was drawn on"
        )
    else:
        why = by_rule(siblings)
    others = []
    for g in siblings:
        if not g.sharper:
            continue
        kernel = printable(dict(g.recon_attributes).get("kernel", "") or "?")
        # (of one moment by its time: the same scan, reconstructed again)
        twin = next(
            (p for p in passes if p.moment and p.moment == g.moment and not p.sharper), None
        )
        who, verb = _one(name, g)
        others.append(
            f"{who} {verb} {_one(name, twin)[0]} in a sharper kernel ({kernel})"
            if twin is not None
            else who
            + (", a later phase," if g in later else "")
            # (a B45f beside a B30f is sharper, not "a sharp kernel": that is a lung or bone one)
            + f" {verb} in a {'sharp' if is_sharp_kernel(kernel_sharpness(kernel)) else 'sharper'}"
            + f" kernel ({kernel})"
        )
    said = [f"acq {info.acquisition_number}"] * (info.acquisition_number is not None)
    said += [f"acq {numbers_text(info.chunks)}"] * bool(info.chunks)
    said += [printable(info.reconstruction)] * bool(info.reconstruction)
    recon = f" ({', '.join(said)})" if said else ""
    if info.joined:  # (parts of one scan joined at their seams)
        return f"acquisitions {_and(list(info.joined))} joined{recon}, {why}" + "".join(
            f"; {o}" for o in others
        )
    return f"{_one(name, info)[0]}{recon}, {why}" + "".join(f"; {o}" for o in others)


def _passes_line(info: SeriesInfo, series: list[SeriesInfo], refs, **how) -> str:
    """What :func:`_passes_note` says, in one line as the Load panel's status says it after a
    load: "series #1 'ABD' stacks 3 passes; read pass 2 (kernel B30f), the latest phase by its
    time; pass 3 is pass 1 in a sharper kernel (B70f); check the phase by looking at it". The whole
    warning, its CLI flags (``--acquisition 3``) and "(removed by an anonymiser?)", filled the
    dock after Load as it did after Find series (QA rev60)."""
    n = sum(s.uid == info.uid for s in series)
    whole = next((s for s in series if s.uid == info.uid and s.joined), None)
    if whole is not None:  # (parts of one scan joined at their seams, passes within them)
        # the passes named, as the warning names them ("stacks 1 within them" read as
        # acquisition 1, a count)
        passes = sorted(s.acquisition or 0 for s in series if s.uid == info.uid and not s.joined)
        return (
            f"series {info.label} joins acquisitions {_and(list(whole.joined))} and stacks "
            f"{_numbered('acquisition', passes)} within their stretch; read "
            f"{passes_brief(info, series, refs, **how)}"
        )
    kind = (
        "reconstructions of one scan"
        if info.same_scan
        else "passes"
        if info.passes_by
        else "acquisitions"
    )
    return (
        f"series {info.label} stacks {n} {kind}; read {passes_brief(info, series, refs, **how)}"
        + ("; check the phase by looking at it" if info.passes_by and not info.same_scan else "")
    )


def proposed_series(
    series: list[SeriesInfo], seg_refs: Collection[str] = frozenset(), *, panel: bool = False
) -> tuple[SeriesInfo | None, str]:
    """Of ``series`` as :func:`discover_series` lists a folder's, the one (of a series stacking
    passes, the pass) :func:`read_dicom_series` reads from that folder when none is asked for
    (what ``livertumor segment`` segments), and of a stacked series its warning saying which
    pass and why ("" otherwise). ``seg_refs``: the SOP instances the folder's DICOM SEGs
    reference (``discover_series``' ``seg_refs``). The Load panel proposes it: its first row
    was the earlier phase, the batch run the later one. A folder without CT gives its first
    image series by the same rule (``any_modality``); None when it holds no image.
    ``panel``: the warning worded for the panel's row (another pass: "choose its row", not the
    CLI's ``--acquisition``); :func:`passes_brief` says it in one line.
    """
    refs = frozenset(seg_refs)
    try:
        info, _ = _choose(Path(), [(s, []) for s in series], None, None, None, refs, True)
    except InputError:
        return None, ""
    siblings = [s for s in series if s.uid == info.uid and s is not info]
    return info, _passes_note(info, siblings, refs, panel=panel) if siblings else ""


def series_read(
    path: str | Path,
    series_uid: str | None = None,
    *,
    acquisition: int | str | None = None,
    any_modality: bool = False,
    patient_id: str | None = None,
) -> SeriesInfo | None:
    """The series (of a series stacking passes, the pass) :func:`read_dicom_series` reads
    from ``path`` with these arguments, told from the headers alone (kept: the read parses
    none of them again), as it chooses it; None where it would refuse to read (it says why).
    ``livertumor segment`` reads a patient folder and one of its study or series folders
    given beside it once where both read the same series."""
    path = _dicomdir_folder(Path(path))
    prefer = None
    try:
        if not _exists(path):
            return None
        headers, _ = _scan(path if path.is_dir() else path.parent, as_reporter(None))
        if path.is_file():  # its series, and of a series stacking passes its own pass
            own = next((h for h in headers if h.path == path), None)
            if own is None or not own.is_image:
                return None
            if series_uid in (None, own.series_uid) and acquisition is None:
                prefer = {own.sop_uid}
            series_uid = series_uid or own.series_uid
        headers, _ = _drop_identical_copies(headers, keep=path if path.is_file() else None)
        groups = _group(headers)
        if patient_id is not None:
            groups = [(g, m) for g, m in groups if g.patient_id == patient_id]
        if not groups:
            return None
        seg_refs = frozenset().union(*(h.referenced_uids for h in headers))
        info, _ = _choose(path, groups, series_uid, acquisition, prefer, seg_refs, any_modality)
    except InputError:
        return None
    return info


def _choose(
    path, groups, series_uid, acquisition, prefer=None, seg_refs=frozenset(), any_modality=False
):
    if series_uid is not None:
        matching = [g for g in groups if g[0].uid == series_uid]
        if not matching:
            listing = "; ".join(g[0].summary() for g in groups[:8])
            raise InputError(path, f"no series with UID {series_uid}; found: {listing}")
    else:
        matching = [g for g in groups if g[0].is_ct]
        if not matching and any_modality:
            matching = [g for g in groups if g[0].is_image and not g[0].enhanced]
        if not matching:
            listing = "; ".join(g[0].summary() for g in groups[:8])
            objects = [g[0].modality for g in groups if g[0].modality in _NON_IMAGE_MODALITIES]
            if len(objects) == len(groups):  # a SEG (or RTSTRUCT...) without its CT beside it
                hint = (
                    f" — only {' and '.join(sorted(set(objects)))} object(s), no image: the CT "
                    "series they were drawn on is not in this folder; choose the folder that "
                    "holds it (the patient's or study's folder)"
                )
            elif any(
                g[0].multiframe and not g[0].is_image and g[0].modality not in _NON_IMAGE_MODALITIES
                for g in groups
            ):
                hint = _MULTIFRAME_HINT
            elif any(g[0].is_image for g in groups):  # MR, PET...: the models are for CT
                kinds = sorted(
                    {printable(g[0].modality or "no modality") for g in groups if g[0].is_image}
                )
                hint = (
                    f" — only {' and '.join(kinds)} images: the models are trained on CT in "
                    "Hounsfield units (to read one anyway: `livertumor segment "
                    "--allow-non-ct` segments it, unvalidated; `livertumor convert --series "
                    "UID` converts it; in napari, the Load CT panel's Find series lists it: "
                    "choose it there)"
                )
            else:
                hint = ""
            raise InputError(path, f"no readable CT image series{hint}; found: {listing}")
        # the series a DICOM SEG in the folder was drawn on (HCC-TACE-Seg: the contrast series,
        # not the derived recon with more slices), else an axial one (not a coronal or sagittal
        # reformat beside it), an original one (not a derived one), then the one with most slices
        wanted = set(prefer or ()) or set(seg_refs)
        best_uid = min(matching, key=lambda g: _rank(g[0], wanted))[0].uid
        matching = [g for g in matching if g[0].uid == best_uid]
    joined = _asked_joined(acquisition)
    if joined:  # ("1+2": parts of one scan joined at their seams, as read unasked)
        chosen = [g for g in matching if _joined_numbers(g) == joined]
        if not chosen:
            uids = sorted({g[0].uid for g in matching})
            which = f"series {uids[0]}" if len(uids) == 1 else "no series here"
            raise InputError(
                path,
                f"{which} joins no AcquisitionNumbers {_and(list(joined))} into one volume "
                "(parts of one scan one after another along the body)",
            )
        matching, acquisition = chosen, None
    if acquisition is not None:
        number, as_pass = asked_acquisition(path, acquisition)
        if number is None:  # ("none": the slices with no AcquisitionNumber)
            chosen = [g for g in matching if g[0].unnumbered] or _only_acquisition(matching, None)
            if not chosen:
                raise InputError(
                    path,
                    f"{_which(matching)} has no slices with no AcquisitionNumber to read apart "
                    + _stacked_numbers(matching),
                )
        else:
            chosen = [g for g in matching if g[0].acquisition == number]
        if not as_pass and number is not None:
            _refuse_renumbered(path, matching, number, chosen)
            chosen = chosen or _only_acquisition(matching, number) or _joined_part(matching, number)
        if not chosen:
            raise InputError(
                path,
                f"{_which(matching)} has no {'pass' if as_pass else 'acquisition number'} "
                f"{number} " + _stacked_numbers(matching),
            )
        matching = chosen
    # the one a SEG refers to, then of reconstructions of one scan the smoother kernel, then
    # most slices, then the latest acquisition (the later contrast phase of a stacked series)
    wanted = set(prefer or ()) or set(seg_refs)
    matching.sort(
        key=lambda g: (
            -len(wanted & g[0].sop_instance_uids),
            # parts of one scan joined at their seams, before the passes within their stretch
            not g[0].joined,
            g[0].sharper,
            -g[0].n_slices,
            # the latest by AcquisitionTime where every slice's time says (passes numbered
            # against their times: pass 2 at 10:15 was read as "the latest" over pass 1 at
            # 10:16), else by number
            -g[0].moment,
            -(g[0].acquisition or 0),
        )
    )
    info, members = matching[0]
    if not info.is_image and info.multiframe and info.modality not in _NON_IMAGE_MODALITIES:
        held = next((h.not_image for h in members if h.not_image), "")
        lacks = printable(held.split(", ", 1)[1]) if ", " in held else ""
        raise InputError(
            path,
            f"series {info.label} is an Enhanced (multi-frame) {printable(info.modality or 'image')} "
            "object, which is not read here"
            + (f" ({lacks})" if lacks else "")
            + ": only Enhanced CT whose frames carry their positions is read; export the series "
            "as one file per slice",
        )
    if not info.is_image:
        raise InputError(
            path,
            f"series {info.label} is not an image series (SOP class "
            f"{printable(info.sop_class_uid)}, modality {printable(info.modality)}); it holds no "
            "CT slices" + (_MULTIFRAME_HINT if info.multiframe else ""),
        )
    return info, members


def _which(matching) -> str:
    """ "series <UID>" of :func:`_choose`'s candidates of one series, else "no series here"."""
    uids = sorted({g[0].uid for g in matching})
    return f"series {uids[0]}" if len(uids) == 1 else "no series here"


def _stacked_numbers(matching) -> str:
    """What an acquisition asked of :func:`_choose`'s candidates may be: "(its stacked
    acquisitions: 1, 2, none)", else why it stacks none."""
    have: list = sorted({g[0].acquisition for g in matching if g[0].acquisition is not None})
    have += [g[0].acquisition_label[4:] for g in matching if g[0].joined]
    have += ["none"] * any(g[0].unnumbered for g in matching)
    if not have:
        return _unstacked_numbers(matching)
    kind = "passes" if any(g[0].passes_by for g in matching) else "acquisitions"
    return f"(its stacked {kind}: {', '.join(map(str, have))})"


def _only_acquisition(matching, number: int) -> list:
    """Of a series that stacks no acquisitions, whose slices are all AcquisitionNumber
    ``number`` (an ordinary series: its only acquisition), the series whole, as asked:
    ``[(its info, its slices)]``, else ``[]``. It was refused as "has no acquisition number
    1" to a user who read that number off its headers (QA rev65)."""
    return [
        (info, members)
        for info, members in matching
        if info.acquisition is None
        and not info.passes_by
        and members
        and all(h.acquisition_number == number for h in members)
    ][:1]


def _unstacked_numbers(matching) -> str:
    """Why an AcquisitionNumber asked of a series stacking no acquisitions is none it has, and
    which it has: the parts it joins into one volume (each read alone when asked: "1 and 2"),
    its only one, or none (QA rev65: "it stacks no acquisitions" of a series joining 1 and 2,
    which read alone, and of one whose slices were all AcquisitionNumber 1)."""
    numbers = sorted(
        {h.acquisition_number for info, members in matching for h in members} - {None}
        if all(info.acquisition is None and not info.passes_by for info, _ in matching)
        else set()
    )
    if len(numbers) > 1:
        said = _and(numbers) if len(numbers) < 4 else f"{numbers[0]}–{numbers[-1]}"
        return (
            f"(it joins AcquisitionNumbers {said} into one volume, as parts of one scan one "
            "after another along the body: give one of them to read that part alone, or leave "
            "the acquisition out to read it whole)"
        )
    if numbers:
        return (
            f"(its only AcquisitionNumber is {numbers[0]}: give it, or leave the acquisition out)"
        )
    return "(it stacks no acquisitions: leave the acquisition out)"


def _asked_joined(acquisition) -> tuple[int, ...]:
    """``acquisition`` as :func:`read_dicom_series` takes it, where it names parts of one scan
    joined at their seams ("1+2", as their row's label says them): their numbers, sorted;
    else ()."""
    if not isinstance(acquisition, str):
        return ()
    match = re.fullmatch(r"\s*(?:acq\s*)?(\d+(?:\s*\+\s*\d+)+)\s*", acquisition, re.IGNORECASE)
    return tuple(sorted({int(k) for k in match[1].split("+")})) if match else ()


def _joined_numbers(group) -> tuple[int, ...]:
    """The AcquisitionNumbers a series (or acquisition) of :func:`_group` joins into one
    volume as parts of one scan at their seams, sorted; () where it joins none."""
    info, members = group
    if info.joined:
        return info.joined
    if info.acquisition is not None or info.passes_by:
        return ()
    return _parts_joined(members)


def _parts_joined(members: list[SliceHeader]) -> tuple[int, ...]:
    """The AcquisitionNumbers of the parts of one scan ``members`` joins (a slice or two
    re-acquired under a number of its own are their part's: :func:`fold_reacquired`), sorted;
    () where they are fewer than two."""
    by_acq: dict[int | None, list[SliceHeader]] = {}
    for h in members:
        by_acq.setdefault(h.acquisition_number, []).append(h)
    numbers = tuple(sorted(k for k in fold_reacquired(by_acq) if k is not None))
    return numbers if len(numbers) > 1 else ()


def _joined_part(matching, number: int) -> list:
    """Of a series joining parts of one scan under AcquisitionNumbers of their own into one
    volume (parts one after another along the body, overlapping at a seam or not: a chest
    and an abdomen part, a step-and-shoot scan's chunks), AcquisitionNumber ``number``'s
    slices alone, as asked: ``[(its info, its slices)]``, else ``[]``. The join is a
    heuristic: an acquisition asked for was refused as none the series has (QA today64 A)."""
    for info, members in matching:
        if info.acquisition is not None or info.passes_by:
            continue
        part = [h for h in members if h.acquisition_number == number]
        if part and len(part) < len(members):
            return [(_series_info(info.uid, part, number), part)]
    return []


def asked_acquisition(path, acquisition: int | str) -> tuple[int | None, bool]:
    """``acquisition`` as :func:`read_dicom_series` takes it: ``(its number, whether it was
    given as a pass's)``: 3 or "3" (an AcquisitionNumber, or the pass number where passes have
    none), "pass 3" (the pass numbered 3 where a series' passes are numbered 1..n apart from
    their AcquisitionNumbers: the Load panel's rows); "none" (also "acq none": its row's
    label), ``(None, False)``: the slices with no AcquisitionNumber stacked beside numbered
    ones."""
    if isinstance(acquisition, int):
        return acquisition, False
    if re.fullmatch(r"\s*(acq\s*)?none\s*", str(acquisition), flags=re.IGNORECASE):
        return None, False
    match = re.fullmatch(r"\s*(pass\s*)?(\d+)\s*", str(acquisition), flags=re.IGNORECASE)
    if match is None:
        raise InputError(
            path,
            f"acquisition {printable(acquisition)!r} is no number: give an AcquisitionNumber "
            "(3), a pass's number (pass 3) or none (the slices with no AcquisitionNumber)",
        )
    return int(match[2]), bool(match[1])


def _asked_as(info: SeriesInfo) -> str:
    """How ``--acquisition`` names ``info``: its number ("3"), or "'pass 3'" of a pass numbered
    apart from its AcquisitionNumbers (a bare 3 may be refused there); "none" of the slices
    with no AcquisitionNumber beside numbered ones."""
    if info.unnumbered:
        return "none"
    if info.acquisition_number is not None or info.chunks:
        return f"'pass {info.acquisition}'"
    return str(info.acquisition)


def _holds(info: SeriesInfo, number: int) -> bool:
    """Is ``info`` (a pass numbered apart from its AcquisitionNumbers, or an acquisition)
    AcquisitionNumber ``number``, or one of its chunks?"""
    if info.acquisition_number is not None or info.chunks:
        return info.acquisition_number == number or number in info.chunks
    return not info.passes_by and info.acquisition == number


def _refuse_renumbered(path, matching, number: int, chosen) -> None:
    """A number asked for (--acquisition 2) of a series whose passes are numbered 1..n apart
    from their AcquisitionNumbers (an acquisition holding two reconstructions; a step-and-shoot
    scan's chunks joined) where it names one pass by its number and another by its
    AcquisitionNumber: refused, the passes listed (QA adv61b: acq 1's LUNG pass 2 was read for
    --acquisition 2, beside AcquisitionNumber 2, said nowhere)."""
    infos = [g[0] for g in matching]
    if not any(g.acquisition_number is not None or g.chunks for g in infos):
        return
    holding = [g for g in infos if _holds(g, number)]
    if not holding or (chosen and _holds(chosen[0][0], number)):
        return
    listing = "; ".join(
        g.acquisition_label for g in sorted(infos, key=lambda g: g.acquisition or 0)
    )
    held = " and ".join(f"pass {g.acquisition}" for g in holding)
    said = f"AcquisitionNumber {number} is in {held}"
    ways = [f"'pass {g.acquisition}'" for g in holding]
    if chosen:
        said = f"{number} is pass {number}, while {said}"
        ways.append(f"'pass {number}'")
    raise InputError(
        path,
        f"series {holding[0].label} numbers its passes 1–{len(infos)} apart from their "
        f"AcquisitionNumbers ({listing}): {said}. Give the pass by its number, "
        f"--acquisition {' or '.join(ways)}, or choose its row in the Load panel",
    )


def _skipped_text(skipped: list[tuple[Path, str]]) -> str:
    folders = [(p, why) for p, why in skipped if why.startswith(FOLDER_NOT_READ)]
    files = [(p, why) for p, why in skipped if not why.startswith(FOLDER_NOT_READ)]
    said = []
    if files:
        shown = "; ".join(f"{p}: {why}" for p, why in files[:5])
        more = f" (and {len(files) - 5} more)" if len(files) > 5 else ""
        said.append(f"{len(files)} unreadable DICOM file(s) skipped: {shown}{more}")
    if folders:  # a series missing from the list is explained
        shown = "; ".join(
            f"{p} ({why[len(FOLDER_NOT_READ) :].strip(' ()')})" for p, why in folders[:5]
        )
        more = f" (and {len(folders) - 5} more)" if len(folders) > 5 else ""
        said.append(
            f"{len(folders)} folder(s) that could not be read, their files not looked at: "
            f"{shown}{more}"
        )
    return "; ".join(said)
