"""Shared layer helpers: CT and label layers that line up, and finding them again.

Every layer made here carries the CT's ``scale``/``translate`` and, in ``metadata``, the
:class:`~napari_livertumor.io.volume.CTVolume` it belongs to (``"ct_volume"``) and its role
(``"livertumor_role"``: ``"ct"``, ``"segmentation"`` or ``"ground_truth"``), so any widget can
find the geometry and source UIDs of a layer without global state.

Segmentation layers hold one label map: 0 background, 1 liver, 2 tumor.
Ground-truth layers hold the HCC-TACE-Seg classes: 1 liver, 2 tumor, 3 portal vein, 4 aorta.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.classes import CLASS_RGB
from ..io.volume import CTVolume

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Layer

ROLE = "livertumor_role"
#: roles of labels layers that are no liver/tumor labels: the panels never list them (Refine's
#: preview, a lesion map numbering the lesions)
NOT_LABELS_ROLES = ("preview", "lesion_map")
#: roles of layers made as labels: an image layer with one (napari's *Convert to Image* of a
#: segmentation keeps its metadata) is no CT
LABELS_ROLES = ("segmentation", "ground_truth", "marker", *NOT_LABELS_ROLES)
CT_VOLUME = "ct_volume"
#: labels layer metadata: the Refine panel's refinements in effect on the layer (what, settings)
REFINED_HERE = "refined_in_panel"
CT_LAYER = "ct_layer"
#: set on a layer while a rerun renames it "… (previous)": panels do not follow that rename
#: (their choice stays with the name, which the new result takes)
SUPERSEDED = "livertumor_superseded"

#: HU window presets as (width, level).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "abdomen": (400.0, 40.0),
    "liver": (150.0, 60.0),
    "bone": (1800.0, 400.0),
    "lung": (1500.0, -600.0),
}

#: Colours of the output classes (RGBA, 0..1).
CLASS_COLORS: dict[int, tuple[float, float, float, float]] = {
    k: (*rgb, 1.0) for k, rgb in CLASS_RGB.items()
}  # liver green, tumor red, portal vein blue, aorta amber (the exported SEG's too)
CLASS_NAMES = {1: "liver", 2: "tumor", 3: "portal vein", 4: "aorta"}
#: a ground truth's colours: other hues than the segmentation's, so its outlines are not
#: taken for the segmentation's own (with Inspect's *Contours only* both are outlines). For
#: normal colour vision (least CIEDE2000 difference from a segmentation colour: 16.2); with
#: red-green colour blindness the yellow liver and the green segmented liver read as one
#: line (7.5): that is what the colour-blind safe palette is for (below). (Light and dark
#: truth colours tried here instead were lost over bright liver in the liver window.)
TRUTH_COLORS: dict[int, tuple[float, float, float, float]] = {
    1: (1.00, 0.95, 0.30, 1.0),  # liver yellow
    2: (1.00, 0.30, 1.00, 1.0),  # tumor magenta
    3: (0.45, 0.80, 1.00, 1.0),  # portal vein light blue
    4: (1.00, 0.50, 0.00, 1.0),  # aorta orange
}
#: colour sets a user can choose (Inspect's *Palette*): the standard one above, and one whose
#: hues stay apart with red-green colour blindness (Okabe and Ito's colours: the liver sky
#: blue, the tumor orange; green and red become one olive for about 1 man in 12)
PALETTES: dict[str, tuple[dict, dict]] = {
    "standard": (dict(CLASS_COLORS), dict(TRUTH_COLORS)),
    "colour-blind safe": (
        {
            1: (0.34, 0.71, 0.91, 1.0),  # liver sky blue
            2: (0.90, 0.62, 0.00, 1.0),  # tumor orange
            3: (0.00, 0.45, 0.70, 1.0),  # portal vein blue
            4: (0.84, 0.37, 0.00, 1.0),  # aorta vermillion
        },
        # the truth apart from the segmentation in LIGHTNESS, not in hue alone: light (the
        # liver, the aorta) or dark (the tumor, the portal vein) beside the segmentation's
        # middle lightness. Least CIEDE2000 difference from a segmentation colour, normal /
        # deuteranopia / protanopia (Machado 2009, full severity): about 27 / 18 / 15; the
        # earlier set's yellow liver beside the orange segmented tumor was 11.6 for
        # deuteranopes. The liver's yellow is saturated enough to show over bright liver
        {
            1: (1.00, 0.95, 0.45, 1.0),  # liver light yellow
            2: (0.45, 0.00, 0.35, 1.0),  # tumor dark reddish purple
            3: (0.00, 0.30, 0.15, 1.0),  # portal vein dark green
            4: (1.00, 0.85, 0.95, 1.0),  # aorta pale pink
        },
    ),
}
#: the colours' names, by palette as :data:`PALETTES` (a segmentation's, a ground truth's):
#: what the panels' messages call them (a fixed "liver yellow, tumor magenta" was wrong with
#: the colour-blind safe palette, and then with either)
COLOR_NAMES: dict[str, tuple[dict[int, str], dict[int, str]]] = {
    "standard": (
        {1: "green", 2: "red", 3: "blue", 4: "amber"},
        {1: "yellow", 2: "magenta", 3: "light blue", 4: "orange"},
    ),
    "colour-blind safe": (
        {1: "sky blue", 2: "orange", 3: "blue", 4: "vermillion"},
        {1: "light yellow", 2: "dark reddish purple", 3: "dark green", 4: "pale pink"},
    ),
}
#: Refine's live preview outline, by palette: cyan beside the standard red tumor and green
#: liver; black with the safe palette, where cyan over the sky-blue liver almost vanished
#: (CIEDE2000 12.9 for deuteranopes). Black stands out from grey liver and tumor in every
#: window (white was lost over bright liver in the liver window; magenta turns into the sky
#: blue for deuteranopes, 5.7)
PREVIEW_COLORS: dict[str, tuple[float, float, float, float]] = {
    "standard": (0.0, 0.95, 1.0, 1.0),
    "colour-blind safe": (0.0, 0.0, 0.0, 1.0),
}
#: the palette new layers are coloured with; None: not read yet from the settings
_palette: list[str | None] = [None]
#: an INI file to keep the settings in instead of Qt's per-user place (tests set it)
SETTINGS_ENV = "LIVERTUMOR_SETTINGS"


def _settings():
    """Where choices outlive the session (Qt's per-user settings; ``$LIVERTUMOR_SETTINGS``)."""
    import os

    from qtpy.QtCore import QSettings

    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.IniFormat)
    return QSettings("napari-livertumor", "napari-livertumor")


def palette() -> str:
    """The name of the palette in use (:data:`PALETTES`): the last one chosen, also in an
    earlier session (a colour-blind reader chose the safe one again every time)."""
    if _palette[0] is None:
        try:
            name = str(_settings().value("palette", "standard"))
        except Exception:  # unreadable settings: the standard colours
            name = "standard"
        _palette[0] = name if name in PALETTES else "standard"
    return _palette[0]


def set_palette(name: str, viewer=None) -> None:
    """Use palette ``name`` for new layers and recolour the segmentations, ground truths and
    Refine previews with it (their own colour choices are replaced) in every open viewer, not
    only ``viewer``: the palette is the process's, and another viewer's layers kept the old
    colours beside new layers in the new ones. The panels following it
    (:func:`on_palette_changed`) are told."""
    if name not in PALETTES:
        raise ValueError(f"palette must be one of {list(PALETTES)}, got {name!r}")
    _palette[0] = name
    with contextlib.suppress(Exception):  # a read-only home: this session's choice only
        settings = _settings()
        settings.setValue("palette", name)
        settings.sync()
    for v in _open_viewers(viewer):
        for layer in labels_layers(v):
            if layer.metadata.get(ROLE) in ("segmentation", "ground_truth"):
                set_class_colors(layer)
            elif layer.metadata.get(ROLE) == "preview":  # Refine's live outline
                set_preview_color(layer)
    _notify(_PALETTE_LISTENERS, name)


#: callbacks told the palette's name when it changes (Inspect panels: their *Palette* choice
#: and colour swatches), weakly held: a closed panel does not live on for them
_PALETTE_LISTENERS: list = []
#: viewers in which a panel of ours listens to the palette (:func:`on_palette_changed`)
_PALETTE_VIEWERS: weakref.WeakSet = weakref.WeakSet()


def on_palette_changed(callback, viewer=None) -> None:
    """Call ``callback(name)`` after each :func:`set_palette` (weakly held); ``viewer``'s
    layers are recoloured by it from then on, whichever viewer the palette was chosen in."""
    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else weakref.ref(callback)
    _PALETTE_LISTENERS.append(ref)
    if viewer is not None:
        _PALETTE_VIEWERS.add(unproxied(viewer))


def _open_viewers(viewer=None) -> list:
    """``viewer``, the viewers with a panel following the palette, and napari's other open
    viewers (a closed one has no layers left), each once."""
    import sys

    napari_viewer = getattr(sys.modules.get("napari.viewer"), "Viewer", None)
    found = [viewer] if viewer is not None else []
    found += list(_PALETTE_VIEWERS) + list(getattr(napari_viewer, "_instances", ()))
    out, seen = [], set()
    for v in found:
        v = unproxied(v)
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def palette_color_names(truth: bool = False) -> dict[int, str]:
    """The names of the palette in use's class colours (:data:`COLOR_NAMES`): a
    segmentation's, or with ``truth`` a ground truth's."""
    segmentation, ground_truth = COLOR_NAMES[palette()]
    return dict(ground_truth if truth else segmentation)


def truth_colors_text(classes=(1, 2, 3, 4)) -> str:
    """``"liver yellow, tumor magenta, …"``: a ground truth's colours, named, with the
    palette in use."""
    names = palette_color_names(truth=True)
    return ", ".join(f"{CLASS_NAMES[c]} {names[c]}" for c in classes)


def palette_colors(truth: bool = False) -> dict[int, tuple]:
    """The class colours of the palette in use: a segmentation's, or with ``truth`` a ground
    truth's."""
    segmentation, ground_truth = PALETTES[palette()]
    return dict(ground_truth if truth else segmentation)


def preview_color() -> tuple:
    """The colour of Refine's live preview outline with the palette in use."""
    return PREVIEW_COLORS[palette()]


def set_preview_color(layer) -> None:
    """Colour the preview labels ``layer`` (its one label, 1) with :func:`preview_color`."""
    from napari.utils.colormaps import DirectLabelColormap

    layer.colormap = DirectLabelColormap(
        color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: preview_color()}
    )


#: a ground truth is drawn as outlines this many pixels wide (the segmentation is filled)
GROUND_TRUTH_CONTOUR = 2
#: a segmentation's outlines (Inspect's "Contours only"): one pixel wider than the truth's, so
#: that where the two coincide the segmentation's still shows inside the truth's (drawn above
#: it, the truth's of the same width hid it whole)
LABELS_CONTOUR = GROUND_TRUTH_CONTOUR + 1


def unproxied(viewer):
    """The viewer itself, not napari's public-only proxy a plugin widget is handed.

    The proxy wraps every layer in a new proxy object on each access, so a layer is never
    ``is`` itself and ``id()`` names nothing: a panel could not tell a new segmentation from
    the one a rerun moved aside, nor keep its own state on the layer list without warnings.
    ``__wrapped__`` is the proxy's public way to the object.
    """
    return getattr(viewer, "__wrapped__", viewer)


def window_limits(width: float, level: float) -> tuple[float, float]:
    """Contrast limits ``(low, high)`` of a HU window given as width and level."""
    return (level - width / 2.0, level + width / 2.0)


def add_ct_layer(viewer: napari.Viewer, volume: CTVolume, name: str | None = None) -> Image:
    """Add ``volume`` as an image layer in mm, with the abdomen window, and return it."""
    name = name or ct_layer_name(viewer, volume)
    layer = viewer.add_image(
        volume.array,
        name=name,
        scale=volume.napari_scale,
        translate=volume.napari_translate,
        colormap="gray",
        contrast_limits=window_limits(*WINDOW_PRESETS["abdomen"]),
        metadata={CT_VOLUME: volume, ROLE: "ct"},
    )
    widen_ct_range(layer)
    name_axes(viewer)
    return layer


#: the contrast slider's range of a CT layer: air to dense bone and contrast (12-bit CT), and
#: more where the window or the data reach further
CT_SLIDER_RANGE = (-1024.0, 3071.0)


def widen_ct_range(layer) -> None:
    """Let the contrast slider of a CT layer reach past its window: napari sets the range to
    the contrast limits given (the abdomen window), so neither handle could be dragged wider
    (a bone window, a wider soft-tissue one) without the HU window list."""
    try:
        low, high = (float(v) for v in layer.contrast_limits)
        rng = layer.contrast_limits_range
        wide = (min(rng[0], low, CT_SLIDER_RANGE[0]), max(rng[1], high, CT_SLIDER_RANGE[1]))
        if tuple(rng) != wide:
            layer.contrast_limits_range = wide
            layer.contrast_limits = (low, high)  # (kept: the range set may move them)
    except Exception:  # noqa: BLE001 - a slider nicety; the layer is shown all the same
        pass


def name_axes(viewer) -> None:
    """The slice slider labelled "slice" (napari's default label read "-3"), when the viewer's
    axes still have napari's default names (a user's or another plugin's are kept)."""
    try:
        labels = tuple(str(a) for a in viewer.dims.axis_labels)
        # napari's defaults ("-3"), or ours partly so: the CT removed, its y and x stayed and
        # the next layer's slice axis came back "-3"
        ours = ("slice", "y", "x")
        if (
            viewer.dims.ndim == 3
            and labels != ours
            and all(
                a.lstrip("-").isdigit() or a == mine for a, mine in zip(labels, ours, strict=True)
            )
        ):
            viewer.dims.axis_labels = ours
    except (AttributeError, TypeError, ValueError):  # another napari's dims
        pass


def set_window(layer: Image, preset: str) -> None:
    """Apply a named HU window preset to a CT layer."""
    low, high = window_limits(*WINDOW_PRESETS[preset])
    rng = layer.contrast_limits_range
    # A window wider than the data's range must widen the range, or napari clips it.
    layer.contrast_limits_range = (min(rng[0], low), max(rng[1], high))
    layer.contrast_limits = (low, high)


def _holds_hu(layer) -> bool:
    """Whether ``layer``'s values are HU: not an MR's or ultrasound's series loaded anyway (a
    HU window turned an MR white; Load gives it contrast from its own values)."""
    volume = layer.metadata.get("ct_volume")
    modality = getattr(volume, "meta", {}).get("modality") if volume is not None else None
    return str(modality or "CT").upper() == "CT"


#: callbacks told which HU window preset a panel applied to a viewer's CTs (the other
#: panels' choosers follow: Load's and Inspect's disagreed)
_WINDOW_LISTENERS: list = []
#: the preset last applied to each viewer's CTs (a panel opened later shows it)
_WINDOW_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def on_window_chosen(callback) -> None:
    """Call ``callback(viewer, preset)`` whenever :func:`set_window_of_cts` is (weakly held)."""
    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else weakref.ref(callback)
    _WINDOW_LISTENERS.append(ref)


def set_window_of_cts(viewer, preset: str) -> None:
    """Apply a named HU window preset to every CT layer of ``viewer`` (Load CT's and
    Inspect's *HU window*: the liver window for reading lesions without going back a tab),
    and tell the listeners."""
    for layer in ct_layers(viewer):
        if layer.metadata.get(ROLE) == "ct" and _holds_hu(layer):
            set_window(layer, preset)
    try:
        _WINDOW_OF[unproxied(viewer)] = preset
    except TypeError:  # (a viewer that cannot be weakly referenced)
        pass
    for ref in list(_WINDOW_LISTENERS):
        callback = ref()
        try:
            if callback is None:
                raise RuntimeError
            callback(unproxied(viewer), preset)
        except RuntimeError:  # its widget is gone
            _WINDOW_LISTENERS.remove(ref)


def follow_window(combo, viewer) -> None:
    """Keep ``combo`` (a panel's HU window chooser of ``viewer``) on the preset last applied
    to the viewer's CTs from any panel; choosing the preset it shows applies it again."""
    own = unproxied(viewer)
    try:
        combo.setCurrentText(_WINDOW_OF.get(own, combo.currentText()))  # (before connecting)
    except TypeError:
        pass

    def chosen(where, preset) -> None:
        if where is own and combo.currentText() != preset:
            combo.blockSignals(True)
            combo.setCurrentText(preset)
            combo.blockSignals(False)

    combo._follow_window = chosen  # held by the combo: gone with it
    on_window_chosen(chosen)
    combo.currentTextChanged.connect(lambda preset: set_window_of_cts(viewer, preset))
    combo.activated.connect(lambda _index: set_window_of_cts(viewer, combo.currentText()))


def add_labels_layer(
    viewer: napari.Viewer,
    labels: np.ndarray,
    volume: CTVolume,
    name: str,
    *,
    role: str = "segmentation",
    ct_layer_name: str | None = None,
    opacity: float = 0.5,
) -> Labels:
    """Add a label map on ``volume``'s grid, aligned with its CT layer, and return it."""
    layer = make_labels_layer(
        labels, volume, name, role=role, ct_layer_name=ct_layer_name, opacity=opacity
    )
    viewer.add_layer(layer)
    name_axes(viewer)  # (a CT opened from File > Open or the sample menu: named now)
    return layer


def make_labels_layer(
    labels: np.ndarray,
    volume: CTVolume,
    name: str,
    *,
    role: str = "segmentation",
    ct_layer_name: str | None = None,
    opacity: float = 0.5,
) -> Labels:
    """A labels layer on ``volume``'s grid, not yet in a viewer.

    Building the layer is the costly part of showing a result; a worker thread may do it so
    the event loop only pays for adding it.
    """
    from napari.layers import Labels

    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        raise ValueError(f"labels shape {labels.shape} does not match the CT {volume.shape}")
    layer = Labels(
        labels.astype(np.uint8, copy=False),
        name=name,
        scale=volume.napari_scale,
        translate=volume.napari_translate,
        opacity=opacity,
        colormap=class_colormap(truth=role == "ground_truth"),
        metadata={CT_VOLUME: volume, ROLE: role, CT_LAYER: ct_layer_name},
    )
    layer.features = class_features()  # napari's status bar names the class under the cursor
    if role == "ground_truth":  # outlines over the filled segmentation: disagreements show
        layer.contour = GROUND_TRUTH_CONTOUR
        layer.opacity = max(opacity, 0.9)
    watch_edits(layer)
    return layer


#: a ground truth's opacity in 3D, where napari draws no outlines: at 0.9 it hid the
#: segmentation under it as an opaque blob
GROUND_TRUTH_3D_OPACITY = 0.3
_TRUTH_2D_OPACITY = "livertumor_opacity_2d"
_DIMMED_VIEWERS: weakref.WeakSet = weakref.WeakSet()


def dim_truth_in_3d(viewer) -> None:
    """Keep the ground truths of ``viewer`` see-through in 3D (once per viewer).

    In 2D a ground truth is drawn as outlines over the filled segmentation; napari draws no
    outlines in 3D, so there it is shown at ``GROUND_TRUTH_3D_OPACITY`` and its own opacity
    comes back in 2D.
    """
    if viewer is None or viewer in _DIMMED_VIEWERS:
        return
    _DIMMED_VIEWERS.add(viewer)
    ref = weakref.ref(viewer)

    def follow(*_) -> None:
        v = ref()
        if v is None:
            return
        three = v.dims.ndisplay == 3
        for layer in labels_layers(v, role="ground_truth"):
            if three and _TRUTH_2D_OPACITY not in layer.metadata:
                layer.metadata[_TRUTH_2D_OPACITY] = layer.opacity
                layer.opacity = min(layer.opacity, GROUND_TRUTH_3D_OPACITY)
            elif not three and _TRUTH_2D_OPACITY in layer.metadata:
                layer.opacity = layer.metadata.pop(_TRUTH_2D_OPACITY)

    viewer.dims.events.ndisplay.connect(follow)
    viewer.layers.events.inserted.connect(follow)  # a ground truth opened while in 3D
    follow()


_HEAD_UP_VIEWERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: labels layer -> the Refine Applies started on it (their jobs): an Apply's result is written
#: into the layer when it ends, so what Export would write of it meanwhile is the state before
_REFINING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mark_refining(layer, job) -> None:
    """Record that ``job`` (a Refine Apply) will write its result into ``layer``."""
    _REFINING.setdefault(layer, weakref.WeakSet()).add(job)


class HeldApply:
    """An Apply whose result waits to be written (for a brush stroke to end): it counts as
    refining its layer until :meth:`done`."""

    running = True
    delivered = False

    def done(self) -> None:
        self.running = False


def refining(layer) -> str:
    """Whether a Refine Apply running now will write its result into ``layer`` (one whose
    result is written, or that ended however, no longer counts): "" if none, "held" if each
    such Apply has its result and waits for a brush stroke to end, else "running"."""
    jobs = [job for job in _REFINING.get(layer, ()) if job.running and not job.delivered]
    if not jobs:
        return ""
    return "held" if all(isinstance(job, HeldApply) for job in jobs) else "running"


def keep_head_up(viewer) -> None:
    """Show the head at the top of a coronal or sagittal view, as radiology does (once per
    viewer). The arrays run (z, y, x) with z to the head, and napari draws a displayed
    axis's first index at the top: rolled to coronal or sagittal slices, the feet were up.
    napari's camera is turned to draw z upwards while z is the vertical axis, and back when
    the view leaves it. That holds in 3D too: turned back on entering 3D, the head-up coronal
    view opened as the patient seen from behind, feet up; kept, 3D goes on from the view
    shown (coronal seen from the front, sagittal from the patient's left, 3D from the axial
    view from the feet, as before). A user's own choice stays: one made in the axial view is
    not turned back, and feet up chosen in a coronal or sagittal view, 2D or 3D, stays chosen
    there.

    In 3D the depth axis is turned so that the patient is not drawn mirrored: (z to the head,
    y to the back, x to the patient's left) is a left-handed frame, and napari's default depth
    (towards) drew the axial order mirrored, the liver on the patient's left seen from the
    front. Which depth draws it right depends on the order of the axes shown (a transposed
    order mirrors what a rolled one does not) and on the vertical and horizontal directions:
    it is chosen again whenever the order changes, the view enters 3D, or up-down or
    left-right is flipped in 3D (napari's camera popup, the console). Each of napari's
    direction flips alone mirrors the volume; with the depth turned too, a flip is a half
    turn of the patient about the other screen axis, and the user's flip stays as chosen.
    A depth the user chose in 3D stays, through later flips too (one set in 2D, where it
    draws nothing, is not taken as a choice)."""
    if viewer is None or viewer in _HEAD_UP_VIEWERS:
        return
    # turned: the camera is turned here (to be turned back); ours: a change being made here;
    # feet_up: the user chose feet up in an upright view; vertical: as last seen; depth: the
    # user chose the 3D depth direction; depth_seen: the depth as last seen
    state = {
        "turned": False, "ours": False, "feet_up": False, "vertical": "", "depth": False,
        "depth_seen": "",
    }  # fmt: skip
    _HEAD_UP_VIEWERS[viewer] = state
    ref = weakref.ref(viewer)

    def upright(v) -> bool:  # z the vertical axis (2D or 3D: order[-2] is drawn vertically)
        dims = v.dims
        return dims.ndim >= 3 and dims.order[-2] == dims.ndim - 3

    def orientation(cam) -> tuple[str, str]:
        return tuple(str(getattr(o, "value", o)) for o in cam.orientation2d)  # type: ignore[return-value]

    def depth(cam) -> str:
        return str(getattr(cam.orientation[0], "value", cam.orientation[0]))

    def turn(cam, vertical: str, horizontal: str) -> None:
        state["ours"] = True
        try:
            cam.orientation2d = (vertical, horizontal)
        finally:
            state["ours"] = False
        state["vertical"] = vertical

    def proper_depth(v, cam) -> str:
        """The depth that draws the patient unmirrored with the axes and directions shown:
        "away" for the axial order drawn down and right; each transposition of the order,
        and each of vertical up and horizontal left, turns it."""
        shown = list(v.dims.order[-3:])
        swaps = sum(a > b for i, a in enumerate(shown) for b in shown[i + 1 :])
        vertical, horizontal = orientation(cam)
        sign = (-1) ** swaps * (1 if vertical == "down" else -1)
        sign *= 1 if horizontal == "right" else -1
        return "away" if sign > 0 else "towards"

    def follow(*_) -> None:
        v = ref()
        if v is None:
            return
        cam = camera(v)
        vertical, horizontal = orientation(cam)
        state["vertical"] = vertical
        if upright(v):
            if vertical == "down" and not state["feet_up"]:
                turn(cam, "up", horizontal)
                state["turned"] = True
        else:
            if state["turned"] and vertical == "up":
                turn(cam, "down", horizontal)
            state["turned"] = False
        aim_depth(v, cam)

    def aim_depth(v, cam) -> None:
        """Turn the depth to draw the patient unmirrored, in 3D unless the user chose it."""
        if v.dims.ndisplay == 3 and v.dims.ndim >= 3 and not state["depth"]:
            wanted = proper_depth(v, cam)
            if depth(cam) != wanted:
                state["ours"] = True
                try:  # (an unmirrored view of the patient: see above)
                    cam.orientation = (wanted, *cam.orientation[1:])
                finally:
                    state["ours"] = False
        state["depth_seen"] = depth(cam)

    def chosen(*_) -> None:  # the camera turned by the user (napari's popup, the console)
        v = ref()
        if v is None or state["ours"]:
            return
        cam = camera(v)
        seen = depth(cam)
        if v.dims.ndisplay == 3 and seen != state["depth_seen"]:
            state["depth"] = True  # the user's own depth in 3D: kept
        state["depth_seen"] = seen
        # up-down or left-right flipped in 3D: the depth follows (a turn, not a mirror)
        aim_depth(v, cam)
        vertical = orientation(cam)[0]
        changed, state["vertical"] = vertical != state["vertical"], vertical
        if not changed or not upright(v):  # (left-right only: head up stays ours to undo)
            return
        # up or down chosen in an upright view: feet up stays chosen there; head up chosen
        # there is undone for the axial view as this turn would be (kept, the axial view
        # came back upside down)
        state["feet_up"] = vertical == "down"
        state["turned"] = vertical == "up"

    viewer.dims.events.order.connect(follow)
    viewer.dims.events.ndisplay.connect(follow)
    viewer.dims.events.ndim.connect(follow)
    camera(viewer).events.orientation.connect(chosen)
    follow()


_CENTRED_VIEWERS: weakref.WeakSet = weakref.WeakSet()


def show_new_scans(viewer) -> None:
    """A CT opened in ``viewer`` some other way than Load CT (File > Open, a drop, the
    console) is shown when the slice on screen lies outside it: the next patient opened so
    stayed at the last one's table position, showing the last patient over the new one's
    selected layers. Once per viewer."""
    if viewer is None or viewer in _CENTRED_VIEWERS:
        return
    _CENTRED_VIEWERS.add(viewer)
    ref = weakref.ref(viewer)

    def inserted(event) -> None:
        v, layer = ref(), getattr(event, "value", None)
        if v is not None and layer is not None:
            _say_if_off_grid(v, layer)
            _outline_if_truth(v, layer)
        if v is None or layer is None or (layer.metadata or {}).get(ROLE) != "ct":
            return
        widen_ct_range(layer)  # (a CT opened by the reader, the sample)
        try:
            lo, hi = np.asarray(layer.extent.world)[:, 0]
            z = float(v.dims.point[0])
        except Exception:  # noqa: BLE001 - a view nicety
            return
        if not lo - 1e-6 <= z <= hi + 1e-6:
            show_layer_centre(v, layer)

    viewer.layers.events.inserted.connect(inserted)


def _outline_if_truth(viewer, layer) -> None:
    """A ground truth opened as a file (File > Open) drawn as Load CT draws one: outlines,
    not a fill at half opacity under which a segmentation's fill mixed with it."""
    from napari.layers import Labels

    meta = getattr(layer, "metadata", None) or {}
    if isinstance(layer, Labels) and meta.get(ROLE) == "ground_truth" and not layer.contour:
        layer.contour = GROUND_TRUTH_CONTOUR
        if viewer.dims.ndisplay == 2:
            layer.opacity = max(layer.opacity, 0.9)
        else:  # opened in 3D: see-through there, and outlines at 0.9 back in 2D
            meta[_TRUTH_2D_OPACITY] = max(meta.get(_TRUTH_2D_OPACITY, 0.0), layer.opacity, 0.9)
            layer.opacity = min(layer.opacity, GROUND_TRUTH_3D_OPACITY)


#: ids of layers a panel is adding as its own result (said by the panel itself: a
#: segmentation whose CT was closed meanwhile is not a file opened over the wrong scan)
_OWN_RESULTS: set[int] = set()


@contextlib.contextmanager
def adding_own_result(layer):
    """Add ``layer`` inside this block: the off-grid note of files opened is not given."""
    _OWN_RESULTS.add(id(layer))
    try:
        yield
    finally:
        _OWN_RESULTS.discard(id(layer))


def _say_if_off_grid(viewer, layer) -> None:
    """Labels opened from a file (File > Open) over CT images none of which they lie on: drawn
    anyway, as a block on part of the scan, and measured by Inspect, without a word. Every 3D
    image counts (a CT another reader opened too)."""
    from napari.layers import Labels

    if id(layer) in _OWN_RESULTS:
        return
    if not isinstance(layer, Labels) or not isinstance(
        (layer.metadata or {}).get(CT_VOLUME), CTVolume
    ):
        return
    shape, scale, translate = layer.data.shape, layer.scale, layer.translate
    images = ct_layers(viewer)
    if not images or any(_image_on_grid(im, shape, scale, translate) for im in images):
        return
    image = images[0]

    def grid(n, s) -> str:
        return f"{' × '.join(map(str, n))} voxels of {' × '.join(f'{v:g}' for v in s)} mm"

    own, theirs = tuple(shape), tuple(image.data.shape)
    if own == theirs and np.allclose(scale, image.scale, rtol=1e-4, atol=1e-4):
        moved = float(np.linalg.norm(np.asarray(translate) - np.asarray(image.translate)))
        how = f"the same {grid(own, scale)}, {moved:.1f} mm away"
    else:
        how = f"{grid(own, scale)} against {grid(theirs, image.scale)}"
    try:
        from napari.utils.notifications import show_warning

        show_warning(
            f"'{layer.name}' does not lie on the grid of the open CT '{image.name}'"
            + (f" (nor of the {len(images) - 1} other image(s))" if len(images) > 1 else "")
            + f": {how}. It is not a mask of that scan; open the CT it was made on."
        )
    except Exception:  # noqa: BLE001 - a courtesy; the layer is open either way
        pass


def _image_on_grid(image, shape, scale, translate) -> bool:
    """Does the 3D ``image`` layer lie on the grid (``shape``, ``scale``, ``translate``)?"""
    vol = (image.metadata or {}).get(CT_VOLUME)
    if isinstance(vol, CTVolume):
        return _on_grid(vol, shape, scale, translate)
    return on_one_grid(image.data.shape, image.scale, image.translate, shape, scale, translate)


def slider_index(viewer, layer, z: float) -> int:
    """The position of napari's slice slider that shows ``layer``'s slice ``z`` (its own index
    when it is the only volume; with several CTs of other extents the two differ: slice 17 of
    one was step 32 of the slider)."""
    try:
        world = float(layer.data_to_world([z] + [0] * (layer.ndim - 1))[0])
        axis = viewer.dims.ndim - layer.ndim  # (a layer of more dimensions adds leading axes)
        start, _stop, step = viewer.dims.range[axis]
        return int(round((world - float(start)) / float(step)))
    except Exception:  # noqa: BLE001 - a wording nicety: the layer's own index
        return int(round(z))


def show_layer_centre(viewer, layer) -> None:
    """Move the slice and the camera to the middle of ``layer`` (keeps the zoom)."""
    try:
        # a whole slice: half-way between two, the slider named one and the view drew the next
        centre = layer.data_to_world([(n - 1) // 2 for n in layer.data.shape])
        dims = viewer.dims
        off = dims.ndim - len(centre)  # (the viewer may have more dims than the layer)
        for d in dims.not_displayed:  # the slice: z in an axial view, y or x when rolled
            if d >= off:
                dims.set_point(d, float(centre[d - off]))
        # the camera's centre is of the axes on screen, in their order: (z, y, x) set in a
        # coronal view put the scan half off the canvas
        shown = [float(centre[d - off]) for d in dims.displayed if d >= off]
        if len(shown) == len(dims.displayed):
            camera(viewer).center = tuple(shown)
    except Exception:  # noqa: BLE001 - a view nicety; the layer is loaded either way
        pass


def watch_edits(layer) -> None:
    """A model segmentation painted on is no longer the model's alone (a DICOM SEG says so):
    its paint events, and its whole array replaced (``layer.data = …`` from napari's console
    or another plugin), mark it edited (once per layer)."""
    events = getattr(layer, "events", None)
    paint = getattr(events, "paint", None)
    if paint is None or (getattr(layer, "metadata", None) or {}).get(ROLE) != "segmentation":
        return
    for emitter in (paint, getattr(events, "data", None)):
        if emitter is not None and _mark_edited not in getattr(emitter, "callbacks", ()):
            emitter.connect(_mark_edited)


#: per labels layer: {slot: (paint, data, set_data) callbacks} of :func:`connect_edits`
_EDIT_WATCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _history(layer) -> tuple[int, int]:
    """Lengths of a labels layer's undo and redo histories (napari keeps them privately)."""
    undo, redo = getattr(layer, "_undo_history", ()), getattr(layer, "_redo_history", ())
    return len(undo or ()), len(redo or ())


def connect_edits(layer, slot: Callable) -> None:
    """Call ``slot()`` when the user paints on ``layer``, replaces its array, or uses napari's
    own Undo/Redo (Ctrl+Z), which emits neither event: only ``set_data``, as every slice step
    does; told apart by the layer's undo/redo history lengths changing. ``slot`` is held weakly
    (a closed panel is not kept alive by the layer)."""
    disconnect_edits(layer, slot)
    ref = weakref.WeakMethod(slot) if hasattr(slot, "__self__") else (lambda: slot)
    seen = {"history": _history(layer)}
    # the callbacks, kept as the layer's value in _EDIT_WATCHES, must not hold the layer: a
    # deleted ground truth (150 MB for 600 slices) stayed alive for the rest of the session
    layer_ref = weakref.ref(layer)

    def source(event):
        return event.source if event is not None else layer_ref()

    def call() -> None:
        target = ref()
        if target is not None:
            try:
                target()
            except RuntimeError:  # its widget is gone
                pass

    def painted(event=None) -> None:
        seen["history"] = _history(source(event))
        call()

    def replaced(event=None) -> None:
        call()

    def redrawn(event=None) -> None:
        now = _history(source(event))
        if now != seen["history"]:
            seen["history"] = now
            call()

    events = layer.events
    events.paint.connect(painted)
    events.data.connect(replaced)
    events.set_data.connect(redrawn)
    _EDIT_WATCHES.setdefault(layer, {})[_slot_key(slot)] = (painted, replaced, redrawn)


def catch_up_edits(layer) -> None:
    """Run ``layer``'s edit watches now (see :func:`connect_edits`): napari's Undo on a
    hidden layer redraws nothing, so no ``set_data`` told the panels (Export then wrote the
    record of a refinement undone)."""
    for _painted, _replaced, redrawn in list(_EDIT_WATCHES.get(layer, {}).values()):
        redrawn()


def _slot_key(slot) -> tuple:
    return getattr(slot, "__func__", slot), id(getattr(slot, "__self__", None))


def disconnect_edits(layer, slot: Callable) -> None:
    """Undo :func:`connect_edits` (nothing when not connected, or the layer is gone)."""
    if layer is None:
        return
    callbacks = _EDIT_WATCHES.get(layer, {}).pop(_slot_key(slot), None)
    if callbacks is None:
        return
    events = layer.events
    for emitter, cb in zip((events.paint, events.data, events.set_data), callbacks, strict=True):
        try:
            emitter.disconnect(cb)
        except Exception:  # noqa: BLE001 - the viewer is already gone
            pass


def _mark_edited(event) -> None:
    from .._writer import EDITED

    event.source.metadata[EDITED] = True


def on_rename(viewer, follower: Callable[[Layer, str], None]) -> Callable[[], None]:
    """Call ``follower(layer, old_name)`` whenever a layer of ``viewer`` is renamed; returns
    the function that stops it.

    One tracker per viewer knows every layer's previous name. Before any follower it makes
    labels layers linked to the renamed one by name (``CT_LAYER``) follow the new name, so
    Refine and Export still find the CT a mask was made on. (Its state lives on the layer
    list, not in a module-level table, so a closed viewer is not kept alive.)
    """
    layers = viewer.layers
    followers = getattr(layers, "_livertumor_rename_followers", None)
    if followers is None:
        followers = []
        names: dict[int, str] = {id(ly): ly.name for ly in layers}

        def renamed(event) -> None:
            layer = event.source
            old, names[id(layer)] = names.get(id(layer)), layer.name
            if old is None or old == layer.name:
                return
            for other in layers:
                if other is not layer and other.metadata.get(CT_LAYER) == old:
                    other.metadata[CT_LAYER] = layer.name
            for follow in list(followers):
                follow(layer, old)

        def inserted(event) -> None:
            names[id(event.value)] = event.value.name
            event.value.events.name.connect(renamed)
            watch_edits(event.value)  # a duplicated segmentation: painted on, it is edited too

        def removed(event) -> None:
            names.pop(id(event.value), None)
            try:
                event.value.events.name.disconnect(renamed)
            except Exception:  # never connected
                pass

        for layer in layers:
            layer.events.name.connect(renamed)
            watch_edits(layer)
        layers.events.inserted.connect(inserted)
        layers.events.removed.connect(removed)
        layers._livertumor_rename_followers = followers
    followers.append(follower)

    def stop() -> None:
        if follower in followers:
            followers.remove(follower)

    return stop


#: the colour of label values that are no class of this tool's: white, a hue neither palette
#: uses (a magenta was taken for a ground truth's tumor)
OTHER_VALUE_COLOR = (1.0, 1.0, 1.0, 1.0)


def class_colormap(colors: dict[int, tuple] | None = None, *, truth: bool = False):
    """Direct label colormap: liver green, tumor red, portal vein blue, aorta amber; with
    ``truth``, a ground truth's (:data:`TRUTH_COLORS`). ``colors`` overrides classes."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {**palette_colors(truth), **(colors or {})}
    # any other value (a 0/255 mask, another tool's classes, napari's "new label") in one
    # visible colour: transparent, a mask opened from a file showed nothing
    color_dict = {None: OTHER_VALUE_COLOR, 0: (0.0, 0.0, 0.0, 0.0)}
    color_dict.update({k: tuple(v) for k, v in colors.items()})
    return DirectLabelColormap(color_dict=color_dict)


def class_colors(layer: Labels) -> dict[int, tuple]:
    """The colour of each class (1 liver, 2 tumor, ...) in ``layer``, as RGBA tuples."""
    defaults = palette_colors(layer.metadata.get(ROLE) == "ground_truth")
    shown = getattr(layer.colormap, "color_dict", {})
    return {
        value: tuple(float(c) for c in shown[value]) if value in shown else default
        for value, default in defaults.items()
    }


def class_features():
    """A labels layer's features table naming each class value (napari shows the name of the
    one under the cursor in its status bar, instead of a bare number)."""
    import pandas as pd

    names = {0: "background", **CLASS_NAMES}
    return pd.DataFrame({"index": list(names), "class": list(names.values())})


def set_class_colors(layer: Labels, colors: dict[int, tuple] | None = None) -> None:
    """Colour a labels layer by class (liver green, tumor red, ...; a ground truth's own)."""
    layer.colormap = class_colormap(colors, truth=layer.metadata.get(ROLE) == "ground_truth")


#: callbacks told when a widget rewrote a labels layer in place (Refine's Apply, Undo, Reset):
#: napari emits no event for that, and Inspect's figures must not look current afterwards
_EDIT_LISTENERS: list = []


def on_labels_edited(callback) -> None:
    """Call ``callback(layer)`` whenever :func:`labels_edited` is called (weakly held)."""

    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else weakref.ref(callback)
    _EDIT_LISTENERS.append(ref)


def record_history(layer, box: tuple[slice, ...], before: np.ndarray, after: np.ndarray):
    """Make a change written straight into ``layer.data[box]`` (``before`` → ``after``, what
    is there now) one step of napari's own Undo and Redo (Ctrl+Z, Ctrl+Shift+Z); returns the
    step's record in napari's history (to find it there again), or None.

    napari's history puts back the old values of the voxels each step changed, so every write
    must be in it: a Refine written past it was not undone by Ctrl+Z, which undid the stroke
    painted before it instead, on top of the refined mask (a mask of no state the user had
    seen). The changed voxels are set back for a moment and written again through the layer's
    public ``data_setitem``, which records them; their indices are kept as int16/int32 (napari
    keeps what it is given: int64 indices cost 24 bytes per voxel changed).
    """
    setitem = getattr(layer, "data_setitem", None)
    changed = np.asarray(before) != np.asarray(after)
    if setitem is None or not changed.any():
        return None
    # copies of the changed values (either may be a view of the data, set back just below)
    before, after = np.asarray(before)[changed], np.asarray(after)[changed]
    data = layer.data
    small = np.int16 if max(data.shape) <= np.iinfo(np.int16).max else np.int32
    starts = [b.indices(n)[0] for b, n in zip(box, data.shape, strict=True)]
    where = tuple(
        (i + s).astype(small, copy=False) for i, s in zip(np.nonzero(changed), starts, strict=True)
    )
    history = getattr(layer, "_undo_history", None)
    last = history[-1] if history else None
    data[where] = before
    try:
        setitem(where, after, refresh=False)
    finally:
        data[where] = after  # (written either way: the change stands)
    if history and history[-1] is not last and len(history[-1]):
        return history[-1][-1]
    return None


def labels_edited(layer) -> None:
    """Redraw ``layer`` after an in-place change and tell the listeners."""
    from .._writer import EDITED

    layer.metadata[EDITED] = True
    layer.refresh()
    _notify(_EDIT_LISTENERS, layer)


def _notify(listeners: list, arg) -> None:
    """Call each weakly held listener with ``arg``; drop those whose object is gone (collected,
    or its Qt widget deleted: a RuntimeError)."""
    for ref in list(listeners):
        callback = ref()
        if callback is None:
            listeners.remove(ref)
            continue
        try:
            callback(arg)
        except RuntimeError:  # its widget is gone
            listeners.remove(ref)


def ct_layers(viewer: napari.Viewer) -> list[Image]:
    """3D image layers of the viewer, CT layers made by this plugin first. An image layer
    made from labels (napari's *Convert to Image* of a segmentation or ground truth, which
    keeps its role) is left out: the Segment panel offered it as a CT."""
    from napari.layers import Image

    imgs = [
        ly
        for ly in viewer.layers
        if isinstance(ly, Image)
        and ly.ndim == 3
        and not ly.rgb
        and ly.metadata.get(ROLE) not in LABELS_ROLES
    ]
    return sorted(imgs, key=lambda ly: ly.metadata.get(ROLE) != "ct")


def opened_without_spacing(layer, layers=()) -> str | None:
    """Why ``layer`` cannot be measured, when napari's own reader opened it (File > Open
    without choosing this plugin, ``viewer.open(path)``) from a DICOM or NIfTI file this plugin
    reads: napari's reader gives no voxel spacing (every voxel 1 × 1 × 1 mm), so a liver came
    out a few mL, the scan "79 mm wide", and the panel blamed a child's abdomen. None for any
    other layer: ours, one on the grid of ours, one whose scale was set, one made from an array
    (its scale is the caller's), or another kind of file (napari's reader is the only way in)."""
    from napari.layers import Image

    if not isinstance(layer, Image) or isinstance(layer.metadata.get(CT_VOLUME), CTVolume):
        return None
    if layer.ndim != 3 or any(float(s) != 1.0 for s in layer.scale):
        return None
    source = getattr(layer, "source", None)
    path = getattr(source, "path", None)
    if getattr(source, "reader_plugin", None) not in ("napari", "builtins") or not path:
        return None
    if grid_volume(layers, layer.data.shape, layer.scale, layer.translate) is not None:
        return None
    from .._reader import opens_as_a_scan

    if not opens_as_a_scan(path):
        return None
    target = Path(path)
    if target.is_dir():  # (File > Open File(s)… cannot pick a folder)
        how = f"{target.name} again with File > Open Folder…"
    elif layer.data.shape[0] > 1 and not target.name.lower().endswith((".nii", ".nii.gz")):
        # one slice's file of a stack of them (the path napari keeps): its folder holds the CT
        how = f"its folder {target.parent.name} with File > Open Folder…"
    else:
        how = f"{target.name} again with File > Open File(s)…"
    return (
        f"'{layer.name}' was opened by napari's own reader, so it has no voxel spacing "
        "(napari shows every voxel as 1 mm): its liver and tumor volumes would be wrong. Open "
        f"{how} and choose Liver Tumor Segmentation when napari asks which reader to use, or "
        "load it in the 1 Load CT panel."
    )


def linked_ct_name(layer, viewer: napari.Viewer) -> str | None:
    """The name of the open CT layer ``layer`` was made on.

    Its ``CT_LAYER`` link when a CT of that name is open; otherwise the one open CT holding
    the same CTVolume (the CT was renamed before any panel was open to follow the rename:
    the link is mended then). ``None`` when neither finds one.
    """
    if layer is None:
        return None
    own = layer.metadata.get(CT_LAYER)
    cts = ct_layers(viewer)
    if own and any(ly.name == own for ly in cts):
        return own
    vol = layer.metadata.get(CT_VOLUME)
    if vol is not None:
        same = [ly for ly in cts if ly.metadata.get(CT_VOLUME) is vol]
        if len(same) == 1:
            layer.metadata[CT_LAYER] = same[0].name
            return same[0].name
    return None


def labels_layers(viewer: napari.Viewer, role: str | None = None) -> list[Labels]:
    """3D labels layers, optionally only those with ``role`` in their metadata."""
    from napari.layers import Labels

    out = [ly for ly in viewer.layers if isinstance(ly, Labels) and ly.ndim == 3]
    if role is not None:
        out = [ly for ly in out if ly.metadata.get(ROLE) == role]
    return out


def shown_first(viewer: napari.Viewer, layers: list) -> list:
    """``layers`` with the visible ones first, the top-most (newest) of them first: the order a
    panel lists them in, and so what it falls back to when its layer goes (a hidden
    "(previous)" copy, or another scan's, came first and was taken)."""
    index = {id(ly): i for i, ly in enumerate(viewer.layers)}
    return sorted(layers, key=lambda ly: (not ly.visible, -index.get(id(ly), -1)))


def hidden_choice_note(viewer: napari.Viewer, layer, done: str, verb: str, was: str = "was") -> str:
    """The note "'<layer>' is hidden: …" when the labels a panel acted on (Measure, Export)
    are hidden by their eye, naming the segmentation on view (the top-most shown); "" when
    shown (Refine refuses to apply into such labels, and draws no outline where their CT is
    hidden too). The pickers keep their choice: hiding a later patient's layers to go back to
    an earlier one left them on the hidden patient, and its figures or files read as the one
    on view's. ``done``: "measured", "written"; ``verb``: "measure", "export"; ``was``:
    "would be" before it is done (Export's "Replace files?").

    Their own CT shown, the segmentations it covers are not on view: the overlay hidden alone
    (to see that CT's edges) named another patient's labels under it, whose choice would have
    measured the wrong patient. Those are not named."""
    if layer is None or layer.visible:
        return ""
    index = {id(ly): i for i, ly in enumerate(viewer.layers)}
    own = linked_ct_name(layer, viewer)
    own_ct = viewer.layers[own] if own is not None else None
    # "covers": the shown CT lies above the labels in the layer list and its world box, in
    # the dimensions displayed, holds theirs whole (another patient's on the same grid). Labels
    # reaching out of it (another grid, beside it) are on view; in grid mode each layer has a
    # cell of its own, and none covers another
    box = (
        world_box(viewer, own_ct)
        if own_ct is not None and own_ct.visible and not grid_on(viewer)
        else None
    )

    def covered(ly) -> bool:
        if box is None or index.get(id(ly), -1) > index.get(id(own_ct), -1):
            return False
        theirs = world_box(viewer, ly)
        return bool(np.all(box[0] <= theirs[0] + 1e-3) and np.all(theirs[1] <= box[1] + 1e-3))

    shown = [
        ly
        for ly in shown_first(viewer, labels_layers(viewer, role="segmentation"))
        if ly.visible and ly is not layer and not covered(ly)
    ]
    return (
        f"'{layer.name}' is hidden: the layer chosen in this panel {was} {done}"
        + (
            f", not '{shown[0].name}' on view (choose it under Labels to {verb} it)"
            if shown
            else ""
        )
        + "."
    )


def world_box(viewer, layer) -> np.ndarray:
    """``layer``'s box in the world, ``[min, max]``, in the viewer's displayed dimensions
    (its voxels' centres, as napari's ``extent.world``)."""
    ext = np.asarray(layer.extent.world, float)
    offset = viewer.dims.ndim - ext.shape[1]  # (a layer of fewer dimensions: the last ones)
    return ext[:, [d - offset for d in viewer.dims.displayed if d >= offset]]


def volume_of(layer: Layer, layers=None) -> CTVolume:
    """The CTVolume behind a layer: the one in its metadata, or one built from its geometry.

    A layer without a CTVolume (napari's *New labels layer*, another reader's file) that lies
    on the grid of one of ``layers`` that has one (same shape, scale and translate) takes that
    CT's geometry: its orientation and true origin, which ``scale`` and ``translate`` alone do
    not hold for a feet-first, coronal or oblique series (it was written mirrored or shifted).
    A labels layer takes the CT's DICOM identity too (its DICOM SEG references that CT); an
    image layer keeps its own voxels and takes only the frame. Otherwise ``scale`` and
    ``translate`` give the grid (axis-aligned, no DICOM UIDs), which is
    enough to segment, measure and write NIfTI.
    """
    vol = layer.metadata.get(CT_VOLUME)
    if isinstance(vol, CTVolume):
        if vol.shape != tuple(layer.data.shape):
            raise ValueError(f"layer '{layer.name}' no longer matches its CT grid")
        from napari.layers import Labels

        if isinstance(layer, Labels):
            return dicom_twin(vol, layers or ()) or vol
        data = layer.data
        if data is not vol.array and not np.array_equal(np.asarray(data), vol.array):
            # its voxels replaced (a filter, the console, a duplicate given other data): those
            # are what is segmented and measured, on the CT's frame, without its DICOM identity
            # (the stored volume's were segmented, an all-air image gave a liver)
            plain = without_dicom_identity(vol.meta)
            plain.update(description=layer.name, source=str(layer.source.path or ""))
            return CTVolume(np.asarray(data), vol.spacing, vol.origin, vol.direction, plain)
        return vol
    same = grid_volume(layers or (), layer.data.shape, layer.scale, layer.translate)
    if same is not None:
        from napari.layers import Labels

        if isinstance(layer, Labels):  # a mask drawn on a CT: that CT's frame and identity
            return same
        # an image of its own (a filtered copy) on a CT's grid: its voxels, the CT's frame,
        # no DICOM identity (its slices are not the CT's)
        plain = without_dicom_identity(same.meta)
        plain.update(description=layer.name, source=str(layer.source.path or ""))
        return CTVolume(np.asarray(layer.data), same.spacing, same.origin, same.direction, plain)
    data = np.asarray(layer.data)
    if data.ndim != 3:
        raise ValueError(f"layer '{layer.name}' is not a 3D volume")
    scale = tuple(float(s) for s in layer.scale)
    tz, ty, tx = (float(t) for t in layer.translate)
    return CTVolume(
        array=data,
        spacing=scale,
        origin=(tx, ty, tz),
        meta={"description": layer.name, "source": str(layer.source.path or "")},
    )


def dicom_twin(vol: CTVolume, layers) -> CTVolume | None:
    """For ``segment``'s NIfTI labels of a DICOM series (``meta["made_on_series"]``, from the
    stats file beside them): that series' CT open among ``layers`` on exactly their grid,
    whose slices a DICOM SEG of the mask then references and whose patient names its exports.
    None when the mask has its own DICOM identity, says nothing of its series, or no CT of that
    series (and acquisition) lies on its grid: another scan's mask on the same grid never takes
    a CT's identity by chance."""
    made_on = vol.meta.get("made_on_series")
    if vol.file_meta.get("files") or vol.meta.get("series_uid") or not made_on:
        return None
    acquisition = made_on.get("acquisition")
    # the CT layers on the mask's grid, of its series: two phases (or two positions) of a
    # patient reconstructed on one grid are told apart by the series the stats name
    for ly in layers:
        meta = getattr(ly, "metadata", None) or {}
        twin = meta.get(CT_VOLUME)
        if (
            meta.get(ROLE) == "ct"
            and _on_grid(twin, vol.shape, vol.napari_scale, vol.napari_translate)
            and twin.file_meta.get("files")
            and twin.same_grid(vol)
            and twin.meta.get("series_uid") == made_on.get("series_uid")
            and (acquisition is None or twin.meta.get("acquisition_number") in (None, acquisition))
        ):
            return twin
    return None


def grid_volume(layers, shape, scale, translate) -> CTVolume | None:
    """The geometry of the CT layer among ``layers`` whose grid is (``shape``, ``scale``,
    ``translate``), for a mask drawn on it: a CTVolume holding that CT's array, orientation,
    origin and DICOM identity.

    The plugin's CT image layers count first; with none on the grid, its labels layers (a
    segmentation opened on its own carries its CT's geometry). When several
    CTs of different series share the grid (the phases of a stacked series), the geometry is
    theirs but the DICOM identity is not kept (``meta["grid_shared_by"]`` names them): a DICOM
    SEG must not reference one of them by chance.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        return None
    scale = np.asarray(scale, float)[-3:]
    translate = np.asarray(translate, float)[-3:]
    found: list[tuple[str, CTVolume]] = []
    lent: list[tuple[str, CTVolume]] = []  # a segmentation's or ground truth's copy of a grid
    for ly in layers:
        meta = getattr(ly, "metadata", None) or {}
        vol = meta.get(CT_VOLUME)
        if _on_grid(vol, shape, scale, translate):
            (found if meta.get(ROLE) == "ct" else lent).append((ly.name, vol))
    # CT layers first; with none (a segmentation opened on its own), the plugin's labels layers
    found = found or lent
    if not found:
        return None
    # one scan: a DICOM series (and acquisition); a NIfTI CT has no UID, so its file (two
    # patients' NIfTI scans resampled to one grid were taken for one)
    series = {
        (
            f"{v.meta.get('series_uid')}/{v.meta.get('acquisition_number')}"
            if v.meta.get("series_uid")
            else str(v.meta.get("source") or id(v))
        )
        for _, v in found
    }
    name, vol = found[0]
    if len(series) == 1:
        return vol
    plain = without_dicom_identity(vol.meta)
    if len({str(v.meta.get("patient_id") or "") for _, v in found}) > 1:
        # nor whose patient it is: a mask drawn there is named for no one by chance
        for key in ("patient_id", "patient_name"):
            plain.pop(key, None)
    plain["grid_shared_by"] = [n for n, _ in found]
    return CTVolume(vol.array, vol.spacing, vol.origin, vol.direction, plain)


def on_one_grid(shape_a, scale_a, translate_a, shape_b, scale_b, translate_b) -> bool:
    """Two napari grids (shape, voxel size and position of the first voxel, in mm) are one: the
    same shape, voxel sizes within 1e-4, positions within a thousandth of a voxel. Every panel
    asks this one question the same way (a labels layer one panel took for the CT's, another
    refused)."""
    if tuple(int(n) for n in shape_a) != tuple(int(n) for n in shape_b):
        return False
    n = len(tuple(shape_a))
    scale_a = np.asarray(scale_a, float)[-n:]
    scale_b = np.asarray(scale_b, float)[-n:]
    return bool(
        np.allclose(scale_a, scale_b, rtol=1e-4, atol=1e-4)
        and np.allclose(
            np.asarray(translate_a, float)[-n:],
            np.asarray(translate_b, float)[-n:],
            rtol=0,
            atol=1e-3 * float(max(np.max(scale_a), np.max(scale_b))),  # either order
        )
    )


def _on_grid(vol, shape, scale, translate) -> bool:
    """Is ``vol`` a CTVolume on the napari grid (``shape``, ``scale``, ``translate``)?"""
    return isinstance(vol, CTVolume) and on_one_grid(
        vol.shape, vol.napari_scale, vol.napari_translate, shape, scale, translate
    )


def ct_array_for(layer, layers) -> np.ndarray | None:
    """The HU voxels under a labels ``layer``: those of the open CT layer on its grid (the one
    it was made on when several are: its ``CT_LAYER`` link), as that layer shows them. None
    when no CT layer lies on its grid, or several do and none is its own: a labels file's or a
    ground truth's own copy of a grid holds label values, not HU."""
    cts = _cts_on_grid(layer, layers)
    own = [ly for ly in cts if ly.name == layer.metadata.get(CT_LAYER)]
    pick = own or (cts if len(cts) == 1 and same_scan(layer, cts[0]) else [])
    return np.asarray(pick[0].data) if pick else None  # as shown (its voxels may be replaced)


def _cts_on_grid(layer, layers) -> list:
    """The plugin's CT image layers among ``layers`` on ``layer``'s voxel grid."""
    from napari.layers import Image

    shape = tuple(layer.data.shape)
    return [
        ly
        for ly in layers
        if isinstance(ly, Image)
        and ly.metadata.get(ROLE) == "ct"
        and _on_grid(ly.metadata.get(CT_VOLUME), shape, layer.scale, layer.translate)
        and tuple(ly.data.shape) == shape
    ]


def same_scan(layer, ct_layer) -> bool:
    """Whether a lone CT layer on ``layer``'s grid may lend it HU: ``layer`` names no CT of
    its own, or that CT is this one (its volume, or the same series and acquisition, or the
    same file). The other phase of a stacked series, left open when the labels' own phase was
    closed, gave its lesions the wrong phase's attenuation (+29 HU became −27) with no word."""
    if not layer.metadata.get(CT_LAYER):
        return True
    mine, theirs = layer.metadata.get(CT_VOLUME), ct_layer.metadata.get(CT_VOLUME)
    if mine is None or theirs is None or mine is theirs:
        return True
    a, b = mine.meta, theirs.meta
    if a.get("series_uid") and b.get("series_uid"):
        return a["series_uid"] == b["series_uid"] and a.get("acquisition_number") == b.get(
            "acquisition_number"
        )
    return bool(a.get("source")) and _resolved(a["source"]) == _resolved(b.get("source"))


def scan_of(layer, viewer=None) -> tuple[str, str] | None:
    """Which scan the labels (or CT) ``layer`` is of, as far as it tells: ``(key, words)``,
    the key equal for two layers of one scan (a DICOM series and acquisition, or a NIfTI CT's
    file), the words naming it for a reader (``series #104 'LIVER 3 PHASE CAP' of
    2007-12-23``, or ""). None when nothing tells (napari's *New labels layer*, a NIfTI
    label file with no stats beside it).

    Said by its own CTVolume's DICOM identity, else by the series ``segment``'s stats beside
    a labels file name (``made_on_series``), else by the CT layer it was made on. The grid
    alone does not tell: a follow-up study resampled onto its baseline's grid was scored
    against the baseline's ground truth, unsaid."""
    from ..stats import scan_identity, scan_words

    meta = getattr((getattr(layer, "metadata", None) or {}).get(CT_VOLUME), "meta", None) or {}
    if meta.get("series_uid"):
        key = f"{meta['series_uid']}/{meta.get('acquisition_number')}"
        return key, scan_words(scan_identity(meta))
    made_on = meta.get("made_on_series")
    if isinstance(made_on, dict) and made_on.get("series_uid"):
        key = f"{made_on['series_uid']}/{made_on.get('acquisition')}"
        said = scan_identity(
            {
                "series_uid": made_on["series_uid"],
                "study_date": str(made_on.get("study_date") or "").replace("-", ""),
                "series_number": made_on.get("series_number"),
                "description": made_on.get("series_description"),
            }
        )
        return key, scan_words(said)
    if viewer is None or (layer.metadata or {}).get(ROLE) == "ct":
        if (layer.metadata or {}).get(ROLE) == "ct" and meta.get("source"):
            return f"file:{_resolved(meta['source'])}", ""  # a NIfTI CT: its file
        return None
    own = linked_ct_name(layer, viewer)
    if own is None:
        return None
    return scan_of(viewer.layers[own], viewer)


def other_scans(a, b, viewer=None) -> str | None:
    """When the layers ``a`` and ``b`` both tell their scan (:func:`scan_of`) and the two
    differ: ``b``'s scan in words (or "another scan"); None when they are one scan, or either
    cannot tell."""
    mine, theirs = scan_of(a, viewer), scan_of(b, viewer)
    if mine is None or theirs is None or not comparable_scans(mine[0], theirs[0]):
        return None
    if mine[0] == theirs[0]:
        return None
    return theirs[1] or "another scan"


def comparable_scans(key: str, other: str) -> bool:
    """Whether two :func:`scan_of` keys can tell two scans apart: both a DICOM series's, or
    both a file's. A NIfTI CT converted from a series (keyed by its file) and labels made on
    that series (keyed by it) cannot be told apart, nor told to be one scan: the converted
    CT's own truth and labels read as another scan's."""
    return key.startswith("file:") == other.startswith("file:")


def _resolved(path) -> str:
    """A path as the file system resolves it (a symlink, another mount of it: the same file)."""
    if not path:
        return ""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):
        return str(path)


def lift_truths_over(viewer, layer, ct_layer) -> list[str]:
    """Move the ground truths lying between ``ct_layer`` and ``layer`` on its grid to just
    above ``layer``, in their order: drawn as outlines, they show where a filled segmentation
    differs only on top of it. (Under its CT lie other scans' and their truths: left there.)
    Returns the names of those moved."""
    layers = viewer.layers
    shape = tuple(layer.data.shape)
    under = [
        ly
        for ly in layers[layers.index(ct_layer) + 1 : layers.index(layer)]
        if ly.metadata.get(ROLE) == "ground_truth"
        and tuple(ly.data.shape) == shape
        and np.allclose(ly.scale, layer.scale)
        and np.allclose(ly.translate, layer.translate)
    ]
    for truth in reversed(under):  # each goes just above: the highest first keeps their order
        layers.move(layers.index(truth), layers.index(layer) + 1)
    if under:
        layers.selection.active = layer
    return [ly.name for ly in under]


def why_no_hu(layer, layers) -> str:
    """Why :func:`ct_array_for` finds no HU under ``layer``, in words for a status line."""
    cts = _cts_on_grid(layer, layers)
    if len(cts) == 1:
        return f"'{cts[0].name}' is not the scan these labels were made on"
    if cts:
        names = ", ".join(f"'{ly.name}'" for ly in cts[:3]) + (", …" if len(cts) > 3 else "")
        return f"several scans lie on their grid ({names}) and none is the one they were made on"
    own = layer.metadata.get(CT_LAYER)
    if own and own in layers:  # its own CT is open: the labels were moved in napari
        ct = layers[own]
        if tuple(ct.data.shape) == tuple(layer.data.shape):
            return (
                f"'{layer.name}' was moved or rescaled in napari (its position or voxel size no "
                f"longer that of its CT '{own}')"
            )
    return "no CT layer on their grid is open"


def without_dicom_identity(meta: dict) -> dict:
    """``meta`` without what ties a volume to its DICOM files, also in the stored grid a
    volume shown turned keeps (``stored_grid``: its per-slice references would otherwise
    number the lesions, or pick the voxel order, of a series that is not this one's)."""
    from dataclasses import replace

    plain = {k: v for k, v in meta.items() if k not in _DICOM_IDENTITY}
    grid = plain.get("stored_grid")
    if grid is not None:
        inner = {k: v for k, v in grid.meta.items() if k not in _DICOM_IDENTITY}
        plain["stored_grid"] = replace(grid, meta=inner)
    return plain


#: what ties a CTVolume to its DICOM files (a SEG references them)
_DICOM_IDENTITY = ("files", "unused_files", "sop_instance_uids", "instance_numbers",
                   "frame_numbers", "series_uid", "sop_class_uid", "study_uid",
                   "frame_of_reference_uid")  # fmt: skip


def tumor_not_assessed(layer, labels=None) -> bool:
    """True for a model segmentation whose tumor stage never ran (liver only, or no liver
    found; also one opened from a file that says so) and in which nobody has painted tumor
    since: its tumor figures are unknown, not 0."""
    from .._writer import tumor_not_assessed_in

    metadata = getattr(layer, "metadata", None) or {}
    return tumor_not_assessed_in(metadata, layer.data if labels is None else labels)


def output_labels(layer: Labels) -> tuple[np.ndarray, str]:
    """A uint8 snapshot of ``layer`` in output classes (0 background, 1 liver, 2 tumor).

    A loaded ground truth (HCC classes) is mapped: liver and portal vein → 1, tumor → 2, the
    aorta → background; the returned note says so. Any other layer holding values outside 0..2
    raises ``ValueError`` naming the layer (a cast would wrap 257 to 1 and call it liver).
    """
    data = np.asarray(layer.data)
    if layer.metadata.get(ROLE) == "ground_truth":
        from ..training.metrics import hcc_to_output

        if data.size and (data.min() < 0 or data.max() > max(CLASS_NAMES)):
            raise ValueError(
                f"'{layer.name}' holds label values from {data.min()} to {data.max()}; a ground "
                "truth has 0 background, 1 liver, 2 tumor, 3 portal vein and 4 aorta"
                f"{_where_values(data, 0, max(CLASS_NAMES))}. Relabel the layer first."
            )
        return hcc_to_output(data), (
            f"'{layer.name}' is a ground truth: written as liver (liver + portal vein) and tumor"
        )
    if data.size:
        lo, hi = data.min(), data.max()
        if lo < 0 or hi > 2:
            raise ValueError(
                f"'{layer.name}' holds label values from {lo} to {hi}; only 0 background, "
                f"1 liver and 2 tumor can be measured or exported{_where_values(data, 0, 2)}. "
                "Relabel the layer first (paint them 2 tumor, 1 liver or 0 background)."
            )
    return np.array(data, dtype=np.uint8, copy=True), ""


def _where_values(data: np.ndarray, lo: int, hi: int) -> str:
    """Where the values outside ``lo..hi`` lie (voxel count, values, slices), as a clause: a
    stroke of a wrong label was to be hunted for over the whole scan."""
    if data.ndim < 3:
        return ""
    stray = data > hi
    if lo > 0 or data.dtype.kind == "i":  # (unsigned data holds nothing under 0)
        stray |= data < lo
    per_slice = np.count_nonzero(stray.reshape(data.shape[0], -1), axis=1)
    slices = np.flatnonzero(per_slice)
    if not slices.size:
        return ""
    bad = np.unique(data[stray])
    shown = ", ".join(str(v) for v in bad[:5]) + (", …" if bad.size > 5 else "")
    runs = ", ".join(
        f"{r[0]}" if r[0] == r[-1] else f"{r[0]}–{r[-1]}"
        for r in np.split(slices, np.flatnonzero(np.diff(slices) > 1) + 1)[:6]
    )
    more = ", …" if np.count_nonzero(np.diff(slices) > 1) >= 6 else ""
    return f" (value(s) {shown}: {int(per_slice.sum())} voxel(s) on slice(s) {runs}{more})"


def unique_name(viewer: napari.Viewer, base: str) -> str:
    """``base``, or ``base [2]``, ``base [3]``... whichever is free in the layer list."""
    names = {ly.name for ly in viewer.layers}
    if base not in names:
        return base
    i = 2
    while f"{base} [{i}]" in names:
        i += 1
    return f"{base} [{i}]"


#: the suffix napari (and :func:`unique_name`) gives a name already taken: "… [2]"
_TAKEN_SUFFIX = re.compile(r"\s\[\d+\]$")


def moved_aside(name: str) -> bool:
    """Whether ``name`` is that of a result a rerun of Segment moved aside: "… (previous)",
    or "… (previous) [2]" beside an earlier one. Only a "[n]" at its end is such a suffix: a
    CT's own (the same scan loaded twice, "… [2] segmentation (previous)", or a series
    description holding " [") cut the name there, and the layer was not seen as moved aside."""
    return _TAKEN_SUFFIX.sub("", name).endswith("(previous)")


def ct_layer_name(viewer, volume) -> str:
    """A free layer name for ``volume``: its patient and series, with its study date when a
    layer of that name holds a scan of another day (a baseline beside a follow-up: napari's
    "[2]" told neither which was which nor survived a panel's cut-off list), else ``[2]``..."""
    name = _volume_name(volume)
    there = next((ly for ly in viewer.layers if ly.name == name), None)
    date = _study_date(volume)
    if there is not None and date:
        other = (there.metadata or {}).get(CT_VOLUME)
        if date != (_study_date(other) if other is not None else ""):
            name = f"{name} {date}"
    return unique_name(viewer, name)


def _study_date(volume) -> str:
    """``1998-06-12``: the volume's DICOM study date, or ""."""
    date = str((getattr(volume, "meta", None) or {}).get("study_date") or "")
    return f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 and date.isdigit() else ""


def _volume_name(volume: CTVolume) -> str:
    if volume.meta.get("display_name"):  # a NIfTI file's: without .nii.gz, its folder's name
        return str(volume.meta["display_name"])  # too where the file's is a generic one
    pid = str(volume.meta.get("patient_id") or "")
    desc = str(volume.meta.get("description") or "")
    name = f"{pid} {desc}" if pid and desc and pid.lower() not in desc.lower() else desc or pid
    # one acquisition of a series stacking phases: which one, in the name (the other's layer
    # was told apart only by napari's "[2]", read as "acquisition 2"), its number last: napari's
    # layer list cuts a long name in the middle, and "HCC_001 Abd…rtal venous)" read the same
    # for two passes of one phase ("(kernel B30f, portal venous, pass 2)": "…ous, pass 2)");
    # the acquisition holding a pass just before it ("(kernel B70f, acq 2, pass 3)")
    which = _pass_words(volume)
    return f"{name or 'CT'} {which}" if which else name or "CT"


def _pass_words(volume) -> str:
    """ "(kernel B70f, portal venous, acq 2, pass 3)": which pass of a series stacking several
    ``volume`` is, as its CT layer's name ends; "" of any other scan."""
    meta = getattr(volume, "meta", None) or {}
    label = str(meta.get("acquisition_label") or "")
    if not label:
        return ""
    number, *how = label.split(", ")  # "pass 3, acq 2, kernel B70f"
    acq = [w for w in how if w.startswith("acq ")]
    phase = str(meta.get("phase") or "")
    phase = phase if phase != "unknown" else ""
    words = [w for w in how if w not in acq] + [phase] * bool(phase) + acq + [number]
    return f"({', '.join(words)})"


def labels_name(ct_name: str, what: str, volume=None) -> str:
    """The name of ``what`` ("segmentation", "ground truth") of the CT layer ``ct_name``:
    "HCC_001 ABD segmentation". Of a CT named with its pass (``volume`` one pass of a series
    stacking several), ``what`` goes before the pass, which stays last: "HCC_001 ABD
    segmentation (arterial, acq 1)" (napari's layer list cuts a long name in the middle, and
    two passes' "HCC_001 ABD (arterial, acq 1) segmentation" read "HCC_001 ABD (ar…segmentation"
    both). A CT renamed to leave out its pass: ``what`` last."""
    which = _pass_words(volume)
    head, found, tail = ct_name.rpartition(f" {which}") if which else ("", "", "")
    if not found:
        return f"{ct_name} {what}"
    return f"{head} {what}{found}{tail}"  # (" [2]", a study date: after the pass, as the CT's)


def grid_of(viewer):
    """napari's grid-mode settings (``viewer.canvas.grid`` from 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    grid = getattr(canvas, "grid", None) if canvas is not None else None
    return grid if grid is not None else getattr(viewer, "grid", None)


def grid_on(viewer) -> bool:
    """Whether napari's grid mode draws each layer in a cell of its own."""
    return bool(getattr(grid_of(viewer), "enabled", False))


def shows_axial(viewer) -> bool:
    """True when the viewer shows axial slices (2D, rows and columns displayed, either way
    round: napari's Transpose keeps the slice axial). A 3D view, or one rolled to sagittal or
    coronal slices, shows none."""
    dims = viewer.dims
    if dims.ndisplay != 2:
        return False
    n = dims.ndim
    if n < 3:  # no volume yet (an empty viewer): nothing rolled
        return True
    return set(dims.order[-2:]) == {n - 2, n - 1}


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
