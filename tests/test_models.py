"""Structural facts of the paper's networks (section 4.2, Table 6)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments.paper import PARAMETERS_M
from src.models import BatchNorm, blocks_per_stage, resnet, trainable_parameters


@pytest.mark.parametrize("depth", [pytest.param(d, marks=pytest.mark.heavy) if d > 1000 else d
                                   for d in sorted(PARAMETERS_M)])
def test_parameter_count_matches_table6(depth):
    params = trainable_parameters(resnet(depth, "identity"))
    digits = 1 if depth >= 110 else 2  # the paper prints 1.7M and 19.4M, else 0.27M etc.
    assert round(params / 1e6, digits) == PARAMETERS_M[depth]


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_and_option_a_have_identical_parameters(depth):
    plain, resnet_a = resnet(depth, "none"), resnet(depth, "identity")
    assert trainable_parameters(plain) == trainable_parameters(resnet_a)
    assert [w.shape for w in plain.weights] == [w.shape for w in resnet_a.weights]


@pytest.mark.parametrize("depth", [20, 56, pytest.param(110, marks=pytest.mark.heavy)])
def test_projection_options_add_exactly_the_projection_parameters(depth):
    a = trainable_parameters(resnet(depth, "identity"))
    # Option B: 1x1 conv + BN (gamma, beta) where 16->32 and 32->64 channels.
    b_extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert trainable_parameters(resnet(depth, "projection")) - a == b_extra
    # Option C: a projection on every block: n blocks per stage, c_in x c_out + 2 c_out each.
    n = blocks_per_stage(depth)
    c_extra = sum(c_in * c_out + 2 * c_out for c_in, c_out in
                  [(16, 16)] * n + [(16, 32)] + [(32, 32)] * (n - 1) + [(32, 64)] + [(64, 64)] * (n - 1))
    assert trainable_parameters(resnet(depth, "all_projection")) - a == c_extra


@pytest.mark.parametrize("depth", [20, 56])
def test_layer_count_and_output_shape(depth):
    model = resnet(depth, "none")
    weighted = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]
    assert len(weighted) == depth  # 6n+2: the stem, 6n 3x3 convs, the classifier
    out = model(np.zeros((2, 32, 32, 3), np.float32), training=False)
    assert out.shape == (2, 10)
    feature_maps = {layer.output.shape[1:] for layer in model.layers if layer.name.endswith("_relu2")}
    assert feature_maps == {(32, 32, 16), (16, 16, 32), (8, 8, 64)}


@pytest.mark.parametrize("layer, fan_in", [("stage3_block2_1_conv", 3 * 3 * 64),
                                           ("stage2_block1_1_conv", 3 * 3 * 16)])
def test_initial_kernels_are_an_untruncated_gaussian_with_std_sqrt_2_over_fan_in(layer, fan_in):
    """The paper's MSRA init: N(0, 2 / n), n = fan_in (Caffe's MSRAFiller). A normal has 1.24% of
    its mass beyond 2.5 std; Keras' he_normal, truncated at 2 std, has none."""
    keras.utils.set_random_seed(0)
    kernel = resnet(56, "identity").get_layer(layer).kernel.numpy().ravel()
    std = np.sqrt(2 / fan_in)
    assert kernel.std() == pytest.approx(std, rel=0.02)
    assert abs(kernel.mean()) < 0.02 * std
    beyond = np.mean(np.abs(kernel) > 2.5 * std)
    assert 0.009 < beyond < 0.016, beyond


def test_the_classifier_starts_with_the_msra_gaussian_and_a_zero_bias():
    keras.utils.set_random_seed(0)
    logits = resnet(20, "identity").get_layer("logits")
    assert logits.kernel.numpy().std() == pytest.approx(np.sqrt(2 / 64), rel=0.1)  # 640 weights
    assert not logits.bias.numpy().any()


def test_residual_block_adds_the_shortcut_before_the_last_relu():
    model = resnet(20, "identity")
    add = model.get_layer("stage1_block1_add")
    assert add.input[1] is model.get_layer("stem_relu").output
    assert model.get_layer("stage1_block1_relu2").input is add.output


def test_option_a_shortcut_subsamples_and_zero_pads():
    from src.models import ZeroPadShortcut
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 16)).astype(np.float32)
    y = np.asarray(ZeroPadShortcut(32)(x))
    assert y.shape == (1, 2, 2, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()


@pytest.mark.parametrize("depth", [21, 0, -4, 2, 7, "abc", 20.0, True, None])
def test_bad_depth_is_refused_naming_the_rule(depth):
    with pytest.raises(ValueError, match=r"depth=.* is not allowed: depth must be 6n\+2"):
        blocks_per_stage(depth)


def test_unknown_shortcut_lists_the_four():
    with pytest.raises(ValueError, match="none, identity, projection, all_projection"):
        resnet(20, "B")


# --- padding: the residual branch lines up with its shortcut (Caffe's symmetric padding) -------

def centre_kernel(c_in, c_out, offset=0):
    """A 3x3 kernel that copies input channel c to output channel c + offset at the centre tap."""
    kernel = np.zeros((3, 3, c_in, c_out), np.float32)
    kernel[1, 1, np.arange(c_in), np.arange(c_in) + offset] = 1
    return kernel


def test_a_stride_2_convolution_centres_output_i_on_input_2i():
    from src.models import Layers
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, Layers().conv(inputs, 4, stride=2, name="down"))
    model.get_layer("down_conv").kernel.assign(centre_kernel(4, 4))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), x[:, ::2, ::2, :])


@pytest.mark.parametrize("block", ["original", "preact"])
@pytest.mark.parametrize("shortcut", ["none", "identity", "projection", "all_projection"])
def test_every_stride_2_3x3_convolution_pads_one_pixel_on_each_side(block, shortcut):
    model = resnet(20, shortcut, block=block)
    strided = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
               and layer.strides == (2, 2)]
    three = [layer for layer in strided if layer.kernel_size == (3, 3)]
    assert len(three) == 2  # the first convolution of stages 2 and 3
    for conv in three:
        pad = model.get_layer(conv.name.removesuffix("_conv") + "_pad")
        assert conv.padding == "valid" and pad.padding == ((1, 1), (1, 1))
        assert conv.input is pad.output
    assert all(layer.padding == "same" for layer in model.layers
               if isinstance(layer, keras.layers.Conv2D) and layer not in three)


def test_a_downsampling_block_adds_branch_and_shortcut_at_the_same_pixel():
    """With centre-tap kernels and identity BN, branch and option-A shortcut both carry
    x[2i, 2j] into the same channels, so the block doubles the shortcut (the old TensorFlow
    "same" padding carried x[2i + 1, 2j + 1] instead)."""
    from src.models import Layers, ZeroPadShortcut, original_block
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, original_block(Layers(), inputs, 32, 2, "identity", "b"))
    model.get_layer("b_1_conv").kernel.assign(centre_kernel(16, 32, offset=8))
    model.get_layer("b_2_conv").kernel.assign(centre_kernel(32, 32))
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 16)).astype(np.float32)  # post-ReLU
    shortcut = np.asarray(ZeroPadShortcut(32)(x))
    bn_scale = 1 / np.sqrt(1 + 1.001e-5) ** 2  # two BNs in inference mode, moving var 1
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               shortcut * (1 + bn_scale), rtol=1e-5)


# --- batch norm on the fused kernel agrees with Keras' layer ------------------------------------

def bn_pair(shape=(16, 6, 6, 5)):
    from src.models import BatchNorm
    fused = BatchNorm(momentum=0.9, epsilon=1e-5)
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5)  # fused's floor
    for layer in (fused, reference):
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 2, shape[-1]))
        layer.beta.assign(np.linspace(-1, 1, shape[-1]))
    return fused, reference


def test_fused_batch_norm_matches_keras_forward_and_gradients():
    fused, reference = bn_pair()
    x = tf.constant(np.random.default_rng(2).normal(3, 2, (16, 6, 6, 5)), tf.float32)
    w = tf.constant(np.random.default_rng(3).normal(size=(16, 6, 6, 5)), tf.float32)
    results = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(w * y)
        results.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta])])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_fused_batch_norm_moving_statistics_use_the_unbiased_variance():
    fused, reference = bn_pair()
    rng = np.random.default_rng(4)
    mean, biased, unbiased = np.zeros(5), np.ones(5), np.ones(5)
    for _ in range(4):
        x = rng.normal(1, 3, (16, 6, 6, 5)).astype(np.float32)
        fused(x, training=True)
        reference(x, training=True)
        m = x.shape[0] * x.shape[1] * x.shape[2]
        batch_var = x.var(axis=(0, 1, 2))
        mean = 0.9 * mean + 0.1 * x.mean(axis=(0, 1, 2))
        biased = 0.9 * biased + 0.1 * batch_var
        unbiased = 0.9 * unbiased + 0.1 * batch_var * m / (m - 1)
    np.testing.assert_allclose(fused.moving_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), unbiased, rtol=1e-5)
    np.testing.assert_allclose(reference.moving_variance.numpy(), biased, rtol=1e-5)  # Keras'
    assert not np.allclose(unbiased, biased, rtol=1e-4)  # the two conventions are told apart

    x = rng.normal(size=(4, 6, 6, 5)).astype(np.float32)  # inference: the moving statistics
    expected = (x - mean) / np.sqrt(unbiased + 1.001e-5) * fused.gamma.numpy() + fused.beta.numpy()
    np.testing.assert_allclose(np.asarray(fused(x, training=False)), expected, rtol=1e-4, atol=1e-5)


def test_grouped_batch_norm_normalises_each_group_on_its_own_as_two_devices_would():
    """batch_norm_group=8 on a batch of 16: each half of the batch normalised with its own
    statistics (as the paper's two GPUs did with 64 of 128 images), the moving statistics the
    mean of the halves'; inference as before."""
    from src.models import BatchNorm
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, (8, 6, 6, 5)), rng.normal(4, 3, (8, 6, 6, 5))])
    x = tf.constant(x, tf.float32)
    grouped, halves = BatchNorm(group=8), BatchNorm()
    for layer in (grouped, halves):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2, 5))
        layer.beta.assign(np.linspace(-1, 1, 5))
    y = grouped(x, training=True).numpy()
    halves_y = np.concatenate([halves(x[:8], training=True).numpy(),
                               halves(x[8:], training=True).numpy()])
    np.testing.assert_allclose(y, halves_y, rtol=1e-5, atol=1e-5)
    assert not np.allclose(y, BatchNorm()(x, training=True).numpy(), atol=1e-2)  # not the batch's
    m = 8 * 6 * 6
    means = [x[:8].numpy().mean((0, 1, 2)), x[8:].numpy().mean((0, 1, 2))]
    variances = [x[:8].numpy().var((0, 1, 2)) * m / (m - 1),
                 x[8:].numpy().var((0, 1, 2)) * m / (m - 1)]
    np.testing.assert_allclose(grouped.moving_mean.numpy(), 0.1 * np.mean(means, 0), rtol=1e-5)
    np.testing.assert_allclose(grouped.moving_variance.numpy(), 0.9 + 0.1 * np.mean(variances, 0),
                               rtol=1e-5)
    expected = ((x.numpy() - grouped.moving_mean.numpy())
                / np.sqrt(grouped.moving_variance.numpy() + 1.001e-5) * grouped.gamma.numpy()
                + grouped.beta.numpy())  # inference: the moving statistics, no groups
    np.testing.assert_allclose(grouped(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision, jit", [("mixed_bfloat16", False), ("mixed_float16", False),
                                            ("float32", True)])
def test_fused_batch_norm_trains_in_mixed_precision_and_under_xla(precision, jit):
    from src.models import BatchNorm
    keras.mixed_precision.set_global_policy(precision)
    try:
        layer = BatchNorm()
        layer.build((8, 4, 4, 3))
        x = tf.random.normal((8, 4, 4, 3)) * 2 + 1

        @tf.function(jit_compile=jit)
        def step(x):
            with tf.GradientTape() as tape:
                y = layer(tf.cast(x, layer.compute_dtype), training=True)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 3)
            return y, tape.gradient(loss, layer.trainable_variables)

        y, grads = step(x)
        assert y.dtype == layer.compute_dtype and all(g.dtype == tf.float32 for g in grads)
        assert layer.moving_mean.dtype == "float32"
        np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.numpy().mean((0, 1, 2)),
                                   rtol=0.05)
        assert all(np.isfinite(g.numpy()).all() for g in grads)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --- the pre-activation unit (He et al. 2016) ----------------------------------------------------

@pytest.mark.parametrize("depth", [20, 56, pytest.param(110, marks=pytest.mark.heavy)])
@pytest.mark.parametrize("shortcut", ["identity", "projection"])
def test_preact_nets_have_exactly_the_original_parameter_count(depth, shortcut):
    """BN moves, none is added on balance: + the final BN (64 channels); - the first unit's own
    BN (16: its pre-activation is the stem's); and the downsampling units normalise their input
    before the conv widens it (16 instead of 32 channels, 32 instead of 64): 64 - 16 - 16 - 32."""
    original = resnet(depth, shortcut)
    preact = resnet(depth, shortcut, block="preact")
    assert trainable_parameters(preact) == trainable_parameters(original)
    assert preact.get_layer("final_bn").gamma.shape == (64,)
    assert preact.get_layer("stage2_block1_1_bn").gamma.shape == (16,)
    assert preact.get_layer("stage3_block1_1_bn").gamma.shape == (32,)
    assert "stage1_block1_1_bn" not in {layer.name for layer in preact.layers}


def test_preact_unit_is_bn_relu_conv_twice_and_adds_with_nothing_after_it():
    model = resnet(20, "identity", block="preact")
    unit = "stage1_block2"
    assert model.get_layer(f"{unit}_1_bn").input is model.get_layer("stage1_block1_add").output
    assert model.get_layer(f"{unit}_relu1").input is model.get_layer(f"{unit}_1_bn").output
    assert model.get_layer(f"{unit}_1_conv").input is model.get_layer(f"{unit}_relu1").output
    assert model.get_layer(f"{unit}_2_bn").input is model.get_layer(f"{unit}_1_conv").output
    assert model.get_layer(f"{unit}_2_conv").input is model.get_layer(f"{unit}_relu2").output
    add = model.get_layer(f"{unit}_add")
    assert add.input[0] is model.get_layer(f"{unit}_2_conv").output
    assert add.input[1] is model.get_layer("stage1_block1_add").output  # the identity path
    assert model.get_layer("stage1_block1_1_conv").input is model.get_layer("stem_relu").output
    assert model.get_layer("final_bn").input is model.get_layer("stage3_block3_add").output


# --- the bottleneck unit (He et al. 2016: CIFAR ResNet-164 and ResNet-1001) --------------------

def bottleneck_parameters(n: int, preact: bool) -> int:
    """Counted by hand from the authors' code (KaimingHe/resnet-1k-layers, resnet-pre-act.lua):
    stage widths 16/32/64 inside, 4x outside, a 1x1 projection where the width changes (with BN
    in the original form, bare in the pre-activation form), the stem 3x3 conv to 16 channels."""
    total, c_in = 27 * 16 + 2 * 16, 16  # the stem conv and its BN (the first unit's common BN)
    for stage, f in enumerate((16, 32, 64)):
        body = 4 * f * f + 9 * f * f + 2 * f + 2 * f  # the 3x3 and the restoring 1x1, two BNs
        if preact:
            first = (0 if stage == 0 else 2 * c_in) + c_in * f + body + c_in * 4 * f
            other = 8 * f + 4 * f * f + body
        else:
            first = c_in * f + body + 8 * f + c_in * 4 * f + 8 * f
            other = 4 * f * f + body + 8 * f
        total, c_in = total + first + (n - 1) * other, 4 * f
    return total + (2 * 256 if preact else 0) + 256 * 10 + 10


@pytest.mark.parametrize("depth", [164, pytest.param(1001, marks=pytest.mark.heavy)])
@pytest.mark.parametrize("block", ["bottleneck", "preact_bottleneck"])
def test_bottleneck_nets_have_the_pre_activation_papers_parameter_count(depth, block):
    """164 layers: 1,704,154 (original) and 1,703,258 (pre-act), the paper's 1.7M; 1001 layers:
    10,328,602 and 10,327,706, which the paper prints as 10.2M (the authors' code gives the same
    count: the paper's figure is not a rounding of it)."""
    from experiments.paper import PREACT_PARAMETERS_M
    params = trainable_parameters(resnet(depth, "projection", block=block))
    assert params == bottleneck_parameters(blocks_per_stage(depth, block), block != "bottleneck")
    assert abs(params / 1e6 - PREACT_PARAMETERS_M[depth]) < 0.15


@pytest.mark.parametrize("block", ["bottleneck", "preact_bottleneck"])
def test_bottleneck_nets_have_9n_plus_2_layers_and_the_papers_widths(block):
    model = resnet(164, "projection", block=block)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    projections = [c for c in convs if c.name.endswith("_proj_conv")]
    assert [c.name for c in projections] == [f"stage{s}_block1_proj_conv" for s in (1, 2, 3)]
    assert len(convs) - len(projections) + 1 == 164  # + the classifier: 9 x 18 + 2
    stem = model.get_layer("stem_conv")
    assert stem.kernel.shape == (3, 3, 3, 16) and stem.input is model.inputs[0]
    for stage, (size, inner) in enumerate([(32, 16), (16, 32), (8, 64)], 1):
        unit = f"stage{stage}_block2"
        assert [model.get_layer(f"{unit}_{k}_conv").kernel.shape for k in (1, 2, 3)] == [
            (1, 1, 4 * inner, inner), (3, 3, inner, inner), (1, 1, inner, 4 * inner)]
        assert model.get_layer(f"{unit}_add").output.shape[1:] == (size, size, 4 * inner)
    assert model(np.zeros((2, 32, 32, 3), np.float32), training=False).shape == (2, 10)
    for stage in (2, 3):  # the size halves at the first 1x1, as in the authors' code
        assert model.get_layer(f"stage{stage}_block1_1_conv").strides == (2, 2)
        assert model.get_layer(f"stage{stage}_block1_proj_conv").strides == (2, 2)


def test_pre_activation_bottleneck_ends_in_bn_relu_and_projects_the_pre_activated_input():
    model = resnet(164, "projection", block="preact_bottleneck")
    names = {layer.name for layer in model.layers}
    assert model.get_layer("final_bn").input is model.get_layer("stage3_block18_add").output
    assert model.get_layer("final_relu").input is model.get_layer("final_bn").output
    assert model.get_layer("pool").input is model.get_layer("final_relu").output
    assert not any(name.endswith("_proj_bn") for name in names)  # a bare 1x1 projection
    for unit, before in [("stage1_block1", "stem_relu"), ("stage2_block1", "stage2_block1_relu1")]:
        common = model.get_layer(before).output  # one pre-activation for branch and shortcut
        assert model.get_layer(f"{unit}_1_conv").input is common
        assert model.get_layer(f"{unit}_proj_conv").input is common
    add = model.get_layer("stage1_block2_add")
    assert add.input[1] is model.get_layer("stage1_block1_add").output  # identity elsewhere
    assert add.input[0] is model.get_layer("stage1_block2_3_conv").output  # nothing after it


def test_original_bottleneck_adds_a_projection_with_bn_before_the_last_relu():
    model = resnet(164, "projection", block="bottleneck")
    add = model.get_layer("stage2_block1_add")
    assert add.input[0] is model.get_layer("stage2_block1_3_bn").output
    assert add.input[1] is model.get_layer("stage2_block1_proj_bn").output
    assert model.get_layer("stage2_block1_relu3").input is add.output
    assert "final_bn" not in {layer.name for layer in model.layers}


@pytest.mark.parametrize("depth", [32, 1202, 163])
def test_a_bottleneck_depth_must_be_9n_plus_2(depth):
    with pytest.raises(ValueError, match=rf"depth={depth} is not allowed: depth must be 9n\+2 "
                                         r"with n >= 1 for block=bottleneck \(its paper's: 164, "
                                         r"1001\)"):
        resnet(depth, "projection", block="bottleneck")


@pytest.mark.parametrize("shortcut", ["identity", "none", "all_projection"])
def test_a_bottleneck_takes_the_projection_shortcut_only(shortcut):
    with pytest.raises(ValueError, match=rf"shortcut='{shortcut}' is not allowed with "
                                         "block=preact_bottleneck: choose projection"):
        resnet(164, shortcut, block="preact_bottleneck")


def test_a_bottleneck_network_is_named_paired_and_foldered_through_its_identity():
    from src.networks import Network
    preact = Network("preact_bottleneck", "projection", 164)
    assert preact.label == "pre-act bottleneck ResNet-B-164"
    assert preact.folder(0) == "preact_bottleneck-projection-164-s0"
    assert preact.original == Network("bottleneck", "projection", 164)
    assert Network("preact", "identity", 110).original.label == "ResNet-110"
    assert Network("bottleneck", "projection", 164).original is None


# --- Figure 7: layer responses --------------------------------------------------------------------

@pytest.mark.parametrize("block", ["original", "preact"])
def test_layer_responses_equal_a_direct_numpy_computation(block):
    from src.models import responses
    keras.utils.set_random_seed(5)
    model = resnet(8, "identity", block=block)
    rng = np.random.default_rng(6)
    for weight in model.weights:  # known, non-trivial BN statistics and scales
        if weight.path.endswith(("moving_mean", "beta")):
            weight.assign(rng.normal(0, 0.5, weight.shape))
        elif weight.path.endswith(("moving_variance", "gamma")):
            weight.assign(rng.uniform(0.5, 2, weight.shape))
    images = rng.normal(size=(24, 32, 32, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((images, np.zeros(24))).batch(10)  # 10, 10, 4
    table = responses(model, batches)
    expected_layers = (["stem_bn", "stage1_block1_1_bn", "stage1_block1_2_bn",
                        "stage2_block1_1_bn", "stage2_block1_2_bn", "stage3_block1_1_bn",
                        "stage3_block1_2_bn"] if block == "original" else
                       ["stem_bn", "stage1_block1_2_bn", "stage1_block1_2_conv",
                        "stage2_block1_2_bn", "stage2_block1_2_conv", "stage3_block1_2_bn",
                        "stage3_block1_2_conv"])
    assert table.layer.tolist() == expected_layers
    assert table["index"].tolist() == list(range(1, 8))
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in expected_layers])
    direct = [np.asarray(o, np.float64).std(axis=(0, 1, 2)).mean()
              for o in probe(images, training=False)]
    np.testing.assert_allclose(table["std"].to_numpy(), direct, rtol=1e-4)


# --- the backward signal (gradients.csv) -----------------------------------------------------------

def test_gradient_norms_equal_a_direct_computation_and_leave_the_network_as_it_was():
    from src.models import convolutions, gradient_norms
    keras.utils.set_random_seed(7)
    model = resnet(8, "projection")
    images = tf.random.normal((16, 32, 32, 3))
    labels = tf.range(16) % 10
    before = [v.numpy() for v in model.weights]
    rows = gradient_norms(model)(images, labels, 5)
    for v, old in zip(model.weights, before):  # BN's moving statistics included
        np.testing.assert_array_equal(v.numpy(), old)
    convs = convolutions(model)
    assert [r["layer"] for r in rows] == [c.name.removesuffix("_conv") for c in convs]
    assert len(rows) == 9 and {r["iteration"] for r in rows} == {5}  # 7 3x3 + 2 projections
    bns = [model.get_layer(c.name.removesuffix("_conv") + "_bn") for c in convs]  # conv -> BN
    probe = keras.Model(model.inputs, [model.outputs[0], *[c.output for c in convs],
                                       *[b.output for b in bns]])
    with tf.GradientTape() as tape:
        logits, *outputs = probe(images, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, True))
    grads = tape.gradient(loss, [*outputs, *[c.kernel for c in convs]])
    direct = [float(tf.norm(g)) for g in grads]
    np.testing.assert_allclose([r["output_gradient_norm"] for r in rows], direct[:9], rtol=1e-5)
    np.testing.assert_allclose([r["bn_output_gradient_norm"] for r in rows], direct[9:18],
                               rtol=1e-5)
    np.testing.assert_allclose([r["kernel_gradient_norm"] for r in rows], direct[18:], rtol=1e-5)
    np.testing.assert_allclose([r["kernel_norm"] for r in rows],
                               [float(tf.norm(c.kernel)) for c in convs], rtol=1e-6)


def test_what_batch_norm_rescales_and_what_it_cannot():
    """A kernel followed by BN, multiplied by c: the network computes the same function, the
    gradients at its output and at the kernel are divided by c, the gradient at the BN output
    does not change, and the effective step lr x |dL/dW| / |W| (the angle a plain SGD step turns
    the kernel's direction, which is all the function sees) falls by c^2: a grown kernel learns
    slower, the effective learning rate lr / |W|^2 of van Laarhoven (2017) (docs/runs.md)."""
    from src.models import gradient_norms
    keras.utils.set_random_seed(8)
    model = resnet(8, "identity")
    images, labels = tf.random.normal((16, 32, 32, 3)), tf.range(16) % 10
    before = gradient_norms(model)(images, labels, 0)
    logits = model(images, training=True).numpy()
    c = 7.0
    conv = model.get_layer("stage2_block1_1_conv")
    conv.kernel.assign(conv.kernel * c)
    after = gradient_norms(model)(images, labels, 0)
    np.testing.assert_allclose(model(images, training=True).numpy(), logits, rtol=1e-3, atol=1e-4)
    i = next(k for k, r in enumerate(before) if r["layer"] == "stage2_block1_1")
    for key in ("output_gradient_norm", "kernel_gradient_norm"):
        assert after[i][key] == pytest.approx(before[i][key] / c, rel=1e-3)
    assert after[i]["bn_output_gradient_norm"] == pytest.approx(
        before[i]["bn_output_gradient_norm"], rel=1e-3)
    step = [r["kernel_gradient_norm"] / r["kernel_norm"] for r in (before[i], after[i])]
    assert step[1] == pytest.approx(step[0] / c ** 2, rel=1e-3)
    others = [k for k in range(len(before)) if k != i]
    np.testing.assert_allclose([after[k]["bn_output_gradient_norm"] for k in others],
                               [before[k]["bn_output_gradient_norm"] for k in others], rtol=1e-3)


def first_over_last(rows, column) -> float:
    """The geometric mean of a gradient norm over the first third of the 3x3 convolutions (the
    stem included) divided by that over the last third."""
    values = np.log([r[column] for r in rows if "shortcut" not in r["layer"]])
    third = len(values) // 3
    return float(np.exp(values[:third].mean() - values[-third:].mean()))


def test_at_initialisation_plain_56_explodes_backward_and_resnet_56_does_not():
    """Yang et al. (ICLR 2019): in a deep batch-normalised plain net the gradient grows
    geometrically towards the input at initialisation; identity shortcuts keep it near flat."""
    from src.models import gradient_norms
    images = tf.random.stateless_normal((128, 32, 32, 3), seed=[0, 1])
    labels = tf.range(128) % 10
    ratios = {}
    for shortcut in ("none", "identity"):
        keras.utils.set_random_seed(0)
        rows = gradient_norms(resnet(56, shortcut))(images, labels, 0)
        ratios[shortcut] = {c: first_over_last(rows, c)
                            for c in ("output_gradient_norm", "bn_output_gradient_norm")}
    # Measured here: plain-56 ~570x, ResNet-56 ~7.5x (a norm, not a mean: the first stage's
    # tensors have 4x the elements of the last's, 2x in the norm).
    for column in ("output_gradient_norm", "bn_output_gradient_norm"):
        assert ratios["none"][column] > 100 and 1 < ratios["identity"][column] < 15, ratios
        assert ratios["none"][column] > 20 * ratios["identity"][column], ratios


@pytest.mark.parametrize("shortcut, block", [("identity", "original"), ("identity", "preact"),
                                             ("none", "original"), ("projection", "bottleneck"),
                                             ("projection", "preact_bottleneck")])
def test_a_lesioned_unit_passes_its_input_on(shortcut, block):
    """Lesion (experiments.lesion): with a unit removed, a ResNet's unit outputs its shortcut
    and a plain net's unit its input, in inference mode, whatever the trained weights; undone
    after."""
    from experiments.lesion import removable, removed, units
    from src.models import normalised_outputs
    bottleneck = "bottleneck" in block  # 20 = 9 x 2 + 2 layers: its second unit keeps the shape
    model = resnet(20 if bottleneck else 8, shortcut, block=block)
    rng = np.random.default_rng(6)
    for layer in model.layers:  # trained-looking BN statistics and scales
        if hasattr(layer, "moving_variance"):
            for v, low, high in [(layer.moving_mean, -1, 1), (layer.moving_variance, 0.5, 2),
                                 (layer.gamma, 0.5, 1.5), (layer.beta, -0.5, 0.5)]:
                v.assign(rng.uniform(low, high, v.shape).astype(np.float32))
    residual, after = shortcut != "none", normalised_outputs(model)
    per_stage = 2 if bottleneck else 1
    assert units(model) == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in range(1, per_stage + 1)]
    assert [removable(model, u, residual) for u in units(model)][:per_stage + 1] == \
        [True] * per_stage + [residual]
    last = {"original": "relu2", "preact": "add", "bottleneck": "relu3",
            "preact_bottleneck": "add"}[block]
    unit, before_unit = (("stage1_block2", f"stage1_block1_{last}") if bottleneck else
                         ("stage1_block1", "stem_relu"))
    ends = [model.get_layer(before_unit).output, model.get_layer(f"{unit}_{last}").output]
    probe = keras.Model(model.inputs, ends)
    x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    before = probe(x, training=False)[1].numpy()
    with removed(model, unit, residual, after):
        unit_in, unit_out = (t.numpy() for t in probe(x, training=False))
        np.testing.assert_allclose(unit_out, unit_in, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(probe(x, training=False)[1].numpy(), before)  # undone


@pytest.mark.parametrize("depth", [20, 56])
def test_the_pytorch_reference_of_make_bench_is_the_same_network(depth):
    """src.torch_reference, which `make bench` holds the trainer against: option A ResNet with
    the same parameters, layer for layer."""
    torch = pytest.importorskip("torch")  # an optional dependency of the benchmark alone
    from src.torch_reference import resnet as torch_resnet
    keras_model = resnet(depth, "identity")
    assert sum(p.numel() for p in torch_resnet(depth).parameters()) == \
        keras_model.count_params() - sum(w.numpy().size for w in keras_model.non_trainable_weights)
    assert torch_resnet(depth)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_the_op_profile_of_make_bench_accounts_for_every_op_kind():
    """Every kind of op is found by its pattern: the catch-all keeps what no pattern names (4-5%
    of ResNet-8's op time on 2 AVX2 cores; a lost pattern, e.g. the forward convolution's 15-18%,
    would show there)."""
    from src.bench import op_profile
    table = op_profile(8, steps=2).set_index("kind")
    assert {"convolution forward", "convolution backward, input", "convolution backward, filter",
            "batch norm forward", "batch norm backward"} <= set(table.index)
    assert (table.ms_per_step > 0).all()
    assert table.share["optimizer, loss and the rest"] < 0.15, table.share


@pytest.mark.parametrize("gpu, flags, timed", [
    (False, ["avx2", "fma"], ["float32"]),  # emulated bfloat16: 12x slower, not timed
    (False, ["avx2", "avx512f", "avx512_vnni"], ["float32"]),  # AVX-512 without BF16: emulated
    (False, ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], ["float32", "mixed_bfloat16"]),
    (False, ["avx2", "avx512f", "amx_tile"], ["float32", "mixed_bfloat16"]),
    (True, [], ["float32", "mixed_bfloat16", "mixed_float16"]),
])
def test_make_bench_times_the_precisions_the_hardware_computes_in(gpu, flags, timed):
    from src import machine
    from src.bench import precisions_to_time
    assert precisions_to_time(gpu, [machine.EXTENSIONS[f] for f in flags]) == timed


@pytest.mark.parametrize("cpuinfo, extensions, lanes", [
    ("processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2595.124\n"
     "flags\t\t: fpu sse2 avx2 fma\nvmx flags\t: ept\n", ["AVX2", "FMA"], 8),
    ("processor\t: 0\nBogoMIPS\t: 2000.00\nFeatures\t: fp asimd sve2\n", [], 4),  # Arm (GH200)
    ("", [], 4),  # /proc/cpuinfo unreadable or empty
])
def test_the_cpu_is_read_on_x86_and_arm(tmp_path, monkeypatch, cpuinfo, extensions, lanes):
    """The vector extensions every summary records and make bench's peak, from /proc/cpuinfo's
    'flags' (x86) or 'Features' (Arm) line: a GPU machine with Arm cores (no 'flags', no 'cpu
    MHz') is read, not a crash."""
    from src import machine
    from src.bench import peak_flops
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "cpuinfo")
    assert machine.vector_extensions() == extensions
    assert f"x {lanes} fp32 lanes" in peak_flops()[1]


@pytest.mark.parametrize("overrides, norm, group", [
    (["depth=8", "batch_norm=keras", "train.batch_size=32"], keras.layers.BatchNormalization, None),
    (["depth=8", "batch_norm_group=16", "train.batch_size=32"], BatchNorm, 16),
])
def test_a_runs_time_estimate_times_its_own_network_and_batch(overrides, norm, group):
    """The step src.run and the sweep time for a run's cost is the run's network (its batch norm,
    its BN groups) on its batch size, as src.steps.build_model makes it for training; it was a
    fused-BN net on 128 images whatever the run."""
    from src.bench import bare_training
    from src.config import compose
    cfg = compose(*overrides)
    _, model, (draw, _, labels) = bare_training(cfg.depth, cfg)
    assert len(labels) == 32 and draw.images.shape[0] == 32
    norms = [layer for layer in model.layers
             if isinstance(layer, (BatchNorm, keras.layers.BatchNormalization))]
    assert norms and all(type(layer) is norm and getattr(layer, "group", None) == group
                         for layer in norms)
