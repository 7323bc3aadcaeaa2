"""Refine widget: tune the active contour live on the current slice, then apply it.

The controls fill a :class:`~napari_livertumor.refine.RefineConfig`. Every change (and every
scroll to another slice) restarts an 80 ms timer; when it fires, the current slice is refined in
a worker thread and shown as an outline in a separate "Refine preview" layer. Results of older
requests are dropped (a generation counter), and at most one preview runs at a time. A change
whose outline is not drawn within ``STALE_MS`` dims the outline on screen, and the notes say it
is being updated. A preview computing stops when the panel closes and at the interpreter's exit.

Apply writes tumor labels only inside the liver, into the chosen labels layer, and keeps an
exact undo record of the voxels it changed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import weakref
from typing import TYPE_CHECKING

import numpy as np
from magicgui import widgets as mw
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QWidget,
)
from scipy import ndimage as ndi

from .._writer import OPENED_FROM
from ..errors import Cancelled
from ..refine import (
    MIN_LESION_VOXELS,
    SLIVER_ML,
    RefineConfig,
    drop_slivers,
    label_lesions,
    refine_all,
    refine_lesion,
    refine_slice,
)
from ..refine.config import RANGES
from ..refine.edits import EditHistory, changed_box, write_tumor
from . import _layers
from ._common import (
    JobWidgetMixin,
    RefreshingCombo,
    StatusLabel,
    clear_status_if,
    follow_layer_list,
    read_dots,
    refuse_marks,
    scroll_box,
    scroll_into_view,
    scroll_panel,
    set_status,
    settle_number_boxes,
    settle_typed,
    tab_in_order,
)
from ._jobs import error_text

if TYPE_CHECKING:
    import napari

PREVIEW_NAME = "Refine preview"
DEBOUNCE_MS = 80
#: ms after a change whose outline is not yet drawn: the outline on screen (of the settings
#: before it) is dimmed to this opacity and the notes say a new one is on its way (a preview at
#: heavy settings takes seconds, and Apply to slice writes the new settings' result)
STALE_MS = 300
STALE_OPACITY = 0.35
log = logging.getLogger(__name__)
UNDO_STEPS = 20
SAME_LAYER = "same layer (1 = liver)"
NO_LIVER = "none (no confinement)"
UNDER_CURSOR = "under the mouse"  # short: the combo shares a row with a button
MODEL_OUTPUT = "model_output"
REFINED_HERE = _layers.REFINED_HERE

#: help shown when the mouse rests on a control
TOOLTIPS = {
    "method": "Chan-Vese: the outline settles where the mean CT value inside and outside differ "
    "most (lesions darker or brighter than the liver). Geodesic: it follows edges",
    "iterations": "How many steps the outline moves (0–60 here, up to 200 in a settings file; "
    "0 shows the mask as it is)",
    "smoothing": "Curvature smoothing per step (0–4): more gives rounder outlines",
    "lambda1": "Chan-Vese only (λ inside, 0.01–10): how much the inside must match its mean; "
    "lower lets the tumor grow",
    "lambda2": "Chan-Vese only (λ outside, 0.01–10): how much the outside must match its mean; "
    "lower lets the tumor shrink",
    "balloon": "Geodesic only (-5 to 5): a push that keeps the outline moving where edges are "
    "weak; > 0 inflates, < 0 deflates",
    "auto_threshold": "Geodesic with a balloon only: the stop threshold taken from the image itself",
    "threshold": "Geodesic with a balloon only (0–1): where the edge map (1 on flat tissue, "
    "near 0 on a sharp edge) is below this, the balloon stops pushing (with balloon 0 it has "
    "no effect, and is greyed out)",
    "alpha": "Geodesic only (1–10000): how sharply edges stop the outline",
    "sigma": "Smoothing of the CT before the outline moves, in mm (0.1–10): denoising "
    "(Chan-Vese) or the scale of the edges followed (geodesic)",
    "hu_low": "Lowest HU of the window the outline sees (-1024 to 3071); darker is taken as "
    "this value. Not the display window",
    "hu_high": "Highest HU of the window the outline sees (-1024 to 3071); brighter is taken "
    "as this value. Not the display window",
    "margin": "Margin around each lesion's box, in mm (0–100); only that box is processed",
    "max_shift": "The outline moves at most this far from the mask, in mm (0–50; 0 = no limit)",
    "min_contrast": "Contrast-to-noise ratio (CNR, 0–10): the difference of mean HU between "
    "the lesion and the liver around it, divided by their noise (standard deviation). "
    "Lesions below it are left as they are: an outline would wander on them",
    "live": "Refine the shown slice in 2D as you change the settings (a cyan outline, black with "
    "the colour-blind safe palette); once drawn for the current settings, this is "
    "what Apply to slice writes (while a new one is computed, the old one is dimmed). Apply to "
    "lesion / to all run the outline in 3D, where the "
    "neighbouring slices pull on it: the result on this slice may differ",
}


#: said when the view is rolled to sagittal or coronal slices (napari's "Roll dimensions")
#: Refine panels made in this process, in order (weakly held): Segment refines with the
#: settings of the last one still open
_OPEN_PANELS: list[weakref.ref] = []


def panel_settings(viewer) -> RefineConfig | None:
    """The settings of the Refine panel open in ``viewer`` (the last one made), or None."""
    viewer = _layers.unproxied(viewer)
    _OPEN_PANELS[:] = [ref for ref in _OPEN_PANELS if ref() is not None]
    for ref in reversed(_OPEN_PANELS):
        panel = ref()
        if panel is not None and panel.viewer is viewer and not getattr(panel, "_closed", False):
            try:
                return panel.build_config()
            except RuntimeError:  # its widgets are gone
                continue
    return None


#: said over the preview while napari's grid mode draws each layer in a cell of its own
_GRID_NOTE = (
    "Grid mode is on: the outline lies in a grid cell of its own, not over the mask; turn it "
    "off (the grid button, bottom left) to see it there."
)
_IN_3D = (
    "In 3D no slice is shown: the live outline waits for a 2D view; Apply to lesion (3D) and "
    "Apply to all lesions work here."
)
_NOT_AXIAL = (
    "The outline is drawn on axial slices and this view shows another plane: roll the "
    "dimensions back to axial to preview or apply to a slice, or apply to a lesion or to all "
    "lesions (3D)."
)


class RefineWidget(JobWidgetMixin, QWidget):
    """Live-tuned active-contour refinement of the tumor labels."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        _OPEN_PANELS.append(weakref.ref(self))
        # every Refine panel's steps, kept by the process (:data:`_STEPS`): a closed panel's
        # steps still follow napari's Undo and Redo, for Export's record of the refinements
        self.history = _STEPS
        self._viewer_ref = weakref.ref(self.viewer)
        self._generation = 0
        self._preview_busy = False
        self._preview_again = False
        self._preview_error = False
        #: the stop flag of the preview computing (None: none is), set when the panel closes
        #: and by the exit hook (_jobs.start_worker)
        self._preview_cancel: threading.Event | None = None
        self._shown_generation = -1  # the request whose outline is drawn
        self._stale = False  # the outline drawn is dimmed: a newer one is on its way
        self._preview_notes: list[str] = []  # the notes of the outline drawn
        self._view_was_axial = True  # the "roll back to axial" hint is said when it turns
        self._config_notes: list[str] = []
        self._apply_notes: list[str] = []  # the last Apply's, shown until settings change
        self._lesions_of = None  # the labels layer the lesion list was made from
        # (status line, CT, labels) while the status says that CT lies over those labels
        self._cover_said: tuple | None = None
        self._preview_requested_at = 0.0
        self.last_preview_ms: float | None = None  # request (after debounce) to preview shown
        self.preview_count = 0

        # -- layers
        self._labels_seen: set[int] = set()
        # the CT layers listed so far (None before the first fill): a scan loaded after it is
        # the one to refine next, as Segment offers it
        self._cts_seen: set[int] | None = None
        self.ct_combo = RefreshingCombo(self.refresh_layers)
        self.mask_combo = RefreshingCombo(self.refresh_layers)
        self.liver_combo = RefreshingCombo(self.refresh_layers)
        self.tumor_value = mw.SpinBox(
            value=2,
            min=1,
            max=65535,  # a 16-bit labels layer's own values too
            tooltip="The label value of tumor in the labels layer (2 as the models write it)",
        )

        # -- contour parameters (magicgui)
        d = RefineConfig()
        self.method = mw.ComboBox(
            choices=[("Chan-Vese (regions)", "chan_vese"), ("Geodesic (edges)", "geodesic")],
            value=d.method,
            label="Method",
        )
        self.iterations = mw.Slider(value=d.iterations, min=0, max=60, label="Iterations")
        self.smoothing = mw.Slider(value=d.smoothing, min=0, max=4, label="Smoothing")
        self.lambda1 = mw.FloatSpinBox(
            value=d.lambda1, min=0.01, max=10, step=0.1, label="λ inside"
        )
        self.lambda2 = mw.FloatSpinBox(
            value=d.lambda2, min=0.01, max=10, step=0.1, label="λ outside"
        )
        self.balloon = mw.FloatSlider(
            value=d.balloon, min=RANGES["balloon"][0], max=RANGES["balloon"][1], step=0.5,
            label="Balloon",
        )  # fmt: skip
        self.auto_threshold = mw.CheckBox(value=True, label="Auto threshold")
        self.threshold = mw.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, label="Threshold")
        self.alpha = mw.FloatSpinBox(value=d.alpha, min=1, max=10000, step=50, label="Alpha")
        # whole numbers: a typed "2,500" (English thousands) or "2.500" (German) is 2500, the
        # mark refused and the digits run on, never 2.5 (a comma reads as a decimal point)
        self.alpha.native.setDecimals(0)
        refuse_marks(self.alpha.native)
        self.sigma = mw.FloatSpinBox(value=d.sigma, min=0.1, max=10, step=0.25, label="σ (mm)")
        self.hu_low = mw.SpinBox(value=int(d.hu_window[0]), min=-1024, max=3071, label="HU low")
        self.hu_high = mw.SpinBox(value=int(d.hu_window[1]), min=-1024, max=3071, label="HU high")
        self.margin = mw.FloatSpinBox(
            value=d.roi_margin_mm, min=0, max=100, step=1, label="ROI margin (mm)"
        )
        self.max_shift = mw.FloatSpinBox(
            value=d.max_shift_mm, min=0, max=50, step=0.5, label="Max shift (mm)"
        )  # fmt: skip
        self.min_contrast = mw.FloatSpinBox(
            value=d.min_contrast, min=0, max=10, step=0.1, label="Min contrast (CNR)"
        )  # fmt: skip
        self.live = mw.CheckBox(value=True, label="Live preview (2D, this slice)")
        self.param_widgets = [
            self.method,
            self.iterations,
            self.smoothing,
            self.lambda1,
            self.lambda2,
            self.balloon,
            self.auto_threshold,
            self.threshold,
            self.alpha,
            self.sigma,
            self.hu_low,
            self.hu_high,
            self.margin,
            self.max_shift,
            self.min_contrast,
            self.live,
        ]
        # a grid, not magicgui's labelled rows: its label column takes the widest label as the
        # style draws it, so every input starts at the same x
        self.params = QWidget()
        grid = QGridLayout(self.params)
        grid.setContentsMargins(0, 0, 0, 0)
        self._row_labels: dict[int, QLabel] = {}
        for row, w in enumerate(self.param_widgets, start=LAYER_ROWS):
            if isinstance(w, mw.CheckBox):  # a check box carries its own text
                w.text = w.label
            else:
                label = QLabel(w.label)
                grid.addWidget(label, row, 0)
                self._row_labels[id(w)] = label
                # its inputs carry the row's name (a screen reader read them unnamed)
                from qtpy.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox

                inputs = [w.native] + w.native.findChildren(
                    (QAbstractSlider, QAbstractSpinBox, QComboBox)
                )
                for native in inputs:
                    if isinstance(native, (QAbstractSlider, QAbstractSpinBox, QComboBox)):
                        native.setAccessibleName(w.label)
            if w.native.layout() is not None:  # a slider with its read-out: no extra margin
                w.native.layout().setContentsMargins(0, 0, 0, 0)
            policy = w.native.sizePolicy()  # rows keep their own height
            policy.setVerticalPolicy(QSizePolicy.Fixed)
            w.native.setSizePolicy(policy)
            grid.addWidget(w.native, row, 1)
        grid.setColumnStretch(1, 1)
        # exactly the height the shown rows need: a short window does not squeeze them, and
        # hiding the other method's rows leaves no gaps
        self.params.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        for name, text in TOOLTIPS.items():
            getattr(self, name).tooltip = text

        # -- actions
        self.lesion_combo = RefreshingCombo(self.refresh_lesions, lists_layers=False)
        self.lesion_combo.setAccessibleName("Lesion to refine")
        self.apply_slice_button = QPushButton("Apply to slice")
        self.apply_lesion_button = QPushButton("Apply to lesion (3D)")
        self.apply_all_button = QPushButton("Apply to all (3D)")
        self.undo_button = QPushButton("Undo")
        self.reset_button = QPushButton("Reset to before refining")
        self.load_button = QPushButton("Load settings…")
        self.save_button = QPushButton("Save settings…")
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.notes = StatusLabel()
        self.notes.setAccessibleName("Refine notes")  # (a screen reader read an empty name)
        self.status = StatusLabel()
        for widget, tip in (
            (self.ct_combo, "The CT (image layer) the contours follow"),
            (self.mask_combo, "The labels layer whose tumor is refined (a segmentation)"),
            (
                self.liver_combo,
                "Where the liver comes from: the tumor never leaves it. 'same layer' takes "
                "label 1 of the tumor labels layer",
            ),
            (
                self.lesion_combo,
                "The lesion Apply to lesion (3D) refines: the one under the mouse pointer, or "
                "one chosen from the list",
            ),
            (
                self.apply_slice_button,
                "Refine the current slice with these settings and write the result into the "
                "labels: the preview outline once it is drawn for these settings (dimmed while "
                "a new one is computed). Undo takes it back",
            ),
            (self.apply_all_button, "Refine every lesion in 3D with these settings"),
            (self.apply_lesion_button, "Refine the chosen lesion in 3D with these settings"),
            (
                self.undo_button,
                "Take back the last Apply or Reset on the chosen Tumor labels (up to "
                f"{UNDO_STEPS} steps in all)",
            ),
            (
                self.reset_button,
                "Put the labels back as they were before this panel's first Apply on them (the "
                "model's output, with any painting done before it): every change since, painting "
                "too, is undone. Undo takes the reset back.",
            ),
            (self.load_button, "Read these settings from a JSON file (the CLI's --refine-config)"),
            (self.save_button, "Write these settings to a JSON file (for the CLI or later)"),
        ):
            widget.setToolTip(tip)

        # the layers' rows head the parameters' grid: one label column, every input at one x
        # (two forms put the layers' inputs 20 px left of the parameters')
        grid = self.params.layout()
        for row, (text, widget) in enumerate(
            (
                ("CT layer", self.ct_combo),
                ("Tumor labels", self.mask_combo),
                ("Tumor value", self.tumor_value.native),
                ("Liver from", self.liver_combo),
            )
        ):
            label = QLabel(text)
            label.setBuddy(widget)
            grid.addWidget(label, row, 0)
            grid.addWidget(widget, row, 1)
            # named for a screen reader, as a form's row names its input
            from qtpy.QtWidgets import QAbstractSpinBox

            for native in [widget, *widget.findChildren(QAbstractSpinBox)]:
                native.setAccessibleName(text)
        buttons = QGridLayout()
        buttons.addWidget(self.apply_slice_button, 0, 0)
        buttons.addWidget(self.apply_all_button, 0, 1)
        buttons.addWidget(self.lesion_combo, 1, 0)
        buttons.addWidget(self.apply_lesion_button, 1, 1)
        buttons.addWidget(self.undo_button, 2, 0)
        buttons.addWidget(self.reset_button, 2, 1)
        buttons.addWidget(self.load_button, 3, 0)
        buttons.addWidget(self.save_button, 3, 1)
        layout = scroll_panel(self)
        layout.addWidget(self.params)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        # notes scroll in a short box of their own: many of them must not squeeze the settings
        self.notes_box = scroll_box(self.notes, 72)
        layout.addWidget(self.notes_box)
        layout.addWidget(self.status)
        layout.addStretch(1)
        # (once all are in the panel: Qt orders widgets of one window only)
        tab_in_order(
            [
                self.ct_combo,
                self.mask_combo,
                self.tumor_value.native,
                self.liver_combo,
                *(w.native for w in self.param_widgets),
                self.apply_slice_button,
                self.apply_all_button,
                self.lesion_combo,
                self.apply_lesion_button,
                self.undo_button,
                self.reset_button,
                self.load_button,
                self.save_button,
            ]
        )
        # "0.5" and "0,5" are both 0.5 whatever the desktop's locale, shown "0.5"
        read_dots(self)
        # text a number box did not take (λ "0" under its minimum, HU low "-") goes back to the
        # value in use when the editing ends (Return and Enter too): it stayed shown beside the
        # value the preview and Apply used
        settle_number_boxes(self)

        # -- wiring
        self._closed = False  # the user closed the panel: no preview until it is back
        self._onscreen = True  # False while tabbed behind another panel
        self._onscreen_timer = QTimer(self)
        self._onscreen_timer.setInterval(300)
        self._onscreen_timer.timeout.connect(self._check_onscreen)
        self._onscreen_timer.start()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.preview_now)
        self._stale_timer = QTimer(self)
        self._stale_timer.setSingleShot(True)
        self._stale_timer.setInterval(STALE_MS)
        self._stale_timer.timeout.connect(self._mark_stale)
        for w in self.param_widgets:
            w.changed.connect(self.schedule_preview)
            w.changed.connect(self._forget_apply_notes)
        self.tumor_value.changed.connect(self.schedule_preview)
        self.tumor_value.changed.connect(self._tumor_value_changed)
        for combo in (self.ct_combo, self.mask_combo, self.liver_combo):
            combo.currentIndexChanged.connect(self.schedule_preview)
        for combo in (self.ct_combo, self.mask_combo):
            combo.currentIndexChanged.connect(self._update_apply_buttons)
        self.ct_combo.currentIndexChanged.connect(self._take_up_ct_labels)
        self._watched = None
        self._watched_ct = None  # the chosen CT: hidden or shown, the outline follows
        self._unseen_said = None  # (the CT, the clause, amber else) of an Apply said unseen
        self._eye_turned = False  # one of them hidden or shown since the last preview
        self.mask_combo.currentIndexChanged.connect(self._watch_mask_layer)
        self.ct_combo.currentIndexChanged.connect(self._watch_ct_layer)
        self.mask_combo.currentIndexChanged.connect(self._follow_mask_ct)
        self.mask_combo.currentIndexChanged.connect(self._mask_layer_changed)
        self._lesions_of = self._layer(self.mask_combo.currentText())
        self.method.changed.connect(self._show_method_controls)
        self.auto_threshold.changed.connect(self._show_method_controls)
        self.balloon.changed.connect(self._show_method_controls)
        self.apply_slice_button.clicked.connect(self._apply_slice_clicked)
        self.apply_lesion_button.clicked.connect(self._apply_lesion_clicked)
        self.apply_all_button.clicked.connect(self._apply_all_clicked)
        self.undo_button.clicked.connect(self.undo)
        self.reset_button.clicked.connect(self.reset_to_model_output)
        self.load_button.clicked.connect(self._load_settings)
        self.save_button.clicked.connect(self._save_settings)
        step_event = self.viewer.dims.events.current_step
        step_event.connect(self.schedule_preview)
        view_event = self.viewer.dims.events.ndisplay  # 3D: no slice to outline
        view_event.connect(self.schedule_preview)
        order_event = self.viewer.dims.events.order  # rolled to a sagittal or coronal view
        order_event.connect(self.schedule_preview)
        slot = self.schedule_preview
        # grid mode on or off: the note that the outline lies in a cell of its own
        grid_event = getattr(_layers.grid_of(self.viewer), "events", None)
        grid_event = getattr(grid_event, "enabled", None)
        if grid_event is not None:
            grid_event.connect(slot)
        self.destroyed.connect(lambda *_: _disconnect(step_event, slot))
        self.destroyed.connect(lambda *_: _disconnect(view_event, slot))
        self.destroyed.connect(lambda *_: _disconnect(order_event, slot))
        if grid_event is not None:
            self.destroyed.connect(lambda *_: _disconnect(grid_event, slot))
        follow_layer_list(self, self.viewer, self.refresh_layers)
        self.init_jobs(napari_viewer)
        self.refresh_layers()
        self._watch_mask_layer()
        self._watch_ct_layer()
        self.destroyed.connect(lambda *_, w=self: _unwatch(w._watched, slot))
        self.destroyed.connect(lambda *_, w=self: w._stop_preview())
        self.refresh_lesions()
        self._show_method_controls()
        self._update_undo_button()

    # ------------------------------------------------------------------ config
    def build_config(self) -> RefineConfig:
        """The :class:`RefineConfig` the controls describe."""
        return RefineConfig(
            method=self.method.value,
            iterations=int(self.iterations.value),
            smoothing=int(self.smoothing.value),
            lambda1=float(self.lambda1.value),
            lambda2=float(self.lambda2.value),
            balloon=float(self.balloon.value),
            threshold="auto" if self.auto_threshold.value else float(self.threshold.value),
            alpha=float(self.alpha.value),
            sigma=float(self.sigma.value),
            hu_window=(float(self.hu_low.value), float(self.hu_high.value)),
            roi_margin_mm=float(self.margin.value),
            max_shift_mm=float(self.max_shift.value),
            min_contrast=float(self.min_contrast.value),
        )

    def set_config(self, cfg: RefineConfig) -> list[str]:
        """Show ``cfg`` in the controls (clamped); returns and displays the clamping notes."""
        cfg, notes = cfg.validated()
        self.method.value = cfg.method
        self.iterations.value = min(cfg.iterations, self.iterations.max)
        if cfg.iterations > self.iterations.max:
            notes.append(
                f"iterations {cfg.iterations} above the slider's {self.iterations.max}: this "
                f"panel runs {self.iterations.max} (the command line would run "
                f"{cfg.iterations} from the file)"
            )
        self.smoothing.value = cfg.smoothing
        self.lambda1.value = cfg.lambda1
        self.lambda2.value = cfg.lambda2
        self.balloon.value = min(max(cfg.balloon, self.balloon.min), self.balloon.max)
        self.auto_threshold.value = cfg.threshold == "auto"
        if cfg.threshold != "auto":
            self.threshold.value = float(cfg.threshold)
        self.alpha.value = cfg.alpha
        self.sigma.value = cfg.sigma
        self.hu_low.value = int(cfg.hu_window[0])
        self.hu_high.value = int(cfg.hu_window[1])
        self.margin.value = cfg.roi_margin_mm
        self.max_shift.value = cfg.max_shift_mm
        self.min_contrast.value = cfg.min_contrast
        # a control shows fewer digits (HU in whole numbers, two decimals): said, not hidden
        shown = {
            "lambda1": (cfg.lambda1, self.lambda1), "lambda2": (cfg.lambda2, self.lambda2),
            "balloon": (cfg.balloon, self.balloon), "alpha": (cfg.alpha, self.alpha),
            "sigma": (cfg.sigma, self.sigma), "roi_margin_mm": (cfg.roi_margin_mm, self.margin),
            "max_shift_mm": (cfg.max_shift_mm, self.max_shift),
            "min_contrast": (cfg.min_contrast, self.min_contrast),
            "HU low": (cfg.hu_window[0], self.hu_low), "HU high": (cfg.hu_window[1], self.hu_high),
        }  # fmt: skip
        if cfg.threshold != "auto":
            shown["threshold"] = (float(cfg.threshold), self.threshold)
        for name, (wanted, control) in shown.items():
            if abs(float(control.value) - float(wanted)) > 1e-6:
                notes.append(
                    f"{name} {wanted:g} is set as {float(control.value):g} (the control's steps)"
                )
        self._config_notes = list(notes)  # kept visible until other settings are loaded
        self._show_notes([])
        self._show_method_controls()
        self.schedule_preview()
        return notes

    # ------------------------------------------------------------------ layers
    def refresh_layers(self, *_) -> None:
        """Offer the viewer's CT and labels layers (the plugin's own first).

        A loaded ground truth is never offered: it is what Inspect scores against, so refining
        it would silently change the reference.
        """
        try:
            ct_list = _layers.ct_layers(self.viewer)
            cts = [ly.name for ly in ct_list]
            # a scan loaded since the last look (the next patient's): the one to refine next,
            # as Segment offers it; the panel stayed on the last patient until Segment ran,
            # and its Apply rewrote that patient's (exported) labels under the new scan. Only
            # the plugin's CTs (Load, its reader): another 3D image is no patient to follow
            seen = self._cts_seen
            new_cts = [
                ly
                for ly in ct_list
                if seen is not None and id(ly) not in seen and ly.metadata.get(_layers.ROLE) == "ct"
            ]
            self._cts_seen = {id(ly) for ly in ct_list}
            labels = [
                ly.name
                for ly in _layers.labels_layers(self.viewer)
                if ly.name != PREVIEW_NAME
                and ly.metadata.get(_layers.ROLE) not in ("ground_truth", *_layers.NOT_LABELS_ROLES)
            ]
            # segmentations first, visible ones first (not a hidden "(previous)"), the newest
            # first (as Inspect and Export list them)
            index = {ly.name: i for i, ly in enumerate(self.viewer.layers)}
            labels.sort(
                key=lambda n: (
                    self.viewer.layers[n].metadata.get(_layers.ROLE) != "segmentation",
                    not self.viewer.layers[n].visible,
                    -index.get(n, -1),
                )
            )
            segs = [self.viewer.layers[n] for n in labels]
            new = [ly.name for ly in segs if id(ly) not in self._labels_seen]
            self._labels_seen = {id(ly) for ly in segs}
            had = self.mask_combo.currentText()
            _set_items(self.ct_combo, cts)
            _set_items(self.mask_combo, labels, keep_none=True)
            _set_items(self.liver_combo, [SAME_LAYER, *labels, NO_LIVER])
            opened: list[str] = []
            if had in labels:  # a choice stands unless a segmentation was just made (napari's
                # New labels layer took it over, and the panel then said "no tumor" over one)
                new = [
                    n
                    for n in new
                    if self.viewer.layers[n].metadata.get(_layers.ROLE) == "segmentation"
                ]
                # a labels file opened (an earlier result, to compare): said, not taken over;
                # it took the choice mid-refinement, Undo greyed and the next Apply into it
                opened = [n for n in new if OPENED_FROM in self.viewer.layers[n].metadata]
                new = [n for n in new if n not in opened]
            if new:  # a segmentation just made: the layer to refine next
                # (on the first fill every layer is new: the shown one added last, never a
                # hidden "(previous)" that a re-run moved aside)
                order = {ly.name: i for i, ly in enumerate(self.viewer.layers)}
                self.mask_combo.setCurrentText(
                    max(new, key=lambda n: (self.viewer.layers[n].visible, order.get(n, -1)))
                )
            if new_cts:
                self._follow_new_ct(new_cts[-1], labels)
            elif opened and self.mask_combo.currentText() == had:
                set_status(
                    self.status,
                    f"Opened '{opened[-1]}': still refining '{had}' (choose the opened one "
                    "under Tumor labels to refine it).",
                    scroll=False,
                )
            self._follow_mask_ct()
            # another layer under the chosen name (a Segment rerun's, the old one moved aside):
            # the combo's index did not change, so its signals did not come
            if hasattr(self, "_lesions_of"):  # (not while the panel is being built)
                if self._layer(self.mask_combo.currentText()) is not self._watched:
                    self._watch_mask_layer()
                    self.schedule_preview()  # the outline of the new layer's mask
                if self._layer(self.ct_combo.currentText()) is not self._watched_ct:
                    self._watch_ct_layer()
                self._mask_layer_changed()  # (nothing when it is the layer it had)
            # steps on a deleted layer cannot be undone: Undo (n) counts only the others
            alive = [
                st
                for st in self.history.steps
                if getattr(st, "viewer", None) is not self._viewer_ref
                or st.target in self.viewer.layers
            ]
            if len(alive) != len(self.history.steps):
                self.history.steps[:] = alive
                self._update_undo_button()
            self._update_apply_buttons()
        except RuntimeError:  # the widget is being deleted
            return

    def _follow_new_ct(self, ct_layer, labels: list[str]) -> None:
        """A CT just loaded: chosen, with the labels made on it (``labels``: those offered,
        in the combo's order), or with none when it has none yet (the hint then says to
        segment it, and Apply waits). The last patient's layers stay offered: chosen by hand,
        they are refined as before."""
        mask = self._layer(self.mask_combo.currentText())
        if mask is not None and self._on_scan(mask, ct_layer):
            # the same scan again (napari's Duplicate Layer, its series loaded twice): no
            # other patient, its labels stay chosen; said when the copy covers them
            self._say_covered(ct_layer)
            return
        self.ct_combo.setCurrentText(ct_layer.name)
        if mask is None or not self._made_on(mask, ct_layer):
            own = self._own_labels(ct_layer, labels)
            if own:
                self.mask_combo.setCurrentText(own[0])
            else:
                self.mask_combo.setCurrentIndex(-1)
        liver = self._layer(self.liver_combo.currentText())
        if liver is not None and not self._made_on(liver, ct_layer):
            self.liver_combo.setCurrentText(SAME_LAYER)  # (the last patient's liver)
        # what the status said was of the last patient's layers (its Apply, its slice)
        if not self.busy:
            set_status(self.status, "", scroll=False)
            self._forget_apply_notes()
            self._show_notes([])
        self._say_covered(ct_layer)

    def _say_covered(self, ct_layer) -> None:
        """A scan just loaded lies over the labels chosen for it (those of another copy of
        its scan: it has none of its own yet): said, naming both. Unsaid, the user watched the
        new copy while the outline and every Apply went to the labels under it."""
        mask = self._layer(self.mask_combo.currentText())
        if mask is None or self.busy or not _covers(self.viewer, ct_layer, mask):
            return
        text = (
            f"'{ct_layer.name}' has no tumor labels of its own yet: Refine works on "
            f"'{mask.name}' of the same scan, which lies under it. Hide '{ct_layer.name}' "
            f"(its eye in the layer list) or drag '{mask.name}' above it to see the outline "
            f"and what Apply writes, or segment '{ct_layer.name}' (panel 2)."
        )
        set_status(self.status, text, warning=True, scroll=False)
        self._preview_error = False  # (the preview's outline does not answer it)
        self._watch_cover(text, ct_layer, mask)

    def _watch_cover(self, text: str, ct_layer, mask) -> None:
        """Clear ``text`` from the status once ``ct_layer`` no longer covers ``mask``
        (hidden, faded, or one of them moved), as the hidden-layer refusal goes when the
        labels are shown again: it went on telling the user to do what they had done."""
        self._cover_said = (text, ct_layer, mask)
        for event in (
            ct_layer.events.visible, ct_layer.events.opacity, ct_layer.events.blending,
            self.viewer.layers.events.moved,
        ):  # fmt: skip
            event.connect(self._cover_changed)  # (once: napari keeps one of each)

    def _cover_changed(self, *_) -> None:
        said = self._cover_said
        if said is None:
            return
        text, ct_layer, mask = said
        try:
            if self.status.text() != text:  # said over since: nothing of it to clear
                self._cover_said = None
                return
            layers = self.viewer.layers
            if ct_layer in layers and mask in layers and _covers(self.viewer, ct_layer, mask):
                return
        except RuntimeError:  # the widget is being deleted
            return
        self._cover_said = None
        set_status(self.status, "", scroll=False)

    def _take_up_ct_labels(self, *_) -> None:
        """Another CT chosen (by hand, or the chosen one deleted) while the tumor labels chosen
        are not its own (another patient's), or none are (a scan loaded since, not
        segmented): that CT's own labels are taken up, as at a Load (:meth:`_follow_new_ct`),
        and as choosing labels takes their CT (:meth:`_follow_mask_ct`). With the next
        patient's scan closed unsegmented, the panel fell back to the last patient's CT with
        none chosen, said "No tumor labels of '…' yet" beside that patient's segmentation and
        kept Apply off; with two patients open, choosing the first one's CT kept the second
        one's labels and said their grids differ. Labels of its scan chosen stay so, and
        without labels of its own the choice stands (the status says what does not fit)."""
        ct_layer = self._layer(self.ct_combo.currentText())
        if ct_layer is None:
            return
        mask = self._layer(self.mask_combo.currentText())
        if mask is not None and self._made_on(mask, ct_layer):
            return  # its labels chosen stay so
        listed = [self.mask_combo.itemText(i) for i in range(self.mask_combo.count())]
        own = self._own_labels(ct_layer, listed)
        if not own:
            return
        self.mask_combo.setCurrentText(own[0])
        liver = self._layer(self.liver_combo.currentText())
        if liver is not None and not self._made_on(liver, ct_layer):
            self.liver_combo.setCurrentText(SAME_LAYER)  # (the other patient's liver)

    def _own_labels(self, ct_layer, labels: list[str]) -> list[str]:
        """The labels of ``labels`` (names, in the combo's order) that belong to ``ct_layer``
        (:meth:`_made_on`): those naming it first, then those of another CT of its scan."""
        layers = [self.viewer.layers[n] for n in labels if n in self.viewer.layers]
        own = [ly for ly in layers if self._made_on(ly, ct_layer)]
        own.sort(key=lambda ly: _layers.linked_ct_name(ly, self.viewer) != ct_layer.name)
        return [ly.name for ly in own]

    def _made_on(self, layer, ct_layer) -> bool:
        """Whether the labels ``layer`` belong to ``ct_layer``, as the panel pairs them: the
        CT it names (:meth:`_follow_mask_ct`) or another CT of the identical scan (the same
        scan loaded twice, "… [2]": its segmentation was not taken up for the new copy), or
        for labels naming none, that CT's grid and scan (the checks an Apply makes,
        :meth:`_inputs`)."""
        own = _layers.linked_ct_name(layer, self.viewer)
        if own == ct_layer.name:
            return True
        if own and (
            layer.metadata.get(_layers.CT_VOLUME) is None
            or ct_layer.metadata.get(_layers.CT_VOLUME) is None
        ):
            return False  # (another CT named, and no scan to tell it is this one's)
        return self._on_scan(layer, ct_layer)

    @staticmethod
    def _on_scan(layer, ct_layer) -> bool:
        """Whether the labels ``layer`` lie on ``ct_layer``'s grid and are of its scan."""
        try:
            _check_same_grid(ct_layer, layer)
        except ValueError:
            return False
        return _layers.same_scan(layer, ct_layer)

    def _update_apply_buttons(self, *_) -> None:
        """The Apply buttons wait for a CT and its tumor labels to be chosen (a scan just
        loaded has none until it is segmented). One running stays usable: it reads Cancel."""
        ready = bool(self.ct_combo.currentText()) and bool(self.mask_combo.currentText())
        try:
            for button in (
                self.apply_slice_button, self.apply_lesion_button, self.apply_all_button
            ):  # fmt: skip
                job = getattr(self, "jobs", {}).get(button)
                if job is None or not job.running:
                    button.setEnabled(ready)
        except RuntimeError:  # the widget is being deleted
            pass

    def _follow_mask_ct(self, *_) -> None:
        """Choose the CT the chosen labels layer was made on (its metadata names it), or,
        for labels that name none (a file opened beside another patient's scan), the one CT
        on its grid when the chosen one is not: the panel stayed on the other scan, saying
        "not the same grid" until the CT was chosen by hand."""
        layer = self._layer(self.mask_combo.currentText())
        own = _layers.linked_ct_name(layer, self.viewer)
        if not own and layer is not None:
            chosen = self._layer(self.ct_combo.currentText())
            if chosen is None or not _layers.on_one_grid(
                chosen.data.shape, chosen.scale, chosen.translate,
                layer.data.shape, layer.scale, layer.translate,
            ):  # fmt: skip
                fits = _layers._cts_on_grid(layer, self.viewer.layers)
                own = fits[0].name if len(fits) == 1 else None
        if own and self.ct_combo.findText(own) >= 0 and self.ct_combo.currentText() != own:
            self.ct_combo.setCurrentText(own)

    def _mask_layer_changed(self, *_) -> None:
        """Another tumor labels layer (the next patient's): the lesion list was the layer
        before's, and Apply took its stored voxels to the new one (refining whichever lesion
        lay there, or saying "they were edited"). The list starts again at "under the mouse"
        (filled from the new layer when opened), and the last Apply's notes go with it."""
        layer = self._layer(self.mask_combo.currentText())
        if layer is self._lesions_of:
            return
        before, self._lesions_of = self._lesions_of, layer
        self._forget_apply_notes()
        # the status and notes told of the layer before (an Apply's counts, its lesions); an
        # Apply running says what it does there, and then what it did (to the layer it began on)
        applying = any(
            (job := self.jobs.get(b)) is not None and job.running
            for b in (self.apply_slice_button, self.apply_lesion_button, self.apply_all_button)
        )
        if not applying:
            set_status(self.status, self._moved_aside_text(before, layer))
        self._show_notes([])
        # Undo takes back the steps on this layer, not the last patient's (Reset too)
        self._update_undo_button()
        self.lesion_combo.clear()
        self.lesion_combo.addItem(UNDER_CURSOR, None)
        self.lesion_combo.setCurrentIndex(0)

    def _moved_aside_text(self, before, layer) -> str:
        """What became of the refinement made on ``before`` when a rerun of Segment moved it
        aside for ``layer`` ("" otherwise): the panel's own line of it went with the layer."""
        if before is None or layer is None or before not in self.viewer.layers:
            return ""
        if not self._moved_aside_from(before, layer):
            return ""
        if not any(st.target is before for st in self.undo_steps()):
            return ""  # (nothing refined there)
        hidden = "" if before.visible else " (hidden)"
        return (
            f"A rerun of Segment replaced the labels refined here: that refinement is in "
            f"'{before.name}'{hidden}, where Undo still takes it back. Applies now go into "
            f"'{layer.name}'."
        )

    def _tumor_value_changed(self, *_) -> None:
        """Another tumor value: the lesions listed were those of the value before (Apply to a
        listed lesion then said it was "no longer in the tumor labels"). The list starts again
        at "under the mouse" (filled with the new value's lesions when opened)."""
        if self.lesion_combo.count() > 1:
            self.lesion_combo.clear()
            self.lesion_combo.addItem(UNDER_CURSOR, None)
            self.lesion_combo.setCurrentIndex(0)

    def refresh_lesions(self) -> None:
        """The lesion list: "under the mouse", then every lesion of the tumor mask by size."""
        current = self.lesion_combo.currentText()
        self.lesion_combo.clear()
        self.lesion_combo.addItem(UNDER_CURSOR, None)
        try:  # checked on one slice; then only the tumor of the whole volume is needed
            inputs = self._inputs(0)
        except ValueError:
            inputs = None
        if inputs is not None:
            _, mask_layer, _, _, spacing = inputs
            tumor = np.asarray(mask_layer.data) == int(self.tumor_value.value)
            try:  # the grid's |det|: as Inspect and the stats measure (a skewed grid too)
                voxel_ml = _layers.volume_of(mask_layer, self.viewer.layers).voxel_volume_ml
            except ValueError:
                voxel_ml = float(np.prod(spacing)) / 1000.0
            # numbered by size, largest first, as Inspect, the stats and lesions.csv number them;
            # each entry holds a voxel of its lesion, not a component id: ids change when the
            # labels are edited, and Apply then refined another lesion than the one chosen
            for rank, (size, voxel) in enumerate(_lesions_by_size(tumor), start=1):
                self.lesion_combo.addItem(f"lesion {rank}: {_size_text(size, voxel_ml)}", voxel)
        idx = self.lesion_combo.findText(current)
        if idx < 0 and current.startswith("lesion "):  # its size changed (an Apply): its number
            number = current.split(":")[0] + ":"
            idx = next(
                (i for i in range(self.lesion_combo.count())
                 if self.lesion_combo.itemText(i).startswith(number)),
                -1,
            )  # fmt: skip
        self.lesion_combo.setCurrentIndex(max(idx, 0))

    def _layer(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _inputs(self, z: int | None = None, apply: bool = False):
        """``(ct_layer, mask_layer, tumor, liver, spacing)`` for the chosen layers.

        With ``z``, ``tumor`` and ``liver`` are that slice only (the preview needs no more, and
        the whole volume would cost the GUI thread tens of ms on a 512² CT).
        Raises ValueError with the message to show when they cannot be used together.
        """
        ct_layer = self._layer(self.ct_combo.currentText())
        mask_layer = self._layer(self.mask_combo.currentText())
        if ct_layer is None:
            raise ValueError(
                "Choose a CT image layer."
                if self.ct_combo.count()
                else "Load a CT first (panel 1), then segment it (panel 2)."
            )
        if mask_layer is None:
            raise ValueError(
                "Choose the labels layer holding the tumor."
                if self.mask_combo.count()
                else "No labels layer yet: segment the CT first (panel 2)."
            )
        if apply and not mask_layer.visible:  # never applied into a layer nobody sees
            raise ValueError(_hidden_text(mask_layer, "Tumor labels layer", "before applying"))
        _check_same_grid(ct_layer, mask_layer, apply)
        if not _layers.same_scan(mask_layer, ct_layer):
            # another scan on the same grid (the other phase of a study, another patient's
            # file on one grid): refined with its HU, as the combo had switched to it unsaid
            own = mask_layer.metadata.get(_layers.CT_LAYER)
            raise ValueError(
                f"'{ct_layer.name}' is not the scan '{mask_layer.name}' was made on ('{own}'):"
                f" choose '{own}' as the CT layer (open it again if it was closed), or the "
                f"labels made on '{ct_layer.name}'." + (" Nothing was applied." if apply else "")
            )
        index = slice(None) if z is None else min(max(int(z), 0), mask_layer.data.shape[0] - 1)
        data = np.asarray(mask_layer.data[index])
        value = int(self.tumor_value.value)
        tumor = data == value
        liver_choice = self.liver_combo.currentText()
        if liver_choice == NO_LIVER:
            liver = None
        elif liver_choice in ("", SAME_LAYER):
            if value == 1:  # the liver's own value: the whole liver would be one "lesion"
                raise ValueError(
                    "Tumor value 1 is the liver's value in a segmentation: set the tumor value "
                    "(2 in this plugin's segmentations), or for a tumor-only mask choose "
                    f"Liver from '{NO_LIVER}' or a liver layer."
                )
            if tumor.any() and not (data == 1).any():
                # checked on the whole layer when this slice has none (its liver may start
                # further on); without a liver the contour could only shrink the tumor, and
                # what it took away would be written as liver into a layer that had none
                whole = data if z is None else np.asarray(mask_layer.data)
                if not (whole == 1).any():
                    raise ValueError(
                        f"'{mask_layer.name}' holds no liver (value 1), and the contour is kept "
                        f"inside the liver: for a tumor-only mask choose Liver from "
                        f"'{NO_LIVER}' or a liver layer."
                    )
            liver = (data == 1) | tumor
        else:
            liver_layer = self._layer(liver_choice)
            if liver_layer is None:
                raise ValueError(f"The liver layer '{liver_choice}' is gone; choose another.")
            _check_same_grid(ct_layer, liver_layer, apply)
            liver = (np.asarray(liver_layer.data[index]) > 0) | tumor
        if apply:  # nor into one a CT above it covers (another scan's, a copy of its own)
            self._refuse_covered(mask_layer, tumor if z is None else None)
        spacing = tuple(float(s) for s in ct_layer.scale)
        return ct_layer, mask_layer, tumor, liver, spacing

    def _refuse_covered(self, mask_layer, tumor=None) -> None:
        """Refuse an Apply into labels a CT layer covers where it writes: on the slice shown,
        or (``tumor``: the whole layer's, for Apply to all or to a lesion) over the tumor's
        box. The labels' whole box refused a CT that covered only slices without tumor."""
        on_slice = tumor is None
        over = _covering(self.viewer, mask_layer, on_slice=on_slice)
        if over is not None and not on_slice:
            region = _world_box(mask_layer, tumor)
            over = None if region is None else _covering(self.viewer, mask_layer, region=region)
        if over is None:
            return
        text = (
            f"'{mask_layer.name}' lies under '{over.name}', which covers it: hide "
            f"'{over.name}' (its eye in the layer list) or drag '{mask_layer.name}' "
            "above it, before applying."
        )
        self._watch_cover(text, over, mask_layer)
        raise ValueError(text)

    def axial_view(self) -> bool:
        """True when the viewer shows axial slices (2D, rows and columns displayed): what a
        slice's outline and Apply to slice work on. A 3D view, or one rolled to sagittal or
        coronal slices, shows no axial slice."""
        return _layers.shows_axial(self.viewer)

    def current_slice(self, layer) -> int:
        """The data index along the first axis of the slice the viewer shows."""
        point = layer.world_to_data(self.viewer.dims.point[-layer.ndim :])
        return int(np.clip(round(float(point[0])), 0, layer.data.shape[0] - 1))

    def slice_shown(self, layer) -> int | None:
        """:meth:`current_slice`, or None when the slider stands outside ``layer``'s slices
        (another, longer scan is open: it was clamped to this one's end slice)."""
        point = layer.world_to_data(self.viewer.dims.point[-layer.ndim :])
        z = round(float(point[0]))
        return z if 0 <= z < layer.data.shape[0] else None

    def _watch_mask_layer(self, *_) -> None:
        """Refresh the preview when the user paints in, undoes a stroke in (napari's Ctrl+Z) or
        replaces the tumor labels."""
        _unwatch(self._watched, self.schedule_preview)
        if self._watched is not None:
            _disconnect(self._watched.events.visible, self._visibility_changed)
        layer = self._layer(self.mask_combo.currentText())
        self._watched = layer
        if layer is not None:
            _layers.connect_edits(layer, self.schedule_preview)
            layer.events.visible.connect(self._visibility_changed)

    def _watch_ct_layer(self, *_) -> None:
        """Follow the chosen CT's eye: hidden, the outline goes (:meth:`preview_now`)."""
        if self._watched_ct is not None:
            _disconnect(self._watched_ct.events.visible, self._visibility_changed)
        layer = self._layer(self.ct_combo.currentText())
        self._watched_ct = layer
        if layer is not None:
            layer.events.visible.connect(self._visibility_changed)

    def _visibility_changed(self, event=None) -> None:
        """The tumor layer or its CT hidden: the outline goes, said (:meth:`preview_now`).
        Shown again: it comes back, and the "is hidden" complaint (an Apply's, the preview's)
        is answered."""
        try:
            for layer in (self._watched, self._watched_ct):
                if layer is not None and layer.visible:
                    clear_status_if(self.status, f"'{layer.name}' is hidden")
            self._answer_unseen()
            self._eye_turned = True
            self.schedule_preview()
        except RuntimeError:  # the widget is being deleted
            pass

    def _answer_unseen(self) -> None:
        """The CT an Apply said hidden (:func:`_ct_hidden_text`) shown again: the clause
        goes from its line, still said."""
        said = self._unseen_said
        if said is None:
            return
        ref, clause, again = said
        ct_layer = ref()
        text = self.status.text()
        if ct_layer is None or clause not in text:  # gone, or something else said since
            self._unseen_said = None
        elif ct_layer.visible:
            self._unseen_said = None
            set_status(self.status, text.replace(clause, ""), warning=again, scroll=False)

    # ------------------------------------------------------------------ preview
    def panel_closed(self) -> None:
        """A closed panel leaves no preview outline behind that no longer follows anything."""
        self._closed = True
        self._stop_preview()
        try:
            self._timer.stop()
            self._stale_timer.stop()
            self._onscreen_timer.stop()  # a closed panel polls nothing
            # the preview layer is shared: another Refine panel still open keeps it
            window = self.viewer.window._qt_window
            if not [
                w for w in window.findChildren(RefineWidget) if w is not self and not w._closed
            ]:
                # gone from the layer list too (an empty hidden layer stayed there, clutter
                # that followed the user to the next patient); made anew when a panel opens
                layer = self.preview_layer()
                if layer is not None and layer.metadata.get(_layers.ROLE) == "preview":
                    self.viewer.layers.remove(layer)
        except Exception:  # noqa: BLE001 - the viewer may be closing too
            pass

    def _check_onscreen(self) -> None:
        """Tabbed behind another panel (Inspect, Export) the outline goes, or it looked like
        part of the mask being measured; it comes back with the tab. (napari's tabbed docks
        stay "visible" to Qt: what shows is the panel's visible region.) A window not shown at
        all (a script) keeps the preview going."""
        try:
            window = self.window()
            onscreen = not window.isVisible() or not self.visibleRegion().isEmpty()
        except RuntimeError:  # deleted
            return
        if onscreen == self._onscreen:
            return
        self._onscreen = onscreen
        if self._closed:
            return
        if onscreen:
            self.schedule_preview()
            return
        self._timer.stop()
        try:
            others = [
                w
                for w in self.viewer.window._qt_window.findChildren(RefineWidget)
                if w is not self and w._onscreen and not w._closed
            ]
        except Exception:  # noqa: BLE001 - the viewer may be closing
            return
        if not others:
            self._clear_preview()

    def panel_opened(self) -> None:
        if getattr(self, "_closed", False):  # (docked from __init__: not set yet)
            self._closed = False
            self._onscreen_timer.start()
            self.schedule_preview()

    def _stop_preview(self) -> None:
        """Stop the preview computing (the panel closed or deleted, or a newer change asks for
        another): its contour ends at its next step, and its result is not shown."""
        if self._preview_cancel is not None:
            self._preview_cancel.set()

    def schedule_preview(self, *_) -> None:
        """(Re)start the debounce timer; the preview is computed when the user pauses. Not drawn
        :data:`STALE_MS` after the change, the outline on screen is marked as the one before it
        (:meth:`_mark_stale`)."""
        self._generation += 1
        if self._closed:
            return
        try:
            if self.live.value:
                self._timer.start()
                self._stale_timer.start()
            else:  # live preview off: no outline left over the slice (it outlived the tick)
                self._timer.stop()
                self._preview_again = False
                self._clear_preview()
        except RuntimeError:  # deleted
            pass

    def _tumor_near(self, mask_layer, z: int, shape, value: int | None = None) -> np.ndarray:
        """The tumor on the slices above and below ``z``, as they are now: a piece touching it
        is part of a lesion of more slices, not a crumb (two slices: read here, cheaply)."""
        if value is None:
            value = self._chosen()[1]  # the tumor value Apply writes
        data = mask_layer.data
        near = np.zeros(shape, bool)
        for k in (z - 1, z + 1):
            if 0 <= k < data.shape[0]:
                near |= np.asarray(data[k]) == value
        return near

    def _mark_stale(self) -> None:
        """A change's outline is still being computed (a heavy preview takes seconds): the
        outline drawn, of the settings before it, is dimmed and the notes say a new one is on
        its way. It stood unmarked beside the new settings, and Apply to slice wrote another
        outline than the one shown."""
        try:
            pending = self._timer.isActive() or self._preview_busy
            if self._closed or not self.live.value or not pending:
                return
            if self._shown_generation == self._generation:  # (drawn meanwhile)
                return
            self._set_stale(True)
        except RuntimeError:  # the widget is being deleted
            pass

    def _set_stale(self, stale: bool) -> None:
        """Dim the outline drawn (``stale``) or draw it in full again, and say so in the notes."""
        if stale == self._stale:
            return
        self._stale = stale
        layer = self.preview_layer()
        if layer is not None and layer.metadata.get(_layers.ROLE) == "preview":
            layer.opacity = STALE_OPACITY if stale else 1.0
        self._show_notes(self._preview_notes)

    def _stale_text(self) -> str:
        """What the notes say while the outline is being updated."""
        layer = self.preview_layer()
        ct_layer = self._layer(self.ct_combo.currentText())
        drawn = (
            layer is not None
            and layer.visible
            and ct_layer is not None
            and layer.metadata.get("slice") == self.slice_shown(ct_layer)
        )
        if not drawn:
            return "Computing the outline of this slice…"
        return (
            "Updating the outline… The dimmed one is from before the last change: Apply to "
            "slice writes the new one."
        )

    def preview_now(self) -> None:
        """Refine the current slice in a worker and show it in the preview layer."""
        if self._preview_busy:
            # the settings (or slice) changed while one computes: it stops at its next step
            # and the new one starts when it has (a heavy preview ran its seconds to its end
            # first, for an outline nobody would see)
            self._preview_again = True
            self._stop_preview()
            return
        if not self.axial_view() or not self._onscreen:
            # 3D: no slice is shown, an outline would be a slab; sagittal or coronal: the
            # outline is an axial slice's; tabbed away: not seen
            self._clear_preview()
            rolled = self._onscreen and self.viewer.dims.ndisplay == 2
            in_3d = self._onscreen and self.viewer.dims.ndisplay == 3
            if (rolled or in_3d) and self._view_was_axial:  # said when the view turns, not
                # over a result (in 3D it said nothing until Apply to slice was clicked)
                set_status(self.status, _NOT_AXIAL if rolled else _IN_3D, scroll=False)
                self._preview_error = True  # a hint to clear once there is an outline
            self._view_was_axial = not (rolled or in_3d)
            return
        self._view_was_axial = True
        ct_layer = self._layer(self.ct_combo.currentText())
        hidden = self._hidden_input(ct_layer)
        turned, self._eye_turned = self._eye_turned, False
        if hidden:  # another patient's outline over the scan on view (its layers hidden to go
            # back to an earlier patient): none drawn, said as Apply refuses such labels
            self._clear_preview()
            self._show_notes([])  # (of the hidden layers' slice)
            # said when the eye turns or nothing else is said; an Apply running keeps its
            # "Refining…", and what it (or an Undo) said of the hidden layer since stays
            said = self.status.text()
            if not self.busy and (turned or not said or said == hidden):
                set_status(self.status, hidden, warning=True, scroll=False)
                self._preview_error = True  # a hint to clear once there is an outline
            return
        z = 0 if ct_layer is None else self.slice_shown(ct_layer)
        if z is None:  # the slider beyond this scan's slices: no outline of it on screen
            self._clear_preview()
            # (the last slice's note, "slice 19 (this one)", stood under another slice)
            self._show_notes([])
            if self.status._kind != "error" or self._preview_error:  # an Apply's refusal stays
                set_status(
                    self.status,
                    f"No outline: the slice on screen lies outside '{ct_layer.name}'.",
                    scroll=False,
                )
                self._preview_error = True  # a hint to clear once there is an outline
            return
        try:
            ct_layer, mask_layer, tumor2d, liver2d, spacing = self._inputs(z)
        except ValueError as exc:
            self._clear_preview()
            # the notes of the outline drawn before (another patient's "no tumor on this
            # slice") stood beside the complaint about the layers now chosen
            self._show_notes([])
            if self.busy:  # an Apply runs: its "Refining…" stays until it ends and says
                return
            if not self.ct_combo.currentText() or not self.mask_combo.currentText():
                if self.status.text().startswith(("Applied to ", "Undid", "Reset to ")):
                    return  # what an Apply just did (its CT deleted meanwhile) stays said
                if self.status._kind == "error" and not self._preview_error:
                    # an Apply's failure ("… removed while refining; nothing applied") stays:
                    # the layer list's refresh replaced it at once with the hint below
                    return
                # nothing to refine yet (an empty viewer, or a CT not segmented): a hint
                hint = (
                    f"No tumor labels of '{self.ct_combo.currentText()}' yet: segment it "
                    "(panel 2); the outline shows here."
                    if self.ct_combo.currentText() and self.mask_combo.count()
                    else "Segment the CT (panel 2); the outline shows here."
                    if self.ct_combo.currentText()
                    else f"No CT open for '{self.mask_combo.currentText()}': open its scan "
                    "(panel 1) to see the outline."
                    if self.mask_combo.currentText()
                    else "Load a CT and segment it; the outline shows here."
                )
                set_status(self.status, hint, scroll=False)
                self._preview_error = True  # a hint to clear once there is an outline
                return
            set_status(self.status, str(exc), error=True)
            self._preview_error = True
            return
        cfg = self.build_config()
        ct2d = np.array(ct_layer.data[z])
        generation = self._generation
        self._preview_busy = True
        self._preview_requested_at = time.perf_counter()
        # as Apply to slice writes it: without the crumbs it drops (the outline showed them)
        min_ml = _sliver_ml(mask_layer)
        near = self._tumor_near(mask_layer, z, tumor2d.shape)
        cancel = self._preview_cancel = threading.Event()

        def compute():
            notes: list[str] = []
            out = refine_slice(
                ct2d, tumor2d, liver2d, spacing[1:], cfg, should_cancel=cancel.is_set,
                notes=notes,
            )  # fmt: skip
            # (dropped unsaid: nothing is written by a preview, nor undone: "Undo brings it
            # back" is said of an Apply)
            notes = [n.replace(_UNDO_BRINGS_BACK, "") for n in notes]
            return _without_slice_crumbs(near, tumor2d, out, spacing, min_ml, []), notes

        def done(result) -> None:
            out, notes = result
            if generation != self._generation:
                return  # the user moved on meanwhile: drop the stale result
            if not self._onscreen or not self.axial_view():
                return  # tabbed away or turned meanwhile: nothing to show it on
            self._show_preview(ct_layer, z, out)
            self._shown_generation = generation
            self._set_stale(False)
            self._show_notes(notes)
            if _layers.grid_on(self.viewer):  # the outline drawn in a cell of its own
                if self._preview_error or not self.status.text():
                    set_status(self.status, _GRID_NOTE, scroll=False)
                    self._preview_error = True  # a hint to clear once grid mode is off
            elif self._preview_error:  # the problem shown earlier is gone
                self._preview_error = False
                set_status(self.status, "")
            self.last_preview_ms = (time.perf_counter() - self._preview_requested_at) * 1000
            self.preview_count += 1

        def failed(exc) -> None:
            if isinstance(exc, Cancelled) or self._closed:  # stopped: the panel closed
                return
            self._preview_error = True
            self._clear_preview()  # (the outline of the settings before, dimmed, went on)
            set_status(self.status, f"Preview failed: {exc}", error=True)

        def finished() -> None:
            self._preview_busy = False
            if self._preview_cancel is cancel:
                self._preview_cancel = None
            if self._preview_again:
                self._preview_again = False
                try:
                    if self.live.value and not self._closed:  # (unticked meanwhile: none)
                        self.preview_now()
                except RuntimeError:  # the panel deleted while its preview ran
                    pass

        from superqt.utils import create_worker

        # its failure is the red line above, not also a traceback for every slider move
        worker = create_worker(compute, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.finished.connect(finished)
        from ._jobs import start_worker

        # stopped at the panel's close and waited for at the interpreter's exit, as a job is
        start_worker(worker, cancel, "the Refine preview")

    def _hidden_input(self, ct_layer) -> str:
        """Why no outline is drawn when the chosen tumor labels' CT is hidden by its eye
        (another patient's layers hidden to go back to an earlier one; Apply's wording), ""
        when it is shown. The labels hidden alone keep their outline: hiding the overlay to
        see the CT's edges under the outline is how it is tuned."""
        mask_layer = self._layer(self.mask_combo.currentText())
        if ct_layer is not None and mask_layer is not None and not ct_layer.visible:
            return _hidden_text(ct_layer, "CT layer", "to see the outline")
        return ""

    def preview_layer(self):
        return self._layer(PREVIEW_NAME)

    def preview_mask2d(self) -> np.ndarray | None:
        """The previewed mask of the shown slice, full slice size (None before any preview)."""
        layer = self.preview_layer()
        if layer is None or "shape2d" not in layer.metadata:
            return None
        full = np.zeros(layer.metadata["shape2d"], bool)
        if not layer.visible:  # an empty preview is a hidden layer
            return full
        y0, x0 = layer.metadata["offset"]
        crop = np.asarray(layer.data[0]).astype(bool)
        full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        return full

    def _show_preview(self, ct_layer, z: int, mask2d: np.ndarray) -> None:
        if self._closed:  # a preview computed as the panel closed
            return
        # The preview layer holds only the lesions' box on one slice, placed by its translate:
        # updating it is cheap, and napari shows it on that slice only.
        # Nothing to show hides the layer: shrinking it to one voxel instead crashed vispy's
        # software GL when that layer was left alone in the viewer.
        rows, cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(mask2d.any(axis=0))
        if rows.size == 0:
            self._clear_preview()
            layer = self.preview_layer()
            if layer is not None:
                layer.metadata.update(slice=z, shape2d=tuple(mask2d.shape))
            return
        y0, x0 = max(int(rows[0]) - 2, 0), max(int(cols[0]) - 2, 0)
        y1, x1 = int(rows[-1]) + 3, int(cols[-1]) + 3
        crop = mask2d[y0:y1, x0:x1].astype(np.uint8)[None]
        scale = np.asarray(ct_layer.scale, float)
        translate = np.asarray(ct_layer.translate, float) + scale * (z, y0, x0)
        layer = self.preview_layer()
        if layer is None:
            layer = self.viewer.add_labels(
                crop,
                name=PREVIEW_NAME,
                scale=scale,
                translate=translate,
                affine=_affine_of(ct_layer),  # turned with it in napari (transform mode)
                opacity=1.0,
                metadata={_layers.ROLE: "preview"},
            )
            layer.contour = 1
            _layers.set_preview_color(layer)  # (the palette's; a palette chosen later too)
            layer.editable = False
            # keep the user's selection on the layers they work with
            self.viewer.layers.selection.active = self._layer(self.mask_combo.currentText())
        else:
            # only what changed: each is a refresh of the layer (about 7 ms; four per preview)
            if not np.array_equal(np.asarray(layer.scale, float), scale):
                layer.scale = scale
            if not np.array_equal(np.asarray(layer.translate, float), translate):
                layer.translate = translate
            affine = _affine_of(ct_layer)
            if not np.array_equal(_affine_of(layer), affine):
                layer.affine = affine
            layer.data = crop
            if not layer.visible:
                layer.visible = True
        # just above its CT and mask and the ground truths' outlines over them (the truth's
        # outline hid the preview's where they agree): not under a segmentation or rerun
        # added since, nor over another scan loaded above them (made last, it lay over all;
        # its outline is not that scan's)
        layers = self.viewer.layers
        own = [ly for ly in (ct_layer, self._layer(self.mask_combo.currentText())) if ly]
        below = max((layers.index(ly) for ly in own if ly in layers), default=-1)
        if below >= 0:
            shape = tuple(ct_layer.data.shape)
            dest = below + 1
            while dest < len(layers) and (
                layers[dest] is layer
                or (
                    layers[dest].metadata.get(_layers.ROLE) == "ground_truth"
                    and tuple(layers[dest].data.shape) == shape
                )
            ):
                dest += 1
            at = layers.index(layer)
            if at != dest - 1:  # (napari's move: before the layer now at dest)
                layers.move(at, dest)
        layer.metadata.update(slice=z, offset=(y0, x0), shape2d=tuple(mask2d.shape))

    def _clear_preview(self) -> None:
        layer = self.preview_layer()
        if layer is not None:
            layer.visible = False
        self._set_stale(False)  # (no outline drawn: none to mark)

    # ------------------------------------------------------------------ apply
    def apply_slice(self) -> None:
        """Refine the current slice with the controls' settings and write it (undoable)."""
        if self._apply_running():
            return
        if not self.axial_view():
            set_status(
                self.status,
                "In 3D no slice is shown: switch to 2D to apply to a slice, or apply to a "
                "lesion or to all lesions."
                if self.viewer.dims.ndisplay == 3
                else _NOT_AXIAL,
                error=True,
            )
            self._preview_error = True  # about the view: gone once an outline shows again
            return
        ct_layer = self._layer(self.ct_combo.currentText())
        z = 0 if ct_layer is None else self.slice_shown(ct_layer)
        if z is None:
            set_status(
                self.status,
                f"The slice on screen lies outside '{ct_layer.name}' (its "
                f"{ct_layer.data.shape[0]} slices): move the slider onto it. Nothing was "
                "applied.",
                error=True,
            )
            self._preview_error = False  # the Apply's own: the next preview leaves it said
            return
        try:  # that slice only: the whole volume is neither needed nor read
            ct_layer, mask_layer, tumor, liver, spacing = self._inputs(z, apply=True)
        except ValueError as exc:
            set_status(self.status, str(exc), error=True)
            return
        chosen = self._chosen()
        cfg = self.build_config()
        ct2d = np.array(ct_layer.data[z])
        min_ml = _sliver_ml(mask_layer)
        near = self._tumor_near(mask_layer, z, tumor.shape, chosen[1])

        def target(progress, should_cancel):
            # in a worker: at the panel's heaviest settings (60 iterations, smoothing 4, a
            # 100-voxel margin) one 512² slice took 2.8 s, with the window frozen
            notes: list[str] = []
            out = refine_slice(
                ct2d, tumor, liver, spacing[1:], cfg, should_cancel=should_cancel, notes=notes
            )
            return _without_slice_crumbs(near, tumor, out, spacing, min_ml, notes), notes

        def show(result) -> None:
            out, notes = result
            slab = (slice(z, z + 1), slice(None), slice(None))
            self._commit(
                mask_layer, tumor[None], None if liver is None else liver[None], out[None],
                f"slice {z}", chosen, box=slab, settings=cfg, notes=notes, ct_layer=ct_layer,
            )  # fmt: skip

        self._run_apply(
            mask_layer, target, show, button=self.apply_slice_button,
            description="refine slice",
            busy_text=f"Refining {_said(self.viewer, mask_layer, f'slice {z}')}…",
        )  # fmt: skip

    def apply_lesion(self, lesion: tuple[int, int, int] | None = None) -> None:
        """Refine one lesion in 3D: the one holding voxel ``lesion`` (z, y, x), the one chosen
        in the list, or the one under the mouse. Its components are found in the worker."""
        if self._apply_running():
            return
        try:
            ct_layer, mask_layer, tumor, liver, spacing = self._inputs(apply=True)
        except ValueError as exc:
            set_status(self.status, str(exc), error=True)
            return
        if not tumor.any():  # no lesion at all: nothing to point at
            set_status(self.status, _no_tumor_text(mask_layer))
            return
        chosen = self.lesion_combo.currentText() if lesion is None else None
        seeds = [lesion] if lesion is not None else self.lesion_combo.currentData()
        if seeds is None:
            pos = mask_layer.world_to_data(self.viewer.cursor.position[-mask_layer.ndim :])
            seeds = [tuple(int(round(float(p))) for p in pos)]
            chosen = None
        # the first of the lesion's voxels still tumor (one may have been painted over)
        inside = [
            tuple(int(v) for v in sd)
            for sd in seeds
            if all(0 <= int(i) < n for i, n in zip(sd, tumor.shape, strict=True))
        ]
        seed = next((sd for sd in inside if tumor[sd]), None)
        if seed is None:
            set_status(
                self.status,
                f"'{chosen}' is no longer in the tumor labels (they were edited): choose the "
                "lesion again."
                if chosen
                else "Put the mouse over a lesion (or choose one in the list), then apply.",
                error=True,
            )
            self.refresh_lesions()
            return
        cfg = self.build_config()
        ct = np.asarray(ct_layer.data)
        min_ml = _sliver_ml(mask_layer)
        taken = self._chosen()

        def target(progress, should_cancel):
            comps = label_lesions(tumor)
            label = int(comps[seed])
            # named as the list, Inspect and lesions.csv number it (by size), not by label id
            sizes = np.bincount(comps.ravel(), minlength=label + 1)[1:]
            rank = int(np.flatnonzero(np.argsort(-sizes, kind="stable") == label - 1)[0]) + 1
            notes: list[str] = []
            out = refine_lesion(
                ct, tumor, liver, spacing, label, cfg, components=comps,
                progress=progress, should_cancel=should_cancel, notes=notes,
            )  # fmt: skip
            out = drop_slivers(tumor, out, spacing, min_ml, notes, min_voxels=_floor(min_ml))
            return (*_changed_part(tumor, liver, out), notes, rank)

        def show(result) -> None:
            box, before, liver_box, out, notes, rank = result
            self._commit(
                mask_layer, before, liver_box, out, f"lesion {rank}", taken, box=box,
                settings=cfg, notes=notes, ct_layer=ct_layer,
            )  # fmt: skip

        self._run_apply(
            mask_layer, target, show, button=self.apply_lesion_button,
            description="refine lesion", busy_text="Refining the lesion in 3D…",
        )  # fmt: skip

    def apply_all(self) -> None:
        """Refine every lesion in 3D in a worker (progress bar; the button becomes Cancel)."""
        if self._apply_running():
            return
        try:
            ct_layer, mask_layer, tumor, liver, spacing = self._inputs(apply=True)
        except ValueError as exc:
            set_status(self.status, str(exc), error=True)
            return
        if not tumor.any():  # said as Apply to lesion says it, not as "changed nothing"
            set_status(self.status, _no_tumor_text(mask_layer))
            return
        cfg = self.build_config()
        ct = np.asarray(ct_layer.data)
        min_ml = _sliver_ml(mask_layer)
        taken = self._chosen()

        def target(progress, should_cancel):
            notes: list[str] = []
            out = refine_all(
                ct, tumor, liver, spacing, cfg,
                progress=progress, should_cancel=should_cancel, notes=notes,
            )  # fmt: skip
            out = drop_slivers(tumor, out, spacing, min_ml, notes, min_voxels=_floor(min_ml))
            return (*_changed_part(tumor, liver, out), notes)

        def show(result) -> None:
            box, before, liver_box, out, notes = result
            self._commit(
                mask_layer, before, liver_box, out, "all lesions", taken, box=box,
                settings=cfg, notes=notes, ct_layer=ct_layer,
            )  # fmt: skip

        self._run_apply(
            mask_layer, target, show, button=self.apply_all_button, description="refine",
            busy_text="Refining all lesions in 3D…",
        )  # fmt: skip

    def _run_apply(self, mask_layer, target, show, **job) -> None:
        """Run an Apply's job, recorded as refining ``mask_layer`` while it runs (Export does
        not write the labels from before its result meanwhile)."""
        started = self.run_job(target, show, on_finished=self._update_apply_buttons, **job)
        if started is not None:
            _layers.mark_refining(mask_layer, started)

    def _chosen(self) -> tuple[str, int, object]:
        """The Liver-from choice, the tumor value and the liver's layer an Apply starts with:
        its result is written with them, whatever the panel shows when it ends (a liver layer
        renamed meanwhile is still the one the contour was kept in)."""
        choice = self.liver_combo.currentText()
        layer = None if choice in ("", SAME_LAYER, NO_LIVER) else self._layer(choice)
        return choice, int(self.tumor_value.value), layer

    def _commit(
        self,
        mask_layer,
        tumor_before,
        liver,
        tumor_after,
        what: str,
        chosen: tuple[str, int, object],
        box: tuple[slice, ...] | None = None,
        settings: RefineConfig | None = None,
        notes: list[str] | None = None,
        held: _layers.HeldApply | None = None,
        ct_layer=None,
    ) -> None:
        """Write the new tumor into the labels layer, inside the liver only, with an undo step.

        ``notes``: the contour's notes, shown (beside the previews after it) once the result
        is written, not when it is refused (they stayed up as if it had been applied).

        With ``box``, the masks are the layer's ``data[box]`` only (the slice, or the part an
        Apply changed): only that part is checked for edits made meanwhile and written, so a
        512² CT's whole volume is not compared in the window's time. Edits elsewhere are left
        as they are.

        ``held``: the result waited for a brush stroke to end (it counted as refining the
        layer meanwhile, for Export): it no longer does once written or dropped.

        ``ct_layer``: the CT the contour followed; hidden, the status says so (another
        patient's CT on view under these labels, the change was taken for one on that scan).
        """
        box = box if box is not None else tuple(slice(None) for _ in range(tumor_after.ndim))
        if _stroke_open(mask_layer) and mask_layer in self.viewer.layers:
            # a brush stroke is being drawn: napari would fold this change into that stroke
            # (one Ctrl+Z then took both back, and Esc wiped the refinement): written when the
            # stroke ends (then checked against it like any edit made meanwhile)
            set_status(self.status, f"Waiting for the brush stroke on '{mask_layer.name}' to end…")
            if held is None:  # Export still counts the Apply as running on the layer
                held = _layers.HeldApply()
                _layers.mark_refining(mask_layer, held)

            def again() -> None:
                if self._closed:  # (the panel closed meanwhile: its Apply is dropped)
                    held.done()
                    return
                try:
                    self._commit(
                        mask_layer, tumor_before, liver, tumor_after, what, chosen,
                        box=box, settings=settings, notes=notes, held=held, ct_layer=ct_layer,
                    )  # fmt: skip
                except RuntimeError:  # its widget was deleted meanwhile
                    held.done()
                except Exception as exc:  # noqa: BLE001 - a timer's error: said, not a traceback
                    held.done()
                    log.exception("writing a refinement held for a brush stroke failed")
                    try:
                        set_status(
                            self.status,
                            f"The result could not be written: {error_text(exc)}",
                            error=True,
                        )
                    except RuntimeError:
                        pass

            QTimer.singleShot(100, again)
            return
        if held is not None:  # written or dropped below: no longer waiting
            held.done()
        if mask_layer not in self.viewer.layers:
            # deleted while the contour ran (an Apply runs apart). One hidden meanwhile (to look
            # at the CT beneath) is written, and said: its minutes of contour were thrown away
            set_status(
                self.status,
                f"'{mask_layer.name}' was removed while refining; nothing applied.",
                error=True,
            )
            return
        data = mask_layer.data
        shape = mask_layer.data.shape
        region = np.asarray(data[box]) if len(shape) == len(box) else None
        if region is None or region.shape != tumor_after.shape:
            set_status(
                self.status, f"'{mask_layer.name}' changed shape; nothing applied.", error=True
            )
            return
        choice, value, liver_layer = chosen
        edited = ""
        if not np.array_equal(region == value, tumor_before):
            edited = f"'{mask_layer.name}'"
        elif liver is not None:  # the liver the contour was kept in, as it is now
            if choice in ("", SAME_LAYER):
                liver_now, source = (region == 1) | tumor_before, mask_layer.name
            else:
                # the layer itself, whatever its name now
                source = liver_layer.name if liver_layer is not None else choice
                if liver_layer is None or liver_layer not in self.viewer.layers:
                    set_status(
                        self.status,
                        f"'{source}', the liver the contour was kept in, was removed while "
                        "refining; nothing applied.",
                        error=True,
                    )
                    return
                liver_now = None
                if liver_layer.data.shape == shape:
                    liver_now = (np.asarray(liver_layer.data[box]) > 0) | tumor_before
            if liver_now is None or not np.array_equal(liver_now, liver):
                edited = f"the liver in '{source}'"
        if edited:
            set_status(
                self.status,
                f"{edited} was edited while refining; nothing applied. Apply again.",
                error=True,
            )
            return
        # an Apply in 3D on tumor an earlier one in 3D had refined (in effect still): each
        # may move the boundary Max shift further, so repeated ones walk it away (five Apply
        # to all took a lesion 22 mm from the model's mask, Dice 0.48 → 0.003): said
        earlier = _refined_in_3d(self.history, mask_layer)
        again = not what.startswith("slice") and (
            any(_boxes_meet(done, box, mask_layer.data.shape) for done in earlier)
            # a copy of a refined layer (napari's Duplicate Layer) holds its record, no step
            or (
                not any(st.target is mask_layer for st in self.history.steps)
                and any(
                    not str(e.get("applied_to", "")).startswith("slice")
                    for e in mask_layer.metadata.get(REFINED_HERE) or []
                )
            )
        )
        self._remember_model_output(mask_layer)
        # tumor the contour gave up goes back to liver in a layer that holds liver (1), also
        # when the liver comes from another layer or is not used: a 0 there was a hole in it
        removed_to = (
            1
            if choice in ("", SAME_LAYER) or (value != 1 and bool((np.asarray(data) == 1).any()))
            else 0
        )
        grown, shrunk = write_tumor(
            mask_layer.data, tumor_before, tumor_after, liver,
            tumor_value=value, removed_value=removed_to,
            history=self.history, target=mask_layer, what=what, within=box,
        )  # fmt: skip
        if notes is not None:  # (why it changed nothing, too: a lesion too small to refine)
            self._show_notes(notes, sticky=True, layer=mask_layer)
        # "slice 67" of the layer as the slider counts it (80 with a longer scan open), as the
        # notes and Inspect say it; the record for Export keeps the scan's own index
        said = _said(self.viewer, mask_layer, what)
        if grown == shrunk == 0:
            set_status(self.status, f"Refining {said} changed nothing.")
            return
        # the refinements in effect, with their settings: Export writes them (its "refine"
        # is the model run's, and said false after a refinement here)
        step = self.history.steps[-1]
        step.viewer, step.shape = self._viewer_ref, tuple(mask_layer.data.shape)
        step.note_before = list(mask_layer.metadata.get(REFINED_HERE) or [])
        # what it changed, for the record Export writes (it said that a refinement ran, not
        # what it did to the tumor)
        voxel_ml = float(np.prod(np.asarray(mask_layer.scale, float)[-3:])) / 1000.0
        entry = {
            "applied_to": what,
            "tumor_voxels_added": int(grown),
            "tumor_voxels_removed": int(shrunk),
            "tumor_ml_added": round(int(grown) * voxel_ml, 4),
            "tumor_ml_removed": round(int(shrunk) * voxel_ml, 4),
        }
        if settings is not None:  # as the contour ran with them (clamped, swapped)
            entry.update(dataclasses.asdict(settings.validated()[0]))
        step.entry = entry
        step.record = self._record_history(mask_layer, step.box, step.before, step.after)
        _layers.labels_edited(mask_layer)
        unseen = _ct_hidden_text(self.viewer, ct_layer, mask_layer) if mask_layer.visible else ""
        set_status(
            self.status,
            f"Applied to {said} of '{mask_layer.name}': +{grown} / −{shrunk} tumor voxels."
            + ("" if mask_layer.visible else " (It is hidden: show it to see the change.)")
            + unseen
            + (
                "\nApplied on top of an earlier Apply: each may move the boundary "
                + (
                    f"up to Max shift ({settings.max_shift_mm:g} mm) further"
                    if settings is not None and settings.max_shift_mm > 0
                    else "any distance further (Max shift 0: no limit)"
                )
                + ", and repeated ones can walk it off the lesion; Reset goes back to the "
                "labels before the first."
                if again
                else ""
            ),
            warning=again or bool(unseen),
        )
        # its CT shown again: the clause goes (:meth:`_visibility_changed`)
        self._unseen_said = (weakref.ref(ct_layer), unseen, again) if unseen else None
        # what it said replaces any hint of the preview's (the CT hidden: "… is hidden"), which
        # the next outline clears: the result's line was wiped once that CT was shown again
        self._preview_error = False
        self._update_undo_button()
        self.refresh_lesions()  # the sizes it lists have changed
        self.schedule_preview()

    def undo(self) -> None:
        """Restore the voxels the last Apply/Reset changed, exactly."""
        if self._apply_running("undo") or self._stroke_said():
            return
        mask = self._layer(self.mask_combo.currentText())
        if mask is not None:  # napari's Undo on a hidden layer: the steps follow it first
            _layers.catch_up_edits(mask)
        steps = self.undo_steps()
        if steps and steps[-1].target not in self.viewer.layers:
            self.history.steps.remove(steps[-1])
            set_status(
                self.status, "The layer of the last step is gone; nothing undone.", error=True
            )
            self._update_undo_button()
            return
        if not steps:
            set_status(self.status, "Nothing to undo.")
            return
        step = steps[-1]
        now = np.array(step.target.data[step.box])
        self.history.undo_step(step)
        # in napari's history too: Ctrl+Z then takes this Undo back, as it would a stroke
        after = np.asarray(step.target.data[step.box])
        record = self._record_history(step.target, step.box, now, after)
        if record is None:  # nothing written (every voxel was painted over since): this Undo
            record = _latest_record(step.target)  # stands with the stroke that did it
        step.undo_records.append(record)
        _follow(said_here=True)  # (the step is out of effect now)
        _layers.labels_edited(step.target)
        where = _under(self.viewer, step.target, step.box)
        if step.target.name != self.mask_combo.currentText() or not step.target.visible:
            # the step was on another layer (a rerun of Segment moved the edited one aside):
            # said, so an undo nobody sees happen is not taken for one that did nothing
            where = f" in '{step.target.name}'" + (
                " (hidden: show it to see the change)" if not step.target.visible else where
            )
        kept = (
            f" {step.kept} voxel(s) edited by hand since were kept as they are."
            if step.kept
            else ""
        )
        set_status(
            self.status, f"Undid: {_said(self.viewer, step.target, step.what)}{where}.{kept}"
        )
        self._forget_apply_notes()  # (an undone Apply's notes stayed, as if it stood)
        self._show_notes([])
        self._update_undo_button()
        self.refresh_lesions()
        self.schedule_preview()

    def reset_to_model_output(self) -> None:
        """Put back the labels as they were before the first refinement (undoable)."""
        if self._apply_running("reset") or self._stroke_said():
            return
        layer = self._layer(self.mask_combo.currentText())
        original = None if layer is None else layer.metadata.get(MODEL_OUTPUT)
        if original is None or original.shape != layer.data.shape:
            set_status(
                self.status,
                "Nothing refined on this layer yet: nothing to reset."
                if layer is not None
                else "Nothing to reset: no labels layer is chosen.",
            )
            return
        changed = np.asarray(layer.data) != original
        if not changed.any():
            set_status(self.status, "The labels already are as before the first refinement.")
            return
        box = changed_box(changed)
        step = self.history.record(layer, box, "reset")
        step.viewer, step.shape = self._viewer_ref, tuple(layer.data.shape)
        layer.data[box] = original[box]
        self.history.seal(step)
        step.note_before = list(layer.metadata.get(REFINED_HERE) or [])
        step.record = self._record_history(layer, box, step.before, step.after)
        _layers.labels_edited(layer)
        set_status(
            self.status,
            f"Reset to the labels before the first refinement ({int(changed.sum())} voxels "
            f"back; painting done since was undone too){_under(self.viewer, layer, box)}. "
            "Undo takes the reset back.",
        )
        self._forget_apply_notes()
        self._show_notes([])
        self._update_undo_button()
        self.schedule_preview()

    def _remember_model_output(self, layer) -> None:
        if MODEL_OUTPUT not in layer.metadata:
            layer.metadata[MODEL_OUTPUT] = np.array(layer.data, copy=True)

    # ------------------------------------------------------------------ slots
    def _apply_slice_clicked(self) -> None:
        if not self.cancel_if_running(self.apply_slice_button):
            self._settle_typed()
            self.apply_slice()

    def _apply_lesion_clicked(self) -> None:
        if not self.cancel_if_running(self.apply_lesion_button):
            self._settle_typed()
            self.apply_lesion()

    def _apply_all_clicked(self) -> None:
        if not self.cancel_if_running(self.apply_all_button):
            self._settle_typed()
            self.apply_all()

    def _settle_typed(self) -> None:
        """Text typed in a number box and not taken is put back to the value in use before a
        click reads the settings: a button that takes no focus when clicked (macOS) ends no
        editing, and the box showed "0" while Apply ran with λ 1."""
        for box in self.findChildren(QAbstractSpinBox):
            settle_typed(box)

    def _apply_running(self, what: str = "Apply again") -> bool:
        """True, said, while an Apply runs: a second Apply, an Undo or a Reset meanwhile made
        the first one's result be dropped as 'edited while refining'."""
        buttons = (self.apply_slice_button, self.apply_lesion_button, self.apply_all_button)
        if not any(
            (job := self.jobs.get(b)) is not None and job.running and not job.delivered
            for b in buttons
        ):  # (one whose result is written is ending: nothing of it to lose)
            return False
        set_status(
            self.status,
            f"An Apply is running: wait for it (or cancel it), then {what}.",
            warning=True,
        )
        return True

    def _load_settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Refine settings", "", "JSON (*.json)")
        if not path:
            return
        try:
            cfg = RefineConfig.load(path)
        except Exception as exc:
            set_status(self.status, str(exc), error=True)
            return
        self.set_config(cfg)
        set_status(self.status, f"Loaded settings from {path}.")

    def _save_settings(self) -> None:
        self._settle_typed()
        path, _ = QFileDialog.getSaveFileName(
            self, "Refine settings", "refine.json", "JSON (*.json)"
        )
        if not path:
            return
        try:
            self.build_config().validated()[0].save(path)
        except OSError as exc:  # a folder not writable, a full disk
            reason = getattr(exc, "strerror", None) or str(exc)
            set_status(self.status, f"Could not save settings to {path}: {reason}", error=True)
            return
        set_status(self.status, f"Saved settings to {path}.")

    def _show_method_controls(self, *_) -> None:
        geodesic = self.method.value == "geodesic"
        for w in (self.balloon, self.auto_threshold, self.threshold, self.alpha):
            self._show_row(w, geodesic)
        # the threshold only tells the balloon where to stop: without one it does nothing
        balloon = float(self.balloon.value) != 0.0
        self.auto_threshold.enabled = balloon
        self.threshold.enabled = balloon and not self.auto_threshold.value
        for w in (self.lambda1, self.lambda2):
            self._show_row(w, not geodesic)

    def _show_row(self, widget, visible: bool) -> None:
        widget.visible = visible
        label = self._row_labels.get(id(widget))
        if label is not None:
            label.setVisible(visible)

    def _show_notes(self, notes: list[str], sticky: bool = False, layer=None) -> None:
        """Show the settings' notes and ``notes``. ``sticky`` (an Apply's): they stay beside
        the previews that follow until the next Apply or a change of settings (the preview
        scheduled right after the Apply replaced them within 0.1 s). ``layer``: the labels
        the notes' slice numbers are of, said as napari's slider counts them."""
        if layer is not None:
            notes = [_slider_slices(self.viewer, layer, n) for n in notes]
        # (said again as they are when the outline is dimmed or drawn in full: _set_stale)
        self._preview_notes = [] if sticky else list(notes)
        if sticky:
            self._apply_notes = list(notes)
        elif self._apply_notes and notes:
            # the live preview's notes beside an Apply's: they are of this slice only (a 3D
            # lesion's 3-voxel cut on it read as a note of the Apply); one the Apply gave too
            # (Apply to slice, then its preview) is said once
            notes = [f"preview of this slice: {n}" for n in notes if n not in self._apply_notes]
        cfg_notes = self.build_config().validated()[1]
        shown = list(dict.fromkeys([*self._config_notes, *cfg_notes, *self._apply_notes, *notes]))
        shown = [_in_panel_words(_on_this_slice(self.viewer, n)) for n in shown]
        # a plain fact (no tumor on the slice shown) is no warning: said without ⚠ and amber
        plain = [n for n in shown if n.startswith(_PLAIN_NOTES)]
        warned = [n for n in shown if n not in plain]
        lines = [*(f"⚠ {n}" for n in warned), *plain]
        if self._stale:  # first, plain: what the outline drawn is
            lines.insert(0, self._stale_text())
        try:
            self.notes.setText("\n".join(lines))
            self.notes.set_kind("warning" if warned else "")  # amber of the theme
            appeared = bool(lines) and not self.notes_box.isVisible()
            self.notes_box.setVisible(bool(lines))
            if appeared and self.status.text():  # it pushed the status down: back in view
                scroll_into_view(self.status)
        except RuntimeError:
            pass

    def _forget_apply_notes(self, *_) -> None:
        self._apply_notes = []

    def _record_history(self, layer, box, before, after):
        """:func:`_record` for this panel's viewer."""
        return _record(layer, box, before, after)

    def undo_steps(self) -> list:
        """The steps the panel's Undo can take back (in effect, their voxels kept), oldest
        first: those on the chosen Tumor labels layer, and on the earlier results a rerun of
        Segment moved aside from it ("… (previous)", made on the same CT: Undo there says
        where). :data:`_STEPS` holds every panel's; another patient's steps stay in it
        (napari's Undo follows them, Export records them) and count again once their layer is
        chosen: the Undo of one patient's panel changed the last patient's exported labels."""
        mask = self._layer(self.mask_combo.currentText())
        if mask is None:
            return []
        mine = [
            st
            for st in _STEPS.steps
            if getattr(st, "viewer", None) is self._viewer_ref
            and (st.target is mask or self._moved_aside_from(st.target, mask))
        ]
        return [st for st in mine if st.before is not None and _in_effect(st)]

    def _moved_aside_from(self, layer, mask) -> bool:
        """Whether ``layer`` is a result a rerun of Segment moved aside for ``mask`` (renamed
        "… (previous)" and hidden): on its grid, made on the same CT."""
        if layer is mask or not _layers.moved_aside(layer.name):
            return False
        if not _layers.on_one_grid(
            layer.data.shape, layer.scale, layer.translate,
            mask.data.shape, mask.scale, mask.translate,
        ):  # fmt: skip
            return False
        own, theirs = (_layers.linked_ct_name(ly, self.viewer) for ly in (layer, mask))
        if own and theirs:
            return own == theirs
        volume = layer.metadata.get(_layers.CT_VOLUME)
        return volume is not None and volume is mask.metadata.get(_layers.CT_VOLUME)

    def _stroke_said(self) -> bool:
        """True, said, while a brush stroke is drawn on a labels layer of this viewer (an
        Undo or Reset written then would be folded into the stroke)."""
        drawing = [ly.name for ly in _layers.labels_layers(self.viewer) if _stroke_open(ly)]
        if drawing:
            set_status(self.status, f"Finish the brush stroke on '{drawing[0]}' first.", error=True)
        return bool(drawing)

    def _steps_moved(self, gone: list, back: list) -> None:
        """napari's Undo or Redo moved ``gone`` out of effect or ``back`` into it: said, with
        which key did it (the step's own record went to the Redo list (Ctrl+Z), or a record of
        the panel's Undo of it came back (Ctrl+Shift+Z) or went (Ctrl+Z))."""
        self._update_undo_button()
        gone = [st for st in gone if getattr(st, "viewer", None) is self._viewer_ref]
        back = [st for st in back if getattr(st, "viewer", None) is self._viewer_ref]
        chosen = self._layer(self.mask_combo.currentText())

        def told(st) -> str:
            # a step on labels other than the chosen ones (another patient's, selected in the
            # layer list) is said with their name: it read as one of the labels shown here
            where = "" if st.target is chosen else f" in '{st.target.name}'"
            return f"{_said(self.viewer, st.target, st.what)}{where}."

        if gone:
            st = gone[-1]
            how = (
                "napari's Undo (Ctrl+Z) took back"
                if getattr(st.record, "last", "") in ("R", "gone")
                else "napari's Redo (Ctrl+Shift+Z) undid again"
            )
            set_status(self.status, f"{how}: {told(st)}")
        elif back:
            st = back[-1]
            how = (
                "napari's Redo (Ctrl+Shift+Z) brought back"
                if not any(getattr(r, "last", "") == "R" for r in st.undo_records)
                else "napari's Undo (Ctrl+Z) took back the panel's Undo of"
            )
            set_status(self.status, f"{how}: {told(st)}")
        if gone or back:
            self.refresh_lesions()
        elif self.status.text().startswith(("napari's Undo (Ctrl+Z)", "napari's Redo (Ctrl+")):
            # a later move of napari's history that was no panel step (a brush stroke painted,
            # undone or redone): what the line said of the earlier one is no longer the news
            set_status(self.status, "", scroll=False)

    def _update_undo_button(self) -> None:
        n = len(self.undo_steps())
        self.undo_button.setEnabled(n > 0)
        self.undo_button.setText(f"Undo ({n})" if n else "Undo")
        self._update_reset_button()

    def _update_reset_button(self) -> None:
        """Reset is offered once the chosen layer has labels from before an Apply to go
        back to (it only said "nothing to reset" before)."""
        layer = self._layer(self.mask_combo.currentText())
        original = None if layer is None else layer.metadata.get(MODEL_OUTPUT)
        try:
            self.reset_button.setEnabled(
                original is not None and original.shape == layer.data.shape
            )
        except RuntimeError:  # the widget is being deleted
            pass


#: the settings' names in the core's notes (those of --refine-config's JSON) as the panel
#: labels them
_PANEL_WORDS = (
    ("hu_window low", "HU low"),
    (" above high ", " above HU high "),
    ("hu_window", "HU window (HU low, HU high)"),
    ("min_contrast", "min contrast"),
    ("roi_margin_mm", "ROI margin"),
    ("max_shift_mm", "max shift"),
)


#: rows of the panel's grid above the contour's parameters (the layers to refine)
LAYER_ROWS = 4

#: what a contour's note of a lesion it emptied ends with: true of an Apply, not of a preview
_UNDO_BRINGS_BACK = "; Undo brings it back"

#: notes that state a fact, not a problem: shown plain
_PLAIN_NOTES = ("no tumor on this slice", "preview of this slice: no tumor on this slice")


def _on_this_slice(viewer, note: str) -> str:
    """A preview's note places its lesion "centred at y 132, x 76" of the slice on view: which
    slice that is, as the slider counts it, is said too (the note gave pixel positions only)."""
    if "centred at y" not in note or "on slice" in note:
        return note
    try:
        here = int(viewer.dims.current_step[0])
    except (AttributeError, IndexError, TypeError, ValueError):
        return note
    return note.replace("centred at y", f"on slice {here} (this one), centred at y", 1)


def _in_panel_words(note: str) -> str:
    for name, label in _PANEL_WORDS:
        note = note.replace(name, label)
    return note


def _ct_hidden_text(viewer, ct_layer, mask_layer) -> str:
    """What an Apply's result into the shown ``mask_layer`` adds when the CT its contour
    followed is hidden (not refused). "Not the one on view" only when another shown CT lies
    under the labels (:func:`_over_another_scan`): alone, no other scan was on view."""
    if ct_layer is None or ct_layer.visible:
        return ""
    other = (
        "the contour followed that scan, not the one on view; "
        if _over_another_scan(viewer, mask_layer, ct_layer)
        else ""
    )
    return f" (Its CT '{ct_layer.name}' is hidden: {other}show it to check the change.)"


def _over_another_scan(viewer, labels, ct_layer) -> bool:
    """Whether a shown CT other than ``ct_layer`` lies under ``labels``: below them in the
    layer list, its world box overlapping theirs in the dimensions displayed. Never in grid
    mode: the labels are drawn in a cell of their own there."""
    layers = viewer.layers
    if labels not in layers or _layers.grid_on(viewer):
        return False
    box = _layers.world_box(viewer, labels)
    for ly in _layers.ct_layers(viewer):
        if ly is ct_layer or not ly.visible or layers.index(ly) > layers.index(labels):
            continue
        theirs = _layers.world_box(viewer, ly)
        if (np.maximum(box[0], theirs[0]) <= np.minimum(box[1], theirs[1])).all():
            return True
    return False


def _hidden_text(layer, row: str, then: str) -> str:
    """What Apply's refusal and the preview say of a chosen layer hidden by its eye."""
    return (
        f"'{layer.name}' is hidden: show it (its eye in the layer list), or choose another "
        f"{row}, {then}."
    )


def _no_tumor_text(mask_layer) -> str:
    why = (
        " (its tumor stage was not run: liver only, or no liver found)"
        if _layers.tumor_not_assessed(mask_layer)
        else ""
    )
    return f"'{mask_layer.name}' has no tumor to refine{why}."


def _without_slice_crumbs(
    near: np.ndarray, tumor, out, spacing, min_ml: float, notes: list
) -> np.ndarray:
    """``out`` (a slice's refined tumor) without the crumbs the contour left there: pieces
    under the panel's sliver size ``min_ml``, new or shrunk (as :func:`drop_slivers` judges them
    on the slice), that touch no tumor on the slices above or below (``near``: there they
    belong to a lesion of more slices). Apply to a lesion or to all cleared them; Apply to
    slice did not."""
    cleaned = drop_slivers(tumor[None], out[None], spacing, min_ml, min_voxels=_floor(min_ml))[0]
    removed = out & ~cleaned
    if not removed.any():
        return out
    near = ndi.binary_dilation(near, structure=np.ones((3, 3), bool))  # 3D corner contact too
    pieces, _ = ndi.label(removed, structure=np.ones((3, 3), bool))
    joined = np.unique(pieces[near & removed])
    cleaned |= np.isin(pieces, joined[joined > 0])
    gone = int(ndi.label(out & ~cleaned, structure=np.ones((3, 3), bool))[1])
    if gone:
        notes.append(
            f"{gone} tumor piece(s) of a few voxels left by the contour were dropped from the tumor"
        )
    return cleaned


def _size_text(voxels: int, voxel_ml: float) -> str:
    """A lesion's size for the list: mL, or voxels under 0.1 mL (three 1-6 voxel spots all
    read "0.0 mL")."""
    ml = voxels * voxel_ml
    return f"{ml:.1f} mL" if ml >= 0.1 else f"{voxels} voxel{'s' if voxels != 1 else ''}"


def _sliver_ml(layer) -> float:
    """Smallest lesion (mL) a 3D refinement may leave: the model's lesion filter, if it had one."""
    stats = layer.metadata.get("stats") or {}
    try:
        return float((stats.get("lesion_filter") or {}).get("min_ml", SLIVER_ML))
    except (TypeError, ValueError):
        return SLIVER_ML


def _affine_of(layer) -> np.ndarray:
    """The layer's own affine (napari's transform mode turns or moves a layer by it)."""
    return np.asarray(layer.affine.affine_matrix, float)


def _check_same_grid(ct_layer, other, apply: bool = False) -> None:
    """Raise ValueError (the message to show) unless ``other`` lies on the CT layer's grid."""
    fix = " Choose the labels drawn on this CT (or this CT for those labels)."
    if apply:
        fix += " Nothing was applied."
    same = _layers.on_one_grid(
        other.data.shape,
        other.scale,
        other.translate,
        ct_layer.data.shape,
        ct_layer.scale,
        ct_layer.translate,
    )
    if same and np.allclose(_affine_of(other), _affine_of(ct_layer), atol=1e-6):
        return
    if same:  # turned or moved by hand in napari (its transform mode): not drawn on it
        raise ValueError(
            f"'{other.name}' and the CT '{ct_layer.name}' are placed differently in napari "
            "(one was turned or moved by its transform, its affine): they do not lie over each "
            f"other.{fix}"
        )
    if tuple(other.data.shape) != tuple(ct_layer.data.shape):
        raise ValueError(
            f"'{other.name}' ({_dims(other.data.shape)} voxels) is not the same grid as the CT "
            f"'{ct_layer.name}' ({_dims(ct_layer.data.shape)}).{fix}"
        )
    if not np.allclose(other.scale, ct_layer.scale, rtol=1e-4):
        raise ValueError(
            f"'{other.name}' has voxels of {_mm(other.scale)}, the CT '{ct_layer.name}' of "
            f"{_mm(ct_layer.scale)}: they are not the same grid.{fix}"
        )
    shift = float(np.linalg.norm(np.subtract(other.translate, ct_layer.translate)))
    away = f"{shift:.1f}" if shift >= 0.1 else f"{shift:.2g}"
    raise ValueError(
        f"'{other.name}' lies {away} mm away from the CT '{ct_layer.name}' (same voxel "
        f"size, another position): they are not the same grid.{fix}"
    )


#: a CT layer at this opacity or more over labels hides them (at 0.9 a tenth of their colour
#: shows through); napari's additive and minimum blending never hide what lies beneath
_COVERS_AT = 0.9


def _covers(viewer, image, labels, on_slice: bool = False, region=None) -> bool:
    """Whether the image layer ``image`` hides the ``labels`` layer: above it in the layer
    list, shown, opaque, and where the labels lie (their boxes in the world overlap, or
    ``region``, a world box ``[min, max]`` within them, and it; with ``on_slice``, on the slice
    shown too). Never in napari's grid mode: each layer has a cell of its own there (two
    phases side by side). Cheap: no voxel is read."""
    layers = viewer.layers
    if image not in layers or labels not in layers or _layers.grid_on(viewer):
        return False
    if layers.index(image) < layers.index(labels) or not image.visible:
        return False
    blending = str(getattr(image, "blending", "translucent"))
    if blending in ("additive", "minimum") or (
        blending != "opaque" and float(image.opacity) < _COVERS_AT
    ):
        return False
    n = min(image.ndim, labels.ndim)
    b = np.asarray(labels.extent.world if region is None else region)[:, -n:]
    a = np.asarray(image.extent.world)[:, -n:]
    if not (np.maximum(a[0], b[0]) <= np.minimum(a[1], b[1])).all():
        return False
    if on_slice:  # (napari draws a slice of it only where the slider stands inside it)
        z = float(image.world_to_data(viewer.dims.point[-image.ndim :])[0])
        return -0.5 <= z < image.data.shape[0] - 0.5
    return True


def _covering(viewer, labels, on_slice: bool = False, region=None):
    """The topmost CT layer that hides ``labels`` (:func:`_covers`), or None."""
    over = [ly for ly in _layers.ct_layers(viewer) if _covers(viewer, ly, labels, on_slice, region)]
    return max(over, key=viewer.layers.index, default=None)


def _world_box(layer, mask: np.ndarray):
    """The world box ``[min, max]`` of ``mask``'s voxels in ``layer`` (None: none set)."""
    ends = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        ends.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return _box_world(layer, tuple(ends))


def _box_world(layer, box):
    """The world box ``[min, max]`` of the data box ``box`` (slices) of ``layer``."""
    spans = [s.indices(n)[:2] for s, n in zip(box, layer.data.shape, strict=False)]
    corners = np.array([[a for a, _ in spans], [b - 1 for _, b in spans]], float)
    world = np.array([layer.data_to_world(c) for c in corners])
    return np.array([world.min(axis=0), world.max(axis=0)])


def _under(viewer, layer, box) -> str:
    """`` (under '<CT>': …)`` when a CT layer covers ``box`` of the shown ``layer``: an
    Undo or Reset there changes voxels nobody sees (they are not refused: Apply is, as it
    writes an outline the user could not check)."""
    if not layer.visible:
        return ""
    over = _covering(viewer, layer, region=_box_world(layer, box))
    return "" if over is None else f" (under '{over.name}': hide it to see the change)"


def _dims(shape) -> str:
    return " × ".join(str(int(n)) for n in shape)


def _mm(scale) -> str:
    return " × ".join(f"{float(v):.3g}" for v in scale) + " mm"


def _set_items(combo: QComboBox, names: list[str], keep_none: bool = False) -> None:
    """Refill ``combo`` with ``names``, its choice kept. ``keep_none``: a combo with entries
    and none chosen (a new scan with no labels of its own yet) stays so; refilled, it took
    the first entry, another patient's labels."""
    current = combo.currentText()
    if [combo.itemText(i) for i in range(combo.count())] == names:
        return
    none_chosen = keep_none and combo.count() > 0 and combo.currentIndex() < 0
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    elif none_chosen:
        combo.setCurrentIndex(-1)
    combo.blockSignals(False)
    if combo.currentText() != current:
        combo.currentIndexChanged.emit(combo.currentIndex())


def _changed_part(tumor: np.ndarray, liver: np.ndarray | None, out: np.ndarray):
    """``(box, tumor[box], liver[box], out[box])``: the part of a 3D result that differs from
    ``tumor`` (inside the liver), found in the worker so the window compares and writes only
    that. One voxel's box when nothing changed."""
    # compared on the masks' bounding box only (whole, a 640-slice 512² volume took 0.3 GB)
    masks = [changed_box(m) for m in (tumor, out) if m.any()] or [(slice(0, 1),) * tumor.ndim]
    near = tuple(
        slice(min(b.start for b in sl), max(b.stop for b in sl)) for sl in zip(*masks, strict=True)
    )
    after = out[near] if liver is None else out[near] & liver[near]
    changed = after != tumor[near]
    inner = changed_box(changed) if changed.any() else (slice(0, 1),) * tumor.ndim
    box = tuple(
        slice(n.start + i.start, n.start + i.stop) for n, i in zip(near, inner, strict=True)
    )
    return box, tumor[box], None if liver is None else liver[box], out[box]


def _lesions_by_size(tumor: np.ndarray) -> list[tuple[int, tuple]]:
    """``(size in voxels, up to 16 voxels of it)`` per lesion, largest first, found on the
    tumor's bounding box only (the whole 512² volume cost the window a second at each look
    at the list)."""
    tumor = np.asarray(tumor, dtype=bool)
    if not tumor.any():
        return []
    box = changed_box(tumor)
    comps = label_lesions(tumor[box])
    sizes = np.bincount(comps.ravel())[1:]
    out = []
    for i, sl in enumerate(ndi.find_objects(comps), start=1):
        inside = np.argwhere(comps[sl] == i)
        # a few voxels spread over it: painting over one of them does not lose the lesion
        picks = inside[np.linspace(0, len(inside) - 1, min(len(inside), 16)).astype(int)]
        offset = np.array([s.start + b.start for s, b in zip(sl, box, strict=True)])
        voxels = tuple(tuple(int(v) for v in p + offset) for p in picks)
        out.append((int(sizes[i - 1]), voxels))
    order = np.argsort([-n for n, _ in out], kind="stable")
    return [out[i] for i in order]


#: every Refine panel's steps in this process, newest last (the panel's Undo takes back only
#: its own viewer's). Kept by the process, not a panel: a closed panel's steps still follow
#: napari's Undo and Redo, and two panels never write a layer's record apart. Trimmed by
#: :func:`_trim`, not by this limit.
_STEPS = EditHistory(10**9)
#: per layer: its refinements in effect before the oldest step still kept (:func:`_trim`)
_BASE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RECORDING = [False]
_IN_EFFECT: list[set] = [set()]


def _record(layer, box, before, after):
    """:func:`_layers.record_history` (returns a :class:`_Record` of it, or None), then the
    steps followed anew. Each layer with a step is followed: napari's Undo and Redo there move
    a step in or out of effect, and its record, not the voxels, says which (a stroke painting
    the same values as an Apply is no undo of it)."""
    _RECORDING[0] = True
    try:
        atom = _layers.record_history(layer, box, before, after)
    finally:
        _RECORDING[0] = False
    _layers.connect_edits(layer, _history_moved)
    _trim()
    _follow(said_here=True)
    return None if atom is None else _Record(atom)


def _stroke_open(layer) -> bool:
    """Whether napari holds ``layer``'s history open for a stroke being drawn (a drag, or a
    brush stroke not yet ended): a change written now joins that stroke's undo step."""
    return bool(getattr(layer, "_block_history", False))


def _latest_record(layer):
    """A record of the newest step of napari's history of ``layer`` (None: there is none)."""
    history = getattr(layer, "_undo_history", None)
    return _Record(history[-1][-1]) if history and len(history[-1]) else None


def _refined_in_3d(history, layer) -> list:
    """The boxes of ``layer``'s Apply to lesion / all (3D) steps in effect since its last
    Reset (in effect: not undone by the panel's Undo or napari's)."""
    boxes: list = []
    for step in history.steps:
        if step.target is not layer or not _in_effect(step):
            continue
        if step.what == "reset":  # back to before the first
            boxes = []
        elif step.entry is not None and not str(step.entry.get("applied_to", "")).startswith(
            "slice"
        ):
            boxes.append(step.box)
    return boxes


def _boxes_meet(a, b, shape) -> bool:
    """Whether two boxes (tuples of slices, open ends allowed) of a grid overlap."""
    for sa, sb, n in zip(a, b, shape, strict=False):
        a0, a1, _ = sa.indices(n)
        b0, b1, _ = sb.indices(n)
        if max(a0, b0) >= min(a1, b1):
            return False
    return True


def _in_effect(step) -> bool:
    if not _applied(step.target, step.record):
        return False  # undone with napari's Undo
    # undone with a panel's Undo, unless that undo was taken back with napari's Undo
    return not any(_applied(step.target, r) for r in step.undo_records)


def _final(record) -> bool:
    """Whether napari can no longer move the change ``record`` stands for."""
    return record is None or record.atom is None or record.last in ("old", "gone")


def _trim() -> None:
    """Let go of the voxels of all but the newest :data:`UNDO_STEPS` steps (the panel's Undo
    reaches that far), and then of those steps once napari can no longer move them either
    (dropped off its history: their effect is folded into their layer's :data:`_BASE`)."""
    # a step on a layer deleted, or of a viewer closed, is let go (it held the layer's data);
    # one on a layer whose array was replaced by one of another shape (``layer.data = …``)
    # too, and that layer's record of refinements with it: none were made on this. (napari's
    # Convert datatype replaces the array with its values kept, and keeps its history: the
    # steps stand.)
    for st in [st for st in _STEPS.steps if _data_replaced(st)]:
        st.target.metadata[REFINED_HERE] = []
        _BASE.pop(st.target, None)
    _STEPS.steps[:] = [st for st in _STEPS.steps if not _layer_gone(st) and not _data_replaced(st)]
    kept = 0
    for st in reversed(_STEPS.steps):
        if st.before is not None:
            kept += 1
            if kept > UNDO_STEPS:
                st.before = st.after = None
    folded = True
    while folded:  # each layer's oldest step, while napari can no longer move it
        folded = False
        oldest = {}
        for st in _STEPS.steps:
            oldest.setdefault(id(st.target), st)
        for st in oldest.values():
            _in_effect(st)  # (brings the records' places up to date)
            if st.before is not None or not (
                _final(st.record) and all(_final(r) for r in st.undo_records)
            ):
                continue  # (the panel's Undo still reaches it, or napari's may move it)
            entries = _entries_before(st)
            if _in_effect(st):
                entries = [] if st.entry is None else [*entries, st.entry]
            try:
                _BASE[st.target] = entries
            except TypeError:  # (a target that cannot be weakly referenced: a stand-in)
                pass
            _STEPS.steps.remove(st)
            folded = True


def _data_replaced(step) -> bool:
    shape = getattr(step, "shape", None)
    return shape is not None and tuple(getattr(step.target.data, "shape", ())) != shape


def _layer_gone(step) -> bool:
    viewer = step.viewer() if getattr(step, "viewer", None) is not None else None
    if viewer is None:
        return getattr(step, "viewer", None) is not None  # (its viewer closed)
    try:
        return step.target not in viewer.layers
    except RuntimeError:  # (the viewer's window is being deleted)
        return True


def _entries_before(step) -> list:
    base = _BASE.get(step.target) if _weakable(step.target) else None
    return list(base if base is not None else step.note_before or [])


def _weakable(obj) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


def _history_moved() -> None:
    if _RECORDING[0]:
        return
    try:  # (called inside napari's paint, undo and redo: a failure here must not stop those)
        _trim()
        _follow()
    except Exception:  # noqa: BLE001 - the record for Export may lag; painting goes on
        log.warning("the Refine panel's steps could not follow an edit", exc_info=True)


def _follow(said_here: bool = False) -> None:
    """Bring each layer's record of the refinements in effect (what Export writes) and the open
    panels' Undo buttons up to date with the steps in effect; a move napari's Undo or Redo
    made (not a panel's own action, ``said_here``) is said in the panels."""
    before = _IN_EFFECT[0]
    effect = {id(st): _in_effect(st) for st in _STEPS.steps}
    for layer in {id(st.target): st.target for st in _STEPS.steps}.values():
        own = [st for st in _STEPS.steps if st.target is layer]
        entries = _entries_before(own[0])
        for st in own:
            if effect[id(st)]:
                entries = [] if st.entry is None else [*entries, st.entry]
        layer.metadata[REFINED_HERE] = entries
    now = {k for k, v in effect.items() if v}
    _IN_EFFECT[0] = now
    gone = [st for st in _STEPS.steps if id(st) in before and id(st) not in now]
    back = [st for st in _STEPS.steps if id(st) in now and id(st) not in before]
    _OPEN_PANELS[:] = [ref for ref in _OPEN_PANELS if ref() is not None]
    for ref in list(_OPEN_PANELS):
        panel = ref()
        if panel is None:
            continue
        try:
            if said_here:
                panel._update_undo_button()
            else:
                panel._steps_moved(gone, back)
        except RuntimeError:  # its widget is being deleted
            pass


class _Record:
    """Where a step sits in napari's history of its layer: "U" (Undo list), "R" (Redo list),
    "old" (dropped off the Undo list's end: it stands), "gone" (dropped from the Redo list by
    a newer edit: undone for good). ``atom`` None: no such record (the step stands)."""

    __slots__ = ("atom", "last")

    def __init__(self, atom=None):
        self.atom, self.last = atom, "U"


def _applied(layer, record) -> bool:
    """Whether the change ``record`` stands for is in effect (see :class:`_Record`); updates
    where it was last seen, which tells a step dropped from the Redo list (undone for good)
    from one dropped off the end of the Undo list (standing)."""
    if record is None or record.atom is None:
        return True
    now = _place(layer, record.atom)
    if now:
        record.last = now
    elif record.last == "R":
        record.last = "gone"
    elif record.last == "U":
        record.last = "old"
    return record.last in ("U", "old")


def _place(layer, atom) -> str:
    for name, code in (("_undo_history", "U"), ("_redo_history", "R")):
        for item in getattr(layer, name, None) or ():
            if any(a is atom for a in item):
                return code
    return ""


def _slider_slices(viewer, layer, note: str) -> str:
    """A note's "on slice(s) 12–20" of ``layer``'s own indices as napari's slice slider
    counts them (they differ when CTs of other extents are loaded: as Inspect says them)."""

    def slider(match) -> str:
        first = _layers.slider_index(viewer, layer, int(match.group(2)))
        if match.group(3) is None:
            return f"{match.group(1)} {first}"
        return (
            f"{match.group(1)} {first}–{_layers.slider_index(viewer, layer, int(match.group(3)))}"
        )

    return re.sub(r"(on slices?) (\d+)(?:–(\d+))?", slider, note)


def _said(viewer, layer, what: str) -> str:
    """A step's "slice 12" (``layer``'s own index: the record for Export keeps it) as napari's
    slice slider counts it, as the notes and Inspect say it (with a scan of another extent
    open, the status said "slice 67" beside a note's "slice 80 (this one)")."""
    match = re.fullmatch(r"slice (\d+)", what)
    if match is None:
        return what
    return f"slice {_layers.slider_index(viewer, layer, int(match.group(1)))}"


def _unwatch(layer, slot) -> None:
    _layers.disconnect_edits(layer, slot)


def _disconnect(event, slot) -> None:
    try:
        event.disconnect(slot)
    except Exception:  # the viewer is already gone
        pass


def _floor(min_ml: float) -> int:
    """The voxel floor beside the panel's mL one (crumbs on a coarse grid); off with it."""
    return MIN_LESION_VOXELS if min_ml > 0 else 0
