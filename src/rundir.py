"""The rules of a run folder: who may write it, what its files hold (the one definition of
summary.json, metrics.csv, gradients.csv, responses.csv and the final weights, each with one
writer and one reader; an analysis's CSV is its module's), how they are written, what its
checkpoint holds, and when an existing run in it may be resumed.

- One process at a time trains it: a run holds an OS-level lock on its folder's .lock (`lock`),
  which the kernel releases when the process ends, however it ends; analyses share it for
  reading (`reading`), so none reads a run while it trains.
- Every file is written to a temporary name and renamed, so a kill at any moment leaves the old
  or the new version whole.
- A folder holding a run with another config is refused (or set aside with overwrite=true).
"""
import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.checkpoint import Checkpoint, changes, comparable
from src.runfiles import (DamagedFile, Summary, parse_rows, read_summary, set_aside,
                          write_rows, write_text)

LOCK = ".lock"


class RunDirError(Exception):
    """The run folder cannot be used; the message names it and says why."""


@contextlib.contextmanager
def lock(cfg: DictConfig, run_dir: Path):
    """Hold the folder's lock (an exclusive flock on its .lock, which names the trainer's PID)
    for the duration of the block; a second process asking for it, or one while an analysis
    reads the folder, gets a RunDirError naming the folder at once."""
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
    except OSError:  # BlockingIOError: held; others (a file system without flock) the same way
        trainer = holder(run_dir)
        os.close(fd)
        raise RunDirError(f"{run_dir} is being trained by process {trainer}; wait for it to end "
                          "or stop it, then run the command again" if trainer else
                          f"{run_dir} is being read by an analysis; wait for it to end, then run "
                          "the command again") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no trainer now
        os.close(fd)  # releases the lock


def holder(run_dir: Path) -> str | None:
    """The PID of the process that trains in the folder now, or None (no one, or analyses,
    which share the lock)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except OSError:
        return os.read(fd, 32).decode().strip() or "unknown"
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(run_dir: Path):
    """Share the folder's lock while an analysis reads the run: no training starts in the folder
    meanwhile. RunDirError where a run trains in it. Where .lock cannot be made (a read-only
    copy of the runs), nothing can train there either, and the block runs without it."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        trainer = os.read(fd, 32).decode().strip() or "unknown"
        os.close(fd)
        raise RunDirError(f"{run_dir} is being trained by process {trainer}; analyse it when it "
                          "has finished") from None
    try:
        yield
    finally:
        os.close(fd)


def damage(run_dir: Path) -> str | None:
    """What is damaged in a run folder (summary.json or metrics.csv, or the curve of a run that
    says it is finished), or None."""
    try:
        summary = read_summary(run_dir)
    except DamagedFile as e:
        return str(e)
    rows, problem = parse_rows(Path(run_dir) / "metrics.csv")
    if problem:
        return f"metrics.csv: {problem}"
    return unfinished_curve(run_dir, summary, rows) if summary and summary.status == "finished" \
        else None


def unfinished_curve(run_dir: Path, summary, rows: list[dict]) -> str | None:
    """Why a run whose summary says finished is not: its curve (the whole rows of metrics.csv)
    is missing or does not end at its last iteration. None if it is whole."""
    if not (Path(run_dir) / "metrics.csv").exists():
        return "metrics.csv is missing"
    last = rows[-1]["iteration"] if rows else 0
    if last != summary.iterations:
        return f"metrics.csv ends at iteration {last:,}, not at the run's last, {summary.iterations:,}"
    return None


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
    summary = read_summary(run_dir)
    if summary and summary.status == "finished":  # even with its curve lost: it ran this config
        return summary.config
    if not ((run_dir / "metrics.csv").exists() or Checkpoint(run_dir).exists()):
        return None
    saved = summary.config if summary else None
    if saved is None and (run_dir / ".hydra/config.yaml").exists():
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra/config.yaml"))
    return saved


def config_changes(cfg: DictConfig, run_dir: Path) -> dict[str, tuple]:
    """{key: (saved, asked)} where the run already in `run_dir` (if any) differs from `cfg`."""
    saved = saved_config(Path(run_dir))
    if saved is None:
        return {}
    return changes(comparable(OmegaConf.create(saved)), comparable(cfg))


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
        lost = unfinished_curve(run_dir, summary, parse_rows(run_dir / "metrics.csv")[0])
        if lost is None:
            return summary
        print(f"warning: {run_dir} says it is finished but its {lost}: it trains again from "
              "the last checkpoint its curve covers (or from the start)", file=sys.stderr)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    write_text(run_dir / ".hydra/config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return None
