"""Train one network of the paper's CIFAR-10 study, log its curves, and resume it.

A short custom loop around Keras' model, optimizer, schedule and loss, rather than `fit`: a run
must be checkpointable at any iteration (SIGTERM before preemption), including the half-finished
logging interval, and resume to the same CSV it would have written uninterrupted.
"""
import contextlib
import errno
import itertools
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from src import data as cifar
from src import machine
from src import rundir
from src.config import check_config, duration, smaller_budgets
from src.models import gradient_norms, responses, trainable_parameters
from src.checkpoint import Checkpoint
from src.steps import (WARMUP_WINDOW, Interval, build_model, evaluate, held_kernels,
                       make_optimizer, make_test_step, make_train_step, warmup_enabled,
                       warmup_iterations)
from src.process import PAUSE_AT, StopSignals, pause, preemption_signal, process_settings, stop_signals
from src.runfiles import (GradientsFile, Row, Summary, TensorBoard, machine_phrase, parse_rows,
                          provenance, read_gradients, read_rows, write_responses, write_rows,
                          write_weights)

class NumericalError(Exception):
    """The loss became NaN or infinite."""


# --- the run --------------------------------------------------------------------------------------

def train(cfg: DictConfig) -> Summary:
    """Train (or resume, or just report) the run that `cfg` describes; return its summary."""
    check_config(cfg)
    run_dir = Path(cfg.run_dir)
    with rundir.lock(cfg, run_dir):
        try:
            finished = rundir.prepare(cfg, run_dir)
            if finished is not None:
                print(f"{run_dir} is finished: train error {finished.train_error:.2f}%, test "
                      f"error {finished.test_error:.2f}% after {finished.iterations} iterations; "
                      "to train it again, give another results_dir (e.g. results_dir=mine)")
                return finished
            with process_settings(cfg), stop_signals() as stop:
                return Run(cfg, run_dir).loop(stop)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            free = shutil.disk_usage(run_dir).free
            raise rundir.RunDirError(
                f"no space left on the device of {run_dir} ({free / 2**20:.1f} MiB free): free "
                "some space, then run the same command again to resume from the last checkpoint"
            ) from None


@dataclass
class LoopState:
    """The loop's own state, saved in every checkpoint beside the interval's sums (which live on
    the device, in Interval), so a checkpoint may fall anywhere in a logging interval."""
    iteration: int = 0
    warming_up: bool = False
    warmup_ended_at: int | None = None  # the first iteration back at train.lr
    seconds: float = 0.0  # wall time of the run so far, evaluations included
    interval_seconds: float = 0.0  # training time of the current logging interval
    resumed_at: list = field(default_factory=list)  # every resume: Ctrl-C, a kill, a requeue
    commits: list = field(default_factory=list)  # the code of the start and of every resume
    machines: list = field(default_factory=list)  # the machine of each (runfiles.machine_phrase)
    saved_at: int | None = None  # the last checkpoint's iteration (not saved)
    checked: int = 0  # the last iteration whose loss was read and found finite (not saved)

    SAVED = ("iteration", "warming_up", "warmup_ended_at", "seconds", "interval_seconds",
             "resumed_at", "commits", "machines")

    @classmethod
    def from_checkpoint(cls, saved: dict | None, warming_up: bool, commit: str,
                        where: str) -> "LoopState":
        if saved is None:
            return cls(warming_up=warming_up, commits=[commit], machines=[where])
        at, resumed_at = saved["iteration"], saved.get("resumed_at", [])
        unknown = ["unknown"] * (len(resumed_at) + 1)  # checkpoints older than the record
        return cls(at, saved["warming_up"], saved.get("warmup_ended_at"), saved["seconds"],
                   saved["interval_seconds"], [*resumed_at, at],
                   [*saved.get("commits", unknown), commit],
                   [*saved.get("machines", unknown), where], saved_at=at, checked=at)

    def to_checkpoint(self, sums: dict) -> dict:
        return ({k: getattr(self, k) for k in self.SAVED} | {"recent_errors": sums["recent_errors"]}
                | {k: sums[k] for k in Interval.FLOATS})

    def clock(self, tick: float) -> float:
        """Add the time since `tick` to the run's and the interval's; the new tick."""
        now = time.perf_counter()
        self.seconds += now - tick
        self.interval_seconds += now - tick
        return now


class Run:
    """One run as the loop sees it: its network, steps and data, its files, and its state."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, t = cfg, run_dir, cfg.train
        self.data = cifar.load(cfg.data.dir, cfg.data.download, cfg.data.train_examples,
                               cfg.data.test_examples, cfg.data.validation)
        self.test_batches = cifar.test_batches(self.data)
        self.model = build_model(cfg)
        self.optimizer, self.schedule = make_optimizer(cfg)
        self.interval = Interval()
        self.mean = tf.constant(self.data.mean)  # on the training device, as augment needs it
        self.train_step = make_train_step(self.model, self.optimizer, self.schedule,
                                          self.interval, self.mean, t.warmup_until_error,
                                          warmup_iterations(cfg), t.jit_compile,
                                          held_kernels(self.model, cfg),  # before any resume
                                          t.steps_per_call)
        self.test_step = make_test_step(self.model, t.jit_compile)
        self.backward_signal = gradient_norms(self.model)
        self.checkpoint = Checkpoint(run_dir, cfg)
        every = cfg.checkpoint.every
        self.checkpoint_every = cfg.log.every if every == "auto" else every  # auto: widened once
        self.checkpoint_measured = every != "auto"  # a checkpoint's cost (save_checkpoint)
        curve = parse_rows(run_dir / "metrics.csv")[0]  # a checkpoint past its last row + 1 row
        after = (curve[-1]["iteration"] if curve else 0) + cfg.log.every  # has lost rows before it
        saved = self.checkpoint.load(self.model, self.optimizer, before=after)  # iterations too
        parameters = trainable_parameters(self.model)
        self.summary = provenance(OmegaConf.to_container(cfg, resolve=True), parameters)
        self.state = LoopState.from_checkpoint(saved, warmup_enabled(cfg), self.summary.commit,
                                               machine_phrase(self.summary.hardware))
        self.schedule.warming_up.assign(self.state.warming_up)
        self.interval.restore(saved or {})
        self.rows = read_rows(run_dir / "metrics.csv", self.state.iteration)
        self.first_row = len(self.rows)
        gradients = run_dir / "gradients.csv"
        self.gradients = GradientsFile(gradients, read_gradients(gradients, self.state.iteration))
        self.board = TensorBoard(run_dir, self.rows)
        self.live = sys.stdout.isatty()
        self.pause_at = int(os.environ.get(PAUSE_AT, -1))
        announce(cfg, self.model.name, parameters, self.state.iteration)

    def loop(self, stop: StopSignals) -> Summary:
        """Train from the state's iteration to the budget's last, logging, checkpointing and
        stopping on a signal as the config says."""
        cfg, state = self.cfg, self.state
        try:
            self.save_summary("running")
            batches = iter(cifar.train_batches(self.data, cfg.train.batch_size, cfg.seed,
                                               state.iteration))
            if state.iteration == 0:  # the backward signal of the initialisation, first batch
                first = next(batches)
                self.gradients = GradientsFile(self.gradients.path, self.backward_signal(
                    cifar.augment(first[1], self.mean), first[2], 0))
                batches = itertools.chain([first], batches)
            tick = time.perf_counter()
            while state.iteration < cfg.train.iterations:
                before = state.iteration
                draw, labels = self.take_steps(batches)
                tick = state.clock(tick)
                if before < self.pause_at <= state.iteration:
                    pause(stop)
                    tick = time.perf_counter()
                if self.live and state.iteration // 10 > before // 10:  # on a terminal only
                    self.live_line()
                if state.iteration % cfg.log.every == 0:
                    self.log_row(draw, labels)
                    tick = time.perf_counter()
                if state.iteration % self.checkpoint_every == 0 or stop.received:
                    self.save_checkpoint()
                if stop.received:
                    self.stop(stop)
            write_responses(self.run_dir, responses(self.model, self.test_batches))
            write_weights(self.run_dir, self.model)
            self.save_summary("finished")
            print(f"finished: train error {self.summary.train_error:.2f}%, test error "
                  f"{self.summary.test_error:.2f}% after {duration(state.seconds)}")
            return self.summary
        except OSError as e:
            if e.errno == errno.ENOSPC:  # a small summary may still fit where a checkpoint did not
                with contextlib.suppress(OSError):
                    self.save_summary("interrupted")
            raise
        finally:
            self.board.close()

    def take_steps(self, batches) -> tuple:
        """One call of the compiled step: one batch, or with train.steps_per_call = k up to k
        stacked (never past a logged row, a checkpoint, a pause point or the end); the last
        batch's draw and labels."""
        cfg, state = self.cfg, self.state
        k = cfg.train.steps_per_call
        if k == 1:
            _, draw, labels = next(batches)
            self.train_step(draw, labels)
            state.iteration += 1
            return draw, labels
        k = min(k, cfg.log.every - state.iteration % cfg.log.every,
                self.checkpoint_every - state.iteration % self.checkpoint_every,
                cfg.train.iterations - state.iteration,
                *([self.pause_at - state.iteration] if self.pause_at > state.iteration else []))
        taken = [next(batches) for _ in range(k)]
        self.train_step(cifar.Draw(*map(tf.stack, zip(*(b[1] for b in taken)))),
                        tf.stack([b[2] for b in taken]))
        state.iteration += k
        return taken[-1][1], taken[-1][2]

    def save_summary(self, status: str, error: str | None = None) -> None:
        last = self.rows[-1] if self.rows else {}
        s = self.summary
        s.status, s.iterations, s.error = status, self.state.iteration, error
        s.train_error, s.test_error = last.get("train_error"), last.get("test_error")
        s.resumed_at, s.commits, s.machines, s.wall_seconds = (
            self.state.resumed_at, self.state.commits, self.state.machines, self.state.seconds)
        s.warmup_ended_at = self.state.warmup_ended_at
        s.write(self.run_dir)

    def read_interval(self) -> dict:
        """The interval's sums, read from the device; stop on a NaN or infinite loss."""
        sums, state = self.interval.read(), self.state
        if not math.isfinite(sums["loss_sum"]):
            good = "none" if state.saved_at is None else f"iteration {state.saved_at:,}"
            what = (f"loss became {sums['loss_sum']} between iteration {state.checked:,} and "
                    f"{state.iteration:,}")
            self.save_summary("failed", error=what)
            raise NumericalError(f"{what} (lr {sums['lr']:g}); last good checkpoint: {good}")
        state.checked = state.iteration
        if sums["warmup_ended_at"] and state.warming_up:
            state.warming_up, state.warmup_ended_at = False, sums["warmup_ended_at"]
            t = self.cfg.train
            why = (f"after its fixed {warmup_iterations(self.cfg)} iterations"
                   if warmup_iterations(self.cfg) else f"training error of the last "
                   f"{WARMUP_WINDOW} batches below {t.warmup_until_error}%")
            print(f"warm-up over at iteration {state.warmup_ended_at}: {why}, lr back to {t.lr}")
        return sums

    def live_line(self) -> None:
        sums, state = self.read_interval(), self.state
        print(f"\r{progress(state.iteration, self.cfg.train.iterations, state.seconds)} "
              f"train {100 * sums['wrong'] / sums['seen']:5.2f}% (running) | "
              f"{sums['seen'] / state.interval_seconds:.0f} img/s ", end="", flush=True)

    def log_row(self, draw: cifar.Draw, labels) -> None:
        """A row of metrics.csv (and TensorBoard), with the test set every log.test_every
        iterations and the backward signal on the row's last batch, in gradients.csv.

        The row is written before the checkpoint that covers it, and rows past the checkpoint are
        dropped on resume: no gap and no duplicate, whenever the kill."""
        cfg, state = self.cfg, self.state
        sums = self.read_interval()
        start = time.perf_counter()
        gradients = self.backward_signal(cifar.augment(draw, self.mean), labels, state.iteration)
        tested = state.iteration % cfg.log.test_every == 0
        test_loss, test_error = evaluate(self.test_step, self.test_batches) if tested else (
            math.nan, math.nan)
        eval_seconds = time.perf_counter() - start
        state.seconds += eval_seconds
        self.rows.append(asdict(Row(
            iteration=state.iteration,
            epoch=round(state.iteration * cfg.train.batch_size / len(self.data.train_labels), 3),
            lr=float(f"{sums['lr']:.6g}"), train_loss=sums["loss_sum"] / sums["seen"],
            train_error=100 * sums["wrong"] / sums["seen"], test_loss=test_loss,
            test_error=test_error, seconds=round(state.seconds, 2),
            eval_seconds=round(eval_seconds, 2),
            images_per_second=round(sums["seen"] / state.interval_seconds, 1))))
        write_rows(self.run_dir / "metrics.csv", self.rows)
        self.gradients.add(gradients)
        self.board.write(self.rows[-1])
        self.interval.reset()
        state.interval_seconds = 0.0
        self.save_summary("running")
        print_row(self.rows[-1], cfg.train.iterations, self.live)
        if len(self.rows) == self.first_row + 1:  # the first measured rate of this process
            cpu_guard(cfg, self.rows[-1]["images_per_second"],
                      cfg.train.iterations - state.iteration)

    def save_checkpoint(self) -> None:
        sums = self.read_interval()  # never a checkpoint of NaN weights
        start = time.perf_counter()
        self.checkpoint.save(self.model, self.optimizer, self.state.to_checkpoint(sums))
        self.state.saved_at = self.state.iteration
        if not self.checkpoint_measured and self.rows:  # checkpoint.every=auto, first one timed
            self.checkpoint_measured = True
            row = self.rows[-1]
            row_seconds = self.cfg.log.every * self.cfg.train.batch_size / row["images_per_second"]
            self.checkpoint_every = checkpoint_interval(time.perf_counter() - start, row_seconds,
                                                        self.cfg.log.every)

    def stop(self, stop: StopSignals) -> None:
        """After a signal's checkpoint: say so, hand a preemption to submitit, exit."""
        signum = stop.received[0]
        self.save_summary("interrupted")
        print(f"stopped by signal {signum} at iteration {self.state.iteration}; "
              "run the same command again to resume", file=sys.stderr, flush=True)
        if signum == preemption_signal() and callable(stop.previous.get(signum)):
            stop.previous[signum](signum, None)  # submitit's: requeue this job, then exit
        sys.exit(128 + signum)


CHECKPOINT_SHARE = 0.01  # checkpoint.every=auto: at most this share of the training time


def checkpoint_interval(save_seconds: float, row_seconds: float, log_every: int) -> int:
    """checkpoint.every=auto: the smallest multiple of log.every whose training time is at least
    1/CHECKPOINT_SHARE times a checkpoint's (`row_seconds`: log.every iterations' training)."""
    return log_every * max(1, math.ceil(save_seconds / (CHECKPOINT_SHARE * row_seconds)))


def announce(cfg: DictConfig, name: str, parameters: int, iteration: int) -> None:
    t = cfg.train
    print(f"{name}: {parameters / 1e6:.2f}M parameters, {t.iterations} iterations of "
          f"{t.batch_size} images ({cfg.budget.name} budget) -> {cfg.run_dir}"
          + (f", resuming at iteration {iteration}" if iteration else ""), flush=True)
    if cfg.threads is not None:
        slurm = os.environ.get("SLURM_CPUS_PER_TASK")
        print(f"threads: {tf.config.threading.get_intra_op_parallelism_threads()} intra-op, "
              f"{tf.config.threading.get_inter_op_parallelism_threads()} inter-op"
              + (f" (SLURM_CPUS_PER_TASK={slurm})" if slurm else ""), flush=True)


def cpu_guard(cfg: DictConfig, images_per_second: float, iterations_left: int) -> None:
    """On a CPU, a run with over an hour to go says so in one line once its first row has
    measured its speed, with what the smaller budgets would take at that speed."""
    per_iteration = cfg.train.batch_size / images_per_second
    if iterations_left * per_iteration <= 3600 or machine.gpus():
        return
    print(f"note: ~{duration(iterations_left * per_iteration)} to go at {images_per_second:.0f} "
          f"images/s on this CPU (no GPU)"
          + smaller_budgets(per_iteration, cfg.train.iterations), flush=True)


def progress(iteration: int, iterations: int, seconds: float) -> str:
    done = iteration / iterations
    return (f"[{iteration:>6}/{iterations} {100 * done:5.1f}% ETA "
            f"{duration(seconds / done * (1 - done))}]")


def print_row(row: dict, iterations: int, live: bool) -> None:
    """One compact progress line per logged interval (over the live line, on a terminal)."""
    test = "   -  " if math.isnan(row["test_error"]) else f"{row['test_error']:5.2f}%"
    start = "\r" if live else ""
    print(f"{start}{progress(row['iteration'], iterations, row['seconds'])} lr {row['lr']:<6g} "
          f"train {row['train_error']:5.2f}% test {test} loss {row['train_loss']:.3f} | "
          f"{row['images_per_second']:.0f} img/s", flush=True)


