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
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf
from tensorflow.python.framework import config as tf_config  # op determinism's off switch

from src import data as cifar
from src import rundir
from src.config import check_config, duration, smaller_budgets
from src.models import gradient_norms, resnet, responses, trainable_parameters
from src.rundir import (Checkpoint, Row, Summary, provenance, read_gradients, read_rows,
                        write_atomic, write_gradients, write_rows, write_weights)

# The warm-up (paper 4.2, 110 layers) ends once the training error, averaged over this many
# batches (6,400 images at batch 128: about +-0.5 points of noise), is below
# train.warmup_until_error. One batch alone is too noisy: at 80% its error has a std of 3.5 points,
# and a ResNet-110 whose warm-up ended on one lucky batch at iteration 51 had not recovered from
# lr 0.1 after 1,000 iterations (79% training error, quick budget; the paper's footnote says it
# starts converging at 0.1 after several epochs).
WARMUP_WINDOW = 50
# Pre-activation units warm up for a fixed length instead (their paper's appendix,
# arXiv:1603.05027: every CIFAR run at lr 0.01 for the first 400 iterations, then 0.1).
PREACT_WARMUP_ITERATIONS = 400

# The tests' way to signal a run before its end on a machine of any speed: a run whose iteration
# reaches SRC_PAUSE_AT (exactly: a run resumed past it does not wait) waits there, up to
# PAUSE_SECONDS, for a stop signal, then goes on. Unset, as in every real run, nothing waits.
PAUSE_AT = "SRC_PAUSE_AT"
PAUSE_SECONDS = 300


class NumericalError(Exception):
    """The loss became NaN or infinite."""


# --- configuration -------------------------------------------------------------------------

def build_model(cfg: DictConfig):
    """The network a run's config describes."""
    return resnet(cfg.depth, cfg.shortcut, cfg.train.weight_decay, cfg.block, cfg.batch_norm)


def warmup_enabled(cfg: DictConfig) -> bool:
    """Paper section 4.2: the 110-layer (and deeper) nets warm up at lr 0.01; the pre-activation
    paper's appendix: every pre-activation net does."""
    if cfg.train.warmup == "auto":
        return cfg.depth >= 110 or cfg.block == "preact"
    return bool(cfg.train.warmup)


def warmup_iterations(cfg: DictConfig) -> int:
    """The fixed length of the warm-up (pre-activation units), or 0: until the error rule."""
    return PREACT_WARMUP_ITERATIONS if cfg.block == "preact" else 0


# --- the schedule ----------------------------------------------------------------------------

class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr, divided by 10 at each milestone (fractions of the budget: 32k and 48k of 64k in the
    paper); while `warming_up` is set, the warm-up lr instead (paper, 110 layers)."""

    def __init__(self, lr, iterations, milestones, warmup_lr, warming_up=False):
        self.lr, self.warmup_lr = float(lr), float(warmup_lr)
        # At least 1: a milestone never falls on the first step (train.iterations=1).
        self.boundaries = [max(1, round(m * iterations)) for m in milestones]
        self.warming_up = tf.Variable(bool(warming_up), trainable=False, name="warming_up")

    def __call__(self, step):
        drops = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.boundaries] + [0.0])
        scheduled = self.lr * tf.pow(0.1, drops)
        return tf.where(self.warming_up, self.warmup_lr, scheduled)

    def get_config(self):
        return {"lr": self.lr, "boundaries": self.boundaries, "warmup_lr": self.warmup_lr}


def write_responses(run_dir: Path, model, test_batches) -> None:
    """responses.csv: Figure 7's layer responses of the network as it is now, on the test set."""
    table = responses(model, test_batches)
    write_atomic(run_dir / "responses.csv", lambda f: table.to_csv(f, index=False))


# --- the steps ---------------------------------------------------------------------------------

def count_wrong(logits, labels):
    return tf.reduce_sum(tf.cast(tf.argmax(logits, -1, tf.int32) != labels, tf.float32))


def make_optimizer(cfg: DictConfig) -> tuple[keras.optimizers.Optimizer, PaperSchedule]:
    """SGD with momentum on the paper's schedule (weight decay is in the model's L2 losses).

    The names are fixed: a checkpoint keys the optimizer's variables by their paths, which start
    with its name, and Keras would name a process's second optimizer sgd_1 (a multirun's second
    run), whose checkpoint a fresh process could not resume."""
    t = cfg.train
    schedule = PaperSchedule(t.lr, t.iterations, t.milestones, t.warmup_lr, warmup_enabled(cfg))
    optimizer = keras.optimizers.SGD(schedule, momentum=t.momentum, name="sgd")
    if t.precision == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
    return optimizer, schedule


class Interval:
    """The running sums of the current logging interval, as variables beside the model: the
    compiled step adds to them, and Python reads them (a device-to-host copy, which makes the host
    wait for the device) only to write a row, a live line or a checkpoint. Beside them, the
    training error of each of the last WARMUP_WINDOW batches, which the warm-up rule reads."""

    FLOATS = ("loss_sum", "wrong", "seen", "lr")  # lr: the one the last step used

    def __init__(self):
        self.sums = {k: tf.Variable(0.0, trainable=False, name=k) for k in self.FLOATS}
        self.warmup_ended_at = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.recent_errors = tf.Variable(tf.fill([WARMUP_WINDOW], 100.0), trainable=False)

    def read(self) -> dict:
        values = {k: float(v.numpy()) for k, v in self.sums.items()}
        return values | {"warmup_ended_at": int(self.warmup_ended_at.numpy()),
                         "recent_errors": self.recent_errors.numpy().tolist()}

    def restore(self, state: dict) -> None:
        """The sums of a checkpoint's state (zero if absent), and its recent errors if any."""
        for k, v in self.sums.items():
            v.assign(state.get(k, 0.0))
        if "recent_errors" in state:
            self.recent_errors.assign(state["recent_errors"])

    def reset(self) -> None:
        """A new logging interval (the recent errors run on across intervals)."""
        for v in self.sums.values():
            v.assign(0.0)


def make_train_step(model, optimizer, schedule: PaperSchedule, interval: Interval,
                    warmup_until_error=0.0, warmup_iterations=0, jit_compile=False):
    """One SGD step on a batch, compiled, that returns nothing: it adds the batch's loss, wrong
    predictions and size to `interval`, so the loop never waits for the device between steps.

    optimizer.iterations is the one step counter (the schedule reads it): every batch counts, also
    one whose float16 gradients overflowed and that Keras' loss-scale optimizer skipped without
    counting it, which would move every later milestone. The warm-up (paper, 110 layers) ends at
    the first step after which the mean training error of the last WARMUP_WINDOW batches is below
    `warmup_until_error` percent, or, given `warmup_iterations`, after that many steps."""
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)
    sums = interval.sums

    @tf.function(jit_compile=jit_compile)
    def train_step(images, labels):
        step = tf.identity(optimizer.iterations)
        sums["lr"].assign(tf.cast(optimizer.learning_rate, tf.float32))
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = cross_entropy(labels, logits)
            scaled = optimizer.scale_loss(loss + tf.add_n(model.losses))
        optimizer.apply_gradients(zip(tape.gradient(scaled, model.trainable_variables),
                                      model.trainable_variables))
        optimizer.iterations.assign(step + 1)
        wrong, seen = count_wrong(logits, labels), tf.cast(tf.size(labels), tf.float32)
        sums["loss_sum"].assign_add(loss * seen)
        sums["wrong"].assign_add(wrong)
        sums["seen"].assign_add(seen)
        interval.recent_errors.scatter_nd_update([[step % WARMUP_WINDOW]], [100 * wrong / seen])
        if warmup_iterations:
            over = step + 1 >= warmup_iterations
        else:
            window_full = step + 1 >= WARMUP_WINDOW  # the warm-up starts at step 0
            over = tf.logical_and(
                window_full, tf.reduce_mean(interval.recent_errors) < warmup_until_error)
        ends = tf.logical_and(schedule.warming_up, over)
        schedule.warming_up.assign(tf.logical_and(schedule.warming_up, tf.logical_not(ends)))
        interval.warmup_ended_at.assign(tf.where(ends, step + 1, interval.warmup_ended_at))

    return train_step


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
                      f"error {finished.test_error:.2f}% after {finished.iterations} iterations")
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
    saved_at: int | None = None  # the last checkpoint's iteration (not saved)
    checked: int = 0  # the last iteration whose loss was read and found finite (not saved)

    SAVED = ("iteration", "warming_up", "warmup_ended_at", "seconds", "interval_seconds",
             "resumed_at", "commits")

    @classmethod
    def from_checkpoint(cls, saved: dict | None, warming_up: bool, commit: str) -> "LoopState":
        if saved is None:
            return cls(warming_up=warming_up, commits=[commit])
        at, resumed_at = saved["iteration"], saved.get("resumed_at", [])
        earlier = saved.get("commits", ["unknown"] * (len(resumed_at) + 1))  # older checkpoints
        return cls(at, saved["warming_up"], saved.get("warmup_ended_at"), saved["seconds"],
                   saved["interval_seconds"], [*resumed_at, at], [*earlier, commit], saved_at=at,
                   checked=at)

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
        self.train_step = make_train_step(self.model, self.optimizer, self.schedule,
                                          self.interval, t.warmup_until_error,
                                          warmup_iterations(cfg), t.jit_compile)
        self.test_step = make_test_step(self.model, t.jit_compile)
        self.backward_signal = gradient_norms(self.model)
        self.checkpoint = Checkpoint(run_dir, cfg)
        saved = self.checkpoint.load(self.model, self.optimizer)  # optimizer.iterations included
        parameters = trainable_parameters(self.model)
        self.summary = provenance(OmegaConf.to_container(cfg, resolve=True), parameters)
        self.state = LoopState.from_checkpoint(saved, warmup_enabled(cfg), self.summary.commit)
        self.schedule.warming_up.assign(self.state.warming_up)
        self.interval.restore(saved or {})
        self.rows = read_rows(run_dir / "metrics.csv", self.state.iteration)
        self.first_row = len(self.rows)
        self.gradients = read_gradients(run_dir / "gradients.csv", self.state.iteration)
        self.board = TensorBoard(run_dir, self.rows)
        self.live = sys.stdout.isatty()
        self.pause_at = int(os.environ.get(PAUSE_AT, -1))
        announce(cfg, self.model.name, parameters, self.state.iteration)

    def loop(self, stop: "StopSignals") -> Summary:
        """Train from the state's iteration to the budget's last, logging, checkpointing and
        stopping on a signal as the config says."""
        cfg, state = self.cfg, self.state
        try:
            self.save_summary("running")
            batches = iter(cifar.train_batches(self.data, cfg.train.batch_size, cfg.seed,
                                               state.iteration))
            if state.iteration == 0:  # the backward signal of the initialisation, first batch
                first = next(batches)
                self.gradients = self.backward_signal(first[1], first[2], 0)
                batches = itertools.chain([first], batches)
            tick = time.perf_counter()
            while state.iteration < cfg.train.iterations:
                _, images, labels = next(batches)
                self.train_step(images, labels)
                state.iteration += 1
                tick = state.clock(tick)
                if state.iteration == self.pause_at:
                    pause(stop)
                    tick = time.perf_counter()
                if self.live and state.iteration % 10 == 0:  # between rows, on a terminal only
                    self.live_line()
                if state.iteration % cfg.log.every == 0:
                    self.log_row(images, labels)
                    tick = time.perf_counter()
                if state.iteration % cfg.checkpoint.every == 0 or stop.received:
                    self.save_checkpoint()
                if stop.received:
                    self.stop(stop)
            write_responses(self.run_dir, self.model, self.test_batches)
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

    def save_summary(self, status: str, error: str | None = None) -> None:
        last = self.rows[-1] if self.rows else {}
        s = self.summary
        s.status, s.iterations, s.error = status, self.state.iteration, error
        s.train_error, s.test_error = last.get("train_error"), last.get("test_error")
        s.resumed_at, s.commits, s.wall_seconds = (self.state.resumed_at, self.state.commits,
                                                   self.state.seconds)
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

    def log_row(self, images, labels) -> None:
        """A row of metrics.csv (and TensorBoard), with the test set every log.test_every
        iterations and the backward signal on the row's last batch, in gradients.csv.

        The row is written before the checkpoint that covers it, and rows past the checkpoint are
        dropped on resume: no gap and no duplicate, whenever the kill."""
        cfg, state = self.cfg, self.state
        sums = self.read_interval()
        start = time.perf_counter()
        self.gradients += self.backward_signal(images, labels, state.iteration)
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
        write_gradients(self.run_dir / "gradients.csv", self.gradients)
        self.board.write(self.rows[-1])
        self.interval.reset()
        state.interval_seconds = 0.0
        self.save_summary("running")
        report(self.rows[-1], cfg.train.iterations, self.live)
        if len(self.rows) == self.first_row + 1:  # the first measured rate of this process
            cpu_guard(cfg, self.rows[-1]["images_per_second"],
                      cfg.train.iterations - state.iteration)

    def save_checkpoint(self) -> None:
        sums = self.read_interval()  # never a checkpoint of NaN weights
        self.checkpoint.save(self.model, self.optimizer, self.state.to_checkpoint(sums))
        self.state.saved_at = self.state.iteration

    def stop(self, stop: "StopSignals") -> None:
        """After a signal's checkpoint: say so, hand a preemption to submitit, exit."""
        signum = stop.received[0]
        self.save_summary("interrupted")
        print(f"stopped by signal {signum} at iteration {self.state.iteration}; "
              "run the same command again to resume", file=sys.stderr, flush=True)
        if signum == preemption_signal() and callable(stop.previous.get(signum)):
            stop.previous[signum](signum, None)  # submitit's: requeue this job, then exit
        sys.exit(128 + signum)


def make_test_step(model, jit_compile=False):
    """The summed loss and the wrong predictions of a test batch, compiled (no Python control
    flow to convert; AutoGraph would also warn on a multirun's second run, whose step closes over
    another model)."""
    @tf.function(jit_compile=jit_compile, autograph=False)
    def test_step(images, labels):
        logits = model(images, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, True))
        return loss, count_wrong(logits, labels)
    return test_step


def evaluate(test_step, test_batches) -> tuple[float, float]:
    """(mean loss, error in %) over the test set (or its slice)."""
    loss = wrong = 0.0
    n = 0
    for images, labels in test_batches:
        batch_loss, batch_wrong = test_step(images, labels)
        loss, wrong, n = loss + batch_loss, wrong + batch_wrong, n + len(labels)
    return float(loss) / n, 100 * float(wrong) / n


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


@contextlib.contextmanager
def process_settings(cfg: DictConfig):
    """The process-wide settings a run makes (threads, seed, op determinism, precision policy),
    and the precision policy, op determinism and recursion limit restored when it ends (the
    threads cannot be: TensorFlow fixes them at its first op)."""
    policy, limit = keras.mixed_precision.global_policy(), sys.getrecursionlimit()
    determinism = tf_config.is_op_determinism_enabled()
    use_threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        sys.setrecursionlimit(limit)
        if not determinism:
            tf_config.disable_op_determinism()


@dataclass
class StopSignals:
    received: list  # the signals that arrived, in order
    previous: dict  # the handlers they replaced


def pause(stop: StopSignals) -> None:
    """Wait for a stop signal (see PAUSE_AT), at most PAUSE_SECONDS."""
    deadline = time.monotonic() + PAUSE_SECONDS
    while not stop.received and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def stop_signals():
    """Ctrl-C, SIGTERM, SIGHUP (a closed terminal or ssh session), or the signal Slurm sends
    before a time limit or preemption (submitit's, USR2 unless SUBMITIT_PREEMPT_SIGNAL says
    otherwise) are recorded while the block runs, for the loop to finish its step, checkpoint
    and exit; the previous handlers come back after it. Signals reach the main thread only."""
    stop = StopSignals([], {})
    if threading.current_thread() is threading.main_thread():
        stop.previous = {s: signal.signal(s, lambda signum, _: stop.received.append(signum))
                         for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                   preemption_signal())}
    try:
        yield stop
    finally:
        for s, handler in stop.previous.items():
            signal.signal(s, handler)


class TensorBoard:
    """TensorBoard scalars of the run in <run>/tensorboard/, a view of metrics.csv: written anew
    from the kept rows whenever the run (re)starts, then one step per row, so a resumed run has
    no duplicate or out-of-order points (rows past its checkpoint are dropped from both)."""

    SCALARS = {"error/train": "train_error", "error/test": "test_error",
               "loss/train": "train_loss", "loss/test": "test_loss", "lr": "lr",
               "images_per_second": "images_per_second"}

    def __init__(self, run_dir: Path, rows: list[dict]):
        folder = run_dir / "tensorboard"
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = tf.summary.create_file_writer(str(folder))
        for row in rows:
            self.write(row, flush=False)
        self.writer.flush()

    def write(self, row: dict, flush=True) -> None:
        with self.writer.as_default(step=int(row["iteration"])):
            for tag, column in self.SCALARS.items():
                if not math.isnan(row[column]):
                    tf.summary.scalar(tag, row[column])
        if flush:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def cpu_guard(cfg: DictConfig, images_per_second: float, iterations_left: int) -> None:
    """On a CPU, a run with over an hour to go says so in one line once its first row has
    measured its speed, with what the smaller budgets would take at that speed."""
    per_iteration = cfg.train.batch_size / images_per_second
    if iterations_left * per_iteration <= 3600 or tf.config.list_physical_devices("GPU"):
        return
    print(f"note: ~{duration(iterations_left * per_iteration)} to go at {images_per_second:.0f} "
          f"images/s on this CPU (no GPU)"
          + smaller_budgets(per_iteration, cfg.train.iterations), flush=True)


def use_threads(threads: int | None) -> None:
    """TensorFlow's intra- and inter-op thread pools: `threads` each (None: its default, every
    core). A process can set them only before its first op: a later run of the same process
    (a multirun) that asks for others is told, in one line, that they stay as they are."""
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if threads is None or threads == current:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        print(f"warning: threads={threads} cannot take effect: this process already runs "
              f"TensorFlow with {current or 'its default number of'} threads", file=sys.stderr)


def preemption_signal() -> signal.Signals:
    """The signal a Slurm job gets before its time limit or preemption: submitit asks Slurm for
    USR2 (or SUBMITIT_PREEMPT_SIGNAL) and requeues the job when it arrives."""
    return signal.Signals["SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")]


def progress(iteration: int, iterations: int, seconds: float) -> str:
    done = iteration / iterations
    return (f"[{iteration:>6}/{iterations} {100 * done:5.1f}% ETA "
            f"{duration(seconds / done * (1 - done))}]")


def report(row: dict, iterations: int, live: bool) -> None:
    """One compact progress line per logged interval (over the live line, on a terminal)."""
    test = "   -  " if math.isnan(row["test_error"]) else f"{row['test_error']:5.2f}%"
    start = "\r" if live else ""
    print(f"{start}{progress(row['iteration'], iterations, row['seconds'])} lr {row['lr']:<6g} "
          f"train {row['train_error']:5.2f}% test {test} loss {row['train_loss']:.3f} | "
          f"{row['images_per_second']:.0f} img/s", flush=True)


