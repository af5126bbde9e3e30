"""The rules of a run folder: who may write it, how its files are written, what its checkpoint
holds, and when an existing run in it may be resumed.

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
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

COLUMNS = ["iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error",
           "seconds", "eval_seconds", "images_per_second"]
# Config keys that do not change what a run computes: a folder may be resumed with other values.
RESUMABLE_KEYS = ("results_dir", "run_dir", "overwrite", "data.dir", "data.download",
                  "checkpoint.every")
LOCK = ".lock"


class RunDirError(Exception):
    """The run folder cannot be used; the message names it and says why."""


@contextlib.contextmanager
def lock(cfg: DictConfig, run_dir: Path):
    """Hold the folder's lock for the duration of the block; a second process asking for it gets
    a RunDirError naming the folder and the holder's PID at once."""
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


def write_atomic(path: Path, write) -> None:
    """`write(file)` to a temporary file, then rename it over `path`: a kill at any moment leaves
    the old or the new version whole, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


class Checkpoint:
    """`checkpoint.npz` (last) and `checkpoint.prev.npz` (the one before), each complete, with
    every variable of the model and the optimizer keyed by its path ("stem_bn/moving_mean").

    Which checkpoint wins on resume: 1. the last one if it loads and holds exactly this network's
    and optimizer's variables; 2. else the previous one, the unusable last one being kept aside as
    checkpoint.corrupt-<time>.npz (checkpoint.prev.corrupt-<time>.npz for the previous one);
    3. else a fresh start.
    """

    def __init__(self, run_dir: Path):
        self.last = run_dir / "checkpoint.npz"
        self.prev = run_dir / "checkpoint.prev.npz"

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
        tmp = self.last.with_name(f".{self.last.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
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
            except Exception as e:  # a torn or corrupted zip fails in many ways
                reason = f"damaged: {type(e).__name__}"
            else:
                missing = [k for k in named if k not in values]
                reshaped = [k for k in values if values[k].shape != tuple(named[k].shape)]
                if not missing and not reshaped:
                    for k, variable in named.items():
                        variable.assign(values[k])
                    return state
                reason = (f"it has no {missing[0]}" if missing else f"its {reshaped[0]} has "
                          f"shape {values[reshaped[0]].shape}") + \
                    ": written for another network or by an older version"
            aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.npz")
            os.replace(path, aside)
            print(f"warning: {path.name} cannot be used ({reason}); kept as {aside.name}, "
                  "falling back to the previous checkpoint", file=sys.stderr)
        return None


def read_rows(path: Path, up_to_iteration: int) -> list[dict]:
    """The logged rows up to a checkpoint's iteration: later ones belong to lost work."""
    if not path.exists():
        return []
    rows = pd.read_csv(path).to_dict("records")
    kept = [r for r in rows if r["iteration"] <= up_to_iteration]
    if len(kept) < len(rows):
        print(f"warning: {len(rows) - len(kept)} rows of {path.name} after iteration "
              f"{up_to_iteration} have no checkpoint; they will be logged again", file=sys.stderr)
    return kept


def write_rows(path: Path, rows: list[dict]) -> None:
    write_atomic(path, lambda f: pd.DataFrame(rows, columns=COLUMNS).to_csv(f, index=False))


def comparable(cfg: DictConfig) -> dict:
    """The config as a flat dict of what determines a run's results."""
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0]
    return {k: v for k, v in flat.to_dict().items() if k not in RESUMABLE_KEYS}


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def config_changes(cfg: DictConfig, run_dir: Path) -> dict[str, tuple]:
    """{key: (saved, asked)} where the run already in `run_dir` (if any) differs from `cfg`."""
    saved = read_summary(run_dir).get("config")
    if saved is None:
        return {}
    before, now = comparable(OmegaConf.create(saved)), comparable(cfg)
    return {k: (before.get(k), now.get(k)) for k in sorted(before.keys() | now.keys())
            if before.get(k) != now.get(k)}


def prepare(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Check that the folder can hold this run (the caller holds its lock); return its finished
    summary if it is done."""
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
    if summary.get("status") == "finished":
        return summary
    (run_dir / ".hydra").mkdir(exist_ok=True)
    write_text(run_dir / ".hydra/config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return None
