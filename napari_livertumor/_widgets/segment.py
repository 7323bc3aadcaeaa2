"""Segment widget: two-stage liver/tumor inference on a CT layer, in a worker, with Cancel."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from . import _layers, _registry
from ._common import (
    CHECKING_DEVICE,
    JobWidgetMixin,
    RefreshingCombo,
    StatusLabel,
    clear_status_if,
    follow_layer_list,
    mark_result_of,
    notify_unseen,
    say_if_result_removed,
    scroll_panel,
    set_status,
    warm_up_in_background,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import napari

DEFAULT_MODELS = "Shipped default models"
STAGE_CHOICES = {"liver + tumor": "both", "liver only": "liver"}


NO_CT = "Load a CT first (no 3D image layer chosen)."


def _as_record(refine_config):
    """The Refine panel's settings a run used, as the stats record them."""
    to_dict = getattr(refine_config, "to_dict", None)
    return to_dict() if callable(to_dict) else str(refine_config)


def _unknown_spacing_said(warning: str, ct_layer) -> str:
    """A "narrower than an adult's abdomen" of a layer at 1 × 1 × 1 with no CT of ours (a TIFF
    stack, an array): that no spacing is known is said too, the likelier cause."""
    from ..pipeline import NARROW_SCAN  # (the pipeline is loaded once a run has ended)

    if (
        NARROW_SCAN in warning
        and tuple(float(v) for v in ct_layer.scale) == (1.0, 1.0, 1.0)
        and _layers.CT_VOLUME not in ct_layer.metadata
    ):
        return (
            f"{warning} (the layer's voxels are 1 × 1 × 1 mm: no spacing is known — set the "
            "layer's scale, or open the DICOM/NIfTI with this plugin)"
        )
    return warning


class SegmentWidget(JobWidgetMixin, QWidget):
    """Run :func:`napari_livertumor.pipeline.segment_ct` on the chosen CT layer."""

    # (not the CT nor the models: they follow the layers and folders there are)
    REMEMBERED_FIELDS = ("stage_combo", "device_combo", "refine_check", "unsure_check", "tta_check")

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        self._model_folders: list[Path] = []
        self._models_key: tuple | None = None
        self._models: dict | None = None

        self._cts_seen: set[int] = set()
        self.ct_combo = RefreshingCombo(self.refresh_layers)
        self.model_combo = RefreshingCombo(self.refresh_models, lists_layers=False)
        self.model_browse = QPushButton("Folder…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        self.device_info = QLabel(CHECKING_DEVICE)
        self.device_info.setWordWrap(True)
        self.stage_combo = QComboBox()
        self.stage_combo.addItems(list(STAGE_CHOICES))
        self.refine_check = QCheckBox("Refine tumor contours")
        self.unsure_check = QCheckBox("Drop unsure lesions")
        self.unsure_check.setChecked(True)
        self.unsure_check.setToolTip(
            "The tumor model's lesion filter.\n"
            "On: tumor components whose most confident voxel stays below the model's chosen "
            "margin, or smaller than its minimum volume, are dropped (fewer false lesions).\n"
            "Off: every tumor component of at least 0.1 mL is kept (more sensitive, more false "
            "lesions to review)."
        )
        self.tta_check = QCheckBox("Mirrored tumor passes (×4)")
        self.tta_check.setChecked(False)
        self.tta_check.setToolTip(
            "On: each tumor-stage window also runs mirrored left-right, front-back and both, "
            "and the four outputs are averaged (the tumor stage takes about 4x as long on a "
            "CPU; with the shipped models it did not help on held-out phantoms).\n"
            "Off: one pass (the default)."
        )
        self.run_button = QPushButton("Run")
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.status = StatusLabel()
        for widget, tip in (
            (self.ct_combo, "The CT (image layer) to segment"),
            (
                self.model_combo,
                "The models folder: liver/ and tumor/ (the shipped models, or ones you trained)",
            ),
            (self.model_browse, "Choose a models folder holding liver/ and tumor/"),
            (
                self.device_combo,
                "Where the networks run: auto takes the graphics card (NVIDIA CUDA) when there "
                "is one, else the processor (CPU)",
            ),
            (self.stage_combo, "Liver and tumor, or the liver only (faster)"),
            (
                self.refine_check,
                "After the models, fit each tumor's outline to the image edges (active "
                "contours), with the open "
                "Refine panel's settings (its defaults when it is not open); off: the model's "
                "outline as it is",
            ),
            (self.run_button, "Segment the chosen CT (Cancel stops it)"),
        ):
            widget.setToolTip(tip)

        form = QFormLayout()
        form.addRow("CT layer", self.ct_combo)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.model_browse)
        form.addRow("Models", row)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.device_info)
        form.addRow("Stages", self.stage_combo)
        layout = scroll_panel(self)
        layout.addLayout(form)
        layout.addWidget(self.refine_check)
        layout.addWidget(self.unsure_check)
        layout.addWidget(self.tta_check)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.run_button.clicked.connect(self._run_clicked)
        self.model_browse.clicked.connect(self._browse_models)
        self.stage_combo.currentTextChanged.connect(self._stages_changed)
        follow_layer_list(self, self.viewer, self.refresh_layers)
        self.init_jobs(napari_viewer)
        warm_up_in_background(self.device_info, "napari_livertumor.pipeline", "scipy.ndimage")
        self.refresh_layers()
        self.refresh_models()
        self.restore_closed()  # a Segment panel closed in this viewer: its options, its run

    def _stages_changed(self, *_) -> None:
        """The tumor's options do nothing for the liver only: greyed out (a ticked Refine
        was recorded as applied in the exported stats)."""
        tumor = STAGE_CHOICES.get(self.stage_combo.currentText()) != "liver"
        for box in (self.refine_check, self.unsure_check, self.tta_check):
            box.setEnabled(tumor)

    # ------------------------------------------------------------------ lists
    def refresh_layers(self, *_) -> None:
        """Offer the viewer's 3D image layers (the plugin's CT layers first)."""
        try:
            current = self.ct_combo.currentText()
            cts = _layers.ct_layers(self.viewer)
            names = [ly.name for ly in cts]
            # a scan loaded just now is the one to segment next (not the last patient's)
            new = [ly.name for ly in cts if id(ly) not in self._cts_seen]
            self._cts_seen = {id(ly) for ly in cts}
            self.ct_combo.clear()
            self.ct_combo.addItems(names)
        except RuntimeError:  # widget deleted while the viewer still emits
            return
        if new:
            self.ct_combo.setCurrentText(new[-1])
        elif current in names:
            self.ct_combo.setCurrentText(current)
        if names:
            clear_status_if(self.status, NO_CT)
        say_if_result_removed(self)

    def refresh_models(self) -> None:
        """Shipped defaults, models trained in this session, then folders the user chose."""
        current = self.model_combo.currentText()
        folders = [*_registry.recent_model_folders()]
        folders += [f for f in self._model_folders if f not in folders]
        self.model_combo.clear()
        self.model_combo.addItem(DEFAULT_MODELS, None)
        if not _shipped_models_present():
            self.model_combo.setItemData(
                0,
                "No shipped models in this installation: choose a folder.",
                Qt.ToolTipRole,
            )
        for folder in folders:
            self.model_combo.addItem(str(folder), str(folder))
        idx = self.model_combo.findText(current)
        self.model_combo.setCurrentIndex(max(idx, 0))

    def add_model_folder(self, folder: str | Path) -> None:
        """Add a model folder (``liver/`` + ``tumor/``, or one stage's folder) and select it."""
        folder = Path(folder).resolve()
        if folder not in self._model_folders:
            self._model_folders.append(folder)
        self.refresh_models()
        self.model_combo.setCurrentText(str(folder))

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Segment the chosen CT layer in a worker; the result becomes a labels layer."""
        layer = self._ct_layer()
        if layer is None:
            set_status(self.status, NO_CT, error=True)
            return
        # napari's own reader opened the scan: no voxel spacing, so every figure would be wrong
        # (a 79 mm "child's abdomen" with no liver): refused, with the way to open it here
        unknown = _layers.opened_without_spacing(layer, self.viewer.layers)
        if unknown:
            set_status(self.status, unknown, error=True)
            return
        try:
            volume = _layers.volume_of(layer, self.viewer.layers)
            config = self.build_config()
        except Exception as exc:
            set_status(self.status, str(exc), error=True)
            return
        modality = str(volume.meta.get("modality") or "CT").upper()
        if modality != "CT":  # said in the panel's terms (the core's names a CLI flag)
            set_status(
                self.status,
                f"'{layer.name}' is {modality}, not CT: the models are trained on CT in "
                "Hounsfield units, so this panel does not segment it. (The command line's "
                "`livertumor segment --allow-non-ct` does, for research, unvalidated.)",
                error=True,
            )
            return
        ct_layer, ct_name = layer, layer.name
        # A folder retrained since (same path, new weights) must be loaded again.
        key = (
            _weights_stamp(config.liver_model),
            _weights_stamp(config.tumor_model),
            config.device,
            config.stages,
        )
        cached = self._models if self._models_key == key else None
        folder = self.model_combo.currentData()  # described as chosen now, not when it ends
        clicked = time.perf_counter()

        def target(progress, should_cancel):
            try:
                from ..pipeline import Segmenter
            except ImportError as exc:
                raise RuntimeError(
                    f"segmentation is not available yet (napari_livertumor.pipeline: {exc})"
                ) from exc
            segmenter = Segmenter(config, models=cached)
            # from the click to here: waiting for torch and MONAI, loading the networks
            loading = time.perf_counter() - clicked
            result = segmenter.segment(volume, progress=progress, should_cancel=should_cancel)
            if should_cancel():  # (the layer and the digests below: nothing to make for it)
                from ..errors import Cancelled

                raise Cancelled("cancelled by the user")
            layer = _layers.make_labels_layer(
                result.labels,
                volume,
                _layers.labels_name(ct_name, "segmentation", volume),
                ct_layer_name=ct_name,
            )
            from .._writer import MODEL_DIGEST, labels_digest

            # the model's own output: an edit undone is the model's again, an in-place change
            # (no napari event) is an edit (the DICOM SEG's algorithm type)
            layer.metadata[MODEL_DIGEST] = labels_digest(layer.data)
            models = {"liver": segmenter.liver, "tumor": segmenter.tumor}
            # how the result was made, for the exported stats (the command line's keys)
            from .. import __version__
            from ..provenance import array_digest, software

            layer.metadata["run"] = {
                "models": {
                    k: (str(Path(m.path).resolve()) if m is not None and m.path else None)
                    for k, m in models.items()
                },
                # as the command line records it: a liver-only run refines nothing
                "refine": bool(config.refine) and segmenter.tumor is not None,
                **(
                    {"refine_config": _as_record(config.refine_config)}
                    if config.refine and segmenter.tumor is not None and config.refine_config
                    else {}
                ),
                "tumor_tta": config.tta if segmenter.tumor is not None else None,
                "version": __version__,
                "software": software(),  # (its commit in a checkout; libraries' versions)
                "ct_digest": array_digest(volume.array),  # the voxels it was made of
            }
            return result, layer, {k: m for k, m in models.items() if m is not None}, loading

        def show(out) -> None:
            result, layer, models, loading = out
            # Loaded networks are kept for the next run with the same models and device.
            self._models_key, self._models = key, models
            self._show_result(result, layer, ct_layer, ct_name, folder, loading=loading)

        self.run_job(
            target,
            show,
            button=self.run_button,
            description="segment",
            busy_text=f"Segmenting '{ct_name}'…",
            stages_in_status=True,  # (liver, measuring: a busy bar, which shows no text)
        )

    def build_config(self):
        """The :class:`~napari_livertumor.pipeline.InferenceConfig` the controls describe."""
        try:
            from ..pipeline import InferenceConfig  # (imported when the panel opened)
        except ImportError as exc:
            raise RuntimeError(
                f"segmentation is not available yet (napari_livertumor.pipeline: {exc})"
            ) from exc
        liver_model, tumor_model = _model_paths(self.model_combo.currentData())
        return InferenceConfig(
            liver_model=liver_model,
            tumor_model=tumor_model,
            device=self.device_combo.currentText(),
            stages=STAGE_CHOICES[self.stage_combo.currentText()],
            refine=self.refine_check.isChecked(),
            refine_config=self._refine_settings() if self.refine_check.isChecked() else None,
            tta="inplane" if self.tta_check.isChecked() else "none",
            **(
                {}
                if self.unsure_check.isChecked()
                else {"min_tumor_ml": 0.1, "min_lesion_peak": 0.0}
            ),
        )

    def _refine_settings(self):
        """The open Refine panel's settings (None: none is open, the defaults are used)."""
        from .refine import panel_settings

        return panel_settings(self.viewer)

    def _show_result(
        self, result, layer, ct_layer, ct_name: str, folder=None, loading: float | None = None
    ) -> None:
        gone = not any(ly is ct_layer for ly in self.viewer.layers)
        if not gone and ct_layer.name != ct_name:  # renamed meanwhile: named after it now
            ct_name = ct_layer.name
            layer.name = _layers.labels_name(
                ct_name, "segmentation", ct_layer.metadata.get(_layers.CT_VOLUME)
            )
            layer.metadata[_layers.CT_LAYER] = ct_name
        kept, dropped = _keep_previous(self.viewer, layer.name, ct_name)
        # its CT closed and another scan open (the next patient, loaded meanwhile): added
        # hidden and left unselected, not drawn over that scan as if its mask (Export and
        # the other panels took it, the active layer, for the scan on view)
        elsewhere = [ly.name for ly in _layers.ct_layers(self.viewer)] if gone else []
        selected = (set(self.viewer.layers.selection), self.viewer.layers.selection.active)
        if elsewhere:
            layer.visible = False
        with _layers.adding_own_result(layer):  # (its CT removed: the status says so)
            try:
                self.viewer.add_layer(layer)
            except TypeError:
                # napari's status bar, asked about the cursor in a 3D view it has not moved in
                # since, raised once the layer was in ("len() of unsized object"): the result
                # is there, and the rest of it (its figures, the status) still follows
                if not any(ly is layer for ly in self.viewer.layers):
                    raise
                log.debug("napari raised while adding %s", layer.name, exc_info=True)
        if elsewhere:
            self.viewer.layers.selection.clear()
            self.viewer.layers.selection.update(selected[0] & set(self.viewer.layers))
            if selected[1] in self.viewer.layers:
                self.viewer.layers.selection.active = selected[1]
        _layers.name_axes(self.viewer)  # the slider: "slice" (a CT from File > Open too)
        covering = None if gone else _under_other_scans(self.viewer, layer, ct_layer)
        if not gone:  # a ground truth's outlines over the filled result (lost in its fill)
            _layers.lift_truths_over(self.viewer, layer, ct_layer)
        layer.metadata.update(
            stats=result.stats, timings=result.timings, device=result.device, source="model"
        )
        from ..stats import volume_shown

        s = result.stats
        # a liver-only run is one that loaded no tumor model (the run's record), not one
        # without a tumor volume: a "liver + tumor" run that found no liver looks for none,
        # and was said to be "liver only", its tumor model "not used"
        ran = (layer.metadata.get("run") or {}).get("models")
        liver_only = ran.get("tumor") is None if isinstance(ran, dict) else None
        if liver_only is None:
            liver_only = s.get("tumor_ml") is None
        tumor = (
            f"tumor {volume_shown(s['tumor_ml'])} mL, {s['lesion_count']} lesion(s)"
            if s.get("tumor_ml") is not None
            else "no tumor stage run"
            if liver_only
            else "no tumor looked for (no liver found)"
        )
        total = result.timings.get("total", 0)
        # the first run also waits for torch, MONAI and the models (6 s of 17 s here): said
        loaded = (
            f"after {loading:.1f} s loading torch and the models; "
            if loading is not None and loading >= 1.0
            else ""
        )
        msg = (
            f"Segmented '{ct_name}' on {result.device} in {total:.1f} s "
            f"({loaded}layer '{layer.name}'): liver {volume_shown(s['liver_ml'])} mL, {tumor}. "
            # which models: a folder picked by its text that was not in the list left the
            # shipped ones in use, and nothing said which had run
            + ("Shipped models." if folder is None else f"Models: {folder}.")
        )
        # beside the models' folder: a liver-only folder ran the shipped tumor model, said
        # lines below (under the warnings, the unsure lesions), where it went unseen
        fallback = _default_stage_note(folder, liver_only)
        if fallback:
            msg += f" {fallback}"
        # the open Refine panel's settings refined it: said when they are not the defaults
        # (the tumor differed from the command line's with nothing on screen saying why)
        own = (layer.metadata.get("run") or {}).get("refine_config")
        if isinstance(own, dict):
            from ..refine import RefineConfig

            if own != RefineConfig().to_dict():
                msg += " Tumor refined with the Refine panel's settings (not the defaults)."
        # what makes the numbers untrustworthy comes first, in amber (and as a notification when
        # the panel is out of view)
        from ..pipeline import NOT_HU, is_serious

        # the case's own first (the single notification): a weak model's note comes after
        warnings = [_unknown_spacing_said(w, ct_layer) for w in result.warnings]
        serious = sorted(
            (w for w in warnings if is_serious(w)),
            key=lambda w: "expect unreliable masks" in w,
        )
        not_hu = any(NOT_HU in w for w in serious)
        if serious:
            msg = "\n".join(f"⚠ {w}" for w in serious) + "\n" + msg
            notify_unseen(self, serious[0], warning=True)
        # the GPU asked for and not there: on the result's first line, amber (the last of ten
        # lines, in the panel's plain colour, it went unseen)
        device = [w for w in warnings if w.startswith("CUDA was asked for") or " GPU(s) exist" in w]
        if device:
            msg = f"⚠ {device[0]}\n{msg}"
            serious = [*serious, *device]
        unsure = s.get("unsure_lesions") or []
        points = _show_unsure(self.viewer, layer, unsure)
        if elsewhere and points in self.viewer.layers:
            self.viewer.layers[points].visible = False
        if unsure:
            slices = sorted(  # as napari's slice slider counts them (several CTs: not the data's)
                {_layers.slider_index(self.viewer, layer, u["centroid_zyx"][0]) for u in unsure}
            )
            where = ", ".join(map(str, slices[:6])) + (", …" if len(slices) > 6 else "")
            msg += (
                f"\n{len(unsure)} unsure candidate(s) dropped by the lesion filter "
                f"({sum(u['volume_ml'] for u in unsure):.2f} mL in all), marked in '{points}' on "
                f"slice{'s' if len(slices) > 1 else ''} {where}"
                + (
                    "."  # on values that are not HU, keeping more of them helps nobody
                    if not_hu
                    else "; untick 'Drop unsure lesions' and run again to keep them."
                )
            )
        if kept:
            msg += f"\nYour previous labels were kept as '{kept}' (hidden)."
        if dropped:  # a panel that had one chosen now shows another: said
            msg += (
                f"\nRemoved {len(dropped)} older hidden unedited copy(ies) of a model's output "
                "(run again with their settings to get one back)."
            )
        if covering is not None:
            msg += f"\nPlaced just above its CT, under '{covering.name}' (another scan"
            msg += (  # (a hidden one needs no hiding)
                f", drawn over '{ct_name}'): hide '{covering.name}' to see it."
                if covering.visible
                else ", hidden now)."
            )
        if gone:  # not linked by name to another CT that takes the name (its HU read for it)
            layer.metadata[_layers.CT_LAYER] = None
        if elsewhere:
            other = (
                " (another scan of the same name)"
                if elsewhere[0] == ct_name
                else " (another scan)"
                if len(elsewhere) == 1
                else " and the other scans"
            )
            gone_note = (
                f"The CT layer '{ct_name}' was removed while it was segmented: its result "
                f"'{layer.name}' was added hidden, not over '{elsewhere[0]}'{other}; its "
                "labels keep the removed CT's geometry"
            )
            msg = f"⚠ {gone_note}\n{msg}"
            notify_unseen(self, gone_note, warning=True)
        elif gone:
            msg += f"\nThe CT layer '{ct_name}' was removed meanwhile; labels keep its geometry."
        if not gone and covering is None:
            moved = _show_where_found(self.viewer, layer)
            if moved is not None:
                msg += (
                    f"\nMoved to slice {moved[0]}, the one with {moved[1]} (the slice on view "
                    "showed none of the result)."
                )
        for w in warnings:
            if w not in serious:
                msg += f"\n⚠ {w}"
        set_status(self.status, msg, warning=bool(serious) or bool(elsewhere))
        mark_result_of(self, layer)

    # ------------------------------------------------------------------ slots
    def panel_closed(self) -> None:
        """A closed panel lets go of its loaded networks (GPU memory on CUDA)."""
        self._models_key, self._models = None, None

    def _run_clicked(self) -> None:
        if not self.cancel_if_running(self.run_button):
            self.run()

    def _browse_models(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder (with liver/ and tumor/)")
        if folder:
            self.add_model_folder(folder)

    def _ct_layer(self):
        name = self.ct_combo.currentText()
        return next((ly for ly in _layers.ct_layers(self.viewer) if ly.name == name), None)


#: the marks of unsure lesions: violet squares, a hue no other overlay has (yellow rings read
#: as a ground truth's liver outline, orange as its aorta; white ones were lost on bone, under
#: the truth's outlines and beside Inspect's white ring round the lesion clicked)
UNSURE_COLOR = "#9e73ff"
#: their squares' border, relative to a square's size (napari's default 0.05 was 1 px)
UNSURE_BORDER = 0.12


def _show_where_found(viewer, layer) -> tuple[int, str] | None:
    """In 2D, with the slice on view holding none of ``layer``'s labels, move to the slice
    with the most tumor (else the most liver): the middle slice of a scan often shows the
    kidneys, and the result then looked like nothing. Returns (the slider's slice, what it
    holds), or None when the view was left as it was."""
    try:
        # the slider moves through the scan's slices (axial, or turned in-plane)
        if viewer.dims.ndisplay != 2 or viewer.dims.ndim != layer.ndim or viewer.dims.order[0]:
            return None
        data = np.asarray(layer.data)
        z = int(round(float(layer.world_to_data(viewer.dims.point[-layer.ndim :])[0])))
        if 0 <= z < data.shape[0] and data[z].any():
            return None
        tumor = (data == 2).sum(axis=(1, 2))
        counts, what = (
            (tumor, "the most tumor")
            if tumor.any()
            else (
                (data > 0).sum(axis=(1, 2)),
                "the most liver",
            )
        )
        if not counts.any():
            return None
        best = int(np.argmax(counts))
        world = layer.data_to_world([best] + [0] * (layer.ndim - 1))
        viewer.dims.set_point(0, float(world[0]))
        return _layers.slider_index(viewer, layer, best), what
    except Exception:  # noqa: BLE001 - a view nicety; the result is shown either way
        return None


def _under_other_scans(viewer, layer, ct_layer) -> str | None:
    """Put ``layer`` (just added, on top) under any other scan lying above its CT: on top it
    was drawn over a scan loaded during the run (or above the CT before), as if that scan's
    own mask. Returns the scan it now lies under, or None (none above)."""
    layers = viewer.layers
    at_ct = layers.index(ct_layer)
    others = [
        ly for ly in _layers.ct_layers(viewer) if ly is not ct_layer and layers.index(ly) > at_ct
    ]
    if not others:
        return None
    lowest = min(others, key=layers.index)
    layers.move(layers.index(layer), layers.index(lowest))
    viewer.layers.selection.active = layer
    return lowest


def _default_stage_note(folder: str | None, liver_only: bool) -> str | None:
    """Which stage of a chosen model folder fell back to the shipped default, said aloud."""
    if folder is None:
        return None
    try:
        liver, tumor = _model_paths(folder)
    except Exception:  # noqa: BLE001 - the run itself already used (or refused) the folder
        return None
    missing = [s for s, m in (("liver", liver), ("tumor", tumor)) if m is None]
    if liver_only and "tumor" in missing:
        missing.remove("tumor")
    # 'liver only' with a folder's tumor model: it never ran (the command line says so)
    unused = " Its tumor model was not used (liver only)." if liver_only and tumor else ""
    if not missing:
        return unused.strip() or None
    return (
        f"{' and '.join(m.capitalize() for m in missing)} model: the shipped default "
        f"(the folder {Path(folder)} holds no {' or '.join(missing)} model).{unused}"
    )


def _model_paths(folder: str | None) -> tuple[Path | None, Path | None]:
    """``(liver_model, tumor_model)`` for a chosen folder (None → shipped default)."""
    if folder is None:
        return None, None
    from ..errors import ModelError
    from ..models import read_metadata
    from ..models.checkpoint import check_readable

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(
            folder, "models folder not found" if not folder.exists() else "not a folder"
        )
    check_readable(folder)  # (as the command line says it: Python's error named a file in it)
    if (folder / "metadata.json").is_file():
        meta = read_metadata(folder)
        return (folder, None) if meta.stage == "liver" else (None, folder)
    liver, tumor = folder / "liver", folder / "tumor"
    for stage in (liver, tumor):  # said, not replaced by the shipped model without a word
        if stage.is_symlink() and not stage.exists():
            raise ModelError(stage, "a link to a folder that is not there")
        if stage.exists() and not stage.is_dir():
            raise ModelError(stage, "not a folder (a model folder holds metadata.json and weights)")
    if not liver.is_dir() and not tumor.is_dir():
        raise ModelError(folder, "not a model folder: no metadata.json and no liver/ or tumor/")
    return (liver if liver.is_dir() else None, tumor if tumor.is_dir() else None)


#: a marks layer's metadata key: the ``id`` of the labels layer whose dropped candidates it marks
UNSURE_OF = "unsure_lesions_of"


def _remove_marks_with_their_labels(viewer) -> None:
    """Once per viewer: a segmentation removed takes its unsure-lesion marks with it (they
    stayed, squares over a scan with no result under them)."""
    if getattr(viewer, "_livertumor_marks_follow", False):
        return
    viewer._livertumor_marks_follow = True
    from qtpy.QtCore import QTimer

    def removed(event) -> None:
        gone = id(event.value)
        marks = [ly for ly in viewer.layers if ly.metadata.get(UNSURE_OF) == gone]

        def drop() -> None:  # after napari's own removal is done
            for ly in marks:
                # (a rerun replacing the segmentation hands its marks on to the new one)
                if ly in viewer.layers and ly.metadata.get(UNSURE_OF) == gone:
                    viewer.layers.remove(ly)

        if marks:
            QTimer.singleShot(0, drop)

    viewer.layers.events.removed.connect(removed)


def _show_unsure(viewer, labels_layer, unsure: list) -> str | None:
    """Mark the lesion filter's dropped candidates as squares (replacing an earlier marking);
    candidates close together on the same slices share one label (theirs printed on top of
    each other read "unsunsure 0.2 mL")."""
    import pandas as pd
    from napari.layers import Points

    name = f"{labels_layer.name} unsure lesions"
    earlier = viewer.layers[name] if name in viewer.layers else None
    if not unsure:
        if earlier is not None:
            viewer.layers.remove(earlier)
        return None
    centres = np.array([u["centroid_zyx"] for u in unsure], dtype=float)
    # about 1.5 x the diameter of a ball of the candidate's volume, in in-plane voxels
    sizes = [
        max(10.0, 1.5 * (6e3 * u["volume_ml"] / np.pi) ** (1 / 3) / float(labels_layer.scale[-1]))
        for u in unsure
    ]
    features = pd.DataFrame(
        {
            "volume_ml": [u["volume_ml"] for u in unsure],
            "peak_margin": [u["peak_margin"] for u in unsure],
            "label": _unsure_labels(unsure, centres, sizes),
        }
    )
    _remove_marks_with_their_labels(viewer)
    if isinstance(earlier, Points):
        earlier.metadata[UNSURE_OF] = id(labels_layer)
        # a rerun's marks replace the earlier run's in the same layer: removing a layer costs
        # napari a full garbage collection, and adding one its drawing set-up (together about
        # a second of a frozen window on our 2-core machine)
        earlier.scale, earlier.translate = labels_layer.scale, labels_layer.translate
        earlier.data = centres
        earlier.features = features
        earlier.size = sizes
        earlier.visible = True
        # just above the new labels (a rerun adds those on top: the rings lay under the mask)
        viewer.layers.move(viewer.layers.index(earlier), viewer.layers.index(labels_layer) + 1)
        viewer.layers.selection.active = labels_layer
        return name
    if earlier is not None:  # a layer of that name that is not our marks: not reused
        viewer.layers.remove(earlier)
    viewer.add_points(
        centres,
        name=name,
        scale=labels_layer.scale,
        translate=labels_layer.translate,
        features=features,
        text={
            "string": "{label}",
            "color": UNSURE_COLOR,
            "size": 10,
            "anchor": "center",
            "translation": [0, -(max(sizes) / 2 + 4), 0],  # just above the ring (voxels)
        },
        symbol="square",
        size=sizes,
        face_color="transparent",
        border_color=UNSURE_COLOR,
        border_width=UNSURE_BORDER,
        metadata={UNSURE_OF: id(labels_layer)},
    )
    # just above its labels (which may lie under another scan: not drawn over that one)
    layers = viewer.layers
    layers.move(layers.index(layers[name]), layers.index(labels_layer) + 1)
    viewer.layers.selection.active = labels_layer  # keep painting on the labels
    return name


def _unsure_labels(unsure: list, centres: np.ndarray, sizes: list) -> list[str]:
    """Each candidate's label, "unsure 0.4 mL"; of candidates whose squares overlap within
    two slices, the first (the filter lists the largest first) says all their volumes and the
    others none."""
    labels = [""] * len(unsure)
    owner = list(range(len(unsure)))
    for j in range(len(unsure)):
        for i in range(j):
            if owner[i] != i:
                continue
            dz = abs(centres[i][0] - centres[j][0])
            apart = float(np.hypot(*(centres[i][1:] - centres[j][1:])))
            if dz <= 2 and apart < (sizes[i] + sizes[j]) / 2:
                owner[j] = i
                break
    for i in range(len(unsure)):
        if owner[i] == i:
            ml = [unsure[k]["volume_ml"] for k in range(len(unsure)) if owner[k] == i]
            labels[i] = "unsure " + " + ".join(f"{v:.1f}" for v in ml) + " mL"
    return labels


def _keep_previous(viewer, name: str, ct_name: str | None = None) -> tuple[str | None, list[str]]:
    """Rename an existing layer ``name`` to '… (previous)' and hide it; never delete edits.
    Returns its new name (None: none moved aside) and the names of older unedited copies
    removed (:func:`_drop_unedited_previous`).

    Without one of that name (the CT was renamed since), the shown segmentation made on the
    same CT is the one moved aside."""
    same_name = viewer.layers[name] if name in [ly.name for ly in viewer.layers] else None
    linked = None if same_name is None else same_name.metadata.get(_layers.CT_LAYER)
    if same_name is not None and (linked is None or linked == ct_name):
        old = same_name
    else:  # (one of that name made on another CT, renamed since, is left as it is)
        old = next(
            (
                ly
                for ly in _layers.labels_layers(viewer, role="segmentation")
                if ct_name
                and ly.metadata.get(_layers.CT_LAYER) == ct_name
                and ly.visible
                and not ly.name.endswith("(previous)")
            ),
            None,
        )
        if old is None:
            return None, []
    dropped = _drop_unedited_previous(viewer, old, ct_name)
    old.metadata[_layers.SUPERSEDED] = True
    try:
        old.name = _layers.unique_name(viewer, f"{old.name} (previous)")
    finally:
        old.metadata.pop(_layers.SUPERSEDED, None)
    old.visible = False
    return old.name, dropped


def _drop_unedited_previous(viewer, keep, ct_name: str | None) -> list[str]:
    """Remove the hidden '(previous)' layers of ``ct_name`` that hold a model's output exactly
    as it made it (each rerun kept one more full-size copy: hundreds of MB after a few runs of
    a 512² CT); a layer painted in or refined, or one a Refine Apply is refining, is never
    removed."""
    from .._writer import MODEL_DIGEST, labels_edited

    dropped = []
    for ly in list(_layers.labels_layers(viewer, role="segmentation")):
        if (
            ly is not keep
            and not ly.visible
            and _layers.moved_aside(ly.name)
            and ct_name is not None
            and ly.metadata.get(_layers.CT_LAYER) == ct_name
            and ly.metadata.get(MODEL_DIGEST)
            and not labels_edited(ly.metadata, ly.data)
            and not _layers.refining(ly)  # (a Refine Apply will write into it: kept)
        ):
            dropped.append(ly.name)
            viewer.layers.remove(ly)
    return dropped


def _weights_stamp(folder) -> tuple:
    """What says a model folder changed: its weights' and its metadata's times and sizes (a
    model recalibrated in place, a new logit shift in metadata.json, is another model)."""
    if folder is None:
        return (None, None)

    def stamp(path: Path):
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    folder = Path(folder)
    return (str(folder), stamp(folder / "model.safetensors"), stamp(folder / "metadata.json"))


def _shipped_models_present() -> bool:
    from ..models import default_model_dir

    return all((default_model_dir(s) / "metadata.json").is_file() for s in ("liver", "tumor"))
