"""What a run does to its process: its threads, seed, op determinism and precision policy, and
how it hears a stop (Ctrl-C, SIGTERM, SIGHUP, Slurm's warning before a time limit).
"""
import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import keras
import tensorflow as tf
from omegaconf import DictConfig
from tensorflow.python.framework import config as tf_config  # op determinism's off switch

from src import STOP_SIGNALS

# The tests' way to signal a run before its end on a machine of any speed: a run whose iteration
# reaches SRC_PAUSE_AT (exactly: a run resumed past it does not wait) waits there, up to
# PAUSE_SECONDS, for a stop signal, then goes on. Unset, as in every real run, nothing waits.
PAUSE_AT = "SRC_PAUSE_AT"
PAUSE_SECONDS = 300


@contextlib.contextmanager
def process_settings(cfg: DictConfig):
    """The process-wide settings a run makes (threads, seed, op determinism, precision policy,
    TensorFloat-32), and all but the threads restored when it ends (TensorFlow fixes those at
    its first op)."""
    policy, limit = keras.mixed_precision.global_policy(), sys.getrecursionlimit()
    determinism = tf_config.is_op_determinism_enabled()
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    use_threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    tf.config.experimental.enable_tensor_float_32_execution(cfg.train.tf32)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
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
                         for s in (*STOP_SIGNALS, preemption_signal())}
    try:
        yield stop
    finally:
        for s, handler in stop.previous.items():
            signal.signal(s, handler)


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
