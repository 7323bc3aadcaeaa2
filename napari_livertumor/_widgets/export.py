"""Export widget: NIfTI label map (and masks), DICOM SEG, and the stats as JSON and CSV.

Files are named like the CLI's: ``<case>_labels.nii.gz``, ``<case>_liver.nii.gz``,
``<case>_tumor.nii.gz``, ``<case>_seg.dcm``, ``<case>_stats.json``, ``<case>_lesions.csv``,
``<case>_lesions.nii.gz``.
Existing files are only replaced after the user says so; every file is written under a
temporary name and renamed, so a failure never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QWidget,
)

from .._writer import seg_algorithm_type
from ..errors import Cancelled, InputError, LiverTumorError
from ..fileio import atomic_write_text, check_path_lengths, check_writable_folder
from ..tables import safe_cell
from . import _layers
from ._common import (
    HiddenNote,
    JobWidgetMixin,
    NameCombo,
    StatusLabel,
    clear_status_if,
    follow_layer_list,
    mark_result_of,
    path_text,
    say_if_result_removed,
    scroll_panel,
    set_status,
)

if TYPE_CHECKING:
    import napari


NO_LABELS = "No labels layer to export: segment the CT (panel 2), or load labels."
#: the files an export can write, as ``<case>_<kind>``
EXPORT_KINDS = (
    "labels.nii.gz",
    "liver.nii.gz",
    "tumor.nii.gz",
    "seg.dcm",
    "stats.json",
    "lesions.csv",
    "lesions.nii.gz",
)
#: written with the stats, never apart from them (one group: no stop between them)
_WITH_STATS = ("lesions.csv", "lesions.nii.gz")


#: the Name was typed before any labels existed: it belongs to the first labels chosen
_FIRST_LABELS = object()
#: how the status says a Name typed for another scan was cleared
NAME_CLEARED = "Name '"


def _without_name_note(text: str) -> str:
    """``text`` without the lines saying a Name typed for another scan was cleared."""
    return "\n".join(
        line
        for line in text.split("\n")
        if not (line.startswith(NAME_CLEARED) and "was typed for another scan's labels" in line)
    )


class _Writing:
    """One export writing a folder's files of one Name (:data:`_WRITING`)."""

    def __init__(self, panel) -> None:
        self.panel = weakref.ref(panel)
        self.job = None  # the Job, once started
        self.done = False  # set by the worker as its writing ends (a failure too)

    @property
    def live(self) -> bool:
        return not self.done and (self.job is None or self.job.running)


#: the exports writing now, in this process, by (resolved folder, Name): a closed Export
#: panel's export finishes in the background (``FINISH_ON_CLOSE``) with that panel's button
#: unusable, but an Export panel opened anew (the Plugins menu, another viewer) started a
#: second export into the same files, the two writing one set at once
_WRITING: dict[tuple[str, str], _Writing] = {}
_WRITING_LOCK = threading.Lock()


#: the file systems the exports are compared for ignore the case of names: macOS's and
#: Windows's default disks take "Case1" and "case1" (and "Out", "out") for one file, where
#: two exports under those Names wrote one set of files at once
CASE_INSENSITIVE_FILES = sys.platform in ("win32", "darwin")


def _writing_key(folder: str | Path, case: str) -> tuple[str, str]:
    """The resolved folder and the Name of an export, as the file system tells them apart."""
    where = os.path.normcase(str(Path(folder).expanduser().resolve()))
    if CASE_INSENSITIVE_FILES:
        return (where.casefold(), case.casefold())
    return (where, case)


def _writing_now(key: tuple[str, str]) -> _Writing | None:
    """The export still writing ``key``'s files, if any (those ended are dropped)."""
    with _WRITING_LOCK:
        for k, record in list(_WRITING.items()):
            if not record.live:
                del _WRITING[k]
        return _WRITING.get(key)


def _writing_ended(key: tuple[str, str], record: _Writing) -> None:
    with _WRITING_LOCK:
        record.done = True
        if _WRITING.get(key) is record:
            del _WRITING[key]


class ExportWidget(JobWidgetMixin, QWidget):
    """Write the chosen labels layer in the CT's own geometry."""

    # closed mid-export, the files already replaced and those not yet would mix two results
    FINISH_ON_CLOSE = True
    # (not the Name nor the DICOM SEG tick: they follow the labels chosen)
    REMEMBERED_FIELDS = ("folder", "nifti_check", "masks_check", "stats_check")

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        self.written: list[Path] = []

        self._segs_seen: set[int] = set()
        self._others_seen: set[int] = set()  # ground truths and hand-drawn layers
        self.labels_combo = NameCombo()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("output folder")
        self.browse = QPushButton("Browse…")
        self.case_name = QLineEdit()
        self.case_name.setPlaceholderText("file name prefix (default: from the CT)")
        self.nifti_check = QCheckBox("NIfTI label map (0/1/2)")
        self.nifti_check.setChecked(True)
        self.masks_check = QCheckBox("Separate liver and tumor masks (NIfTI)")
        self.seg_check = QCheckBox("DICOM SEG of the source series")
        self._seg_wanted = False
        self.seg_check.toggled.connect(self._seg_toggled)
        self.stats_check = QCheckBox("Stats (JSON), lesion list (CSV) and map (NIfTI)")
        self.stats_check.setChecked(True)
        self.export_button = QPushButton("Export")
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.status = StatusLabel()
        for widget, tip in (
            (
                self.labels_combo,
                "The labels layer to write (a ground truth is written as liver and tumor)",
            ),
            (
                self.folder,
                "Folder the files go to (created if missing; existing files are "
                "only replaced after asking). Enter here starts the export, as Export does",
            ),
            (self.browse, "Pick the output folder"),
            (
                self.case_name,
                "Prefix of every file name, e.g. HCC_001 → HCC_001_labels.nii.gz. Left empty, "
                "it comes from the CT (a DICOM scan's PatientID, often a record number): give "
                "a pseudonym for files that leave the hospital (the stats still hold the "
                "patient ID and study date: docs/cli.md, 'Patient data in the outputs')",
            ),
            (
                self.nifti_check,
                "<case>_labels.nii.gz on the CT's own grid and affine: 0 background, 1 liver, "
                "2 tumor",
            ),
            (
                self.masks_check,
                "<case>_liver.nii.gz (liver incl. tumor) and <case>_tumor.nii.gz, 0/1 each",
            ),
            (
                self.stats_check,
                "<case>_stats.json (volumes, tumor-to-liver ratio, lesions), "
                "<case>_lesions.csv (one row per lesion) and <case>_lesions.nii.gz (each "
                "lesion marked with its number in the table, 1 the largest)",
            ),
            (self.export_button, "Write the ticked files"),
        ):
            widget.setToolTip(tip)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        row = QHBoxLayout()
        row.addWidget(self.folder)
        row.addWidget(self.browse)
        form.addRow("Folder", row)
        form.addRow("Name", self.case_name)
        layout = scroll_panel(self)
        layout.addLayout(form)
        for box in (self.nifti_check, self.masks_check, self.seg_check, self.stats_check):
            layout.addWidget(box)
        layout.addWidget(self.export_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.browse.clicked.connect(self._browse)
        self.export_button.clicked.connect(self._export_clicked)
        # Enter in the folder field exports (asking before replacing any file), as the button
        self.folder.returnPressed.connect(self._folder_entered)
        self.labels_combo.currentTextChanged.connect(self._labels_changed)
        self._name_for = None  # the scan (_case_key) the typed Name was typed for
        self._refreshing = False
        self.case_name.textEdited.connect(self._name_typed)
        # the amber "… is hidden" line of an export, kept true as eyes turn
        self._hidden_note = HiddenNote(self, "written", "export")
        follow_layer_list(self, self.viewer, self.refresh_layers)
        self.init_jobs(napari_viewer)
        self.refresh_layers()
        if not self.labels_combo.count():  # no layer to pick: the SEG box says what it needs
            self._labels_changed()
        self.restore_closed()  # an Export panel closed in this viewer: its folder and files

    # ------------------------------------------------------------------ user actions
    def refresh_layers(self, *_) -> None:
        try:
            current = self.labels_combo.currentText()
            segs = _layers.labels_layers(self.viewer, role="segmentation")
            others = [
                ly
                for ly in _layers.labels_layers(self.viewer)
                if ly not in segs and ly.metadata.get(_layers.ROLE) not in _layers.NOT_LABELS_ROLES
            ]
            # the newest segmentation on view first: what a deleted choice falls back to
            names = [ly.name for ly in [*_layers.shown_first(self.viewer, segs), *others]]
            new_segs = [ly.name for ly in segs if id(ly) not in self._segs_seen]
            self._segs_seen = {id(ly) for ly in segs}  # layers, not names (a rerun renames)
            new_others = [ly.name for ly in others if id(ly) not in self._others_seen]
            self._others_seen = {id(ly) for ly in others}
            self._refreshing = True  # the list's passing choices are not the user's
            try:
                self._fill_combo(names, current, new_segs, new_others, segs)
            finally:
                self._refreshing = False
            self._forget_name_of_another_scan()
            if names:
                clear_status_if(self.status, NO_LABELS)
            say_if_result_removed(self)
            self._hidden_note.layers_changed()
        except RuntimeError:  # widget deleted while the viewer still emits
            pass

    def _fill_combo(self, names, current, new_segs, new_others, segs) -> None:
        self.labels_combo.clear()
        self.labels_combo.addItems(names)
        if new_segs:  # a segmentation just made (or loaded): what an export is for
            current = new_segs[-1]
        elif new_others and not segs:  # the next patient's ground truth, none segmented
            current = new_others[-1]
        # keep the user's choice, except a ground truth picked (or left) before any
        # segmentation existed: once there is one, that is what an export is for
        was_truth = current in self.viewer.layers and (
            self.viewer.layers[current].metadata.get(_layers.ROLE) == "ground_truth"
        )
        if current in names and not (was_truth and segs):
            self.labels_combo.setCurrentText(current)

    def planned_files(self) -> list[Path]:
        """The files an export with the current choices would write."""
        folder = Path(path_text(self.folder))
        case = self._case()
        names = []
        if self.nifti_check.isChecked():
            names.append(f"{case}_labels.nii.gz")
        if self.masks_check.isChecked():
            names += [f"{case}_liver.nii.gz", f"{case}_tumor.nii.gz"]
        if self.seg_check.isChecked():
            names.append(f"{case}_seg.dcm")
        if self.stats_check.isChecked():
            names += [f"{case}_stats.json", f"{case}_lesions.csv", f"{case}_lesions.nii.gz"]
        return [folder / n for n in names]

    def export(self) -> None:
        """Write the chosen files in a worker (asking before replacing any)."""
        layer = self._layer()
        if layer is None:
            set_status(self.status, NO_LABELS, error=True)
            return
        _layers.catch_up_edits(layer)  # an Undo on a hidden layer: its record follows first
        refining = _layers.refining(layer)
        if refining:  # (its files would hold the labels from before the Apply)
            when = (
                "when the brush stroke being drawn on them ends. Export then"
                if refining == "held"
                else "when it ends. Export then (or cancel the Apply)"
            )
            set_status(
                self.status,
                f"Refine is still applying its contours to '{layer.name}': its result is "
                f"written into these labels {when}; nothing was written.",
                error=True,
            )
            return
        if not path_text(self.folder):
            set_status(self.status, "Choose an output folder first.", error=True)
            return
        files = self.planned_files()
        # the name the files were planned with: the labels (and with them the default name)
        # can change while the Replace dialog waits ("unknown export kind 'A_rev_labels…'")
        case = self._case()
        if not files:
            set_status(self.status, "Tick at least one kind of file to export.", error=True)
            return
        key = _writing_key(path_text(self.folder), case)
        other_export = _writing_now(key)
        panel = other_export.panel() if other_export is not None else None
        # another panel's, refused (not waited for: the user decides what then); this panel's
        # own is said by run_job (its button is unusable till then)
        if other_export is not None and panel is not self:
            closed = panel is None or panel.parent() is None
            set_status(
                self.status,
                f"An export from {'a closed' if closed else 'another'} Export panel is still "
                f"writing to {Path(path_text(self.folder)).expanduser().resolve()} under the "
                f"Name {case}; nothing was written. Try again "
                "when it ends (or type another Name).",
                error=True,
            )
            return
        try:
            check_writable_folder(path_text(self.folder))
        except InputError as exc:
            set_status(self.status, str(exc), error=True)
            return
        # every kind's name, ticked or not: the files of the others are looked for too (an
        # earlier export's), and a name too long to look for raised there
        longest = max(
            (f"{case}_{kind}" for kind in EXPORT_KINDS), key=lambda n: len(os.fsencode(n))
        )
        most = _name_max(files[0].parent)
        if len(os.fsencode(longest)) > most:  # said before anything starts
            set_status(
                self.status,
                f"The Name is too long: the file names it gives ({longest[:40]}…) exceed "
                f"the {most} bytes a file name can have here. Type a shorter Name.",
                error=True,
            )
            return
        try:  # Windows' path limit (where it applies): a file over it failed part-way,
            # the ones before it written, the others not
            check_path_lengths(path_text(self.folder), files, choose="an output folder (or a Name)")
        except InputError as exc:
            set_status(self.status, f"{exc}; nothing was written.", error=True)
            return
        try:
            labels, note = _layers.output_labels(layer)  # a snapshot of the edits
        except ValueError as exc:
            set_status(self.status, str(exc), error=True)
            return
        try:
            volume = _layers.volume_of(layer, self.viewer.layers)
        except ValueError as exc:
            set_status(self.status, str(exc), error=True)
            return
        if _layers.tumor_not_assessed(layer, labels):  # no lesions looked for: no map of none
            # (segment --stages liver writes none either; an empty one read as "no lesion")
            files = [f for f in files if not f.name.endswith("_lesions.nii.gz")] or files
        shared = volume.meta.get("grid_shared_by")
        if shared and any(f.name.endswith("_seg.dcm") for f in files):
            set_status(
                self.status,
                f"'{layer.name}' lies on the grid of several CTs ({', '.join(shared)}): a DICOM "
                "SEG must reference the one it was drawn on. Close the other CT layers, untick "
                "DICOM SEG (the NIfTI is the same for all of them), or export a layer made on "
                "that CT.",
                error=True,
            )
            return
        existing = [f for f in files if f.exists()]
        # another phase or study of the same patient gets the same default name: the files
        # to replace may be that scan's (Yes replaced the arterial phase's with no word)
        other = _made_on_another_scan(files[0].parent / f"{case}_stats.json", volume)
        # a duplicated layer's edits exported there, say: Yes put the model's back unsaid
        differ = (
            None
            if other or not existing
            else _other_volumes_there(files[0].parent / f"{case}_stats.json", labels, volume)
        )
        if other and not existing:
            # nothing to replace, but the folder's files of this Name are another scan's (a
            # baseline's SEG beside a follow-up's stats): never mixed under one Name unasked
            from ..stats import scan_identity

            mine = scan_identity(volume.meta)
            hint = mine.get("study_date") or (
                f"s{mine['series_number']}" if mine.get("series_number") is not None else "2"
            )
            set_status(
                self.status,
                f"The files named {case}_… in {files[0].parent} are another scan's: {other}. "
                f"These would lie beside them under the same Name. Type another Name (e.g. "
                f"{case}_{hint}) to keep the two apart; nothing was written.",
                error=True,
            )
            return
        # the labels of a patient whose layers were hidden to go back to another: the files
        # replaced would read as the one on view's (said after the export too)
        hidden = _layers.hidden_choice_note(self.viewer, layer, "written", "export", "would be")
        if existing and not self.ask_overwrite(
            existing, other_scan=other, other_labels=differ, hidden=hidden
        ):
            set_status(self.status, "Export cancelled: no file was replaced.")
            return
        kinds = {f.name.removeprefix(case + "_"): f for f in files}
        # files of this case already in the folder and not rewritten now (an earlier export's,
        # the opened file itself): checked against these labels after the export, in the worker
        others = {
            kind: Path(path_text(self.folder)) / f"{case}_{kind}"
            for kind in EXPORT_KINDS
            if kind not in kinds
        }
        others = {k: f for k, f in others.items() if f.is_file()}
        extra = {}
        model_stats = layer.metadata.get("stats") or {}
        if _layers.tumor_not_assessed(layer, labels):
            extra = {
                "tumor_ml": None,
                "tumor_to_liver_ratio": None,
                "lesion_count": None,
                "note": "the tumor stage was not run (liver only, or no liver found): the tumor "
                "figures are not computed, and the tumor mask is empty for that reason",
            }
        metadata = dict(layer.metadata)
        ct = _layers.ct_array_for(layer, self.viewer.layers)  # HU only from a CT layer
        if ct is None and "stats.json" in kinds:  # said, not left out without a word
            why = _layers.why_no_hu(layer, self.viewer.layers)
            note = (note + "; " if note else "") + f"the lesions' HU are left out: {why}"

        writing = _Writing(self)

        def target(progress, should_cancel):
            try:
                # compared with the model's output here, off the GUI thread (a CRC of the scan)
                algorithm_type = seg_algorithm_type(metadata, labels)
                extra.update(_provenance(metadata, model_stats, labels))
                notes: list[str] = []
                written = write_exports(
                    labels,
                    volume,
                    kinds,
                    progress=progress,
                    extra_stats=extra,
                    notes=notes,
                    should_cancel=should_cancel,
                    algorithm_type=algorithm_type,
                    ct=ct,
                )
            finally:  # the files are whole (or the export failed): another may write them
                _writing_ended(key, writing)
            notes += older_files_that_differ(others, labels, volume)
            return written, notes

        with _WRITING_LOCK:
            _WRITING[key] = writing
        writing.job = self.run_job(
            target,
            lambda result, layer=layer: (
                # (its name now: a Segment rerun meanwhile renamed it "… (previous)")
                self._done(result[0], note, result[1], layer.name, hidden_of=layer),
                mark_result_of(self, layer),
            ),
            button=self.export_button,
            description="export",
            busy_text="Exporting…",
        )
        if writing.job is None:  # not started
            _writing_ended(key, writing)

    def ask_overwrite(
        self,
        existing: list[Path],
        other_scan: str | None = None,
        other_labels: str | None = None,
        hidden: str = "",
    ) -> bool:
        """Ask the user whether ``existing`` files may be replaced (tests replace this);
        ``other_scan`` says that they were made on another scan than these labels',
        ``other_labels`` that they hold other labels of this scan (their volumes), ``hidden``
        that these labels are hidden (:func:`_layers.hidden_choice_note`)."""
        listing = "\n".join(f"  {p.name}" for p in existing[:8])
        more = f"\n  … and {len(existing) - 8} more" if len(existing) > 8 else ""
        warn = (
            f"\n\n⚠ They are another scan's: {other_scan}. Type another Name (in this "
            "panel) to keep both."
            if other_scan
            else (
                f"\n\n⚠ They hold other labels of this scan: {other_labels}. Type another "
                "Name (in this panel) to keep both."
                if other_labels
                else ""
            )
        )
        answer = QMessageBox.question(
            self,
            "Replace files?",
            f"These files exist in {existing[0].parent}:\n{listing}{more}{warn}"
            + (f"\n\n⚠ {hidden}" if hidden else "")
            + "\n\nReplace them?",
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        return answer == QMessageBox.Yes

    def panel_closed(self) -> None:
        """A closed panel follows no layer's eye until docked again (:class:`HiddenNote`)."""
        self._hidden_note.pause()

    # ------------------------------------------------------------------ slots
    def _done(
        self, written: list[Path], note: str = "", notes=(), name: str = "", hidden_of=None
    ) -> None:
        self.written = written
        # ``hidden_of`` hidden (a later patient's, its layers hidden to go back to an earlier
        # one): its files read as those of the patient on view, unsaid
        hidden = _layers.hidden_choice_note(self.viewer, hidden_of, "written", "export")
        others = [n for n in notes if n]
        notes = [hidden, *others] if hidden else others
        folder = written[0].parent if written else ""
        # which layer: a Segment run started meanwhile renames the exported one "(previous)"
        of = f" of '{name}'" if name else ""
        set_status(
            self.status,
            "".join(f"⚠ {n}\n" for n in notes)
            + f"Wrote {len(written)} file(s){of} to {folder}:\n"
            + "\n".join(p.name for p in written)
            + (f"\n({note})" if note else ""),
            warning=bool(notes),
        )
        # shown again (or what is on view changed): the line goes, or says so
        self._hidden_note.said(hidden_of, hidden, bool(others))

    def _export_clicked(self) -> None:
        if not self.cancel_if_running(self.export_button):
            self.export()

    def _folder_entered(self) -> None:
        if not self.busy:
            self.export()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder")
        if folder:
            self.folder.setText(folder)

    def _labels_changed(self, *_) -> None:
        layer = self._layer()
        has_uids, shared = False, None
        if layer is not None:
            try:  # its own CT, or (a New labels layer) the CT it lies on
                vol = _layers.volume_of(layer, self.viewer.layers)
            except ValueError:
                vol = None
            has_uids = bool(vol is not None and any(vol.file_meta.get("sop_instance_uids") or ()))
            shared = None if vol is None else vol.meta.get("grid_shared_by")
        self.seg_check.setEnabled(has_uids)
        self.seg_check.setToolTip(
            "Also write a DICOM SEG that references the CT's DICOM slices (for PACS and "
            "other viewers; it carries the scan's patient and study identifiers, as the "
            "standard asks)"
            if has_uids
            else f"It lies on the grid of several CTs ({', '.join(shared)}): which one the SEG "
            "should reference is not known."
            if shared
            else "Needs a CT loaded from DICOM (the SEG references its slices)."
        )
        # unticked while it cannot apply, the user's tick comes back with a layer it fits
        self.seg_check.setChecked(has_uids and self._seg_wanted)
        if not self._refreshing:
            self._forget_name_of_another_scan()

    def _seg_toggled(self, checked: bool) -> None:
        if self.seg_check.isEnabled():  # the user's choice, not one forced by the layer
            self._seg_wanted = checked

    def _layer(self):
        name = self.labels_combo.currentText()
        return next((ly for ly in _layers.labels_layers(self.viewer) if ly.name == name), None)

    def _name_typed(self, text: str) -> None:
        # typed before any labels exist: it is for the first labels chosen
        self._name_for = (self._case_key() or _FIRST_LABELS) if text.strip() else None
        rest = _without_name_note(self.status.text())
        if rest != self.status.text():  # a name typed again answers the note
            kind = getattr(self.status, "_kind", "")
            set_status(self.status, rest, error=kind == "error" and bool(rest),
                       warning=kind == "warning" and bool(rest))  # fmt: skip

    def _case_key(self):
        """Which scan the chosen labels lie on: a Name typed for one is not another's."""
        layer = self._layer()
        if layer is None:
            return None
        try:
            vol = _layers.volume_of(layer, self.viewer.layers)
        except Exception:  # noqa: BLE001 - not on a grid: its own volume, if any
            vol = layer.metadata.get(_layers.CT_VOLUME)
        if vol is None:
            return (self._default_base(), None)
        grid = (
            tuple(vol.shape),
            tuple(round(float(v), 3) for v in (*vol.spacing, *vol.origin)),
        )
        meta = vol.meta
        where = (meta.get("series_uid"), meta.get("acquisition_number"), meta.get("source"))
        return (self._default_base(), where, grid)  # the scan, whichever of its labels

    def _forget_name_of_another_scan(self) -> None:
        """Clear a Name typed for another scan's labels: the next patient's masks were
        exported as "HCC_001_reviewed_seg.dcm" (PatientID HCC_002 inside), or offered to
        replace the first patient's files."""
        typed = self.case_name.text().strip()
        key = self._case_key()
        if not typed or self._name_for is None or key is None or key == self._name_for:
            return
        if self._name_for is _FIRST_LABELS:
            self._name_for = key
            return
        self.case_name.clear()
        self._name_for = None
        said = (
            f"{NAME_CLEARED}{typed}' was typed for another scan's labels and is cleared: "
            f"these are named {self._default_case()} unless you type a name."
        )
        # below what the panel said last (an export's warning stays to be read), in place of
        # an earlier such note
        before = _without_name_note(self.status.text())
        keep = bool(before) and not before.startswith(NO_LABELS)
        kind = getattr(self.status, "_kind", "") if keep else ""
        set_status(
            self.status,
            f"{before}\n{said}" if keep else said,
            error=kind == "error",
            warning=kind == "warning",
        )

    def _case(self) -> str:
        if self.case_name.text().strip():
            return _safe_name(self.case_name.text().strip())
        return self._default_case()

    def _default_case(self) -> str:
        """The CT's patient (or name), with its pass of a series stacking several where
        another pass of it is open ("HCC_001_acq2"); a ground truth's files end in ``_truth``
        (exported into the segmentation's folder, they offered to replace its files under the
        same names)."""
        name = self._default_base()
        layer = self._layer()
        if layer is not None and layer.metadata.get(_layers.ROLE) == "ground_truth":
            return f"{name}_truth"
        return name

    def _default_base(self) -> str:
        layer = self._layer()
        vol = None
        if layer is not None:
            # napari's New labels layer on a CT, or segment's NIfTI labels over their DICOM
            # CT: named for the CT's patient, as Segment's are (they were
            # "HCC_001.nii.gz_-_Labels_labels.nii.gz" and "HCC_001_labels_labels.nii.gz")
            try:
                vol = _layers.volume_of(layer, self.viewer.layers)
            except Exception:  # noqa: BLE001 - not on a grid: named below
                vol = layer.metadata.get(_layers.CT_VOLUME)
        if vol is not None and vol.meta.get("patient_id"):
            name = str(vol.meta["patient_id"])
            if vol.meta.get("series_uid"):  # a DICOM PatientID: as it is
                # one pass of a series stacking several, beside another pass of it: which, as
                # the Load panel's rows number it ("HCC_001_acq2", "HCC_001_pass3"; the other
                # pass's export was named the same, and offered to replace these files). Of
                # the only pass open, the case's name as `livertumor segment` writes it (its
                # labels opened over their CT and corrected were written beside them as
                # HCC_001_acq1_…, nothing asked)
                number = _pass_number(vol)
                if number and _other_pass_open(self.viewer, vol):
                    name = f"{name}_{number.replace(' ', '')}"
                return _safe_name(name)
        else:
            ct_name = _layers.linked_ct_name(layer, self.viewer)
            if ct_name is None and layer is not None:
                ct_name = layer.metadata.get(_layers.CT_LAYER)
            name = ct_name or (layer.name if layer is not None else "case")
        # a label file opened by itself ("HCC_001_labels", which NIfTI names its "patient"
        # after): its case, not "…_labels_labels"
        for suffix in ("_labels", "_seg", "_segmentation"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        return _safe_name(name)


def _pass_number(volume) -> str:
    """ "acq 2", "pass 3": which pass of a series stacking several ``volume`` is; "" of any
    other scan."""
    meta = getattr(volume, "meta", None) or {}
    return str(meta.get("acquisition_label") or "").split(", ")[0]


def _other_pass_open(viewer, volume) -> bool:
    """Whether a layer in ``viewer`` (a CT, labels) lies on another pass of ``volume``'s
    series."""
    uid, number = volume.meta.get("series_uid"), _pass_number(volume)
    for layer in viewer.layers:
        other = layer.metadata.get(_layers.CT_VOLUME)
        meta = getattr(other, "meta", None) or {}
        if uid and meta.get("series_uid") == uid and _pass_number(other) not in ("", number):
            return True
    return False


def _seg_description(algorithm_type: str, liver_only: bool, ground_truth: bool = True) -> str:
    """An exported DICOM SEG's SeriesDescription (:func:`io.seg.seg_series_description`)."""
    from ..io.seg import seg_series_description

    return seg_series_description(algorithm_type, liver_only, ground_truth)


def _provenance(metadata: dict, model_stats: dict, labels=None) -> dict:
    """What the exported stats say of how the labels were made: the command line's keys
    (``warnings``, ``device``, ``models``, ``refine`` — the model run's —, ``tumor_tta``,
    ``lesion_filter``, ``unsure_lesions``, ``refine_effect``, ``timings_s``, ``version``), the Refine panel's refinements in effect
    (``refined_in_panel``: what each was applied to, with its settings) and ``source``: ``model``, ``edited`` (a
    model's, painted on or refined since), ``ground_truth``, or ``unknown`` (opened from a file,
    drawn by hand: no model ran on it in this session). Labels opened from a file also say
    which (``opened_from``), whether they were changed since (``edited_since_opened``) and,
    for a ``livertumor segment`` output, the run its stats file records (``file_run``)."""
    from .. import __version__
    from .._writer import OPENED_ALGORITHM, labels_edited, opened_file_provenance
    from ..provenance import software

    edited = labels_edited(metadata, labels)
    # the Refine panel's refinements still in effect (undone ones are not), with their settings
    refined = list(metadata.get(_layers.REFINED_HERE) or [])
    if metadata.get("source") != "model" and not model_stats:
        role = metadata.get("livertumor_role")
        # labels opened from a file: as the file says they were made, or edited since (a
        # reviewed segmentation reopened said "unknown", and its next export "AUTOMATIC")
        made = metadata.get(OPENED_ALGORITHM)
        source = "unknown"
        if role == "ground_truth":
            source = "ground_truth"
        elif made == "AUTOMATIC":
            source = "edited" if edited else "model"
        elif made == "SEMIAUTOMATIC":
            source = "edited"
        return {"source": source,
                "version": __version__,
                "software": software(),  # the exporting one's
                **({"refined_in_panel": refined} if refined else {}),
                **opened_file_provenance(metadata, labels)}  # fmt: skip
    run = metadata.get("run") or {}
    out = {
        "source": "edited" if edited else "model",
        "device": metadata.get("device"),
        "models": run.get("models"),
        "refine": run.get("refine"),  # the model run's
        **({"refine_config": run["refine_config"]} if run.get("refine_config") else {}),
        "refined_in_panel": refined,
        "tumor_tta": run.get("tumor_tta", model_stats.get("tumor_tta")),
        "lesion_filter": model_stats.get("lesion_filter"),
        # the candidates the model run's filter dropped, and what its refinement changed: as
        # the command line's stats have them (the same case from both was not comparable)
        "unsure_lesions": list(model_stats.get("unsure_lesions") or []),
        **(
            {"refine_effect": model_stats["refine_effect"]}
            if model_stats.get("refine_effect")
            else {}
        ),
        "timings_s": metadata.get("timings"),
        "version": run.get("version", __version__),
        "software": run.get("software") or software(),  # the model run's, as the CLI's stats
        **({"ct_digest": run["ct_digest"]} if run.get("ct_digest") else {}),
        "warnings": list(model_stats.get("warnings") or []),
    }
    if edited:
        out["note_edited"] = (
            "the labels were edited after the model ran (painted or refined): the figures are "
            "the edited labels'; device, models, refine, refine_effect, lesion_filter, "
            "unsure_lesions (candidates the model dropped, whether painted in since or not), "
            "tumor_tta, timings_s and warnings are the model run's"
        )
    return out


def write_exports(
    labels: np.ndarray,
    volume,
    files: dict[str, Path],
    progress=None,
    extra_stats=None,
    notes: list[str] | None = None,
    should_cancel=None,
    algorithm_type: str = "AUTOMATIC",
    ct: np.ndarray | None = None,
) -> list:
    """Write each requested kind (``labels.nii.gz``, ``liver.nii.gz``, ``tumor.nii.gz``,
    ``seg.dcm``, ``stats.json``, ``lesions.csv``) to its path; returns the paths written.
    ``extra_stats`` is merged into the statistics (the model's warnings, tumor not assessed);
    ``notes`` receives what a file had to leave out (the DICOM SEG: interpolated slices) or
    what its reader should know (NIfTI of a sheared grid: its qform off).
    ``algorithm_type`` is the DICOM SEG's Segment Algorithm Type (``AUTOMATIC``,
    ``SEMIAUTOMATIC`` after edits, ``MANUAL`` for a ground truth). ``ct``: the CT's HU on
    ``labels``' grid (as shown), for the lesions' attenuation in the stats; None leaves it out.

    A failure after some files were written says which were and which were not.
    ``should_cancel()`` is checked before each file; a cancel stops there with
    :class:`~napari_livertumor.errors.Cancelled`, whose ``changed`` names the files already
    written (a file is never left half-written).
    """
    if ct is not None:  # in the file's order, as the labels
        ct = volume.to_stored(ct)[0] if np.shape(ct) == np.shape(labels) else None
    labels, volume = volume.to_stored(labels)  # a NIfTI shown turned: the file's own grid
    written: list[Path] = []
    stats: dict = {}
    extra = dict(extra_stats or {})
    # the DICOM SEG first: it is the one that refuses most (a CT not read from DICOM, a missing
    # attribute), and then nothing else has been replaced yet; the stats after the label files,
    # whose digests they record
    order = sorted(
        files.items(),
        # (stats before their lesion table, whatever order they were asked in)
        key=lambda kv: (
            kv[0] != "seg.dcm",
            kv[0] in ("stats.json", *_WITH_STATS),
            kv[0] in _WITH_STATS,
        ),
    )
    extra["algorithm_type"] = algorithm_type  # as a DICOM SEG of these labels says it
    # folders this export would create: removed again (if still empty) when nothing is written
    created: list[Path] = []
    folder = Path(os.path.abspath(order[0][1].parent)) if order else None  # ("a/../b": b)
    while folder is not None and not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    for i, (kind, path) in enumerate(order):
        # (the lesion table goes with its stats, never a stop between them: a new stats file
        # beside the last export's table disagreed on the lesions without a word)
        if kind not in _WITH_STATS and should_cancel is not None and should_cancel():
            left = ", ".join(p.name for _, p in order[i:])
            changed = (
                f"{', '.join(p.name for p in written)} written to {path.parent}; not written: "
                f"{left}{_earlier_exports(order[i:])}"
                if written
                else ""
            )
            raise Cancelled("export cancelled", changed=changed)
        if progress is not None:
            progress("export", i, len(files))
        if kind == "stats.json":
            # what each label file held when written: opened again, a file changed since (in
            # another tool) is not taken for what these stats say of it
            from ..commands.segment import _digest

            digests = {}
            for done in written:
                if done.name.endswith(("_labels.nii.gz", "_seg.dcm")):
                    st = done.stat()
                    digests[done.name] = _digest(str(done.resolve()), st.st_size, st.st_mtime_ns)
            if digests:
                extra["digests"] = digests
        try:
            _write_one(kind, path, labels, volume, stats, extra, notes, algorithm_type, ct)
        except Exception as exc:
            if not written:
                for made in created:  # the deepest first; one not empty stops it
                    try:
                        made.rmdir()
                    except OSError:
                        break
                # (what the SEG's input or the disk refused, not a bug: a bug's own error,
                # with its traceback, is not dressed as advice to untick the SEG)
                said = (InputError, LiverTumorError, OSError, ValueError, MemoryError)
                if (
                    kind == "seg.dcm"
                    and len(order) > 1
                    and isinstance(exc, said)
                    and not isinstance(exc, Cancelled)
                ):
                    # the SEG goes first: say that nothing else was written or replaced, and
                    # how to have the other files
                    hint = " — nothing was written or replaced" + (
                        # a full disk or a size limit fails the other files too: no advice
                        # to untick the SEG, which only failed first
                        ""
                        if isinstance(exc, OSError)
                        else "; untick DICOM SEG to export the other files"
                    )
                    if isinstance(exc, InputError):
                        raise InputError(exc.path, exc.problem + hint) from exc
                    raise LiverTumorError(f"{path.name}: {exc}{hint}") from exc
                raise
            done = ", ".join(p.name for p in written)
            left = ", ".join(p.name for _, p in order[i:])
            raise LiverTumorError(
                f"export stopped at {path.name} ({exc}); already written: {done}; "
                f"not written: {left}{_earlier_exports(order[i:])}"
            ) from exc
        written.append(path)
    if should_cancel is not None and should_cancel() and written:
        # the cancel came after the last file: said as such, not as "nothing was changed"
        raise Cancelled(
            "export cancelled",
            changed=f"all {len(written)} file(s) had been written to {written[0].parent} "
            f"({', '.join(p.name for p in written)})",
        )
    if progress is not None:
        progress("export", len(files), len(files))
    return written


def _earlier_exports(left: list) -> str:
    """Said of an export stopped before the files ``left`` (kind, path): those already there
    are the earlier export's, beside new files they no longer match."""
    old = [p.name for _, p in left if p.exists()]
    if not old:
        return ""
    return (
        f" (the {', '.join(old)} there {'is' if len(old) == 1 else 'are'} the "
        "earlier export's: no longer of the same labels as the new files)"
    )


def older_files_that_differ(files: dict, labels: np.ndarray, volume) -> list[str]:
    """A note for each of ``files`` (kind → path: files of this case already in the folder,
    not rewritten by this export) that does not hold what this export's labels would give, or
    could not be read to tell: beside the new files it would be taken for theirs. Label maps
    and masks are compared voxel by voxel, a DICOM SEG read back on the CT (on the slices it
    can hold), the stats by their volumes (the lesion table with them). Nothing is removed or
    replaced."""
    from ..errors import InputError

    labels, volume = volume.to_stored(labels)
    differ, unread = [], []
    for kind, path in files.items():
        if kind in _WITH_STATS and "stats.json" in files:
            continue  # judged with its stats file
        try:
            same = _holds_these_labels(kind, path, labels, volume)
        except InputError as exc:  # a damaged file, a SEG of another series: why, in its words
            unread.append(f"{path.name} ({exc.problem})")
            continue
        except Exception:  # noqa: BLE001 - unreadable: said as such, no claim either way
            unread.append(path.name)
            continue
        if same is None:
            unread.append(path.name)
        elif not same:
            table = kind == "stats.json" and any(k in files for k in _WITH_STATS)
            differ.append(path.name + (" (and its lesion files)" if table else ""))
    notes = []
    if differ:
        notes.append(
            f"{', '.join(differ)}, already in this folder and not rewritten now, "
            f"{'does' if len(differ) == 1 else 'do'} not match these labels: tick "
            f"{'its kind' if len(differ) == 1 else 'their kinds'} to rewrite, or remove "
            f"{'it' if len(differ) == 1 else 'them'}"
        )
    if unread:
        notes.append(
            f"{', '.join(unread)}, already in this folder and not rewritten now, could not be "
            "checked against these labels"
        )
    return notes


def _holds_these_labels(kind: str, path: Path, labels: np.ndarray, volume) -> bool | None:
    """Does the file at ``path`` (an export of ``kind``) hold ``labels``? None: cannot tell."""
    if kind in ("labels.nii.gz", "liver.nii.gz", "tumor.nii.gz"):
        from ..io.nifti import read_nifti

        old = np.asarray(read_nifti(path).array)
        want = {
            "labels.nii.gz": labels,
            "liver.nii.gz": np.isin(labels, (1, 2)).astype(np.uint8),
            "tumor.nii.gz": (labels == 2).astype(np.uint8),
        }[kind]
        return old.shape == want.shape and np.array_equal(old, want)
    if kind == "lesions.nii.gz":
        from ..io.nifti import read_nifti
        from ..stats import lesion_id_map

        old = np.asarray(read_nifti(path).array)
        want = lesion_id_map(labels, affine_lps=volume.affine_lps)
        return old.shape == want.shape and np.array_equal(old, want)
    if kind == "seg.dcm":
        from ..io.seg import read_dicom_seg
        from ..training.metrics import hcc_to_output

        seg = hcc_to_output(read_dicom_seg(path, volume))
        # slices the reader filled in over a gap have no image to reference: never in a SEG
        uids = list(volume.file_meta.get("sop_instance_uids") or [])
        if len(uids) == labels.shape[0]:
            held = np.array([bool(u) for u in uids])
            return np.array_equal(seg[held], labels[held])
        return np.array_equal(seg, labels)
    if kind == "stats.json":
        import json

        old = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(old.get("liver_ml"), (int, float)):
            return None
        n_liver = float(np.count_nonzero(labels))  # liver and tumor: 1 and 2
        n_tumor = float(np.count_nonzero(labels == 2))
        old_tumor = old.get("tumor_ml")

        def close(a, b) -> bool:
            return abs(float(a) - b) <= 0.002 + 1e-6 * b  # stored to 3 decimals

        # the grid's exact voxel volume, or its spacings' product (a stats file of another tool)
        for voxel_ml in {volume.voxel_volume_ml, float(np.prod(volume.spacing)) / 1000.0}:
            tumor = n_tumor * voxel_ml
            if close(old["liver_ml"], n_liver * voxel_ml) and (
                close(old_tumor, tumor) if isinstance(old_tumor, (int, float)) else tumor == 0
            ):
                return True
        return False
    return None  # a lesions table without its stats file: not checked


def _write_one(
    kind: str,
    path: Path,
    labels: np.ndarray,
    volume,
    stats: dict,
    extra=None,
    notes=None,
    algorithm_type: str = "AUTOMATIC",
    ct: np.ndarray | None = None,
) -> None:
    """Write one export; ``stats`` caches the statistics for the JSON and the CSV (with the
    lesions' attenuation when ``ct``, the CT's voxels on the labels' grid, is given)."""
    from ..io.nifti import write_nifti

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "labels.nii.gz":
        write_nifti(labels, path, reference=volume, labels=True, notes=notes)
    elif kind == "liver.nii.gz":
        write_nifti(
            np.isin(labels, (1, 2)).astype(np.uint8),
            path,
            reference=volume,
            labels=True,
            notes=notes,
        )
    elif kind == "tumor.nii.gz":
        write_nifti(
            (labels == 2).astype(np.uint8), path, reference=volume, labels=True, notes=notes
        )
    elif kind == "lesions.nii.gz":  # numbered as the stats number them (the same grid, affine)
        from ..stats import lesion_id_map

        ids = lesion_id_map(labels, affine_lps=volume.affine_lps)
        write_nifti(ids, path, reference=volume, labels=True, notes=notes)
    elif kind == "seg.dcm":
        from ..io.seg import write_dicom_seg

        # a liver-only run (the tumor not assessed): no Tumor segment, which a viewer would
        # show as "0 mL of tumor found" (as segment's own SEG of such a run)
        liver_only = "tumor_ml" in (extra or {}) and (extra or {}).get("tumor_ml") is None
        write_dicom_seg(
            labels,
            volume,
            path,
            segments=[(1, "Liver")] if liver_only else [(1, "Liver"), (2, "Tumor")],
            notes=notes,
            algorithm_type=algorithm_type,
            # a model's segmentation as it came is marked so: never read as a ground truth;
            # an edited one and a ground truth say what they are in a PACS's series list (all
            # three read "Segmentation", as the reference SEG does)
            series_description=_seg_description(
                algorithm_type, liver_only, (extra or {}).get("source") == "ground_truth"
            ),
        )  # fmt: skip
    elif kind in ("stats.json", "lesions.csv"):
        if not stats:
            from ..stats import add_image_numbers, compute_stats

            if ct is not None and np.shape(ct) != labels.shape:
                ct = None
            stats.update(compute_stats(labels, volume.spacing, affine_lps=volume.affine_lps, ct=ct))
            add_image_numbers(stats, volume)
            # the command line's keys for what the labels lie on ("source" is how they were
            # made: extra's provenance)
            stats["case"] = path.name.rsplit("_", 1)[0]
            stats["input"] = str(volume.meta.get("source", ""))
            stats["series_uid"] = str(volume.meta.get("series_uid", ""))
            stats["acquisition_number"] = volume.meta.get("acquisition_number")
            stats["acquisition"] = volume.meta.get("acquisition_label") or None
            from ..stats import scan_identity

            stats.update(scan_identity(volume.meta))
            stats["shape_zyx"] = list(labels.shape)
            stats.update(extra or {})
        text = json.dumps(stats, indent=2) if kind == "stats.json" else _lesion_csv(stats)
        atomic_write_text(path, text)
    else:
        raise ValueError(f"unknown export kind {kind!r}")


#: the columns of Export's ``<case>_lesions.csv``, one row per lesion (docs/cli.md)
LESION_CSV_COLUMNS = (
    "case",
    "lesion",
    "volume_ml",
    "longest_diameter_mm",
    "axial_diameter_mm",
    "first_slice",
    "last_slice",
    "centre_slice",
    "centroid_z_index",
    "centroid_y_index",
    "centroid_x_index",
    "centroid_lps_x_mm",
    "centroid_lps_y_mm",
    "centroid_lps_z_mm",
    "first_image",
    "last_image",
    "centre_image",
    "mean_hu",
    "liver_contrast_hu",
)


def _lesion_csv(stats: dict) -> str:
    """One row per lesion (``lesion``: its ``id`` in the stats and its value in
    ``<case>_lesions.nii.gz``), a column per figure: a spreadsheet's numbers, and the case
    in each row (tables of several patients pasted together)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(LESION_CSV_COLUMNS)

    def cell(value):
        # a case named like a formula ("=HYPERLINK(…)") is shown as text, not run by the
        # spreadsheet that opens the table
        return "" if value is None else safe_cell(value)

    for les in stats["lesions"]:
        first, last = les["slice_range"]
        zyx = list(les.get("centroid_zyx") or [None] * 3)
        lps = list(les.get("centroid_lps_mm") or [None] * 3)
        images = les.get("image_numbers") or [None, None]
        out.writerow(
            [cell(stats.get("case")), les["id"], les["volume_ml"], les["longest_diameter_mm"]]
            + [cell(les.get("axial_diameter_mm")), first, last, cell(les.get("slice"))]
            + [cell(v) for v in (*zyx, *lps, *images, les.get("image_number"))]
            + [cell(les.get(k)) for k in ("mean_hu", "liver_contrast_hu")]
        )
    return buf.getvalue()


def _other_volumes_there(stats_path: Path, labels: np.ndarray, volume) -> str | None:
    """How the liver and tumor volumes the ``<case>_stats.json`` at ``stats_path`` records
    differ from those of ``labels`` (on ``volume``'s grid), in words; None when they agree to
    a voxel, or it cannot tell (no file, not ours, no volumes). Read and counted, not
    compared voxel by voxel: fast enough to ask before replacing."""
    try:
        old = json.loads(stats_path.read_text(encoding="utf-8"))
        was = {k: float(old[k]) for k in ("liver_ml", "tumor_ml") if old.get(k) is not None}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None
    if not was:
        return None
    affine = getattr(volume, "affine_lps", None)
    voxel_ml = (
        abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0
        if affine is not None
        else float(np.prod(volume.spacing)) / 1000.0
    )
    tumor = int(np.count_nonzero(labels == 2))
    now = {"liver_ml": (int(np.count_nonzero(labels == 1)) + tumor) * voxel_ml}
    now["tumor_ml"] = tumor * voxel_ml
    from ..stats import volume_shown

    words = {"liver_ml": "liver", "tumor_ml": "tumor"}
    differ = [
        f"{words[k]} {volume_shown(was[k])} mL there, {volume_shown(now[k])} mL in these labels"
        + f" ({abs(round((now[k] - was[k]) / voxel_ml)):.0f} voxels apart)"
        for k in was
        if abs(was[k] - now[k]) > 0.5 * voxel_ml + 1e-3
    ]
    return "; ".join(differ) or None


def _made_on_another_scan(stats_path: Path, volume) -> str | None:
    """How the ``<case>_stats.json`` at ``stats_path`` names the scan it was made on, when that
    is not ``volume`` (another series, acquisition or file); None when it is, or it cannot
    tell (no file, not ours)."""
    try:
        old = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict):
        return None
    meta = volume.meta
    was, now = str(old.get("series_uid") or ""), str(meta.get("series_uid") or "")
    if was and now:
        acq_was, acq_now = old.get("acquisition_number"), meta.get("acquisition_number")
        if was != now:
            from ..stats import scan_identity, scan_words

            # by number, description and study date where both say them (UIDs mean nothing
            # to a reader: a baseline and a follow-up of one patient were told so)
            there, here = scan_words(old), scan_words(scan_identity(meta))
            if there and here and there != here:
                return f"{there} (these labels lie on {here})"
            return f"series {was} (these labels lie on series {now})"
        if acq_was != acq_now and acq_was is not None and acq_now is not None:
            # as the reader names them ("pass 3, acq 2, kernel B70f"), where both say it
            said_was, said_now = old.get("acquisition"), meta.get("acquisition_label")
            if said_was and said_now:
                return f"{said_was} of the series (these labels lie on {said_now})"
            return (
                f"acquisition {acq_was} of the series (these labels lie on acquisition {acq_now})"
            )
        return None
    # the command line records the input as typed (often relative), and resolved in its run
    # settings: the same file opened by another path (absolute, a link) is the same scan
    settings = old.get("run_settings") if isinstance(old.get("run_settings"), dict) else {}
    src_was = str(settings.get("input") or old.get("input") or "")
    src_now = str(meta.get("source") or "")
    if not src_was or not src_now:
        return None
    if not Path(src_was).is_absolute():  # relative to a folder not known: by its name only
        same = Path(src_was).name == Path(src_now).name
    else:
        same = _layers._resolved(src_was) == _layers._resolved(src_now)
    return None if same else f"{src_was} (these labels lie on {src_now})"


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system of ``folder`` (or its first existing
    ancestor) takes; 255 where it cannot be asked."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows)
        return 255


def _safe_name(name: str) -> str:
    from ..fileio import safe_name

    return safe_name(name)
