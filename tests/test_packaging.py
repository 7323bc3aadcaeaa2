"""The package installs as a napari plugin, its CLI answers, and the core stays Qt-free."""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_livertumor

REPO = Path(__file__).resolve().parent.parent
GUI_MODULES = ("_widgets", "_reader", "_writer", "_sample_data")


def _run(code: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LIST_PLUGIN = """
    import json, npe2
    import napari_livertumor
    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-livertumor")
    print(json.dumps({
        "module_file": napari_livertumor.__file__,
        "widgets": [w.display_name for w in mf.contributions.widgets],
        "readers": len(mf.contributions.readers),
        "writers": len(mf.contributions.writers),
        "samples": [s.key for s in mf.contributions.sample_data],
    }))
"""


def _check_listing(out: str) -> dict:
    info = json.loads(out.strip().splitlines()[-1])
    assert "2 Segment" in info["widgets"] and "Train models" in info["widgets"]
    assert len(info["widgets"]) == 6
    assert info["readers"] >= 1 and info["writers"] == 3  # labels: NIfTI, SEG; image: NIfTI
    assert info["samples"] == ["synthetic_ct"]
    return info


def test_installed_plugin_is_found_by_napari_in_a_fresh_process(tmp_path):
    """The editable install (the dev setup) exposes the manifest from outside the repo root."""
    res = _run(LIST_PLUGIN, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    _check_listing(res.stdout)


def test_npe2_validates_the_manifest(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-livertumor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


@pytest.mark.slow
def test_wheel_install_ships_manifest_and_models(tmp_path):
    """`pip install .` (a real wheel, not the editable link) carries napari.yaml and resources."""
    # built from a copy holding a training run's resume state, git-ignored: it is not shipped
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".*", "__pycache__", "data", "runs", "build", "dist", "*.log")
    shutil.copytree(REPO, src, ignore=skip)
    stray = src / "resources" / "models" / "liver" / "last" / "model.safetensors"
    stray.parent.mkdir()
    stray.write_bytes(b"resume state")
    wheel_dir = tmp_path / "wheel"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = wheel_dir.glob("napari_livertumor-*.whl")
    target = tmp_path / "site"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    manifest = target / "napari_livertumor" / "napari.yaml"
    assert manifest.is_file() and not manifest.is_symlink()
    assert (target / "napari_livertumor" / "resources").is_dir()
    assert not (target / "napari_livertumor" / "resources" / "models" / "liver" / "last").exists()
    assert (target / "napari_livertumor" / "configs" / "hcc_tace_gpu.json").is_file()
    # A fresh process with the wheel's copy first on the path, away from the source tree.
    res = _run(LIST_PLUGIN, cwd=tmp_path, env={"PYTHONPATH": str(target)})
    assert res.returncode == 0, res.stderr
    info = _check_listing(res.stdout)
    assert Path(info["module_file"]).is_relative_to(target)
    # the README's training commands name built-in recipes and the shipped models: both resolve
    # from the installed copy, not only in a source checkout
    res = _run(
        """
        from napari_livertumor.models import default_model_dir
        from napari_livertumor.training.config import load_recipe, resolve_recipe
        print(resolve_recipe("configs/hcc_tace_gpu.json"))
        print(default_model_dir("tumor"))
        load_recipe("hcc_tace_gpu")
        """,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert res.returncode == 0, res.stderr
    recipe, tumor = res.stdout.split()
    assert Path(recipe).is_relative_to(target) and Path(tumor).is_relative_to(target)
    assert (Path(tumor) / "metadata.json").is_file()


def _core_modules() -> list[str]:
    names = []
    for mod in pkgutil.walk_packages(napari_livertumor.__path__, "napari_livertumor."):
        parts = mod.name.split(".")
        if any(p in GUI_MODULES for p in parts):
            continue
        names.append(mod.name)
    return names


def test_core_modules_import_without_qt_or_napari(tmp_path):
    """Every core module imports in a process where qtpy, PyQt5, napari and magicgui are missing."""
    modules = _core_modules()
    assert "napari_livertumor.io.volume" in modules and "napari_livertumor.cli" in modules
    code = f"""
        import importlib, importlib.abc, sys
        BLOCKED = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked in this test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            importlib.import_module(name)
        leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not leaked, leaked
        print("ok", len({modules!r}))
    """
    res = _run(code, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")


def test_cli_help_and_version():
    res = subprocess.run(
        [sys.executable, "-m", "napari_livertumor.cli", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0
    for cmd in ("segment", "convert", "synth", "train", "evaluate", "demo"):
        assert cmd in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "napari_livertumor.cli", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0 and napari_livertumor.__version__ in res.stdout


def test_cli_without_command_prints_help_and_fails():
    res = subprocess.run(
        [sys.executable, "-m", "napari_livertumor.cli"], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "usage: livertumor" in res.stdout
