"""napari sample data: a synthetic abdominal CT with its ground-truth labels.

``File > Open Sample > Synthetic abdominal CT with liver tumor (Liver Tumor Segmentation)`` adds the CT
(HU, abdomen window) and the ground truth (1 liver, 2 tumor, 3 portal vein, 4 aorta), both
scaled by the voxel spacing in mm so they line up with anything else loaded later. The
``medium`` phantom (256×256 in-plane, 40–80 slices) is made in under half a second once its
modules are imported (about 2.5 s the first time in a session on a 2-core machine, longer while
another panel loads torch: napari opens samples on its GUI thread).
"""

from __future__ import annotations

SAMPLE_SEED = 7
SAMPLE_SHAPE = "medium"


def make_sample_ct(seed: int = SAMPLE_SEED, shape: str = SAMPLE_SHAPE) -> list[tuple]:
    """Layer data tuples ``[(ct, kwargs, "image"), (labels, kwargs, "labels")]``."""
    from ._reader import CT_CONTRAST_LIMITS
    from ._widgets._layers import CT_VOLUME, ROLE, class_colormap, class_features
    from .synth import generate_phantom

    phantom = generate_phantom(seed, shape, phase="portal venous", n_tumors=2)
    volume = phantom.ct
    name = "CT (synthetic)"
    common = {"scale": volume.napari_scale, "translate": volume.napari_translate}
    ct_kwargs = {
        **common,
        "name": name,
        "colormap": "gray",
        "contrast_limits": CT_CONTRAST_LIMITS,  # the abdomen window, as any CT opened
        "metadata": {CT_VOLUME: volume, ROLE: "ct", "synth_info": phantom.info},
    }
    label_kwargs = {
        **common,
        "name": "ground truth",
        "opacity": 0.4,
        # linked to its CT by the volume they share, not by name: napari renames the CT of a
        # sample opened twice ("CT (synthetic) [1]"), and a name linked the second ground
        # truth to the first CT
        "metadata": {CT_VOLUME: volume, ROLE: "ground_truth"},
        "colormap": class_colormap(truth=True),
        "features": class_features(),
    }
    return [(volume.array, ct_kwargs, "image"), (phantom.labels, label_kwargs, "labels")]
