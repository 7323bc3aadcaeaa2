"""Inspect widget: how the overlay looks, what the labels measure, and how they compare with
a ground truth (Dice, IoU, boundary distances per class)."""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor, QPalette
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from .._writer import labels_digest
from ..errors import Cancelled
from ..stats import diameter_shown
from . import _layers
from ._common import (
    HiddenNote,
    JobWidgetMixin,
    NameCombo,
    StatusLabel,
    _alive,
    clear_status_if,
    follow_font_size,
    follow_layer_list,
    scroll_into_view,
    scroll_panel,
    set_status,
)

if TYPE_CHECKING:
    import napari

NO_TRUTH = "(none)"
#: the status of a scan loaded beside another patient's labels, none of its own yet
NOT_YET_SEGMENTED = "No labels of"
#: Ground-truth HCC classes counted as each output class: the whole liver is liver + tumor +
#: portal vein (as the training targets define it); the tumor is the tumor mass.
TRUTH_CLASSES = {"liver": (1, 2, 3), "tumor": (2,)}
PRED_CLASSES = {"liver": (1, 2), "tumor": (2,)}


#: said after a jump in grid mode
_GRID_RING = (
    " Grid mode is on: each layer, the ring too, lies in a cell of its own; turn it off (the "
    "grid button, bottom left) to see the ring on the lesion."
)


class InspectWidget(JobWidgetMixin, QWidget):
    """Overlay controls, volumes, the lesion list (click to jump) and Dice/IoU."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        self.stats: dict | None = None
        self._measured_layer = None  # the layer self.stats describes
        self._measured_truth = None  # the ground truth self.scores were scored against
        self._measured_edits: tuple[int, int] | None = None  # their edit counts then
        self._marker = None  # the ring of the lesion last clicked (a points layer)
        self._segs_seen: set[int] = set()
        self._names_seen: dict[int, str] = {}  # labels layers' names (by id): renames followed
        self._watched = None
        # the amber "… is hidden" line of a Measure, kept true as eyes turn
        self._hidden_note = HiddenNote(self, "measured", "measure")
        self._edit_counts: dict[int, int] = {}  # edits seen per layer (id): stale figures
        self.scores: dict | None = None
        self._colors = _layers.palette_colors()

        self.labels_combo = NameCombo()
        self.truth_combo = NameCombo()
        self._truth_seen: set[str] = set()
        self._cts_seen: set[int] = {id(ly) for ly in _layers.ct_layers(napari_viewer)}
        self._unsegmented = None  # the scan the status says has no labels yet
        self._said_before_note = ""  # and what it said before
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(_layers.WINDOW_PRESETS))
        self.contour_check = QCheckBox("Contours only")
        self.palette_combo = QComboBox()
        self.palette_combo.addItems(list(_layers.PALETTES))
        self.palette_combo.setCurrentText(_layers.palette())
        seg_names, truth_names = _layers.COLOR_NAMES["standard"]
        safe_names, safe_truth_names = _layers.COLOR_NAMES["colour-blind safe"]
        self.palette_combo.setToolTip(
            f"Colours of every segmentation and ground truth, in every open viewer: standard "
            f"(liver {seg_names[1]}, tumor {seg_names[2]}; the truth's outlines "
            f"{truth_names[1]} and {truth_names[2]}), or colour-blind safe (liver "
            f"{safe_names[1]}, tumor {safe_names[2]}; the truth's {safe_truth_names[1]} and "
            f"{safe_truth_names[2]}), whose hues stay apart with red-green colour blindness. "
            "New layers take it too."
        )
        self.color_buttons = {}
        for value, name in ((1, "liver"), (2, "tumor")):
            btn = QPushButton(name)
            btn.clicked.connect(lambda _=False, v=value: self._pick_color(v))
            self.color_buttons[value] = btn
        self.measure_button = QPushButton("Measure")
        # the figures shown, for a spreadsheet or a report (a table's Ctrl+C copies it alone)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setEnabled(False)
        self.volume_table = _table(["Measure", "Value"])
        self.volume_table.setAccessibleName("Volumes")  # (a screen reader: no row label)
        # two-line headers: the table widens the panel to show every column, by less
        self.lesion_table = _table(
            [
                "#",
                "Volume\n(mL)",
                "Ø 3D\n(mm)",
                "Ø axial\n(mm)",
                "Slices\n(slider)",
                "Mean\nHU",
                "Δ liver\n(HU)",
                # last: of a DICOM CT only, and past the width of a docked panel the columns
                # after it were cut off (the liver contrast, with no header in sight)
                "Images",
            ]
        )
        self.lesion_table.horizontalHeaderItem(1).setToolTip(
            "The lesion's volume: a lesion is one connected part of the tumor label"
        )
        self.lesion_table.horizontalHeaderItem(2).setToolTip(
            "The longest distance across the lesion in 3D, in any direction, edge to edge: "
            "over pairs of its voxels, the largest distance between their centres plus one "
            "voxel's extent along it; longer than the axial diameter when the lesion is drawn "
            "out along the body's axis"
        )
        self.lesion_table.horizontalHeaderItem(3).setToolTip(
            "The longest diameter within one axial image, on the image where the lesion is "
            "widest, edge to edge: the RECIST measure"
        )
        self.lesion_table.horizontalHeaderItem(4).setToolTip(
            "The lesion's first and last slice, as napari's slice slider counts them (from the "
            "feet up as shown); lesions.csv's first_slice/last_slice count slices in the file's "
            "own order and can differ (a series stored head first, several CTs open)"
        )
        self.lesion_table.horizontalHeaderItem(IMAGES_COLUMN).setToolTip(
            "The DICOM image numbers (InstanceNumber) of its first and last slice, as a PACS "
            "viewer numbers the series' images (a CT read from DICOM only)"
        )
        self.lesion_table.setColumnHidden(IMAGES_COLUMN, True)
        self.lesion_table.setAccessibleName("Lesions")
        self.lesion_table.horizontalHeaderItem(5).setToolTip(
            "The lesion's mean attenuation on the CT, in HU"
        )
        self.lesion_table.horizontalHeaderItem(6).setToolTip(
            "The lesion's mean minus that of the liver 3–8 mm around it, in HU: negative when "
            "it is darker than the liver (hypo-attenuating), positive when brighter; near 0 it "
            "is hard to see on this phase (empty: a lesion of under 10 voxels, or too little "
            "liver around it)"
        )
        self.score_table = _table(
            ["Class", "Dice", "IoU", "HD95\n(mm)", "ASSD\n(mm)", f"NSD\n({NSD_MM:g} mm)"]
        )
        self.score_table.setAccessibleName("Scores against ground truth")
        self.score_table.horizontalHeaderItem(1).setToolTip(
            "Overlap with the ground truth, 0 to 1 (1: identical): twice the shared voxels "
            "over the sum of both masks' voxels"
        )
        self.score_table.horizontalHeaderItem(2).setToolTip(
            "Overlap with the ground truth, 0 to 1 (1: identical): the shared voxels over the "
            "voxels in either mask (Jaccard; always at most the Dice)"
        )
        self.score_table.horizontalHeaderItem(3).setToolTip(
            "Boundary distance to the ground truth's, in mm (0: the outlines coincide): 95 % "
            "of each outline's voxels lie within this distance of the other's (95th-percentile "
            "Hausdorff distance; a stray island far away raises it). Empty (—) when either has "
            "none of the class"
        )
        self.score_table.horizontalHeaderItem(4).setToolTip(
            "Mean boundary distance to the ground truth's, in mm, both ways (average symmetric "
            "surface distance). Empty (—) when either has none of the class"
        )
        self.score_table.horizontalHeaderItem(5).setToolTip(
            f"Surface Dice, 0 to 1: the share of both outlines' voxels within {NSD_MM:g} mm of "
            "the other outline (normalised surface Dice, as livertumor evaluate's nsd). 0 when "
            "either has none of the class"
        )
        self.score_table.setVisible(False)
        # with a ground truth: lesions found and false ones, as livertumor evaluate counts them
        self.detection_label = QLabel()
        self.detection_label.setWordWrap(True)
        self.detection_label.setVisible(False)
        self.status = StatusLabel()
        for widget, tip in (
            (
                self.labels_combo,
                "The labels layer to measure (0 background, 1 liver, 2 tumor); a ground truth "
                "is listed last and measured as liver (with its portal vein) and tumor",
            ),
            (
                self.truth_combo,
                "A loaded ground truth to score the labels against (Dice, IoU); it is drawn in "
                "its own colours (with the standard palette: "
                + ", ".join(
                    f"{_layers.CLASS_NAMES[c]} {truth_names[c]}" for c in _layers.CLASS_NAMES
                )
                + "; the colour-blind safe palette has its own)",
            ),
            (self.opacity, "Opacity of the labels layer over the CT"),
            (
                self.window_combo,
                "HU window of the CT layers (as Load CT's): 'liver' (W150/L60) shows low-contrast "
                "lesions best",
            ),
            (self.contour_check, "Draw the labels as outlines, to see the CT under them"),
            (
                self.measure_button,
                "Volumes, lesions (connected tumor parts) and, with a ground "
                "truth, Dice, IoU and boundary distances per class",
            ),
            (
                self.copy_button,
                "Copy the tables shown (volumes, lesions, scores) as tab-separated text with "
                "their headers, to paste into a spreadsheet",
            ),
            (
                self.lesion_table,
                "Click a lesion (or move to it with the arrow keys) to move the view to its "
                "centre slice",
            ),
        ):
            widget.setToolTip(tip)
        for btn in self.color_buttons.values():
            btn.setToolTip(f"Choose the {btn.text()} colour")

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        form.addRow("Ground truth", self.truth_combo)
        form.addRow("Opacity", self.opacity)
        form.addRow("HU window", self.window_combo)
        colors = QHBoxLayout()
        for btn in self.color_buttons.values():
            colors.addWidget(btn)
        form.addRow("Colours", colors)
        form.addRow("Palette", self.palette_combo)
        form.addRow("", self.contour_check)
        layout = scroll_panel(self)
        layout.addLayout(form)
        measure_row = QHBoxLayout()
        measure_row.addWidget(self.measure_button, 1)
        measure_row.addWidget(self.copy_button)
        layout.addLayout(measure_row)
        layout.addWidget(self.volume_table)
        lesions_title = QLabel("Lesions (click one, or use the arrow keys, to go to its slice)")
        lesions_title.setWordWrap(True)  # (a long line widened the panel)
        layout.addWidget(lesions_title)
        layout.addWidget(self.lesion_table)
        layout.addWidget(self.score_table)
        layout.addWidget(self.detection_label)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.opacity.valueChanged.connect(self._apply_style)
        _layers.follow_window(self.window_combo, self.viewer)
        self.contour_check.toggled.connect(self._apply_style)
        self.palette_combo.currentTextChanged.connect(self.set_palette)
        # chosen in another viewer's Inspect panel (or by code): this one shows it too
        _layers.on_palette_changed(self._palette_changed, self.viewer)
        self.labels_combo.currentTextChanged.connect(self._labels_changed)
        self.truth_combo.currentTextChanged.connect(self._truth_changed)
        self._hand_pick = None  # (labels, truth) the user chose together (weakly held)
        self._none_fitted = False  # (none) chosen here as no ground truth fits the labels
        self.truth_combo.activated.connect(self._truth_activated)
        self.measure_button.clicked.connect(self._measure_clicked)
        self.copy_button.clicked.connect(self.copy_results)
        figures = self.volume_table.model()
        for signal in (figures.rowsInserted, figures.rowsRemoved, figures.modelReset):
            signal.connect(self._update_copy_button)
        self.lesion_table.cellClicked.connect(lambda row, _col: self.go_to_lesion(row))
        # from the keyboard too: the arrow keys move the current row, Enter/Space activate it
        self.lesion_table.currentCellChanged.connect(self._lesion_row_changed)
        self.lesion_table.cellActivated.connect(lambda row, _col: self.go_to_lesion(row))
        follow_layer_list(self, self.viewer, self.refresh_layers)
        _layers.on_labels_edited(self._edited_elsewhere)
        me = weakref.ref(self)

        def grid_changed(*_) -> None:  # (a closed panel is not kept by the viewer)
            panel = me()
            if panel is not None:
                _alive(lambda p: p._grid_turned(), panel)

        _layers.grid_of(self.viewer).events.enabled.connect(grid_changed)
        self.init_jobs(napari_viewer)
        # napari's font size changed: the tables' rows and headers are another height, once
        # laid out in the new font (fitted only at Measure, Volumes scrolled and hid a row)
        follow_font_size(
            self, also=lambda: QTimer.singleShot(0, lambda: _alive(_refit_tables, self))
        )
        self.refresh_layers()
        self._paint_color_buttons()

    # ------------------------------------------------------------------ layers
    def refresh_layers(self, *_) -> None:
        """List segmentation layers (others after) and ground-truth candidates."""
        if self._marker is not None and self._marker not in self.viewer.layers:
            self._marker = None  # a removed ring is let go (the next click makes one)
        try:
            names = self._labels_names()
            segs = _layers.labels_layers(self.viewer, role="segmentation")
            new_segs = [ly.name for ly in segs if id(ly) not in self._segs_seen]
            self._segs_seen = {id(ly) for ly in segs}  # layers, not names (a rerun renames)
            self._follow_renames()
            # (after the renames followed: the line is found under the layers' new names)
            self._hidden_note.layers_changed()
            self._fill(self.labels_combo, names)
            if new_segs:  # a segmentation just made (or loaded): that is what to inspect
                self.labels_combo.setCurrentText(new_segs[-1])
            if self.labels_layer() is not self._watched:
                # another layer under the name chosen (a rerun's result, the layer measured
                # moved aside as '… (previous)'): the text did not change, so no signal came,
                # and its figures stayed, shown as the new result's
                self._labels_changed()
            cts = _layers.ct_layers(self.viewer)
            new_cts = [ly for ly in cts if id(ly) not in self._cts_seen]
            self._cts_seen = {id(ly) for ly in cts}
            truth = [ly.name for ly in _layers.labels_layers(self.viewer, role="ground_truth")]
            new = [t for t in truth if t not in self._truth_seen]
            self._truth_seen = set(truth)
            had_truth = self.truth_combo.currentText()
            self._fill(self.truth_combo, [NO_TRUTH, *truth])
            # the chosen ground truth deleted (the next patient's, closed): the list fell back
            # to none, and the last patient's labels, chosen again, lost their own
            truth_gone = had_truth not in ("", NO_TRUTH, *truth)
            current = self.labels_layer()
            arrived = self._layer(new[-1]) if new else None
            if (
                arrived is not None
                and not new_segs
                and (
                    current is None
                    or current.metadata.get(_layers.ROLE) == "ground_truth"
                    # the last patient's segmentation, kept open: its volumes stayed listed
                    # under the new patient's scan
                    or _another_scan(self.viewer, current, arrived)
                )
            ):
                # another patient loaded with its ground truth, nothing segmented yet: that
                # patient is the one to look at (the last one's figures stayed chosen)
                self.labels_combo.setCurrentText(new[-1])
                self.truth_combo.setCurrentText(new[-1])
            elif new and self.truth_combo.currentText() == NO_TRUTH:
                self.truth_combo.setCurrentText(new[-1])  # a ground truth just loaded: score
            self._pick_matching_truth(self.labels_layer(), truth_gone)
            if new or new_segs:  # the note of a scan without labels: answered
                self._unsegmented = None
                clear_status_if(self.status, NOT_YET_SEGMENTED)
            elif self._unsegmented not in (None, *cts):  # that scan closed: what was said
                self._unsegmented = None
                if self.status.text().startswith(NOT_YET_SEGMENTED):
                    set_status(self.status, self._said_before_note, scroll=False)
            elif new_cts:
                self._say_scan_not_segmented(new_cts[-1])
            if getattr(self, "_watched_truth", None) not in self.viewer.layers:
                self._watch_truth(None)  # a deleted ground truth is let go
            if self._measured_truth is not None and self._measured_truth not in self.viewer.layers:
                self._measured_truth = None
            if names:
                clear_status_if(self.status, "No labels layer")
        except RuntimeError:  # widget deleted while the viewer still emits
            pass

    def _say_scan_not_segmented(self, ct_layer) -> None:
        """A scan loaded without labels (no ground truth, not segmented yet) beside another
        patient's: the panel stayed on that patient's labels and figures and said nothing, so
        the last patient's volumes read as the new one's."""
        current = self.labels_layer()
        if current is None or _of_scan(self.viewer, current, ct_layer) or self.busy:
            return
        shown = "figures" if self._measured_layer is current else "labels"
        if self._unsegmented is None:
            self._said_before_note = self.status.text()
        self._unsegmented = ct_layer
        set_status(
            self.status,
            f"{NOT_YET_SEGMENTED} '{ct_layer.name}' yet: segment it (panel 2). The {shown} "
            f"here are still those of '{current.name}', of another scan.",
        )

    def _follow_renames(self) -> None:
        """A layer renamed after the status named it: the status says its name now ("Measured
        'liver (previous)'" stayed beside a layer called otherwise since)."""
        layers = _layers.labels_layers(self.viewer)
        text = self.status.text()
        for ly in layers:
            old = self._names_seen.get(id(ly))
            if old is not None and old != ly.name and f"'{old}'" in text:
                text = text.replace(f"'{old}'", f"'{ly.name}'")
        if text != self.status.text():
            self.status.setText(text)  # (its colour is kept: set by the kind, not the text)
        self._names_seen = {id(ly): ly.name for ly in layers}

    def labels_layer(self):
        return self._layer(self.labels_combo.currentText())

    def truth_layer(self):
        return self._layer(self.truth_combo.currentText())

    # ------------------------------------------------------------------ measuring
    def measure(self) -> None:
        """Compute volumes, lesions and (with a ground truth) Dice/IoU of the current labels."""
        layer = self.labels_layer()
        if layer is None:
            set_status(self.status, "No labels layer to measure: segment or load one.", error=True)
            return
        _layers.catch_up_edits(layer)  # an Undo on a hidden layer: its record follows first
        try:
            labels, note = _layers.output_labels(layer)  # a snapshot: edits may go on
        except ValueError as exc:
            if layer is self._measured_layer:  # its figures are from before the stray labels
                self._clear_figures()
            set_status(self.status, str(exc), error=True)
            return
        spacing = tuple(float(s) for s in layer.scale)
        try:  # its grid's affine: diameters exact on a tilted grid, as the exported stats
            volume = _layers.volume_of(layer, self.viewer.layers)
            affine = volume.affine_lps
        except ValueError:
            volume = affine = None
        truth_layer = self.truth_layer()
        if truth_layer is layer:  # a ground truth measured for its own figures: no self-score
            truth_layer = None
        # a copy, as the labels: a ground truth can be painted on while it is measured
        truth = None if truth_layer is None else np.array(truth_layer.data)
        if truth_layer is not None and not _same_grid(truth_layer, layer):
            set_status(
                self.status,
                f"The ground truth '{truth_layer.name}' is not on the grid of '{layer.name}' "
                "(another scan, or another shape, spacing or position): choose its own ground "
                "truth, or (none).",
                error=True,
            )
            return
        name = layer.name
        # a ground truth of another scan on the same grid (chosen by hand): said with the Dice
        other_scan = self._other_scan_note(layer, truth_layer)
        self._watch_truth(truth_layer)
        # an edit made while it runs makes these figures old (of the labels or of the truth)
        edits = (self._edit_count(layer), self._edit_count(truth_layer))
        # what they were (~30 ms for a 512² × 200 scan): an edit undone is told from one kept
        digest = labels_digest(layer.data)
        ct = _layers.ct_array_for(layer, self.viewer.layers)
        # labels made on a CT that is open but moved in napari since: the HU columns go, said
        no_hu = (
            _layers.why_no_hu(layer, self.viewer.layers)
            if ct is None and layer.metadata.get(_layers.CT_LAYER) in self.viewer.layers
            else None
        )

        def target(progress, should_cancel):
            from ..stats import add_image_numbers, compute_stats
            from ..training.metrics import in_classes  # np.isin's masks, faster

            progress("measure", 0, 1)
            true_tumor = None if truth is None else in_classes(truth, TRUTH_CLASSES["tumor"])
            # with a CT layer on the same grid: each lesion's attenuation, contrast to liver;
            # with a ground truth: the share of each lesion that is tumor there
            stats = compute_stats(
                labels,
                spacing,
                affine_lps=affine,
                ct=ct,
                truth_tumor=true_tumor,
                should_cancel=should_cancel,
            )
            if volume is not None and volume.shape == labels.shape:
                add_image_numbers(stats, volume)  # DICOM image numbers, as PACS shows them
            if should_cancel():  # (a Cancel took effect only once the Dice was done too)
                raise Cancelled("measuring cancelled by the user")
            scores = None if truth is None else overlap_scores(labels, truth, spacing)
            if true_tumor is not None:
                from ..training.metrics import lesion_detection

                stats["detection"] = lesion_detection(
                    in_classes(labels, PRED_CLASSES["tumor"]),
                    true_tumor,
                    spacing,
                    min_ml=LESION_MIN_ML,
                    min_overlap=LESION_MIN_SHARE,
                )
                # none at all: a tumor-free patient, or a ground truth of the liver alone
                stats["detection"]["truth_has_tumor"] = bool(true_tumor.any())
            progress("measure", 1, 1)
            return stats, scores

        self.run_job(
            target,
            lambda out: self._show(
                name,
                *out,
                layer=layer,
                edits=edits,
                note=note,
                truth=truth_layer,
                no_hu=no_hu,
                digest=digest,
                other_scan=other_scan,
            ),
            button=self.measure_button,
            description="measure",
            busy_text=f"Measuring '{name}'…",
        )

    def _lesion_row_changed(self, row: int, _col: int, previous: int, _pcol: int) -> None:
        """The arrow keys moved the table's current row (filling the table moves it too: only
        a change the user made moves the view)."""
        if row >= 0 and row != previous and not getattr(self, "_filling", False):
            self.go_to_lesion(row)

    def go_to_lesion(self, row: int) -> None:
        """Move the viewer to lesion ``row``'s centre slice and centre the view on it."""
        layer = self._measured_layer  # the lesions are that layer's, in its voxel coordinates
        if self.stats is None or layer is None or row >= len(self.stats["lesions"]):
            return
        lesion = self.stats["lesions"][row]
        if self.viewer.dims.ndisplay == 2 and not _layers.shows_axial(self.viewer):
            # a coronal or sagittal view: the jump centred the wrong axes (a black canvas)
            set_status(
                self.status,
                f"Lesion {lesion['id']} is found on axial slices and this view shows another "
                "plane: roll the dimensions back to axial (napari's roll button, bottom left) "
                "to go to it.",
                warning=True,
            )
            return
        # the slice the status names (the centroid's own z may round to its neighbour)
        world = layer.data_to_world((lesion["slice"], *lesion["centroid_zyx"][1:]))
        # grid mode draws each layer in a cell of its own: nothing covers the lesion, and the
        # ring lies in a cell of its own (it said "ringed" round an empty cell)
        grid = _layers.grid_on(self.viewer)
        listed = layer
        chosen = self.labels_layer()
        if (
            chosen is not None
            and chosen is not layer
            and not layer.visible
            and _same_grid(chosen, layer)
        ):
            # a rerun's result chosen, the measured labels moved aside and hidden: the jump
            # shows the result chosen (it showed the hidden '(previous)' again over it and made
            # it the layer a brush paints on)
            layer = chosen
        uncovered = self._bring_into_view(layer, world, hide_others=not grid)
        tumor_only = self._tumor_only_in_3d(layer)
        marker = self._mark_lesion(layer, lesion)  # first: a layer added resets the slider
        self.viewer.dims.set_point(0, float(world[0]))
        _layers.camera(self.viewer).center = tuple(float(w) for w in world)
        slider_range = [_layers.slider_index(self.viewer, layer, z) for z in lesion["slice_range"]]
        images = ""
        if lesion.get("image_numbers"):
            first, last = lesion["image_numbers"]
            centre = lesion.get("image_number")
            images = f"; DICOM image {centre}" if centre is not None else "; DICOM images"
            images += f" ({first}–{last})" if first != last or centre is None else ""
        stale = self._stale(labels_only=True)  # a ground truth painted on: the Dice only
        set_status(
            self.status,
            ("The labels were edited since they were measured: where lesion " if stale else "")
            + f"{'' if stale else 'Lesion '}{lesion['id']}"
            + (" was" if stale else "")
            + f": slice {_layers.slider_index(self.viewer, layer, lesion['slice'])} "
            f"(slices {_range(slider_range)}){images}"
            + (f"; ringed in '{marker}'" if marker else "")
            + (
                f"; {_names(uncovered)} hidden: {'it' if len(uncovered) == 1 else 'they'} "
                f"covered '{layer.name}' there"
                if uncovered
                else ""
            )
            + (
                f"; the CT shown under it is '{self._unknown_ct[0].name}', which may not be "
                f"its scan: {self._unknown_ct[1]}"
                if getattr(self, "_unknown_ct", None) is not None and not grid
                else ""
            )
            + (
                f"; '{layer.name}' shows its tumor only in 3D (the liver's surface hid it; all "
                "its labels again in 2D)"
                if tumor_only
                else ""
            )
            + (
                f". The list is of '{listed.name}' (hidden): click Measure to list "
                f"'{layer.name}'s lesions."
                if listed is not layer
                else ". Click Measure to update the list."
                if stale
                else "."
            )
            + (_GRID_RING if grid and marker else ""),
            warning=stale,
        )

    def _grid_turned(self) -> None:
        """Grid mode turned off: the jump's "Grid mode is on" note goes (it stayed)."""
        text = self.status.text()
        if _GRID_RING in text and not _layers.grid_on(self.viewer):
            self.status.setText(text.replace(_GRID_RING, ""))  # (its colour kept)

    def _tumor_only_in_3d(self, layer) -> bool:
        """In 3D, show ``layer``'s tumor alone (napari draws each label as a surface: the
        liver's hid the tumor from every side, and the jump centred on nothing to be seen);
        back in 2D its labels are all shown again, the brush's label as it was. Returns
        whether it was turned so now."""
        if self.viewer.dims.ndisplay != 3 or layer.show_selected_label:
            return False
        before = layer.selected_label
        layer.selected_label = 2
        layer.show_selected_label = True
        ref, dims = weakref.ref(layer), self.viewer.dims

        def back(*_) -> None:
            ly = ref()
            if dims.ndisplay == 3:
                return
            dims.events.ndisplay.disconnect(back)
            if ly is not None and ly.show_selected_label:
                ly.show_selected_label = False  # (a brush label picked in 3D: liver alone)
                if ly.selected_label == 2:  # the brush's label as it was, unless picked since
                    ly.selected_label = before

        dims.events.ndisplay.connect(back)
        return True

    def _bring_into_view(self, layer, world, hide_others: bool = True) -> list[str]:
        """Show ``layer`` and its CT at the lesion's ``world`` point: each hidden one made
        visible, and the other scans' images drawn above them there hidden (another patient
        loaded later covered the lesion the ring and status pointed at). Returns the names of
        the layers hidden."""
        from napari.layers import Image, Labels

        layers = self.viewer.layers
        own_ct = (
            layers[layer.metadata.get(_layers.CT_LAYER)]
            if (layer.metadata.get(_layers.CT_LAYER) in layers)
            else self._ct_under(layer)
        )
        self._unknown_ct = None
        if own_ct is None:  # which CT they are of cannot be told: the status names the one shown
            shown = self._ct_shown_under(layer, world)
            self._unknown_ct = None if shown is None else (shown, self._why_no_ct(layer))
        for ly in (layer, own_ct):
            if ly is not None and not ly.visible:
                ly.visible = True
        lowest = min(layers.index(ly) for ly in (layer, own_ct) if ly is not None)
        hidden: list[str] = []
        if not hide_others:
            return hidden
        for ly in list(layers)[lowest + 1 :]:
            other_scan = (
                isinstance(ly, Image) and ly.metadata.get(_layers.ROLE) == "ct" and ly is not own_ct
            ) or (isinstance(ly, Labels) and ly is not layer and not _same_grid(ly, layer))
            if not other_scan or not ly.visible or ly.data.ndim != len(world):
                continue
            lo, hi = np.asarray(ly.extent.world)
            if np.all(np.asarray(world) >= lo) and np.all(np.asarray(world) <= hi):
                ly.visible = False
                hidden.append(ly.name)
        return hidden

    def _ct_under(self, layer):
        """The open CT layer that labels with no link to their CT (opened from a file) are of:
        the one on their grid of the scan they tell (:func:`_layers.scan_of`: a ``segment``
        file's stats name their series), or the only one on their grid when they tell none.
        None when no CT, or several that cannot be told apart, lie there. (Unlinked, the
        baseline's labels were drawn over the follow-up's CT loaded after them.)"""
        cts = self._cts_of_its_scan(layer)
        return cts[0] if len(cts) == 1 else None

    def _cts_of_its_scan(self, layer) -> list:
        """The CT layers on ``layer``'s grid that may be of its scan (those that tell
        another scan left out)."""
        cts = _layers._cts_on_grid(layer, self.viewer.layers)
        mine = _layers.scan_of(layer, self.viewer)
        if mine is None:
            return cts
        kept = []
        for ct in cts:
            theirs = _layers.scan_of(ct, self.viewer)
            if theirs is None or not _layers.comparable_scans(mine[0], theirs[0]):
                kept.append(ct)  # (cannot tell: a NIfTI converted from the series)
            elif theirs[0] == mine[0]:
                kept.append(ct)
        return kept

    def _why_no_ct(self, layer) -> str:
        """Why :meth:`_ct_under` finds no CT for ``layer``, as a clause."""
        cts = _layers._cts_on_grid(layer, self.viewer.layers)
        if not cts:
            return "no open CT lies on its grid"
        if _layers.scan_of(layer, self.viewer) is not None:
            own = self._cts_of_its_scan(layer)
            if len(own) > 1:  # (the scan opened twice, or beside its conversion)
                return f"{len(own)} CTs on its grid may be of the scan it was made on"
            return "none of the CTs on its grid is of the scan it was made on"
        return f"it names no scan, and {len(cts)} CTs lie on its grid"

    def _ct_shown_under(self, layer, world):
        """The top visible CT image under ``layer`` that holds the point ``world``, or None."""
        from napari.layers import Image

        layers = self.viewer.layers
        for ly in reversed(list(layers)[: layers.index(layer)]):
            if (
                isinstance(ly, Image)
                and ly.metadata.get(_layers.ROLE) == "ct"
                and ly.visible
                and ly.data.ndim == len(world)
            ):
                lo, hi = np.asarray(ly.extent.world)
                if np.all(np.asarray(world) >= lo) and np.all(np.asarray(world) <= hi):
                    return ly
        return None

    def _mark_lesion(self, layer, lesion: dict) -> str | None:
        """Ring lesion ``lesion`` on its centre slice, numbered (one marker, moved from lesion
        to lesion): where lesions lie close on one slice, the view's centre did not say which
        one the row is."""
        at = np.array([[lesion["slice"], *lesion["centroid_zyx"][1:]]], dtype=float)
        # about 1.4 x its widest axial extent, in in-plane voxels (at least 12)
        width = lesion.get("axial_diameter_mm") or lesion["longest_diameter_mm"]
        size = max(12.0, 1.4 * float(width) / float(layer.scale[-1]))
        text = {
            "string": {"constant": f"lesion {lesion['id']}"},
            "color": "white",
            "size": 10,
            "anchor": "center",
            "translation": [0, -(size / 2 + 4), 0],  # just above the ring (voxels)
        }
        marker = self._marker if self._marker in self.viewer.layers else None
        try:
            if marker is None:
                marker = self.viewer.add_points(
                    at,
                    name=_layers.unique_name(self.viewer, "lesion marker"),
                    scale=layer.scale,
                    translate=layer.translate,
                    symbol="disc",
                    face_color="transparent",
                    border_color="white",
                    border_width=0.06,
                    metadata={_layers.ROLE: "marker"},
                )
                self._marker = marker
            from .segment import UNSURE_OF, _remove_marks_with_their_labels

            # removed with the segmentation it rings a lesion of (it stayed behind, over the
            # next patient), as the unsure-lesion marks are
            marker.metadata[UNSURE_OF] = id(layer)
            _remove_marks_with_their_labels(self.viewer)
            marker.scale, marker.translate = layer.scale, layer.translate
            marker.data = at
            marker.size = size
            marker.text = text
            marker.visible = True
            layers = self.viewer.layers
            if layers.index(marker) != len(layers) - 1:  # over all (another scan's CT loaded
                # since covered it, a rerun's result washed it out): it said "ringed" unseen
                layers.move(layers.index(marker), len(layers))
        except Exception:  # a marker is a convenience: the jump itself has happened
            return None
        try:
            self.viewer.layers.selection.active = layer  # painting stays on the labels
        except TypeError:  # napari's status in 3D before the mouse has moved (its bug)
            pass
        return marker.name

    def panel_closed(self) -> None:
        """A closed panel takes its lesion ring away (nothing would hide or move it now)."""
        self._hidden_note.pause()
        marker, self._marker = self._marker, None
        try:
            if marker is not None and marker in self.viewer.layers:
                self.viewer.layers.remove(marker)
        except (RuntimeError, ValueError):  # the viewer is closing
            pass

    def _unmark_lesion(self) -> None:
        """Hide the ring: the lesions it numbered are no longer the ones listed."""
        if self._marker is not None and self._marker in self.viewer.layers:
            self._marker.visible = False

    def _show(
        self,
        name: str,
        stats: dict,
        scores: dict | None,
        layer=None,
        edits: tuple[int, int] | None = None,
        note: str = "",
        truth=None,
        no_hu: str | None = None,
        digest: str | None = None,
        other_scan: str = "",
    ) -> None:
        if layer is not None and (
            layer not in self.viewer.layers or layer is not self.labels_layer()
        ):
            # deleted, or another layer chosen, while it was measured: these figures are no one's
            set_status(
                self.status,
                f"'{name}' was removed or another layer chosen while it was measured; "
                "nothing shown.",
            )
            return
        if layer is not None:
            name = layer.name  # renamed while it was measured: said by its name now
        truth_gone = truth is not None and (
            truth not in self.viewer.layers or truth is not self.truth_layer()
        )
        if truth_gone:  # removed, or another (or none) chosen: its Dice is no one's
            scores, truth = None, None
            edits = None if edits is None else (edits[0], 0)
        self._unmark_lesion()  # it numbered the lesions of the figures replaced
        self._grey_tables(False)
        self.stats, self.scores = stats, scores
        self._measured_layer = layer if layer is not None else self.labels_layer()
        unknown = self._measured_layer is not None and _layers.tumor_not_assessed(
            self._measured_layer
        )
        if unknown:  # liver only: "0 tumor" and a tumor Dice of 0 would read as a miss
            rows = [  # (no tumor looked for: not "incl. tumor")
                ("Liver (mL)", _ml(stats["liver_ml"])),
                ("Tumor (mL)", "not computed (liver only)"),
                (RATIO_ROW, "—"),
                ("Lesions", "—"),
            ]
            if scores is not None:
                scores = {c: v for c, v in scores.items() if "tumor" not in c.lower()} or None
                self.scores = scores
        else:
            ratio = stats["tumor_to_liver_ratio"]
            rows = [  # one precision for all: a liver read smaller than its tumor misled
                (LIVER_ROW, _ml(stats["liver_ml"])),
                (PARENCHYMA_ROW, _ml(stats["liver_parenchyma_ml"])),
                ("Tumor (mL)", _ml(stats["tumor_ml"])),
                (RATIO_ROW, "—" if not stats["liver_ml"] else f"{100 * ratio:.2f} %"),
                ("Lesions", str(stats["lesion_count"])),
            ]
        _fill_table(self.volume_table, rows)
        for r, (measure, _) in enumerate(rows):
            self.volume_table.item(r, 0).setToolTip(VOLUME_TIPS.get(measure, ""))
        _fit_height(self.volume_table, len(rows))
        scored = scores is not None and not unknown  # a false lesion's number says so
        lesions = [
            (
                # an enhancing vessel the tumor model took for tumor, by its look: said on its row
                (_lesion_number(les) if scored else str(les["id"]))
                # (" · ": "1 false vessel?" read as "a false vessel")
                + (" · vessel?" if les.get("vessel_like") else ""),
                _ml(les["volume_ml"]),
                _mm(les["longest_diameter_mm"]),  # edge to edge (one voxel: its width)
                _mm(les.get("axial_diameter_mm")),  # (stats from before it was measured: none)
                _range(
                    [
                        _layers.slider_index(self.viewer, self._measured_layer, z)
                        for z in les["slice_range"]
                    ]
                ),
                _hu(les.get("mean_hu")),
                _hu(les.get("liver_contrast_hu"), signed=True),
                _range(les.get("image_numbers")),
            )
            for les in stats["lesions"]
        ]
        self.lesion_table.setColumnHidden(
            IMAGES_COLUMN, not any(les.get("image_numbers") for les in stats["lesions"])
        )
        for col in (5, 6):  # measured without its CT (not on the labels' grid): no column
            self.lesion_table.setColumnHidden(
                col, not any("mean_hu" in les for les in stats["lesions"])
            )
        self._filling = True  # (the current row moves as the list is filled: no jump)
        try:
            _fill_table(self.lesion_table, lesions)
        finally:
            self._filling = False
        for row, les in enumerate(stats["lesions"]):
            tip = [_truth_tip(les) if scored else "", _vessel_tip(les)]
            self.lesion_table.item(row, 0).setToolTip("; ".join(t for t in tip if t))
        # up to 8 without scrolling; at least 2 rows (3 left the results no room beside Segment
        # on a 900-px window once the headers took two lines)
        _fit_height(self.lesion_table, min(max(len(lesions), 2), 8))
        self.score_table.setVisible(scores is not None)
        if scores is not None:
            _fill_table(
                self.score_table,
                [
                    (
                        c,
                        _score(s["dice"]),
                        _score(s["iou"]),
                        _distance(s.get("hd95_mm")),
                        _distance(s.get("assd_mm")),
                        _score(s.get("nsd", float("nan"))),
                    )
                    for c, s in scores.items()
                ],
            )
            _fit_height(self.score_table, len(scores))
        detection = stats.get("detection") if scored else None
        self.detection_label.setVisible(detection is not None)
        if detection is not None:
            self.detection_label.setText(
                ("⚠ The ground truth is of another scan. " if other_scan else "")
                + _detection_text(detection)
            )
        self._measured_truth = truth
        self._measured_edits = edits
        self._measured_digest = digest
        if edits is not None and layer is not None and self._stale():
            edited = name if self._edit_count(layer) != edits[0] else truth.name
            set_status(
                self.status,
                f"'{edited}' was edited while it was measured: these figures are from before the "
                "edit; click Measure to update them.",
                warning=True,
            )
            return
        # the layer chosen is hidden (a later patient's, its layers hidden to go back to an
        # earlier one): its figures read as those of the patient on view, unsaid
        hidden_note = _layers.hidden_choice_note(self.viewer, layer, "measured", "measure")
        hidden = f"\n⚠ {hidden_note}" if hidden_note else ""
        amber = False  # without the hidden line
        if truth_gone:
            set_status(
                self.status,
                f"Measured '{name}'; the ground truth was removed or another chosen while it "
                "was measured: no Dice shown (click Measure to score against the one chosen)."
                + hidden,
                warning=bool(hidden),
            )
        elif note:  # a ground truth: its liver holds the portal vein, as Export writes it
            set_status(
                self.status,
                f"Measured '{name}', a ground truth: its liver counts the portal vein (as Export "
                "writes it); the aorta is left out." + hidden,
                warning=bool(hidden),
            )
        else:
            from ..stats import vessel_warning

            absent = [c for c, s in (scores or {}).items() if not np.isfinite(s["dice"])]
            vessels = vessel_warning(stats)
            other_scan = other_scan if scores is not None else ""
            set_status(
                self.status,
                (f"{other_scan}\n" if other_scan else "")
                + f"Measured '{name}'."
                + (
                    f" No {' nor '.join(absent)} in the labels nor in the ground truth: no "
                    "Dice or IoU to give (—; evaluate leaves such a case out of its mean)."
                    if absent
                    else ""
                )
                + (f" No HU columns: {no_hu}." if no_hu else "")
                + (f"\n⚠ {vessels}" if vessels else "")
                + hidden,
                warning=bool(other_scan) or bool(vessels) or bool(hidden),
            )
            amber = bool(other_scan) or bool(vessels)
        # shown again (or what is on view changed): the line goes, or says so
        self._hidden_note.said(layer, hidden_note, amber)
        # the headline figures (volumes) in view, not only the status line below the tables
        scroll_into_view(self.volume_table)

    # ------------------------------------------------------------------ style
    def set_palette(self, name: str) -> None:
        """Colour every segmentation and ground truth (and the layers to come) with palette
        ``name`` (:data:`_layers.PALETTES`)."""
        _layers.set_palette(name, self.viewer)  # (this panel follows it: _palette_changed)

    def _palette_changed(self, name: str) -> None:
        """The palette became ``name`` (here, in another viewer's Inspect panel, or by code):
        the *Palette* choice and the colour swatches follow, without choosing it again."""
        if self.palette_combo.currentText() != name:
            self.palette_combo.blockSignals(True)
            self.palette_combo.setCurrentText(name)
            self.palette_combo.blockSignals(False)
        layer = self.labels_layer()
        self._colors = (
            _layers.class_colors(layer) if layer is not None else (_layers.palette_colors())
        )
        self._paint_color_buttons()

    def set_class_color(self, value: int, color) -> None:
        """Colour of class ``value`` (1 liver, 2 tumor) in the chosen labels layer."""
        self._colors[value] = tuple(QColor(color).getRgbF()) if isinstance(color, str) else color
        self._paint_color_buttons()
        self._apply_style()

    def _apply_style(self, *_) -> None:
        layer = self.labels_layer()
        if layer is None:
            return
        layer.opacity = self.opacity.value() / 100.0
        truth = layer.metadata.get(_layers.ROLE) == "ground_truth"
        width = _layers.GROUND_TRUTH_CONTOUR if truth else _layers.LABELS_CONTOUR
        layer.contour = width if self.contour_check.isChecked() else 0
        _layers.set_class_colors(layer, self._colors)

    def _labels_changed(self, *_) -> None:
        layer = self.labels_layer()
        self._watch_edits(layer)
        # (the note of a scan loaded without labels spoke of the labels chosen until now)
        hint = self.status.text().startswith(("Click Measure", NOT_YET_SEGMENTED))
        if layer is not self._measured_layer or (hint and layer is None):
            # figures (or the hint) about another layer, maybe a deleted one: cleared, and said
            stale = self.stats is not None or hint
            if self.stats is not None:
                self._clear_figures()
            if stale:
                set_status(
                    self.status,
                    f"Click Measure for the figures of '{layer.name}'."
                    if layer is not None
                    else "No labels layer left to inspect.",
                )
        self._pick_matching_truth(layer)
        if layer is None:
            return
        self._colors = _layers.class_colors(layer)  # the buttons show this layer's own
        self._paint_color_buttons()
        self.opacity.blockSignals(True)
        self.opacity.setValue(int(round(layer.opacity * 100)))
        self.opacity.blockSignals(False)
        self.contour_check.blockSignals(True)
        self.contour_check.setChecked(layer.contour > 0)
        self.contour_check.blockSignals(False)

    def _truth_changed(self, *_) -> None:
        """Another ground truth (or none) chosen: the Dice shown was against the last one."""
        chosen = self.truth_layer()
        if self.stats is None or (self.scores is not None and chosen is self._measured_truth):
            return
        self.scores = None
        self.score_table.setVisible(False)
        self._unscore_lesions()
        other_scan = self._other_scan_note(self._measured_layer, chosen)
        set_status(
            self.status,
            (f"{other_scan}\n" if other_scan else "")
            + (
                f"Click Measure to score against '{chosen.name}'."
                if chosen is not None
                else "No ground truth chosen: no Dice."
            ),
            warning=bool(other_scan),
        )

    def copy_results(self) -> str:
        """Put the tables shown on the clipboard, tab-separated with their headers, a blank
        line between them; returns the text."""
        from qtpy.QtWidgets import QApplication

        tables = [
            t
            for t in (self.volume_table, self.lesion_table, self.score_table)
            if not t.isHidden() and t.rowCount()
        ]
        text = "\n".join(t.text_of() for t in tables)
        notes = dict.fromkeys(t.stale_note for t in tables if t.stale_note)
        if text and notes:  # greyed figures copied as such, not as the labels' own
            text = "".join(f"{n}\n" for n in notes) + text
        if text:
            QApplication.clipboard().setText(text)
        return text

    def _update_copy_button(self, *_) -> None:
        self.copy_button.setEnabled(self.volume_table.rowCount() > 0)

    def _clear_figures(self) -> None:
        self._unmark_lesion()
        self.stats = self.scores = None
        self._measured_layer = None
        _fill_table(self.volume_table, [])
        self._filling = True
        try:
            _fill_table(self.lesion_table, [])
        finally:
            self._filling = False
        self.score_table.setVisible(False)
        self.detection_label.setVisible(False)

    def _unscore_lesions(self) -> None:
        """The lesion numbers without the last ground truth's false-lesion marks."""
        self.detection_label.setVisible(False)
        for row in range(self.lesion_table.rowCount()):
            item = self.lesion_table.item(row, 0)
            if item is not None and row < len((self.stats or {}).get("lesions", [])):
                item.setText(str(self.stats["lesions"][row]["id"]))
                item.setToolTip("")

    def _pick_matching_truth(self, layer, chosen_gone: bool = False) -> None:
        """Keep a ground truth of ``layer``'s scan: the chosen one, else one that fits (the
        one made on ``layer``'s CT first, then one of its series), else none. None chosen
        stays so unless ``chosen_gone``: the one chosen was deleted.

        A ground truth on ``layer``'s grid but of another scan (:func:`_layers.other_scans`:
        a baseline's SEG beside a follow-up resampled onto its grid, another phase of a
        stacked series) is never picked here: the follow-up was scored against the
        baseline's truth (tumor Dice 0.84, "1 of 1 true lesions found"; 0.55 against its
        own) without a word. Chosen by hand for these labels, it stays (Measure says whose
        it is)."""
        if layer is None:
            return
        chosen = self.truth_layer()
        if chosen is None and not chosen_gone and not self._none_fitted:
            return
        fits = [
            ly
            for ly in _layers.labels_layers(self.viewer, role="ground_truth")
            if _same_grid(ly, layer) and _layers.other_scans(layer, ly, self.viewer) is None
        ]
        own = _layers.linked_ct_name(layer, self.viewer)
        mine = _layers.scan_of(layer, self.viewer)
        # labels that name no scan nor CT (napari's New labels layer, a file without its
        # stats) on a grid where the truths of two scans lie: either may be the other study's
        # (a baseline's labels got the follow-up's truth, tumor Dice 0.24 against 0.40)
        scans = {key[0] for key in (_layers.scan_of(ly, self.viewer) for ly in fits) if key}
        unknown = mine is None and not own and len(scans) > 1
        if (
            chosen is not None
            and _same_grid(chosen, layer)
            and (
                (_layers.other_scans(layer, chosen, self.viewer) is None and not unknown)
                or self._picked_by_hand(layer, chosen)
            )
        ):
            return
        if unknown:
            fits = []

        def rank(ly) -> tuple[bool, bool]:
            theirs = _layers.scan_of(ly, self.viewer)
            return (
                bool(own) and _layers.linked_ct_name(ly, self.viewer) == own,
                mine is not None and theirs is not None and theirs[0] == mine[0],
            )

        fits.sort(key=rank)
        # none for want of one of these labels' scan: the next labels chosen get theirs (the
        # baseline's segmentation, chosen after the follow-up's, stayed without its truth)
        self._none_fitted = not fits
        self.truth_combo.setCurrentText(fits[-1].name if fits else NO_TRUTH)

    def _truth_activated(self, _index: int) -> None:
        """The user chose a ground truth (or none) in the list: kept for the labels chosen,
        also one of another scan (scored with that said)."""
        labels, truth = self.labels_layer(), self.truth_layer()
        self._none_fitted = False  # (none chosen by hand stays so)
        self._hand_pick = (
            None if labels is None or truth is None else (weakref.ref(labels), weakref.ref(truth))
        )

    def _picked_by_hand(self, labels, truth) -> bool:
        pick = self._hand_pick
        return pick is not None and pick[0]() is labels and pick[1]() is truth

    def _other_scan_note(self, labels, truth) -> str:
        """What to say before the Dice of ``labels`` against a ground truth ``truth`` of
        another scan; "" when it is theirs or cannot be told apart."""
        if labels is None or truth is None:
            return ""
        theirs = _layers.other_scans(labels, truth, self.viewer)
        if theirs is None:
            return ""
        mine = (_layers.scan_of(labels, self.viewer) or ("", ""))[1]
        return (
            f"The ground truth '{truth.name}' is of another scan ({theirs}) than "
            f"'{labels.name}'{f' ({mine})' if mine else ''}: its Dice, IoU and lesions found "
            "compare two scans, not these labels with their own truth."
        )

    def _watch_edits(self, layer) -> None:
        """Say the figures are stale as soon as the user paints on the measured layer, undoes or
        redoes a stroke (napari's Ctrl+Z), or its whole array is replaced (from napari's console
        or another plugin)."""
        _layers.disconnect_edits(getattr(self, "_watched", None), self._edited)
        self._watched = layer
        if layer is not None:
            _layers.connect_edits(layer, self._edited)

    def _edited(self, *_) -> None:
        """The user painted on the chosen labels layer."""
        self._note_edit(self._watched)

    def _edited_elsewhere(self, layer) -> None:
        """A panel (Refine's Apply, Undo) changed ``layer`` in place."""
        self._note_edit(layer)

    def _note_edit(self, layer) -> None:
        if layer is None:
            return
        self._edit_counts[id(layer)] = self._edit_count(layer) + 1
        if layer is self._measured_layer and self.stats is not None:
            # amber, the figures greyed: a plain line under tables shown as before went unseen
            set_status(
                self.status,
                "The labels were edited: the figures above are of the labels before; click "
                "Measure to update them.",
                warning=True,
            )
            self._grey_tables(True)
            # napari tells of a stroke before its voxels are written: looked at after it
            # (several strokes' events at once, once)
            if not getattr(self, "_recheck_due", False):
                self._recheck_due = True
                QTimer.singleShot(0, self._still_as_measured)

    def _still_as_measured(self) -> None:
        """Painted and undone (Ctrl+Z), or a stroke that changed nothing: the labels are as
        measured, and the figures theirs again (they stayed "edited")."""
        self._recheck_due = False
        layer, measured = self._measured_layer, getattr(self, "_measured_digest", None)
        try:
            if (
                layer is None
                or measured is None
                or self._measured_edits is None
                or self.stats is None
                or layer not in self.viewer.layers
                or labels_digest(layer.data) != measured
            ):
                return
        except RuntimeError:  # the panel is gone
            return
        self._edit_counts[id(layer)] = self._measured_edits[0]
        self._grey_tables(self._stale())
        set_status(
            self.status,
            "The labels are as they were measured (the edit was undone, or changed nothing): "
            "these figures are theirs.",
        )

    def _edit_count(self, layer) -> int:
        return 0 if layer is None else self._edit_counts.get(id(layer), 0)

    def _stale(self, labels_only: bool = False) -> bool:
        """Whether the measured labels (or, unless ``labels_only``, the ground truth) were
        edited since they were measured."""
        if self._measured_edits is None or self._measured_layer is None:
            return False
        now = (self._edit_count(self._measured_layer), self._edit_count(self._measured_truth))
        if labels_only:
            return now[0] != self._measured_edits[0]
        return now != self._measured_edits

    def _watch_truth(self, layer) -> None:
        """Say the Dice is stale as soon as the user paints on the ground truth it was scored
        against (it said nothing: a tumor Dice of 0.000 stood where 0.223 was due)."""
        _layers.disconnect_edits(getattr(self, "_watched_truth", None), self._truth_edited)
        self._watched_truth = layer
        if layer is not None and layer is not self._watched:
            _layers.connect_edits(layer, self._truth_edited)

    def _truth_edited(self, *_) -> None:
        layer = self._watched_truth
        if layer is None:
            return
        self._edit_counts[id(layer)] = self._edit_count(layer) + 1
        if layer is self._measured_truth and self.scores is not None:
            set_status(
                self.status,
                f"The ground truth '{layer.name}' was edited: click Measure to update the Dice, "
                "IoU and the lesions found and false.",
                warning=True,
            )
            self._grey_tables(True, scores_only=True)

    def _grey_tables(self, stale: bool, scores_only: bool = False) -> None:
        """Figures of labels edited since they were measured shown greyed (still readable,
        rows still clickable); plain again when measured anew or the edit undone."""
        tables = (self.score_table,) if scores_only else (
            self.volume_table, self.lesion_table, self.score_table
        )  # fmt: skip
        note = ""
        if stale:
            note = STALE_SCORES_NOTE if scores_only else STALE_NOTE
        for table in tables:
            table.stale_note = note  # the first line of what is copied of it
            # the theme's own text colour, faded, and italic: a fixed grey was barely seen on
            # the dark theme and barely read on the light one
            text = table.palette().color(QPalette.Text)
            faded = f"rgba({text.red()}, {text.green()}, {text.blue()}, 120)"
            table.setStyleSheet(
                f"QTableWidget {{ color: {faded}; font-style: italic; }}" if stale else ""
            )
            table.setToolTip(
                "Greyed: figures of the labels as they were before the edit; click Measure"
                if stale
                else ""
            )

    def _pick_color(self, value: int) -> None:
        r, g, b, a = self._colors[value]
        color = QColorDialog.getColor(QColor.fromRgbF(r, g, b, a), self, "Class colour")
        if color.isValid():
            self.set_class_color(value, tuple(color.getRgbF()))

    def _paint_color_buttons(self) -> None:
        for value, btn in self.color_buttons.items():
            r, g, b, _ = (int(255 * c) for c in self._colors[value])
            # black on a light colour, white on a dark one (black on navy could not be read)
            luma = 0.299 * r + 0.587 * g + 0.114 * b
            text = "black" if luma >= 140 else "white"
            btn.setStyleSheet(f"background-color: rgb({r},{g},{b}); color: {text};")

    def _measure_clicked(self) -> None:
        if not self.cancel_if_running(self.measure_button):
            self.measure()

    # ------------------------------------------------------------------ helpers
    def _labels_names(self) -> list[str]:
        """Segmentations first, then other labels, then ground truths (measured as liver and
        tumor: their volumes and lesions beside the model's)."""
        segs = _layers.labels_layers(self.viewer, role="segmentation")
        truths = _layers.labels_layers(self.viewer, role="ground_truth")
        others = [
            ly
            for ly in _layers.labels_layers(self.viewer)
            if ly not in segs
            and ly not in truths
            and ly.metadata.get(_layers.ROLE) not in _layers.NOT_LABELS_ROLES
        ]
        order = [*segs, *others, *truths]
        first = _layers.shown_first(self.viewer, segs)  # (what a deleted choice falls back to)
        return [ly.name for ly in [*first, *order[len(segs) :]]]

    def _layer(self, name: str):
        return next((ly for ly in _layers.labels_layers(self.viewer) if ly.name == name), None)

    @staticmethod
    def _fill(combo: QComboBox, names: list[str]) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        combo.blockSignals(False)
        if current in names:
            combo.setCurrentText(current)
        elif names:
            combo.setCurrentIndex(0)
            combo.currentTextChanged.emit(combo.currentText())
        elif current:  # the last layer went: the figures about it must go too
            combo.currentTextChanged.emit("")


def overlap_scores(
    labels: np.ndarray, truth: np.ndarray, spacing=None, *, crop: bool = True
) -> dict[str, dict[str, float]]:
    """Dice and IoU per class of a 0/1/2 label map against an HCC ground truth (0..4); with
    ``spacing`` (mm, z y x) the boundary scores too (``hd95_mm``, ``assd_mm``, ``nsd``:
    :func:`napari_livertumor.training.metrics.surface_scores`, as ``livertumor evaluate``).

    A class absent from both maps has no score (NaN, shown as "—"), as ``livertumor evaluate``
    leaves such a case out of its mean: nothing to find and nothing found is not a perfect
    overlap (it had scored 1 here and NaN there).

    Scored in the box of both maps' classes (``metrics.crop_box``: a liver is some 5 % of a
    thin-slice scan; ``benchmarks/bench_scoring.py``); ``crop=False``: the whole volume, the
    same figures.
    """
    from ..training.metrics import crop_box, surface_scores

    if crop:
        ours, theirs = (sum(map(tuple, c.values()), ()) for c in (PRED_CLASSES, TRUTH_CLASSES))
        box = crop_box((labels, ours), (truth, theirs), margin=1)
        labels, truth = np.asarray(labels)[box], np.asarray(truth)[box]
    out = {}
    for cls in ("liver", "tumor"):
        pred = np.isin(labels, PRED_CLASSES[cls])
        ref = np.isin(truth, TRUTH_CLASSES[cls])
        inter = int(np.count_nonzero(pred & ref))
        total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
        union = total - inter
        out[cls] = {
            "dice": float("nan") if total == 0 else 2.0 * inter / total,
            "iou": float("nan") if union == 0 else inter / union,
        }
        if spacing is not None:
            out[cls].update(surface_scores(pred, ref, spacing, crop=crop))
    return out


def _refit_tables(panel: InspectWidget) -> None:
    """Fit the filled tables to their rows again (napari's font size changed)."""
    for table in (panel.volume_table, panel.lesion_table, panel.score_table):
        rows = table.property("fit_rows")
        if rows is None or not table.rowCount():
            continue
        table.resizeColumnsToContents()
        _fit_width(table)
        _fit_height(table, rows)


def _fit_height(table: QTableWidget, rows: int) -> None:
    """Make a short table tall enough to show ``rows`` rows without scrolling.

    The header's size hint and the default row height are used, not their current heights,
    which are not final before the panel is first shown (the last row was cut off).
    """
    table.setProperty("fit_rows", rows)  # (fitted again when the font size changes)
    header = max(table.horizontalHeader().height(), table.horizontalHeader().sizeHint().height())
    row = max(table.verticalHeader().defaultSectionSize(), 1)
    heights = [max(table.rowHeight(r), row) if r < table.rowCount() else row for r in range(rows)]
    # a table wider than its cap scrolls sideways: its scroll bar takes a row's place (the
    # last row was under it, and then a vertical bar narrowed the table further)
    bar = table.horizontalScrollBar().sizeHint().height() if table.property("scrolls") else 0
    table.setFixedHeight(header + sum(heights) + bar + 2 * table.frameWidth() + 2)


def _lesion_number(lesion: dict) -> str:
    """A lesion's number, with "false" where the ground truth has (almost) no tumor there."""
    share = lesion.get("truth_share")
    false = share is not None and share < LESION_MIN_SHARE
    return f"{lesion['id']} false" if false else str(lesion["id"])


def _vessel_tip(lesion: dict) -> str:
    """Why a lesion is marked "vessel?" (:func:`~napari_livertumor.stats.vessel_check`)."""
    if not lesion.get("vessel_like"):
        return ""
    return (
        f"brighter than the liver (its brightest quarter {lesion['upper_quartile_vs_liver_hu']:+.0f}"
        f" HU) and tube-shaped ({lesion['length_to_width']:.1f} times as long as wide), as an "
        "enhancing vessel is: the tumor model takes such vessels for tumor; check it before "
        "counting it"
    )


def _truth_tip(lesion: dict) -> str:
    share = lesion.get("truth_share")
    if share is None:
        return ""
    small = lesion["volume_ml"] < LESION_MIN_ML
    return (
        f"{100 * share:.0f} % of this lesion is tumor in the ground truth"
        + (
            f": a false lesion (under {100 * LESION_MIN_SHARE:.0f} %)"
            if share < LESION_MIN_SHARE
            else ""
        )
        + (f"; under {LESION_MIN_ML:g} mL, not counted in the lesion counts" if small else "")
    )


def _detection_text(d: dict) -> str:
    """The lesion counts against a ground truth, in words."""
    share = f"{100 * LESION_MIN_SHARE:.0f} %"
    if not d.get("truth_has_tumor", True):
        return (
            "The ground truth marks no tumor: each marked lesion counts as false, right for a "
            "tumor-free patient; a ground truth of the liver alone (3D-IRCADb's, "
            "TotalSegmentator's) says nothing of lesions."
        )
    return (
        f"Against the ground truth, lesions of {LESION_MIN_ML:g} mL or more (as livertumor "
        f"evaluate counts them): {d['lesions_found']} of {d['lesions_true']} true lesions found "
        f"(at least {share} of it marked), {d['lesions_false']} of {d['lesions_pred']} marked "
        f"lesions false (under {share} of it true tumor)."
    )


def _score(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "—"


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _distance(value) -> str:
    """A boundary distance (mm) to one decimal; — when undefined (or not computed)."""
    return f"{value:.1f}" if value is not None and np.isfinite(value) else "—"


def _mm(value) -> str:
    return "" if value is None else f"{diameter_shown(value):.1f}"


def _hu(value, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):  # too small, too little liver around it
        return "—"
    # half away from zero (Python's round() took 64.5 to 64, 47.5 to 48); never "-0" nor "+0"
    value = int(math.copysign(math.floor(abs(value) + 0.5), value)) or 0
    return f"{value:+d}" if signed and value else f"{value:d}"


def _range(pair) -> str:
    """``[41, 49]`` as "41–49" (one number once; none as "—")."""
    if not pair:
        return "—"
    first, last = pair
    return str(first) if first == last else f"{first}–{last}"


#: the lesion table's column of DICOM image numbers
IMAGES_COLUMN = 7
#: the surface Dice's tolerance (mm), as ``livertumor evaluate``'s default
NSD_MM = 2.0
#: lesions are matched as ``livertumor evaluate`` matches them (``metrics.lesion_detection``):
#: lesions under this many mL are not counted, and a lesion is false (or a true one found) when
#: under (at least) this share of it is true (predicted) tumor
LESION_MIN_ML = 0.1
LESION_MIN_SHARE = 0.1
#: px a table may widen its panel to (a docked panel's usual width); wider ones scroll sideways
TABLE_WIDEST = 400


LIVER_ROW = "Liver incl. tumor (mL)"
PARENCHYMA_ROW = "Liver without tumor (mL)"
RATIO_ROW = "Tumor / liver"
#: what each volume counts (the DICOM SEG's Liver segment is the liver without its tumor)
VOLUME_TIPS = {
    LIVER_ROW: "The whole liver: its parenchyma and the tumor in it",
    PARENCHYMA_ROW: (
        "The liver without the tumor: what the exported DICOM SEG's Liver segment holds (a "
        "viewer measuring that segment finds this volume)"
    ),
    "Liver (mL)": "The liver the model found (no tumor was looked for: liver only)",
    "Tumor (mL)": "All lesions together",
    RATIO_ROW: "Tumor volume over the whole liver's (incl. tumor), in %",
    "Lesions": "Connected parts of the tumor (touching by a face, edge or corner)",
}


#: the first line copied of figures greyed after an edit (as the panel's status says)
STALE_NOTE = "# figures of the labels before an edit: click Measure to update them"
STALE_SCORES_NOTE = (
    "# Dice and IoU against the ground truth before an edit: click Measure to update them"
)


class CopyTable(QTableWidget):
    """A results table that copies as a spreadsheet takes it: tab-separated, with its header
    row (Ctrl+C copied one cell, the label, and the right-click menu had no Copy).

    Ctrl+C copies the selected rows when several are selected, else the whole table (a click
    on a lesion selects its row to go to it: that alone is no choice of what to copy); the
    right-click menu copies the row or the whole table. Figures greyed after an edit are
    copied under a first line that says so (``stale_note``)."""

    stale_note = ""

    def text_of(self, rows: list[int] | None = None) -> str:
        """The table (or ``rows`` of it) as tab-separated lines, the header first."""
        columns = [c for c in range(self.columnCount()) if not self.isColumnHidden(c)]
        if rows is None:
            rows = [r for r in range(self.rowCount()) if not self.isRowHidden(r)]

        def cell(item) -> str:
            return " ".join((item.text() if item is not None else "").split())

        lines = ["\t".join(cell(self.horizontalHeaderItem(c)) for c in columns)]
        lines += ["\t".join(cell(self.item(r, c)) for c in columns) for r in rows]
        return "\n".join(lines) + "\n"

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.selectionModel().selectedRows()})

    def copy(self, rows: list[int] | None = None) -> str:
        """Put the table (or ``rows``) on the clipboard; returns the text."""
        from qtpy.QtWidgets import QApplication

        text = self.text_of(rows)
        if self.stale_note:
            text = f"{self.stale_note}\n{text}"
        QApplication.clipboard().setText(text)
        return text

    def _copy_pressed(self) -> None:
        if self.rowCount() == 0:  # nothing measured: the clipboard is kept, not a bare header
            return
        rows = self.selected_rows()
        self.copy(rows if len(rows) > 1 else None)

    def event(self, event) -> bool:
        from qtpy.QtCore import QEvent
        from qtpy.QtGui import QKeySequence

        # Ctrl+C is the table's, not a shortcut of napari's window
        if event.type() == QEvent.ShortcutOverride and event.matches(QKeySequence.Copy):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from qtpy.QtGui import QKeySequence

        if event.matches(QKeySequence.Copy):
            self._copy_pressed()
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from qtpy.QtWidgets import QMenu

        if self.rowCount() == 0:
            return
        menu = QMenu(self)
        rows = self.selected_rows()
        if rows:
            row_action = menu.addAction("Copy rows" if len(rows) > 1 else "Copy row")
            row_action.triggered.connect(lambda: self.copy(rows))
        menu.addAction("Copy table").triggered.connect(lambda: self.copy())
        menu.exec_(event.globalPos())


def _table(headers: list[str]) -> CopyTable:
    table = CopyTable(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    table.setSelectionBehavior(QTableWidget.SelectRows)
    table.horizontalHeader().setStretchLastSection(True)
    # columns as wide as their header and values (no cut header); a table wider than the
    # panel scrolls sideways rather than widening the dock (and narrowing the scan) for good
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
    table.setTabKeyNavigation(False)  # Tab moves on to the next control, not cell by cell
    table.setMinimumHeight(90)
    return table


def _fill_table(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    _fit_width(table)


def _fit_width(table: QTableWidget) -> None:
    """The table's least width: its columns', up to :data:`TABLE_WIDEST`, past which it
    scrolls sideways."""
    # the panel widens to show every column (the last was cut off), up to a docked panel's
    # usual width: past it the table scrolls sideways (the canvas lost 160 px for good on a
    # 1280-px laptop) (the header's styled padding is not in its size hints until shown)
    header = table.horizontalHeader()
    widths = [
        max(table.sizeHintForColumn(c), header.sectionSizeHint(c))
        for c in range(table.columnCount())
        if not table.isColumnHidden(c)  # (columns without data are hidden)
    ]
    frames = 2 * table.frameWidth()
    table.setMinimumWidth(min(sum(widths) + 12 * len(widths) + frames, TABLE_WIDEST))
    # columns that fit the widest table (as measured once shown) get no scroll bar: Qt showed
    # one for a few pixels, taking a row's height for nothing
    scrolls = sum(widths) + 2 * len(widths) + frames > TABLE_WIDEST
    table.setProperty("scrolls", scrolls)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded if scrolls else Qt.ScrollBarAlwaysOff)


def _same_grid(a, b) -> bool:
    """Two layers on one voxel grid: the same shape, voxel size and position."""
    return _layers.on_one_grid(
        a.data.shape, a.scale, a.translate, b.data.shape, b.scale, b.translate
    )


def _of_scan(viewer, layer, ct_layer) -> bool:
    """Whether the labels ``layer`` belong to ``ct_layer``: made on it, or lying on its grid
    without being made on another scan (:func:`_layers.same_scan`)."""
    if _layers.linked_ct_name(layer, viewer) == ct_layer.name:
        return True
    return _same_grid(layer, ct_layer) and _layers.same_scan(layer, ct_layer)


def _another_scan(viewer, layer, other) -> bool:
    """Whether two labels layers are of two scans: on other grids, or made on two CTs."""
    if not _same_grid(layer, other):
        return True
    own, theirs = (_layers.linked_ct_name(ly, viewer) for ly in (layer, other))
    return bool(own and theirs and own != theirs)


def _ml(value: float) -> str:
    """mL as every panel and the command line show it (:func:`stats.volume_shown`)."""
    from ..stats import volume_shown

    return volume_shown(value)
