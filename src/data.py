"""CIFAR-10 from tfds, the paper's preprocessing, and a resumable, deterministic input pipeline.

The training stream is a pure function of (seed, iteration): epoch e is the permutation drawn with
seed (seed, e) and batch t is augmented with seeds derived from (seed, t). A run resumed at
iteration t therefore sees exactly the batches an uninterrupted run would have seen, with no
input-pipeline state in the checkpoint.
"""
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

PAD = 4  # pixels of zero padding before the random 32x32 crop (paper section 4.2)
# k / 255 for each pixel value k, correctly rounded, as a table: in a compiled step TensorFlow's
# constant folding would turn x / 255 into x * (1 / 255), one bit off for some pixels.
PIXEL_SCALE = np.arange(256, dtype=np.float32) / np.float32(255)
TRAIN_SIZE, TEST_SIZE = 50_000, 10_000
VALIDATION_SIZE = 5_000  # the paper's 45k/5k split of train, for choosing hyper-parameters
# Seconds to reach the download host before a first run without the data gives up (tfds itself
# retries for minutes on a machine with no network).
CONNECT_SECONDS = 15
PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class DataError(Exception):
    """The data cannot be read; the message says where it looked and what to do."""


@dataclass
class Cifar10:
    train_images: np.ndarray  # uint8, N x 32 x 32 x 3
    train_labels: np.ndarray  # int32
    test_images: np.ndarray  # float32, mean-subtracted
    test_labels: np.ndarray
    mean: np.ndarray  # per-pixel mean image of the training images, 32 x 32 x 3, 0-1 scale


def check_download_host(data_dir, where) -> None:
    """Where cifar10 is not prepared yet, DataError at once if its download host cannot be
    reached, naming the ways to a local copy."""
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if builder.is_prepared() or any(os.environ.get(k) for k in PROXIES):
        return  # behind a proxy a direct connection proves nothing: tfds goes through it
    host = urlparse(builder.info.homepage).hostname
    try:
        socket.create_connection((host, 443), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise DataError(
            f"cifar10 is not in {where} and its download host {host} cannot be reached "
            f"({e.strerror or type(e).__name__}): point TFDS_DATA_DIR=<folder holding cifar10/3.0.2> "
            "TFDS_DOWNLOAD=false (or data.dir=... data.download=false) at a local copy, or connect "
            "to the network") from None


def _split(name, data_dir, download):
    """One tfds split as numpy arrays, with the failures a user can cause turned into DataError."""
    where = data_dir or f"tfds's default data_dir ({tfds.core.constants.DATA_DIR})"
    if data_dir is not None and not download and not Path(data_dir).is_dir():
        raise DataError(
            f"data.dir={data_dir} does not exist (download is off): point data.dir or "
            "TFDS_DATA_DIR at a folder holding cifar10/3.0.2, or set data.download=true"
        )
    if download:
        check_download_host(data_dir, where)
    try:
        images, labels = tfds.as_numpy(tfds.load(
            "cifar10", split=name, data_dir=data_dir, download=download,
            as_supervised=True, batch_size=-1,
        ))
    except tf.errors.OpError as e:  # e.g. "{{function_node ...}} corrupted record at 12 [Op:...]"
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", str(e.message).splitlines()[0]).strip()
        raise DataError(f"cifar10 in {where} cannot be read ({reason}): the files are damaged; "
                        "delete them and prepare the data again") from None
    except (AssertionError, OSError) as e:  # OSError: also requests' connection errors
        if download:
            raise DataError(f"could not download or prepare cifar10 in {where}: {e}") from None
        raise DataError(
            f"no prepared cifar10 in {where} and data.download=false: point data.dir or "
            "TFDS_DATA_DIR at a folder holding cifar10/3.0.2, or set data.download=true"
        ) from None
    return images, labels.astype(np.int32)


def load(data_dir=None, download=True, train_examples=None, test_examples=None,
         validation=False) -> Cifar10:
    """The training and evaluation sets; with validation=True, the paper's 45k/5k split of train."""
    train_end = TRAIN_SIZE - VALIDATION_SIZE if validation else TRAIN_SIZE
    if train_examples is not None:
        train_end = min(train_end, train_examples)
    if validation:
        test_end = TRAIN_SIZE if test_examples is None else min(TRAIN_SIZE, 45_000 + test_examples)
        test_split = f"train[{TRAIN_SIZE - VALIDATION_SIZE}:{test_end}]"
    else:
        test_split = "test" if test_examples is None else f"test[:{test_examples}]"
    train_images, train_labels = _split(f"train[:{train_end}]", data_dir, download)
    test_images, test_labels = _split(test_split, data_dir, download)
    mean = (train_images.astype(np.float32) / 255).mean(axis=0)
    return Cifar10(train_images, train_labels, test_images.astype(np.float32) / 255 - mean,
                   test_labels, mean)


class Draw(NamedTuple):
    """A training batch before its augmentation: the images as stored, and the crop and flip
    drawn for each. It crosses to the training device as uint8 (a quarter of float32's bytes),
    and `augment` makes the network's input of it there."""
    images: tf.Tensor  # uint8, batch x 32 x 32 x 3
    corners: tf.Tensor  # int32, batch x 2: the top-left corner of the crop in the padded image
    flips: tf.Tensor  # bool, batch: mirrored left to right


def augment(draw: Draw, mean) -> tf.Tensor:
    """The paper's input of a draw (section 4.2): /255 minus the per-pixel mean, padded 4 with
    zeros, cropped to 32x32 at the drawn corner, flipped where drawn; vectorised, on the device
    it runs on."""
    x = tf.gather(PIXEL_SCALE, tf.cast(draw.images, tf.int32)) - mean
    x = tf.pad(x, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    rows = draw.corners[:, :1] + tf.range(32)
    cols = draw.corners[:, 1:] + tf.range(32)
    x = tf.gather(x, rows, axis=1, batch_dims=1)
    x = tf.gather(x, cols, axis=2, batch_dims=1)
    return tf.where(draw.flips[:, None, None, None], tf.reverse(x, axis=[2]), x)


def random_draw(n: int) -> Draw:
    """n random images with random crops and flips: a stand-in batch for timings and tests."""
    pixels = tf.random.uniform((n, 32, 32, 3), 0, 256, tf.int32)
    return Draw(tf.cast(pixels, tf.uint8), tf.random.uniform((n, 2), 0, 2 * PAD + 1, tf.int32),
                tf.random.uniform((n,)) < 0.5)


def train_batches(data: Cifar10, batch_size: int, seed: int, start_iteration: int = 0):
    """An endless stream of (iteration, draw, labels) from `start_iteration` on; `augment` makes
    a draw the network's input."""
    n = len(data.train_labels)
    with tf.device("/CPU:0"):  # the pipeline's: on a GPU, eager constants would go to the GPU
        images, labels = tf.constant(data.train_images), tf.constant(data.train_labels)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order)

    first = start_iteration * batch_size
    order = (tf.data.Dataset.range(first // n, sys.maxsize).flat_map(epoch_order)
             .skip(first % n).batch(batch_size, drop_remainder=True))

    def draw(iteration, index):
        """One crop corner and one flip per image, from seeds derived from (seed, iteration)."""
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.stack([tf.cast(seed, tf.int64), iteration]), num=2))
        corners = tf.random.stateless_uniform((batch_size, 2), crop_seed, 0, 2 * PAD + 1, tf.int32)
        flips = tf.random.stateless_uniform((batch_size,), flip_seed) < 0.5
        return iteration, Draw(tf.gather(images, index), corners, flips), tf.gather(labels, index)

    stream = tf.data.Dataset.zip(tf.data.Dataset.range(start_iteration, sys.maxsize), order)
    return stream.map(draw, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def test_batches(data: Cifar10, batch_size: int = 500):
    return (tf.data.Dataset.from_tensor_slices((data.test_images, data.test_labels))
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
