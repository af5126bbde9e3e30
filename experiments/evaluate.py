"""A shipped network on the test set, from its final weights alone.

    python -m experiments.evaluate RUN_DIR [RUN_DIR ...]

A finished run keeps its final weights in final.weights.h5 (Keras' own format; BN statistics as
trained). This builds the network of the run's config with src.models, loads them with Keras'
`load_weights`, evaluates the run's test set (all 10,000 images, or the run's slice) and says in
one line whether it gives the run's own last evaluation: the same wrong predictions, so the same
error. Exit 1 where it does not. Data: as the run's (experiments.restore).
"""
import sys
from pathlib import Path

from omegaconf import OmegaConf

from experiments.restore import command, precision, run_data
from src import data as cifar
from src.rundir import WEIGHTS, read_summary
from src.train import build_model, evaluate, make_test_step


def test_error(run_dir: Path) -> tuple[float, float]:
    """(the error of the network in run_dir/final.weights.h5 on the run's test set, the run's
    own final test error), in %."""
    summary = read_summary(run_dir)
    weights = run_dir / WEIGHTS
    if summary is None or summary.status != "finished" or not weights.exists():
        raise SystemExit(f"error: {run_dir} holds no finished run with its {WEIGHTS} (runs "
                         "finished before the suite wrote them have none): nothing to evaluate")
    cfg = OmegaConf.create(summary.config)
    with precision(cfg):
        model = build_model(cfg)  # src.models.resnet of the run's config
        model.load_weights(weights)
        _, error = evaluate(make_test_step(model), cifar.test_batches(run_data(cfg)))
    return error, summary.test_error


def report(run_dir: Path) -> None:
    error, own = test_error(run_dir)
    same = error == own
    print(f"{run_dir}: test error {error:.2f}% from {WEIGHTS}; the run's last evaluation "
          f"{own:.2f}%: {'the same' if same else 'DIFFERENT'}")
    if not same:
        raise SystemExit(1)


def main(argv=sys.argv[1:]):
    return command(report, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
