"""Figure 7's layer responses of a run, recomputed from its checkpoint.

    python -m experiments.responses RUN_DIR [RUN_DIR ...]

Every run writes responses.csv when it finishes (src.models.responses says how the std is
taken); this rebuilds it for a run folder that still has its checkpoint.npz, e.g. after a change
to how responses are measured. Data: as the run's (experiments.restore).
"""
import sys
from pathlib import Path

from experiments.restore import command, restore
from src import data as cifar
from src.train import write_responses


def recompute(run_dir: Path) -> None:
    with restore(run_dir) as (_, model, data, _):
        write_responses(run_dir, model, cifar.test_batches(data))
    print(f"{run_dir}: wrote responses.csv")


def main(argv=sys.argv[1:]):
    return command(recompute, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
