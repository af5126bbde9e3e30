"""A finished run's trained network, for the commands that analyse it (experiments.evaluate,
.responses, .gradients and every analysis): read-only.

`final_network` shares the run folder's lock (no training starts in it meanwhile, and a run that
trains is refused), builds the network of the run's config with src.models and loads the run's
final weights (final.weights.h5) into it; it writes nothing and renames nothing. A run without
them (finished before runs wrote them) is refused in one line. An analysis writes only its own
CSV, with `write_csv`.

Data: data.dir and data.download of the run's config, or TFDS_DATA_DIR and TFDS_DOWNLOAD where
they are set; the same slices, so the same mean image as the run. TensorFlow is imported when a
network is built, not with this module: `make figures` reads the analyses' CSVs without it.
"""
import contextlib
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from src.rundir import RunDirError, reading
from src.runfiles import WEIGHTS, DamagedFile, read_summary, write_atomic


@contextlib.contextmanager
def final_network(run_dir: Path):
    """(config, the finished network with its final weights, its data), under the run's
    precision policy and the folder's shared lock while the block runs."""
    from src.steps import build_model
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SystemExit(f"error: {run_dir} is not a run folder: nothing to analyse")
    if (run_dir / "runs").is_dir() and not (run_dir / "summary.json").exists():
        names = sorted(p.name for p in (run_dir / "runs").iterdir()
                       if (p / WEIGHTS).exists())
        raise SystemExit(f"error: {run_dir} is a budget's folder, not a run's: name a run folder "
                         f"in it, {run_dir / 'runs'}/<run>" + (
                             f"; those with weights: {', '.join(names)}" if names else
                             f"; none of its runs has its {WEIGHTS}"))
    try:
        with reading(run_dir):  # read under the lock: no run starts in the folder meanwhile
            summary = read_summary(run_dir)
            if summary is None or summary.status != "finished" or not (run_dir / WEIGHTS).exists():
                raise SystemExit(f"error: {run_dir} holds no finished run with its {WEIGHTS} "
                                 "(runs finished before the suite wrote them have none): nothing "
                                 "to analyse")
            cfg = OmegaConf.create(summary.config)
            with precision(cfg):
                model = build_model(cfg)  # src.models.resnet of the run's config
                load_final_weights(model, run_dir / WEIGHTS)
                yield cfg, model, run_data(cfg)
    except (RunDirError, DamagedFile) as e:
        raise SystemExit(f"error: {run_dir}: {e}" if isinstance(e, DamagedFile) else
                         f"error: {e}") from None


def load_final_weights(model, path: Path) -> None:
    """`path` into `model`, read-only; one line naming the file where it cannot be read (torn,
    emptied, not HDF5, or of another network)."""
    try:
        model.load_weights(path)
    except Exception as e:  # h5py's OSError, Keras' ValueError on a mismatch, ...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SystemExit(f"error: {path} cannot be read ({reason[:160]}): restore it (git "
                         "checkout -- the file, for a shipped run) or retrain the run into "
                         "another results_dir") from None


@contextlib.contextmanager
def precision(cfg):
    """The run's precision policy and TensorFloat-32 setting (off for runs whose config predates
    the key: float32) while the block runs."""
    import keras
    import tensorflow as tf
    policy = keras.mixed_precision.global_policy()
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    tf.config.experimental.enable_tensor_float_32_execution(cfg.train.get("tf32", False))
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
        keras.mixed_precision.set_global_policy(policy)


def run_data(cfg):
    """The run's slices of CIFAR-10 (so the same mean image), from its data.dir and
    data.download, or from TFDS_DATA_DIR and TFDS_DOWNLOAD where they are set, read as a run's
    config reads them."""
    from src import data as cifar
    from src.config import compose
    data, here = cfg.data, compose().data
    data_dir = here.dir if "TFDS_DATA_DIR" in os.environ else data.dir
    download = here.download if "TFDS_DOWNLOAD" in os.environ else data.download
    return cifar.load(data_dir, download, data.train_examples, data.test_examples,
                      data.validation)


def write_csv(run_dir: Path, name: str, frame) -> None:
    """An analysis's own CSV in the run folder, written whole or not at all."""
    write_atomic(Path(run_dir) / name, lambda f: frame.to_csv(f, index=False,
                                                            float_format="%.6g"))


def command(analyse, doc: str, argv, options: tuple[str, ...] = ()) -> int:
    """`python -m experiments.<name> [options] RUN_DIR [RUN_DIR ...]`: `analyse` each run folder;
    `options`: the ones the command has parsed already, named where another is given."""
    if not argv or argv[0] in ("-h", "--help"):
        print(doc)
        return 0 if argv else 2
    unknown = next((word for word in argv if word.startswith("-")), None)
    if unknown:
        takes = f"it takes {', '.join(options)}" if options else "it takes run folders only"
        print(f"error: {unknown} is not an option of this command: {takes} (--help)",
              file=sys.stderr)
        return 2
    from src import configure_tensorflow
    configure_tensorflow()
    from src.data import DataError
    try:
        for run_dir in argv:
            analyse(Path(run_dir))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
