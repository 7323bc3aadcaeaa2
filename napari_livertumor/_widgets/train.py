"""Train widget: pick data (and clinical table), set the few knobs that matter, watch the loss
and validation Dice live, stop at any time; the model is offered in Segment when done."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..training.cli_report import ESTIMATING, StepClock, duration_text
from . import _layers, _registry
from ._common import (
    CHECKING_DEVICE,
    JobWidgetMixin,
    StatusLabel,
    follow_font_size,
    is_light_theme,
    path_text,
    read_dots,
    scroll_box,
    scroll_into_view,
    scroll_panel,
    set_status,
    warm_up_in_background,
)
from ._training_jobs import summarize_data, train_in_subprocess

if TYPE_CHECKING:
    import napari

START_SCRATCH = "a new model"
START_SHIPPED = "the shipped model (fine-tune)"
START_FOLDER = "a model folder (fine-tune)…"
START_CHOICES = (START_SCRATCH, START_SHIPPED, START_FOLDER)

#: Seconds between two redraws of the plot (drawing is the costly part on the GUI thread).
_PLOT_EVERY_S = 1.0
#: the plot's layout is worked out again at most this often during a run (and on resize)
_RELAYOUT_S = 15.0


#: Check data lines that tell what follows from the warning just above them
_CONSEQUENCES = ("The tumor stage will not start", "Training does not read")

#: lines of the Check data summary shown above the settings (all of them go to the log)
SUMMARY_LINES = 7

#: Check data lines that need the user's eye (after a problem's own "⚠" lines and the
#: patient count): a patient's rows that disagree, patients and rows that do not match, cell
#: values read as missing. The series each patient reads came first and pushed them out of
#: the box ("… 17 more line(s) in the log below")
_TABLE_PROBLEMS = (
    "Without a clinical row",
    "Rows of the table with no patient",
    "Rows of",
    "Missing columns",
    "Columns without a usable value",
)
#: ... and lines that only inform, shown last
_INFORMATIONAL = (
    "Table: column(s) read under",
    "Table: text columns kept",
    "Table: missing values",
)


def _summary_rank(line: str) -> int:
    """Where a Check data line (a block's first) goes in the summary box: problems first,
    then the patient and table counts, the table's problems, the other figures, what only
    informs."""
    if line.startswith("⚠"):
        return 0
    if "patient(s) with ground-truth labels" in line or line.startswith("Clinical table "):
        return 1  # (the table's counts: "0 of them with usable values" is a problem too)
    if (
        "⚠" in line
        or "left out" in line  # patients training will not read
        or "cannot" in line  # ("the tumor stage cannot use weak supervision")
        or line.startswith(_TABLE_PROBLEMS)
        or "treated as missing" in line
        or "unknown value" in line
    ):
        return 2
    if line.startswith(_INFORMATIONAL) or line.endswith(":") or "identical rows" in line:
        return 4  # (a heading of a list, such as the series each patient reads)
    return 3


#: recipe fields as this form names them, for the messages a refused setting gives
FORM_NAMES = {
    "roi_size": "Patch (z, y, x)",
    "hu_window": "HU window",
    "weak_lambda": "λ weak (clinical)",
    "steps_per_epoch": "steps per epoch",
    "epochs": "Epochs",
    "lr": "Learning rate",
}

#: what happens when the time budget (the command's --max-minutes) is reached, as the training
#: loop does it: the clock is read after each step, and the run then ends as at its last step
TIME_BUDGET_TIP = (
    "Stop training after this many minutes (no limit: train all the epochs). It counts the "
    "whole run's training and validation time, a resumed run's earlier parts included, not "
    "the start-up and the reading and preparing of the data before the first step (minutes; "
    "hours the first time on many patients). When it is reached, the step under way finishes "
    "and a last validation runs on top of it (it can take minutes past the budget, and counts "
    "as time trained when the run is resumed); the model kept "
    "is the best validated one (the final weights without validation patients), and the run's "
    "state is saved in last/: Start again with a budget above the minutes it has trained "
    "(Start's question says them) and Resume to train on. The "
    "learning rate decays over the budget, so it ends low."
)

#: what the form sets for a run, also when it resumes one (the rest is the run's own recipe)
_FORM_RUN_FIELDS = (
    "data", "out", "clinical", "device", "epochs", "steps_per_epoch", "max_minutes", "lr",
    "weak_lambda",
)  # fmt: skip


def _saved_config(stage_dir: Path) -> dict | None:
    """The whole training config a stopped run recorded in ``stage_dir/last/metadata.json``,
    or None; a run from before ``weak_anchor`` goes on with the form it trained with."""
    from ..training.loop import run_weak_anchor, saved_training_config

    config = saved_training_config(stage_dir)
    if config is not None and "weak_lambda" in config and "weak_anchor" not in config:
        config["weak_anchor"] = run_weak_anchor(stage_dir) or "patient"
    return config


def _minutes_text(minutes: float) -> str:
    """``1.7 min``, ``45 s``: a run's time trained, as the training's notes say it."""
    return f"{minutes:.1f} min" if minutes >= 1 else f"{minutes * 60:.2g} s"


class TrainWidget(JobWidgetMixin, QWidget):
    """Run :func:`napari_livertumor.training.train` for one stage in a worker."""

    STOPPING_TEXT = "Stopping…"
    #: what the status says while a stop ends an epoch's validation: a Stop there took 20-33 s
    #: (a whole validation) under a bare "Stopping…", where a step took 0.17 s
    STOPPING_VALIDATION_TEXT = "Stopping the validation (after the image block it is on; it is redone when the run resumes)…"
    CLOSED_TEXT = (
        "the panel was closed, so training was stopped after its current step; its latest "
        "state is in the output folder's last/ (open the panel, choose the same output folder "
        "and Start, then Resume, to go on)."
    )
    # (the stage and the start model first: they bring the patch, HU window and λ defaults)
    REMEMBERED_FIELDS = (
        "stage", "start_from", "init_folder", "data", "clinical", "out", "epochs", "steps",
        "time_budget", "lr", "hu_low", "hu_high", "patch", "weak_lambda", "device",
    )  # fmt: skip

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = _layers.unproxied(napari_viewer)
        self.history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_dice": []}
        self.reports: list[dict] = []
        self.model_folder: Path | None = None
        self._last_draw = 0.0
        self._draw_pending = False  # a draw the throttle put off is due (see _redraw)
        self._validating = False  # the run validates (its step reports stopped meanwhile)
        self._clock = StepClock()  # the time the run's steps have left (see _say_time_left)
        self._time_said = None

        self.data = QLineEdit()
        # (placeholders short enough for the panel's column; the whole hint in the tooltip)
        self.data.setPlaceholderText("dataset folder")
        self.data_browse = QPushButton("Browse…")
        self.clinical = QLineEdit()
        self.clinical.setPlaceholderText("optional: from the data")
        self.clinical_browse = QPushButton("Browse…")
        self.check_button = QPushButton("Check data")
        self.summary = StatusLabel()
        self.summary.setAccessibleName("Check data summary")  # (its row has no label)
        self.out = QLineEdit()
        self.out.setPlaceholderText("folder for the model")
        self.out_browse = QPushButton("Browse…")
        self.stage = QComboBox()
        self.stage.addItems(["liver", "tumor"])
        self.start_from = QComboBox()
        self.start_from.addItems(list(START_CHOICES))
        self.start_from.setToolTip(
            "Fine-tune an existing model on your data (its network, patch, grid and HU window "
            "are kept, so its weights fit), or train a new one from scratch"
        )
        self.init_folder = QLineEdit()
        self.init_folder.setAccessibleName("Fine-tune from (model folder)")  # (its row: no label)
        self.init_folder.setPlaceholderText("model folder to start from")
        self.init_browse = QPushButton("Browse…")
        self.epochs = _spin(1, 10_000, 10)
        self.steps = _spin(1, 100_000, 50)
        # the command's --max-minutes: whole minutes here, up to a week; 0 is no limit
        self.time_budget = _spin(0, 7 * 24 * 60, 0)
        self.time_budget.setSingleStep(5)
        self.time_budget.setSuffix(" min")
        self.time_budget.setSpecialValueText("no limit")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(2e-3)
        self.hu_low = _spin(-1500, 3000, -150)
        self.hu_high = _spin(-1500, 3000, 250)
        self.patch = QLineEdit("32, 128, 128")
        self.patch.setToolTip("Training patch size z, y, x (each divisible by 8)")
        self.weak_lambda = QDoubleSpinBox()
        self.weak_lambda.setRange(0.0, 100.0)
        self.weak_lambda.setSingleStep(0.1)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device_info = QLabel(CHECKING_DEVICE)
        self.device_info.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.figure, self.canvas, self.loss_ax, self.dice_ax = _make_plot()
        # the layout that fits the axis titles doubles a draw's cost: it is worked out again
        # only when the canvas is resized, restyled or reset, or after _RELAYOUT_S
        self._last_layout = 0.0
        self._laid_out_for = (False, False)  # (loss shown, validation shown) at the last layout
        self.canvas.mpl_connect("draw_event", self._layout_done)
        self.canvas.mpl_connect("resize_event", lambda _e: self._relayout())
        (self.loss_line,) = self.loss_ax.plot([], [], lw=1.2, ms=3, label="loss")
        (self.dice_line,) = self.dice_ax.plot([], [], "o-", lw=1.2, ms=3, label="validation Dice")
        self._empty_note = self.loss_ax.text(
            0.5, 0.5, "no training yet", transform=self.loss_ax.transAxes, ha="center",
            va="center", fontsize=8,
        )  # fmt: skip
        self._theme_plot()
        try:  # the plot follows the viewer's theme (it was dark on napari's light panels)
            self.viewer.events.theme.connect(self._theme_plot)
        except AttributeError:  # a viewer without theme events
            pass
        self.log = QPlainTextEdit()
        self.log.setAccessibleName("Training log")  # (a screen reader: no row label)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMinimumHeight(56)
        # new lines stay in view unless the user scrolled up to read (a resize of the panel
        # grew the scroll range under a log left where it was: the live lines were hidden)
        self._log_follows = True
        self.log.verticalScrollBar().actionTriggered.connect(self._log_scrolled)
        self.status = StatusLabel()
        for widget, tip in (
            (
                self.data,
                "Training data: imagesTr/ + labelsTr/ (NIfTI), or HCC-TACE-Seg patient "
                "folders (DICOM CT + DICOM SEG)",
            ),
            (
                self.clinical,
                "Clinical spreadsheet (XLSX/CSV) for the weak supervision; found in "
                "the data folder when left empty",
            ),
            (
                self.check_button,
                "Count the patients with labels and read the clinical columns, without training",
            ),
            (
                self.out,
                "Folder the model is written to (<output>/liver or <output>/tumor); a "
                "model already there is resumed or replaced only after asking",
            ),
            (self.stage, "Which model to train: liver (whole CT) or tumor (inside the liver)"),
            (
                self.start_from,
                "A new model, the shipped one (fine-tuning) or another model "
                "folder; a start model brings its own patch, grid and HU window",
            ),
            (self.init_folder, "The model folder to fine-tune"),
            (
                self.data,
                "The dataset folder: imagesTr/ + labelsTr/ (NIfTI, as convert writes), or "
                "HCC-TACE-Seg patient folders (DICOM CT + SEG)",
            ),
            (
                self.clinical,
                "The clinical table (XLSX or CSV) for the weak supervision; left empty, the "
                "one in the data folder is used",
            ),
            (self.out, "The folder the run writes its model folder (liver/ or tumor/) into"),
            (self.data_browse, "Choose the training data folder"),
            (self.clinical_browse, "Choose the clinical spreadsheet (XLSX or CSV)"),
            (self.out_browse, "Choose the folder the model is written to"),
            (self.init_browse, "Choose the model folder to fine-tune"),
            (self.epochs, "Epochs: validation and the best-model checkpoint after each"),
            (self.steps, "Training steps (batches of patches) per epoch"),
            (self.time_budget, TIME_BUDGET_TIP),
            (self.lr, "Peak learning rate (warm-up, then cosine decay)"),
            (self.hu_low, "Lower end of the HU window the CT is scaled with"),
            (self.hu_high, "Upper end of the HU window the CT is scaled with"),
            (
                self.weak_lambda,
                "Weight of the clinical weak-supervision term (tumor stage; 0 turns it off)",
            ),
            (self.device, "auto: the GPU when there is one"),
            (
                self.start_button,
                "Start training in a separate process; the button then stops it "
                "(the last weights are kept)",
            ),
        ):
            widget.setToolTip(tip)

        form = QFormLayout()
        form.addRow("Data", _row(self.data, self.data_browse))
        form.addRow("Clinical", _row(self.clinical, self.clinical_browse))
        form.addRow("", self.check_button)
        # the summary scrolls in a box of its own: a long one must not squeeze the settings
        self.summary_box = scroll_box(self.summary, 130)
        form.addRow("", self.summary_box)
        form.addRow("Output", _row(self.out, self.out_browse))
        form.addRow("Stage", self.stage)
        form.addRow("Start from", self.start_from)
        form.addRow("", _row(self.init_folder, self.init_browse))
        form.addRow("Epochs × steps", _row(self.epochs, self.steps))
        form.addRow("Time budget", self.time_budget)
        # pairs named one by one, not "(1)" and "(2)" (a screen reader reads these)
        for box, name in (
            (self.epochs, "Epochs"),
            (self.steps, "Steps per epoch"),
            (self.hu_low, "HU window low"),
            (self.hu_high, "HU window high"),
        ):
            box.setAccessibleName(name)
        form.addRow("Learning rate", self.lr)
        form.addRow("HU window", _row(self.hu_low, self.hu_high))
        form.addRow("Patch (z, y, x)", self.patch)
        form.addRow("λ weak (clinical)", self.weak_lambda)
        form.addRow("Device", self.device)
        form.addRow("", self.device_info)
        # the whole panel scrolls when its dock is short, as the other panels do (its form
        # alone scrolling left it 347 px tall at least: six panels stacked needed 793 px, more
        # than a 768-px laptop screen, and its neighbours were squashed to one row)
        layout = scroll_panel(self)
        layout.addLayout(form)
        layout.addWidget(self.start_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.canvas, 2)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        # "0.001" and "0,001" are both 0.001 whatever the desktop's locale, shown "0.00100"
        read_dots(self)

        self.data_browse.clicked.connect(self._browse_data)
        self.clinical_browse.clicked.connect(self._browse_clinical)
        self.out_browse.clicked.connect(self._browse_out)
        self.check_button.clicked.connect(self._check_clicked)
        # Enter in the data field checks it (as the button beside it), unless a job runs
        self.data.returnPressed.connect(self._data_entered)
        # another folder typed while a check reads the last one: that check gives way (its
        # summary, shown under the new path, described the other folder)
        self.data.textChanged.connect(self._data_changed)
        # so are another clinical table, stage or weak term (on or off): the summary told what
        # the run would use (which patients have rows, whether the tumor stage starts)
        self.clinical.textChanged.connect(self._data_changed)
        self.stage.currentTextChanged.connect(self._data_changed)
        # (typed "0.7" passes through 0: only the value the user ends on counts)
        self.weak_lambda.setKeyboardTracking(False)
        self.weak_lambda.valueChanged.connect(self._data_changed)
        self.start_button.clicked.connect(self._start_clicked)
        self.stage.currentTextChanged.connect(self._stage_changed)
        self.start_from.currentTextChanged.connect(lambda _: self._stage_changed())
        self.init_browse.clicked.connect(self._browse_init)
        self.init_folder.editingFinished.connect(self._stage_changed)
        self.init_jobs(napari_viewer)
        follow_font_size(self, also=self._theme_plot)  # (the plot's text sizes too)
        warm_up_in_background(self.device_info, "napari_livertumor.training.loop", "scipy.ndimage")
        self._stage_changed(self.stage.currentText())
        self.restore_closed()  # a Train panel closed in this viewer: its set-up, its run

    def _check_inputs(self) -> tuple:
        """What a check's summary depends on: the folder, the clinical table, the stage and
        whether the weak term is on (its weight itself changes nothing shown)."""
        return (
            path_text(self.data),
            path_text(self.clinical),
            self.stage.currentText(),
            self.weak_lambda.value() > 0,
        )

    def _data_changed(self, *_) -> None:
        """The data folder, clinical table, stage or weak term changed: a check under way or
        a summary shown was of the settings before."""
        checked = getattr(self, "_checked_inputs", None)
        now = self._check_inputs()
        if checked is None or now == checked:
            return
        names = ("data folder", "clinical table", "stage", "weak term (λ on or off)")
        changed = [name for name, a, b in zip(names, checked, now, strict=True) if a != b]
        what = " and ".join(changed) if changed else "settings"
        job = self.jobs.get(self.check_button)
        if job is not None and job.running:
            self.drop_job(self.check_button)
            set_status(self.status, f"The {what} changed: Check data again for it.")
        elif not self.summary_box.isHidden():  # the summary shown is of other settings
            set_status(self.status, f"The {what} changed since Check data: check again.")
        if not self.summary_box.isHidden():
            self.summary.setText("")
            self.summary_box.setVisible(False)
        self._checked_inputs = None

    # ------------------------------------------------------------------ user actions
    def check_data(self) -> None:
        """Summarise the data folder (patients, labels, clinical columns) in a worker."""
        data, clinical = path_text(self.data), path_text(self.clinical) or None
        weak_lambda = self.weak_lambda.value()
        # the stage too: a liver run has no weak term, whatever λ reads (it was checked as a
        # tumor run's table, "will not start" said of a table the liver never reads)
        stage = self.stage.currentText()
        config = None  # the tumor run's: its recipe's clinical columns and its split counted
        if stage == "tumor":
            try:
                config = self.build_config()
            except Exception:  # noqa: BLE001 - an output folder not chosen yet: the defaults
                config = None
        if not data:
            set_status(self.status, "Choose a training data folder first.", error=True)
            return
        self.drop_job(self.check_button)  # a check under way (of another folder) gives way
        self._checked_inputs = self._check_inputs()
        # the summary shown is of the folder checked before: gone, whatever this check finds
        self.summary.setText("")
        self.summary_box.setVisible(False)
        self.run_job(
            lambda progress, should_cancel: summarize_data(
                data,
                clinical,
                progress,
                should_cancel,
                weak_lambda=weak_lambda,
                config=config,
                stage=stage,
            ),
            lambda lines: self._show_summary(lines, folder=data),
            button=self.check_button,
            description="checking data",
            busy_text="Reading the data folder…",
            on_finished=lambda status: self._check_failed(data) if status == "failed" else None,
        )

    def _check_failed(self, folder: str) -> None:
        """A check that failed is in the log too (the log kept the folder checked before's
        summary as the last word, as if it were this folder's), and in the summary's box
        under the button, where a check's result shows: the panel scrolled down to its
        status line at the bottom, the folder's field and the button out of view."""
        try:
            said = self.status.text()
            self._log(f"Check data of {folder}: failed: {said}")
            set_status(self.summary, f"Check data failed: {said}", error=True, scroll=False)
            self.summary.setToolTip(f"Check of {folder}")
            self.summary_box.setVisible(True)
            scroll_into_view(
                self.data
            )  # the field, the button and this box (after the status scroll)
        except RuntimeError:  # the panel was closed
            pass

    def start(self) -> None:
        """Start training with the current settings (the button then reads Stop).

        A model (or a stopped run) already in the output folder is never replaced silently:
        the user chooses to resume it, replace it, or start nothing.
        """
        import dataclasses

        try:
            config = self.build_config()
        except Exception as exc:
            set_status(self.status, str(exc), error=True)
            return
        stage_dir = Path(config.stage_dir)
        data = Path(config.data)
        if not data.is_dir():  # said before any question about the output folder
            set_status(
                self.status,
                f"{data}: training data folder not found"
                if not data.exists()
                else f"{data} is a file; the training data is a folder",
                error=True,
            )
            return
        try:  # before asking to replace what is there: it may be the start model itself
            from ..training.loop import RunLock, check_output_folder, check_writable_outputs

            check_output_folder(config)
            # another run writing there (another panel, a command line): said now, not after
            # the question about its model and the start of a process that then failed
            RunLock.check_free(stage_dir)
            # a file as the Output, a read-only folder: the command's refusal, in its words, not
            # the training process's a minute later (once it had imported PyTorch)
            check_writable_outputs(config)
        except Exception as exc:
            set_status(self.status, str(exc), error=True)
            return
        from ..training.loop import replacing_cut, resumable

        # (a run killed while it swapped or first wrote last/ is resumed too; a Replace killed
        # in its first save beside the replaced run's state alone is asked about: it went on to
        # a refusal that said to Replace, which was never offered)
        can_resume = resumable(stage_dir)
        if can_resume or (stage_dir / "model.safetensors").is_file() or replacing_cut(stage_dir):
            choice = self.ask_existing_run(stage_dir, can_resume)
            if choice == "cancel":
                set_status(self.status, f"Nothing started; {stage_dir} is as it was.")
                return
            config = dataclasses.replace(
                config, resume=choice == "resume", overwrite=choice == "replace"
            )
            if choice == "resume":  # the run's own network, patch, spacing and HU window
                config = self._with_run_recipe(config, stage_dir)
                self._show_recipe(config)
        self._reset_plot("resuming the run…" if config.resume else "starting…")
        self.reports = []
        self._clock = StepClock()  # the time this run's steps have left
        self._time_said = None  # what the status line last said of it
        self.progress_bar.setToolTip("")
        self._running_config = config
        self._started_wall = time.time()
        self.model_folder = None
        self._log(f"Training the {config.stage} model on {config.data} → {config.stage_dir}")
        self.run_job(
            lambda progress, should_cancel: train_in_subprocess(config, should_cancel),
            None,
            button=self.start_button,
            description=f"train {config.stage}",
            busy_text=f"Training the {config.stage} model…",
            generator=True,
            on_yielded=self._on_report,
            on_finished=lambda status: self._finished(status, config),
            # no bar in napari's activity dock: the panel shows the run's progress itself, and
            # while a napari bar is open the status bar's spinner redraws the whole window
            # about 30 times a second, which with software OpenGL (no GPU, a remote desktop)
            # took half a core from the training process: 0.5 s a step instead of 0.24
            napari_progress=False,
        )
        self.start_button.setText("Stop")

    def cancel_if_running(self, button) -> bool:
        stopped = super().cancel_if_running(button)
        if stopped and button is self.start_button:
            self._say_stopping_validation()
        return stopped

    def closed_text(self) -> str:
        """Closed before its first step (preparing the data), the run left no last/ to resume:
        "its latest state is in last/" promised one."""
        config = getattr(self, "_running_config", None)
        if config is None or any(r.get("event") == "step" for r in self.reports):
            return self.CLOSED_TEXT
        last = Path(config.stage_dir) / "last" / "train_state.pt"
        try:  # a first step may still have run after the close: its state is then there
            # (file times come from the kernel's coarse clock, a few ms behind time.time():
            # a state saved just after the start read as older than it)
            if last.stat().st_mtime >= self._started_wall - 0.5:
                return self.CLOSED_TEXT
        except OSError:
            pass
        cache = Path(config.cache_dir) if config.cache_dir else Path(config.out) / ".cache"
        return (
            "the panel was closed before training began (while the data were prepared), so "
            "it was stopped; nothing was trained"
            + (
                f", and {Path(config.stage_dir) / 'last'} is the earlier run's, as it was"
                if config.resume
                else ""
            )
            + f" (the patients prepared so far are kept in {cache} for the next start)."
        )

    def _with_run_recipe(self, config, stage_dir: Path):
        """``config`` as the stopped run in ``stage_dir`` was set up: its whole recipe (batch,
        losses, augmentation, network, patch, grid...), with only what this form sets for a
        run (data, output, clinical table, device, epochs, steps, learning rate, λ) taken from
        the form. Only the network, patch, grid and HU window were taken over: a run made with
        a recipe file went on with the form's defaults for the rest (batch 1 → 2, focal γ 3 →
        2, rotation 0 → 10°...) without a word."""
        import dataclasses

        from ..training.config import TrainConfig
        from ..training.loop import apply_recipe, recipe_differences, saved_recipe

        full = _saved_config(stage_dir)
        if full is not None:
            from ..training.config import RUN_KEYS

            # a run's time budget and split file are this session's, not the stopped run's
            # (a --max-minutes cap carried over trained nothing); its split (folds, fold), start
            # model, cache folder and loader workers stay its own (a cache of hours of
            # preprocessing is not made again elsewhere)
            kept = {"folds", "fold", "init_from", "resume", "overwrite", "stage", "cache_dir",
                    "num_workers"}  # fmt: skip
            mine = RUN_KEYS - kept
            form = {k: getattr(config, k) for k in sorted(mine | set(_FORM_RUN_FIELDS))}
            try:
                resumed = TrainConfig.from_dict(full)
                resumed = dataclasses.replace(resumed, **form, resume=True, overwrite=False)
            except Exception as exc:  # noqa: BLE001 - an earlier version's record: as before
                self._log(f"The run's recorded settings could not be used ({exc}); its "
                          "network, patch, grid and HU window are.")  # fmt: skip
            else:
                saved = saved_recipe(stage_dir) or {}
                differ = recipe_differences(config, saved) if saved else []
                changed = [
                    f"{FORM_NAMES.get(k, k)}: run {full[k]}, now {form[k]}"
                    for k in ("lr", "weak_lambda")
                    if k in full and full[k] != form[k]
                ]
                self._log(
                    "Resuming with the run's own recipe"
                    + (", not the fields: " + "; ".join(differ) if differ else "")
                    + (" (from the form: " + "; ".join(changed) + ")" if changed else "")
                )
                return resumed
        saved = saved_recipe(stage_dir)
        if not saved:
            return config
        differ = recipe_differences(config, saved)
        if differ:
            self._log("Resuming with the run's own recipe, not the fields: " + "; ".join(differ))
        return apply_recipe(config, saved)

    def _show_recipe(self, config) -> None:
        """The fields show the recipe a resumed run goes on with (not what was typed)."""
        self.patch.setText(", ".join(str(int(v)) for v in config.roi_size))
        self.hu_low.setValue(int(config.hu_window[0]))
        self.hu_high.setValue(int(config.hu_window[1]))

    def ask_existing_run(self, stage_dir: Path, can_resume: bool) -> str:
        """``"resume"``, ``"replace"`` or ``"cancel"`` for a run already in ``stage_dir``
        (tests replace this)."""
        from ..training.loop import first_save_cut, replacing_cut

        box = QMessageBox(self)
        box.setIcon(QMessageBox.Question)
        has_model = (stage_dir / "model.safetensors").is_file()
        box.setWindowTitle("A model is already there" if has_model else "A run is already there")
        # a run killed while it wrote its first last/: no state of its steps was kept, and a
        # resume starts it again from step 0 (the dialog said it went on where it stopped)
        cut = can_resume and first_save_cut(stage_dir)
        if cut:
            held = (f"a {stage_dir.name} model and " if has_model else "") + (
                "a run stopped while it saved its first checkpoint (no state to go on from)"
            )
        elif has_model:
            held = f"a {stage_dir.name} model" + (
                " and the state of a stopped or finished run" if can_resume else ""
            )
        elif replacing_cut(stage_dir):  # (nothing of it to resume)
            held = (
                "a Replace stopped while it saved its first checkpoint, beside the state of the "
                "run it replaced"
            )
        else:  # a run stopped before its first checkpoint: its state only
            held = "the state of a stopped run (no model saved yet)" if can_resume else "files"
        box.setText(f"{stage_dir} already holds {held}.")
        box.setInformativeText(
            "Resume starts that run again from step 0 (same data split and recipe, up to the "
            "epochs set here); Replace trains a new model over it."
            if cut
            else "Resume continues that run where it stopped (same recipe, up to the epochs "
            "set here); Replace trains a new model over it."
            if can_resume
            else "Replace trains a new model over it."
        )
        if can_resume and not cut:  # (a cut run starts again: nothing of it is counted)
            box.setInformativeText(box.informativeText() + self._resume_budget_text(stage_dir))
        resume = box.addButton("Resume", QMessageBox.AcceptRole) if can_resume else None
        replace = box.addButton("Replace", QMessageBox.DestructiveRole)
        cancel = box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(resume or cancel)
        box.exec_()
        clicked = box.clickedButton()
        if resume is not None and clicked is resume:
            return "resume"
        return "replace" if clicked is replace else "cancel"

    def _resume_budget_text(self, stage_dir: Path) -> str:
        """`` It has trained 1.7 min; the Time budget set here (1 min, the whole run's) leaves
        nothing: raise it to train on.`` (or what it leaves): a Resume under a budget the run
        had spent prepared the data for half a minute, then trained nothing. Empty where the
        run records no time."""
        from ..training.loop import saved_run_minutes

        trained = saved_run_minutes(stage_dir)
        if trained is None:
            return ""
        text = f" It has trained {_minutes_text(trained)}"
        budget = self.time_budget.value()
        if not budget:  # (no limit)
            return text + "."
        said = f"the Time budget set here ({budget:g} min, the whole run's)"
        if trained >= budget:
            return text + f"; {said} leaves nothing: raise it to train on."
        return text + f"; {said} leaves {_minutes_text(budget - trained)} of training."

    def build_config(self):
        """The :class:`~napari_livertumor.training.TrainConfig` the controls describe."""
        from ..training import make_config
        from ..training.config import recipe_from_model

        data = path_text(self.data)
        out = path_text(self.out)
        if not data:
            raise ValueError("Choose a training data folder first.")
        if not out:
            raise ValueError("Choose an output folder for the model.")
        try:
            patch = tuple(int(v) for v in self.patch.text().replace("×", ",").split(","))
        except ValueError:
            patch = ()
        if len(patch) != 3:
            raise ValueError(
                f"Patch size must be three integers z, y, x; got '{self.patch.text()}'"
            )
        stage = self.stage.currentText()
        common = dict(
            data=data,
            out=out,
            # the weak term is the tumor stage's: the liver never reads the table
            clinical=(path_text(self.clinical) or None) if stage == "tumor" else None,
            epochs=self.epochs.value(),
            steps_per_epoch=self.steps.value(),
            max_minutes=self.time_budget.value() or None,  # (0: no limit)
            lr=self.lr.value(),
            weak_lambda=self.weak_lambda.value() if stage == "tumor" else 0.0,
            device=self.device.currentText(),
        )
        init = self.init_model_folder()
        if init is not None:
            # the model's own recipe: network, patch, grid and HU window must fit its weights
            recipe = recipe_from_model(init, stage)
            return make_config(stage, recipe, init_from=str(init), **common)
        from ..errors import SettingsError

        try:
            return make_config(
                stage,
                None,
                hu_window=(float(self.hu_low.value()), float(self.hu_high.value())),
                roi_size=patch,
                **common,
            )
        except SettingsError as exc:  # said in the words of this form's fields
            text = str(exc)
            for field, label in FORM_NAMES.items():
                text = re.sub(rf"\b{field}\b", label, text)
            raise ValueError(text) from exc

    def init_model_folder(self) -> Path | None:
        """The model folder fine-tuning starts from, or ``None`` for a new model."""
        from ..models import default_model_dir

        choice = self.start_from.currentText()
        if choice == START_SHIPPED:
            return default_model_dir(self.stage.currentText())
        if choice == START_FOLDER:
            text = path_text(self.init_folder)
            if not text:
                raise ValueError("Choose the model folder to start from.")
            from ..models.checkpoint import stage_model_folder

            # a run's folder (liver/, tumor/): its stage's model, as train --init takes it
            return stage_model_folder(text, self.stage.currentText()).absolute()
        return None

    # ------------------------------------------------------------------ reports
    def _on_report(self, report: dict) -> None:
        self.reports.append(report)
        event = report.get("event")
        if event == "info":
            weak = report.get("weak", {})
            test = report.get("n_test")
            self._log(
                f"{report['n_train']} training / {report['n_val']} validation patients"
                + (f" / {test} held out for testing (split.json)" if test else "")
                + f" ({report['n_skipped']} skipped) on {report['device']}; weak supervision "
                + (
                    # which table (one found in the data folder was not named anywhere)
                    "on" + (f" ({Path(weak['clinical']).name})" if weak.get("clinical") else "")
                    if weak.get("enabled")
                    else f"off ({weak.get('reason', 'λ = 0')})"
                )
            )
            for item in report.get("skipped") or []:  # named, with the reason
                self._log(f"  left out: {': '.join(item)}")
            if weak.get("enabled"):
                self._log(
                    f"  weak labels for {weak.get('n_weak_labels', 0)} training patients"
                    + (
                        f"; {weak['n_without_clinical']} without a usable clinical row (no "
                        "row, or no value in the columns used)"
                        if weak.get("n_without_clinical")
                        else ""
                    )
                )
            for line in weak.get("report") or []:
                self._log(f"  clinical: {line}")
        elif event == "prepare":  # before the first step, which can be many minutes away
            done, total = report["done"], report["total"]
            index = report["phase"] == "index"
            if done == 0:
                self._log(
                    f"reading {total} patient folders"
                    if index
                    else f"preparing {total} training/validation patients (read once, then cached)"
                )
            self.progress_bar.setMaximum(max(total, 1))
            self.progress_bar.setValue(done)
            case = f" ({report['case']})" if report.get("case") else ""
            # the patient named is the one being prepared: counted from 1 (as the command line
            # counts it), while the bar fills with those done
            self.progress_bar.setFormat(
                "reading patient folders %v / %m"
                if index
                else f"preparing patient {min(done + 1, total)} / {total}{case}"
            )
        elif event == "step":
            self.history["step"].append(report["step"])
            self.history["loss"].append(report["losses"]["total"])
            self.progress_bar.setMaximum(report["total_steps"])
            self.progress_bar.setValue(report["step"])
            self._validating = bool(report.get("validates_next"))
            self._clock.add(report)
            self.progress_bar.setFormat(
                f"step %v / %m  loss {report['losses']['total']:.3f}  "
                # (the seconds per step, what the time left is of: the status line and the
                # bar's tooltip; the bar is as wide as the panel)
                + ("validating…" if self._validating else self._clock.text(report, False))
            )
            self._say_time_left(report)
            self._redraw()
            if self._validating:
                self._say_stopping_validation()
        elif event == "validating":  # one no step report announced (the time budget ran out
            # before a step): the bar says it, as after a step that announces one
            self._validating = True
            self.progress_bar.setMaximum(max(report["total_steps"], 1))
            self.progress_bar.setValue(report["step"])
            self.progress_bar.setFormat("step %v / %m  validating…")
            self._say_stopping_validation()
        elif event == "epoch":
            from ..training.cli_report import epoch_said  # (from 1, as the command line's)

            self._validating = False
            self._clock.add(report)  # (its validation's time: the time left counts the rest)
            dice = report.get("val_dice")
            if dice is not None:
                self.history["val_step"].append(report["step"])
                self.history["val_dice"].append(dice)
            loss = report.get("train_loss")
            self._log(
                f"epoch {epoch_said(report.get('epoch'))}: loss "
                + (f"{loss:.4f}" if loss is not None else "–")
                + (f", validation Dice {dice:.3f}" if dice is not None else "")
                + (
                    ""
                    if not report.get("saved_best")
                    else " (best so far, saved)"
                    if dice is not None
                    else " (not measured: saved as the latest weights)"
                )
                + (" (redone: the stop interrupted it)" if report.get("resumed_validation") else "")
            )
            self._redraw(force=True)
        elif event == "resumed":  # the plot goes on from the run so far (per-epoch means)
            h = self.history
            for epoch in report.get("history") or []:
                if epoch.get("step") is None:
                    continue
                if epoch.get("train_loss") is not None:
                    h["step"].append(epoch["step"])
                    h["loss"].append(epoch["train_loss"])
                if epoch.get("val_score") is not None:
                    h["val_step"].append(epoch["step"])
                    h["val_dice"].append(epoch["val_score"])
            self._log(
                f"resumed at step {report['step']} of {report['total_steps']}"
                + (
                    "; the plot shows the steps before it as each epoch's mean loss"
                    if h["step"]
                    else ""
                )  # fmt: skip
            )
            self._redraw(force=True)
            self._validating = bool(report.get("val_pending"))  # redone before any step
            if self._validating:
                self._log("redoing the validation the stop interrupted")
                self._say_stopping_validation()
        elif event == "log":  # a warning the training process logged
            self._log(f"warning: {report['text']}")
        elif event == "note":
            self._log(report["text"])
            set_status(self.status, report["text"], warning=True)
        elif event == "done":
            self._validating = False
            kept = self._kept_text(report)
            budget = self._budget_ended(report)
            self._log(
                f"done: step {report['step']}"
                + (f" of {report['planned_steps']} ({budget})" if budget else "")
                + f"; model in {report['model']}"
                + (f"; model kept: {kept}" if kept else "")
            )
        elif event == "cancelled":
            self._validating = False
            self._log(
                f"cancelled at step {report['step']}; last weights in {report['last']}"
                if report.get("last")
                else "cancelled before the first step; nothing saved"
            )

    def _budget_ended(self, done: dict) -> str | None:
        """The words "the time budget, 30 min, ended it" where the run's time budget stopped it
        short of its planned steps (the loop's one way to end a run early but a Stop), or None."""
        config = getattr(self, "_running_config", None)
        planned = done.get("planned_steps")
        if config is None or not config.max_minutes or planned is None:
            return None
        if done.get("step", planned) >= planned:
            return None
        return f"the time budget, {config.max_minutes:g} min, ended it"

    @staticmethod
    def _kept_text(done: dict) -> str | None:
        """Which step's weights the run's model is (as the command line and train.log say it)."""
        from ..training.loop import kept_model_text

        kept = done.get("kept")
        return kept_model_text(kept) if kept else None

    def _say_time_left(self, report: dict) -> None:
        """The status line (and the bar's tooltip) says what the bar's time left is of: this
        stage's steps at so many seconds a step and its validations still to come at so many
        seconds each (not counted before one is timed), or the time budget's end (the step it
        ends near not said while a validation before it is untimed); not over a note or
        "Stopping…"."""
        config = getattr(self, "_running_config", None)
        stage = report.get("stage") or (config.stage if config is not None else "")
        step, total = report["step"], report["total_steps"]
        left = self._clock.left(report)
        per_val = self._clock.per_validation()
        if left is None:
            text = f"Training the {stage} model: {ESTIMATING}"
        elif left.reached and step < total:
            text = (
                f"Training the {stage} model: its time budget is reached at step {step} of {total}"
                + (
                    f"; its last validation comes next (about {duration_text(left.seconds)})."
                    if left.validations and left.counted
                    else "; its last validation comes next."
                    if left.validations
                    else "."
                )
            )
        elif step >= total:
            text = f"Training the {stage} model: its {total} steps are done" + (
                f"; its last validation takes about {duration_text(left.seconds)}."
                if left.validations and left.counted
                else "; its last validation comes next."
                if left.validations
                else "."
            )
        elif left.ends_near is not None and left.ends_near <= step:  # (a forecast)
            text = (
                f"Training the {stage} model: its time budget likely ends it after the "
                f"validation that comes next (about {duration_text(left.seconds)}), at step "
                f"{step} of {total}."
            )
        elif left.ends_near is not None:
            timed = f"{self._clock.per_step():.2f} s/step" + (
                f", {duration_text(per_val)} a validation" if left.counted and per_val else ""
            )
            text = (
                f"Training the {stage} model: its time budget ends it in about "
                f"{duration_text(left.seconds)}, near step {left.ends_near} of {total} (at "
                f"{timed})"
                + (
                    "."
                    if left.validations == 0
                    else "; its last validation included."
                    if left.counted
                    else "; its last validation comes on top."
                )
            )
        elif left.budget_ends:  # (a validation not yet timed comes before its end)
            every = report.get("val_every_steps")
            text = (
                f"Training the {stage} model: its time budget ends it in about "
                f"{duration_text(left.seconds)} (at {self._clock.per_step():.2f} s/step); its "
                f"validations (after every {every} steps) take from the budget too and are not "
                "yet timed, so the step it ends near is said once the first has run; its last "
                "validation comes on top."
            )
        else:
            text = (
                f"Training the {stage} model: about {duration_text(left.seconds)} left for its "
                f"{total - step} step(s) to go, at {self._clock.per_step():.2f} s/step"
            )
            if left.validations is None:
                text += "; validations come on top."
            elif left.validations == 0:
                text += "."
            elif left.counted:
                text += (
                    f", and its last validation, of about {duration_text(per_val)}."
                    if left.validations == 1
                    else f", and its {left.validations} validations, at "
                    f"{duration_text(per_val)} each."
                )
            else:
                text += (
                    f"; its {left.validations} validation(s) come on top (timed once the first "
                    "has run)."
                )
        self.progress_bar.setToolTip(text)  # (also while a note holds the status line)
        if self.status.text() in (f"Training the {stage} model…", self._time_said):
            self._time_said = text
            set_status(self.status, text, scroll=False)

    def _say_stopping_validation(self) -> None:
        """The status of a Stop asked for while (or just before) the run validates."""
        job = self.jobs.get(self.start_button)
        if self._validating and job is not None and job.running and job.cancel_requested:
            set_status(self.status, self.STOPPING_VALIDATION_TEXT)

    def _finished(self, status: str, config) -> None:
        self._validating = False
        if not self.history["step"]:  # ended before a step: not "starting…" for good
            self._empty_note.set_text("no training yet")
        self._redraw(force=True)
        stage_dir = Path(config.stage_dir)
        # a Replace stopped before it saved a model leaves the earlier run's there: not
        # offered to Segment as this run's
        resumed = next((r for r in self.reports if r.get("event") == "resumed"), None)
        earlier_kept = (
            # a Replace, or a resume of a run that never saved a best model (a stopped Replace
            # resumed): the model there is an earlier run's until this one saves its own
            (config.overwrite or (resumed is not None and resumed.get("has_best") is False))
            and status != "done"
            and not any(r.get("event") == "epoch" and r.get("saved_best") for r in self.reports)
        )
        if (stage_dir / "metadata.json").is_file() and not earlier_kept:
            self.model_folder = stage_dir
            _registry.remember_model_folder(config.out)
        trained = any(r.get("event") == "step" for r in self.reports)
        notes = [r["text"] for r in self.reports if r.get("event") == "note"]
        if status == "done" and not trained and notes:
            # nothing trained (a finished run resumed with the same Epochs): its note stays,
            # not "Finished" over it
            set_status(self.status, notes[-1], warning=True)
        elif status == "done" and self.model_folder is not None:
            done = next((r for r in reversed(self.reports) if r.get("event") == "done"), {})
            kept = self._kept_text(done)
            budget = self._budget_ended(done)
            set_status(
                self.status,
                (
                    f"Finished at its time budget ({config.max_minutes:g} min), at step "
                    f"{done['step']} of {done['planned_steps']}. "
                    if budget
                    else "Finished. "
                )
                + f"The {config.stage} model in {config.out} can be chosen in Segment"
                + (f" (model kept: {kept})." if kept else ".")
                + (
                    " To train on, Start again with the same output folder and a larger Time "
                    + (
                        # the budget counts the whole run, its final validation included: a
                        # budget of 2 min after 1.7 min trained gave 0.3 min more
                        f"budget than the {_minutes_text(done['minutes'])} the run has trained "
                        "(the budget counts the whole run), then Resume."
                        if isinstance(done.get("minutes"), (int, float))
                        else "budget, then Resume."
                    )
                    if budget
                    else ""
                ),
            )
        elif status == "cancelled":
            # what this run saved, not what the folder held before (a Replace stopped at once
            # leaves the earlier run's last/, which resuming would go on with)
            saved = any(
                r.get("event") == "step" or (r.get("event") == "cancelled" and r.get("last"))
                for r in self.reports
            )
            if saved:
                text = (
                    f"Stopped; the last weights are in {stage_dir / 'last'}. Start again with "
                    "the same output folder to resume from there."
                )
                if self.model_folder is not None and any(
                    r.get("event") == "epoch" and r.get("saved_best") for r in self.reports
                ):  # listed in Segment already: said
                    text += f" Its best model so far is in {stage_dir}, which Segment lists."
                if earlier_kept and (stage_dir / "metadata.json").is_file():
                    text += (
                        f" The model in {stage_dir} is an earlier run's, not this one's (this run "
                        "saves its own when it validates, or at its end)."
                    )
            elif config.resume:
                text = (
                    "Stopped before its first new step; no model or state was written, and the run in "
                    f"{stage_dir / 'last'} can still be resumed."
                )
            elif config.overwrite:
                text = (
                    f"Stopped before training began; no model or state was written, and what {stage_dir} "
                    "held is as it was (not replaced)."
                )
            else:
                text = "Stopped before training began; no model or state was written."
            set_status(self.status, text)
        if status == "failed":  # the whole message, which the status line may not show
            self._log(f"[failed] {self.status.text()}")
        else:
            self._log(f"[{status}]")

    # ------------------------------------------------------------------ plot and log
    def _theme_plot(self, *_) -> None:
        try:
            colors = _PLOT_COLORS["light" if is_light_theme(self, self.viewer) else "dark"]
            _style_axes(self.figure, self.loss_ax, self.dice_ax, colors)
            self.loss_line.set_color(colors["loss"])
            self.dice_line.set_color(colors["dice"])
            self._empty_note.set_color(colors["text"])
            self._empty_note.set_fontsize(8 * _plot_font_scale())
            self._relayout()
            self.canvas.draw_idle()
        except RuntimeError:  # the panel was closed: its canvas is gone
            pass

    def _reset_plot(self, note: str = "no training yet") -> None:
        for values in self.history.values():
            values.clear()
        self.loss_ax.set_xlim(0, 1)  # not the last run's step and loss axes
        self.loss_ax.set_ylim(0, 1)
        self._empty_note.set_text(note)  # (a run just ended here: not "no training yet")
        self._relayout()
        self._redraw(force=True)

    def _relayout(self) -> None:
        """Fit the axes to the canvas and their labels at the next draw (see _layout_done)."""
        self.figure.set_layout_engine("constrained")
        self.figure.get_layout_engine().set(w_pad=0.02, h_pad=0.02)

    def _layout_done(self, _event) -> None:
        # the axes keep the positions the layout gave them; later draws skip the layout
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        if isinstance(self.figure.get_layout_engine(), ConstrainedLayoutEngine):
            self.figure.set_layout_engine("none")
            self._last_layout = time.monotonic()

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < _PLOT_EVERY_S:
            # drawn when the throttle allows, not at the next report: during a validation
            # (30 s) the plot showed step 1 alone while the bar read step 4
            if not self._draw_pending:
                from qtpy.QtCore import QTimer

                self._draw_pending = True
                wait_ms = int(1000 * (_PLOT_EVERY_S - (now - self._last_draw))) + 1
                QTimer.singleShot(wait_ms, self._put_off_draw)
            return
        self._draw_pending = False
        self._last_draw = now
        h = self.history
        # the first loss and the first validation score bring their tick labels: laid out
        # then (the reset's empty 0-1 ticks left "loss" cut at the edge for 15 s)
        shown = (bool(h["step"]), bool(h["val_step"]))
        if now - self._last_layout > _RELAYOUT_S or shown != self._laid_out_for:
            self._relayout()  # (and as tick labels widen with the values)
            self._laid_out_for = shown
        self.loss_line.set_data(h["step"], h["loss"])
        # a line of one point draws nothing: the first step's loss is a dot (the ticks around
        # it showed values of nothing drawn)
        self.loss_line.set_marker("o" if len(h["step"]) == 1 else "None")
        self.dice_line.set_data(h["val_step"], h["val_dice"])
        if h["step"]:  # the reset's fixed 0-1 turned autoscaling off: a loss of 1.6 was off it
            self.loss_ax.set_autoscaley_on(True)
        self.loss_ax.relim()
        self.loss_ax.autoscale_view()
        _loss_span_at_least(self.loss_ax, h["loss"])
        self._empty_note.set_visible(not h["step"])
        _ticks_shown(self.loss_ax, self.dice_ax, any(shown))
        if h["step"]:
            self.loss_ax.set_xlim(0, max(h["step"]) + 1)
        self.canvas.draw_idle()

    def _put_off_draw(self) -> None:
        if not self._draw_pending:  # drawn meanwhile
            return
        try:
            self._redraw(force=True)
        except RuntimeError:  # the panel was closed: its canvas is gone
            pass

    def _log(self, line: str) -> None:
        self.log.appendPlainText(line)
        if self._log_follows:
            bar = self.log.verticalScrollBar()
            bar.setValue(bar.maximum())

    def _log_scrolled(self, _action) -> None:
        # emitted before the user's move is applied: judged once it is
        from qtpy.QtCore import QTimer

        def judge():
            try:
                bar = self.log.verticalScrollBar()
            except RuntimeError:  # the panel was closed
                return
            self._log_follows = bar.value() >= bar.maximum() - 1

        QTimer.singleShot(0, judge)

    def _show_summary(self, lines: list[str], folder: str | None = None) -> None:
        """The summary, compact, above; every line of it in the log below (under the folder
        checked: the log keeps the checks of several)."""
        self._log(
            f"Check data{f' of {folder}' if folder else ''}:\n"
            + "\n".join(f"  {line}" for line in lines)
        )
        self.summary.setToolTip(f"Check of {folder}" if folder else "")
        # what needs the user's eye first (a table that cannot be used, a patient's two
        # rows): the box shows a few lines, and the counts' long first line pushed them out
        # (a warning keeps the line after it that says what follows from it)
        blocks: list[list[str]] = []
        for line in lines:
            if blocks and (
                (blocks[-1][0].startswith("⚠") and line.startswith(_CONSEQUENCES))
                or line.startswith("  ")  # a list's items stay under their heading
            ):
                blocks[-1].append(line)
            else:
                blocks.append([line])
        blocks.sort(key=lambda block: _summary_rank(block[0]))
        lines = [line for block in blocks for line in block]
        shown = lines[:SUMMARY_LINES]
        if len(lines) > SUMMARY_LINES:
            shown.append(f"… {len(lines) - SUMMARY_LINES} more line(s) in the log below")
        set_status(self.summary, "\n".join(shown), scroll=False)  # (a failed check's red gone)
        self.summary_box.setVisible(True)
        set_status(self.status, "")

    # ------------------------------------------------------------------ slots
    def _start_clicked(self) -> None:
        if not self.cancel_if_running(self.start_button):
            self.start()

    def _check_clicked(self) -> None:
        if not self.cancel_if_running(self.check_button):
            self.check_data()

    def _data_entered(self) -> None:
        if not self.busy:
            self.check_data()

    def _stage_changed(self, stage: str | None = None) -> None:
        """Show the stage's defaults, or the starting model's fixed geometry (read-only)."""
        from ..errors import LiverTumorError
        from ..training.config import recipe_from_model, stage_defaults

        stage = stage or self.stage.currentText()
        folder_mode = self.start_from.currentText() == START_FOLDER
        self.init_folder.setVisible(folder_mode)
        self.init_browse.setVisible(folder_mode)
        d = stage_defaults(stage)
        fixed = False
        error = None
        try:
            init = self.init_model_folder()
        except ValueError:
            init = None
        except LiverTumorError as exc:  # a run's folder of the other stage's model only
            init, error = None, str(exc)
        if init is not None:
            try:
                d = {**d, **recipe_from_model(init, stage)[stage]}
                fixed = True
            except LiverTumorError as exc:
                error = str(exc)
        if error is not None:
            set_status(self.status, error, error=True)
        elif self.status.styleSheet():  # an error shown for the previous choice: it is gone
            set_status(self.status, "")
        self.hu_low.setValue(int(d["hu_window"][0]))
        self.hu_high.setValue(int(d["hu_window"][1]))
        self.patch.setText(", ".join(str(v) for v in d["roi_size"]))
        self.weak_lambda.setValue(float(d.get("weak_lambda", 0.0)))
        self.weak_lambda.setEnabled(stage == "tumor")
        for w in (self.hu_low, self.hu_high, self.patch):
            w.setEnabled(not fixed)

    def _browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder")
        if folder:
            self.data.setText(folder)
            self.check_data()

    def _browse_clinical(self) -> None:
        from ..io.clinical import TABLE_SUFFIXES

        # every ending the table is read with (.tsv, .xlsm, .txt were hidden by the filter)
        endings = " ".join(f"*{s}" for s in TABLE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self, "Clinical table", filter=f"Tables ({endings});;All files (*)"
        )
        if path:
            self.clinical.setText(path)

    def _browse_init(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder to start from")
        if folder:
            self.init_folder.setText(folder)
            self._stage_changed()

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder for the model")
        if folder:
            self.out.setText(folder)


def _make_plot():
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    # laid out at each draw to fit its labels: fixed margins cut the axis titles off in a
    # narrow panel ("ıoss" at 1280x800)
    figure = Figure(figsize=(4, 2.4), dpi=100, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.02, h_pad=0.02)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(90)
    loss_ax = figure.add_subplot(111)
    dice_ax = loss_ax.twinx()
    from matplotlib.ticker import MaxNLocator

    # steps are whole: a run of three steps was ticked 0.5, 1.5, 2.5
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _style_axes(figure, loss_ax, dice_ax, _PLOT_COLORS["dark"])
    _ticks_shown(loss_ax, dice_ax, False)  # (nothing drawn yet)
    return figure, canvas, loss_ax, dice_ax


#: the plot's colours on napari's dark and light panels (lines legible on each)
_PLOT_COLORS = {
    "dark": {"face": "#262930", "text": "#d0d0d0", "spine": "#808080", "loss": "#4da3ff",
             "dice": "#ff9f43"},
    "light": {"face": "#ebe7e6", "text": "#1e1e21", "spine": "#606060", "loss": "#0b5cad",
              "dice": "#a84a00"},
}  # fmt: skip


#: the loss axis spans at least this share of the loss drawn: autoscaled to the values alone,
#: a drop from 1.131 to 1.129 filled the plot's height, drawn as steep as a real fall
_MIN_LOSS_SPAN = 0.05


def _loss_span_at_least(ax, losses) -> None:
    """Widen ``ax``'s loss range, where it is narrower, to :data:`_MIN_LOSS_SPAN` of the
    loss's size around the values (a flat start is drawn flat)."""
    values = [v for v in losses if v is not None and math.isfinite(v)]
    if not values:
        return
    low, high = min(values), max(values)
    least = _MIN_LOSS_SPAN * max(abs(low), abs(high), 1e-6)
    if high - low < least:
        mid = (high + low) / 2
        ax.set_ylim(mid - least / 2, mid + least / 2)


def _ticks_shown(loss_ax, dice_ax, shown: bool) -> None:
    """The axes' ticks and their values, shown only once there is something drawn: the empty
    plot read "no training yet" over a loss and steps ticked −0.045 to 0.045 (0 to 1 while
    starting); the axes' titles stay, to say what will be drawn."""
    loss_ax.tick_params(left=shown, labelleft=shown, bottom=shown, labelbottom=shown)
    dice_ax.tick_params(right=shown, labelright=shown)


def _plot_font_scale() -> float:
    """The plot's text sizes (chosen at napari's default font size, 9 pt) follow napari's."""
    from ._common import napari_font_size

    size = napari_font_size()
    return size / 9.0 if size and size > 0 else 1.0


def _style_axes(figure, loss_ax, dice_ax, colors: dict) -> None:
    scale = _plot_font_scale()
    figure.set_facecolor(colors["face"])
    for ax in (loss_ax, dice_ax):
        ax.set_facecolor(colors["face"])
        ax.tick_params(colors=colors["text"], labelsize=7 * scale)
        for spine in ax.spines.values():
            spine.set_color(colors["spine"])
    loss_ax.set_xlabel("step", color=colors["text"], fontsize=8 * scale)
    loss_ax.set_ylabel("loss", color=colors["loss"], fontsize=8 * scale)
    dice_ax.set_ylabel("validation Dice", color=colors["dice"], fontsize=8 * scale)
    dice_ax.set_ylim(0, 1)


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row
