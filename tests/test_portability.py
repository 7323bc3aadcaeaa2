"""What differs on Windows and macOS: console encodings, editors' file encodings, locked
files. Simulated here (a cp1252 stdout, UTF-16 files, a failed replace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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


def pretend_windows(monkeypatch):
    """sys.platform "win32", and psutil.pid_exists as Windows' (by the process list: Linux's
    psutil itself asks os.kill)."""
    import psutil

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(psutil, "pid_exists", lambda pid: pid in psutil.pids())


def test_a_stale_run_lock_is_taken_over_on_windows_without_os_kill(tmp_path, monkeypatch):
    """On Windows os.kill(pid, 0) sends CTRL_C_EVENT: for a dead pid it raised a plain OSError,
    read as 'alive', so a crashed run's lock refused every later train and resume (and a live
    process group would have been sent Ctrl-C)."""
    import socket
    import time

    from napari_livertumor.training.loop import RunLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that has ended
    stage = tmp_path / "liver"
    stage.mkdir()
    held = {"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}
    (stage / RunLock.NAME).write_text(json.dumps(held))
    calls = []

    def windows_kill(pid, sig):  # what Windows' GenerateConsoleCtrlEvent does for a dead pid
        calls.append((pid, sig))
        raise OSError(22, "The parameter is incorrect")

    pretend_windows(monkeypatch)
    monkeypatch.setattr(os, "kill", windows_kill)
    lock = RunLock.acquire(stage)  # taken over, not "another training run is writing here"
    try:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert calls == []


def test_a_live_run_lock_is_still_refused_on_windows(tmp_path, monkeypatch):
    import socket

    from napari_livertumor.errors import SettingsError
    from napari_livertumor.fileio import pid_alive
    from napari_livertumor.training.loop import RunLock

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / RunLock.NAME).write_text(
            json.dumps({"pid": other.pid, "host": socket.gethostname()})
        )
        pretend_windows(monkeypatch)
        monkeypatch.setattr(os, "kill", lambda pid, sig: pytest.fail("os.kill on Windows"))
        assert pid_alive(other.pid)
        with pytest.raises(SettingsError, match=f"process {other.pid}"):
            RunLock.acquire(tmp_path)
    finally:
        monkeypatch.undo()  # (Popen.kill is os.kill)
        other.kill()
        other.wait()


def test_ctrl_break_and_a_closed_console_stop_a_command_as_sigterm_does(monkeypatch):
    """Windows' SIGBREAK (Ctrl-Break, the console window closed) ended a training run at once,
    without saving last/. Stood in for by SIGUSR1 here (Linux has no SIGBREAK)."""
    import signal

    from napari_livertumor.errors import Terminated
    from napari_livertumor.signals import HeldStops, sigterm_as_interrupt

    def ignored(signum, frame):  # (unhandled, SIGUSR1 would end the tests)
        pass

    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    was = signal.signal(signal.SIGUSR1, ignored)
    try:
        with pytest.raises(Terminated) as info, sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)  # never reached
        assert info.value.signal_name == "SIGBREAK"  # the CLI says "stopped (SIGBREAK)"
        assert signal.getsignal(signal.SIGUSR1) is ignored
        finished = []
        with pytest.raises(Terminated) as info, sigterm_as_interrupt(), HeldStops():
            os.kill(os.getpid(), signal.SIGUSR1)
            finished.append(True)  # held to the end of the step
        assert finished == [True]
        assert info.value.signal_name == "SIGBREAK"
        assert signal.getsignal(signal.SIGUSR1) is ignored
    finally:
        signal.signal(signal.SIGUSR1, was)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("COM0", "COM0_"),
        ("lpt0.nii.gz", "lpt0_.nii.gz"),
        ("COM\u00b9", "COM\u00b9_"),
        ("COM\u00b2.x", "COM\u00b2_.x"),
        ("lpt\u00b3", "lpt\u00b3_"),
        ("COM\u00b9x", "COM\u00b9x"),
        ("COM10", "COM10"),
    ],
)
def test_every_name_windows_keeps_for_a_device_is_made_safe(name, safe):
    """COM0, LPT0 and COM¹ COM² COM³ (LPT too) are devices on Windows; ¹ passes isalnum()."""
    from napari_livertumor.fileio import safe_name

    assert safe_name(name) == safe


def test_names_one_only_by_unicode_case_folding_are_not_said_to_be_one_file(tmp_path, caplog):
    """Straße and STRASSE casefold alike but are two names on NTFS and APFS: the warning said
    they were 'one file name on macOS and Windows'."""
    import logging

    import numpy as np

    from napari_livertumor.commands.segment import discover_cases
    from napari_livertumor.io import CTVolume
    from napari_livertumor.io.nifti import write_nifti

    ct = CTVolume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    for folder, name in (
        ("a", "Stra\u00dfe"),
        ("b", "STRASSE"),
        ("a", "HCC_001"),
        ("b", "hcc_001"),
    ):
        write_nifti(ct, tmp_path / folder / f"{name}.nii.gz")
    with caplog.at_level(logging.WARNING):
        discover_cases([tmp_path / "a", tmp_path / "b"])
    said = {r.getMessage().split(" inputs are named ")[1].split(":")[0] for r in caplog.records}
    assert said == {
        "HCC_001 and hcc_001 (one file name on macOS and Windows)",
        "STRASSE and Stra\u00dfe (may be one file name on macOS and Windows)",
    }, said


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from napari_livertumor.models import make_untrained_model

    root = tmp_path_factory.mktemp("models")
    make_untrained_model(root / "liver", "liver")
    make_untrained_model(root / "tumor", "tumor")
    return root


def small_ct(seed=0):
    import numpy as np

    from napari_livertumor.io import CTVolume

    rng = np.random.default_rng(seed)
    return CTVolume(rng.normal(60, 80, (8, 32, 32)).astype(np.int16), spacing=(3.0, 0.9, 0.9))


def segment(inputs, out, models, *extra):
    args = ["segment", *map(str, inputs), "-o", str(out), "--models", str(models)]
    return cli.main([*args, "--device", "cpu", "--no-refine", *extra])


def test_output_paths_too_long_for_windows_are_refused_before_any_case(
    tmp_path, models, monkeypatch, capsys
):
    """An output folder whose labels' path fits Windows' 260 characters failed all the same,
    after each case was computed: its hidden temporary files are longer ('No such file or
    directory' naming one of them, for every case of the batch)."""
    from napari_livertumor import fileio
    from napari_livertumor.io.nifti import write_nifti

    write_nifti(small_ct(), tmp_path / "in" / "HCC_001.nii.gz")
    final = "/HCC_001_labels.nii.gz"
    pad = 250 - len(str(tmp_path)) - 1 - len(final)  # the labels' own path: 250 characters
    out = tmp_path / ("o" * pad)
    assert len(str(out / final[1:])) == 250
    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    assert segment([tmp_path / "in"], out, models) == 1
    err = capsys.readouterr().err
    assert f"{out}: paths too long for Windows" in err, err
    assert "Windows allows 259 unless its long paths are enabled" in err
    assert "shorter by" in err and not out.exists()  # refused before anything was written
    # a shorter folder: run (the length is measured as written, temporary names included)
    short = tmp_path / ("o" * (pad - 40))
    assert segment([tmp_path / "in"], short, models) == 0
    assert (short / "HCC_001_labels.nii.gz").is_file()
    monkeypatch.setattr(fileio, "on_windows", lambda: False)  # elsewhere: no such limit
    assert segment([tmp_path / "in"], out, models) == 0


def test_segments_files_written_aside_first_count_in_the_windows_path_check(
    tmp_path, models, monkeypatch, capsys
):
    """segment writes each case's files aside first (".HCC_001_labels.nii.gz.new.nii.gz",
    itself through a temporary file of 8 random characters and ".partial"), 12 characters
    longer than a plain temporary name: an output folder whose files' temporary paths fit
    Windows' 259 characters while their asides' do not would fail on Windows part-way through
    a batch, "No such file or directory", after the case was computed."""
    from napari_livertumor import fileio
    from napari_livertumor.io.nifti import write_nifti

    write_nifti(small_ct(), tmp_path / "in" / "HCC_001.nii.gz")
    aside = "/..HCC_001_labels.nii.gz.new.nii.gz." + "x" * 8 + ".partial"
    out = tmp_path / ("o" * (260 - len(str(tmp_path)) - 1 - len(aside)))
    assert len(str(out) + aside) == 260  # one over
    assert len(str(out / ".HCC_001_labels.nii.gz.xxxxxxxx.partial")) == 248  # fits
    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    assert segment([tmp_path / "in"], out, models) == 1
    err = capsys.readouterr().err
    assert f"{out}: paths too long for Windows" in err, err
    assert "have up to 260 characters" in err and "shorter by 1 characters" in err
    assert not out.exists()
    fits = tmp_path / out.name[:-1]  # one shorter: runs
    assert segment([tmp_path / "in"], fits, models) == 0, capsys.readouterr().err
    assert (fits / "HCC_001_labels.nii.gz").is_file()


def test_a_rerun_through_another_spelling_of_the_input_is_the_same_input(tmp_path, models, capsys):
    """macOS keeps the letter case typed (~/desktop/ct for ~/Desktop/CT) in a resolved path:
    a rerun so typed refused its finished cases as 'made from another input'. A hard link
    stands in for the other spelling here (one file, another path)."""
    from napari_livertumor.commands.segment import _compare_run
    from napari_livertumor.io.nifti import write_nifti

    first = tmp_path / "CT" / "HCC_001.nii.gz"
    write_nifti(small_ct(), first)
    other = tmp_path / "ct" / "HCC_001.nii.gz"
    other.parent.mkdir()
    os.link(first, other)
    wanted = {"input": str(other), "series_uid": None}
    assert _compare_run({"run_settings": {**wanted, "input": str(first)}}, wanted) == ("same", "")
    assert _compare_run({"input": str(first)}, wanted) == ("same", "")  # (an old record)
    out = tmp_path / "out"
    assert segment([first], out, models) == 0
    made = (out / "HCC_001_labels.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert segment([other], out, models) == 0
    captured = capsys.readouterr()
    assert "another input" not in captured.err
    assert (out / "HCC_001_labels.nii.gz").stat().st_mtime_ns == made  # kept, not redone


def case_insensitive_samefile(a, b):
    """os.path.samefile of a case-insensitive file system (macOS): one name in any case."""
    return os.path.exists(a) and str(a).casefold() == str(b).casefold()


def test_a_fine_tune_into_its_start_model_spelled_in_another_case_is_refused(tmp_path, monkeypatch):
    """--init Models/liver --out models wrote over the model it started from on macOS."""
    from napari_livertumor.errors import SettingsError
    from napari_livertumor.training.config import TrainConfig
    from napari_livertumor.training.loop import check_output_folder

    (tmp_path / "Models" / "liver" / "sub").mkdir(parents=True)
    monkeypatch.setattr(os.path, "samefile", case_insensitive_samefile)
    for init in ("Models/liver", "Models/liver/sub"):
        cfg = TrainConfig(
            data=str(tmp_path), out=str(tmp_path / "models"), init_from=str(tmp_path / init)
        )
        with pytest.raises(SettingsError, match="would write over the model it starts from"):
            check_output_folder(cfg)
    check_output_folder(
        TrainConfig(data=str(tmp_path), out=str(tmp_path / "new"), init_from=str(tmp_path / init))
    )


def test_an_output_folder_that_is_its_input_spelled_in_another_case_is_refused(
    tmp_path, monkeypatch, capsys
):
    """convert ~/Desktop/CT -o ~/desktop/ct on macOS: the output folder is the input, refused
    when typed alike ('the output folder is the input folder'), but not so typed: every scan
    of the input was counted as outside the output folder it is in."""
    from napari_livertumor.io.nifti import write_nifti

    data = tmp_path / "CT"
    write_nifti(small_ct(), data / "HCC_001.nii.gz")
    assert cli.main(["convert", str(data), "-o", str(data)]) == 1
    assert "the output folder is the input folder: give another -o" in capsys.readouterr().err
    monkeypatch.setattr(os.path, "samefile", case_insensitive_samefile)
    # (on Linux, ct/ is a folder of its own, as macOS would not have it)
    assert cli.main(["convert", str(data), "-o", str(tmp_path / "ct")]) == 1
    assert "the output folder is the input folder: give another -o" in capsys.readouterr().err
    assert not (tmp_path / "ct").exists()  # refused before anything is made


def test_patients_named_on_a_mac_match_the_clinical_table_and_split_typed_elsewhere(
    tmp_path, capsys
):
    """macOS (and a Mac's zip) store é as e + ´: `train --check` said "2/4 patients matched"
    and "Without a clinical row: HCC_é01, Pâtient_ü02" of patients whose IDs were in the
    table (typed é), who trained without the weak term; a split file left them out."""
    import unicodedata

    import pandas as pd

    from napari_livertumor.training.toydata import write_toy_cohort

    data = write_toy_cohort(tmp_path / "data", n_cases=4, shape=(16, 32, 32))
    names = {"HCC_001": "HCC_\u00e901", "HCC_002": "P\u00e2tient_\u00fc02"}
    for old, new in names.items():
        for sub in ("imagesTr", "labelsTr"):
            mac = unicodedata.normalize("NFD", new)
            (data / sub / f"{old}.nii.gz").rename(data / sub / f"{mac}.nii.gz")
    table = pd.read_csv(data / "clinical.csv")
    table["TCIA_ID"] = table["TCIA_ID"].replace(names)
    table.to_csv(tmp_path / "C.csv", index=False)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [*names.values(), "HCC_003"], "test": ["HCC_004"]}))
    args = ["train", "--check", "--data", str(data), "--clinical", str(tmp_path / "C.csv")]
    assert cli.main([*args, "--split", str(split)]) == 0
    out = capsys.readouterr().out
    assert "Clinical table C.csv: 4/4 patients matched" in out
    assert "Without a clinical row" not in out and "no patient here" not in out
    assert "Split of split.json: 3 training / 0 validation / 1 test patient(s)" in out


def test_a_case_list_made_on_windows_finds_its_scans(tmp_path, models, capsys):
    """A list saved on Windows (`scans\\Patiént.nii.gz`, CRLF) failed on macOS and Linux with
    "lst/scans\\Patiént.nii.gz: file or folder not found"; a `C:\\...` path said the same,
    not that it names a Windows disk."""
    from napari_livertumor.io.nifti import write_nifti

    lst = tmp_path / "lst"
    write_nifti(small_ct(), lst / "scans" / "Pati\u00e9nt.nii.gz")
    (lst / "list.csv").write_bytes("path,case\r\nscans\\Pati\u00e9nt.nii.gz,\u00c9ric\r\n".encode())
    assert segment([lst / "list.csv"], tmp_path / "out", models) == 0
    assert (tmp_path / "out" / "\u00c9ric_labels.nii.gz").is_file()

    (lst / "drive.csv").write_bytes(b"path\r\nscans\\x.nii.gz\r\nC:\\scans\\y.nii.gz\r\n")
    assert segment([lst / "drive.csv"], tmp_path / "out2", models) != 0
    err = capsys.readouterr().err
    assert "line 3: C:\\scans\\y.nii.gz is a Windows path (on drive C:)" in err
    assert not (tmp_path / "out2").exists()  # refused before any case


@pytest.mark.skipif(os.sep == "\\", reason="on Windows these are paths of this computer")
@pytest.mark.parametrize(
    ("raw", "disk"),
    [
        ("C:\\scans\\y.nii.gz", "drive C:"),
        ("C:/scans/y.nii.gz", "drive C:"),  # (as Python and PowerShell also write them)
        ("d:/scans", "drive d:"),
        ("\\\\server\\share\\y.nii.gz", "a network share"),
    ],
    ids=["drive-backslashes", "drive-slashes", "drive-folder", "unc"],
)
def test_a_listed_windows_disk_path_is_refused_naming_its_line(tmp_path, caplog, raw, disk):
    """A case list's `C:/scans/y.nii.gz` or `\\\\server\\share\\y.nii.gz` names a Windows
    disk, not a path here; only `C:\\...` was tested, so either could have been taken for a
    relative path and said "not found", leaving the user to look for a missing file."""
    from napari_livertumor.fileio import listed_path

    source = tmp_path / "l.csv"
    with pytest.raises(InputError) as info:
        listed_path(raw, tmp_path, source=source, where="line 4: ")
    assert info.value.path == source
    assert info.value.problem.startswith(
        f"line 4: {raw} is a Windows path (on {disk}), which this computer cannot open"
    )
    assert not caplog.records  # (no "not found as written" first)


def test_a_listed_windows_path_found_neither_way_says_what_was_tried(tmp_path, caplog):
    """A Windows list's path that is not there either way was said as the path as written,
    backslashes and all, leaving the user to guess that its folders were never looked in."""
    import logging

    from napari_livertumor.fileio import listed_path

    with caplog.at_level(logging.WARNING):
        p = listed_path("scans\\gone.nii.gz", tmp_path, source=tmp_path / "l.csv", where="line 2: ")
    assert p == tmp_path / "scans" / "gone.nii.gz"
    said = caplog.records[-1].getMessage()
    assert "line 2: scans\\gone.nii.gz: not found as written" in said
    assert f"backslashes read as folder separators, as Windows writes paths ({p})" in said


def test_evaluate_keeps_each_patients_label_map_on_a_case_insensitive_disk(
    tmp_path, models, caplog
):
    """`evaluate --save-labels` of patients PatA and pata wrote PatA_labels.nii.gz and
    pata_labels.nii.gz unsaid: one file on macOS, Windows, SMB or exFAT, the second patient's
    map over the first's."""
    import logging

    from napari_livertumor.training.evaluate import evaluate
    from napari_livertumor.training.toydata import write_toy_cohort

    data = write_toy_cohort(tmp_path / "data", n_cases=2, shape=(16, 32, 32))
    for sub in ("imagesTr", "labelsTr"):
        (data / sub / "HCC_001.nii.gz").rename(data / sub / "PatA.nii.gz")
        (data / sub / "HCC_002.nii.gz").rename(data / sub / "pata.nii.gz")
    out = tmp_path / "ev"
    with caplog.at_level(logging.WARNING):
        result = evaluate(data, models=models, out_dir=out, device="cpu", save_labels=True)
    assert sorted(p.name for p in (out / "labels").iterdir()) == [
        "PatA_labels.nii.gz",
        "pata_2_labels.nii.gz",
    ]
    said = "two patients are named PatA and pata (one file name on macOS and Windows): pata "
    said += "is written as pata_2_labels.nii.gz"
    assert any(said in r.getMessage() for r in caplog.records)
    assert [r["case"] for r in result["rows"]] == ["PatA", "pata"]  # the tables: the IDs
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["label_files"] == {"pata": "pata_2_labels.nii.gz"}
    assert any(said in c for c in summary["cautions"])


#: a tiny recipe: a training run of the commands below refused or done in seconds
_TINY_RECIPE = {
    "common": {
        "epochs": 1,
        "steps_per_epoch": 1,
        "roi_size": [16, 32, 32],
        "target_spacing": [2.5, 2.0, 2.0],
        "network": {"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1]},
        "weak_lambda": 0.0,
        "max_val_cases": 1,
    }
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A toy cohort (NIfTI layout), a tiny recipe and an evaluation split, apart from the
    tests' own folders (which must stay empty when a command is refused)."""
    from napari_livertumor.training.toydata import write_toy_cohort

    root = tmp_path_factory.mktemp("cohort")
    write_toy_cohort(root / "data", n_cases=3, seed=0, shape=(16, 32, 32))
    (root / "recipe.json").write_text(json.dumps(_TINY_RECIPE), encoding="utf-8")
    split = {"train": ["HCC_001", "HCC_002"], "test": ["HCC_003"]}
    (root / "split.json").write_text(json.dumps(split), encoding="utf-8")
    return root


def _writing_command(command, out, cohort, models):
    data = cohort / "data"
    return {
        "convert": ["convert", str(data / "imagesTr"), "-o", str(out)],
        "train": ["train", "--data", str(data), "--out", str(out), "--device", "cpu",
                  "--config", str(cohort / "recipe.json"), "--stage", "liver"],
        "evaluate": ["evaluate", "--data", str(data), "--models", str(models), "-o", str(out),
                     "--split", str(cohort / "split.json"), "--device", "cpu", "--save-labels"],
        "ensemble": ["ensemble", str(out), str(models / "tumor"), str(models / "tumor-2")],
        "share-model": ["share-model", str(models), "-o", str(out)],
    }[command]  # fmt: skip


@pytest.mark.parametrize("command", ["convert", "train", "evaluate", "ensemble", "share-model"])
def test_every_writing_command_refuses_paths_too_long_for_windows_before_writing(
    command, tmp_path, cohort, models, monkeypatch, capsys
):
    """Only segment checked Windows' 260-character path limit: with an output folder of 232
    characters the other commands ran and wrote paths of up to 280 characters (train's
    preprocessing cache and checkpoints, evaluate's label maps, convert's temporary images,
    share-model's staging folder), which fail on Windows part-way through: a training run
    after its data was read. Each now refuses before it writes anything, and an output folder
    shorter by the number of characters it says runs."""
    import re

    from napari_livertumor import fileio

    if not (models / "tumor-2").is_dir():  # (an ensemble's second member)
        import shutil

        shutil.copytree(models / "tumor", models / "tumor-2")
    out = tmp_path / ("o" * (232 - len(str(tmp_path)) - 1))
    assert len(str(out)) == 232
    monkeypatch.setattr(fileio, "on_windows", lambda: True)  # Windows, no long paths
    assert cli.main(_writing_command(command, out, cohort, models)) == 1
    err = capsys.readouterr().err
    assert f"{out}: paths too long for Windows" in err, err
    assert "Windows allows 259 unless its long paths are enabled" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    # shorter by what it says: the run fits
    shorter = int(re.search(r"shorter by (\d+) characters", err)[1])
    fits = tmp_path / ("o" * (len(out.name) - shorter))
    assert cli.main(_writing_command(command, fits, cohort, models)) == 0, capsys.readouterr().err
    assert any(fits.iterdir())


def test_a_training_run_refuses_a_cache_folder_too_long_for_windows(
    tmp_path, cohort, monkeypatch, capsys
):
    """A training run's preprocessing cache (--cache-dir) too long for Windows failed at the
    first patient's file: refused first, naming the cache folder and its option."""
    from napari_livertumor import fileio

    cache = tmp_path / "cache" / ("c" * (240 - len(str(tmp_path)) - 7))
    args = ["train", "--data", str(cohort / "data"), "--out", str(tmp_path / "run")]
    args += ["--config", str(cohort / "recipe.json"), "--stage", "both", "--device", "cpu"]
    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    assert cli.main([*args, "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"{cache}: paths too long for Windows" in err, err
    assert "choose a cache folder (--cache-dir) shorter by" in err
    assert list(tmp_path.iterdir()) == []


def test_the_train_panels_runs_refuse_paths_too_long_for_windows_before_writing(
    tmp_path, cohort, monkeypatch
):
    """The Train panel's runs (training.train, in a child process) check the paths too: the
    checkpoints' before the run's lock or log is written, the cache's once the patients are
    indexed, before the first is prepared."""
    from napari_livertumor import fileio
    from napari_livertumor.training import make_config, train
    from napari_livertumor.training.config import load_recipe

    monkeypatch.setattr(fileio, "on_windows", lambda: True)
    recipe = load_recipe(cohort / "recipe.json")["common"]
    out = tmp_path / ("o" * (225 - len(str(tmp_path)) - 1))
    cfg = make_config("liver", data=str(cohort / "data"), out=str(out), **recipe)
    with pytest.raises(InputError, match="paths too long for Windows.*model.safetensors"):
        list(train(cfg))
    assert list(tmp_path.iterdir()) == []
    # the checkpoints fit; the patients' cache files do not (long patient IDs)
    data = tmp_path / "data"
    for sub in ("imagesTr", "labelsTr"):
        (data / sub).mkdir(parents=True)
        for case in ("HCC_001", "HCC_002", "HCC_003"):
            long = case.replace("_", "_" + "9" * 40)
            os.link(cohort / "data" / sub / f"{case}.nii.gz", data / sub / f"{long}.nii.gz")
    out = tmp_path / ("r" * (205 - len(str(tmp_path)) - 1))
    cfg = make_config("liver", data=str(data), out=str(out), **recipe)
    with pytest.raises(InputError, match="paths too long for Windows.*HCC_9999"):
        list(train(cfg))
    assert not (out / ".cache").exists()  # no patient prepared


def test_two_patients_one_id_apart_only_in_form_are_refused_not_merged(tmp_path):
    """Patients José (é composed) and José (e + ´) in one NIfTI dataset: `evaluate` scored
    one and dropped the other without a word, as IDs are matched composed since names made
    on a Mac match their table. Likewise hcc-3 and HCC_003, which the clinical table's reading
    makes one patient. The data is refused, naming both."""
    import unicodedata

    from napari_livertumor.training.data import index_cases
    from napari_livertumor.training.toydata import write_toy_cohort

    data = write_toy_cohort(tmp_path / "data", n_cases=3, shape=(8, 16, 16))
    composed, decomposed = "José", unicodedata.normalize("NFD", "José")
    for sub in ("imagesTr", "labelsTr"):
        (data / sub / "HCC_001.nii.gz").rename(data / sub / f"{composed}.nii.gz")
        (data / sub / "HCC_002.nii.gz").rename(data / sub / f"{decomposed}.nii.gz")
    with pytest.raises(InputError, match="two patients are named alike.*two Unicode forms"):
        index_cases(data)
    for sub in ("imagesTr", "labelsTr"):
        (data / sub / f"{decomposed}.nii.gz").rename(data / sub / "hcc-3.nii.gz")
    with pytest.raises(InputError, match="'HCC_003' and 'hcc-3'.*both read as HCC_003"):
        index_cases(data)
    (data / "imagesTr" / "hcc-3.nii.gz").rename(data / "imagesTr" / "Other.nii.gz")
    (data / "labelsTr" / "hcc-3.nii.gz").rename(data / "labelsTr" / "Other.nii.gz")
    assert len(index_cases(data)) == 3
