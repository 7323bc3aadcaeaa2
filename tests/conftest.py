"""Shared pytest configuration. Area-specific fixtures live in the test modules of that area."""

from __future__ import annotations

import copy
import gc
import os

import pytest

# Keep torch from fighting for the cores, and keep runs reproducible: two threads in a run of
# one process, one in each of pytest-xdist's workers (:func:`pytest_configure`).
os.environ.setdefault("OMP_NUM_THREADS", "2")

# pytest-qt and qtpy (napari's Qt layer) each pick a binding, and not the same one: with PyQt5
# and PyQt6 both installed (the ``pyqt6`` extra, then ``testing``, which brings PyQt5) qtpy
# took PyQt5 and pytest-qt PyQt6, two Qts in one process. pytest-qt follows qtpy's choice
# (``QT_API`` picks it) unless ``PYTEST_QT_API`` says otherwise.
if "PYTEST_QT_API" not in os.environ:
    try:
        import qtpy

        os.environ["PYTEST_QT_API"] = qtpy.API_NAME.lower()
    except Exception:  # no binding (or none qtpy knows): pytest-qt's own choice and message
        pass

# The Segment and Train panels import torch and MONAI in a background thread when they open;
# the panels' jobs wait for it (``_jobs.IMPORT_LOCK``) but test code importing MONAI on the
# main thread at the same moment (building toy models) does not. Imported once here, the
# panels' background import finds them loaded.
try:
    import monai.inferers  # noqa: E402, F401
    import monai.networks.nets  # noqa: E402, F401
    import torch  # noqa: E402, F401
except ImportError:  # the tests that need them say so
    pass

# napari runs a full garbage collection each time a layer is removed (its canvas's fix for an
# OpenGL driver race), so every GUI test's teardown paid for walking all of torch's, MONAI's and
# napari's module objects: about 0.6 s a test, a third of the GUI tests' time, growing as the
# heap did. Objects that live as long as the process (imported modules, then what the first
# viewer sets up for good) are moved out of the collector's sight; they are never garbage.
gc.collect()
gc.freeze()
_FROZEN_AFTER_A_VIEWER: list[bool] = []


def _cache_plugin_manifests() -> None:
    """napari's test viewer (``make_napari_viewer``) discovers the installed plugins afresh for
    every test, npe2 parsing each plugin's YAML manifest with a pure-Python loader: about 0.1 s
    a viewer, some 25 s of a CI run. The manifests do not change during a run: each file is
    parsed once (keyed by its path, size and modification time) and a copy handed out."""
    try:
        from npe2.manifest import _bases
    except ImportError:
        return
    load = getattr(_bases, "_load_yaml_no_duplicates", None)
    if load is None or getattr(load, "_cached", False):
        return
    parsed: dict = {}

    def cached(stream):
        try:
            st = os.stat(stream.name)
            key = (stream.name, st.st_mtime_ns, st.st_size)
        except (AttributeError, OSError, TypeError):
            return load(stream)
        if key not in parsed:
            parsed[key] = load(stream)
        return copy.deepcopy(parsed[key])

    cached._cached = True
    _bases._load_yaml_no_duplicates = cached


_cache_plugin_manifests()


def pytest_configure(config):
    """In a pytest-xdist worker (``make test`` runs two), torch keeps to one thread, and so do
    the commands the tests start: two workers of two threads each on two cores ran the training
    tests 2.5 times slower than one process did, their threads spinning while they waited for
    each other. (The worker's environment names it only after this file was imported.)"""
    if hasattr(config, "workerinput"):
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass


@pytest.fixture(autouse=True, scope="session")
def _own_settings(tmp_path_factory):
    """The panels' lasting choices (the palette) go to a file of the run's own, not the
    user's (``_layers.SETTINGS_ENV``)."""
    os.environ["LIVERTUMOR_SETTINGS"] = str(tmp_path_factory.mktemp("settings") / "settings.ini")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item):
    yield
    if not _FROZEN_AFTER_A_VIEWER and "make_napari_viewer" in getattr(item, "fixturenames", ()):
        _FROZEN_AFTER_A_VIEWER.append(True)
        gc.collect()
        gc.freeze()
