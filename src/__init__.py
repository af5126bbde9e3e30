"""Reproduction suite for the degradation problem and residual learning (He et al., 2015)."""
import os
import sys

# TensorFlow prints C++ start-up notices (oneDNN, CPU features) on every import. The log level
# hides the later ones; the first few come before its logger reads the level, so the C-level
# stderr is muted for the import alone. Python-side errors still raise normally.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_stderr, _devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
os.dup2(_devnull, 2)
try:
    import tensorflow as tf
except KeyboardInterrupt:  # Ctrl-C while TensorFlow starts: nothing has run yet
    os.dup2(_stderr, 2)
    print("stopped by Ctrl-C while TensorFlow was starting; nothing was run", file=sys.stderr)
    os._exit(130)
finally:
    os.dup2(_stderr, 2)
    os.close(_stderr)
    os.close(_devnull)

# Take GPU memory as needed rather than all of it up front, so that several small runs (the
# joblib launcher's processes) can share one GPU.
for _gpu in tf.config.list_physical_devices("GPU"):
    tf.config.experimental.set_memory_growth(_gpu, True)
