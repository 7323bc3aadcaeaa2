"""Dock widgets for napari and the demo (all Qt code of the package lives here)."""
