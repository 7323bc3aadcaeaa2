"""What every dock widget shares: status messages, and running jobs with a Cancel button."""

from __future__ import annotations

import importlib
import itertools
import logging
import re
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from ..errors import LiverTumorError, toast_text
from ._jobs import Job, error_text

log = logging.getLogger(__name__)


def log_failure(description: str, msg: str, exc: BaseException) -> None:
    """Log a job's failure with its traceback when it is a bug: not bad input or a refusal
    (the tool's own errors), not the disk or memory, not an error a job put in words itself
    (a ``JobFailed`` of no cause: a training process's refusal, a crash's exit code). A
    training process's bug comes with its own traceback (``remote_traceback``)."""
    from ._jobs import JobFailed

    remote = getattr(exc, "remote_traceback", None)
    if remote:
        log.error("%s: %s\n%s", description, msg, remote.rstrip())
        return
    from ..memory import out_of_memory

    cause = exc.__cause__ if isinstance(exc, JobFailed) else exc
    if cause is None or isinstance(cause, LiverTumorError | OSError | MemoryError):
        return
    if out_of_memory(cause) is not None:  # torch's: the memory, not a bug
        return
    log.error("%s: %s", description, msg, exc_info=cause)


def path_text(edit) -> str:
    """The path typed in a line edit, trimmed, with ``~`` as the user's home (a folder named
    ``~`` was created in napari's working folder) and a relative path made absolute (it is
    napari's working folder, which the user does not see: messages name the whole path),
    quotes around it dropped;
    ``""`` when nothing is typed."""
    import os

    text = edit.text().strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()  # a pasted quoted path (Windows' "Copy as path")
    if not text:
        return ""
    return os.path.abspath(os.path.expanduser(text) if text.startswith("~") else text)


def notify_error(message: str) -> None:
    """Show ``message`` in napari's notification area (never raises)."""
    try:
        from napari.utils.notifications import show_error

        show_error(toast_text(message))
    except Exception:  # a closing viewer must not turn a message into a crash
        pass


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification (never raises)."""
    try:
        from napari.utils.notifications import show_warning

        show_warning(toast_text(message))
    except Exception:  # a notification is a courtesy; the widget's status says it too
        pass


def panel_in_view(panel) -> bool:
    """Can the user read ``panel`` now: shown, in a window not minimized, and not a tab
    behind another panel's (Qt counts those visible)?"""
    try:
        if not panel.isVisible() or panel.window().isMinimized():
            return False
        dock = panel.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        return dock is None or not _dock_hidden_behind_tab(dock)
    except (RuntimeError, AttributeError):  # deleted meanwhile, or no widget (a test's)
        return False


def notify_unseen(panel, message: str, *, warning: bool = False) -> None:
    """Say ``message`` (which the panel's status line says) in napari's notifications too when
    the panel is out of view (closed, a tab behind another, its window minimized), so it is
    never lost. Not while the panel shows it: the toast said it a second time, in other
    words, and napari's toast, closing itself 4 s later, put the keyboard focus on the canvas
    (``parent().setFocus()``): the keys a user typed next in the panel went to napari."""
    if panel_in_view(panel):
        return
    (notify_warning if warning else notify_error)(message)


#: (error, warning) text colours on napari's dark and light panels: both legible (contrast
#: at least 4.5:1); the dark theme's amber and red measured 1.6:1 and 2.3:1 on the light one
_STATUS_COLORS = {"dark": ("#ff6b6b", "#e0b040"), "light": ("#b3261e", "#7a4f00")}

#: a run of this many characters without a space (a path, a DICOM UID) gets break points
_LONG_TOKEN = 24
_ZWSP = "\u200b"


def breakable(text: str) -> str:
    """``text`` with zero-width break points after ``/ \\ . _ -`` inside long runs without
    spaces: a word-wrapped label can only wrap at spaces, and one 64-character DICOM UID in
    a status line widened the panel (and the window) past a laptop screen."""
    import re

    def split(match: re.Match) -> str:
        token = re.sub(r"([/\\._\-])", "\\1" + _ZWSP, match.group(0))
        # and a long run of digits or letters (a UID's last part) every 20 characters
        return re.sub(r"[^\s\u200b]{20}(?=[^\s\u200b])", lambda m: m.group(0) + _ZWSP, token)

    return re.sub(rf"\S{{{_LONG_TOKEN},}}", split, text)


class StatusLabel(QLabel):
    """A word-wrapped message line that never widens its panel.

    Long runs without spaces get invisible break points for display (:func:`breakable`);
    :meth:`text` gives the message as it was set. Its width is what the panel gives it.
    The text can be selected with the mouse and copied (Ctrl+C or the right-click menu, which
    also copies the whole message): a copied path or UID comes without the break points.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__("")
        self._text = ""
        self._kind = ""  # "error", "warning" or "": its colour follows the theme
        self.setWordWrap(True)
        # from the top left: in a short notes box, centred text showed an empty box
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        # plain text always: a message starting "<0.01" or holding "<5" is no HTML
        self.setTextFormat(Qt.PlainText)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setMinimumWidth(60)
        # a path or a DICOM UID in a message is something to paste into a terminal or a ticket;
        # by keyboard too: Tab reaches a message (a screen reader reads it), Ctrl+A and Ctrl+C
        # copy it (Qt's label moves no selection with Shift and the arrows)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        self._text = str(text)
        super().setText(breakable(self._text))
        # a tab stop while it says something (an empty line was a stop on nothing)
        self.setFocusPolicy(Qt.StrongFocus if self._text else Qt.ClickFocus)

    def text(self) -> str:
        return self._text

    def clear(self) -> None:
        self.setText("")

    def selected_text(self) -> str:
        """The selected part of the message, without the display's break points."""
        return self.selectedText().replace(_ZWSP, "")

    def copy_text(self, whole: bool = False) -> str:
        """Put the selection (or, with ``whole`` or nothing selected, the message) on the
        clipboard; returns what was copied."""
        from qtpy.QtWidgets import QApplication

        text = self._text if whole or not self.hasSelectedText() else self.selected_text()
        QApplication.clipboard().setText(text)
        return text

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from qtpy.QtGui import QKeySequence

        if event.matches(QKeySequence.Copy) and self.hasSelectedText():
            self.copy_text()  # Qt's own copy would keep the zero-width break points
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from qtpy.QtWidgets import QMenu

        menu = QMenu(self)
        copy = menu.addAction("Copy")
        copy.setEnabled(self.hasSelectedText())
        copy.triggered.connect(lambda: self.copy_text())
        whole = menu.addAction("Copy message")
        whole.setEnabled(bool(self._text))
        whole.triggered.connect(lambda: self.copy_text(whole=True))
        menu.exec_(event.globalPos())

    def set_kind(self, kind: str) -> None:
        """Colour the text as an ``"error"``, a ``"warning"`` or plain (``""``); a screen
        reader says the kind (the accessible description: the colour alone told them apart,
        and red and amber are one olive with red-green colour blindness)."""
        self._kind = kind
        self.setAccessibleDescription(kind)
        self._restyle()

    def _restyle(self) -> None:
        style = status_color(self, error=self._kind == "error", warning=self._kind == "warning")
        if self.styleSheet() != style:  # (setting it sends a style change of its own)
            self.setStyleSheet(style)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        # napari restyles its window when the theme changes: the colour follows
        if event.type() in (QEvent.StyleChange, QEvent.PaletteChange) and self._kind:
            QTimer.singleShot(0, self._restyle_if_alive)
        super().changeEvent(event)

    def _restyle_if_alive(self) -> None:
        try:
            self._restyle()
        except RuntimeError:  # deleted meanwhile
            pass


def is_light_theme(widget, viewer=None) -> bool:
    """Whether ``viewer`` (else the napari window holding ``widget``, else napari's
    settings) has a light theme."""
    name = None
    try:
        if viewer is not None:
            name = viewer.theme
        qt_viewer = getattr(widget.window(), "_qt_viewer", None)
        if name is None and qt_viewer is not None:
            name = qt_viewer.viewer.theme
        if name is None:
            from napari.settings import get_settings

            name = get_settings().appearance.theme
        from napari.utils.theme import get_theme

        background = get_theme(name).background.as_rgb_tuple()
    except Exception:  # no napari window (a test), an unknown theme: the default, dark
        return False
    return sum(background[:3]) / 3 > 128


def status_color(widget, *, error: bool = False, warning: bool = False) -> str:
    """The stylesheet of an error or warning text legible on ``widget``'s theme ("" else)."""
    if not (error or warning):
        return ""
    red, amber = _STATUS_COLORS["light" if is_light_theme(widget) else "dark"]
    return f"color: {red if error else amber};"


def set_status(
    label, message: str, *, error: bool = False, warning: bool = False, scroll: bool = True
) -> None:
    """Write ``message`` in a widget's status label (red for errors, amber for warnings).

    In a panel scrolled up (a short dock), the label is scrolled into view: a refusal below
    the visible part looked like a button that did nothing. ``scroll=False`` for a passive
    hint no click asked for (it scrolled a panel just opened down to its bottom, past its
    layer pickers)."""
    try:
        kind = "error" if error else "warning" if warning else ""
        if isinstance(label, StatusLabel):
            label.set_kind(kind)
        else:
            label.setStyleSheet(status_color(label, error=error, warning=warning))
            label.setAccessibleDescription(kind)  # (not by its colour only)
        label.setText(message)
        if message and scroll:
            scroll_into_view(label)
    except RuntimeError:  # label already deleted
        pass


def _alive(call, widget) -> None:
    """``call(widget)`` unless the widget was deleted meanwhile."""
    try:
        call(widget)
    except RuntimeError:
        pass


#: the suffixes napari gives a plugin panel's title (the plugin's name through the API, its
#: display name through the Plugins menu): in tabs they hid the panels' own names
_PLUGIN_SUFFIXES = (" (napari-livertumor)", " (Liver Tumor Segmentation)")


def tab_with_other_panels(widget) -> None:
    """Dock ``widget``'s panel as a tab of this plugin's panels already docked on that side of
    the window: opened one by one from the Plugins menu, six panels stacked one under another
    left each about two rows on a laptop screen (no button in sight). Not for a panel floated
    or docked on another side; a panel already among tabs stays."""
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    dock = widget.parentWidget()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is None or dock.isFloating():
        return
    main = dock.parentWidget()
    if not isinstance(main, QMainWindow):
        return
    first = not getattr(dock, "_livertumor_panel", False)
    dock._livertumor_panel = True
    menu_shows_tabs(dock)
    from .demo import TAB_TITLES, WIDGETS

    title = dock.windowTitle()  # the tab's text: the demo's
    for suffix in _PLUGIN_SUFFIXES:
        title = title.removesuffix(suffix)
    short = {WIDGETS[k]: TAB_TITLES[k] for k in WIDGETS}
    dock.setWindowTitle(short.get(title, title))
    title_bar_follows_title(dock)
    if not first or main.tabifiedDockWidgets(dock):
        show_whole_tabs(dock)  # (the demo's tabs)
        return
    area = main.dockWidgetArea(dock)
    others = [
        d
        for d in main.findChildren(QDockWidget)
        if d is not dock
        and getattr(d, "_livertumor_panel", False)
        and d.isVisible()
        and not d.isFloating()
        and main.dockWidgetArea(d) == area
    ]
    if others:
        main.tabifyDockWidget(others[0], dock)
        dock.show()
        dock.raise_()
        show_whole_tabs(dock)


def title_bar_follows_title(dock) -> None:
    """napari's title bar over a panel (its ``QtCustomTitleBar``, drawn by the dock itself)
    shows the dock's window title, the tab's short text: it showed the dock's ``name`` (the
    Plugins menu's key for the panel, which stays), "1 Load CT (Liver Tumor Segmentation)"
    over the tab "1 Load". Said again when the title changes and when napari makes the bar
    anew (the panel floated or docked elsewhere). Once per dock; a napari whose bar has no
    ``title`` label keeps its own text."""
    _title_in_bar(dock)
    if dock.__dict__.get("_livertumor_title_follows"):
        return
    dock.__dict__["_livertumor_title_follows"] = True
    ref = weakref.ref(dock)

    def follow(*_) -> None:  # connected after napari's own slots: runs after the bar is made
        dock = ref()
        if dock is not None:
            _alive(_title_in_bar, dock)

    for name in ("windowTitleChanged", "topLevelChanged", "dockLocationChanged"):
        getattr(dock, name).connect(follow)


def _title_in_bar(dock) -> None:
    label = getattr(getattr(dock, "title", None), "title", None)
    if isinstance(label, QLabel) and dock.windowTitle():
        label.setText(dock.windowTitle())


#: the most of the window's width the plugin's panels are widened to, to show their tabs whole
_TABS_SHARE = 0.35


def show_whole_tabs(dock) -> None:
    """Widen the side of the window ``dock`` is a tab on till its tabs' titles show whole (at
    most 35 % of the window's width): six tabs in a 1500 px window read "1 L…", "2 Seg…",
    "T…" where the README says to click "2 Segment". Never narrowed; a floating panel, one
    docked at the top or bottom, or one not among tabs is left as it is."""
    main = dock.parentWidget()
    if not isinstance(main, QMainWindow) or dock.isFloating() or not dock.isVisible():
        return
    if main.dockWidgetArea(dock) not in (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea):
        return
    group = [dock, *main.tabifiedDockWidgets(dock)]
    if len(group) < 2:
        return
    main.layout().activate()  # the tab bar of a dock just tabified made, its tabs named
    titles = {d.windowTitle() for d in group}
    bars = [
        bar
        for bar in main.findChildren(QTabBar)
        if bar.isVisible() and {bar.tabText(i) for i in range(bar.count())} == titles
    ]
    if not bars:
        return
    want = min(bars[0].sizeHint().width(), int(main.width() * _TABS_SHARE))
    if bars[0].width() < want:
        main.resizeDocks([dock], [want], Qt.Horizontal)
        # laid out now, not at the window's next layout request: the demo's screenshot, taken
        # in the same turn of a busy event loop, still showed the tabs cut short
        main.layout().activate()


#: the module of napari's Plugins menu toggle (``_toggle_or_get_widget``), which shows or
#: hides an open panel by ``dock.setVisible(not dock.isVisible())``
_NAPARI_MENU_TOGGLE = "napari._qt._qplugins._qnpe2"


def menu_shows_tabs(dock) -> None:
    """The Plugins menu's item for the panel of ``dock`` shows that panel. Qt counts a tab
    behind another visible, so napari's toggle hid it: "2 Segment" chosen while "4 Inspect"
    was in front hid Segment's tab, and chosen again put it back behind Inspect. Now a tab
    behind another comes to the front instead, and a panel the menu shows again comes to the
    front. Only napari's menu is answered so (PyQt also routes Qt's own ``setVisible`` calls,
    from ``hide()``, ``close()`` or the dock area's layout, through the dock's attribute: those
    are passed on as they are). Once per dock."""
    if dock.__dict__.get("_livertumor_menu_shows"):
        return
    dock.__dict__["_livertumor_menu_shows"] = True
    set_visible = type(dock).setVisible  # the class's: Qt's own (unbound: no cycle held)
    ref = weakref.ref(dock)

    def menu_set_visible(visible: bool) -> None:
        dock = ref()
        if dock is None:
            return
        caller = sys._getframe(1).f_globals.get("__name__")
        if caller != _NAPARI_MENU_TOGGLE:
            set_visible(dock, visible)
            return
        if not visible and dock.window().isVisible() and _dock_hidden_behind_tab(dock):
            dock.raise_()  # a tab behind another: to the front, not hidden
            return
        shown_again = visible and dock.isHidden()
        set_visible(dock, visible)
        if shown_again:
            # once the dock area has put its tab back (raised now, another stayed in front)
            QTimer.singleShot(0, lambda: _alive(_raise_dock, dock))

    dock.setVisible = menu_set_visible  # (the instance's: napari's menu calls this one)


def _raise_dock(dock) -> None:
    if dock.isVisible():
        dock.raise_()


def name_status(panel) -> None:
    """Give the panel's status line an accessible name ("Load status"): a screen reader read
    an unnamed text."""
    status = getattr(panel, "status", None)
    if isinstance(status, QLabel) and not status.accessibleName():
        status.setAccessibleName(f"{type(panel).__name__.removesuffix('Widget')} status")


def _dock_hidden_behind_tab(dock) -> bool:
    """Is ``dock`` a tab of a tabbed dock group other than the one shown? Qt moves those
    off screen and still counts them visible."""
    main = dock.parentWidget()
    if not isinstance(main, QMainWindow) or dock.isFloating():
        return False
    if not main.tabifiedDockWidgets(dock):
        return False
    return dock.visibleRegion().isEmpty()


def _raise_focused_dock(_old, new) -> None:
    """The focus went into a panel of this plugin whose dock is a tab not shown: that tab
    is shown, so the focus is always on screen (Tab past Load's last control went into
    Segment's controls unseen, and Space on its hidden Run started a run)."""
    try:
        dock = new
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is None or not _holds_panel(dock) or not _dock_hidden_behind_tab(dock):
            return
        dock.raise_()
        if new is not None and not isinstance(new, PanelScroll):
            scroll_into_view(new)  # (scrolled to, now that it is shown)
    except RuntimeError:  # deleted meanwhile
        pass


def _holds_panel(dock) -> bool:
    """Does ``dock`` hold one of this plugin's panels?"""
    inner = dock.widget()
    if inner is None:
        return False
    return isinstance(inner, JobWidgetMixin) or any(
        isinstance(w, JobWidgetMixin)
        for w in inner.findChildren(QWidget, "", Qt.FindDirectChildrenOnly)
    )


def raise_docks_on_focus() -> None:
    """Follow the keyboard focus (once per QApplication): see :func:`_raise_focused_dock`."""
    app = QApplication.instance()
    if app is None or app.property("livertumor_raises_docks"):
        return
    app.setProperty("livertumor_raises_docks", True)
    app.focusChanged.connect(_raise_focused_dock)


#: widgets napari's stylesheet gives no font size: they kept Qt's default whatever napari's
#: font size (a table of volumes, a path, the training log among labels twice their size)
def _font_followers() -> tuple:
    from qtpy.QtWidgets import QLineEdit, QPlainTextEdit, QTableView, QTextEdit

    return (QTableView, QLineEdit, QPlainTextEdit, QTextEdit)


def napari_font_size() -> float | None:
    """napari's font size (pt; its *Appearance* setting), None without napari's settings."""
    try:
        from napari.settings import get_settings

        return float(get_settings().appearance.font_size)
    except Exception:  # noqa: BLE001 - no settings: Qt's own sizes
        return None


def apply_font_size(panel) -> None:
    """Set napari's font size on the panel's tables, text fields and logs (not on the text
    field of a combo or number box: napari's stylesheet sizes those)."""
    size = napari_font_size()
    if size is None or size <= 0:
        return
    kinds = _font_followers()
    for w in panel.findChildren(QWidget):
        if not isinstance(w, kinds):
            continue
        parent = w.parentWidget()
        if isinstance(parent, (QComboBox, QAbstractSpinBox)):
            continue
        font = w.font()
        if font.pointSizeF() != size:
            font.setPointSizeF(size)
            w.setFont(font)


def follow_font_size(panel, also: Callable[[], None] | None = None) -> None:
    """Apply napari's font size to ``panel`` (:func:`apply_font_size`) once it is built and
    whenever it is changed; ``also`` is called then too (a plot's fonts). Stops following
    when the panel is deleted."""
    if also is not None:
        panel.__dict__.setdefault("_font_calls", []).append(also)
    if panel.__dict__.get("_follows_font"):
        return
    panel.__dict__["_follows_font"] = True
    try:
        from napari.settings import get_settings

        emitter = get_settings().appearance.events.font_size
    except Exception:  # noqa: BLE001 - no napari settings
        return
    ref = weakref.ref(panel)

    def apply(*_) -> None:
        widget = ref()
        if widget is None:
            return
        try:
            apply_font_size(widget)
            for call in widget.__dict__.get("_font_calls", []):
                call()
        except RuntimeError:  # deleted meanwhile
            pass

    def stop(*_) -> None:
        try:
            emitter.disconnect(apply)
        except Exception:  # noqa: BLE001 - already gone
            pass

    emitter.connect(apply)
    panel.destroyed.connect(stop)
    QTimer.singleShot(0, apply)  # once its __init__ has made its controls


def enter_presses_buttons(widget) -> None:
    """Enter (Return) on a focused button presses it, as Space does: Qt does so only for a
    dialog's buttons, and a keyboard user's Enter on Load or Run did nothing. Like Space, the
    click comes when the key is released, once: Qt's own (auto-default) way clicked at every
    repeat of a held key (Run, then its Cancel) and left the next repeat to answer the dialog
    the click opened."""
    from qtpy.QtWidgets import QPushButton

    for button in widget.findChildren(QPushButton):
        if not button.property("enter_presses"):
            button.setProperty("enter_presses", True)
            button.installEventFilter(_enter_filter())


class _EnterPresses(QObject):
    """Event filter: Return/Enter pressed and released on a button clicks it once."""

    _KEYS = (Qt.Key_Return, Qt.Key_Enter)

    def __init__(self) -> None:
        super().__init__()
        self._down: set = set()
        #: (button, timestamp) of the key or mouse release being handled (its click's)
        self.input: tuple | None = None

    def _note_input(self, obj, event) -> None:
        """The release that may click ``obj`` now, with its time as typed (the window
        system's, in ms), until the event loop runs again."""
        token = (obj, event.timestamp())
        self.input = token

        def forget() -> None:
            if self.input is token:
                self.input = None

        QTimer.singleShot(0, forget)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        keyed = kind in (QEvent.KeyPress, QEvent.KeyRelease)
        if kind == QEvent.MouseButtonRelease or (
            kind == QEvent.KeyRelease and not event.isAutoRepeat()
        ):
            self._note_input(obj, event)
        if keyed and event.key() in self._KEYS:
            if kind == QEvent.KeyRelease and obj in self._down and not event.isAutoRepeat():
                self._down.discard(obj)  # (whatever modifiers were pressed meanwhile)
                try:
                    obj.setDown(False)
                    if obj.isEnabled():
                        obj.click()
                except RuntimeError:  # deleted meanwhile
                    pass
                return True
            if event.modifiers() not in (Qt.NoModifier, Qt.KeypadModifier):
                return False
            if event.isAutoRepeat():
                return True  # a held key: one click, at the end
            if kind == QEvent.KeyPress:
                self._down = {b for b in self._down if _exists(b)}
                self._down.add(obj)
                obj.setDown(True)
            return True
        # the button pressed another way meanwhile (a mouse click, Space): that press counts,
        # not a second one when Enter comes up
        pressed = kind == QEvent.MouseButtonPress or (keyed and event.key() == Qt.Key_Space)
        if obj in self._down and (pressed or kind == QEvent.FocusOut):
            self._down.discard(obj)
            obj.setDown(False)
        return False


def input_time(button) -> int | None:
    """When the key or mouse button clicking ``button`` now was released, as the window system
    timed it (ms); None for a click from code (or an event without a time: a test's keys)."""
    found = _FILTERS[0].input if _FILTERS else None
    if found is None or found[0] is not button or not found[1]:
        return None
    return int(found[1])


def _exists(qobject) -> bool:
    """Is the Qt object behind a Python wrapper still there?"""
    try:
        qobject.objectName()
        return True
    except RuntimeError:
        return False


_FILTERS: list = []


def _enter_filter() -> _EnterPresses:
    """The shared filter, made in the GUI thread on first use (a QObject lives in its thread)."""
    if not _FILTERS:
        _FILTERS.append(_EnterPresses())
    return _FILTERS[0]


def scroll_into_view(widget) -> None:
    """Scroll the panel holding ``widget`` to it, once the panel is laid out."""
    scroll = widget.parent()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parent()
    if scroll is not None:
        QTimer.singleShot(0, lambda: _show_in(scroll, widget))
        # and again once a wrapped message has its full height (its last lines stayed below
        # the panel's edge when the first pass ran before the label grew)
        QTimer.singleShot(80, lambda: _show_in(scroll, widget))


def _show_in(scroll, label) -> None:
    try:
        inner = scroll.widget()
        if inner is not None and inner.layout() is not None:
            # lay out first: a notes box shown with the message moved it down after the
            # scroll, and the result of an Apply sat below the panel's edge
            inner.layout().activate()
        # up and down only: a panel held narrower than a wide label was scrolled sideways to
        # centre it, every field's left edge cut off ("ayer", "dels")
        across = scroll.horizontalScrollBar().value()
        scroll.ensureWidgetVisible(label, 0, 8)
        scroll.horizontalScrollBar().setValue(across)
    except RuntimeError:  # deleted meanwhile
        pass


def clear_status_if(label, *starts: str) -> None:
    """Clear a status that began with one of ``starts`` (a "no layer" complaint that a new
    layer has just answered), so no stale red message sits over a panel that now works."""
    try:
        if label.text().startswith(starts):
            set_status(label, "")
    except RuntimeError:  # label already deleted
        pass


def warm_up_imports(*modules: str) -> None:
    """Import torch, MONAI and ``modules`` (the background thread of
    :func:`warm_up_in_background`, one such import at a time); an ImportError is left for
    the job that needs the module to report."""
    from ._jobs import IMPORT_LOCK

    with IMPORT_LOCK.serial:  # one background import at a time
        try:
            import monai.inferers  # noqa: F401
            import monai.networks.nets  # noqa: F401
            import safetensors.torch  # noqa: F401
            import torch  # noqa: F401

            for name in modules:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported when a job needs them (ImportError, or an
            pass  # OSError from a broken CUDA library): the device line must not wait forever


#: the device line while torch is being imported in the background
CHECKING_DEVICE = "Looking for a GPU…"


def warm_up_in_background(label, *modules: str) -> None:
    """:func:`warm_up_imports` in a background thread, then ``label`` shows
    :func:`device_summary`.

    Importing torch and MONAI takes seconds; on the GUI thread the window froze that long
    when the panel opened. From a thread the window keeps drawing (the longest pause left is
    the loading of torch's libraries, a few tenths of a second). A plain daemon thread, not a
    Qt worker: it never signals Qt objects a closed window has deleted, and never holds up
    quitting; a timer owned by ``label`` picks the result up. Jobs started meanwhile wait for
    it (``_jobs.IMPORT_LOCK``).
    """
    import threading

    from ._jobs import IMPORT_LOCK

    # this package's own modules (light: a tenth of a second, no torch) now, on this thread:
    # then no other thread is ever inside them while the GUI thread imports from them too
    ours = [m for m in modules if m.split(".")[0] == __name__.split(".")[0]]
    for name in ours:
        importlib.import_module(name)
    rest = [m for m in modules if m not in ours]
    done: dict[str, str] = {}

    def work() -> None:
        try:
            warm_up_imports(*rest)
        finally:
            IMPORT_LOCK.done()
        try:
            done["text"] = device_summary()
        except Exception as exc:  # noqa: BLE001 - a torch that cannot look for a GPU
            done["text"] = f"Could not look for a GPU ({type(exc).__name__}: {exc})"

    IMPORT_LOCK.announce()  # before the thread starts: a job started now waits for it
    threading.Thread(target=work, name="livertumor-imports", daemon=True).start()
    if label is None:
        return
    timer = QTimer(label)  # goes with the label when the panel is closed
    timer.setInterval(100)

    def show() -> None:
        if "text" in done:
            timer.stop()
            label.setText(done["text"])

    timer.timeout.connect(show)
    timer.start()


def _trim_soon() -> None:
    """Once a job's results are shown and its working arrays freed: the memory they held is
    handed back to the system (:func:`napari_livertumor.memory.return_freed_memory`), off the
    GUI thread (a large heap takes tens of ms to trim)."""
    import threading

    from ..memory import return_freed_memory

    def trim() -> None:
        try:
            return_freed_memory()
        except Exception:  # noqa: BLE001 - a convenience: never an error of the job's
            pass

    QTimer.singleShot(0, lambda: threading.Thread(target=trim, daemon=True).start())


def device_summary() -> str:
    """What torch finds: the GPU(s) "auto" would use, or that it runs on the CPU."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"Found CUDA: {names} (auto uses it)"
    return f"No CUDA GPU found (torch {torch.__version__}); auto runs on the CPU"


def mark_result_of(panel, layer) -> None:
    """The panel's status line now tells of ``layer`` (a result it made or wrote)."""
    panel.__dict__["_result_of"] = (weakref.ref(layer), layer.name)


def say_if_result_removed(panel) -> None:
    """The layer the panel's status line tells of was removed (the next patient's turn): the
    line says so first. Segment still read "Segmented 'HCC_001 …': liver 1385.5 mL, tumor
    337.3 mL" over the next patient's scan, its figures easy to take for that one's. Renamed
    (a Segment rerun moves the last result aside as "(previous)"), the line names it anew:
    Export's "Wrote … of 'X segmentation'" named the new result."""
    held = panel.__dict__.get("_result_of")
    if held is None:
        return
    ref, name = held
    layer = ref()
    if layer is not None and any(ly is layer for ly in panel.viewer.layers):
        if layer.name != name and not panel.busy:  # renamed (a Segment rerun's "(previous)")
            panel.__dict__["_result_of"] = (ref, layer.name)
            text = panel.status.text()
            if f"'{name}'" in text:
                set_status(
                    panel.status,
                    text.replace(f"'{name}'", f"'{layer.name}'"),
                    warning=panel.status._kind == "warning",
                    scroll=False,
                )
        return
    panel.__dict__["_result_of"] = None
    text = panel.status.text()
    if text and not panel.busy:
        kind = getattr(panel.status, "_kind", "")  # (an amber or red line keeps its colour)
        set_status(
            panel.status,
            f"(The layer '{name}' this tells of was removed.)\n{text}",
            error=kind == "error",
            warning=kind == "warning",
            scroll=False,
        )


class HiddenNote:
    """A panel's amber line "⚠ '<labels>' is hidden: …" (:func:`_layers.hidden_choice_note`)
    kept true while eyes turn in the layer list: said again in its new words, or taken off the
    status once the labels are shown again (measured with a patient's layers hidden, "… not
    'A …' on view" stayed after both were shown again). It follows the ``visible`` events of
    the labels, their CT and the other segmentations, layers added, removed, renamed or moved
    (the panel's :meth:`layers_changed`, the list's ``moved``) and grid mode turned on or off,
    until the line is no longer in the status (another said since), the labels are removed,
    or the panel is closed."""

    def __init__(self, panel, done: str, verb: str) -> None:
        self._panel = weakref.ref(panel)
        self._done, self._verb = done, verb  # as hidden_choice_note's
        self._layer = None  # a weak reference to the labels the line is of
        self._line = ""
        # the layers the line names, with their names then: the panel's status follows their
        # renames (Inspect's every labels', Export's of the labels written), so the line may
        # stand there with the new names (the old line no longer found, it stopped following)
        self._names: list = []
        self._amber = False  # the status amber without the line too
        self._watched: list = []  # weak references to the layers followed
        self._events: list = []  # the layer list's and grid's events followed
        me = weakref.ref(self)
        panel.destroyed.connect(lambda *_: me() is not None and me().stop())

    def said(self, layer, note: str, amber: bool = False) -> None:
        """The panel's status now holds the line ``"⚠ " + note`` (none: ``note`` "") of the
        labels ``layer``; ``amber``: whether the status is amber for another reason too."""
        self.stop()
        panel = self._panel()
        if not note or layer is None or panel is None or layer not in panel.viewer.layers:
            return
        self._layer, self._amber = weakref.ref(layer), amber
        self._take_line(note, panel.viewer)
        self._follow(panel.viewer)

    def layers_changed(self) -> None:
        """Layers were added, removed or renamed: the removed ones are let go (the labels':
        all), new segmentations followed, and the line said again (the segmentation it named
        on view removed, it went on advising to choose it)."""
        panel = self._panel()
        try:
            there = {id(ly) for ly in panel.viewer.layers} if panel is not None else set()
        except RuntimeError:
            there = set()
        layer = self._layer() if self._layer is not None else None
        if layer is None or id(layer) not in there:
            self.stop()
            return
        self._follow(panel.viewer)
        self._turned()

    def stop(self) -> None:
        """Follow no eye any more."""
        self._let_go()
        self._layer = None

    def pause(self) -> None:
        """The panel closed: follow nothing until it is docked again (its refresh then calls
        :meth:`layers_changed`, which follows again and says the line anew)."""
        self._let_go()

    def _take_line(self, note: str, viewer) -> None:
        from . import _layers

        self._line = f"⚠ {note}" if note else ""
        self._names = [
            (weakref.ref(ly), ly.name)
            for ly in _layers.labels_layers(viewer)
            if f"'{ly.name}'" in self._line
        ]

    def _follow(self, viewer) -> None:
        """Follow the eyes of the labels, their CT and the other segmentations open now, the
        layers' order and grid mode."""
        from . import _layers

        self._let_go()
        layer = self._layer() if self._layer is not None else None
        if layer is None:
            return
        own = _layers.linked_ct_name(layer, viewer)
        follow = [layer, *([viewer.layers[own]] if own is not None else [])]
        follow += [
            ly for ly in _layers.labels_layers(viewer, role="segmentation") if ly is not layer
        ]
        for ly in follow:
            ly.events.visible.connect(self._turned)
            self._watched.append(weakref.ref(ly))
        grid = getattr(_layers.grid_of(viewer), "events", None)
        for event in (viewer.layers.events.moved, getattr(grid, "enabled", None)):
            if event is not None:
                event.connect(self._turned)
                self._events.append(event)

    def _let_go(self) -> None:
        watched, self._watched = self._watched, []
        for ref in watched:
            ly = ref()
            if ly is not None:
                _disconnect_event(ly.events.visible, self._turned)
        events, self._events = self._events, []
        for event in events:
            _disconnect_event(event, self._turned)

    def _find(self, lines: list[str]) -> int | None:
        """Where the line stands in the status ``lines``: as said, or with some of the layers
        it names renamed since; None when something else was said since."""
        renames = []
        for ref, old in self._names:
            ly = ref()
            if ly is not None and ly.name != old:
                renames.append((f"'{old}'", f"'{ly.name}'"))
        for k in range(len(renames) + 1):
            for some in itertools.combinations(renames, k):
                line = self._line
                for old, new in some:
                    line = line.replace(old, new)
                if line in lines:
                    return lines.index(line)
        return None

    def _turned(self, event=None) -> None:
        from . import _layers

        panel = self._panel()
        layer = self._layer() if self._layer is not None else None
        try:
            if panel is None or layer is None or layer not in panel.viewer.layers:
                self.stop()
                return
            lines = panel.status.text().split("\n")
            at = self._find(lines)
            if at is None:  # something else said since
                self.stop()
                return
            note = _layers.hidden_choice_note(panel.viewer, layer, self._done, self._verb)
            line = f"⚠ {note}" if note else ""
            self._take_line(note, panel.viewer)
            if line == lines[at]:
                return
            lines[at : at + 1] = [line] if line else []
            set_status(
                panel.status, "\n".join(lines), warning=bool(note) or self._amber, scroll=False
            )
            if not note:  # shown again: nothing left to say of it
                self.stop()
        except RuntimeError:  # the panel is being deleted
            self.stop()


def _disconnect_event(event, slot) -> None:
    try:
        event.disconnect(slot)
    except Exception:  # noqa: BLE001 - already gone with the layer or the viewer
        pass


def follow_layer_list(widget, viewer, slot) -> None:
    """Call ``slot`` when layers are added, removed or renamed, while ``widget`` is docked.

    On a rename the panel's pickers keep the renamed layer chosen: their entries take the new
    name before the lists are refilled (refilled alone, a choice gone by name fell back to the
    first entry: another patient's CT, Inspect's results cleared). A panel the user closes
    stops following (:meth:`JobWidgetMixin.event`) and holds nothing the viewer keeps: napari
    only takes a closed panel out of its dock, so a follower kept here would keep the panel,
    its networks and its undo history alive, reacting to every layer event, after each close.
    Docked again (a script can), it follows again and refreshes.
    """
    import weakref

    from . import _layers

    ref = weakref.ref(widget)

    def renamed(layer, old: str) -> None:
        panel = ref()
        if panel is None or layer.metadata.get(_layers.SUPERSEDED):
            return  # gone, or moved aside for a new result of that name
        try:
            for combo in panel.findChildren(NameCombo):
                if not combo.lists_layers:  # models, lesions: a layer's name is no item there
                    continue
                for i in range(combo.count()):
                    if combo.itemText(i) == old:
                        combo.setItemText(i, layer.name)
        except RuntimeError:  # the panel is being deleted
            return
        slot()

    events = (viewer.layers.events.inserted, viewer.layers.events.removed)
    state: dict = {}

    def connect() -> bool:
        """Follow (again); True if it was not following."""
        if state.get("stop") is not None:
            return False
        state["stop"] = _layers.on_rename(viewer, renamed)
        for event in events:
            event.connect(slot)
        # the slider named "slice" (napari's default read "-3") for a scan opened from napari's
        # sample menu or File > Open, before a panel or after
        viewer.layers.events.inserted.connect(name_axes)
        name_axes()
        return True

    def name_axes(*_) -> None:
        _layers.name_axes(viewer)

    def disconnect(*_) -> None:
        stop = state.pop("stop", None)
        if stop is None:
            return
        stop()
        for event, call in [*((e, slot) for e in events), (events[0], name_axes)]:
            try:
                event.disconnect(call)
            except Exception:  # already gone with the viewer
                pass

    connect()
    widget.__dict__.setdefault("_layer_following", []).append((connect, disconnect, slot))
    widget.destroyed.connect(disconnect)


class _ClosedPanel:
    """What a panel closed by the user left for the next one of its kind in its viewer: its
    fields' values, and the jobs its closing stopped that were still ending (by the name of
    the button that started them)."""

    def __init__(self, panel, fields: dict, winding: dict, text: str) -> None:
        self.panel = weakref.ref(panel)
        self.fields = fields
        self.winding = winding
        self.text = text  # what the closing stopped, as said then (the panel may be gone)

    def closed_text(self) -> str:
        """The closed panel's own words for what its closing stopped, asked when its job has
        ended (Train's depend on whether the run saved a state meanwhile)."""
        panel = self.panel()
        if panel is not None:
            try:
                return panel.closed_text()
            except Exception:  # noqa: BLE001 - a panel half deleted: its words at the close
                pass
        return self.text


#: viewer → panel class name → :class:`_ClosedPanel`: napari's dock ✕ takes a panel out and the
#: Plugins menu then makes a new one, which came back blank (a training set-up to type again)
#: and knew nothing of the closed panel's run still stopping (a Start beside it wrote into
#: the same output folder)
_CLOSED_PANELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _field_value(widget):
    """The value of a form control (text, choice, number, tick), or None for another kind."""
    from qtpy.QtWidgets import QAbstractButton, QLineEdit

    if isinstance(widget, QAbstractButton):
        return widget.isChecked() if widget.isCheckable() else None
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QAbstractSpinBox) and hasattr(widget, "value"):
        return widget.value()
    if isinstance(widget, QLineEdit):
        return widget.text()
    return None


def _set_field(widget, value) -> None:
    """Set a form control as the user would: its signals fire (a stage chosen brings its
    defaults; a model folder typed is read when its field is left, so that is said too)."""
    from qtpy.QtWidgets import QAbstractButton, QLineEdit

    if isinstance(widget, QAbstractButton):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        index = widget.findText(str(value))
        if index >= 0:  # (a choice no longer offered: the panel's own)
            widget.setCurrentIndex(index)
    elif isinstance(widget, QAbstractSpinBox) and hasattr(widget, "setValue"):
        widget.setValue(value)
    elif isinstance(widget, QLineEdit) and widget.text() != value:
        widget.setText(str(value))
        widget.editingFinished.emit()


class JobWidgetMixin:
    """Mixin for a QWidget that runs core work through :class:`Job` objects.

    The widget must have ``status`` (QLabel) and may have ``progress_bar`` (QProgressBar).
    While a job runs, the button that started it reads "Cancel" and cancels it when clicked.
    Jobs are shut down when the widget is destroyed (closed dock or closed viewer).
    """

    def init_jobs(self, viewer) -> None:
        from ._layers import dim_truth_in_3d, keep_head_up, show_new_scans, unproxied

        # the viewer, not napari's proxy a panel opened from the Plugins menu is handed: held
        # weakly, the proxy was gone at once (ground truths no longer dimmed in 3D, and a dead
        # callback added at each panel open)
        viewer = unproxied(viewer)
        dim_truth_in_3d(viewer)  # (any panel open does it for its viewer)
        keep_head_up(viewer)
        show_new_scans(viewer)
        escape_cancels_in_viewer(viewer)
        gl_deletes_in_own_canvas(viewer)
        # once the panel is built (the rest of its __init__ runs first); again when shown
        QTimer.singleShot(0, lambda: _alive(enter_presses_buttons, self))
        # docked by now (napari docks a panel as soon as it is built)
        QTimer.singleShot(0, lambda: _alive(tab_with_other_panels, self))
        raise_docks_on_focus()
        follow_font_size(self)
        QTimer.singleShot(0, lambda: _alive(name_status, self))
        self.jobs: dict[Any, Job] = {}
        self._button_text: dict[Any, str] = {}
        jobs = self.jobs
        finish = self.FINISH_ON_CLOSE
        # A plain function, not a bound method: it runs after the C++ widget is gone (napari's
        # window closed with its close button deletes the docks without a closeEvent).
        self.destroyed.connect(
            lambda *_: [
                job.detach() if finish and job.running else job.shutdown()
                for job in list(jobs.values())
            ]
        )

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.shutdown_jobs()
        self.panel_closed()
        self._remember_closed()
        super().closeEvent(event)

    def event(self, event) -> bool:
        # napari's dock "x" button takes the widget out of its dock (parent → None) without
        # closing or deleting it: that is the moment the user closed this panel.
        if event.type() == QEvent.ParentChange:
            following = getattr(self, "_layer_following", [])
            if self.parent() is None:
                self.shutdown_jobs()
                for _, disconnect, _ in following:
                    disconnect()
                self.panel_closed()
                self._remember_closed()
            else:
                self._forget_closed()  # this very panel docked again: it is as it was
                for connect, _, slot in following:
                    if connect():  # docked again after a close: the layers may have changed
                        slot()
                self.panel_opened()
                # docked: the column is shared out again (a new dock took its full height)
                QTimer.singleShot(50, lambda: _alive(share_dock_column, self))
        elif event.type() == QEvent.Show:
            enter_presses_buttons(self)
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        # Esc in the panel cancels what runs, as its Cancel button does (a keyboard user had
        # to Tab to it). A key the focused control did not use comes here: an Esc that closes
        # a combo box's list does not (as a shortcut, it cancelled a run too)
        if event.key() == Qt.Key_Escape and self._escape_pressed():
            event.accept()
            return
        super().keyPressEvent(event)

    def _escape_pressed(self) -> bool:
        """Esc: the running job whose button reads Cancel is cancelled, as a click would (not
        Train's Stop: its button does not read Cancel; hours of training, stopped by a stray
        key). True when one was."""
        for _job, button in self.escapable_jobs():
            self.click_by_key(button)
            return True
        return False

    def click_by_key(self, button) -> None:
        """Press ``button`` for a key (Esc): a key pressed right after Start is no
        double-click's second click, so a run is cancelled at once (it said "click again to
        stop it", and an Esc pressed again soon was taken as a double-tap)."""
        self.__dict__["_by_key"] = True
        try:
            button.click()
        finally:
            self.__dict__["_by_key"] = False

    def escapable_jobs(self) -> list:
        """``(job, button)`` of each running job that Esc cancels: its button reads Cancel
        (and is not already stopping it)."""
        return [
            (job, button)
            for button, job in list(self.jobs.items())
            if job.running and button.isEnabled() and button.text().startswith("Cancel")
        ]

    def panel_closed(self) -> None:
        """The user closed the panel: take away what it shows in the viewer (override)."""

    def panel_opened(self) -> None:
        """The panel is docked (again) (override)."""

    #: the form's controls (attribute names) a panel opened again in the viewer takes from
    #: the one the user closed, in the order they are set (a choice that brings defaults
    #: for others first)
    REMEMBERED_FIELDS: tuple[str, ...] = ()
    #: a job of this widget is let finish when the widget closes, not stopped (an export: a
    #: set of files half replaced would mix old and new results)
    FINISH_ON_CLOSE = False
    #: what a job's button and status say while it stops (Train: "Stopping…", as its button
    #: reads Stop)
    STOPPING_TEXT = "Cancelling…"
    #: how long the double-click note stands before the run's own line comes back
    NOTE_SECONDS = 3
    #: what closing the panel during a job says (after the panel's name)
    CLOSED_TEXT = "the panel was closed, so its running job was stopped; no layer was changed."

    def shutdown_jobs(self) -> None:
        """Stop every running job (the core saves what it can) and drop its results; a widget
        whose work must not stop half-way (``FINISH_ON_CLOSE``) lets it finish unseen."""
        running = [job for job in self.jobs.values() if job.running]
        buttons = list(self.jobs)
        for job in list(self.jobs.values()):
            if self.FINISH_ON_CLOSE and job.running:
                job.detach()
            else:
                job.shutdown()
        self._winding_jobs().update({b: j for b, j in self.jobs.items() if j.running})
        self.jobs.clear()
        self.__dict__["_started_at_close"] = self.__dict__.get("_jobs_started", 0)
        # the jobs no longer report their end here: the panel shows it, as it is shown again
        # when docked anew (a script can; its button read Cancel and started a new run)
        try:
            bar = getattr(self, "progress_bar", None)
            if bar is not None:
                bar.setVisible(False)
            for button in buttons:
                if button not in self._winding_jobs():
                    button.setText(self._button_text.get(button, button.text()))
                    button.setEnabled(True)
                else:  # usable again when the job has ended (_wound_down)
                    button.setText("Finishing…" if self.FINISH_ON_CLOSE else self.STOPPING_TEXT)
                    button.setEnabled(False)
            if running and getattr(self, "status", None) is not None:
                set_status(
                    self.status,
                    "Closed while writing: it finishes in the background (its files are "
                    "whole when this button is usable again)."
                    if self.FINISH_ON_CLOSE
                    else f"Stopping: {self.closed_text()}",
                )
            if self._winding_jobs():
                self._watch_winding()
        except RuntimeError:  # the panel is being deleted
            pass
        if running and self.FINISH_ON_CLOSE:
            try:
                from napari.utils.notifications import show_info

                show_info(
                    f"{type(self).__name__.removesuffix('Widget')}: the panel was closed while "
                    "it was writing; it finishes in the background, so the folder holds one "
                    "whole set of files."
                )
            except Exception:  # the viewer may be closing too
                pass
        elif running:
            try:
                from napari.utils.notifications import show_info

                show_info(f"{type(self).__name__.removesuffix('Widget')}: {self.closed_text()}")
            except Exception:  # the viewer may be closing too
                pass

    def closed_text(self) -> str:
        """What stopping a running job by closing the panel did (a panel may say it from what
        its job had done by then)."""
        return self.CLOSED_TEXT

    def _winding_jobs(self) -> dict:
        """Jobs stopped (or let finish) by the panel's closing, still running: their buttons
        stay unusable until they end (a new export beside the last one's files, a new
        training run before the stopped one had saved)."""
        try:
            return self.__dict__["_winding"]
        except KeyError:
            return self.__dict__.setdefault("_winding", {})

    def _watch_winding(self) -> None:
        """Poll the jobs still ending until they have (:meth:`_wound_down`)."""
        timer = QTimer(self)
        timer.setInterval(200)
        timer.timeout.connect(lambda: _alive(self._wound_down, timer))
        timer.start()

    def _remember_closed(self) -> None:
        """The user closed the panel: its fields (``REMEMBERED_FIELDS``) and the jobs its
        closing stopped that are still ending are kept for the next panel of its kind opened
        in this viewer (napari's Plugins menu makes a new one; see :meth:`restore_closed`)."""
        viewer = getattr(self, "viewer", None)
        if viewer is None:
            return
        fields = {}
        for name in self.REMEMBERED_FIELDS:
            value = _field_value(getattr(self, name, None))
            if value is not None:
                fields[name] = value
        adopted = self.__dict__.get("_adopted")  # a closed panel's, taken over when it opened
        winding = {}
        if not self.FINISH_ON_CLOSE:  # (Export: its own record refuses only the same files)
            names = {id(v): k for k, v in vars(self).items()}
            for button, job in self._winding_jobs().items():
                if job.running and id(button) in names:
                    winding[names[id(button)]] = job
        if adopted is not None and set(winding) <= set(adopted.winding):
            # only the run taken over is still ending: its own panel's words go on
            record = _ClosedPanel(self, fields, winding, adopted.text)
            record.panel = adopted.panel
        else:
            record = _ClosedPanel(self, fields, winding, self.closed_text())
        try:
            _CLOSED_PANELS.setdefault(viewer, {})[type(self).__qualname__] = record
        except TypeError:  # a viewer that cannot be held weakly (a test's stand-in)
            pass

    def _forget_closed(self) -> None:
        """This panel is docked again: what it left at its close is no longer for another."""
        try:
            closed = _CLOSED_PANELS.get(getattr(self, "viewer", None), {})
        except TypeError:  # no viewer, or one that cannot be held weakly
            return
        record = closed.get(type(self).__qualname__)
        if record is not None and record.panel() is self:
            del closed[type(self).__qualname__]

    def restore_closed(self) -> None:
        """Called last in a panel's ``__init__``: a panel of its kind the user closed in this
        viewer comes back as it was left. Its fields are set again, and a job its closing
        stopped that is still ending is shown here as it would be in that panel: the button
        that started it reads "Stopping…" and waits for it (a training run started at once
        resumed from the state the stopping run was still saving, into the same folder)."""
        try:
            record = _CLOSED_PANELS.get(self.viewer, {}).pop(type(self).__qualname__, None)
        except TypeError:
            record = None
        if record is None:
            return
        for name, value in record.fields.items():
            _set_field(getattr(self, name, None), value)
        winding = {
            getattr(self, name): job
            for name, job in record.winding.items()
            if job.running and getattr(self, name, None) is not None
        }
        if not winding:
            return
        self.__dict__["_adopted"] = record
        self._winding_jobs().update(winding)
        for button in winding:
            self._button_text.setdefault(button, button.text())
            button.setText(self.STOPPING_TEXT)
            button.setEnabled(False)
        names = " and ".join(f"'{self._button_text[b]}'" for b in winding)
        set_status(
            self.status,
            f"Still stopping: {record.text} {names} can be used again once it has stopped.",
        )
        self._watch_winding()

    def _wound_down(self, timer) -> None:
        """The jobs the panel's closing stopped have ended: their buttons are usable again."""
        if any(job.running for job in self._winding_jobs().values()):
            return
        timer.stop()
        timer.deleteLater()
        # taken over from a closed panel: that panel says a failure in napari's notifications
        adopted = self.__dict__.pop("_adopted", None)
        jobs = self._winding_jobs()
        failed = [job.error for job in jobs.values() if job.status == "failed"]
        for button in list(jobs):
            button.setText(self._button_text.get(button, button.text()))
            button.setEnabled(True)
        jobs.clear()
        # a job started since the close has said its own outcome there: not written over
        # ("no layer was changed" replaced a load's "Loaded …")
        said_since = self.__dict__.get("_jobs_started", 0) > self.__dict__.get(
            "_started_at_close", 0
        )
        status = None if said_since else getattr(self, "status", None)
        if failed:  # nobody heard it: the job's callbacks went with the panel's closing
            err = failed[0]
            msg = (
                "Closed while writing: writing then failed, so the folder may hold part of the set"
                if self.FINISH_ON_CLOSE
                else "Closed while running: it then failed"
            ) + (f" ({error_text(err)})." if err is not None else ".")
            if err is not None and adopted is None:
                log_failure(type(self).__name__, msg, err)
            if status is not None:
                set_status(status, msg, error=True)
            if adopted is None and status is None:
                notify_error(msg)  # the status line keeps what was said since
            elif adopted is None:
                notify_unseen(self, msg)
        elif status is not None:
            set_status(
                status,
                "Closed while writing: it finished in the background."
                if self.FINISH_ON_CLOSE
                else f"Stopped: {adopted.closed_text() if adopted else self.closed_text()}",
            )

    @property
    def busy(self) -> bool:
        return any(job.running for job in (*self.jobs.values(), *self._winding_jobs().values()))

    def cancel_if_running(self, button) -> bool:
        """If ``button``'s job runs, ask it to stop and return True (a job that has already
        handed over its result is left to end: True, nothing stopped)."""
        winding = self._winding_jobs().get(button)
        if winding is not None and winding.running:  # (a click on the disabled button: code)
            set_status(self.status, "The last run, stopped when the panel closed, is still "
                       "ending: try again in a moment.")  # fmt: skip
            return True
        job = self.jobs.get(button)
        if job is not None and job.running:
            if job.delivered:  # its result is in and it ends at once: the click is spent
                return True
            from qtpy.QtWidgets import QApplication

            interval = QApplication.doubleClickInterval()
            typed, now = getattr(job, "input_at", None), input_time(button)
            if typed is not None and now is not None:
                # as the keys (or the mouse) were pressed, not as the GUI thread got to them:
                # the start held it up (200-600 ms for a load), so a second Enter typed at
                # once came past the interval and cancelled the load it had just started
                soon = 0 <= now - typed < interval
            else:
                soon = time.monotonic() - job.started_at < interval / 1000
            if soon and not self.__dict__.get("_by_key"):
                # a double-click's second click: the job the first one started goes on (it
                # was cancelled at once: "Cancelled: nothing was changed"); said, in case the
                # click was meant
                note = (
                    "Started (a click this soon after is taken as a double-click's second): "
                    "click again to stop it."
                )
                before = self.status.text()
                kind = getattr(self.status, "_kind", "")
                set_status(self.status, note)
                self._restore_status_later(note, before, kind, job)
                return True
            job.cancel()
            button.setText(self.STOPPING_TEXT)
            button.setEnabled(False)
            set_status(self.status, self.STOPPING_TEXT)
            return True
        return False

    def _restore_status_later(self, note: str, before: str, kind: str, job) -> None:
        """The run's own line back after a few seconds (the double-click note stood for the
        whole run), unless something else was said meanwhile or the job has ended."""
        from qtpy.QtCore import QTimer

        status = self.status

        def restore() -> None:
            try:
                if job.running and status.text() == note:
                    set_status(
                        status, before, error=kind == "error", warning=kind == "warning",
                        scroll=False,
                    )  # fmt: skip
            except RuntimeError:  # the panel was deleted meanwhile
                pass

        QTimer.singleShot(self.NOTE_SECONDS * 1000, restore)

    def drop_job(self, button) -> None:
        """Stop ``button``'s running job without a word and free the button: its result is no
        longer wanted (a scan of a folder the path no longer names). A job started from code
        (not by a click) then starts anew instead of taking the call for a Cancel."""
        job = self.jobs.get(button)
        if job is None or not job.running:
            return
        del self.jobs[button]
        job.shutdown()
        try:
            button.setText(self._button_text.get(button, button.text()))
            button.setEnabled(True)
            bar = getattr(self, "progress_bar", None)
            if bar is not None and not self.busy:
                bar.setVisible(False)
        except RuntimeError:  # the panel is being deleted
            pass

    def run_job(
        self,
        target: Callable,
        on_result: Callable[[Any], None] | None,
        *,
        button,
        description: str,
        busy_text: str = "Working…",
        generator: bool = False,
        on_yielded: Callable[[Any], None] | None = None,
        on_finished: Callable[[str], None] | None = None,
        stages_in_status: bool = False,
        napari_progress: bool = True,
    ) -> Job | None:
        """Start ``target(progress, should_cancel)`` in a worker; ``button`` becomes Cancel.

        ``stages_in_status``: the status line names the stage running after ``busy_text``
        ("Segmenting 'CT': tumor…"), for a job of several stages whose ``busy_text`` names
        none of them. ``napari_progress``: the job also has a bar in napari's activity dock
        (see :class:`Job`)."""
        if self.cancel_if_running(button):
            return None
        bar = getattr(self, "progress_bar", None)

        started: list[Job] = []
        focus = _FocusKeeper(self, started)

        def finished(status: str) -> None:
            # a finished job is let go: through its callbacks it holds the layers and volumes
            # it worked on, which a user deleting them expects to be freed
            if started and self.jobs.get(button) is started[0]:
                del self.jobs[button]
            try:
                button.setText(self._button_text.get(button, button.text()))
                button.setEnabled(True)
                if bar is not None and not self.busy:  # another job of the panel still shows
                    bar.setVisible(False)
            except RuntimeError:
                return
            if status == "cancelled":
                changed = started[0].cancel_changed if started else ""
                if changed:
                    set_status(self.status, f"Cancelled after: {changed}", warning=True)
                else:
                    set_status(self.status, "Cancelled: nothing was changed.")
            if on_finished is not None:
                on_finished(status)
            focus.give_back()
            _trim_soon()

        def failed(exc: BaseException, doing: str = "") -> None:
            msg = doing + error_text(exc)
            log_failure(description, msg, exc)
            set_status(self.status, msg, error=True)
            notify_unseen(self, msg)

        said = [busy_text]  # what the job last wrote in the status line

        def stage_said(stage: str) -> None:
            # the stage running, beside the bar: a stage of one step (the liver's one window,
            # measuring) is a busy bar, on which Qt draws no text, and the line said only
            # "Segmenting …" for it; a line the panel wrote meanwhile is left as it is
            try:
                if self.status.text() != said[0]:
                    return
            except RuntimeError:  # the panel is being deleted
                return
            said[0] = f"{busy_text.rstrip('…. ')}: {stage}…"
            set_status(self.status, said[0], scroll=False)

        def result(value: Any) -> None:
            if on_result is None:
                return
            scroll = self.findChild(PanelScroll)
            if scroll is not None:  # the results the user asked for may take room
                scroll.results_shown()
            try:
                on_result(value)
            except Exception as exc:  # showing a result must not take the app down
                failed(exc, "The result could not be shown: ")

        job = Job(
            target,
            generator=generator,
            on_result=result,
            on_yielded=on_yielded,
            on_error=failed,
            on_finished=finished,
            progress_bar=bar,
            on_stage=stage_said if stages_in_status else None,
            description=description,
            napari_progress=napari_progress,
        )
        job.finish_on_exit = self.FINISH_ON_CLOSE  # the process exiting does not stop it either
        job.input_at = input_time(button)  # the click's key or mouse release, as typed
        self.__dict__["_jobs_started"] = self.__dict__.get("_jobs_started", 0) + 1
        job.deliver_after_cancel = self.FINISH_ON_CLOSE  # what it wrote after a late Cancel
        started.append(job)
        self.jobs[button] = job
        self._button_text.setdefault(button, button.text())
        button.setText("Cancel")
        if bar is not None:
            bar.setValue(0)
            bar.setFormat(busy_text)
            bar.setVisible(True)
        # the button (now Cancel or Stop) and the progress are what to see: scrolling down to
        # the status line hid them in a short docked panel (the Train panel's log and plot lie
        # between)
        set_status(self.status, busy_text, scroll=False)
        scroll_into_view(bar if bar is not None else button)
        return job.start()


class _FocusKeeper:
    """While a panel's job runs: the control of the panel that lost the keyboard focus by
    being disabled (its button turned "Cancelling…" by Esc or by Enter on Cancel), and where
    Qt moved the focus then (the next control: the status line, or Load's HU window, where a
    stray arrow key changed the CT's window). When the job ends the focus goes back, unless
    the user has moved it since."""

    def __init__(self, panel, started: list) -> None:
        self._panel = weakref.ref(panel)
        self._started = started  # the job, once made
        self.home = None
        self.moved_to = None
        self._connected = False
        app = QApplication.instance()
        if app is not None:
            app.focusChanged.connect(self._moved)
            self._connected = True

    def _moved(self, old, new) -> None:
        try:
            if self._started and not self._started[0].running:
                self._disconnect()  # (a job whose end the panel never heard: its close)
                return
            if old is None or old.isEnabled():
                return  # moved by the user (or a click), not by a control being disabled
            if self.home is None:
                panel = self._panel()
                if panel is None or not panel.isAncestorOf(old):
                    return
                self.home = old
            elif old is not self.moved_to:
                return
            self.moved_to = new  # (and on, when the control it went to is disabled too)
        except RuntimeError:  # deleted meanwhile
            pass

    def _disconnect(self) -> None:
        if self._connected:
            self._connected = False
            try:
                QApplication.instance().focusChanged.disconnect(self._moved)
            except (RuntimeError, TypeError):  # already gone
                pass

    def give_back(self) -> None:
        """The job has ended: the focus back on the control it was taken from, when it is
        usable again and the focus is still where Qt moved it."""
        self._disconnect()
        home, self.home = self.home, None
        try:
            if home is None or not (home.isEnabled() and home.isVisible()):
                return
            if QApplication.focusWidget() in (self.moved_to, None):
                home.setFocus(Qt.OtherFocusReason)
        except RuntimeError:  # deleted meanwhile
            pass


def escape_cancels_in_viewer(viewer) -> None:
    """Esc pressed in ``viewer``'s window outside the plugin's panels (the canvas, clicked to
    scroll slices; the layer list) cancels the newest run a Cancel button stops, when napari
    itself would do nothing with that Esc. Before, Esc cancelled only with the focus inside
    the panel, and a user who had clicked on the canvas pressed it for nothing.

    Every Esc napari's keymap gets passes through the canvas's key-press event (the canvas's
    own, and the one napari's window, its docks and its layer list forward there); the
    watcher runs first, to see napari's state before napari acts. A widget that uses Esc
    itself (a dialog, a popup, a field, a layer's name being edited, napari's tour) keeps
    it: it never reaches the keymap. Once per viewer."""
    try:
        qt_viewer = viewer.window._qt_viewer
        emitter = qt_viewer.canvas._scene_canvas.events.key_press
    except Exception:  # no window (a viewer without Qt), or napari laid it out otherwise
        return
    if qt_viewer.property("livertumor_escape"):
        return
    qt_viewer.setProperty("livertumor_escape", True)
    ref = weakref.ref(viewer)
    last = [-1e9]  # when the last Esc that cancelled, or went to napari, or was let go, came

    def on_key(event) -> None:
        try:
            if event.key != "Escape" or event.modifiers:
                return
            native = getattr(event, "native", None)
            if native is not None and native.isAutoRepeat():
                return  # a held key cancels one run, not one after another
            found = ref()
            if found is None or not _focus_on_canvas_or_layer_list(found):
                return  # (in a panel: its own Esc; in another field: that field's)
            now = time.monotonic()
            if QApplication.mouseButtons() != Qt.NoButton:
                # a drag in progress (a brush stroke, a box being drawn): the Esc is meant
                # for it, whether napari uses it or not
                last[0] = now
                return
            if napari_takes_escape(found) or (
                now - last[0] < QApplication.doubleClickInterval() / 1000
            ):
                # napari's Esc, or a double-tap's second: Esc hammered to drop a polygon, or
                # to cancel one run, cancels no run (or no other)
                last[0] = now
                return
            if _escape_newest_job(found):
                last[0] = now
        except RuntimeError:  # a panel deleted meanwhile
            pass
        except Exception:  # raised here, it would keep the Esc from napari's own keymap
            log.exception("Esc in the viewer could not cancel a run")

    emitter.connect(on_key, position="first")


def gl_deletes_in_own_canvas(viewer) -> None:
    """Make ``viewer``'s canvas the current OpenGL context whenever a layer leaves it, just
    before napari deletes the layer's textures and buffers (once per viewer).

    napari (0.9) deletes them at once (its canvas's ``context.finish()`` after a removal, a
    ``layers.clear()`` among them) in whatever OpenGL context is current: the one Qt drew a
    window with last. With two viewers open that was often the other window's, whose GL
    objects share numbers with this one's: a run's progress shows in the activity indicator
    of every window, which redraws it. So ``viewer.close()`` while Inspect's Measure ran (napari
    removes the layers first) deleted the other viewer's textures and buffers instead: its
    scan stayed black for good, each redraw logging "Error drawing visual" (GLError 1281 or
    1282). A viewer without an OpenGL context of its own yet (never shown) has nothing to
    delete."""
    try:
        qt_viewer = viewer.window._qt_viewer
        canvas = qt_viewer.canvas._scene_canvas.native
        events = viewer.layers.events
        emitters = (events.removing, events.removed, events.end_batch)
    except Exception:  # no window (a viewer without Qt), or napari laid it out otherwise
        return
    if qt_viewer.property("livertumor_gl_current"):
        return
    qt_viewer.setProperty("livertumor_gl_current", True)
    ref = weakref.ref(canvas)  # (the viewer keeps its canvas, not the other way round)

    def make_current(*_) -> None:
        native = ref()
        try:
            if native is not None and native.isValid():
                native.makeCurrent()
        except RuntimeError:  # the canvas is being deleted
            pass

    # before napari's own: the last removal's deletes run in napari's end_batch callback
    for emitter in emitters:
        emitter.connect(make_current, position="first")


def _focus_on_canvas_or_layer_list(viewer) -> bool:
    """The keyboard focus is on ``viewer``'s canvas or in its layer list (or nowhere in
    particular: the window itself), where Esc cancels a run; not in one of the plugin's
    panels (whose own Esc cancels its run) nor in a field of napari's (a layer-controls box,
    whose dock hands on an Esc the field did not use)."""
    widget = QApplication.focusWidget()
    if widget is None:
        return True
    qt_viewer = viewer.window._qt_viewer
    places = [qt_viewer.canvas.native, qt_viewer.layers, qt_viewer, viewer.window._qt_window]
    while widget is not None:
        if isinstance(widget, JobWidgetMixin):
            return False
        if any(widget is place for place in places[:2]):
            return True
        if any(widget is place for place in places[2:]):
            return widget is QApplication.focusWidget()  # (the window itself has the focus)
        widget = widget.parentWidget()
    return False


def napari_takes_escape(viewer) -> bool:
    """Would napari do something with an Esc now? Its keymap for the selected layer binds
    Esc for a labels layer (drop the polygon being drawn, abort a brush stroke) and a shapes
    layer (finish the shape being drawn): only while something is being drawn; any other Esc
    binding (the user's, another plugin's, a later napari's) is napari's always. True when
    unsure: Esc is left to napari."""
    try:
        from app_model.types import KeyBinding
        from napari.layers import Labels, Shapes
        from napari.utils.key_bindings import KeymapHandler

        handler = KeymapHandler()
        layer = viewer.layers.selection.active
        handler.keymap_providers = [viewer] if layer is None else [layer, viewer]
        keymap = handler.active_keymap
        func = keymap.get(KeyBinding.from_str("Escape"), keymap.get(...))
        if func is None:
            return False
        name = getattr(getattr(func, "__func__", func), "__qualname__", "")
        if name == "reset_polygon" and isinstance(layer, Labels):
            return bool(layer._overlays["brush_stroke"].active) or bool(
                len(layer._overlays["polygon"].points)
            )
        if name == "finish_drawing_shape" and isinstance(layer, Shapes):
            return bool(layer._is_creating or layer._is_moving or layer._is_selecting)
    except Exception:  # napari's insides changed: its Esc is left alone
        return True
    return True


def _escape_newest_job(viewer) -> bool:
    """Cancel the newest run of ``viewer``'s panels that Esc cancels, as its Cancel button
    would; True when there was one. The newest, not all: Esc stops what the user last set
    going (an export just started), not a long segmentation started before it as well
    (another Esc does that)."""
    window = viewer.window._qt_window
    runs = [
        (job.started_at, panel, button)
        for panel in window.findChildren(QWidget)
        if isinstance(panel, JobWidgetMixin)
        for job, button in panel.escapable_jobs()
    ]
    if not runs:
        return False
    _, panel, button = max(runs, key=lambda run: run[0])
    panel.click_by_key(button)
    if not panel_in_view(panel):  # a panel behind another's tab: say whose run it was
        try:
            from napari.utils.notifications import show_info

            show_info(f"{type(panel).__name__.removesuffix('Widget')}: Esc cancelled its run.")
        except Exception:  # a notification is a courtesy
            pass
    return True


def scroll_box(widget, max_height: int):
    """``widget`` in a frameless scroll area at most ``max_height`` px tall, hidden until used.

    For text that can grow long (notes, summaries): it scrolls instead of squeezing the
    controls around it.
    """
    from qtpy.QtWidgets import QScrollArea

    box = QScrollArea()
    box.setWidget(widget)
    box.setWidgetResizable(True)
    box.setFrameShape(QScrollArea.NoFrame)
    box.setMaximumHeight(max_height)
    # no tab stop of its own (as the panel's scroll area): Tab stopped on it, unnamed and
    # showing no focus, a press that seemed to do nothing; the text in it is the stop
    box.setFocusPolicy(Qt.NoFocus)
    box.setVisible(False)
    return box


#: the keyboard focus's blue, per theme: 4.6:1 on napari's dark background (#23242b); on the
#: light one (#ebe7e6) that blue was 2.7:1 (a focused checkbox's label hard to read), this 5.2:1
FOCUS_COLORS = {"dark": "#3d8bfd", "light": "#0b57d0"}


def focus_style(light: bool = False) -> str:
    """The panels' stylesheet marking the control with the keyboard's focus."""
    color = FOCUS_COLORS["light" if light else "dark"]
    return (
        "QPushButton:focus, QToolButton:focus, QComboBox:focus, QAbstractSpinBox:focus, "
        f"QLineEdit:focus {{ border: 2px solid {color}; }} "
        f"QCheckBox:focus, QRadioButton:focus {{ color: {color}; }} "
        f"QTableWidget:focus, QPlainTextEdit:focus, QSlider:focus {{ border: 1px solid {color}; }}"
    )


def _number_locale():
    """The locale of the panels' number boxes: "." as the decimal point, as the settings
    files, the command line and napari's own controls write it, and no group separator,
    neither shown nor read."""
    from qtpy.QtCore import QLocale

    locale = QLocale.c()
    locale.setNumberOptions(QLocale.OmitGroupSeparator | QLocale.RejectGroupSeparator)
    return locale


class _DotOrComma(QValidator):
    """A number box's validator that reads a typed or pasted "," as the decimal point "."
    and then asks the box's own validator (which knows its prefix, suffix and range)."""

    def __init__(self, box, inner) -> None:
        super().__init__(box)
        self._inner = inner

    def validate(self, text, pos):
        text = text.replace(",", ".")
        result = self._inner.validate(text, pos)
        return result if isinstance(result, tuple) else (result, text, pos)

    def fixup(self, text):
        text = text.replace(",", ".")
        result = self._inner.fixup(text)
        return text if result is None else result


class _NoMarks(QValidator):
    """A whole-number box's validator: a typed or pasted "," or "." is refused (the digits
    typed after it run on), then the box's own validator (its range) is asked."""

    def __init__(self, box, inner) -> None:
        super().__init__(box)
        self._inner = inner

    def validate(self, text, pos):
        if "," in text or "." in text:
            return (QValidator.Invalid, text, pos)
        result = self._inner.validate(text, pos)
        return result if isinstance(result, tuple) else (result, text, pos)

    def fixup(self, text):
        result = self._inner.fixup(text)
        return text if result is None else result


def refuse_marks(box) -> None:
    """Make the whole-number box ``box`` (a QSpinBox, or a float box of 0 decimals) refuse a
    decimal or thousands mark: the mark is not taken, so the box never shows one."""
    edit = box.lineEdit()
    inner = edit.validator()
    if inner is not None and not isinstance(inner, _NoMarks):
        box._lt_no_marks = _NoMarks(box, inner)
        edit.setValidator(box._lt_no_marks)


def read_dots(panel: QWidget) -> None:
    """Make every number box in ``panel`` read "." and "," as the decimal point, never as a
    group separator, and show "." (idempotent; boxes added later are done when called again).

    Under a German, French or Italian desktop Qt's boxes took the locale's "," as the decimal
    point and a typed "." as a thousands mark: the learning rate "0.001" became 1.0 and λ
    "0.5" became 5.0, silently; in English a typed "1,25" became 125. A text with both marks
    ("1.234,5") is no number of one decimal point: the box does not take it.
    """
    from qtpy.QtWidgets import QDoubleSpinBox, QSpinBox

    locale = _number_locale()
    for box in panel.findChildren((QDoubleSpinBox, QSpinBox)):
        if box.property("lt_reads_dots"):
            continue
        box.setProperty("lt_reads_dots", True)
        box.setLocale(locale)  # (its text is shown again in the new locale)
        if not isinstance(box, QDoubleSpinBox):
            # a whole number: no decimal point to read, and no thousands mark either (Qt read
            # a typed "0,5" epochs as 5 and showed "0,5" until the box lost the focus)
            refuse_marks(box)
            continue
        edit = box.lineEdit()
        inner = edit.validator()
        if inner is not None:
            box._lt_dot_validator = _DotOrComma(box, inner)
            edit.setValidator(box._lt_dot_validator)


def _takes_text(box) -> bool:
    """Whether the number ``box`` can read the text it shows as a number in its range."""
    from qtpy.QtWidgets import QDoubleSpinBox, QSpinBox

    edit = box.lineEdit()
    if not edit.hasAcceptableInput():  # (under its minimum, a lone "-")
        return False
    if isinstance(box, (QDoubleSpinBox, QSpinBox)):
        return True
    # superqt's whole-number box (magicgui's SpinBox, a Slider's number) reads it with int():
    # its validator takes "--5" (and a lone "-" counts as still being typed)
    try:
        int(edit.displayText() or 0)
    except ValueError:
        return False
    return True


def settle_typed(box) -> None:
    """Show the value the number ``box`` holds when its text is none it takes (under its
    minimum, a lone "-", "--5"): Qt puts a double box's text back when it loses the focus, not a
    whole-number box's, nor either's without a focus change."""
    try:
        if _takes_text(box):
            return
        box.interpretText()  # (Qt's own correction: back to the value before)
        if not _takes_text(box):  # (superqt's whole-number box: magicgui's SpinBox)
            as_text = getattr(box, "textFromValue", str)
            box.lineEdit().setText(as_text(box.value()))
    except RuntimeError:  # the widget is being deleted
        pass


class _EnterSettles(QObject):
    """Event filter on a number box: Return or Enter on text it does not take puts the value
    in use back first, and the key then goes on as on that value's text. superqt's
    whole-number box read the text with int() on the key and raised (HU low "-", Enter: an
    error in the terminal, "-" left shown beside the -100 in use)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if (
            event.type() == QEvent.KeyPress
            and event.key() in (Qt.Key_Return, Qt.Key_Enter)
            and not _takes_text(obj)
        ):
            settle_typed(obj)
        return False


def settle_number_boxes(panel: QWidget) -> None:
    """Make every number box in ``panel`` put text it did not take (λ "0" under its minimum,
    HU low "-") back to the value in use when the editing ends, by the focus leaving it or by
    Return or Enter: it stayed shown beside the value the preview and Apply used (idempotent)."""
    for box in panel.findChildren(QAbstractSpinBox):
        if box.property("lt_settles"):
            continue
        box.setProperty("lt_settles", True)
        box.editingFinished.connect(lambda box=box: settle_typed(box))
        box._lt_enter_settles = _EnterSettles(box)
        box.installEventFilter(box._lt_enter_settles)


#: napari's window beside its docks needs about this many px (its layer list and canvas:
#: 619 px measured with a labels layer selected, and the docks' separators and frame: at
#: 620 a 1024-px screen's window came out 1032 px wide, its right edge off the screen; at
#: 640, 1029 px)
NAPARI_OWN_WIDTH = 660
#: a panel is never held narrower than this (it scrolls sideways below its content's width)
MIN_PANEL_WIDTH = 300


class PanelScroll(QScrollArea):
    """A whole panel that scrolls when its dock is shorter than the panel.

    napari stacks the docks opened from its Plugins menu in one column and grows the window
    to the sum of their minimum heights (2600 px for all six panels): each panel's content
    sits in one of these, so its minimum is a few rows and it asks for its full height. When
    it is docked, and when its content grows (results shown), the dock column is shared out
    again (:func:`share_dock_column`).
    """

    def __init__(self, min_height: int = 50) -> None:
        super().__init__()
        inner = QWidget()
        self.content = QVBoxLayout(inner)
        self.setWidget(inner)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.NoFrame)
        self.setMinimumHeight(min_height)
        # its content's height when there is room; no more than its share when there is not
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._asked = 0  # the content height room was last claimed for
        self._results_at = float("-inf")  # when a job's results were last shown
        inner.installEventFilter(self)
        # no tab stop of its own: it was each panel's first, unnamed and showing no focus (the
        # focus moving into a control scrolls to it)
        self.setFocusPolicy(Qt.NoFocus)
        # the control with the keyboard's focus is outlined: napari's stylesheet marks none,
        # so tabbing through a panel showed nothing of where one was
        inner.setStyleSheet(focus_style(is_light_theme(self)))

    def results_shown(self) -> None:
        """A job the user started has results to show: its growth may take half the column
        (a live preview's notes may not: they hid Segment's result behind Refine's). Room the
        running job's status already claimed counts again: Inspect's tables, arriving no
        taller than that, stayed behind a scroll bar."""
        self._results_at = time.monotonic()
        if self._asked:
            self._asked = min(self._asked, self.viewport().height())

    def content_height(self) -> int:
        """The height the content needs at the panel's width (wrapped labels included)."""
        inner = self.widget()
        height = inner.sizeHint().height()
        width = self.viewport().width()
        if inner.hasHeightForWidth() and width > 0:
            height = max(height, inner.heightForWidth(width))
        return height + 2 * self.frameWidth()

    def sizeHint(self):  # noqa: N802 - Qt's name: the whole panel, when there is room
        hint = super().sizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        hint.setHeight(self.content_height())
        hint.setWidth(self.widget().sizeHint().width() + 2 * self.frameWidth() + bar)
        if self.horizontalScrollBarPolicy() == Qt.ScrollBarAsNeeded:  # held narrow: the scan
            hint.setWidth(self.minimumWidth())  # keeps the rest of a small screen
        return hint

    #: controls whose value the mouse wheel changes: it scrolls the panel instead, unless the
    #: control was clicked first (a wheel over a drop-down turned "liver + tumor" into "liver
    #: only", or the refinement's HU window, unseen, while the panel was scrolled)
    _WHEEL_CONTROLS = (QComboBox, QAbstractSpinBox, QAbstractSlider)

    def _guard_wheel(self) -> None:
        from qtpy.QtWidgets import QScrollBar

        for control in self.widget().findChildren(self._WHEEL_CONTROLS):
            # a table's or a text box's own scroll bar scrolls what it belongs to
            if control.property("lt_wheel_guard") or isinstance(control, QScrollBar):
                continue
            control.setProperty("lt_wheel_guard", True)
            control.setFocusPolicy(Qt.StrongFocus)  # a wheel gives no focus
            control.installEventFilter(self)

    def _name_fields(self) -> None:
        """Give the inputs of a form row the row's label as their accessible name: a field
        placed in a row beside its Browse… button had none (a screen reader read an empty
        name, and three buttons all read "Browse…")."""
        from qtpy.QtWidgets import QAbstractButton, QFormLayout, QLineEdit

        for form in self.widget().findChildren(QFormLayout):
            for row in range(form.rowCount()):
                label_item = form.itemAt(row, QFormLayout.LabelRole)
                field_item = form.itemAt(row, QFormLayout.FieldRole)
                label = label_item.widget() if label_item is not None else None
                if not isinstance(label, QLabel) or field_item is None:
                    continue
                text = label.text().strip().rstrip(":")
                if not text:
                    continue
                inputs = _widgets_in(field_item)
                fields = [w for w in inputs if isinstance(w, (QLineEdit, *self._WHEEL_CONTROLS))]
                for i, w in enumerate(fields):
                    if not w.accessibleName():
                        w.setAccessibleName(text if len(fields) == 1 else f"{text} ({i + 1})")
                for w in inputs:
                    if isinstance(w, QAbstractButton) and not w.accessibleName():
                        w.setAccessibleName(f"{w.text().replace('&', '')} ({text})")

    def _tip_rows(self) -> None:
        """A row's label, and the parts of its field (a slider's number box), show the
        field's tooltip too: only the field explained "σ (mm)", "λ inside", "Patch (z, y, x)"
        (the label, where the eye goes first, said nothing when pointed at)."""
        from qtpy.QtWidgets import QFormLayout, QGridLayout

        rows = []  # (label, field item)
        for form in self.widget().findChildren(QFormLayout):
            for row in range(form.rowCount()):
                label_item = form.itemAt(row, QFormLayout.LabelRole)
                field_item = form.itemAt(row, QFormLayout.FieldRole)
                if label_item is not None and field_item is not None:
                    rows.append((label_item.widget(), field_item))
        for grid in self.widget().findChildren(QGridLayout):
            for row in range(grid.rowCount()):
                label_item = grid.itemAtPosition(row, 0)
                field_item = grid.itemAtPosition(row, 1)
                if label_item is not None and field_item is not None:
                    rows.append((label_item.widget(), field_item))
        for label, field_item in rows:
            if not isinstance(label, QLabel):
                continue
            holder = field_item.widget()  # one field (a magicgui slider: its box of parts)
            inputs = _widgets_in(field_item)
            tip = holder.toolTip() if holder is not None else ""
            tip = tip or next((w.toolTip() for w in inputs if w.toolTip()), "")
            if not tip:
                continue
            if not label.toolTip():
                label.setToolTip(tip)
            if holder is not None:  # its slider and number box, said alike
                for part in inputs:
                    if not part.toolTip():
                        part.setToolTip(tip)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Wheel and obj is not self.widget():
            if obj.hasFocus():
                return False  # clicked first: the wheel changes it
            # the panel scrolls as the wheel over its background would (a wheel event passed
            # on to the scroll bar came back to this panel when the bar was at its end)
            bar = self.verticalScrollBar()
            lines = QApplication.wheelScrollLines() * bar.singleStep()
            bar.setValue(bar.value() - round(event.angleDelta().y() / 120 * lines))
            return True
        if obj is self.widget() and event.type() in (QEvent.PaletteChange, QEvent.StyleChange):
            # the theme switched (napari restyles its window): the focus mark follows it
            style = focus_style(is_light_theme(self))
            if obj.styleSheet() != style:
                obj.setStyleSheet(style)
        if obj is self.widget() and event.type() == QEvent.LayoutRequest:
            self._guard_wheel()  # controls added since (magicgui rows, a results table)
            read_dots(obj)  # (each panel does its own when made; later boxes here)
            self._name_fields()
            self._tip_rows()
            QTimer.singleShot(0, lambda: _alive(PanelScroll._fit_texts, self))  # (texts shown)
            # it scrolls up and down only: the panel keeps its content's width
            bar = self.verticalScrollBar().sizeHint().width()
            least = obj.minimumSizeHint().width() + 2 * self.frameWidth() + bar
            # never more than half the screen, nor more than napari's own window leaves beside
            # it (about 660 px): the scan keeps the rest whatever a panel holds; a panel held
            # narrower than its content scrolls sideways (a 1366-px screen at 150 % put the
            # panel's right edge off the screen)
            need = least
            screen = self.screen() if hasattr(self, "screen") else None
            if screen is not None:
                width = screen.availableGeometry().width()
                least = min(least, width // 2, max(MIN_PANEL_WIDTH, width - NAPARI_OWN_WIDTH))
            self.setHorizontalScrollBarPolicy(
                Qt.ScrollBarAsNeeded if least < need else Qt.ScrollBarAlwaysOff
            )
            self.setMinimumWidth(least)
            self.updateGeometry()
            QTimer.singleShot(0, self._claim_room)
        return super().eventFilter(obj, event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QTimer.singleShot(0, lambda: _alive(PanelScroll._fit_texts, self))

    def _fit_texts(self) -> None:
        """Wrapped texts (status lines, notes, the detection sentence) wrap within the part of
        the panel on view: a panel narrower than its controls scrolls sideways, and its
        sentences wrapped at the controls' width, every line cut at the edge (1024-px screens,
        200 % scaling)."""
        from qtpy.QtCore import QPoint

        inner = self.widget()
        right = self.content.contentsMargins().right()
        visible = self.viewport().width()
        for label in inner.findChildren(QLabel):
            if not label.wordWrap():
                continue
            holder = label.parent()  # in a box that scrolls of its own (the notes): the box
            while (
                holder is not None and holder is not inner and not isinstance(holder, QScrollArea)
            ):
                holder = holder.parent()
            kept = label if holder is inner or holder is None else holder
            x = kept.mapTo(inner, QPoint(0, 0)).x()
            room = max(150, visible - x - right)
            if kept.maximumWidth() != room:
                kept.setMaximumWidth(room)

    def _claim_room(self) -> None:
        """Content grown past the panel's height (results shown): ask the window for room.

        A dock keeps the height it was given when added; without this, results appearing in a
        panel (Inspect's tables) stayed behind a scroll bar beside a half-empty neighbour."""
        try:
            want = self.content_height()
            docked, grew, self._asked = self._asked == 0, want > self._asked, want
            # only when the content grew (new results), not at every status line a running
            # job writes, and not back after the user dragged the panel smaller; the panel's
            # first layout (just docked) shares the column fairly: the panel docked last took
            # it all and left the others one row each
            if grew and want > self.viewport().height() + 2:
                results = time.monotonic() - self._results_at < RESULTS_CLAIM_S
                share_dock_column(self, first=not docked, results=results)
        except RuntimeError:  # deleted meanwhile
            pass


def _widgets_in(item) -> list:
    """The widgets of a layout item: its widget, or those of its layout (nested ones too)."""
    widget = item.widget()
    if widget is not None:
        from qtpy.QtWidgets import QAbstractButton, QLineEdit

        if isinstance(widget, (QLineEdit, QAbstractButton, *PanelScroll._WHEEL_CONTROLS)):
            return [widget]
        layout = widget.layout()
        return [] if layout is None else _widgets_in_layout(layout)
    layout = item.layout()
    return [] if layout is None else _widgets_in_layout(layout)


def _widgets_in_layout(layout) -> list:
    found = []
    for i in range(layout.count()):
        found += _widgets_in(layout.itemAt(i))
    return found


def _dock_of(widget):
    """The QDockWidget holding ``widget`` and the QMainWindow holding that (or Nones)."""
    dock = widget.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    window = None if dock is None else dock.parent()
    while window is not None and not isinstance(window, QMainWindow):
        window = window.parent()
    return dock, window


def _wanted_height(dock) -> int:
    """A dock's preferred height: its panel's content (a PanelScroll's), or its size hint."""
    scroll = dock.findChild(PanelScroll)
    if scroll is None:
        return dock.sizeHint().height()
    # plus its title bar (not the stretch napari may put below the panel)
    return scroll.content_height() + dock.height() - dock.widget().height()


#: px a panel keeps when a neighbour claims room for its results: a few rows of its form
USABLE_HEIGHT = 150


#: seconds after a job's results are shown in which the panel's growth counts as results
RESULTS_CLAIM_S = 2.0


def share_dock_column(panel: QWidget, first: bool = False, results: bool = False) -> None:
    """Share the height of ``panel``'s dock column out among its docks: each its preferred
    height when they all fit (the rest in proportion), else in proportion to what each wants
    above its minimum; with ``first``, ``panel``'s dock gets its whole wish first (its
    content grew), never less than it has, and with ``results`` (of a job the user started)
    at least half the column. A floating dock is resized on its own."""
    dock, window = _dock_of(panel)
    if dock is None or window is None or not dock.isVisible():
        return
    if dock.isFloating():
        screen = dock.screen() if hasattr(dock, "screen") else None
        tallest = screen.availableGeometry().height() if screen is not None else 900
        dock.resize(dock.width(), min(_wanted_height(dock), int(0.9 * tallest)))
        return
    area = window.dockWidgetArea(dock)
    docks = [
        d
        for d in window.findChildren(QDockWidget)
        if d.isVisible() and not d.isFloating() and window.dockWidgetArea(d) == area
    ]
    if len(docks) < 2:
        return
    total = sum(d.height() for d in docks)
    floor = {d: d.minimumSizeHint().height() for d in docks}
    want = {d: max(_wanted_height(d), floor[d]) for d in docks}
    sizes: dict = {}
    rest = docks
    if first:
        # the others keep a usable height (a few rows), not their one-row minimum: a panel
        # whose content grew (a notes box, a table) squashed its neighbours to one row each
        keep = {d: min(want[d], max(floor[d], USABLE_HEIGHT)) for d in docks if d is not dock}
        # a neighbour that has just shown a job's results keeps the height they got (Refine's
        # live note took Segment's back a moment after its result appeared, out of view)
        held = []
        for d in keep:
            scroll = d.findChild(PanelScroll)
            if scroll is not None and time.monotonic() - scroll._results_at < RESULTS_CLAIM_S:
                # what it has (half the column at most when the claim is results too), never
                # more than its content needs
                had = min(d.height(), total // 2) if results else d.height()
                keep[d] = min(max(keep[d], had), max(want[d], floor[d]))
                held.append(d)
        # with many docks in the column their usable heights add up past it: the panel with
        # new results still gets at least half the column (or what it had), not its one row
        least = max(dock.height(), total // 2) if results else dock.height()
        sizes[dock] = max(floor[dock], min(want[dock], max(total - sum(keep.values()), least)))
        rest = [d for d in docks if d is not dock and d not in held]
        # held docks and the claimant together leave the others their minimum: held ones give
        # back what does not fit (never below their own minimum)
        spare = total - sizes[dock] - sum(floor[d] for d in rest)
        over = sum(keep[d] for d in held) - max(spare, 0)
        for d in held:
            give = over * (keep[d] - floor[d]) / max(sum(keep[h] - floor[h] for h in held), 1)
            sizes[d] = keep[d] - min(max(give, 0), keep[d] - floor[d]) if over > 0 else keep[d]
    room = total - sum(sizes.values())
    wanted = sum(want[d] for d in rest)
    if wanted <= room:  # all fit: each its wish, the rest of the column in proportion
        for d in rest:
            sizes[d] = want[d] + (room - wanted) * want[d] / max(wanted, 1)
    else:  # not all fit: each its minimum, the rest in proportion to its wish above that
        above = sum(want[d] - floor[d] for d in rest) or 1
        spare = max(room - sum(floor[d] for d in rest), 0)
        for d in rest:
            sizes[d] = floor[d] + spare * (want[d] - floor[d]) / above
    # (Qt refuses the whole request when any size is under 1)
    window.resizeDocks(docks, [max(int(sizes[d]), 1) for d in docks], Qt.Vertical)


def tab_in_order(widgets) -> None:
    """Tab through ``widgets`` (each with the controls inside it, as they were made) in this
    order. Qt tabs in the order widgets were made: Refine's settings, made before its layer
    rows above them, were passed over, Tab going from the layer rows to Apply to all (3D)."""
    from qtpy.QtWidgets import QAbstractSpinBox, QComboBox

    def inner(w) -> bool:  # a part of a box (a spin box's line edit, a combo box's list)
        parent = w.parent()
        while parent is not None:
            if isinstance(parent, (QComboBox, QAbstractSpinBox)):
                return True
            parent = parent.parent()
        return False

    chain: list = []
    for widget in widgets:
        for w in (widget, *widget.findChildren(QWidget)):
            if (
                w.focusPolicy() & Qt.TabFocus
                and w.window() is widget.window()
                and not inner(w)
                and w not in chain
            ):
                chain.append(w)
    for first, second in zip(chain[:-1], chain[1:], strict=True):
        QWidget.setTabOrder(first, second)


def scroll_panel(widget: QWidget, min_height: int = 50) -> QVBoxLayout:
    """Give ``widget`` a :class:`PanelScroll`; return the layout its content goes in."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = PanelScroll(min_height)
    outer.addWidget(scroll)
    return scroll.content


class NameCombo(QComboBox):
    """A layer picker whose tooltip also shows the chosen name in full.

    Layer names are long ("HCC_001 LIVER 3 PHASE CAP segmentation") and a narrow panel cut
    off the end that tells a segmentation from a ground truth: a name too long for the box is
    shortened before its last word ("HCC_001 LIV… segmentation"), and in the middle in the
    open list. Where that would read as another name of the list shortened (a baseline's and
    a follow-up's, told apart by the study date before "segmentation"), the words that tell
    them apart are kept ("HCC_001 LI… 2008-03-15 segmentation").
    """

    def __init__(self, lists_layers: bool = True) -> None:
        super().__init__()
        #: its items are layer names (a rename of a layer renames its item)
        self.lists_layers = lists_layers
        # as wide as the panel gives it, not as its longest name: a theme change re-measured
        # the names and widened the panel (and narrowed the scan) for good
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self._description = ""
        self.currentTextChanged.connect(self._show_name)
        self.view().setTextElideMode(Qt.ElideMiddle)

    def shown_text(self) -> str:
        """The chosen name as the closed box shows it (shortened to fit: before its last word,
        or around the words that tell it from another name that would read the same)."""
        from qtpy.QtWidgets import QStyle, QStyleOptionComboBox

        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        field = self.style().subControlRect(
            QStyle.CC_ComboBox, opt, QStyle.SC_ComboBoxEditField, self
        )
        text, width, metrics = opt.currentText, field.width(), self.fontMetrics()
        if metrics.horizontalAdvance(text) <= width:
            return text
        shown = _elided_name(text, width, metrics)
        # a name shortened to read as another's: "HCC_001 LIVER 3 PH… segmentation" for the
        # baseline's and the follow-up's alike, the study date (just before the last word) cut
        alike = [
            other
            for other in (self.itemText(i) for i in range(self.count()))
            if other != text and _elided_name(other, width, metrics) == shown
        ]
        if not alike:
            return shown
        start, end = _differing_words(text, alike)
        return _elided_keeping(text, start, end, width, metrics) or shown

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        from qtpy.QtWidgets import QStyle, QStyleOptionComboBox, QStylePainter

        painter = QStylePainter(self)
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        painter.drawComplexControl(QStyle.CC_ComboBox, opt)
        opt.currentText = self.shown_text()
        painter.drawControl(QStyle.CE_ComboBoxLabel, opt)

    def setToolTip(self, text: str) -> None:  # noqa: N802 (Qt name)
        self._description = text
        self._show_name(self.currentText())

    def _show_name(self, name: str) -> None:
        tip = "\n\n".join(t for t in (self._description, name and f"Chosen: {name}") if t)
        super().setToolTip(tip)


#: the end of a name of one pass of a series stacking several: "… (arterial, acq 1)", with
#: what may follow it: a rerun's " (previous)", a name taken's " [2]" ("… acq 1) (previous)",
#: "… acq 1) [2]": the pass was cut off, and two passes' old copies read the same)
_PASS_AT_END = re.compile(r" ((?:pass|acq) \d+\)(?: \(previous\)| \[\d+\])*)$")


def _elided_name(text: str, width: int, metrics) -> str:
    """``text`` shortened to ``width`` pixels: before its last word ("segmentation", "truth",
    "refined") when that takes little room, else in the middle. A pass's "acq 1)", "pass 2)",
    with the "(previous)" or "[2]" after it, is kept whole before all else: its start cut
    down to a few letters, or left out ("…acq 1) (previous)")."""
    if metrics.horizontalAdvance(text) <= width:
        return text
    at = _PASS_AT_END.search(text)
    head, space, last = (text[: at.start()], " ", at[1]) if at else text.rpartition(" ")
    room = width - metrics.horizontalAdvance(f" {last}")
    if space and metrics.horizontalAdvance(f"… {last}") <= 0.75 * width:
        return f"{metrics.elidedText(head, Qt.ElideRight, room)} {last}"
    if at and room >= metrics.horizontalAdvance(head[:3] + "…"):
        return f"{metrics.elidedText(head, Qt.ElideRight, room)} {last}"
    if at and metrics.horizontalAdvance(f"…{last}") <= width:
        return f"…{last}"
    return metrics.elidedText(text, Qt.ElideMiddle, width)


def _differing_words(text: str, others: list[str]) -> tuple[int, int]:
    """The words of ``text`` (``start``, ``end`` character positions) where it differs from
    the most alike of ``others``: "2008-03-15" in "… CAP 2008-03-15 segmentation" beside
    "… CAP segmentation"; where ``text`` only lacks a part of the other, the word before that
    gap ("CAP" in the latter)."""
    best = (-1, 0, 0)
    for other in others:
        n = min(len(text), len(other))
        head = next((i for i in range(n) if text[i] != other[i]), n)
        tail = next((i for i in range(n - head) if text[-1 - i] != other[-1 - i]), n - head)
        best = max(best, (head + tail, head, len(text) - tail))
    _, start, end = best
    while end > start and text[end - 1] == " ":  # (a space both names share at the gap)
        end -= 1
    if end <= start:  # nothing of its own: the word before the gap
        end = min(start, len(text))
        while end > 0 and text[end - 1] == " ":
            end -= 1
        start = max(0, end - 1)
    start = text.rfind(" ", 0, start) + 1  # whole words
    stop = text.find(" ", max(end, start + 1))
    return start, len(text) if stop < 0 else stop


def _elided_keeping(text: str, start: int, end: int, width: int, metrics) -> str:
    """``text`` shortened to ``width`` pixels with ``text[start:end]`` whole: what follows it
    kept whole and the part before shortened, or what precedes it kept and the rest cut; ""
    when neither fits."""
    tail = text[start:]
    head = text[:start].rstrip()
    gap = " " if head != text[:start] else ""
    room = width - metrics.horizontalAdvance(gap + tail)
    if head and room >= metrics.horizontalAdvance(head[:3] + "…"):
        return f"{metrics.elidedText(head, Qt.ElideRight, room)}{gap}{tail}"
    if head and metrics.horizontalAdvance(f"…{gap}{tail}") <= width:  # (its last word kept)
        return f"…{gap}{tail}"
    kept = metrics.elidedText(text, Qt.ElideRight, width)
    if len(kept.rstrip("…")) >= end:
        return kept
    # too narrow for all that follows: the differing words, what follows them cut
    shortest = metrics.horizontalAdvance(head[:3] + "…") if head else 0
    words = gap + text[start:end]
    room = width - shortest - metrics.horizontalAdvance(words)
    if room < metrics.horizontalAdvance("…"):
        return ""
    rest = metrics.elidedText(text[end:], Qt.ElideRight, room)
    room = width - metrics.horizontalAdvance(words + rest)
    return f"{metrics.elidedText(head, Qt.ElideRight, room) if head else ''}{words}{rest}"


class RefreshingCombo(NameCombo):
    """A combo box that calls ``refresh()`` just before its list opens (layer and model pickers)."""

    def __init__(self, refresh: Callable[[], None], lists_layers: bool = True) -> None:
        super().__init__(lists_layers)
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 (Qt name)
        self._refresh()
        super().showPopup()
