"""End to end on the synthetic CIFAR-shaped set (one test on the real CIFAR-10): the run folder,
resume, interruption, faults."""
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from src.config import compose
from src.checkpoint import Checkpoint
from src.machine import ONEDNN
from src.runfiles import COLUMNS, GRADIENT_COLUMNS, machine_phrase
from src.steps import build_model, make_optimizer
from tests.helpers import LIGHT, ROOT, interrupt_after_first_row, metrics, run, start

LOSSES_AND_ERRORS = ["train_loss", "train_error", "test_loss", "test_error"]


def test_smoke_run_writes_a_complete_run_folder(smoke):
    overrides, run_dir = smoke
    result = run(*overrides)
    assert result.returncode == 0, result.stderr
    rows = metrics(run_dir)
    assert list(rows.columns) == COLUMNS
    assert rows.iteration.tolist() == [10, 20, 30]
    assert rows.lr.tolist() == pytest.approx([0.1, 0.01, 0.001])
    assert rows.epoch.tolist() == pytest.approx([0.125, 0.25, 0.375])  # 2560 images, batch 32
    assert ((rows.train_error >= 0) & (rows.train_error <= 100)).all()
    assert rows.test_error.notna().all() and (rows.images_per_second > 0).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 30
    assert summary["train_error"] == rows.train_error.iloc[-1]  # final, not best
    assert summary["test_error"] == rows.test_error.iloc[-1]
    assert summary["parameters"] == 75_290
    assert summary["config"]["depth"] == 8 and summary["hardware"]["cpu"]
    assert summary["config"]["train"]["tf32"] is False  # in the fingerprint and the recipe hash
    hardware = summary["hardware"]
    if platform.machine() == "x86_64":  # the suite's oneDNN setting, unless the user made one
        assert hardware["onednn"] == {"on": os.environ.get(ONEDNN, "1") == "1",
                                      ONEDNN: os.environ.get(ONEDNN, "1")}
        assert {"AVX2", "FMA"} <= set(hardware["vector_extensions"])  # every CI machine's
    assert summary["machines"] == [machine_phrase(hardware)] and "oneDNN" in summary["machines"][0]
    assert {"tensorflow", "keras"} <= summary["versions"].keys() and summary["commit"]
    assert (run_dir / ".hydra/config.yaml").exists() and (run_dir / "checkpoint.npz").exists()
    assert "[    30/30 100.0% ETA 00:00:00] lr 0.001" in result.stdout  # the progress line
    assert "Traceback" not in result.stderr

    again = run(*overrides)  # a finished run is reported, not retrained
    assert again.returncode == 0 and "is finished" in again.stdout
    assert metrics(run_dir).equals(rows)

    responses = pd.read_csv(run_dir / "responses.csv")  # Figure 7, from the final weights
    assert responses["index"].tolist() == list(range(1, 8))  # the stem and 6 3x3 convs
    assert responses.layer.iloc[0] == "stem_bn" and (responses["std"] > 0).all()
    (run_dir / "responses.csv").unlink()
    again = run(str(run_dir), module="experiments.responses")  # from the final weights
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "responses.csv"), responses, rtol=1e-5)

    gradients = pd.read_csv(run_dir / "gradients.csv")  # the backward signal at every row
    assert list(gradients.columns) == GRADIENT_COLUMNS
    assert gradients.iteration.tolist() == [i for i in (0, 10, 20, 30) for _ in range(7)]
    assert gradients.layer.tolist()[:3] == ["stem", "stage1_block1_1", "stage1_block1_2"]
    assert (gradients[GRADIENT_COLUMNS[3:]] > 0).all().all()
    again = run(str(run_dir), module="experiments.gradients")  # from the final weights
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "gradients.csv"), gradients, rtol=1e-4)

    lesion = run(str(run_dir), module="experiments.lesion")  # each unit removed in turn
    assert lesion.returncode == 0, lesion.stderr
    table = pd.read_csv(run_dir / "lesion.csv")
    assert table["index"].tolist() == [0, 1, 2, 3] and table.unit.iloc[0] == "none"
    assert table.test_error.iloc[0] == json.loads((run_dir / "summary.json").read_text())[
        "test_error"]  # the network whole: the run's own last evaluation
    assert table.test_error.between(0, 100).all()

    initial = gradients[gradients.iteration == 0].reset_index(drop=True)
    (run_dir / "gradients.csv").write_text(  # as a run wrote it before iteration 0 was measured
        gradients[gradients.iteration > 0][GRADIENT_COLUMNS[:5]].to_csv(index=False))
    again = run("--initial", str(run_dir), module="experiments.gradients")  # from the seed alone
    assert again.returncode == 0, again.stderr
    recomputed = pd.read_csv(run_dir / "gradients.csv")
    pd.testing.assert_frame_equal(recomputed[recomputed.iteration == 0], initial, rtol=1e-5)
    assert recomputed[recomputed.iteration > 0][GRADIENT_COLUMNS[5:]].isna().all().all()


def tensorboard_steps(run_dir, tag="error/train") -> list[int]:
    """The steps of one scalar in the run's TensorBoard events, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return [event.step for event in events.Tensors(tag)]


@pytest.mark.parametrize("block", ["bottleneck", "preact_bottleneck"])
def test_a_bottleneck_net_trains_end_to_end_under_its_papers_warm_up(smoke, block):
    """The smallest bottleneck net (20 = 9 x 2 + 2 layers) through src.run and the lesion: its
    folder named by its unit, lr 0.01 throughout (the pre-activation paper's 400-iteration
    warm-up is longer than these 4 iterations), its parameters counted in the summary."""
    overrides, run_dir = smoke
    overrides = [*overrides[:-1], "depth=20", f"block={block}", "shortcut=projection",
                 "train.iterations=4", "log.every=2", "log.test_every=2", overrides[-1]]
    result = run(*overrides)
    assert result.returncode == 0, result.stderr
    run_dir = run_dir.parent / f"{block}-projection-20-s0"
    assert metrics(run_dir).lr.tolist() == pytest.approx([0.01, 0.01])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["warmup_ended_at"] is None
    model = build_model(compose(*overrides[:-1]))
    assert summary["parameters"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    lesion = run(str(run_dir), module="experiments.lesion")
    assert lesion.returncode == 0, lesion.stderr
    table = pd.read_csv(run_dir / "lesion.csv")
    assert table.unit.tolist() == ["none"] + [f"stage{s}_block{b}" for s in (1, 2, 3)
                                              for b in (1, 2)]


def test_the_landscape_of_a_short_run_meets_its_final_weights_on_the_line_and_the_plane(smoke):
    """experiments.landscape on a finished run: the line's a = 1 and the plane's centre are both
    the final weights (the same loss), a rerun draws the same seeded directions, and bad options
    get one line."""
    overrides, run_dir = smoke
    assert run(*overrides, "train.iterations=20").returncode == 0
    result = run("--images", "128", "--grid", "3", "--line", "7", str(run_dir),
                 module="experiments.landscape")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(run_dir / "landscape.csv")
    line, planes = table[table.kind == "line"], table[table.kind == "plane"]
    assert line.x.tolist() == pytest.approx([-0.25, 0, 0.25, 0.5, 0.75, 1, 1.25])
    assert planes.plane.tolist() == [p for p in (0, 1, 2) for _ in range(9)]  # three by default
    plane = planes[planes.plane == 0]
    assert not np.allclose(plane.loss, planes[planes.plane == 1].loss)  # other directions
    assert len(plane) == 9 and (table.images == 128).all() and (line.y == 0).all()
    assert sorted(set(plane.x)) == sorted(set(plane.y)) == pytest.approx([-1, 0, 1])
    centre = plane[(plane.x == 0) & (plane.y == 0)].loss.item()
    assert line[line.x == 1].loss.item() == pytest.approx(centre, rel=1e-5)
    assert line[line.x == 0].loss.item() != pytest.approx(centre, rel=1e-3)  # the initial net
    assert (plane.loss > 0).all() and plane.loss.nunique() > 1
    again = run("--images", "128", "--grid", "3", "--line", "7", str(run_dir),
                module="experiments.landscape")
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "landscape.csv"), table, rtol=1e-5)
    one = run("--images", "128", "--grid", "3", "--line", "7", "--planes", "1", str(run_dir),
              module="experiments.landscape")  # its plane 0 is the first of the three
    assert one.returncode == 0, one.stderr
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "landscape.csv"),
                                  table[table.plane == 0].reset_index(drop=True), rtol=1e-5)
    bad = run("--grid", "1", str(run_dir), module="experiments.landscape")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --grid=1 is not allowed: at least 2"


def test_filter_normalised_directions_match_each_filters_norm_and_skip_bn():
    from experiments.landscape import filter_normalised
    rng = np.random.default_rng(0)
    kernel, gamma = rng.normal(size=(3, 3, 4, 6)).astype(np.float32), np.ones(6, np.float32)
    d_kernel, d_gamma = filter_normalised([kernel, gamma], rng)
    np.testing.assert_allclose(np.linalg.norm(d_kernel.reshape(-1, 6), axis=0),
                               np.linalg.norm(kernel.reshape(-1, 6), axis=0), rtol=1e-5)
    assert not d_gamma.any() and not np.allclose(d_kernel, kernel)


def test_not_convex_finds_no_bend_on_a_convex_plane_and_every_one_on_a_saddle():
    """Midpoint convexity on the grid: a convex bowl (also one that is flat along the diagonal)
    bends down nowhere; saddles that bend along x, along y or along one diagonal only, and a cap,
    everywhere, at any positive scale; a bowl whose loss saturates away from its centre, only
    there."""
    from experiments.landscape import CENTRAL, not_convex
    axis = np.linspace(-1, 1, 11)
    x, y = (a.ravel() for a in np.meshgrid(axis, axis))

    def share(loss, within=1.0):
        return not_convex(pd.DataFrame({"x": x, "y": y, "loss": loss}), within)

    assert share(x ** 2 + y ** 2) == share((x - y) ** 2) == share(np.abs(x) + 0.0 * y) == 0
    assert share(x ** 2 - y ** 2) == share(y ** 2 - x ** 2) == share(-(x ** 2) - y ** 2) == 100
    assert share(x ** 2 + y ** 2 + 3 * x * y) == share(x ** 2 + y ** 2 - 3 * x * y) == 100
    assert share(3 + 7 * (x ** 2 - 0.5 * y ** 2)) == share(x ** 2 - 0.5 * y ** 2) == 100
    saturating = 1 - np.exp(-4 * (x ** 2 + y ** 2))  # concave along the radius beyond r = 0.35
    assert share(saturating, CENTRAL / 2) == 0  # the 9 points within 0.2 of the centre
    assert share(saturating, CENTRAL) == 64 and share(saturating) == pytest.approx(800 / 9)


def test_sigterm_checkpoints_mid_interval_and_the_rerun_continues_without_gaps(smoke):
    overrides, run_dir = smoke
    stopped = interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    assert "run the same command again to resume" in stopped.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 10 <= summary["iterations"] < 60
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0, resumed.stderr
    assert ", resuming at iteration" in resumed.stdout
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))
    gradients = pd.read_csv(run_dir / "gradients.csv")
    assert gradients.iteration.tolist() == [i for i in range(0, 70, 10) for _ in range(7)]
    assert tensorboard_steps(run_dir) == list(range(10, 70, 10))  # no duplicate, in order
    assert tensorboard_steps(run_dir, "error/test") == list(range(10, 70, 10))


def test_a_cpu_run_of_over_an_hour_says_so_with_the_smaller_budgets(smoke):
    overrides, run_dir = smoke
    stopped = interrupt_after_first_row(run_dir, *overrides, "train.iterations=5000000",
                                        "log.every=10", "log.test_every=5000000")
    note = [line for line in stopped.stdout.splitlines() if line.startswith("note: ~")]
    assert len(note) == 1 and "images/s on this CPU (no GPU); budget=paper ~" in note[0]
    assert "budget=long ~" in note[0] and "budget=smoke" not in note[0]  # not on all the data
    assert "budget=quick ~" in note[0] and note[0].endswith("for a whole run")
    assert stopped.stdout.index("note: ~") > stopped.stdout.index("[    10/5000000")


def test_a_gpu_run_of_over_an_hour_adds_no_cpu_note(smoke, simulated_gpu):
    overrides, run_dir = smoke
    stopped = interrupt_after_first_row(run_dir, *overrides, "train.iterations=5000000",
                                        "log.every=10", "log.test_every=5000000")
    assert "[    10/5000000" in stopped.stdout and "note: ~" not in stopped.stdout
    assert json.loads((run_dir / "summary.json").read_text())["hardware"]["gpus"] == [
        "simulated GPU"]


def test_a_run_restores_the_process_wide_settings_it_changed(smoke):
    import keras
    from tensorflow.python.framework import config as tf_config
    overrides, _ = smoke
    result = run(*overrides, "train.precision=mixed_bfloat16", "train.deterministic=true",
                 "train.iterations=10", "log.every=10", "log.test_every=10")
    assert result.returncode == 0, result.stderr
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf_config.is_op_determinism_enabled()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the suite sets oneDNN on x86 only")
@pytest.mark.parametrize("user, on", [(None, True), ("0", False), ("1", True)])
def test_onednn_is_on_unless_the_user_turned_it_off(user, on):
    """TensorFlow leaves oneDNN off on AVX2 CPUs; every entry point turns it on before
    TensorFlow's import (configure_tensorflow), and a value the user set stays."""
    env = {k: v for k, v in os.environ.items() if k != ONEDNN} | ({ONEDNN: user} if user else {})
    shown = subprocess.run(
        [sys.executable, "-c", "from src import configure_tensorflow; configure_tensorflow(); "
         "from src.machine import onednn_state; print(onednn_state())"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert shown.stdout.strip() == repr({"on": on, ONEDNN: user or "1"}), shown.stderr


def test_float32_means_float32_unless_tf32_is_asked_for():
    """TensorFlow runs float32 convolutions in TensorFloat-32 on Ampere-or-later GPUs by default;
    a run sets train.tf32 (default false, as the paper's float32) and restores it after."""
    import tensorflow as tf
    from src.process import process_settings
    enabled = tf.config.experimental.tensor_float_32_execution_enabled
    before = enabled()
    with process_settings(compose("budget=smoke")):
        assert not enabled()
    with process_settings(compose("budget=smoke", "train.tf32=true")):
        assert enabled()
    assert enabled() == before


def test_resume_is_bit_identical_with_determinism(tmp_path):
    common = ["budget=smoke", "depth=8", *LIGHT, "train.iterations=40", "train.deterministic=true"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(*common, f"results_dir={straight}").returncode == 0
    folder = resumed / "smoke/runs/identity-8-s0"
    interrupt_after_first_row(folder, *common, f"results_dir={resumed}")
    assert 10 <= json.loads((folder / "summary.json").read_text())["iterations"] < 40
    assert run(*common, f"results_dir={resumed}").returncode == 0
    summary = json.loads((folder / "summary.json").read_text())  # the code of each segment
    assert len(summary["resumed_at"]) == 1 and summary["commits"] == [summary["commit"]] * 2
    assert summary["machines"] == [machine_phrase(summary["hardware"])] * 2
    pd.testing.assert_frame_equal(metrics(straight / "smoke/runs/identity-8-s0")[LOSSES_AND_ERRORS],
                                  metrics(folder)[LOSSES_AND_ERRORS], check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(straight / "smoke/runs/identity-8-s0/gradients.csv"),
                                  pd.read_csv(folder / "gradients.csv"), check_exact=True)


def test_several_steps_per_call_train_the_same_run_and_resume_it(tmp_path):
    """train.steps_per_call=3 with rows every 10 iterations (calls of 3, 3, 3, 1), stopped and
    resumed: the curves and gradients of one step per call, bit for bit (determinism on)."""
    common = ["budget=smoke", "depth=8", *LIGHT, "train.iterations=40", "train.deterministic=true"]
    one, three = tmp_path / "one", tmp_path / "three"
    assert run(*common, "train.steps_per_call=1", f"results_dir={one}").returncode == 0
    folder = three / "smoke/runs/identity-8-s0"
    interrupt_after_first_row(folder, *common, "train.steps_per_call=3", f"results_dir={three}")
    assert run(*common, "train.steps_per_call=3", f"results_dir={three}").returncode == 0
    pd.testing.assert_frame_equal(metrics(one / "smoke/runs/identity-8-s0")[LOSSES_AND_ERRORS],
                                  metrics(folder)[LOSSES_AND_ERRORS], check_exact=True)
    assert (one / "smoke/runs/identity-8-s0/gradients.csv").read_bytes() == \
        (folder / "gradients.csv").read_bytes()


def test_evaluate_asks_the_same_error_on_the_same_device_kind_and_a_tolerance_across(
        smoke, monkeypatch):
    """A CPU run evaluated on a CPU: the same error; on a (simulated) GPU: within the stated
    tolerance, and the line says which rule it applied."""
    from experiments.evaluate import CROSS_DEVICE_POINTS
    from src.machine import SIMULATED
    overrides, run_dir = smoke
    assert run(*overrides).returncode == 0
    same = run(str(run_dir), module="experiments.evaluate")
    assert same.returncode == 0, same.stderr
    assert "(trained and evaluated on a CPU: must be the same): yes" in same.stdout
    monkeypatch.setenv(SIMULATED, "gpu")
    across = run(str(run_dir), module="experiments.evaluate")
    assert across.returncode == 0, across.stderr
    assert (f"(trained on a CPU, evaluated on a GPU: must be within {CROSS_DEVICE_POINTS} "
            "points): yes") in across.stdout


def test_an_automatic_checkpoint_interval_bounds_a_checkpoints_share_of_the_time():
    from src.train import checkpoint_interval
    assert checkpoint_interval(0.05, 70.0, 100) == 100  # a CPU: 0.07% of a row's time
    assert checkpoint_interval(0.05, 2.0, 100) == 300  # a GPU: 2.5% -> every third row
    assert checkpoint_interval(0.0, 2.0, 50) == 50


@pytest.mark.heavy
def test_sigkill_at_random_moments_leaves_a_complete_consistent_folder(smoke):
    overrides, run_dir = smoke
    overrides = [*overrides, "train.iterations=400", "log.every=5", "log.test_every=100",
                 "checkpoint.every=1"]
    rng = random.Random(0)
    logged = 0
    # Each process waits at its own iteration, 100 beyond the last one's: it has rows to log
    # before it, and it cannot reach the end before its kill, however fast the machine.
    for pause_at in (100, 200, 300):
        p = start(*overrides, pause_at=pause_at)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:  # wait for progress beyond the last kill
            if (run_dir / "metrics.csv").exists() and len(metrics(run_dir)) > logged:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))  # a checkpoint every step, a row every five
        p.kill()
        assert p.wait() == -signal.SIGKILL, "the run ended before it was killed"
        done = metrics(run_dir).iteration.tolist()
        assert done == list(range(5, 5 * len(done) + 1, 5))  # never torn, no gap, no duplicate
        assert logged < len(done) <= pause_at // 5
        logged = len(done)
    final = run(*overrides)
    assert final.returncode == 0, final.stderr
    rows = metrics(run_dir)
    assert rows.iteration.tolist() == list(range(5, 405, 5))
    assert rows.test_error.notna().tolist() == [i % 100 == 0 for i in range(5, 405, 5)]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert not list(run_dir.glob(".*tmp*"))


def test_a_damaged_checkpoint_is_set_aside_and_the_previous_one_used(smoke):
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    last = run_dir / "checkpoint.npz"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a torn write
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0, resumed.stderr
    assert "checkpoint.npz cannot be used (damaged: " in resumed.stderr
    assert len(list(run_dir.glob("checkpoint.corrupt-*.npz"))) == 1
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))


def test_nan_loss_stops_the_run_with_iteration_lr_and_checkpoint(smoke):
    overrides, run_dir = smoke
    result = run(*overrides, "train.lr=1e30", "train.milestones=[0.9]")
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message == ("error: loss became nan between iteration 0 and 10 (lr 1e+30); "
                       "last good checkpoint: none")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == "loss became nan between iteration 0 and 10"
    assert not (run_dir / "checkpoint.npz").exists()  # no checkpoint of NaN weights


def test_a_checkpoint_of_another_network_or_an_older_version_is_set_aside(smoke):
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    last = run_dir / "checkpoint.npz"
    with np.load(last) as f:  # the format before arrays were keyed by path: by position
        arrays = {f"model_{i}": f[k] for i, k in enumerate(k for k in f.files if k != "state")}
        arrays["state"] = f["state"]
    np.savez(last, **arrays)
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0, resumed.stderr
    assert ("checkpoint.npz cannot be used (it has no model/stem_conv/kernel: written for another "
            "network or by an older version); kept as checkpoint.corrupt-") in resumed.stderr
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))


def test_a_folder_holding_another_config_is_refused_then_set_aside_on_request(smoke):
    overrides, run_dir = smoke
    assert run(*overrides).returncode == 0
    before = metrics(run_dir)
    refused = run(*overrides, "train.lr=0.05")
    assert refused.returncode == 2
    assert "holds a run with another config (train.lr: 0.1 -> 0.05)" in refused.stderr
    assert metrics(run_dir).equals(before)
    replaced = run(*overrides, "train.lr=0.05", "overwrite=true")
    assert replaced.returncode == 0, replaced.stderr
    kept = list(run_dir.glob("replaced-*"))
    assert len(kept) == 1 and metrics(kept[0]).equals(before)
    assert json.loads((run_dir / "summary.json").read_text())["config"]["train"]["lr"] == 0.05


def test_sighup_of_a_closed_terminal_checkpoints_like_sigterm(smoke):
    overrides, run_dir = smoke
    stopped = interrupt_after_first_row(run_dir, *overrides, "train.iterations=60",
                                        sig=signal.SIGHUP)
    assert "stopped by signal 1 at iteration" in stopped.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert run(*overrides, "train.iterations=60").returncode == 0
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))


def test_a_metrics_csv_with_its_columns_reordered_is_read_by_its_header(smoke):
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    before = metrics(run_dir)
    before[COLUMNS[::-1]].to_csv(run_dir / "metrics.csv", index=False)
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0, resumed.stderr
    assert "damaged" not in resumed.stderr and not list(run_dir.glob("metrics.corrupt-*"))
    rows = metrics(run_dir)
    assert rows.iteration.tolist() == list(range(10, 70, 10))
    pd.testing.assert_frame_equal(rows.iloc[:len(before)], before)


def test_a_stray_file_named_like_a_run_fails_that_run_in_one_line_and_the_grid_goes_on(smoke):
    overrides, run_dir = smoke
    runs = run_dir.parent
    runs.mkdir(parents=True)
    (runs / "none-8-s0").write_text("not a run")
    result = run("-m", *overrides, "shortcut=none,identity")
    assert result.returncode == 2
    assert (f"error: {runs}/none-8-s0 is a file, not a run folder: move or delete it, then run "
            "the command again") in result.stderr
    assert "Traceback" not in result.stderr
    assert metrics(runs / "identity-8-s0").iteration.tolist() == [10, 20, 30]
    assert (runs / "none-8-s0").read_text() == "not a run"


def test_a_refused_value_in_a_multirun_leaves_no_folder_behind(smoke):
    overrides, run_dir = smoke
    result = run("-m", *overrides, "seed=0,-1", "train.iterations=10", "log.every=10",
                 "log.test_every=10")
    assert result.returncode == 2
    assert "error: seed=-1 is not allowed" in result.stderr
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["identity-8-s0"]


def test_an_unresolvable_results_dir_is_one_line(smoke):
    overrides, _ = smoke
    result = run(*overrides[:-1], "results_dir=${oc.env:SURELY_NOT_SET_ANYWHERE}/x")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: results_dir='${oc.env:SURELY_NOT_SET_ANYWHERE}/x' is "
                                     "not allowed: \"Environment variable "
                                     "'SURELY_NOT_SET_ANYWHERE' not found\"")


@pytest.mark.heavy
def test_ctrl_c_while_tensorflow_starts_is_one_line(tmp_path):
    """A stand-in for TensorFlow that says it is importing, then takes as long as it is given:
    the Ctrl-C lands in the import on a machine of any speed."""
    from tests.helpers import ROOT, default_ctrl_c, run_env
    stand_in, importing = tmp_path / "tensorflow", tmp_path / "importing"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text(
        f"import pathlib, time\npathlib.Path({str(importing)!r}).touch()\ntime.sleep(600)\n")
    env = run_env() | {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    p = subprocess.Popen([sys.executable, "-m", "src.run", "budget=smoke",
                          f"results_dir={tmp_path}"], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_ctrl_c)
    deadline = time.time() + 60
    while not importing.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip() == "stopped by Ctrl-C while TensorFlow was starting; nothing was run"


def test_a_torn_summary_and_a_torn_csv_row_are_set_aside_and_rebuilt(smoke):
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    whole = metrics(run_dir).iteration.tolist()
    (run_dir / "summary.json").write_text('{"status": "interr')
    with open(run_dir / "metrics.csv", "a") as f:
        f.write("990,49.5,0.1\n")  # a row cut short
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0, resumed.stderr
    assert (f"warning: {run_dir}/summary.json is not valid JSON; kept as summary.corrupt-"
            in resumed.stderr)
    assert (f"warning: {run_dir}/metrics.csv is damaged (row {len(whole) + 1} of "
            f"{len(whole) + 1} is not whole); kept as metrics.corrupt-") in resumed.stderr
    assert f"its {len(whole)} whole rows kept" in resumed.stderr
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert len(list(run_dir.glob("summary.corrupt-*.json"))) == 1
    assert len(list(run_dir.glob("metrics.corrupt-*.csv"))) == 1


def test_the_plan_marks_a_damaged_run(smoke):
    from src.sweep import status
    overrides, run_dir = smoke
    assert run(*overrides).returncode == 0
    cfg = compose(*overrides)
    assert status(cfg.run_dir, cfg) == ("finished", 30)
    (run_dir / "metrics.csv").write_text("")
    assert status(cfg.run_dir, cfg) == ("damaged", 0)


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_checkpoint_keys_do_not_depend_on_the_runs_before_in_the_process(precision):
    """A multirun trains its runs in one process; the checkpoint of its second run must resume in
    a fresh process, so no key may carry Keras' per-process numbering (sgd_1)."""
    cfg = compose("depth=8", f"train.precision={precision}")
    keys = []
    for _ in range(2):
        model, (optimizer, _) = build_model(cfg), make_optimizer(cfg)
        optimizer.build(model.trainable_variables)
        keys.append(sorted(Checkpoint.variables(model, optimizer)))
    assert keys[0] == keys[1]
    assert "optimizer/sgd/iteration" in keys[0]


def test_a_checkpoint_of_another_config_with_the_same_shapes_is_set_aside(smoke, tmp_path):
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    other = tmp_path / "other/smoke/runs/identity-8-s1"
    other.mkdir(parents=True)
    (other / "checkpoint.npz").write_bytes((run_dir / "checkpoint.npz").read_bytes())
    result = run(*overrides[:-1], f"results_dir={tmp_path}/other", "seed=1",
                 "train.iterations=60")
    assert result.returncode == 0, result.stderr
    assert ("checkpoint.npz cannot be used (written for another config: seed=0, this run has 1); "
            "kept as checkpoint.corrupt-") in result.stderr
    assert "resuming" not in result.stdout
    assert metrics(other).iteration.tolist() == list(range(10, 70, 10))


def test_a_checkpoint_whose_fingerprint_repeats_the_budget_under_budget_resumes(smoke):
    """Older versions named the budget's values twice (budget.iterations and train.iterations)
    and kept no commit per segment: their checkpoints still resume."""
    overrides, run_dir = smoke
    interrupt_after_first_row(run_dir, *overrides, "train.iterations=60")
    with np.load(run_dir / "checkpoint.npz") as f:
        arrays = dict(f)
    fingerprint = json.loads(str(arrays["fingerprint"]))
    fingerprint |= {"budget.iterations": 60, "budget.log_every": 10, "budget.test_every": 10,
                    "budget.milestones": [0.5, 0.75], "budget.train_examples": 2560,
                    "budget.test_examples": 500}
    arrays["fingerprint"] = np.array(json.dumps(fingerprint, sort_keys=True))
    state = json.loads(str(arrays["state"]))
    del state["commits"], state["machines"]
    arrays["state"] = np.array(json.dumps(state))
    np.savez(run_dir / "checkpoint.npz", **arrays)
    resumed = run(*overrides, "train.iterations=60")
    assert resumed.returncode == 0 and ", resuming at iteration" in resumed.stdout, resumed.stderr
    assert "cannot be used" not in resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["commits"] == ["unknown", summary["commit"]]  # the first segment's is lost
    assert summary["machines"] == ["unknown", machine_phrase(summary["hardware"])]


def test_a_run_that_failed_before_any_progress_does_not_pin_its_config(smoke):
    overrides, run_dir = smoke
    failed = run(*overrides, "train.lr=1e30")
    assert failed.returncode == 2 and "loss became nan" in failed.stderr
    corrected = run(*overrides)
    assert corrected.returncode == 0, corrected.stderr
    assert json.loads((run_dir / "summary.json").read_text())["config"]["train"]["lr"] == 0.1


@pytest.mark.heavy
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_checkpoints(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # Room for two ResNet-20 checkpoints of 2.2 MB (last and prev) but not a third beside them.
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5632k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    overrides = ["budget=smoke", "train.iterations=60"]
    run_dir = disk / "smoke/runs/identity-20-s0"
    try:
        full = run(*overrides, f"results_dir={disk}")
        assert full.returncode == 2
        line = full.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: no space left on the device of {run_dir} (")
        assert "MiB free): free some space, then run the same command again" in line
        assert "Traceback" not in full.stderr
        assert not list(run_dir.glob(".*tmp*"))
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
        moved = tmp_path / "bigger/smoke/runs/identity-20-s0"
        shutil.copytree(run_dir, moved)
    finally:
        subprocess.run(["umount", str(disk)])
    resumed = run(*overrides, f"results_dir={tmp_path}/bigger")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration 20" in resumed.stdout  # the two checkpoints were intact
    assert metrics(moved).iteration.tolist() == list(range(10, 70, 10))


@pytest.mark.real_data
def test_the_real_cifar10_has_the_papers_splits_and_trains_end_to_end(real_data, tmp_path):
    from src.data import load
    data = load(real_data, download=False)
    assert data.train_images.shape == (50_000, 32, 32, 3) and len(data.test_labels) == 10_000
    assert np.bincount(data.train_labels).tolist() == [5000] * 10
    assert 0.4 < data.mean.mean() < 0.55  # CIFAR-10's mean pixel is about 0.47
    result = run("budget=smoke", f"data.dir={real_data}", f"results_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    rows = metrics(tmp_path / "smoke/runs/identity-20-s0")
    assert rows.iteration.tolist() == [10, 20, 30] and rows.test_error.between(0, 100).all()


# --- a finished run whose curve is not whole (damaged side files) -------------------------

def test_a_finished_run_without_its_curve_is_not_finished_and_the_rerun_retrains_it(smoke):
    overrides, run_dir = smoke
    overrides = [*overrides, "checkpoint.every=10"]  # every row, however loaded the machine
    assert run(*overrides).returncode == 0
    curve = metrics(run_dir)
    (run_dir / "metrics.csv").unlink()
    again = run(*overrides)
    assert again.returncode == 0, again.stderr
    assert "is finished" not in again.stdout
    assert f"warning: {run_dir} says it is finished but its metrics.csv is missing" in again.stderr
    assert "(iteration 30) is past the last row of metrics.csv that survived" in again.stderr
    assert metrics(run_dir).iteration.tolist() == curve.iteration.tolist()  # from the start
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_a_finished_run_whose_last_row_was_torn_retrains_the_lost_interval(smoke):
    overrides, run_dir = smoke
    assert run(*overrides, "train.deterministic=true").returncode == 0
    curve = metrics(run_dir)
    text = (run_dir / "metrics.csv").read_text()
    (run_dir / "metrics.csv").write_text(text[:text.rindex("\n", 0, -1) + 12])  # 30,... cut short
    again = run(*overrides, "train.deterministic=true")
    assert again.returncode == 0, again.stderr
    assert "metrics.csv ends at iteration 20, not at the run's last, 30" in again.stderr
    assert ", resuming at iteration 20" in again.stdout  # checkpoint.prev.npz, the row before
    resumed = metrics(run_dir)
    assert resumed.iteration.tolist() == [10, 20, 30]  # the curve ends at its last iteration
    pd.testing.assert_frame_equal(resumed[["train_error", "test_error"]],
                                  curve[["train_error", "test_error"]])


def test_a_run_with_batch_norm_groups_trains_and_records_them(smoke):
    overrides, run_dir = smoke  # batch 32 (LIGHT): two groups of 16
    result = run(*overrides, "batch_norm_group=16")
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["config"]["batch_norm_group"] == 16
    assert metrics(run_dir).train_loss.notna().all()


@pytest.mark.real_data
def test_the_readmes_example_gives_the_shipped_networks_own_test_error(real_data, monkeypatch):
    """The README's 'Using a trained network', run as written (its preprocessing included) on
    the real CIFAR-10, gives the run's own final test error."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Using a trained network")[1].split("```python\n")[1].split("```")[0]
    weights = re.search(r'load_weights\("([^"]+)"\)', code).group(1)
    monkeypatch.setenv("TFDS_DATA_DIR", real_data)
    monkeypatch.setenv("TFDS_DOWNLOAD", "false")
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(code.replace("data.load()", f"data.load({real_data!r}, download=False)"), scope)
    summary = json.loads((ROOT / weights).parent.joinpath("summary.json").read_text())
    assert scope["error"] == pytest.approx(summary["test_error"], abs=0.05)
