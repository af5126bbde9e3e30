"""The rules of a run folder: who may write it, what its files hold (the one definition of
summary.json, metrics.csv and gradients.csv, each with one writer and one reader), how they are
written, what its checkpoint holds, and when an existing run in it may be resumed.

- One process at a time: a run holds an OS-level lock on its folder (`lock`), which the kernel
  releases when the process ends, however it ends.
- Every file is written to a temporary name and renamed, so a kill at any moment leaves the old
  or the new version whole.
- A folder holding a run with another config is refused (or set aside with overwrite=true).
"""
import contextlib
import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf



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
GRADIENT_COLUMNS = ["iteration", "index", "layer", "output_gradient_norm", "kernel_gradient_norm",
                    "bn_output_gradient_norm", "kernel_norm"]
GRADIENT_COLUMNS_BEFORE = GRADIENT_COLUMNS[:5]  # of runs before the last two (empty there)


@dataclass
class Summary:
    """summary.json: what the run is, where it ran, and how far it got."""
    config: dict  # the resolved config
    parameters: int = 0
    hardware: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    commit: str = "unknown"  # the code of this process; every segment's code is in `commits`
    status: str = "running"  # running | interrupted | failed | finished
    iterations: int = 0
    train_error: float | None = None  # the last row's: final, never the best
    test_error: float | None = None
    resumed_at: list = field(default_factory=list)  # the iteration of every resume
    commits: list = field(default_factory=list)  # the code that trained from 0, then from each resume
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
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return Summary(config, parameters,
                   hardware={"cpu": cpu, "cpu_count": os.cpu_count(), "gpus": gpus,
                             "platform": platform.platform()},
                   versions={"python": platform.python_version(), "tensorflow": tf.__version__,
                             "keras": keras.__version__, "tensorflow_datasets": tfds.__version__,
                             "numpy": numpy.__version__},
                   commit=code_version())


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
# Keys of the configs of older runs that repeated train.iterations and .milestones, log.* and the
# data slices under budget.*: not compared, so those runs still count as finished and resume.
LEGACY_KEYS = tuple(f"budget.{key}" for key in ("iterations", "milestones", "log_every",
                                                "test_every", "train_examples", "test_examples"))
# Config keys that do not change what a run computes: a folder may be resumed with other values.
RESUMABLE_KEYS = ("results_dir", "run_dir", "overwrite", "data.dir", "data.download",
                  "checkpoint.every", "threads")
LOCK = ".lock"


class RunDirError(Exception):
    """The run folder cannot be used; the message names it and says why."""


@contextlib.contextmanager
def lock(cfg: DictConfig, run_dir: Path):
    """Hold the folder's lock for the duration of the block; a second process asking for it gets
    a RunDirError naming the folder and the holder's PID at once."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run folder: move or delete it, then run "
                          "the command again")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirError(f"results_dir={cfg.results_dir} cannot be written: cannot create files "
                          f"in {run_dir} ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode().strip() or "unknown"
        os.close(fd)
        raise RunDirError(f"{run_dir} is being trained by process {holder}; wait for it to end "
                          "or stop it, then run the command again") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def holder(run_dir: Path) -> str | None:
    """The PID of the process that holds the folder's lock now, or None."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.read(fd, 32).decode().strip() or "unknown"
    finally:
        os.close(fd)


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


class Checkpoint:
    """`checkpoint.npz` (last) and `checkpoint.prev.npz` (the one before), each complete, with
    every variable of the model and the optimizer keyed by its path ("stem_bn/moving_mean"), the
    loop's state, and the fingerprint of the run's config (`comparable`).

    Which checkpoint wins on resume: 1. the last one if it loads, holds exactly this network's and
    optimizer's variables and carries this run's fingerprint; 2. else the previous one, the
    unusable last one being kept aside as checkpoint.corrupt-<time>.npz
    (checkpoint.prev.corrupt-<time>.npz for the previous one); 3. else a fresh start.
    """

    def __init__(self, run_dir: Path, cfg: DictConfig | None = None):
        self.last = run_dir / "checkpoint.npz"
        self.prev = run_dir / "checkpoint.prev.npz"
        self.fingerprint = None if cfg is None else json.loads(
            json.dumps(comparable(cfg), default=str, sort_keys=True))

    def exists(self) -> bool:
        return self.last.exists() or self.prev.exists()

    @staticmethod
    def variables(model, optimizer) -> dict:
        named = {f"model/{v.path}": v for v in model.weights}
        named |= {f"optimizer/{v.path}": v for v in optimizer.variables}
        assert len(named) == len(model.weights) + len(optimizer.variables), "duplicate paths"
        return named

    def save(self, model, optimizer, state: dict) -> None:
        arrays = {k: v.numpy() for k, v in self.variables(model, optimizer).items()}
        arrays["state"] = np.array(json.dumps(state))
        arrays["fingerprint"] = np.array(json.dumps(self.fingerprint, sort_keys=True))
        tmp = write_temporary(self.last, lambda f: np.savez(f, **arrays), "wb")
        # The old last becomes prev before the new one takes its place: at every moment at least
        # one complete checkpoint exists, and load() falls back to prev if last is missing.
        if self.last.exists():
            os.replace(self.last, self.prev)
        os.replace(tmp, self.last)

    def load(self, model, optimizer):
        """Restore into model and optimizer; return the saved state dict, or None for a fresh start."""
        named = self.variables(model, optimizer)
        for path in (self.last, self.prev):
            if not path.exists():
                continue
            try:
                with np.load(path) as f:
                    state = json.loads(str(f["state"]))
                    values = {k: f[k] for k in named if k in f.files}
                    fingerprint = json.loads(str(f["fingerprint"])) if "fingerprint" in f else None
                    if fingerprint is not None:
                        fingerprint = {k: v for k, v in fingerprint.items() if k not in LEGACY_KEYS}
            except Exception as e:  # a torn or corrupted zip fails in many ways
                reason = f"damaged: {type(e).__name__}"
            else:
                missing = [k for k in named if k not in values]
                reshaped = [k for k in values if values[k].shape != tuple(named[k].shape)]
                other = [k for k in sorted((fingerprint or {}).keys() | self.fingerprint.keys())
                         if (fingerprint or {}).get(k) != self.fingerprint.get(k)]
                if missing or reshaped:
                    reason = (f"it has no {missing[0]}" if missing else f"its {reshaped[0]} has "
                              f"shape {values[reshaped[0]].shape}") + \
                        ": written for another network or by an older version"
                elif fingerprint is None:
                    reason = "it has no config fingerprint: written by an older version"
                elif other:
                    reason = (f"written for another config: {other[0]}="
                              f"{fingerprint.get(other[0])!r}, this run has "
                              f"{self.fingerprint.get(other[0])!r}")
                else:
                    for k, variable in named.items():
                        variable.assign(values[k])
                    return state
            aside = set_aside(path)
            print(f"warning: {path.name} cannot be used ({reason}); kept as {aside.name}, "
                  "falling back to the previous checkpoint", file=sys.stderr)
        return None


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


def read_gradients(path: Path, up_to_iteration: int) -> list[dict]:
    """gradients.csv's rows up to a checkpoint's iteration; a file that cannot be read is set aside
    (the gradients of the rows to come are still measured)."""
    if not path.exists():
        return []
    try:
        frame = pd.read_csv(path)
        if not set(GRADIENT_COLUMNS_BEFORE) <= set(frame.columns):
            raise ValueError(f"its header lacks {','.join(GRADIENT_COLUMNS_BEFORE)}")
        frame = frame.reindex(columns=GRADIENT_COLUMNS).astype({"iteration": int, "index": int})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        aside = set_aside(path)
        print(f"warning: {path} cannot be read ({e}); kept as {aside.name}", file=sys.stderr)
        return []
    return frame[frame.iteration <= up_to_iteration].to_dict("records")


def write_gradients(path: Path, rows: list[dict]) -> None:
    write_atomic(path, lambda f: pd.DataFrame(rows, columns=GRADIENT_COLUMNS).to_csv(
        f, index=False, float_format="%.6g"))


def comparable(cfg: DictConfig) -> dict:
    """The config as a flat dict of what determines a run's results."""
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0]
    return {k: v for k, v in flat.to_dict().items() if k not in RESUMABLE_KEYS + LEGACY_KEYS}


class DamagedFile(Exception):
    """A run folder's summary.json or metrics.csv cannot be read."""


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


def damage(run_dir: Path) -> str | None:
    """What is damaged in a run folder (summary.json or metrics.csv), or None."""
    try:
        read_summary(run_dir)
    except DamagedFile as e:
        return str(e)
    problem = parse_rows(Path(run_dir) / "metrics.csv")[1]
    return f"metrics.csv: {problem}" if problem else None


def set_aside(path: Path) -> Path:
    """Rename a file that cannot be used to <name>.corrupt-<time><suffix>, beside it."""
    aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    os.replace(path, aside)
    return aside


def repair(run_dir: Path) -> None:
    """Set a damaged summary.json or metrics.csv aside, keeping the whole rows of the CSV; the
    run then rebuilds the rest (its summary, the rows after its checkpoint)."""
    try:
        read_summary(run_dir)
    except DamagedFile as e:
        aside = set_aside(run_dir / "summary.json")
        print(f"warning: {run_dir}/{e}; kept as {aside.name}, a new one will be written",
              file=sys.stderr)
    rows, problem = parse_rows(run_dir / "metrics.csv")
    if problem:
        aside = set_aside(run_dir / "metrics.csv")
        write_rows(run_dir / "metrics.csv", rows)
        print(f"warning: {run_dir}/metrics.csv is damaged ({problem}); kept as {aside.name}, "
              f"its {len(rows)} whole rows kept", file=sys.stderr)


def saved_config(run_dir: Path) -> dict | None:
    """The config that pins a run folder: the one of a run that has made progress (rows or a
    checkpoint), from its summary or else its .hydra/config.yaml. A run that failed before its
    first checkpoint or row pins nothing, so the corrected command may take the folder."""
    if not ((run_dir / "metrics.csv").exists() or Checkpoint(run_dir).exists()):
        return None
    summary = read_summary(run_dir)
    saved = summary.config if summary else None
    if saved is None and (run_dir / ".hydra/config.yaml").exists():
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra/config.yaml"))
    return saved


def config_changes(cfg: DictConfig, run_dir: Path) -> dict[str, tuple]:
    """{key: (saved, asked)} where the run already in `run_dir` (if any) differs from `cfg`."""
    saved = saved_config(Path(run_dir))
    if saved is None:
        return {}
    before, now = comparable(OmegaConf.create(saved)), comparable(cfg)
    return {k: (before.get(k), now.get(k)) for k in sorted(before.keys() | now.keys())
            if before.get(k) != now.get(k)}


def prepare(cfg: DictConfig, run_dir: Path) -> Summary | None:
    """Check that the folder can hold this run (the caller holds its lock); return its finished
    summary if it is done."""
    repair(run_dir)
    changes = config_changes(cfg, run_dir)
    if changes and not cfg.overwrite:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changes.items())[:3])
        raise RunDirError(f"{run_dir} holds a run with another config ({shown}); use another "
                          "results_dir or seed, or pass overwrite=true to set it aside")
    if changes:
        aside = run_dir / f"replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir()
        for item in run_dir.iterdir():
            if item.name not in (aside.name, LOCK) and not item.name.startswith("replaced-"):
                os.replace(item, aside / item.name)
        print(f"overwrite=true: the earlier run is kept in {aside}")
    for stale in run_dir.glob(".*.tmp*"):  # half-written by a killed process; never renamed in
        stale.unlink()
    summary = read_summary(run_dir)
    if summary and summary.status == "finished":
        return summary
    (run_dir / ".hydra").mkdir(exist_ok=True)
    write_text(run_dir / ".hydra/config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return None
