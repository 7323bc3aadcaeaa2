"""The quality-control picture of a segmentation (``livertumor segment --preview``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_livertumor.io.volume import CTVolume, Reorientation
from napari_livertumor.preview import preview_slices, write_preview


def _case():
    """A body with the liver on the patient's right, anterior (standard LPS grid)."""
    ct = np.full((20, 64, 80), -1000, np.int16)
    ct[:, 8:56, 6:74] = 30  # body
    labels = np.zeros(ct.shape, np.uint8)
    labels[4:16, 12:36, 10:34] = 1  # low x: the patient's right; low y: anterior
    labels[8:11, 20:26, 16:22] = 2
    ct[labels == 1] = 60
    ct[labels == 2] = 10
    return CTVolume(ct, spacing=(3.0, 0.8, 0.8), origin=(-30.0, -20.0, 100.0)), labels


def _pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_slices_quarter_the_liver_and_take_the_largest_tumor_section():
    _, labels = _case()
    cuts = preview_slices(labels, (3.0, 0.8, 0.8))
    # liver z 4..15 (12 slices): its quartiles at 6, 9 and 12; the tumor's largest section
    # (z 8..10, all equal: the first) replaces the nearest (9)
    assert cuts == {"axial": [6, 8, 12], "coronal": 23}
    assert preview_slices(np.zeros((7, 10, 10), np.uint8), (1, 1, 1)) == {
        "axial": [3],
        "coronal": 5,
    }


def test_the_picture_is_the_same_for_any_storage_order_of_the_same_scan(tmp_path):
    """A RAS-stored NIfTI (rows and columns reversed) shows the liver where a DICOM series of
    the same patient shows it: on the image's left (the patient's right), at the top."""
    volume, labels = _case()
    write_preview(volume, labels, tmp_path / "lps.png", title="P")
    turn = Reorientation(perm=(0, 1, 2), flip=(False, True, True))
    stored = volume.turned(turn)
    assert not np.array_equal(stored.array, volume.array)
    write_preview(stored, turn.apply(labels), tmp_path / "ras.png", title="P")
    first = _pixels(tmp_path / "lps.png")
    np.testing.assert_array_equal(first, _pixels(tmp_path / "ras.png"))
    green = (first[..., 1] > 180) & (first[..., 0] < 120)
    ys, xs = np.nonzero(green[:, : first.shape[1] // 5])  # the first axial panel
    body_mid = first.shape[1] // 5 / 2
    assert xs.mean() < body_mid  # liver on the image's left: radiological view


def test_labels_off_the_grid_are_refused_and_nothing_is_left(tmp_path):
    volume, labels = _case()
    with pytest.raises(ValueError, match="not on the CT's grid"):
        write_preview(volume, labels[:-1], tmp_path / "p.png")
    assert not list(tmp_path.iterdir())


def test_the_panels_are_cropped_to_the_body_head_up_and_captioned_with_their_positions(
    tmp_path, monkeypatch
):
    """Each panel as drawn: the axial cuts cropped to the body (10 mm around it, the air
    beside it left out), the coronal cut with the head at the top, and the captions' positions
    on the patient's axes (LPS: S for z above 0, P for y above 0)."""
    from matplotlib.axes import Axes

    shown, captions = [], []
    imshow, set_title = Axes.imshow, Axes.set_title

    def record_image(self, image, *args, **kwargs):
        if kwargs.get("cmap") == "gray":  # the CT (the tumor's tint is drawn over it)
            shown.append((np.asarray(image), kwargs["extent"]))
        return imshow(self, image, *args, **kwargs)

    def record_caption(self, label, *args, **kwargs):
        captions.append(label)
        return set_title(self, label, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", record_image)
    monkeypatch.setattr(Axes, "set_title", record_caption)
    volume, labels = _case()
    pad = ((0, 0), (40, 40), (40, 40))  # 32 mm of air on every side of the body
    ct = np.pad(volume.array, pad, constant_values=-1000)
    ct[-1][ct[-1] > -500] = 200  # the head-most slice's body marked
    volume = CTVolume(ct, spacing=volume.spacing, origin=volume.origin)
    write_preview(volume, np.pad(labels, pad), tmp_path / "p.png")
    # slice k lies at S 100 + 3 k mm; the coronal cut (row 63) at P -20 + 0.8 * 63 mm
    assert captions == [
        "axial, slice 6 of 0–19 (S 118 mm)",
        "axial, slice 8 of 0–19 (S 124 mm)",
        "axial, slice 12 of 0–19 (S 136 mm)",
        "coronal at P 30 mm",
    ]
    *axial, (coronal, coronal_extent) = shown
    for image, extent in axial:  # body rows 48..95, columns 46..113, 13 voxels around
        assert image.shape == (74, 94)
        assert extent == pytest.approx((0, 94 * 0.8, 74 * 0.8, 0))
    assert coronal.shape == (20, 94) and coronal_extent == pytest.approx((0, 75.2, 60.0, 0))
    assert coronal[0].max() == 200 and coronal[-1].max() == 30  # the head up, the feet down


def test_a_home_that_cannot_hold_matplotlibs_cache_is_worked_around_quietly(tmp_path):
    """A compute node's read-only home: matplotlib printed two warnings (and its font-cache
    note) on every --preview run, then made a temporary folder itself."""
    import os
    import subprocess
    import sys

    blocked = tmp_path / "a_file"
    blocked.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPLCONFIGDIR"))}
    env["HOME"] = str(blocked / "home")  # below a file: no folder can be made there
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "import sys; sys.path.insert(0, sys.argv[2])\n"
        "from test_preview import _case\n"
        "from napari_livertumor.preview import write_preview\n"
        "v, lab = _case(); write_preview(v, lab, sys.argv[1], title='P')\n"
    )
    out = tmp_path / "p.png"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), os.path.dirname(__file__)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    assert "matplotlib" not in done.stderr.lower(), done.stderr
    assert not list((tmp_path / "tmp").iterdir())  # its temporary folder went at exit


def test_each_lesion_is_numbered_beside_it_as_in_the_stats(tmp_path):
    """The preview drew every lesion in plain red: lesion 3 of the stats could not be found."""
    from napari_livertumor.preview import _number_lesions
    from napari_livertumor.stats import compute_stats, lesion_id_map

    volume, labels = _case()
    labels[9, 40:44, 24:30] = 2  # a second, smaller lesion on the same slice
    stats = compute_stats(labels, volume.spacing, affine_lps=volume.affine_lps)
    ids = lesion_id_map(labels, affine_lps=volume.affine_lps)

    class Axes:
        said: list = []

        def text(self, x, y, s, **kw):
            self.said.append((s, x, y))

    ax = Axes()
    _number_lesions(ax, ids[9], (0, 80 * 0.8, 64 * 0.8, 0))
    assert sorted(s for s, *_ in ax.said) == ["1", "2"]
    for s, x, y in ax.said:  # beside its own lesion: right of its edge, at its middle rows
        les = stats["lesions"][int(s) - 1]
        (z0, z1), (y0, y1), (x0, x1) = les["bbox_zyx"]
        assert x == pytest.approx((x1 + 0.5) * 0.8) and y0 * 0.8 <= y <= y1 * 0.8
    ax.said.clear()
    _number_lesions(ax, np.zeros((5, 5), np.uint8), (0, 4, 4, 0))
    assert ax.said == []
    write_preview(volume, labels, tmp_path / "p.png", title="P")  # and drawn without error


@pytest.fixture
def fresh_font_lookup(monkeypatch):
    """The title's font lookup and its once-a-run note, as in a new process."""
    from napari_livertumor import preview

    monkeypatch.setattr(preview, "_FONT_FOR", {})
    monkeypatch.setattr(preview, "_SAID_UNDRAWABLE", [])
    return preview


def test_a_title_no_installed_font_can_draw_is_drawn_with_question_marks_and_said_once(
    tmp_path, caplog, fresh_font_lookup
):
    """A patient folder "患者_山田太郎" on a machine without a CJK font: boxes in the title and a
    matplotlib warning per character ("Glyph 24739 ... missing from font(s) DejaVu Sans."),
    a batch's log flooded. Now "?" for them, and one note a run."""
    import logging
    import warnings

    title = "患者_山田太郎: liver 1500 mL"
    if fresh_font_lookup._title_fonts(title)[1] != "患者山田太郎":
        pytest.skip("a font installed here draws CJK")
    fresh_font_lookup._FONT_FOR.clear()
    volume, labels = _case()
    with warnings.catch_warnings(record=True) as said, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        write_preview(volume, labels, tmp_path / "a.png", title=title)
        write_preview(volume, labels, tmp_path / "b.png", title="患者_鈴木花子: liver 1500 mL")
    assert not [w for w in said if "Glyph" in str(w.message)], [str(w.message) for w in said]
    notes = [r for r in caplog.records if r.name == "napari_livertumor.preview"]
    assert [r.levelno for r in notes] == [logging.WARNING, logging.DEBUG]
    assert "no installed font can draw: 患者山田太郎 (" in notes[0].getMessage()
    assert "鈴木花子" in notes[1].getMessage()
    write_preview(volume, labels, tmp_path / "ascii.png", title="??_????: liver 1500 mL")
    np.testing.assert_array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "ascii.png"))


def test_a_title_character_matplotlibs_font_lacks_is_drawn_in_an_installed_font_that_has_it(
    tmp_path, caplog, fresh_font_lookup, monkeypatch
):
    """No font fallback was set: a character DejaVu Sans lacks was a box even where an installed
    font has it (a CJK font for a Japanese name; here DejaVu Sans Mono's arc, which matplotlib
    ships). Latin-1, Greek and Cyrillic names are DejaVu Sans's own."""
    import logging
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    preview = fresh_font_lookup
    assert preview._title_fonts("Müller_Ørsted_Παπαδόπουλος_Иванов_Łódź: liver") == (None, "")
    families, missing = preview._title_fonts("Arc_⌒: liver")
    assert missing == "" and families[0] == "sans-serif" and len(families) == 2  # (Mono, say)
    fig = Figure()
    FigureCanvasAgg(fig)
    fig.suptitle("Arc_⌒: liver", family=families)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        fig.canvas.draw()  # matplotlib's own fallback draws it: nothing missing
        volume, labels = _case()
        titles = []
        suptitle = Figure.suptitle
        monkeypatch.setattr(
            Figure,
            "suptitle",
            lambda self, t, **kw: titles.append((t, kw)) or suptitle(self, t, **kw),
        )
        with caplog.at_level(logging.DEBUG, logger="napari_livertumor.preview"):
            write_preview(volume, labels, tmp_path / "p.png", title="Arc_⌒: liver")
    assert not [str(w.message) for w in said]
    assert not caplog.records
    assert [(t, kw.get("family")) for t, kw in titles] == [("Arc_⌒: liver", families)]


def test_fallback_fonts_are_looked_for_by_name_first_then_among_all(monkeypatch, caplog):
    import logging

    """A CJK font installed (Noto Sans CJK JP, say) is found, before others that have the
    characters too; never the Last Resort font (its boxes "cover" every character)."""
    from types import SimpleNamespace

    from matplotlib import font_manager

    from napari_livertumor import preview

    def face(name, file, weight=400, style="normal"):
        return SimpleNamespace(name=name, fname=f"/fonts/{file}", weight=weight, style=style)

    fonts = [
        face("Zebra Sans", "zebra.ttf"),
        face("Last Resort High-Efficiency", "LastResortHE-Regular.ttf"),
        face("Bold Only", "boldonly.ttf", weight=700),
        face("Noto Sans CJK JP", "NotoSansCJK-Regular.ttc"),
        face("Noto Sans CJK JP", "NotoSansCJK-Bold.ttc", weight=700),
        face("Arial Unicode MS", "arialuni.ttf", weight="normal"),
    ]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", fonts)
    assert preview._candidate_fonts() == ["Noto Sans CJK JP", "Arial Unicode MS", "Zebra Sans"]

    # a Japanese title, with a font that has its characters: drawn in it, nothing said
    monkeypatch.setattr(preview, "_FONT_FOR", {})
    monkeypatch.setattr(preview, "_candidate_fonts", lambda: ["DejaVu Sans Mono"])
    has = preview._has_glyphs

    def cjk_in_mono(path, chars):  # (DejaVu Sans Mono standing for a CJK font)
        return has(path, chars) | (set(chars) & set("患者") if "SansMono" in path else set())

    monkeypatch.setattr(preview, "_has_glyphs", cjk_in_mono)
    families = ["sans-serif", "DejaVu Sans Mono"]
    with caplog.at_level(logging.DEBUG, logger="napari_livertumor.preview"):
        assert preview._drawable_title("患者_1") == ("患者_1", families)
    assert not caplog.records
