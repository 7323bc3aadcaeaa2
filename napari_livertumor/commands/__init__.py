"""One module per ``livertumor`` sub-command: ``add_arguments(parser)`` and ``run(args)``."""
