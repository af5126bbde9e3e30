"""Reproduction suite for the degradation problem and residual learning (He et al., 2015)."""
import os

# TensorFlow prints C++ start-up notices (oneDNN, CPU features) on every import. The log level
# hides the later ones; the first few come before its logger reads the level, so the C-level
# stderr is muted for the import alone. Python-side errors still raise normally.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_stderr, _devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
os.dup2(_devnull, 2)
try:
    import tensorflow  # noqa: F401
finally:
    os.dup2(_stderr, 2)
    os.close(_stderr)
    os.close(_devnull)
