"""Figure 7's layer responses of a finished run, recomputed from its final weights.

    python -m experiments.responses RUN_DIR [RUN_DIR ...]

Every run writes responses.csv when it finishes (src.models.responses says how the std is
taken); this rebuilds it from the run's final.weights.h5, e.g. after a change to how responses
are measured or to repair a damaged file. Data: as the run's (experiments.trained).
"""
import sys
from pathlib import Path

from experiments.trained import command, final_network
from src.runfiles import write_responses


def recompute(run_dir: Path) -> None:
    from src import data as cifar
    from src.models import responses
    with final_network(run_dir) as (_, model, data):
        write_responses(run_dir, responses(model, cifar.test_batches(data)))
    print(f"{run_dir}: wrote responses.csv")


def main(argv=sys.argv[1:]):
    return command(recompute, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
