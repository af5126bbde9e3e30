"""What each file of a run folder holds, with its one writer and its one reader: summary.json,
metrics.csv, gradients.csv, responses.csv, the final weights and the TensorBoard view of the
curve (an analysis's CSV is its own module's, experiments/). Every file is written to a temporary
name and renamed, so a kill at any moment leaves the old or the new version whole; a file that
cannot be read raises DamagedFile, naming it and the fault.

No TensorFlow at import: `make figures` reads run folders without it.
"""
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from src import machine


class DamagedFile(Exception):
    """A file of a run folder cannot be read; the message names it and the fault."""


def set_aside(path: Path) -> Path:
    """Rename a file that cannot be used to <name>.corrupt-<time><suffix>, beside it."""
    aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    os.replace(path, aside)
    return aside


def write_temporary(path: Path, write, mode: str = "w") -> Path:
    """`write(file)` to a temporary file beside `path`, on disk when it returns; its path. A
    failed write (e.g. a full disk) leaves no half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, write) -> None:
    """`write(file)` to a temporary file, then rename it over `path`: a kill at any moment leaves
    the old or the new version whole, never a torn one."""
    os.replace(write_temporary(path, write), path)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


@dataclass
class Row:
    """One line of metrics.csv: one logging interval. Errors in %; training error and loss are
    running values over the interval, the test ones NaN where the interval ends untested."""
    iteration: int
    epoch: float
    lr: float  # the one the interval's last step used
    train_loss: float  # cross-entropy, without the weight-decay term
    train_error: float
    test_loss: float
    test_error: float
    seconds: float  # the run's cumulative wall time
    eval_seconds: float  # the row's test evaluation and gradient measurement
    images_per_second: float  # training images of the interval over its training time


COLUMNS = [f.name for f in fields(Row)]


@dataclass
class Summary:
    """summary.json: what the run is, where it ran, and how far it got."""
    config: dict  # the resolved config
    parameters: int = 0
    hardware: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    commit: str = "unknown"  # the code of this process; every segment's code is in `commits`
    status: str = "running"  # running | interrupted | failed | parked (src.park) | finished
    iterations: int = 0
    train_error: float | None = None  # the last row's: final, never the best
    test_error: float | None = None
    resumed_at: list = field(default_factory=list)  # the iteration of every resume
    commits: list = field(default_factory=list)  # the code that trained from 0, then from each resume
    machines: list = field(default_factory=list)  # the machine of each of those segments (machine_phrase())
    wall_seconds: float = 0.0
    warmup_ended_at: int | None = None  # where the run went back to train.lr (None: no warm-up)
    updated: str = ""
    error: str | None = None  # why it failed

    def write(self, run_dir: Path) -> None:
        self.updated = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(Path(run_dir) / "summary.json",
                   {k: v for k, v in asdict(self).items() if k != "error" or v is not None})


def provenance(config: dict, parameters: int) -> Summary:
    """A new run's summary: its config and parameter count, this machine, the library versions
    and the code's commit."""
    import keras  # here, not at import: make figures reads run folders without TensorFlow
    import numpy
    import tensorflow as tf
    import tensorflow_datasets as tfds
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open(machine.CPUINFO)
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = machine.gpus()
    return Summary(config, parameters,
                   hardware={"cpu": cpu, "cpu_count": os.cpu_count(), "gpus": gpus,
                             "platform": platform.platform(),
                             "vector_extensions": machine.vector_extensions(),
                             "onednn": machine.onednn_state()},
                   versions={"python": platform.python_version(), "tensorflow": tf.__version__,
                             "keras": keras.__version__, "tensorflow_datasets": tfds.__version__,
                             "numpy": numpy.__version__},
                   commit=code_version())


def machine_phrase(hardware: dict) -> str:
    """A machine in one phrase, as a run's segments record it: "AMD EPYC x2, AVX2 FMA, oneDNN on"
    (GPUs where there are)."""
    extensions = " ".join(hardware.get("vector_extensions", [])) or "vector extensions unknown"
    state = hardware.get("onednn", {})
    onednn = "oneDNN " + ("on" if state.get("on") else "off") + (
        f" (kernels up to {state['ONEDNN_MAX_CPU_ISA']})" if state.get("ONEDNN_MAX_CPU_ISA") else "")
    return ", ".join([f"{hardware['cpu']} x{hardware['cpu_count']}", extensions, onednn,
                      *hardware.get("gpus", [])])


def code_version() -> str:
    """The git commit of the code, with -dirty if it has uncommitted changes."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
def read_summary(run_dir: Path) -> Summary | None:
    """The run's summary.json (None if it has none); DamagedFile if it is torn or not a summary."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise DamagedFile(f"{path.name} is not valid JSON") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise DamagedFile(f"{path.name} holds no run config")
    known = {f.name for f in fields(Summary)}
    return Summary(**{k: v for k, v in summary.items() if k in known})


def parse_rows(path: Path) -> tuple[list[dict], str | None]:
    """The whole rows of a metrics.csv, up to the first that is not, and what was wrong with the
    file (None if nothing). A row is whole when every column but the test ones is a number."""
    if not path.exists():
        return [], None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return [], "it cannot be parsed as CSV"
    if sorted(frame.columns) != sorted(COLUMNS):  # read by the header: any order of the columns
        return [], f"its header is not {','.join(COLUMNS)}"
    frame = frame[COLUMNS]
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    whole = numbers.drop(columns=["test_loss", "test_error"]).notna().all(axis=1)
    whole &= numbers.iteration.diff().fillna(1) > 0  # iterations increase
    good = int(whole.cummin().sum())
    rows = numbers.iloc[:good].astype({"iteration": int}).to_dict("records")
    return rows, (None if good == len(frame) else f"row {good + 1} of {len(frame)} is not whole")


def read_rows(path: Path, up_to_iteration: int) -> list[dict]:
    """The logged rows up to a checkpoint's iteration: later ones belong to lost work."""
    rows, _ = parse_rows(path)  # prepare() has set a damaged file aside and kept its whole rows
    kept = [r for r in rows if r["iteration"] <= up_to_iteration]
    if len(kept) < len(rows):
        print(f"warning: {len(rows) - len(kept)} rows of {path.name} after iteration "
              f"{up_to_iteration} have no checkpoint; they will be logged again", file=sys.stderr)
    return kept


def write_rows(path: Path, rows: list[dict]) -> None:
    """metrics.csv, whole, in COLUMNS' order."""
    write_atomic(path, lambda f: pd.DataFrame(rows, columns=COLUMNS).to_csv(f, index=False))


def read_table(path: Path, columns: list[str], required: list[str] | None = None,
               integers=("iteration", "index"), text=("layer",)) -> pd.DataFrame:
    """A run's CSV side file: its `columns` (those of `required` must be there; the others are
    added empty, for files written before them), every column but the `text` ones a number.
    DamagedFile, naming the file and the fault, where it cannot be read as one."""
    required = columns if required is None else required
    try:
        frame = pd.read_csv(path)
        if not set(required) <= set(frame.columns):
            raise ValueError(f"its header is not {','.join(columns)}")
        frame = frame.reindex(columns=columns)
        numbers = [c for c in columns if c not in text]
        frame[numbers] = frame[numbers].apply(pd.to_numeric)  # ValueError on a word
        kept = [c for c in integers if c in columns]
        if frame.empty or frame[[*kept, *required]].isna().any().any():
            raise ValueError("it has no rows" if frame.empty else "a row is not whole")
        return frame.astype({c: int for c in kept})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as e:
        reason = ("it is not text" if isinstance(e, UnicodeDecodeError) else "it is empty"
                  if isinstance(e, pd.errors.EmptyDataError) else "it cannot be parsed as CSV"
                  if isinstance(e, pd.errors.ParserError) else str(e).splitlines()[0])
        raise DamagedFile(f"{Path(path).name} cannot be read ({reason})") from None


GRADIENT_COLUMNS = ["iteration", "index", "layer", "output_gradient_norm", "kernel_gradient_norm",
                    "bn_output_gradient_norm", "kernel_norm"]
GRADIENT_COLUMNS_BEFORE = GRADIENT_COLUMNS[:5]  # of runs before the last two (empty there)


def read_gradients(path: Path, up_to_iteration: int) -> list[dict]:
    """gradients.csv's rows up to a checkpoint's iteration, for a run that goes on; a file that
    cannot be read is set aside (the gradients of the rows to come are still measured)."""
    if not path.exists():
        return []
    try:
        frame = read_table(path, GRADIENT_COLUMNS, GRADIENT_COLUMNS_BEFORE)
    except DamagedFile as e:
        aside = set_aside(path)
        print(f"warning: {path.parent}/{e}; kept as {aside.name}", file=sys.stderr)
        return []
    return frame[frame.iteration <= up_to_iteration].to_dict("records")


def gradient_lines(rows: list[dict], header: bool = True) -> str:
    """gradients.csv's text of `rows` (its header first, given `header`)."""
    return pd.DataFrame(rows, columns=GRADIENT_COLUMNS).to_csv(index=False, header=header,
                                                               float_format="%.6g")


def write_gradients(path: Path, rows: list[dict]) -> None:
    write_text(path, gradient_lines(rows))


class GradientsFile:
    """gradients.csv as a run writes it, a logged row's layers at a time: each row's lines are
    formatted once and added to the text held, which is written whole and atomically (a kill
    leaves the file whole, as every file of a run folder): the cost of a row does not grow with
    the rows before it but for one write of the bytes."""

    def __init__(self, path: Path, rows: list[dict]):
        self.path, self.text = path, gradient_lines(rows)

    def add(self, rows: list[dict]) -> None:
        self.text += gradient_lines(rows, header=False)
        write_text(self.path, self.text)


RESPONSE_COLUMNS = ["layer", "index", "std"]  # src.models.responses says what std is


def write_responses(run_dir: Path, table: pd.DataFrame) -> None:
    """responses.csv: Figure 7's layer responses of the finished network, on the test set."""
    write_atomic(Path(run_dir) / "responses.csv",
                 lambda f: table[RESPONSE_COLUMNS].to_csv(f, index=False))


def read_responses(run_dir: Path) -> pd.DataFrame:
    return read_table(Path(run_dir) / "responses.csv", RESPONSE_COLUMNS, integers=("index",))


WEIGHTS = "final.weights.h5"


def write_weights(run_dir: Path, model) -> None:
    """The finished network's weights (BN statistics included), in Keras' own `.weights.h5`:
    `model.load_weights` reads them into the network src.models builds, with no code of this
    project's training. Written beside and renamed over, as every file of a run."""
    tmp = run_dir / f".tmp{os.getpid()}.{WEIGHTS}"  # Keras asks for the suffix
    try:
        model.save_weights(tmp)
        os.replace(tmp, run_dir / WEIGHTS)
    finally:
        tmp.unlink(missing_ok=True)


class TensorBoard:
    """TensorBoard scalars of the run in <run>/tensorboard/, a view of metrics.csv: written anew
    from the kept rows whenever the run (re)starts, then one step per row, so a resumed run has
    no duplicate or out-of-order points (rows past its checkpoint are dropped from both)."""

    SCALARS = {"error/train": "train_error", "error/test": "test_error",
               "loss/train": "train_loss", "loss/test": "test_loss", "lr": "lr",
               "images_per_second": "images_per_second"}

    def __init__(self, run_dir: Path, rows: list[dict]):
        import tensorflow as tf  # here: the rest of this module is read without TensorFlow
        self.summary = tf.summary
        folder = run_dir / "tensorboard"
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = self.summary.create_file_writer(str(folder))
        for row in rows:
            self.write(row, flush=False)
        self.writer.flush()

    def write(self, row: dict, flush=True) -> None:
        with self.writer.as_default(step=int(row["iteration"])):
            for tag, column in self.SCALARS.items():
                if not math.isnan(row[column]):
                    self.summary.scalar(tag, row[column])
        if flush:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
