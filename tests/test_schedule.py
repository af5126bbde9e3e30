"""The paper's optimisation recipe: the schedule, warm-up and weight decay (section 4.2)."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.data import augment, random_draw
from src.models import resnet
from src.config import compose
from src.models import normalised_kernels
from src.steps import (WARMUP_WINDOW, Interval, PaperSchedule, held_kernels, make_optimizer,
                       make_train_step, warmup_enabled, warmup_iterations)

MEAN = tf.fill((32, 32, 3), 0.47)  # the training set's per-pixel mean, about


def random_batch(n=8):
    """(a draw of n random images, as src.data gives the step, its labels)."""
    return random_draw(n), tf.range(n) % 10


@pytest.mark.parametrize("step, lr", [(0, 0.1), (31_999, 0.1), (32_000, 0.01), (47_999, 0.01),
                                      (48_000, 0.001), (63_999, 0.001)])
def test_paper_budget_divides_lr_by_10_at_32k_and_48k(step, lr):
    cfg = compose("budget=paper")
    assert cfg.train.iterations == 64_000
    _, schedule = make_optimizer(cfg)
    assert float(schedule(tf.constant(step))) == pytest.approx(lr)


@pytest.mark.parametrize("budget", ["paper", "quick", "smoke"])
def test_milestones_are_fractions_that_scale_with_the_budget(budget):
    cfg = compose(f"budget={budget}", "train.iterations=4000")
    _, schedule = make_optimizer(cfg)
    assert schedule.boundaries == [round(4000 * m) for m in cfg.train.milestones]
    assert float(schedule(tf.constant(schedule.boundaries[0]))) == pytest.approx(0.01)


def test_one_iteration_runs_at_the_initial_lr():
    """round(0.5 x 1) = 0 would put the first milestone on the first step."""
    _, schedule = make_optimizer(compose("train.iterations=1"))
    assert schedule.boundaries == [1, 1]
    assert float(schedule(tf.constant(0))) == pytest.approx(0.1)


def test_warm_up_holds_0_01_until_released_then_follows_the_schedule():
    schedule = PaperSchedule(0.1, 64_000, [0.5, 0.75], 0.01, warming_up=True)
    assert float(schedule(tf.constant(0))) == pytest.approx(0.01)
    assert float(schedule(tf.constant(399))) == pytest.approx(0.01)
    schedule.warming_up.assign(False)
    assert float(schedule(tf.constant(400))) == pytest.approx(0.1)
    assert float(schedule(tf.constant(40_000))) == pytest.approx(0.01)


@pytest.mark.parametrize("depth, block, warmup, expected", [
    (56, "original", "auto", False), (110, "original", "auto", True),
    (1202, "original", "auto", True), (20, "original", True, True),
    (110, "original", False, False), (20, "preact", "auto", True), (56, "preact", False, False),
    (56, "bottleneck", "auto", True), (164, "preact_bottleneck", "auto", True)])
def test_warm_up_is_on_for_110_layers_and_the_pre_activation_papers_nets_unless_forced(
        depth, block, warmup, expected):
    """The pre-activation paper's nets, its bottleneck baseline too, warm up for 400 iterations."""
    cfg = compose(f"depth={depth}", f"block={block}", f"train.warmup={warmup}",
                  *(["shortcut=projection"] if "bottleneck" in block else []))
    assert warmup_enabled(cfg) is expected
    assert warmup_iterations(cfg) == (0 if block == "original" else 400)


def test_a_warm_up_of_a_given_length_is_that_long_on_any_net():
    """train.warmup_iterations: the pre-activation paper's warm-up on a plain net (an
    intervention, conf/interventions.yaml)."""
    cfg = compose("depth=56", "shortcut=none", "train.warmup=true", "train.warmup_iterations=400")
    assert warmup_enabled(cfg) and warmup_iterations(cfg) == 400
    assert warmup_iterations(compose("depth=56", "shortcut=none", "train.warmup=true")) == 0


@pytest.mark.parametrize("kernel_norm", ["free", "held"])
def test_held_kernel_norms_stay_at_their_initial_norm_and_change_no_function(kernel_norm):
    """train.kernel_norm=held: after each of three steps every kernel BN normalises is back at
    its initial norm (free: it is not), and after the first the network computes what the free
    step's network computes (BN is blind to a kernel's scale); from the second step on the two
    differ in step size, which the interventions measure."""
    cfg = compose("depth=8", "shortcut=none", f"train.kernel_norm={kernel_norm}")
    keras.utils.set_random_seed(0)
    model = resnet(8, "none")
    held = held_kernels(model, cfg)
    assert (len(held) == len(normalised_kernels(model)) == 7) is (kernel_norm == "held")
    initial = [float(tf.norm(k)) for k in normalised_kernels(model)]
    optimizer, schedule = make_optimizer(cfg)
    step = make_train_step(model, optimizer, schedule, Interval(), MEAN, held=held)
    draw, labels = random_batch()
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    for taken in range(1, 4):
        step(draw, labels)
        norms = [float(tf.norm(k)) for k in normalised_kernels(model)]
        assert (norms == pytest.approx(initial, rel=1e-5)) is (kernel_norm == "held"), taken
        if taken == 1:
            after_one = model.get_weights()
    model.set_weights(after_one)
    if kernel_norm == "held":  # the held step's network = the free step's, rescaled
        free = keras.models.clone_model(reference)
        free.set_weights(reference.get_weights())
        free_optimizer, free_schedule = make_optimizer(compose("depth=8", "shortcut=none"))
        make_train_step(free, free_optimizer, free_schedule, Interval(), MEAN)(draw, labels)
        images = augment(draw, MEAN)
        np.testing.assert_allclose(model(images, training=True), free(images, training=True),
                                   rtol=1e-4, atol=1e-4)


def test_a_fixed_warm_up_ends_after_its_iterations_whatever_the_error():
    """Pre-activation units: lr 0.01 for the first 400 iterations (here 3), then train.lr."""
    model = resnet(8, block="preact")
    optimizer, schedule = make_optimizer(compose("depth=8", "block=preact"))
    draw, labels = random_batch()
    interval = Interval()
    step = make_train_step(model, optimizer, schedule, interval, MEAN, warmup_until_error=0.001,
                           warmup_iterations=3)
    interval.restore({"recent_errors": [100.0] * WARMUP_WINDOW})
    for _ in range(2):
        step(draw, labels)
    assert bool(schedule.warming_up.numpy()) and interval.read()["lr"] == pytest.approx(0.01)
    step(draw, labels)
    assert not bool(schedule.warming_up.numpy()) and interval.read()["warmup_ended_at"] == 3
    step(draw, labels)
    assert interval.read()["lr"] == pytest.approx(0.1)


def test_warm_up_ends_in_a_real_run_after_a_full_window_below_the_threshold(smoke):
    """At 0.01 a ResNet-20 is below 95% (chance is 90%) from the start: the warm-up still lasts
    until WARMUP_WINDOW batches have been seen, then the lr is 0.1 and stays there."""
    from tests.helpers import metrics, run
    overrides, run_dir = smoke
    result = run(*overrides, "train.warmup=true", "train.warmup_until_error=95",
                 "train.iterations=60", "train.milestones=[0.999]", "log.every=20",
                 "log.test_every=60")
    assert result.returncode == 0, result.stderr
    assert f"warm-up over at iteration {WARMUP_WINDOW}:" in result.stdout
    assert list(metrics(run_dir).lr) == [0.01, 0.01, 0.1]  # the lr of each row's last step
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["warmup_ended_at"] == WARMUP_WINDOW


def test_warm_up_needs_the_whole_window_below_the_threshold_not_one_batch():
    model = resnet(8)
    optimizer, schedule = make_optimizer(compose("depth=8", "train.warmup=true"))
    draw, labels = random_batch()
    interval = Interval()
    never = make_train_step(model, optimizer, schedule, interval, MEAN, warmup_until_error=80)
    interval.restore({"recent_errors": [100.0] * WARMUP_WINDOW})
    optimizer.iterations.assign(500)
    never(draw, labels)  # one batch, whatever its error, cannot bring the mean below 98%
    assert bool(schedule.warming_up.numpy()) and interval.read()["warmup_ended_at"] == 0

    optimizer.iterations.assign(0)
    always = make_train_step(model, optimizer, schedule, Interval(), MEAN, warmup_until_error=100.5)
    for _ in range(WARMUP_WINDOW - 1):
        always(draw, labels)
    assert bool(schedule.warming_up.numpy())  # every batch was below 100.5%, the window not full
    always(draw, labels)
    assert not bool(schedule.warming_up.numpy())


@pytest.mark.parametrize("batch_norm", ["fused", "keras"])
@pytest.mark.parametrize("weight_decay", [1e-4, 5e-4])
def test_weight_decay_is_caffe_style_coupled_l2_on_every_parameter(weight_decay, batch_norm):
    """d/dw of the model's penalty is weight_decay * w on every trainable parameter (kernels,
    BN's gamma and beta, the classifier's bias), as Caffe's weight_decay; none on BN's moving
    statistics."""
    model = resnet(20, weight_decay=weight_decay, batch_norm=batch_norm)
    rng = np.random.default_rng(0)
    for w in model.trainable_variables:  # gamma 1 and beta 0 would hide a missing decay
        w.assign(rng.normal(1, 0.5, w.shape))
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, model.trainable_variables)
    assert len(model.trainable_variables) == 20 + 2 * 19 + 1  # kernels, gamma+beta of 19 BNs, bias
    for w, grad in zip(model.trainable_variables, grads):
        np.testing.assert_allclose(grad.numpy(), weight_decay * w.numpy(), rtol=1e-5, err_msg=w.path)
    assert compose().train.weight_decay == 1e-4


def test_one_sgd_step_without_a_data_gradient_shrinks_every_parameter_by_lr_times_decay():
    """The trainer's optimizer and the model's penalty alone: w <- w (1 - lr x 1e-4)."""
    model = resnet(8)
    optimizer, _ = make_optimizer(compose("depth=8"))
    rng = np.random.default_rng(1)
    for w in model.trainable_variables:
        w.assign(rng.normal(1, 0.5, w.shape))
    before = [w.numpy() for w in model.trainable_variables]
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    optimizer.apply_gradients(zip(tape.gradient(penalty, model.trainable_variables),
                                  model.trainable_variables))
    assert any(w.path.endswith("gamma") for w in model.trainable_variables)
    for w, old in zip(model.trainable_variables, before):  # unchanged would be off by 1e-5
        np.testing.assert_allclose(w.numpy(), old * (1 - 0.1 * 1e-4), rtol=1e-6, err_msg=w.path)


def test_a_float16_step_skipped_on_overflow_still_counts_toward_the_milestones():
    """Keras' loss-scale optimizer skips a step whose gradients overflow without counting it;
    the trainer counts it, so the lr still drops at the configured iteration."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        cfg = compose("depth=8", "train.precision=mixed_float16", "train.iterations=6",
                      "train.milestones=[0.5]")  # lr / 10 from the 4th step (iteration 3) on
        model = resnet(8)
        optimizer, schedule = make_optimizer(cfg)
        interval = Interval()
        step = make_train_step(model, optimizer, schedule, interval, MEAN)
        draw, labels = random_batch()
        step(draw, labels)
        scale = optimizer.dynamic_scale.numpy()
        optimizer.dynamic_scale.assign(1e30)  # float16 gradients overflow at this scale
        kernel = model.get_layer("stem_conv").kernel.numpy()
        step(draw, labels)
        np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), kernel)
        optimizer.dynamic_scale.assign(scale)
        step(draw, labels)
        assert interval.read()["lr"] == pytest.approx(0.1)  # the 3rd step, iteration 2
        step(draw, labels)
        assert interval.read()["lr"] == pytest.approx(0.01)  # the 4th step, iteration 3
        assert int(optimizer.iterations.numpy()) == 4
        assert not np.array_equal(model.get_layer("stem_conv").kernel.numpy(), kernel)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_schedule_serialises_to_its_constructors_arguments():
    schedule = PaperSchedule(0.1, 64000, [0.5, 0.75], 0.01)
    again = PaperSchedule(**schedule.get_config())
    for step in (0, 32_000, 48_000):
        assert float(again(step)) == float(schedule(step))
