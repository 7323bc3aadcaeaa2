"""Tissue codes of the phantom's working map and their HCC-TACE-Seg label classes."""

from __future__ import annotations

import numpy as np

AIR, TABLE, SKIN, FAT, MUSCLE, VFAT = 0, 1, 2, 3, 4, 5
CORTICAL, CANCELLOUS, DISC, CANAL, LUNG, HEART_BLOOD, MYOCARDIUM = 6, 7, 8, 9, 10, 11, 12
LIVER, PORTAL_VEIN, HEPATIC_VEIN, IVC, AORTA, SPLEEN = 13, 14, 15, 16, 17, 18
KIDNEY_CORTEX, KIDNEY_MEDULLA, KIDNEY_PELVIS = 19, 20, 21
GI_WALL, GAS, GI_FLUID, FECES, GALLBLADDER, PANCREAS = 22, 23, 24, 25, 26, 27
CYST, ASCITES, CARTILAGE, PORTAL_SMALL, MESENTERIC_VEIN = 28, 29, 30, 31, 32
NECROSIS, CALCIFICATION, ORAL_CONTRAST = 33, 34, 35
#: focal fat or an arterial perfusion anomaly: liver that looks a bit like a lesion
LIVER_REGIONAL = 36
#: hepatic artery branches inside the liver (label liver) and visceral arteries outside it
HEPATIC_ARTERY, ARTERY, ADRENAL = 37, 38, 39
TUMOR0 = 40  #: tumor ``i`` body is ``TUMOR0 + 2 i``, its rim/capsule ``TUMOR0 + 2 i + 1``
MAX_TUMORS = 20
N_CODES = TUMOR0 + 2 * MAX_TUMORS

#: tissue code -> HCC-TACE-Seg class (0 other, 1 liver, 2 tumor mass, 3 portal vein, 4 aorta)
LABEL_OF_TISSUE = np.zeros(256, np.uint8)
LABEL_OF_TISSUE[[LIVER, HEPATIC_VEIN, CYST, PORTAL_SMALL, LIVER_REGIONAL, HEPATIC_ARTERY]] = 1
LABEL_OF_TISSUE[NECROSIS] = 2
LABEL_OF_TISSUE[TUMOR0:N_CODES] = 2
LABEL_OF_TISSUE[PORTAL_VEIN] = 3
LABEL_OF_TISSUE[AORTA] = 4
