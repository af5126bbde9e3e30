"""Train one network: `python -m src.run depth=56 shortcut=projection` (see conf/config.yaml).

With `-m` (Hydra multirun) a failing run is reported and the sweep goes on; `src.sweep` lists
the failures at the end.
"""
import ctypes
import os
import signal
import sys

from src import configure_tensorflow

configure_tensorflow()  # before anything that imports TensorFlow

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.errors import HydraException  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from src.config import CONF, ConfigError, register_resolvers  # also registers the schema  # noqa: E402
from src.data import DataError  # noqa: E402
from src.rundir import RunDirError  # noqa: E402
from src.slurm import poll_with_squeue  # noqa: E402
from src.train import NumericalError, train  # noqa: E402

EXPECTED = (ConfigError, DataError, NumericalError, RunDirError)


def stop_with_the_sweep() -> None:
    """A multirun started by src.sweep gets SIGTERM (checkpoint, then exit) when the sweep dies,
    however it dies, rather than training on alone (Linux: prctl PR_SET_PDEATHSIG)."""
    sweep = os.environ.get("SRC_SWEEP_PID")
    if sweep is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != int(sweep):  # the sweep died before this process could ask
        sys.exit(128 + signal.SIGTERM)


FAILED = []  # the runs of this process that failed (a multirun goes on past them)


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
def main(cfg: DictConfig) -> None:
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        train(cfg)
    except Exception as e:
        if not in_sweep and not isinstance(e, EXPECTED):
            raise
        print(f"error: {e}" if isinstance(e, EXPECTED) else f"error: {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
        FAILED.append(OmegaConf.select(cfg, "run_dir", throw_on_resolution_failure=False)
                      or f"depth={cfg.depth} shortcut={cfg.shortcut} seed={cfg.seed}")
        if not in_sweep:
            sys.exit(2)


def help_text(overrides: list[str]) -> str:
    """Every key conf/config.yaml documents, with its value for the run these overrides make and
    what it is, and what that run would cost on this machine (its step timed now)."""
    from src.bench import bare_step, this_machine
    from src.config import check_config, compose, documented_keys, duration
    from src.networks import Network
    cfg = compose(*overrides)
    check_config(cfg)
    lines = [__doc__.splitlines()[0], "", "key=value: for this run (the defaults of conf/config.yaml "
             "and the budget, with the overrides given), and what it is:"]
    for key, text in documented_keys():
        value = cfg.budget.name if key == "budget" else OmegaConf.select(cfg, key)
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else \
            str(list(value) if OmegaConf.is_list(value) else value)
        lines.append(f"  {key}={shown}".ljust(30) + f"  {text}")
    rate = bare_step(cfg.depth, cfg.train.precision, cfg.train.jit_compile, steps=3, cfg=cfg)[0]
    seconds = cfg.train.iterations * cfg.train.batch_size / rate
    lines += ["", f"This run: {Network.of(cfg).label}, {cfg.train.iterations:,} iterations of "
              f"{cfg.train.batch_size} images (budget {cfg.budget.name}), about "
              f"{duration(seconds)} on this machine ({rate:.0f} images/s, timed now; "
              f"{this_machine()}), into {cfg.run_dir}.",
              "A run folder that holds a finished run (the shipped ones under results/) is reported, "
              "not retrained: give results_dir=mine to train your own."]
    return "\n".join(lines)


def cli() -> None:
    """`python -m src.run [-m] overrides...` (Hydra reads them from sys.argv)."""
    FAILED.clear()
    register_resolvers()
    if any(word in ("-h", "--help") for word in sys.argv[1:]):
        try:
            print(help_text([w for w in sys.argv[1:] if w not in ("-h", "--help")]))
        except (ConfigError, HydraException, OmegaConfBaseException) as e:
            print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
            sys.exit(2)
        return
    stop_with_the_sweep()
    poll_with_squeue()  # for the Slurm launcher: no sacct noise where the cluster has no accounting
    main()
    if FAILED:  # a multirun whose runs (run in this process) failed
        print(f"error: {len(FAILED)} run(s) failed: {', '.join(FAILED)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
