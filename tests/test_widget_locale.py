"""The panels under a desktop locale whose decimal point is a comma (German, French, Italian):
a number typed with a dot or a comma is the number meant, and every number shows a dot.

Under LANG=de_DE.UTF-8 Qt's spin boxes read "." as a group separator: the learning rate
"0.001" became 1.0 (the maximum), λ "0.5" became 5.0, σ "1.5" became 1.0, and those reached
the training and the refinement. In en_US a comma was the group separator ("1,25" gave 125).
"""

from __future__ import annotations

import pytest
from qtpy.QtCore import QLocale, Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QDoubleSpinBox

from napari_livertumor._widgets.refine import RefineWidget
from napari_livertumor._widgets.train import TrainWidget

pytestmark = pytest.mark.gui

LOCALES = {
    "de_DE": (QLocale.German, QLocale.Germany),
    "en_US": (QLocale.English, QLocale.UnitedStates),
}


@pytest.fixture(params=list(LOCALES))
def desktop_locale(request):
    """The panels are built under the desktop's locale (a widget takes the default locale
    when it is made): the default is set first, and restored after."""
    before = QLocale()
    QLocale.setDefault(QLocale(*LOCALES[request.param]))
    try:
        yield request.param
    finally:
        QLocale.setDefault(before)


@pytest.fixture
def panels(desktop_locale, make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    refine = RefineWidget(viewer)
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(refine, name="Refine")
    viewer.window.add_dock_widget(train, name="Train")
    refine.method.value = "geodesic"  # the balloon's and the threshold's rows shown
    refine.auto_threshold.value = False
    train.stage.setCurrentText("tumor")  # the weak term's box enabled
    QApplication.processEvents()
    return refine, train


def _box(widget) -> QDoubleSpinBox:
    """The number box a user types in: a magicgui float's own, or a slider's read-out."""
    if isinstance(widget, QDoubleSpinBox):
        return widget
    native = widget.native
    return native if isinstance(native, QDoubleSpinBox) else native.findChildren(QDoubleSpinBox)[0]


def _enter(box: QDoubleSpinBox, text: str, how: str) -> None:
    """Type (or paste) ``text`` over the box's number and press Enter, as a user does."""
    edit = box.lineEdit()
    box.setFocus()
    edit.selectAll()
    if how == "keys":
        QTest.keyClicks(edit, text)
    else:
        QApplication.clipboard().setText(text)
        QTest.keyClick(edit, Qt.Key_V, Qt.ControlModifier)
    QTest.keyClick(edit, Qt.Key_Return)
    QApplication.processEvents()


#: (panel, control, typed with a dot, the value meant, the config's field)
FIELDS = [
    ("refine", "lambda2", "0.5", 0.5, "lambda2"),
    ("refine", "sigma", "2.5", 2.5, "sigma"),
    ("refine", "min_contrast", "0.8", 0.8, "min_contrast"),
    ("refine", "balloon", "1.5", 1.5, "balloon"),  # a slider's read-out box
    ("refine", "threshold", "0.35", 0.35, "threshold"),  # a slider's read-out box
    ("train", "lr", "0.001", 0.001, "lr"),
    ("train", "weak_lambda", "0.2", 0.2, "weak_lambda"),
]


@pytest.mark.parametrize("how", ["keys", "paste"])
def test_a_decimal_typed_with_a_dot_or_a_comma_is_the_number_meant(panels, how, tmp_path):
    refine, train = panels
    train.data.setText(str(tmp_path / "data"))
    train.out.setText(str(tmp_path / "out"))
    for mark in (".", ","):
        for panel_name, control, dotted, meant, _field in FIELDS:
            panel = refine if panel_name == "refine" else train
            box = _box(getattr(panel, control))
            box.setValue(box.minimum())  # something else first
            _enter(box, dotted.replace(".", mark), how)
            assert box.value() == pytest.approx(meant), (control, mark, box.text())
            # shown with a dot, as the files, the command line and napari's own controls
            assert "," not in box.text() and "." in box.text(), (control, box.text())
        # what reaches the core
        cfg, tcfg = refine.build_config(), train.build_config()
        for panel_name, _control, _dotted, meant, field in FIELDS:
            got = getattr(cfg if panel_name == "refine" else tcfg, field)
            assert got == pytest.approx(meant), (field, mark, got)


def test_a_number_that_cannot_be_read_never_becomes_another(panels):
    """A pasted "1.234,5" (or "1,234.5") is no number of one decimal point: the box keeps
    its value rather than guessing; no group separator is ever read."""
    refine, train = panels
    for box in (_box(refine.sigma), _box(refine.alpha), _box(train.lr), _box(refine.threshold)):
        box.setValue(box.minimum() + box.singleStep())
        before = box.value()
        for text in ("1.234,5", "1,234.5"):
            _enter(box, text, "paste")
            assert box.value() == before, (box.accessibleName(), text, box.text())


@pytest.mark.parametrize("typed", ["2,500", "2.500"])
def test_alpha_is_a_whole_number_a_typed_thousands_mark_never_makes_it_small(panels, typed):
    """Alpha (1–10000) takes whole numbers: an English "2,500" or a German "2.500" is 2500
    (the mark refused as typed, the digits run on), never 2.5."""
    refine, _train = panels
    alpha = _box(refine.alpha)
    assert alpha.decimals() == 0
    _enter(alpha, typed, "keys")
    assert alpha.value() == 2500, alpha.text()
    assert refine.build_config().alpha == 2500
    before = alpha.value()
    _enter(alpha, "1.5", "paste")  # a pasted fraction is refused whole: the value is kept
    assert alpha.value() == before


def test_a_settings_file_with_a_fractional_alpha_loads_rounded(panels, tmp_path, monkeypatch):
    refine, _train = panels
    path = tmp_path / "refine.json"
    path.write_text('{"method": "geodesic", "alpha": 1500.4}')
    monkeypatch.setattr(
        "napari_livertumor._widgets.refine.QFileDialog.getOpenFileName",
        lambda *a, **k: (str(path), ""),
    )
    refine._load_settings()
    assert refine.alpha.value == 1500
    assert any("alpha 1500.4 is set as 1500" in n for n in refine._config_notes)
    cfg = refine.build_config()
    assert cfg.alpha == 1500.0
    assert cfg.validated()[0].alpha == 1500.0  # the refine core takes it


def test_every_number_box_of_the_panels_shows_a_dot(panels):
    refine, train = panels
    boxes = refine.findChildren(QDoubleSpinBox) + train.findChildren(QDoubleSpinBox)
    assert len(boxes) >= 11
    for box in boxes:
        box.setValue(box.maximum() / 3 if box.maximum() < 1e6 else 1234.5)
        assert "," not in box.text(), (box.accessibleName(), box.text())
        assert box.locale().decimalPoint() == "."


@pytest.mark.parametrize("how", ["keys", "paste"])
def test_a_whole_number_box_never_takes_a_mark(panels, how):
    """Epochs, steps and the HU boxes take whole numbers: a pasted "0,5" epochs became 5 (Qt
    read the comma as a thousands mark) and a typed one showed "0,5" until the box lost the
    focus. A mark is refused as a mark (typed: the digits run on; pasted: the value kept)."""
    refine, train = panels
    for box in (train.epochs, train.steps, train.hu_low, refine.hu_low.native):
        box.setValue(7)
        for text in ("0,5", "1.5", "1,000"):
            _enter(box, text, how)
            assert "," not in box.text() and "." not in box.text(), (text, box.text())
            if how == "paste":
                assert box.value() == 7, (text, box.text())
            else:  # the digits typed, without the mark
                want = int(text.replace(",", "").replace(".", ""))
                assert box.value() == max(box.minimum(), want), (text, box.text())
            box.setValue(7)
