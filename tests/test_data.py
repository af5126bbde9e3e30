"""The paper's data augmentation (section 4.2) and the stream of draws the trainer takes."""
import itertools

import numpy as np
import tensorflow as tf

from src.data import PAD, Cifar10, Draw, augment, train_batches


def paper_input(image, mean, top, left, flip):
    """One image as the paper prepares it, in NumPy: /255 minus the per-pixel mean, 4 pixels of
    zeros on each side, the 32x32 crop at (top, left), mirrored if drawn."""
    x = np.pad(image.astype(np.float32) / 255 - mean, [(PAD, PAD), (PAD, PAD), (0, 0)])
    x = x[top:top + 32, left:left + 32]
    return x[:, ::-1] if flip else x


def test_augment_pads_zeros_after_the_mean_is_subtracted_then_crops_and_flips():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    mean = rng.uniform(0.3, 0.6, (32, 32, 3)).astype(np.float32)
    corners = [(0, 0), (8, 8), (4, 4), (0, 8), (3, 5), (8, 0)]
    flips = [False, False, False, True, True, True]
    draw = Draw(tf.constant(images), tf.constant(corners, tf.int32), tf.constant(flips))
    got = augment(draw, tf.constant(mean)).numpy()
    compiled = tf.function(augment)(draw, tf.constant(mean)).numpy()  # as in the training step
    np.testing.assert_array_equal(compiled, got)
    for i, ((top, left), flip) in enumerate(zip(corners, flips)):
        np.testing.assert_array_equal(got[i], paper_input(images[i], mean, top, left, flip))
    assert (got[0, :PAD, :] == 0).all() and (got[1, -PAD:, :] == 0).all()  # the padding
    np.testing.assert_array_equal(got[2], images[2] / np.float32(255) - mean)  # the centre


def test_draws_cross_as_uint8_and_a_resumed_stream_draws_what_the_whole_one_did():
    """The pipeline hands the device a quarter of float32's bytes; the stream is a function of
    (seed, iteration), so a run resumed at iteration t sees the batches it would have seen."""
    rng = np.random.default_rng(1)
    data = Cifar10(rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 10, 300).astype(np.int32), None, None,
                   np.zeros((32, 32, 3), np.float32))
    whole = list(itertools.islice(train_batches(data, 64, seed=3), 7))
    resumed = list(itertools.islice(train_batches(data, 64, seed=3, start_iteration=5), 2))
    assert len(whole) == 7 and len(resumed) == 2
    for (i, draw, labels), (j, again, labels_again) in zip(whole[5:], resumed):
        assert i == j and draw.images.dtype == tf.uint8
        for a, b in zip(draw, again):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(labels, labels_again)
    corners = np.concatenate([d.corners for _, d, _ in whole])
    flips = np.concatenate([d.flips for _, d, _ in whole])
    assert set(corners.ravel()) == set(range(2 * PAD + 1)) and 0.35 < flips.mean() < 0.65
