"""The sweep on a real single-node Slurm cluster (tests/slurm/up.sh): jobs through sbatch,
requeue after a time limit, resources per job. Skipped, with the reason, where no cluster can be
started (not root, no apt-get)."""
import json
import subprocess
import time

import pandas as pd
import pytest

from src.process import PAUSE_AT
from tests.helpers import LIGHT, ROOT, metrics, run, run_process

pytestmark = pytest.mark.slurm
UP = ROOT / "tests/slurm/up.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster, stopped again after the module's tests."""
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(UP), str(state)], capture_output=True, text=True, timeout=900)
    if up.returncode == 3:
        pytest.skip(up.stderr.strip())
    assert up.returncode == 0, up.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(state / "slurm.conf"))
        yield state
    subprocess.run([str(UP), str(state), "stop"], timeout=60)


def sweep(results, *args):
    return run_process("budget=smoke", "launcher=slurm", f"results_dir={results}", *args,
                       module="src.sweep", timeout=1200)


def test_the_smoke_sweep_runs_through_sbatch_two_1_cpu_jobs_at_a_time_without_noise(slurm,
                                                                                   tmp_path):
    """Plain and ResNet-8, two seeds each: four sbatch jobs on a node of 2 CPUs."""
    p = subprocess.Popen(["make", "reproduce-cifar", "BUDGET=smoke", "LAUNCHER=slurm", "SEEDS=2",
                          f"RESULTS={tmp_path}", "ARGS=depth=8 " + " ".join(LIGHT) +
                          " hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    most = 0  # jobs running at once, on a node of 2 CPUs
    while p.poll() is None:
        running = subprocess.run(["squeue", "--noheader", "--states=RUNNING"],
                                 capture_output=True, text=True).stdout.splitlines()
        most = max(most, len(running))
        time.sleep(0.5)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert "sweep: 4 of 4 runs finished" in out
    assert "sacct" not in out + err and "accounting storage" not in out + err
    assert most == 2
    for run_dir in (tmp_path / "smoke/runs").iterdir():
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert (tmp_path / "smoke/figure6.png").exists()
    logs = list((tmp_path / "smoke/.submitit").glob("*/*_log.out"))  # each job's log
    assert len(logs) == 4
    for log in logs:
        assert "threads: 1 intra-op, 1 inter-op (SLURM_CPUS_PER_TASK=1)" in log.read_text()


@pytest.mark.slow  # 4-5.5 min on 2 cores (it waits for Slurm's time limit): make test-all
def test_a_run_longer_than_its_time_limit_is_requeued_and_its_curve_is_whole(slurm, tmp_path):
    """timeout_min=2: Slurm signals each job (USR2) 60 s before its limit; the run checkpoints,
    submitit requeues it, and the requeued job resumes, until the run is finished. The run waits
    at iteration 100 for the signal: at least one requeue however fast the machine. The one bound
    left: a job must have started its run within those 60 s, since submitit loads the task
    (importing TensorFlow, seconds) before it handles USR2, which kills a job that early."""
    long_run = ["depth=8", "shortcut=identity", "train.iterations=200", "log.every=10",
                "log.test_every=100", "train.deterministic=true"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PAUSE_AT, "100")  # the sbatch jobs get the sweep's environment
        result = sweep(tmp_path / "slurm", *long_run, "hydra.launcher.timeout_min=2",
                       "hydra.launcher.signal_delay_s=60", "hydra.launcher.max_num_timeout=10")
    assert result.returncode == 0, result.stderr
    assert "sweep: 1 of 1 runs finished" in result.stdout
    run_dir = tmp_path / "slurm/smoke/runs/identity-8-s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and len(summary["resumed_at"]) >= 1, summary
    requeued = metrics(run_dir)
    assert requeued.iteration.tolist() == list(range(10, 210, 10))  # no gap, no duplicate

    straight = run("budget=smoke", f"results_dir={tmp_path}/straight", *long_run)
    assert straight.returncode == 0, straight.stderr
    uninterrupted = metrics(tmp_path / "straight/smoke/runs/identity-8-s0")
    columns = ["iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error"]
    pd.testing.assert_frame_equal(requeued[columns], uninterrupted[columns], check_exact=True)
