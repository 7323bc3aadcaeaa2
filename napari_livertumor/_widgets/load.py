"""Load widget: a DICOM series (picked from the folder's list), a NIfTI CT, or the sample CT,
with an optional ground-truth label map (DICOM SEG or NIfTI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..errors import InputError
from ..progress import Reporter
from . import _layers
from ._common import (
    JobWidgetMixin,
    StatusLabel,
    follow_layer_list,
    is_light_theme,
    mark_result_of,
    notify_error,
    say_if_result_removed,
    scroll_panel,
    set_status,
)
from ._common import path_text as user_path

if TYPE_CHECKING:
    import napari

SOURCES = ("DICOM folder", "NIfTI file", "Sample (synthetic CT)")

#: a path field while a load runs (read-only, keeping the keyboard focus): greyed text on the
#: dark and the light theme (contrast about 4.5:1 on napari's panels), by is_light_theme
_LOCKED_FIELD_STYLE = {False: "color: #8f949c;", True: "color: #666666;"}


#: how the row proposed says why: of a series stacking passes, the reader's own warning
_PROPOSED = "Proposed, as the command line reads this folder"


def _source_for(source: str, path_text: str) -> str:
    """The source ``path_text`` is: a NIfTI file named under *DICOM folder* is read as a NIfTI
    file, a folder named under *NIfTI file* as a DICOM folder; otherwise ``source``."""
    if source == SOURCES[2] or not path_text:
        return source
    path = Path(path_text)
    try:
        if (
            source == SOURCES[0]
            and path.is_file()
            and path.name.lower().endswith((".nii", ".nii.gz"))
        ):
            return SOURCES[1]
        if source == SOURCES[1] and path.is_dir():
            return SOURCES[0]
    except OSError:  # inside a folder that cannot be entered: said by Load and Find series
        pass
    return source


def _unreachable(path: Path) -> str | None:
    """What keeps ``path`` from being looked at, "permission denied" when it lies in a folder
    that cannot be entered (Python raises there: the panel raised with it, and said nothing);
    else None."""
    try:
        path.exists()
    except OSError as exc:
        from ..io.dicom import os_problem

        return os_problem(exc)
    return None


#: how a ground truth loaded along with its scan (the SEG drawn on it) is said
AUTO_TRUTH = "ground truth: "
#: the reader's note of the folder's other series (see ``io.dicom``)
OTHERS_NOT_READ = "other series in the folder not read"


def _refuse_nifti_folder(folder: Path) -> None:
    """Raise what ``folder`` is when it holds NIfTI files (and no DICOM): Load was given it as
    a DICOM folder (its "no DICOM files found" said nothing of what to do)."""
    from .._reader import _nifti_files_in

    try:
        found = _nifti_files_in(folder) if folder.is_dir() else []
    except OSError:  # (the reader says what keeps it out)
        return
    if not found:
        return
    shown = ", ".join(str(p.relative_to(folder)) for p in found[:3])
    more = " …" if len(found) > 3 else ""
    raise InputError(
        folder,
        f"a folder of NIfTI files ({shown}{more}), not a DICOM series: choose Source "
        "'NIfTI file' and one of the files (a label map of it, if any, as the ground truth)",
    )


class LoadWidget(JobWidgetMixin, QWidget):
    """Open a CT as a layer in mm, with the abdomen window and its geometry in the metadata."""

    # (not the window: it shows the viewer's)
    REMEMBERED_FIELDS = ("source", "path", "seed", "truth_path")

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        self._series: list = []

        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.path = QLineEdit()
        self.path.setPlaceholderText("DICOM folder or .nii/.nii.gz file")
        self.browse = QPushButton("Browse…")
        self.scan_button = QPushButton("Find series")
        self.seed = QSpinBox()
        self.seed.setRange(0, 10_000)
        self.seed.setValue(7)  # the napari sample's seed
        self.series_table = QTableWidget(0, 4)
        self.series_table.setAccessibleName("Series found")  # (a screen reader: no label)
        # the slice thickness only (the whole spacing is in each row's tooltip): the series'
        # number and description need the width, and were cut to "LIVER …" in a docked panel
        self.series_table.setHorizontalHeaderLabels(["Series", "Slices", "mm", "Phase"])
        self.series_table.horizontalHeaderItem(2).setToolTip("slice spacing, mm")
        # a long name wraps onto a second line rather than being cut to "HCC_001: …"
        self.series_table.setWordWrap(True)
        self.series_table.setSelectionBehavior(QTableWidget.SelectRows)
        self.series_table.setSelectionMode(QTableWidget.SingleSelection)
        self.series_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.series_table.setTabKeyNavigation(False)  # Tab goes on to Load, not cell to cell
        self.series_table.verticalHeader().setVisible(False)
        header = self.series_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)  # long descriptions wrap
        # refitted once the resize is done: in the header's signal the column still had its
        # old width (a dock narrowed at once from 700 to 330 px left rows shortened for 700
        # px, their pass hidden below them); one fit for a drag's many resizes, and none
        # after the panel is gone (the timer goes with it)
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._fit_rows)
        header.sectionResized.connect(self._column_resized)
        self.series_table.setMinimumHeight(110)
        self.truth_path = QLineEdit()
        self.truth_path.setPlaceholderText("optional")
        self.truth_browse = QPushButton("Browse…")
        self.load_button = QPushButton("Load")
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(_layers.WINDOW_PRESETS))
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.status = StatusLabel()
        for widget, tip in (
            (
                self.source,
                "Where the CT comes from: a DICOM folder (any depth, several series "
                "allowed), one NIfTI file, or a synthetic phantom with its ground truth",
            ),
            (self.path, "The DICOM folder or the .nii/.nii.gz file to open"),
            (self.browse, "Pick the folder or file"),
            (
                self.scan_button,
                "List the image series in the folder (and a DICOM SEG found "
                "there, as ground truth); pick one in the table",
            ),
            (self.seed, "Which synthetic patient: each seed draws another anatomy and lesions"),
            (
                self.series_table,
                "The series found; the selected one is loaded. Hover a row for its details",
            ),
            (
                self.truth_path,
                "Optional reference labels on the same grid: a DICOM SEG (the file or its "
                "folder; found by Find series) or a NIfTI label map. Inspect scores against "
                "it. Not needed for the sample, which brings its own",
            ),
            (self.truth_browse, "Pick a DICOM SEG or NIfTI label file"),
            (self.load_button, "Open the CT (and ground truth) as layers in mm"),
            (
                self.window_combo,
                "HU window of the CT layer (abdomen / liver / bone / lung); the "
                "contrast limits can still be dragged in the layer controls",
            ),
        ):
            widget.setToolTip(tip)

        form = QFormLayout()
        form.addRow("Source", self.source)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(self.browse)
        form.addRow("Path", row)
        self._seed_label = QLabel("Sample seed")  # shown for the sample only
        form.addRow(self._seed_label, self.seed)
        row = QHBoxLayout()
        row.addWidget(self.truth_path)
        row.addWidget(self.truth_browse)
        form.addRow("Ground truth", row)
        layout = scroll_panel(self)
        layout.addLayout(form)
        layout.addWidget(self.scan_button)
        layout.addWidget(self.series_table)
        layout.addWidget(self.load_button)
        layout.addWidget(self.progress_bar)
        wform = QFormLayout()
        wform.addRow("HU window", self.window_combo)
        layout.addLayout(wform)
        layout.addWidget(self.status)
        layout.addStretch(1)

        #: the ground-truth path a scan filled in (cleared with the scan when the path changes;
        #: one the user typed is kept)
        self._auto_truth = ""
        #: the last scan's SEGs: (file, series it was drawn on, the images it references)
        self._segs: list[tuple[str, str | None, set]] = []
        self.source.currentIndexChanged.connect(self._source_changed)
        self.path.textChanged.connect(self._path_changed)
        self.browse.clicked.connect(self._browse)
        self.truth_browse.clicked.connect(self._browse_truth)
        self.scan_button.clicked.connect(self._scan_clicked)
        self.load_button.clicked.connect(self._load_clicked)
        self.path.returnPressed.connect(self._path_entered)
        self.truth_path.returnPressed.connect(self._path_entered)
        _layers.follow_window(self.window_combo, self.viewer)
        self.series_table.itemSelectionChanged.connect(self._follow_row)
        self._source_changed()
        self.init_jobs(napari_viewer)
        # "Loaded 'HCC_001 …'" read as current after that scan's layers were deleted
        follow_layer_list(self, self.viewer, self._layers_changed)
        self.restore_closed()  # a Load panel closed in this viewer: its paths, its load

    # ------------------------------------------------------------------ user actions
    def scan(self) -> None:
        """List the series under the DICOM folder (in a worker)."""
        text = user_path(self.path)
        if not text:  # Path("") is the folder napari started in: never scanned unasked
            set_status(self.status, "Choose a DICOM folder first.", error=True)
            return
        folder = Path(text)
        denied = _unreachable(folder)
        if denied:
            set_status(self.status, f"{folder}: {denied}", error=True)
            return
        if folder.is_file():  # a file of a series: its folder is what Load reads too
            folder = folder.parent
        if not folder.exists():
            set_status(self.status, f"{folder}: folder not found", error=True)
            return
        if not folder.is_dir():
            set_status(self.status, f"{folder}: not a folder", error=True)
            return

        if self._loading():  # (Find series is locked then; a script may still call this)
            set_status(
                self.status,
                "A scan is being loaded: use Find series when it is done.",
                warning=True,
            )
            return
        self.drop_job(self.scan_button)  # a scan under way (of this or another folder) gives way

        def target(progress, should_cancel):
            from ..io.dicom import discover_series, passes_brief, proposed_series
            from ..io.seg import seg_referenced_series
            from ..io.tcia import referenced_instances

            unreadable: list = []
            own: list = []
            seg_refs: set = set()
            series = discover_series(
                folder,
                reporter=Reporter(progress, should_cancel),
                unreadable=unreadable,
                own_segs=own,
                seg_refs=seg_refs,
            )
            # the row proposed is the series (and pass) `livertumor segment` reads from this
            # folder, asked of the reader: the first row was the earlier phase of a series
            # stacking two, and a batch run over the folder segmented the later one
            # (its row's tooltip holds the reader's reasoning, worded for the panel; the
            # status one line of it: the whole filled 16 lines of the dock, QA rev60)
            proposed, note = proposed_series(series, seg_refs, panel=True)
            brief = passes_brief(proposed, series, seg_refs) if proposed is not None else ""
            proposal = (proposed, note, brief)
            refs = {
                str(s.files[0]): seg_referenced_series(s.files[0])
                for s in series
                if getattr(s, "modality", "") == "SEG" and s.files
            }
            # the images each SEG references: which acquisition of a stacked series it is on
            instances = {}
            for seg_file in refs:
                try:
                    instances[seg_file] = referenced_instances(seg_file)[1]
                except InputError:
                    instances[seg_file] = set()
            # corrections this tool exported there (read here, off the GUI thread)
            reviewed = {f for f in refs if _seg_written_here(f)}
            return series, refs, instances, unreadable, folder, own, reviewed, proposal

        self.run_job(
            target,
            self._show_series,
            description="scanning",
            button=self.scan_button,
            busy_text=f"Scanning {folder.name}…",
            # a scan that ends while a load runs (started before it) leaves Find series locked
            on_finished=lambda _status: self._loading() and self.scan_button.setEnabled(False),
        )

    def load(self) -> None:
        """Load the chosen source (and ground truth) into layers, in a worker."""
        path_text = user_path(self.path)
        source = _source_for(self.source.currentText(), path_text)
        if source != self.source.currentText():  # a NIfTI file given as the DICOM folder...
            self.source.setCurrentText(source)  # (it was refused as "not a DICOM file")
        # the sample brings its own ground truth (the field is greyed out for it)
        truth_text = "" if source == SOURCES[2] else user_path(self.truth_path)
        # a series row is a DICOM folder's (a scout chosen there blocked loading the sample)
        chosen = self.selected_series() if source == SOURCES[0] else None
        if chosen is not None and chosen.n_slices == 1:
            # a scout (topogram) read as a "volume" of one coronal image: 96 slices, 1 thick
            set_status(
                self.status,
                f"{chosen.label} is a single image (a scout or localizer?), not a CT volume: "
                "choose the axial series.",
                error=True,
            )
            return
        series_uid = chosen.uid if chosen is not None else None
        # a series stacking phases is listed once per acquisition: the row's own is read (a
        # pass by its number, "pass 2": a bare 2 is refused where it is also another pass's
        # AcquisitionNumber)
        acquisition = (
            (
                f"pass {chosen.acquisition}"
                if chosen.passes_by
                # (parts of one scan joined at their seams, passes within them beside it)
                else "+".join(map(str, chosen.joined))
                if getattr(chosen, "joined", ())
                # (slices with no AcquisitionNumber beside numbered ones: the default was read)
                else "none"
                if getattr(chosen, "unnumbered", False)
                else chosen.acquisition
            )
            if chosen is not None and sum(s.uid == chosen.uid for s in self._series) > 1
            else None
        )
        # Find series was run (its ground-truth choice, even an emptied field, is the user's)
        scanned = bool(self._series)
        seed = self.seed.value()
        if source != SOURCES[2] and not path_text:
            set_status(self.status, "Choose a file or folder first.", error=True)
            return
        denied = None if source == SOURCES[2] else _unreachable(Path(path_text))
        if denied:
            set_status(self.status, f"{path_text}: {denied}", error=True)
            return

        def target(progress, should_cancel):
            reporter = Reporter(progress, should_cancel)
            truth = None
            if source == SOURCES[2]:
                volume, truth = _load_sample(seed)
            elif source == SOURCES[0]:
                from ..io.dicom import read_dicom_series

                try:
                    volume = read_dicom_series(
                        path_text, series_uid, acquisition=acquisition, reporter=reporter
                    )
                except InputError as exc:
                    if "no DICOM files found" in exc.problem:
                        _refuse_nifti_folder(Path(path_text))  # what it is instead, if so
                    raise
            else:
                from ..io.nifti import read_nifti

                volume = read_nifti(path_text, reporter=reporter)
            from ..pipeline import check_volume

            # what no CT can be is refused here (an absurd spacing also breaks the viewer's
            # slider); what only looks off is said beside the loaded scan
            notes = check_volume(volume, for_models=False)
            modality = str(volume.meta.get("modality") or "CT").upper()
            if modality != "CT":  # opens to look at; said before Segment refuses it
                notes.insert(
                    0,
                    f"the scan is {modality}, not CT: the models are trained on CT in Hounsfield "
                    "units, so Segment will refuse it",
                )
            truth_problem = None
            found = list(volume.meta.get("seg_files") or ()) if not scanned else []
            if not truth_text and found:
                # loaded without Find series: the DICOM SEG drawn on this series comes too, as
                # File > Open brings it (it came only after Find series filled it in)
                try:
                    truth = _read_truth(Path(found[0]), volume, notes)
                    notes.append(
                        f"{AUTO_TRUTH}{Path(found[0]).name}, the DICOM SEG drawn on this "
                        "series in its folder"
                    )
                except InputError as exc:
                    truth_problem = str(exc)
            elif not truth_text and not scanned and volume.meta.get("other_seg_files"):
                others = [Path(f).name for f in volume.meta["other_seg_files"]]
                notes.append(
                    f"the DICOM SEG in the folder ({', '.join(others[:3])}) is drawn on another "
                    "series than this one (missing from the folder?): no ground truth loaded; "
                    "Find series lists the series"
                )
            elif truth_text:
                try:
                    truth = _read_truth(Path(truth_text), volume, notes)
                except InputError as exc:  # the scan still opens; the problem is said beside it
                    truth_problem = str(exc)
            # shown as DICOM would be (a RAS NIfTI is otherwise mirrored); exports go back to
            # the file's own voxel order
            shown = volume.displayed()
            turn = shown.meta.get("stored_turn")
            if turn is not None and truth is not None:
                truth = turn.apply(truth)
            return shown, truth, truth_problem, notes, chosen is not None

        # what the load was started with stays as it was until it ends (a source changed
        # under it showed "Sample" beside the DICOM scan it loaded; a scan ran beside it)
        self._lock_inputs(True)
        job = self.run_job(
            target,
            self._show_volume,
            description="loading",
            button=self.load_button,
            busy_text="Loading…",
            on_finished=lambda _status: self._lock_inputs(False),
        )
        if job is None:
            self._lock_inputs(False)

    def panel_closed(self) -> None:
        # the load closing the panel stopped never reports its end here: the inputs it locked
        # are free again (they stayed greyed out when the panel was docked anew)
        self._lock_inputs(False)

    def _wound_down(self, timer) -> None:
        super()._wound_down(timer)
        # a scan the panel's closing stopped, ending while a load started since runs: its
        # button stays locked with the load's other inputs
        if self._loading() and not self._winding_jobs():
            self.scan_button.setEnabled(False)

    def _loading(self) -> bool:
        job = self.jobs.get(self.load_button)
        return job is not None and job.running

    def _lock_inputs(self, locked: bool) -> None:
        """Disable (or enable again) the source, seed, series list, Browse… and Find series;
        the path fields are made read-only. Disabled, the field holding the keyboard focus
        (Enter there starts the load) handed it on to the next control, the Load button now
        reading Cancel: a second Enter cancelled the load. Read-only, it keeps the focus, and
        Enter there while the load runs does nothing (:meth:`_path_entered`)."""
        try:
            self.source.setEnabled(not locked)
            self.series_table.setEnabled(not locked)
            scanning = (
                self.scan_button in self.jobs and self.jobs[self.scan_button].running
            ) or self.scan_button in self._winding_jobs()  # (a scan the panel's closing stops)
            if not scanning:  # (a scan under way keeps its Cancel)
                self.scan_button.setEnabled(not locked)
            for field in (self.path, self.truth_path):
                field.setReadOnly(locked)
                # shown locked too: read-only, the field looked as editable as ever, typing
                # in it silently doing nothing (QA gui59)
                field.setStyleSheet(_LOCKED_FIELD_STYLE[is_light_theme(self)] if locked else "")
                if locked:
                    field.setProperty("_tooltip_unlocked", field.toolTip())
                    field.setToolTip("Locked while the scan loads (Cancel stops the load)")
                elif field.property("_tooltip_unlocked") is not None:
                    field.setToolTip(field.property("_tooltip_unlocked"))
                    field.setProperty("_tooltip_unlocked", None)
            if locked:
                for w in (self.browse, self.truth_browse, self.seed):
                    w.setEnabled(False)
            else:
                self._source_changed()  # each as the source has it
        except RuntimeError:  # the panel is being deleted
            pass

    def selected_series(self):
        """The chosen row's series (:class:`~napari_livertumor.io.dicom.SeriesInfo`), or None."""
        rows = self.series_table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self._series):
            return self._series[rows[0].row()]
        return None

    def selected_series_uid(self) -> str | None:
        chosen = self.selected_series()
        return chosen.uid if chosen is not None else None

    # ------------------------------------------------------------------ results
    def _show_series(self, found) -> None:
        import html

        from ..io.dicom import (  # (read by the scan that found them)
            SHORT_SERIES,
            _skipped_text,
            printable,
            series_folder,
        )

        found = found if isinstance(found, tuple) else (found,)
        # (series, SEG references, their images, unreadable files, the folder): a scan's
        series, refs, instances, unreadable_files, folder, own_segs, reviewed, proposal = (
            *found,
            *(None, {}, {}, [], None, [], set(), (None, "", ""))[len(found) :],
        )
        # (the series the reader takes unasked; of a series stacking passes, which and why:
        # the reader's reasoning, and in one line)
        proposed, proposed_note, proposed_brief = (*proposal, "")[:3]
        self._series = [s for s in series if getattr(s, "is_image", True)]
        listed = {s.uid for s in self._series}
        all_segs = [s for s in series if getattr(s, "modality", "") == "SEG"]
        # only a SEG drawn on a series listed here (another patient's SEG in the folder is not)
        segs = [s for s in all_segs if refs.get(str(s.files[0]), None) in listed or not refs]
        # the dataset's own SEG before a correction this tool exported into the study folder
        # (taken first, by its path, and scored against as the ground truth unsaid)
        ours = {id(s) for s in segs if str(s.files[0]) in reviewed}
        segs.sort(key=lambda s: id(s) in ours)
        foreign = len(all_segs) - len(segs)
        self._segs = [
            (str(s.files[0]), refs.get(str(s.files[0])), instances.get(str(s.files[0])) or set())
            for s in segs
        ]
        table = self.series_table
        table.blockSignals(True)  # the rows are filled first; the selection below follows
        table.setRowCount(len(self._series))
        patients = sorted({getattr(s, "patient_id", "") for s in self._series})
        # a patient's baseline and follow-up: each row's study date (their rows differed only
        # in slice thickness and phase)
        days: dict[str, set] = {}  # each patient's study dates (two patients' differ anyway)
        for s in self._series:
            pid = str(getattr(s, "patient_id", "") or "")
            days.setdefault(pid, set()).add(str(getattr(s, "study_date", "") or ""))
        stacked = Counter(s.uid for s in self._series)
        self._noted_rows = set()
        # of a row with words after its description (which pass, a note): the row's text in
        # three parts, the description shortened to fit (`_fit_rows`) where the row's lines
        # would cut off those words ("(pass 2, kernel B30f)" of two passes behind a long
        # SeriesDescription: the rows read the same)
        self._row_parts = {}
        self._pass_rows = set()  # (rows of passes: their name is the same, their pass not)
        for r, s in enumerate(self._series):
            # one image has no slice spacing (a scout's was its neighbours'): blank
            thickness = "" if s.n_slices == 1 else f"{s.spacing[0]:.3g}" if s.spacing else "?"
            # (3D-IRCADb's scan and masks have none: their folders tell them apart)
            where = series_folder(s) if getattr(s, "files", None) else ""
            name = s.description or (f"(no description) {where}" if where else "(no description)")
            head = tail = ""  # (what goes before and after the description)
            number = getattr(s, "series_number", None)
            if number is not None:  # as a PACS viewer lists series: by number, then name
                head = f"#{number} "
            if stacked[s.uid] > 1:  # one row per acquisition of a series stacking several
                tail += f" ({getattr(s, 'acquisition_label', '') or f'acq {s.acquisition}'})"
                self._noted_rows.add(r)  # a 3rd line: the description cut less to show it
                self._pass_rows.add(r)
            date = str(getattr(s, "study_date", "") or "")
            date = f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else date
            if len(days.get(str(getattr(s, "patient_id", "") or ""), ())) > 1:  # several days
                head = f"{date or 'no date'} {head}"
            if len(patients) > 1:  # rows of two patients can look the same
                head = f"{s.patient_id or '?'}: {head}"
            if 0 < s.n_slices < SHORT_SERIES:  # a scout (AP, lateral), a bolus tracking
                tail += (
                    " — one image: a scout, not a volume?"
                    if s.n_slices == 1
                    else f" — only {s.n_slices} images (a scout or monitoring series?)"
                )
            # Slices counts what Load stacks: the rest said (in few words: the seam's whole
            # note cut the description to "…"; the tooltip says it in full)
            left_out = getattr(s, "left_out_brief", getattr(s, "left_out_note", ""))
            if left_out:
                tail += f" — +{left_out} left out"
            refusal = getattr(s, "refusal", "")
            if refusal:  # first, as the modality: Load will refuse it (the tooltip says why)
                head = f"[cannot be read] {head}"
            if s.modality != "CT":  # first: a narrow column cut it off at the end
                head = f"[{s.modality}] {head}"
            if refusal or left_out:  # its note at the end: a 3rd line
                self._noted_rows.add(r)
            desc = head + name + tail
            if tail:
                self._row_parts[r] = (head, name, tail)
            tip = s.summary() if hasattr(s, "summary") else desc
            if refusal:
                tip = f"{tip}\nLoad refuses it: {printable(refusal)}"
            if getattr(s, "patient_id", ""):
                tip = f"patient {printable(s.patient_id)}: {tip}"
            if s is proposed and proposed_note:  # why this pass is the one proposed
                tip = f"{tip}\n{_PROPOSED}: {proposed_note}"
            # Qt shows a tooltip that looks like HTML as rich text: a description "<img
            # src=...>" or "<b>" drew an image or bold, not the text the header holds. Escaped,
            # and said to be rich text (else "&amp;" showed as typed; spaces kept), it shows
            # as written
            tip = f'<qt><p style="white-space:pre-wrap">{html.escape(tip, quote=False)}</p></qt>'
            # a contrast phase is a CT's: of an MR or US, none is claimed
            phase = (s.phase or "?") if s.modality in ("CT", "") else "—"
            for c, text in enumerate([desc, str(s.n_slices), thickness, phase]):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                table.setItem(r, c, item)
        table.blockSignals(False)
        self._fit_rows()
        own_choice = self.truth_path.text().strip() not in ("", self._auto_truth)
        if self._series:
            # the series (and pass) the reader takes unasked: the one a DICOM SEG here was drawn
            # on (the contrast series of an HCC-TACE-Seg study, not the derived recon with
            # more slices), else an axial, original one with most slices; of a series stacking
            # passes the smoother kernel, then the later phase
            rows = [r for r, s in enumerate(self._series) if s is proposed]
            drawn_on = refs.get(str(segs[0].files[0])) if segs else None
            if segs and not instances.get(str(segs[0].files[0])) and proposed is not None:
                # a SEG naming its series but none of its images (the reader cannot tell
                # which it was drawn on): its series, as before, the ground truth with it
                rows = [r for r, s in enumerate(self._series) if s.uid == drawn_on] or rows
            table.selectRow((rows or [0])[0])  # the ground truth follows the row
        self._follow_row()
        msg = f"{len(self._series)} image series found"
        if segs and own_choice:
            msg += f"; {len(segs)} DICOM SEG found (the ground truth you chose is kept)"
        elif segs:
            msg += f"; ground truth: {len(segs)} DICOM SEG (the chosen row's is filled in above"
            if ours and len(ours) < len(segs):
                msg += (
                    f"; {len(ours)} corrected with this tool come after the others: Browse "
                    "to score against one"
                )
            msg += ")"
        if foreign:
            msg += f"; {foreign} DICOM SEG drawn on a series that is not here (not used)"
        chosen = self.selected_series()
        if proposed_note and chosen is proposed:  # (the reason, as `livertumor segment` says it)
            # one line a radiologist reads at a glance; the row's tooltip says the rest
            msg += f"\n{_PROPOSED}: {proposed_brief or proposed_note}. More in its row's tooltip."
        if len(patients) > 1:
            msg = (
                f"⚠ these series belong to {len(patients)} patients "
                f"({', '.join(p or '?' for p in patients)}): keep one patient per folder, or "
                "check which row you load\n" + msg
            )
        if unreadable_files:  # files named or made like DICOM that could not be read: as Load says
            msg += f"\n⚠ {_skipped_text(unreadable_files)}"
        own_note = _own_segs_note(own_segs, folder)
        if own_note:  # left out of the ground truth without a word, they looked lost
            msg += f"\n{own_note}"
        unread = [s for s in series if not getattr(s, "is_image", True) and s.modality != "SEG"]
        where = f" in {folder}" if folder is not None else " here"
        nifti = ""
        if not self._series and not all_segs and folder is not None:
            try:
                _refuse_nifti_folder(Path(folder))
            except InputError as exc:  # a folder of NIfTI files: what to choose instead
                nifti = f" It is {exc.problem}."
        empty = (
            f"No DICOM image series found{where}.{nifti}"
            + (f" {_skipped_text(unreadable_files)}." if unreadable_files else "")
            + (
                f" It holds {len(all_segs)} DICOM SEG(s), segmentations drawn on a CT: choose the "
                "folder holding that CT (the study's or the patient's)."
                if all_segs
                else ""
            )
            + (f" {own_note}" if own_note else "")
            # an Enhanced CT, images stripped of their position: said as Load says them
            + "".join(f"\n{s.summary()}" for s in unread[:3])
            + (f"\n… and {len(unread) - 3} more" if len(unread) > 3 else "")
        )
        set_status(
            self.status,
            msg if self._series else empty,
            warning=len(patients) > 1 or bool(unreadable_files) or not self._series,
        )

    def _show_volume(self, loaded) -> None:
        volume, truth, truth_problem, notes, explicit = loaded
        already = [
            ly.name
            for ly in _layers.ct_layers(self.viewer)
            if _same_scan(ly.metadata.get(_layers.CT_VOLUME), volume)
        ]
        name = _layers.ct_layer_name(self.viewer, volume)
        layer = _layers.add_ct_layer(self.viewer, volume, name=name)
        if str(volume.meta.get("modality") or "CT").upper() == "CT":
            _layers.set_window(layer, self.window_combo.currentText())
        else:  # an MR's or US's values are no HU: a HU window showed it black or white
            _auto_contrast(layer)
        if truth is not None:
            _layers.add_labels_layer(
                self.viewer,
                truth,
                volume,
                _layers.unique_name(self.viewer, _layers.labels_name(name, "ground truth", volume)),
                role="ground_truth",
                ct_layer_name=name,
                opacity=0.4,
            )
        self.viewer.layers.selection.active = layer
        _layers.show_layer_centre(self.viewer, layer)  # the new scan, not the previous one's
        from ..io.volume import spacing_text

        msg = f"Loaded '{name}': {volume.shape[0]} slices, {spacing_text(volume.spacing)}"
        # the SEG brought along is news, not a doubt about the scan (it came first, in amber)
        infos = [w[0].upper() + w[1:] for w in notes if w.startswith(AUTO_TRUTH)]
        notes = [w for w in notes if not w.startswith(AUTO_TRUTH)]
        if notes:  # what makes the scan doubtful comes first
            msg = "\n".join(f"⚠ {w}" for w in notes) + "\n" + msg
        msg += "".join(f"\n{w}." for w in infos)
        read_notes = [
            w
            for w in volume.meta.get("warnings", []) or []
            # the series a row chose: the others "not read" are the user's own choice
            if not (explicit and OTHERS_NOT_READ in w)
        ]
        if explicit:  # nor a warning of Segment's and the exported stats (which said the
            # reader picked the series "the one its DICOM SEG references")
            volume.meta["warnings"] = list(read_notes)
        # of a series stacking passes, one line: the reader's whole warning, its CLI flags
        # (`--acquisition 3`) and "(removed by an anonymiser?)", filled the dock after Load as
        # it did after Find series (QA rev60); Find series' proposed row holds the reasoning
        stacked = volume.meta.get("passes_warning") or None
        where = (
            "the proposed row's tooltip" if explicit else "Find series, the proposed row's tooltip"
        )
        for w in read_notes:
            if w == stacked and volume.meta.get("passes_line"):
                w = f"{volume.meta['passes_line']} (why: {where})"
            msg += f"\n⚠ {w}"
        if already:  # a second copy is allowed (to compare settings), but never unsaid
            msg += f"\nThis scan was already open as '{already[0]}': this is a second copy."
        if truth is not None:
            seg = _layers.palette_color_names()
            msg += (
                f"\nThe ground truth is outlined in its own colours: "
                f"{_layers.truth_colors_text((1, 2))} (a segmentation's are {seg[1]} and "
                f"{seg[2]})."
            )
        if truth_problem:
            msg += f"\nThe ground truth was not loaded: {truth_problem}"
        set_status(  # (read_notes: what the reader left out or found odd)
            self.status, msg, error=bool(truth_problem), warning=bool(notes) or bool(read_notes)
        )
        mark_result_of(self, layer)

    def _fit_rows(self, *_) -> None:
        """Each row as tall as its wrapped series name, at most two lines, three for a row
        with a note at its end (slices left out: at the dock's width the note was cut) or one
        pass of a series stacking several. Where the words after the description (the pass,
        the note) would still be cut, the description is shortened ("Abdomen 3.0 B30f
        portal…") for them to show whole; the tooltip holds it in full."""
        try:
            table = self.series_table
            line = table.fontMetrics().lineSpacing()
            for r, parts in getattr(self, "_row_parts", {}).items():
                if r < table.rowCount() and table.item(r, 0) is not None:
                    table.item(r, 0).setText("".join(parts))  # whole, as the column widens
            table.resizeRowsToContents()
            noted = getattr(self, "_noted_rows", set())
            for r in range(table.rowCount()):
                most = (3 if r in noted else 2) * line + 8
                if table.rowHeight(r) > most and r in getattr(self, "_row_parts", {}):
                    self._shorten_description(r, most)
                table.setRowHeight(r, min(table.rowHeight(r), most))
        except RuntimeError:  # the panel is being deleted
            pass

    def _shorten_description(self, r: int, most: int) -> None:
        """Row ``r``'s description cut to the most of it that leaves the words after it
        within ``most`` pixels of height. Where even none of it would, a pass's row shows as
        much of its pass as fits ("…"), any other row its description as it was."""
        table, (head, name, tail) = self.series_table, self._row_parts[r]
        item = table.item(r, 0)

        def fits(kept: int) -> bool:
            item.setText(f"{head}{name[:kept].rstrip()}…{tail}")
            return table.sizeHintForRow(r) <= most

        low, high = 0, len(name) - 1  # the longest start of the name that fits
        if not fits(low):
            if r not in self._pass_rows:
                item.setText(head + name + tail)
            return
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        fits(low)
        table.setRowHeight(r, table.sizeHintForRow(r))

    # ------------------------------------------------------------------ small slots
    def _column_resized(self, column: int, *_) -> None:
        if column == 0:  # (the description's; the others fit their text)
            try:
                self._refit.start()
            except RuntimeError:  # the panel is being deleted
                pass

    def _layers_changed(self, *_) -> None:
        say_if_result_removed(self)

    def _load_clicked(self) -> None:
        if not self.cancel_if_running(self.load_button):
            self.load()

    def _scan_clicked(self) -> None:
        if not self.cancel_if_running(self.scan_button):
            self.scan()

    def _path_entered(self) -> None:
        """Enter in a path field does the next step: a DICOM folder not listed yet is
        scanned, anything else loaded (never a Cancel of a job under way)."""
        if self.busy:
            return
        # as Load reads it: a .nii.gz typed with "DICOM folder" chosen is a NIfTI (its folder
        # was scanned for DICOM series instead)
        source = _source_for(self.source.currentText(), user_path(self.path))
        if source == SOURCES[0] and not self._series:
            self.scan()
        else:
            self.load()

    def _path_changed(self, *_) -> None:
        """A new path: the last scan's series (and the SEG it filled in) no longer apply, and
        a scan under way is of a folder no longer named: stopped, its result dropped."""
        if self.scan_button in self.jobs and self.jobs[self.scan_button].running:
            self.drop_job(self.scan_button)
            set_status(self.status, "")
        self._segs = []
        if self._series or self.series_table.rowCount():
            self._series = []
            self.series_table.setRowCount(0)
        if self._auto_truth and self.truth_path.text().strip() == self._auto_truth:
            self.truth_path.clear()
        self._auto_truth = ""

    def _follow_row(self) -> None:
        """The ground truth filled in follows the chosen series: the scan's SEG drawn on it
        (on the chosen acquisition of a series stacking several), else none. One the user
        typed or browsed to is kept."""
        if self.truth_path.text().strip() not in ("", self._auto_truth):
            return
        chosen = self.selected_series()
        found = ""
        if chosen is not None:
            on_it = [(f, images) for f, uid, images in self._segs if uid == chosen.uid]
            mine = set(getattr(chosen, "sop_instance_uids", ()) or ())
            # a SEG naming its images belongs to the acquisition holding them (of a series
            # stacking two phases, the other phase got it and failed to load); one naming none
            # (or a series without image UIDs) is taken as the series'
            found = next((f for f, images in on_it if images & mine), "") or next(
                (f for f, images in on_it if not images or not mine), ""
            )
        elif len(self._segs) == 1:  # nothing chosen (a series list that failed): the only one
            found = self._segs[0][0]
        self._auto_truth = found
        if self.truth_path.text() != found:
            self.truth_path.setText(found)

    def _source_changed(self) -> None:
        src = self.source.currentText()
        is_dicom, is_sample = src == SOURCES[0], src == SOURCES[2]
        self.path.setEnabled(not is_sample)
        self.path.setPlaceholderText(
            "DICOM folder" if is_dicom else "not needed" if is_sample else ".nii or .nii.gz CT file"
        )
        self.browse.setEnabled(not is_sample)
        self.scan_button.setVisible(is_dicom)
        self.series_table.setVisible(is_dicom)
        self.seed.setEnabled(is_sample)
        self.seed.setVisible(is_sample)
        self._seed_label.setVisible(is_sample)
        # the sample brings its own ground truth
        self.truth_path.setEnabled(not is_sample)
        self.truth_browse.setEnabled(not is_sample)
        # (short: a docked panel is about 350 px wide; the tooltip says the rest)
        self.truth_path.setPlaceholderText("not needed" if is_sample else "optional")

    def _browse(self) -> None:
        if self.source.currentText() == SOURCES[0]:
            path = QFileDialog.getExistingDirectory(self, "DICOM folder")
            if path:
                self.path.setText(path)
                self.scan()
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "NIfTI CT", filter="NIfTI (*.nii *.nii.gz);;All files (*)"
            )
            if path:
                self.path.setText(path)

    def _browse_truth(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Ground truth", filter="DICOM SEG or NIfTI (*.dcm *.nii *.nii.gz);;All files (*)"
        )
        if path:
            self.truth_path.setText(path)


def _load_sample(seed: int):
    """The synthetic sample CT (as napari's File > Open Sample gives it) and its ground truth."""
    try:
        from .._sample_data import make_sample_ct
    except ImportError as exc:
        raise RuntimeError(
            "the synthetic sample is not available yet (napari_livertumor._sample_data is missing)"
        ) from exc
    (_, ct_kwargs, _), (truth, _, _) = make_sample_ct(seed)
    volume = ct_kwargs["metadata"][_layers.CT_VOLUME]
    volume.meta.setdefault("description", f"synthetic CT (seed {seed})")
    return volume, np.asarray(truth, dtype=np.uint8)


def _auto_contrast(layer) -> None:
    """Contrast limits from the data's values (its 0.5th and 99.5th percentiles, over a sample
    of the voxels), for a scan whose values are no HU."""
    from .._reader import value_contrast_limits

    low, high = value_contrast_limits(layer.data)
    rng = layer.contrast_limits_range
    layer.contrast_limits_range = (min(rng[0], low), max(rng[1], high))
    layer.contrast_limits = (low, high)


def _seg_written_here(path) -> bool:
    """Whether the DICOM SEG at ``path`` is a correction exported with this tool (its unedited
    ones are no ground truth and not listed at all): after the dataset's own."""
    import pydicom

    from ..io.dicom import refuse_deflate_bomb
    from ..io.tcia import reviewed_with_this_tool

    try:
        # (the scan refused a zip bomb, but the file may have been replaced since)
        refuse_deflate_bomb(path)
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["Manufacturer", "SegmentSequence"]
        )
    except Exception:  # noqa: BLE001 - unreadable now: as any other SEG
        return False
    return reviewed_with_this_tool(ds)


def _own_segs_note(own_segs: list, folder) -> str:
    """What Find series says of the segmentations this tool made in the folder ("" for none):
    not a ground truth, so left out of it; File > Open shows one over its CT."""
    if not own_segs:
        return ""
    first = Path(own_segs[0])
    try:
        first = first.relative_to(folder) if folder is not None else Path(first.name)
    except ValueError:
        first = Path(first.name)
    n = len(own_segs)
    return (
        f"{'A segmentation' if n == 1 else f'{n} segmentations'} this tool made "
        f"{'lies' if n == 1 else 'lie'} in the folder ({first}{', …' if n > 1 else ''}): not "
        "a ground truth; File > Open shows it over its CT."
    )


def _same_scan(a, b) -> bool:
    """Two volumes read from the same series (and acquisition), or the same file."""
    if a is None or b is None:
        return False
    ma, mb = getattr(a, "meta", {}) or {}, getattr(b, "meta", {}) or {}
    if ma.get("series_uid") or mb.get("series_uid"):
        keys = ("series_uid", "acquisition_number")
        return all(ma.get(k) == mb.get(k) for k in keys)
    # a sample is made, not read: every one has the same "source", and the seed (its patient
    # ID) tells them apart
    return (
        bool(ma.get("source"))
        and ma.get("source") == mb.get("source")
        and ma.get("patient_id") == mb.get("patient_id")
    )


def _read_truth(path, volume, notes: list | None = None):
    """A ground-truth label map on ``volume``'s grid from a DICOM SEG or NIfTI file; what the
    SEG reader has to say (another patient's SEG, segments not known, frames off the CT's
    slices) is appended to ``notes``."""
    from ..io.nifti import ground_truth_classes, is_nifti_path, read_nifti

    denied = _unreachable(path)
    if denied:  # (a folder on the way that cannot be entered raised, past the scan's word)
        raise InputError(path, denied)
    if not path.exists():
        raise InputError(path, "ground-truth file not found")
    if path.is_dir():  # an HCC-TACE-Seg SEG lives in a series folder of its own
        return _seg_in_folder(path, volume, notes)
    if is_nifti_path(path):
        # compared in the standard orientation: a label map may store its axes otherwise
        truth, _ = read_nifti(path).to_standard()
        ct, turn = volume.to_standard()
        if truth.shape != ct.shape:
            raise InputError(path, f"label map shape {truth.shape} ≠ CT shape {ct.shape}")
        if not ct.fits_labels(truth):
            from ..io.nifti import _corner_distance
            from ..io.volume import LABEL_GRID_MM

            apart = _corner_distance(truth.affine, ct.affine, ct.shape[::-1])
            raise InputError(
                path,
                f"label map is not on the CT's grid (their corners up to {apart:.2f} mm apart, "
                f"at most {LABEL_GRID_MM:g} mm: the header's affine differs): resample it onto "
                "the CT, or export it again from it",
            )
        return turn.undo(ground_truth_classes(path, truth))
    from ..io.seg import read_dicom_seg

    said: list[str] = []
    labels = read_dicom_seg(path, volume, warnings=said)
    if notes is not None:
        notes += [f"ground truth {path.name}: {n}" for n in said]
    return labels


def _seg_in_folder(folder, volume, notes: list | None = None):
    """The label map of the DICOM SEG in ``folder`` drawn on ``volume`` (the first that
    fits, of several)."""
    from ..errors import LiverTumorError
    from ..io.dicom import discover_series
    from ..io.seg import read_dicom_seg

    segs = [f for s in discover_series(folder) if s.modality == "SEG" for f in s.files]
    if not segs:
        raise InputError(
            folder, "is a folder with no DICOM SEG in it: choose the SEG (or NIfTI) file"
        )
    problems = []
    # the dataset's own before one this tool exported there (a reviewed correction)
    for seg in sorted(segs, key=lambda f: (_seg_written_here(f), str(f))):
        said: list[str] = []
        try:
            labels = read_dicom_seg(seg, volume, warnings=said)
        except LiverTumorError as exc:
            problems.append(str(exc))
            continue
        if notes is not None:
            notes += [f"ground truth {Path(seg).name}: {n}" for n in said]
        return labels
    raise InputError(
        folder,
        f"holds {len(segs)} DICOM SEG(s), none drawn on this CT ({problems[0]})",
    )


__all__ = ["LoadWidget", "notify_error"]
