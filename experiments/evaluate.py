"""A shipped network on the test set, from its final weights alone.

    python -m experiments.evaluate RUN_DIR [RUN_DIR ...]

A finished run keeps its final weights in final.weights.h5 (Keras' own format; BN statistics as
trained). This builds the network of the run's config with src.models, loads them with Keras'
`load_weights`, evaluates the run's test set (all 10,000 images, or the run's slice) and says in
one line whether it gives the run's own last evaluation: the same wrong predictions, so the same
error. Exit 1 where it does not. Data: as the run's (experiments.trained).
"""
import sys
from pathlib import Path

from experiments.trained import command, final_network
from src.runfiles import WEIGHTS, read_summary


def test_error(run_dir: Path) -> tuple[float, float]:
    """(the error of the network in run_dir/final.weights.h5 on the run's test set, the run's
    own final test error), in %."""
    from src import data as cifar
    from src.steps import evaluate, make_test_step
    with final_network(run_dir) as (_, model, data):
        _, error = evaluate(make_test_step(model), cifar.test_batches(data))
    return error, read_summary(run_dir).test_error


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
