"""One module per ``livertumor`` sub-command: ``add_arguments(parser)`` and ``run(args)``."""


def models_folder(value: str) -> str:
    """``--models``: a folder holding ``liver/`` and ``tumor/``; ``default`` (when no folder of
    that name is here) names the models installed with the package, as ``train --init``."""
    from pathlib import Path

    if value == "default" and not Path(value).exists():
        from ..models import default_model_dir

        return str(default_model_dir("liver").parent)
    return value
