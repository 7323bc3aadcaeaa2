"""Synthetic HCC-TACE-Seg-like data: abdominal CT phantoms, labels, clinical tables, cohorts.

Core module (no Qt). :func:`generate_phantom` makes one case in memory; :func:`make_cohort`
writes many in the TCIA download layout (DICOM CT + DICOM SEG) or a NIfTI layout, with a
clinical table whose staging columns follow each patient's true tumor burden.

How a phantom is made
---------------------
1. **Habitus and scan geometry** (``phantom.py``): the abdominal cavity size, then fat and
   muscle around it; liver height 13.5–21.5 cm; slice thickness (1.25–5 mm), slice count,
   in-plane spacing (0.6–0.9 mm on ``full``), field of view and table position.
2. **Anatomy** (``anatomy.py``, ``_liver.py``, ``_abdomen.py``), painted as tissue codes on a
   working grid (half the in-plane resolution on ``medium``/``full``), each organ in its own
   box: skin, subcutaneous and visceral fat, muscle wall with paraspinal bulk, ribs (oblique
   bands with a cortical shell) ending at the costal margin, costal cartilage, vertebrae with
   discs, canal and posterior elements, psoas; diaphragm domes with lung bases, heart and
   posterior mediastinum with crura and oesophagus; liver (right lobe, medial bridge, left
   lobe, caudate; smooth union, low-frequency and — when cirrhotic — nodular surface noise,
   moulded by the dome and the body wall, volume aimed at a drawn target of 1.1–2.3 L (a few
   fitting steps: the livers made are 0.7–1.0× of it, 1.1–1.9 L over 25 seeds checked in a
   review); Riedel's lobe or a resected left lobe sometimes) with portal and hepatic vein trees, hepatic artery
   branches, the umbilical fissure, porta hepatis fat, focal fat / perfusion anomalies, cysts
   and tumors; gallbladder; kidneys (tilted; cortex, medulla, pelvis) and adrenals; spleen;
   stomach with gas/fluid levels; duodenal C-loop; pancreas, splenic and mesenteric veins,
   celiac/hepatic/splenic/mesenteric arteries; aorta (optionally calcified), IVC, main portal
   vein; colon and small-bowel loops (random walks) filling the free fat; ascites; in long
   scans the iliac wings and bladder. A smooth in-plane warp then bends every outline so
   nothing is a perfect ellipse.
3. **Tumors**: 0 (4 %), 1 (≈53 %) or 2–6 lesions; main lesion diameter log-normal around 5 cm
   (0.8–12 cm), satellites 0.5–4.5 cm, clustered around the main mass or scattered; lobulated,
   irregular margins; ≈20 % at the liver edge (may bulge out); kinds "typical" (arterial
   hyper-enhancement, washout), "hypovascular", "iso" (near-invisible), "rim" (capsule) and
   "infiltrative" (ragged, low contrast, ill-defined margin);
   necrotic cores in half of the lesions > 4 cm (necrosis stays label 2).
4. **Intensities** (``intensity.py``): HU per tissue and phase drawn per case from the ranges in
   ``REFERENCE.md`` §5 (non-contrast / arterial / portal venous), fatty liver in ≈15 %, tumor
   contrast drawn relative to the non-fatty liver value, per-tissue texture, scanner gain and
   offset; then partial-volume blur, optional streaks, bilinear upsampling, spatially correlated
   noise (σ ≈ 6–30 HU, larger patients noisier) and, sometimes, the scanner's outside-FOV value.

Labels (uint8): 0 other, 1 liver (incl. hepatic veins and arteries, small portal branches,
cysts, focal fat), 2 tumor
mass (incl. necrosis), 3 portal vein (main trunk and first branches), 4 abdominal aorta.

What it is not: organs are built from a few smooth primitives, so fine anatomy (bowel folds,
small vessels outside the liver, trabecular bone, muscle groups, femoral heads) is missing or
crude, and no two organs have a realistic sliding interface.
Models trained only on it should be trained with strong augmentation and checked on real CT.
"""

from __future__ import annotations

from .clinical import make_clinical_table
from .cohort import case_seed, make_cohort, manifest_seeds
from .intensity import PHASES
from .phantom import OVERRIDES, SHAPES, TUMOR_KINDS, Phantom, generate_phantom

__all__ = [
    "OVERRIDES",
    "PHASES",
    "SHAPES",
    "TUMOR_KINDS",
    "Phantom",
    "case_seed",
    "generate_phantom",
    "make_clinical_table",
    "make_cohort",
    "manifest_seeds",
]
