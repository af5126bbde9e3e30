"""Figure 7's layer responses of a run, recomputed from its checkpoint.

    python -m experiments.responses RUN_DIR [RUN_DIR ...]

Every run writes responses.csv when it finishes (src.models.responses says how the std is
taken); this rebuilds it for a run folder that still has its checkpoint.npz, e.g. after a change
to how responses are measured. Data: data.dir and data.download of the run's config, or
TFDS_DATA_DIR and TFDS_DOWNLOAD where they are set.
"""
import os
import sys
from pathlib import Path

from src import configure_tensorflow

configure_tensorflow()  # before anything that imports TensorFlow

from omegaconf import OmegaConf  # noqa: E402

from src import data as cifar  # noqa: E402
from src.data import DataError  # noqa: E402
from src.rundir import Checkpoint, read_summary  # noqa: E402
from src.train import build_model, make_optimizer, write_responses  # noqa: E402


def recompute(run_dir: Path) -> None:
    summary = read_summary(run_dir)
    if summary is None or not Checkpoint(run_dir).exists():
        raise SystemExit(f"error: {run_dir} holds no run with a checkpoint (summary.json and "
                         "checkpoint.npz): nothing to recompute")
    cfg = OmegaConf.create(summary.config)
    model = build_model(cfg)
    optimizer, _ = make_optimizer(cfg)
    optimizer.build(model.trainable_variables)
    if Checkpoint(run_dir, cfg).load(model, optimizer) is None:
        raise SystemExit(f"error: no usable checkpoint in {run_dir}")
    data_dir = os.environ.get("TFDS_DATA_DIR", cfg.data.dir)
    download = os.environ.get("TFDS_DOWNLOAD", str(cfg.data.download)).lower() == "true"
    data = cifar.load(data_dir, download, cfg.data.train_examples, cfg.data.test_examples,
                      cfg.data.validation)  # the same mean image as the run
    write_responses(run_dir, model, cifar.test_batches(data))
    print(f"{run_dir}: wrote responses.csv")


def main(argv=sys.argv[1:]):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        for run_dir in argv:
            recompute(Path(run_dir))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
