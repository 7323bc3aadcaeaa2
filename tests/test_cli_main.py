"""What the ``livertumor`` tool itself says: its version, and an error nobody planned for."""

from __future__ import annotations

import subprocess
import sys

import napari_livertumor
from napari_livertumor.cli import main


def test_version_names_the_commit_and_the_libraries_a_results_stats_record():
    """``--version`` said "livertumor 0.1.0" alone: a bug report could not tell which build, or
    which torch, made a result."""
    from napari_livertumor.provenance import software

    info = software()
    res = subprocess.run(
        [sys.executable, "-m", "napari_livertumor.cli", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    first, libraries = res.stdout.splitlines()
    assert first.startswith(f"livertumor {napari_livertumor.__version__}")
    if info["commit"]:
        assert f"(commit {info['commit'].split('-')[0]}" in first
    assert f"python {info['python']}" in libraries and f"numpy {info['numpy']}" in libraries
    for name in ("torch", "monai", "scipy", "scikit-image"):
        assert name in libraries
    # read from the packages' metadata: torch is not imported for it
    res = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom napari_livertumor.cli import main\ntry:\n    main(['--version'])\n"
         "except SystemExit:\n    pass\nprint('torch' in sys.modules)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.stdout.splitlines()[-1] == "False", res.stderr


def test_an_unexpected_error_is_said_in_two_lines_and_the_traceback_with_v(
    tmp_path, capsys, caplog, monkeypatch
):
    """A bug before the case loop printed a raw Python traceback."""
    import napari_livertumor.synth as synth

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'\nmore lines")

    monkeypatch.setattr(synth, "make_cohort", broken)
    args = ["synth", "-o", str(tmp_path / "c"), "--cases", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "livertumor synth: unexpected error: TypeError: unsupported operand type(s) for +: "
        "'int' and 'str'",
        "this is a bug: please report it with the output of `livertumor --version` and the "
        "command run; `livertumor -v ...` shows the traceback",
    ]
    assert "Traceback" not in caplog.text
    assert main(["-v", *args]) == 1
    assert "livertumor synth: unexpected error: TypeError" in capsys.readouterr().err
    assert "Traceback (most recent call last)" in caplog.text
    assert 'raise TypeError("unsupported' in caplog.text
