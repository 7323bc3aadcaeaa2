"""What differs on Windows and macOS: console encodings, editors' file encodings, locked
files. Simulated here (a cp1252 stdout, UTF-16 files, a failed replace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from napari_livertumor import cli
from napari_livertumor.errors import InputError


def test_paths_a_windows_console_cannot_encode_are_printed_not_fatal(tmp_path):
    """Output sent to a file on Windows is encoded in cp1252: a patient folder named in Chinese
    made print() raise and stopped the command."""
    out = tmp_path / "患者 data"
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "napari_livertumor.cli", "synth", "-o", str(out)]
    cmd += ["--cases", "1", "--shape", "small", "--layout", "nifti"]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    assert b"\\u60a3\\u8005" in proc.stdout  # the name, escaped
    assert (out / "imagesTr").is_dir()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_json_files_saved_by_windows_editors_are_read(tmp_path, encoding):
    """Notepad's UTF-8 has a BOM and PowerShell 5's '>' writes UTF-16: a recipe or split file
    saved so was refused ('Unexpected UTF-8 BOM') or ended in a traceback."""
    from napari_livertumor.training.config import load_recipe
    from napari_livertumor.training.data import read_split

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"common": {"epochs": 3}, "liver": {}, "tumor": {}}), encoding)
    assert load_recipe(recipe)["common"]["epochs"] == 3
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["Patiënt_1"], "test": ["患者_2"]}), encoding)
    assert read_split(split)["test"] == ["患者_2"]


def test_a_json_file_in_another_encoding_is_named_with_the_byte(tmp_path):
    from napari_livertumor.training.config import load_recipe

    recipe = tmp_path / "recipe.json"
    recipe.write_bytes('{"common": {"#": "Données"}}'.encode("cp1252"))
    with pytest.raises(InputError, match="not a UTF-8 text file.*save it as UTF-8"):
        load_recipe(recipe)


def test_the_evaluation_table_is_utf8_whatever_the_locale(tmp_path):
    """Written in the locale's code page, a patient ID in Chinese lost the whole table on
    Windows after every case had been scored. Run where the locale is ASCII (the POSIX
    locale with Python's UTF-8 mode and locale coercion off), so that a file opened without
    an encoding fails the same way."""
    code = (
        "import sys; from napari_livertumor.training.evaluate import write_results; "
        "write_results(sys.argv[1], [{'case': '\\u60a3\\u8005_004', 'dice_liver': 0.9}], "
        "{'cases': 1})"
    )
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env.pop("PYTHONIOENCODING", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode("ascii", "replace")[-2000:]
    text = (tmp_path / "per_case.csv").read_text(encoding="utf-8")
    assert "患者_004" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_case.csv", "summary.json"]


def test_a_file_that_cannot_be_replaced_is_named_not_its_temporary_copy(monkeypatch, capsys):
    """Replacing summary.csv open in Excel fails on Windows; the message named the temporary
    file, which no longer exists."""

    real = cli._command_module("segment")

    class Command:
        add_arguments = staticmethod(real.add_arguments)

        @staticmethod
        def run(args):
            raise PermissionError(13, "Access is denied", "out/.summary.csv.x.tmp", None,
                                  "out/summary.csv")  # fmt: skip

    monkeypatch.setattr(cli, "_command_module", lambda name: Command)
    assert cli.main(["segment", "x.nii.gz", "-o", "out"]) == 1
    err = capsys.readouterr().err
    assert "out/summary.csv: Access is denied" in err and ".tmp" not in err
    assert ("open in another program" in err) == (sys.platform == "win32")  # Windows locks
