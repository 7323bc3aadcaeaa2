"""Dock widgets for napari (all Qt code of the package lives here and in ``_demo.py``)."""
