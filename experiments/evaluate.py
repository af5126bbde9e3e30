"""A shipped network on the test set, from its final weights alone.

    python -m experiments.evaluate RUN_DIR [RUN_DIR ...]

A finished run keeps its final weights in final.weights.h5 (Keras' own format; BN statistics as
trained). This builds the network of the run's config with src.models, loads them with Keras'
`load_weights`, evaluates the run's test set (all 10,000 images, or the run's slice) and says in
one line whether it gives the run's own last evaluation. On the kind of device the run was
trained on (a CPU, a GPU) it must be the same error: the same wrong predictions. On the other
kind the convolutions are other kernels, and a test image on a near-tie may change its
prediction: the error must then be within CROSS_DEVICE_POINTS, and the line says which of the
two comparisons it made. Exit 1 where it fails. Data: as the run's (experiments.trained).
"""
import sys
from pathlib import Path

from experiments.trained import command, final_network
from src.runfiles import WEIGHTS, read_summary

CROSS_DEVICE_POINTS = 0.1  # % of the test set: 10 of 10,000 predictions on near-ties


def test_error(run_dir: Path) -> tuple[float, float]:
    """(the error of the network in run_dir/final.weights.h5 on the run's test set, the run's
    own final test error), in %."""
    from src import data as cifar
    from src.steps import evaluate, make_test_step
    with final_network(run_dir) as (_, model, data):
        _, error = evaluate(make_test_step(model), cifar.test_batches(data))
    return error, read_summary(run_dir).test_error


def device_kind(gpus) -> str:
    return "GPU" if gpus else "CPU"


def report(run_dir: Path) -> None:
    from src import machine
    error, own = test_error(run_dir)
    trained, here = device_kind(read_summary(run_dir).hardware["gpus"]), device_kind(machine.gpus())
    if trained == here:
        ok, rule = error == own, f"trained and evaluated on a {here}: must be the same"
    else:
        ok = abs(error - own) <= CROSS_DEVICE_POINTS + 1e-9
        rule = (f"trained on a {trained}, evaluated on a {here}: must be within "
                f"{CROSS_DEVICE_POINTS} points")
    print(f"{run_dir}: test error {error:.2f}% from {WEIGHTS}; the run's last evaluation "
          f"{own:.2f}% ({rule}): {'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit(1)


def main(argv=sys.argv[1:]):
    return command(report, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
