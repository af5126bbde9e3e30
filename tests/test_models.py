"""Structural facts of the paper's networks (section 4.2, Table 6)."""
import numpy as np
import pytest

import src  # noqa: F401
from experiments.paper import PARAMETERS_M
from src.models import blocks_per_stage, check_shortcut, resnet, trainable_parameters


@pytest.mark.parametrize("depth", sorted(PARAMETERS_M))
def test_parameter_count_matches_table6(depth):
    params = trainable_parameters(resnet(depth, "identity"))
    digits = 1 if depth >= 110 else 2  # the paper prints 1.7M and 19.4M, else 0.27M etc.
    assert round(params / 1e6, digits) == PARAMETERS_M[depth]


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_and_option_a_have_identical_parameters(depth):
    plain, resnet_a = resnet(depth, "none"), resnet(depth, "identity")
    assert trainable_parameters(plain) == trainable_parameters(resnet_a)
    assert [w.shape for w in plain.weights] == [w.shape for w in resnet_a.weights]


@pytest.mark.parametrize("depth", [20, 56, 110])
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
        check_shortcut("B")
