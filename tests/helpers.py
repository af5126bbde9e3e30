"""What the tests share: running the entry points (in this process or as processes of their
own), interrupting them, and reading a run's curve. Imported by the tests; the fixtures are in
conftest.py."""
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pandas as pd

import experiments.evaluate
import experiments.gradients
import experiments.landscape
import experiments.lesion
import experiments.responses
import src.run
import src.sweep
from src.process import PAUSE_AT as PAUSE_ENV

ROOT = Path(__file__).resolve().parent.parent


# Where an interrupted run waits for its signal (src.train's SRC_PAUSE_AT): inside the second
# logging interval of a run that logs every 10 iterations, so the signal, sent once the first row
# is written, stops it mid-interval and before its end however fast the machine trains.
PAUSE_AT = 15


def run_env(pause_at: int | None = None):
    """The environment of a test's process; `pause_at`: the iteration where its runs wait for a
    stop signal."""
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT),
            **({PAUSE_ENV: str(pause_at)} if pause_at is not None else {})}


STARTED: list[subprocess.Popen] = []  # every process `start` started: conftest ends them


def start(*args, module="src.run", pause_at: int | None = None):
    """`python -m module *args` as a process of its own (for kill -9, two runs at once, the
    sweep's children), in a process group of its own that the test's teardown kills whatever
    the test did (conftest's `no_process_left`); most tests use `run`, which saves each its
    start-up of about 4 s."""
    p = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=run_env(pause_at),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_ctrl_c, start_new_session=True)
    STARTED.append(p)
    return p


def end_started() -> list[int]:
    """Kill the process group of every started process that is still running (a failed test's
    sweep and its runs); their PIDs."""
    ended = []
    while STARTED:
        p = STARTED.pop()
        if p.poll() is None:
            ended.append(p.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # its children too, even
            os.killpg(p.pid, signal.SIGKILL)  # where it has ended itself
        p.wait()
        deadline = time.time() + 10  # its orphaned children are reaped by init
        with contextlib.suppress(ProcessLookupError, PermissionError):
            while time.time() < deadline:
                os.killpg(p.pid, 0)  # ProcessLookupError once the group is gone
                time.sleep(0.05)
    return ended


def default_ctrl_c() -> None:
    """Ctrl-C as a terminal delivers it: a shell starts background jobs (`make test &`) with
    SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_process(*args, module="src.run", timeout=600):
    p = start(*args, module=module)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


ENTRY_POINTS = {"src.run": lambda args: src.run.cli(),  # Hydra reads sys.argv
                "src.sweep": src.sweep.main,  # its runs' output is not captured: use run_process
                "experiments.evaluate": experiments.evaluate.main,
                "experiments.responses": experiments.responses.main,
                "experiments.gradients": experiments.gradients.main,
                "experiments.lesion": experiments.lesion.main,
                "experiments.landscape": experiments.landscape.main}


def run(*args, module="src.run"):
    """`python -m module *args` run in this process (one of ENTRY_POINTS): its exit
    code, stdout and stderr, as a CompletedProcess. Uncaught exceptions propagate, where a process
    would print a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with (mock.patch.object(sys, "argv", [module, *args]),
          mock.patch.dict(os.environ, {"HYDRA_FULL_ERROR": "0"}),
          contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)):
        try:
            code = ENTRY_POINTS[module](list(args)) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):  # as Python prints it on exit
                print(e.code, file=sys.stderr)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def wait_for_first_row(run_dir: Path, p: subprocess.Popen | None = None,
                       done: threading.Event | None = None) -> None:
    """Until the run in `run_dir` has logged a row (or process `p` ended, or `done` was set, or 5
    minutes passed)."""
    deadline = time.time() + 300
    while (not (run_dir / "metrics.csv").exists() and (p is None or p.poll() is None)
           and not (done and done.is_set()) and time.time() < deadline):
        time.sleep(0.01)


def interrupt_after_first_row(run_dir: Path, *overrides, sig=signal.SIGTERM, delay=0.0):
    """`run` src.run and send this process `sig` once `run_dir` has logged a row, as Ctrl-C or a
    scheduler would; return the stopped run. The run waits at iteration PAUSE_AT for the signal,
    so it stops between its first row and PAUSE_AT on a machine of any speed (asserted: a run
    that finished instead would make a resume test compare two straight runs). `delay`: seconds
    between the row and the signal."""
    done = threading.Event()

    def send():
        wait_for_first_row(run_dir, done=done)
        time.sleep(delay)
        if not done.is_set():
            os.kill(os.getpid(), sig)

    previous = signal.signal(sig, lambda *_: None)
    sender = threading.Thread(target=send)
    sender.start()
    try:
        with mock.patch.dict(os.environ, {PAUSE_ENV: str(PAUSE_AT)}):
            stopped = run(*overrides)
        assert stopped.returncode == 128 + sig, stopped.stderr
        return stopped
    finally:
        done.set()
        sender.join()
        signal.signal(sig, previous)


def interrupt_process_after_first_row(run_dir: Path, *args, sig=signal.SIGTERM, module="src.run"):
    """Start `python -m module *args`, wait until `run_dir` has logged a row, send the process
    `sig`, return the finished process. Its runs wait at iteration PAUSE_AT for a signal."""
    p = start(*args, module=module, pause_at=PAUSE_AT)
    wait_for_first_row(run_dir, p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


# Batches of 32 and 100 test images: steps and evaluations 4-5x cheaper than the smoke budget's.
LIGHT = ["train.batch_size=32", "data.test_examples=100"]
