"""Import MONAI without the optional packages it loads that our inference never uses.

``import monai`` imports every MONAI sub-package, and those try to import whatever optional
packages are installed: matplotlib (for notebook helpers), pandas, SciPy's signal and stats
packages, and on a typical GPU image also transformers, torchvision, torchaudio, CuPy, OpenCV,
TensorBoard, scikit-learn and h5py. On our 2-core CPU machine that is about half of the time
``import monai`` takes, and on a GPU server with those extras installed it came to about 14 s of
a 22 s ``livertumor segment`` run. The networks and the sliding window we use need none of them.

:func:`import_monai_lean` imports MONAI once with those packages marked as absent (MONAI's
``optional_import`` then records them as missing instead of loading them), then removes the
marks, so anything imported later (by this package or another) loads normally. It is for
single-threaded command-line processes: it changes ``sys.modules`` for the moment of the
import, which another thread importing one of those packages at that very moment would see.
napari never calls it. If the lean import fails for any reason, MONAI is imported the usual way.
Set ``LIVERTUMOR_FULL_IMPORTS=1`` to always import it the usual way.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger(__name__)

#: Packages MONAI imports optionally that inference (SegResNet, sliding window) does not use.
UNUSED_BY_INFERENCE = (
    "matplotlib",
    "pandas",
    "scipy.signal",
    "scipy.stats",
    "sklearn",
    "transformers",
    "torchvision",
    "cupy",
    "cv2",
    "tensorboard",
    "torch.utils.tensorboard",
    "IPython",
    "itk",
    "huggingface_hub",
    # seen imported by MONAI on a CUDA image (2026-12-04): h5py 0.20 s, filelock 0.13 s,
    # torchaudio 0.05 s of a fresh process's start (python -X importtime)
    "h5py",
    "filelock",
    "torchaudio",
)


def import_monai_lean() -> str:
    """Import MONAI (if not imported yet) without :data:`UNUSED_BY_INFERENCE`.

    Returns
    -------
    str
        ``"already"`` (MONAI was imported before), ``"lean"``, ``"full"`` (asked for with
        ``LIVERTUMOR_FULL_IMPORTS``) or ``"fallback"`` (the lean import failed; imported the
        usual way).
    """
    if "monai" in sys.modules:
        return "already"
    if os.environ.get("LIVERTUMOR_FULL_IMPORTS", "").strip() not in ("", "0"):
        import monai  # noqa: F401

        return "full"
    t0 = time.perf_counter()
    marked = [name for name in UNUSED_BY_INFERENCE if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # an import of it raises ImportError at once
    how = "lean"
    try:
        import monai.inferers  # noqa: F401
        import monai.networks.nets  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any surprise: the usual import below
        log.debug("lean MONAI import failed (%s: %s); importing it fully", type(exc).__name__, exc)
        how = "fallback"
        for name in [m for m in sys.modules if m == "monai" or m.startswith("monai.")]:
            del sys.modules[name]
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    if how == "fallback":
        import monai.inferers  # noqa: F401
        import monai.networks.nets  # noqa: F401
    log.debug("MONAI imported (%s) in %.2f s", how, time.perf_counter() - t0)
    return how
