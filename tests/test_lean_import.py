"""MONAI imported by the command line without the optional packages inference never uses."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str, **env) -> str:
    import os

    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_monai_comes_without_matplotlib_and_pandas_and_they_still_import_after():
    out = _run(
        """
        import sys
        from napari_livertumor.models.lean_import import import_monai_lean
        how = import_monai_lean()
        skipped = [m for m in ("matplotlib", "pandas", "scipy.stats") if m in sys.modules]
        from monai.inferers import sliding_window_inference
        from monai.networks.nets import SegResNet
        import torch
        net = SegResNet(spatial_dims=3, in_channels=1, out_channels=3, init_filters=8).eval()
        with torch.no_grad():
            y = sliding_window_inference(torch.zeros(1, 1, 20, 20, 20), (16, 16, 16), 1, net,
                                         mode="gaussian")
        import pandas, matplotlib, scipy.stats  # loaded normally when someone asks
        print(how, skipped, tuple(y.shape))
        """
    )
    assert out == "lean [] (1, 3, 20, 20, 20)"


def test_the_usual_import_on_request_and_when_monai_is_there_already():
    assert (
        _run(
            """
        from napari_livertumor.models.lean_import import import_monai_lean
        print(import_monai_lean(), import_monai_lean())
        """,
            LIVERTUMOR_FULL_IMPORTS="1",
        )
        == "full already"
    )


def test_a_failing_lean_import_falls_back_to_the_usual_one():
    out = _run(
        """
        import sys
        import napari_livertumor.models.lean_import as lean
        lean.UNUSED_BY_INFERENCE = ("torch",)  # MONAI cannot do without it
        print(lean.import_monai_lean(), "torch" in sys.modules and sys.modules["torch"] is not None)
        import monai.networks.nets
        """
    )
    assert out == "fallback True"
