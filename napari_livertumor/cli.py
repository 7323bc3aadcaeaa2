"""The ``livertumor`` command line.

Each sub-command lives in ``napari_livertumor.commands.<name>`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them together, so
``livertumor --help`` stays fast (nothing heavy is imported until a command runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from .errors import Cancelled, LiverTumorError
from .signals import HeldStops, exit_status

#: name -> one-line help; the order is the order shown in ``--help``.
COMMANDS = {
    "segment": "segment liver and tumor in one or many CTs (DICOM folder or NIfTI)",
    "convert": "convert a DICOM CT series to NIfTI, geometry preserved (-o FOLDER: every "
    "patient, with its DICOM SEG, into a NIfTI dataset)",
    "synth": "generate a synthetic HCC-TACE-Seg-like cohort (CT, labels, clinical table)",
    "train": "train the liver and/or tumor model (with clinical weak supervision)",
    "evaluate": "run the two-stage pipeline on test patients and print the original's table",
    "ensemble": "combine model folders of one stage and recipe into one (mean of their logits)",
    "share-model": "copy a model folder to share: no patient IDs, per-patient figures or paths",
    "demo": "open napari with the plugin docked and a sample CT loaded",
}


class _IntermixedParser(argparse.ArgumentParser):
    """A command's parser that takes its options between its inputs too
    (``segment a.nii.gz -o out b.nii.gz``: argparse alone refused ``b.nii.gz``)."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        # parse_known_intermixed_args calls this twice itself; after "--" it lost the inputs
        # (Python 3.11: "the following arguments are required"), so "--" parses as before
        if self._inner or (args is not None and "--" in args):
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            # a stop is held over it: one landing before argparse has set the inputs aside
            # became "AttributeError: … 'save_nargs'" in argparse's own clean-up, a traceback
            with HeldStops():
                return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def version_text() -> str:
    """``livertumor 0.1.0 (commit …)`` and the libraries' versions: what a result's stats
    record under ``software`` (a bug report names the build that made it)."""
    from .provenance import software

    info = dict(software())
    version = info.pop("napari_livertumor")
    commit = info.pop("commit")
    first = f"livertumor {version}" + (f" (commit {commit})" if commit else "")
    libraries = ", ".join(
        f"{name} {found}" if found else f"{name} not installed" for name, found in info.items()
    )
    return f"{first}\n{libraries}"


class _VersionAction(argparse.Action):
    """``--version``: :func:`version_text`, read only when asked (git and the packages'
    metadata: torch is not imported)."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None
    ):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())  # (on stdout, as argparse's own version action)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livertumor",
        description="Liver and liver-tumor segmentation of abdominal CT (napari-livertumor).",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="show the version, its commit and the libraries' versions, and exit",
    )
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="more log output")
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="log warnings and errors only (a batch job's log: no line per step)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_IntermixedParser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _command_module(name).add_arguments(p)
    return parser


def _command_module(name: str):
    return importlib.import_module(f"napari_livertumor.commands.{name.replace('-', '_')}")


def _never_fail_printing() -> None:
    """Print what the console's encoding cannot show as escapes, never fail on it.

    On Windows, output sent to a file or a pipe (``> train.log``, a scheduler) is encoded in
    the ANSI code page: a patient folder named in Chinese or Greek made ``print`` raise
    ``UnicodeEncodeError`` and stopped training before it began.

    A Ctrl-C is held over the change: one landing inside ``reconfigure`` (which drops the
    stream's encoder, then builds the new one in Python code) left ``sys.stderr`` "not
    writable", so "livertumor: interrupted" could not be said and the tool exited 1."""
    with HeldStops():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, OSError):  # not a text stream we may change
                pass


#: the commands' arguments that name files or folders (their ``dest``)
PATH_OPTIONS = frozenset(
    {"cache_dir", "clinical", "config", "data", "init", "input", "inputs", "members", "meta",
     "models", "out", "out_dir", "outdir", "output", "refine_config", "screenshot", "split"}
)  # fmt: skip


def _expand_home(args) -> None:
    """``~/out`` given where no shell expands it (quoted, ``--outdir=~/out``, a script's list
    of arguments) is the home folder's, as the shell would have made it: it made a folder
    named ``~`` in the current one, and an input of ``~/data`` was "not found". A path that
    exists as written (a folder really named ``~``) is kept."""

    def expanded(value):
        if isinstance(value, (str, Path)) and str(value).startswith("~"):
            home = os.path.expanduser(value)
            if home != str(value) and not os.path.lexists(value):
                return type(value)(home)
        return value

    for name, value in vars(args).items():
        if name not in PATH_OPTIONS:  # (a series UID or a device is no path)
            continue
        if isinstance(value, list):
            setattr(args, name, [expanded(v) for v in value])
        else:
            setattr(args, name, expanded(value))


def _os_error_path(exc: OSError) -> str:
    """The path an OS error is about: the target of a failed replace, not its temp file."""
    target = getattr(exc, "filename2", None)
    return str(target if target else exc.filename or "")


def _empty_argument(argv: list[str], takes_value: set[str]) -> str | None:
    """Where an empty argument was given ("after --models", "-o=", or "" for one on its own),
    or None when every argument holds something. ``takes_value``: the options that take a
    value (an unknown ``--x=`` is left to argparse's "unrecognized arguments")."""
    for i, token in enumerate(argv):
        if token.count("=") == 1 and re.fullmatch(r"--[\w-]+=|-[A-Za-z]=", token):
            if token[:-1] in takes_value:
                return token
            continue
        if token.strip() == "":
            before = argv[i - 1] if i else ""
            return f"after {before}" if before in takes_value else ""
    return None


def _command_parser(parser, argv: list[str]):
    """The parser of the command ``argv`` names (its first word that is one), else ``parser``."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for token in argv:
                if token in action.choices:
                    return action.choices[token]
    return parser


def _option_strings(parser, *, taking_values: bool = False) -> set[str]:
    """Every option string of the tool and its commands (``taking_values``: those that take
    a value)."""
    import argparse

    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub, taking_values=taking_values)
        elif not taking_values or (action.option_strings and action.nargs != 0):
            found.update(action.option_strings)
    return found


def _warning_as_log_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning said as the CLI's log says its own (``WARNING: …``)."""
    logging.getLogger("livertumor").warning("%s", message)


def main(argv: list[str] | None = None) -> int:
    """Run the tool; a Ctrl-C or SIGTERM stop said in one line, at any point of the run."""
    previous = None
    hook = previous_hook = None
    try:
        # (in the try: a Ctrl-C while they are imported is said as any other; dis and
        # importlib.machinery are the Ctrl-C handler's, imported before it is in place: it runs
        # within imports, where one of them half imported failed it)
        import dis  # noqa: F401
        import importlib.machinery  # noqa: F401
        import signal
        import threading

        if (
            threading.current_thread() is threading.main_thread()
            # a Ctrl-C ignored from the start stays ignored, as Python leaves it: a shell
            # script's background job (`livertumor train … &`) is started so, to run on past
            # the script's Ctrl-C
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        ):
            with contextlib.suppress(ValueError, TypeError):
                previous = signal.signal(signal.SIGINT, _interrupt_outside_imports)
            previous_hook = sys.unraisablehook

            def hook(unraisable):
                if not _stop_raised_again(unraisable):
                    previous_hook(unraisable)

            sys.unraisablehook = hook
        import atexit

        atexit.unregister(_quick_teardown)  # (main called again in one process: once)
        atexit.register(_quick_teardown)
        status = _main(argv)
        if _deferred:  # the command ended within the stop's last 10 ms: a stop all the same
            raise _deferred[0]
        return status
    except KeyboardInterrupt as exc:
        # before the command ran: its modules (numpy, torch) are imported when the parser is
        # built, which takes a few tenths of a second; a Ctrl-C then printed a traceback
        if previous is not None:  # a second Ctrl-C while it stops: no traceback, 130 still
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _stopped(exc)
    finally:
        _cancel_deferred()
        if hook is not None and sys.unraisablehook is hook:
            sys.unraisablehook = previous_hook
        if previous is not None:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, previous)


#: a stop waiting to be raised (at most one), and SIGALRM's handler before it waited
_deferred: list[KeyboardInterrupt] = []
_alarm_before: list = []


def _interrupt_outside_imports(signum, frame) -> None:
    """Ctrl-C as Python's own handler raises it, except where a module's import may drop it:
    there it waits until the import is at a step that passes it on (a 10 ms timer looks), and
    a second Ctrl-C meanwhile is raised at once (an import that hangs can still be stopped).
    Where no timer is (Windows) it is raised at once.

    Raised anywhere in an import, the ``KeyboardInterrupt`` often reached no code that could
    take it, and the run went on to the end as if no Ctrl-C had come (exit 0: 4 of 40-50 starts
    stopped 0.5-1.5 s in, on a loaded 2-core machine; 0 of 160 since): in importlib's
    module-lock callback (a weakref's) Python printed it as "Exception ignored" and dropped it;
    in the start-up code Cython gives a compiled module (pandas': ``Sequence.register`` in a
    bare ``except: pass``) it was dropped without a word; in a class's ``__set_name__`` (a
    dataclass's fields) it became "RuntimeError: Error calling __set_name__", said as a bug
    (exit 1)."""
    import signal

    alarm = getattr(signal, "SIGALRM", None)
    if signum == alarm:
        if not _deferred:  # (cancelled)
            return
        if _may_be_dropped(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            return
        exc = _deferred[0]
        _cancel_deferred()
        # (a block that holds stops now, as training's step: given to it, as a Ctrl-C would be)
        handler = signal.getsignal(signal.SIGINT)
        if (
            type(exc) is KeyboardInterrupt
            and callable(handler)
            and handler is not _interrupt_outside_imports
        ):
            handler(signal.SIGINT, frame)
            return
        raise exc
    if _deferred:  # the second Ctrl-C
        exc = _deferred[0]
        _cancel_deferred()
        raise exc
    if alarm is not None and _may_be_dropped(frame):
        _defer(KeyboardInterrupt())
        return
    raise KeyboardInterrupt


def _may_be_dropped(frame) -> bool:
    """Whether an exception raised in ``frame`` may not reach :func:`main`: it runs in an
    import begun inside it, and between the two lies something other than the import machinery
    and modules' own code outside a ``try`` or ``with`` block (where a module handles errors of
    its own, a compiled module's start-up, a function or class the import runs, a callback)."""
    import importlib.machinery

    extension = importlib.machinery.ExtensionFileLoader
    compiled = (extension.create_module.__code__, extension.exec_module.__code__)
    doubtful = False  # something not known to pass an exception on, below this frame
    while frame is not None and frame.f_code is not main.__code__:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib"):
            if doubtful or code.co_name == "cb" or code in compiled:
                return True
        elif code.co_name != "<module>" or _in_try(frame):
            doubtful = True
        frame = frame.f_back
    return False


def _in_try(frame) -> bool:
    """Whether ``frame`` is within a ``try`` or ``with`` block (Python 3.10: taken as so)."""
    import dis

    entries = getattr(dis.Bytecode(frame.f_code), "exception_entries", None)
    return entries is None or any(e.start <= frame.f_lasti < e.end for e in entries)


def _defer(exc: KeyboardInterrupt) -> None:
    """Raise ``exc`` in 10 ms, or later where :func:`_may_be_dropped` says so."""
    import signal

    _deferred[:] = [exc.with_traceback(None)]
    if not _alarm_before:
        _alarm_before.append(signal.signal(signal.SIGALRM, _interrupt_outside_imports))
    signal.setitimer(signal.ITIMER_REAL, 0.01)


def _cancel_deferred() -> None:
    import signal

    if _alarm_before:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, _alarm_before.pop())
    _deferred.clear()


def _stop_raised_again(unraisable) -> bool:
    """``sys.unraisablehook`` for the run: a stop (Ctrl-C, SIGTERM) raised where Python cannot
    raise it (a ``__del__``, a weakref's or the garbage collector's callback) was printed as
    "Exception ignored in … KeyboardInterrupt" and dropped; it is raised again 10 ms later
    (True). Where no timer is (Windows), and for anything else, False: said as before."""
    import signal
    import threading

    exc_type = unraisable.exc_type
    if (
        exc_type is None
        or not issubclass(exc_type, KeyboardInterrupt)
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        return False
    if not _deferred:
        _defer(unraisable.exc_value or exc_type())
    return True


def _quick_teardown() -> None:
    """At the process's exit: what is alive then is left to the OS, not traversed again.

    Python's own teardown clears the 2400-3000 modules a segmentation loads (torch, MONAI,
    SciPy) and runs the garbage collector over all their objects as it goes: 0.7-1.0 s
    between a run's last line (or "livertumor: interrupted") and the shell's prompt on a
    loaded 2-core machine, 0.3-0.45 s with them frozen (4 runs each, 6 Dec 2026). Garbage
    made before is collected first, so what it held is finalized as before."""
    import gc

    # (a Ctrl-C now, the run's stop said or its work done, was printed as "Exception ignored in
    # atexit callback … KeyboardInterrupt": the process ends all the same)
    with contextlib.suppress(KeyboardInterrupt):
        gc.collect()
        gc.freeze()


def _stopped(exc: KeyboardInterrupt) -> int:
    """Say a stop (Ctrl-C, or SIGTERM as :class:`~.errors.Terminated`); its exit status."""
    stop = (
        f"stopped ({getattr(exc, 'signal_name', 'SIGTERM')})"
        if exit_status(exc) == 143
        else "interrupted"
    )
    print(f"livertumor: {stop}", file=sys.stderr)
    return exit_status(exc)


def _main(argv: list[str] | None) -> int:
    _never_fail_printing()
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    empty = _empty_argument(given, _option_strings(parser, taking_values=True))
    if empty is not None:  # "" is read as the current folder: a batch of whatever is there
        # said by the command's own parser ("livertumor segment: error: ..."), as its others
        _command_parser(parser, given).error(
            f"an empty argument{f' ({empty})' if empty else ''} (an unset shell variable, "
            'such as "$INPUT"?): give the path or value, or leave the option out'
        )
    dashed = next(
        (t for t in given[: given.index("--") if "--" in given else None]
         if t.startswith("-") and len(t) > 1 and os.path.lexists(t)
         and t.split("=", 1)[0] not in _option_strings(parser)),
        None,
    )  # fmt: skip
    if dashed is not None:  # argparse said only "the following arguments are required"
        _command_parser(parser, given).error(
            f"{dashed!r} is a file here, but starts with '-' and is read as an option: give it "
            f"as ./{dashed} (or after --)"
        )
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the command's own usage (the tool's named no option of it)
        command = getattr(args, "command", None)
        at = given.index(command) if command is not None and command in given else None
        if at is not None and not any(u in given[at + 1 :] for u in unknown):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # the tool's own
        hint = ""
        for flag in ("-v", "-q"):
            if {flag, "--verbose" if flag == "-v" else "--quiet"} & set(unknown):
                hint = f" ({flag} goes before the command: livertumor {flag} {command} …)"
                break
        # the unknown options alone: an input after one is kept with it by argparse, and was
        # named as unrecognized too ("--bogus b.nii.gz")
        shown = [u for u in unknown if u.startswith("-")] or unknown
        _command_parser(parser, given).error(f"unrecognized arguments: {' '.join(shown)}{hint}")
    _expand_home(args)
    # -q: a batch job's log holds what went wrong, not a line per step (the results printed
    # on stdout stay)
    quiet = bool(getattr(args, "quiet", False))
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s"
    )
    restore = []  # (main called again in one process, as a script or the tests do: as before)
    if quiet:
        for name in ("napari_livertumor", "livertumor"):
            logger = logging.getLogger(name)
            restore.append((logger, logger.level))
            logger.setLevel(logging.WARNING)
    # -v is for this tool's steps: other packages' debug lines stay out of it (a 640-slice
    # DICOM SEG gave 1400 of highdicom's, the decoder plugins' search 29)
    if args.verbose:  # (the commands log as "livertumor.<command>")
        for name in ("napari_livertumor", "livertumor"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    # highdicom tells each module it copies into a DICOM SEG at INFO; torch logs its compile
    # caches' statistics at exit ("FakeTensor cache stats") after a Ctrl-C's message
    for name in ("highdicom", "torch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # matplotlib (the previews) says its own cache's troubles where HOME or MPLCONFIGDIR cannot
    # be written (a cluster's node): "mkdir -p failed", "Matplotlib created a temporary cache
    # directory", "generated new fontManager": shown as this tool's WARNING lines, though it
    # works on with a temporary folder
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    # nibabel prints through a handler of its own and passed each line on to ours too (twice,
    # one as ERROR): a file it cannot read is said by this tool's reader, naming it; the header
    # fixes it makes on the way (sizeof_hdr, qfac) are shown with -v
    # pydicom says a thing about a file once per element it decodes: a misspelled character set
    # ("Unknown encoding 'ISO_IR100'") gave 97 identical lines for a 97-image series, 194 with
    # --dicom-seg; each distinct line is said once
    from .commands import OnceFilter

    pydicom_log = logging.getLogger("pydicom")
    for old in [f for f in pydicom_log.filters if isinstance(f, OnceFilter)]:
        pydicom_log.removeFilter(old)  # a new run (main called again in one process): anew
    pydicom_log.addFilter(OnceFilter())
    # pydicom also raises each of them as a Python warning (with a line of its source): the
    # logged line is the one said
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    if not args.verbose:
        # other libraries' Python warnings (highdicom's of a patient name, numpy's) as one
        # WARNING line like the tool's own, not with a line of their source code (-v keeps it)
        warnings.showwarning = _warning_as_log_line
    nibabel_log = logging.getLogger("nibabel.global")
    nibabel_log.propagate = False
    if not args.verbose:
        nibabel_log.setLevel(logging.CRITICAL)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run_command(args)
    finally:
        for logger, level in restore:
            logger.setLevel(level)


def _run_command(args) -> int:
    """Run the command ``args`` names; its errors said as the tool says them."""
    try:
        return int(_command_module(args.command).run(args) or 0)
    except Cancelled:
        print("livertumor: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt as exc:
        return _stopped(exc)
    except LiverTumorError as exc:
        print(f"livertumor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path the command cannot write or read: no traceback, the path
        path = _os_error_path(exc)
        where = f"{path}: " if path else ""
        hint = (
            " (is the file open in another program, such as a spreadsheet?)"
            if isinstance(exc, PermissionError)
            and getattr(exc, "filename2", None)
            and sys.platform == "win32"  # Windows locks a file another program has open
            else ""
        )
        print(
            f"livertumor {args.command}: error: {where}{exc.strerror or exc}{hint}",
            file=sys.stderr,
        )
        return 1
    except (MemoryError, RuntimeError) as exc:
        # (no bug: a scan or model too large for this machine or its ulimit -v; torch's
        # "[enforce fail at alloc_cpu.cpp:127] … can't allocate memory" was called one)
        from .memory import out_of_memory_text

        oom = out_of_memory_text(exc)
        if oom is None and not isinstance(exc, MemoryError):
            return _unexpected(args, exc)
        logging.getLogger("livertumor").debug("the traceback:", exc_info=exc)
        print(f"livertumor {args.command}: error: {oom or 'out of memory'}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: said in two lines, the traceback with -v
        return _unexpected(args, exc)


def _unexpected(args, exc: BaseException) -> int:
    """A bug: said in two lines, the traceback with -v."""
    logging.getLogger("livertumor").debug("the traceback:", exc_info=exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(
        f"livertumor {args.command}: unexpected error: {type(exc).__name__}"
        f"{f': {text}' if text else ''}\n"
        "this is a bug: please report it with the output of `livertumor --version` and the "
        "command run"
        + (
            " and the traceback above"
            if getattr(args, "verbose", False)
            else "; `livertumor -v ...` shows the traceback"
        ),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
