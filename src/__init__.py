"""Reproduction suite for the degradation problem and residual learning (He et al., 2015).

Importing the package does nothing; the entry points (src.run, src.sweep, src.bench, the
experiments' command lines) call `configure_tensorflow()` before they import the modules that use
TensorFlow.
"""
import contextlib
import os
import signal
import sys

from src.machine import use_onednn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived (Ctrl-C, SIGTERM, a closed terminal). Not an Exception, as
    KeyboardInterrupt is not: a library's `except Exception` (inspect.getfullargspec has one, which
    Keras calls for every layer it builds) would turn it into its own error."""


@contextlib.contextmanager
def stops_raise():
    """While the block runs, each of STOP_SIGNALS raises Stopped(its number) in the main thread (a
    command then ends in one line, not a traceback); the previous handlers come back after it."""
    def stop_now(signum, _):
        raise Stopped(signum)
    previous = {s: signal.signal(s, stop_now) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def configure_tensorflow() -> None:
    """Import TensorFlow quietly, with oneDNN on where TensorFlow would leave it off
    (src/machine.py), and let GPUs take memory as needed; once per process.

    TensorFlow prints C++ start-up notices (oneDNN, CPU features) on import. The log level hides
    the later ones; the first few come before its logger reads the level, so the C-level stderr
    is muted for the import alone (Python-side errors still raise). Ctrl-C during the import, which
    takes seconds, ends the process with one line. GPU memory is taken as needed rather than all
    up front, so that several small runs (the joblib launcher's processes) can share one GPU."""
    if "tensorflow" in sys.modules:
        return
    use_onednn()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
    except KeyboardInterrupt:  # nothing has run yet
        os.dup2(stderr, 2)
        print("stopped by Ctrl-C while TensorFlow was starting; nothing was run", file=sys.stderr)
        os._exit(130)
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(devnull)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
