"""``livertumor demo``: napari with the plugin's widgets docked and a sample CT loaded."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a screenshot of the window to PNG and quit (for docs and checks)",
    )
    parser.add_argument(
        "--widgets",
        default="all",
        help="comma-separated widgets to dock (load,segment,refine,inspect,export,train) or 'all'",
    )


def run(args) -> int:
    from .._widgets.demo import run_demo

    return run_demo(screenshot=args.screenshot, widgets=args.widgets)
