"""`make park`: carry unfinished runs to the next machine through git.

    python -m src.park [RESULTS]    (RESULTS: the root of the run folders, default results)

One commit on the current branch holds, for every run folder under RESULTS/<budget>/runs/ (and
deeper: RESULTS/interventions/<name>/<budget>/runs/):
- an unfinished run with a checkpoint: its small files (curves, summary, TensorBoard) and its last
  checkpoint, `checkpoint.npz`; its committed summary says `parked` at the checkpoint's iteration;
- a finished run that was parked before, or that is not yet in git in a budget folder git holds:
  its small files and final weights, and no checkpoint (a parked one is removed from the tree).
Whatever else is staged or changed stays as it was, outside the commit. A clone resumes a parked
run from its checkpoint (`make reproduce-cifar`, `python -m src.run`) as the machine that parked
it would. Park may run while the runs train: the checkpoint is read once, whole (the trainer
replaces it atomically), before the files that follow it, so the committed curve reaches at
least the checkpoint's iteration (a resume drops the rows after it).

Standard library and git only (no TensorFlow, no NumPy): it must take seconds on a machine about
to go. Each park adds one checkpoint per unfinished run to the repository's history (docs/runs.md
says how much): park when a machine is about to go, not every hour.
"""
import ast
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT = "checkpoint.npz"
PARKED = "parked"  # a run's status in a committed summary.json: unfinished, its checkpoint in git


class ParkError(Exception):
    """Parking cannot be done; the message says why."""


@dataclass
class Parked:
    folder: Path  # relative to the repository's top
    iteration: int
    iterations: int
    checkpoint: bytes


def checkpoint_iteration(data: bytes) -> int:
    """The iteration a checkpoint.npz (as bytes) was saved at: its `state` array, a 0-d unicode
    .npy holding the loop's state as JSON, read without NumPy."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        raw = archive.read("state.npy")
    if not raw.startswith(b"\x93NUMPY"):
        raise ValueError("state.npy is not a .npy array")
    size_bytes = 2 if raw[6] == 1 else 4  # format 1.0: 2-byte header length, 2.0 and 3.0: 4
    length = int.from_bytes(raw[8:8 + size_bytes], "little")
    start = 8 + size_bytes
    header = ast.literal_eval(raw[start:start + length].decode("latin1"))
    if not header["descr"].startswith("<U") or header["shape"] != ():
        raise ValueError(f"state.npy has dtype {header['descr']}, not a unicode scalar")
    text = raw[start + length:].decode("utf-32-le").rstrip("\x00")
    return json.loads(text)["iteration"]


def git(*args, cwd: Path, env: dict | None = None, data: bytes | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True,
                            env={**os.environ, **(env or {})})
    if result.returncode:
        raise ParkError(f"git {args[0]} failed: {result.stderr.decode().strip()}")
    return result.stdout.decode()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def survey(results: Path, top: Path) -> tuple[list[Parked], list[Path], list[str]]:
    """(the unfinished runs to park, the finished runs to commit, what was passed over and why)."""
    tracked = set(git("ls-files", "--", str(results), cwd=top).splitlines())
    changed = {line[3:] for line in git("status", "--porcelain", "--untracked-files=all", "--",
                                        str(results), cwd=top).splitlines()}
    to_park, finished, passed = [], [], []
    for run_dir in sorted(results.glob("**/runs/*/")):
        folder = run_dir.relative_to(top)
        summary = read_json(run_dir / "summary.json")
        if summary is None:
            continue  # not a run that made progress (or a damaged one: the run repairs it)
        if summary.get("status") == "finished":
            parked_before = (folder / CHECKPOINT).as_posix() in tracked
            in_git_budget = any(path.startswith(folder.parent.parent.as_posix() + "/")
                                for path in tracked)
            new = any(path.startswith(folder.as_posix() + "/") for path in changed)
            if parked_before or (new and in_git_budget):
                finished.append(folder)
            continue
        try:
            with open(run_dir / CHECKPOINT, "rb") as f:  # one read of one version of it
                data = f.read()
            iteration = checkpoint_iteration(data)
        except FileNotFoundError:
            passed.append(f"{folder.name}: no checkpoint yet, nothing to carry")
            continue
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            passed.append(f"{folder.name}: its {CHECKPOINT} cannot be read ({e}); not parked")
            continue
        iterations = summary.get("config", {}).get("train", {}).get("iterations", 0)
        to_park.append(Parked(folder, iteration, iterations, data))
    return to_park, finished, passed


def blob(data: bytes, top: Path) -> str:
    return git("hash-object", "-w", "--stdin", cwd=top, data=data).strip()


def park(results: Path) -> str | None:
    """Commit what `results` holds to park (the module's docstring); the commit's message, or None
    where there was nothing to park."""
    results = Path(results).resolve()
    if not results.is_dir():
        raise ParkError(f"RESULTS={results} is not a folder of run folders")
    try:
        top = Path(git("rev-parse", "--show-toplevel", cwd=results).strip())
    except ParkError:
        raise ParkError(f"{results} is not inside a git repository: parking commits to one") \
            from None
    to_park, finished, passed = survey(results, top)
    for line in passed:
        print(f"park: {line}")
    if not (to_park or finished):
        return None
    with tempfile.TemporaryDirectory() as tmp:  # an index of its own: the user's stays as it is
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        has_head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=top,
                                  capture_output=True).returncode == 0
        if has_head:
            git("read-tree", "HEAD", cwd=top, env=index)
        entries = []
        for run in to_park:  # the checkpoint (read above) before the files that follow it
            entries.append((blob(run.checkpoint, top), run.folder / CHECKPOINT))
        folders = [run.folder for run in to_park] + finished
        git("add", "--all", "--", *map(str, folders), cwd=top, env=index)
        for run in to_park:  # its committed summary: parked, at the checkpoint's iteration
            summary = read_json(top / run.folder / "summary.json")
            summary |= {"status": PARKED, "iterations": run.iteration}
            entries.append((blob(json.dumps(summary, indent=2).encode() + b"\n", top),
                            run.folder / "summary.json"))
        for sha, path in entries:
            git("update-index", "--add", "--cacheinfo", f"100644,{sha},{path.as_posix()}",
                cwd=top, env=index)
        for folder in finished:
            git("rm", "--cached", "--quiet", "--ignore-unmatch", "--",
                (folder / CHECKPOINT).as_posix(), cwd=top, env=index)
        tree = git("write-tree", cwd=top, env=index).strip()
        if has_head and tree == git("rev-parse", "HEAD^{tree}", cwd=top).strip():
            return None  # parked already, as it is now (a stopped run parked twice)
        def named(folder: Path) -> str:  # none-32-s0; interventions/<name>/long/none-56-s0
            deeper = folder.parent.parent.parent != results.relative_to(top)
            return "/".join([*folder.parent.parent.relative_to(results.relative_to(top)).parts,
                             folder.name]) if deeper else folder.name
        message = "park: " + ", ".join(
            [f"{named(run.folder)} at {run.iteration:,} of {run.iterations:,}" for run in to_park]
            + [f"{named(folder)} finished" for folder in finished])
        parent = ["-p", "HEAD"] if has_head else []
        commit = git("commit-tree", tree, *parent, "-m", message, cwd=top).strip()
        git("update-ref", "-m", "park", "HEAD", commit, cwd=top)
    # The user's index: the parked paths as committed, nothing else touched.
    git("reset", "--quiet", "HEAD", "--", *map(str, folders), cwd=top)
    return message


def main(argv=sys.argv[1:]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(argv) > 1:
        print(f"error: park takes one folder (RESULTS), not {' '.join(argv)}", file=sys.stderr)
        return 2
    try:
        message = park(Path(argv[0] if argv else "results"))
    except ParkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(message or "park: nothing new to park (no unfinished run with a checkpoint that is not "
          "parked as it is, no finished run to commit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
