"""Object-grid pretraining: mmzoo.data.load_object_grid targets and mmzoo.trainers.objects models."""

import numpy as np
import pytest

import keras
import mmzoo
import mmzoo.data
from mmzoo.data import shapes
from mmzoo.trainers.objects import build_object_grid_model, grid_size
from helpers import tiny_overrides

CONFIG = shapes.shapes_config("vqa", image_size=32, num_train=8, num_validation=2, num_test=2, name="objects_test")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds_objects"))
    import tensorflow_datasets as tfds

    tfds.builder("mmzoo_shapes", config=CONFIG, data_dir=path).download_and_prepare()
    return path


def test_targets_mark_each_object_centre_cell_with_its_shape_and_colour(data_dir):
    grid = 4
    ds, num_classes = mmzoo.data.load_object_grid(
        "mmzoo_shapes", "train", grid_size=grid, batch_size=None, shuffle=False, config=CONFIG, data_dir=data_dir)
    assert num_classes == len(shapes.SHAPES) * len(shapes.COLORS) + 1
    generated = [shapes.generate_example("vqa", "train", i, image_size=32) for i in range(CONFIG.num_train)]
    seen = 0
    for image, targets in ds.as_numpy_iterator():
        # TFDS stores examples in its own order: find this one's generated twin by its pixels.
        (example,) = [e for e in generated if np.array_equal(e["image"], image)]
        seen += 1
        expected = np.zeros(grid * grid, np.int32)
        for shape, color, box in zip(example["objects"]["shape"], example["objects"]["color"], example["objects"]["bbox"]):
            row = int((box.ymin + box.ymax) / 2 * grid)
            col = int((box.xmin + box.xmax) / 2 * grid)
            expected[row * grid + col] = shapes.SHAPES.index(shape) * len(shapes.COLORS) + shapes.COLORS.index(color) + 1
        np.testing.assert_array_equal(targets, expected)
        assert (targets > 0).sum() == len(example["objects"]["shape"])  # one object centre per cell, none lost
    assert seen == CONFIG.num_train


def test_load_object_grid_rejects_bad_arguments(data_dir):
    with pytest.raises(ValueError, match="Received: grid_size=0"):
        mmzoo.data.load_object_grid("mmzoo_shapes", grid_size=0, config=CONFIG, data_dir=data_dir)
    assert mmzoo.data.has_object_annotations("mmzoo_shapes", config=CONFIG, data_dir=data_dir)


def test_grid_model_trains_the_classifiers_own_image_tower():
    classifier = mmzoo.build_model("coord_cnn_gru_glimpse", **tiny_overrides())
    side = grid_size(classifier)
    assert side == 4  # coord_cnn halves 32 px three times
    grid_model = build_object_grid_model(classifier, num_classes=16)
    assert grid_model.output.shape[1:] == (side * side, 16)
    tower = mmzoo.get_image_tower(classifier)
    before = [w.numpy().copy() for w in tower.trainable_weights]
    grid_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3)).astype("uint8")
    targets = np.random.default_rng(1).integers(0, 16, size=(4, side * side))
    grid_model.fit(images, targets, epochs=1, verbose=0)
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, tower.trainable_weights)]
    assert all(changed)  # shared weights: the classifier's tower is what was trained


def test_grid_model_needs_a_token_grid_and_classes():
    pooled = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    with pytest.raises(ValueError, match="outputs tokens"):
        build_object_grid_model(pooled, num_classes=16)
    text_only = mmzoo.build_classifier(image_tower=None, text_tower="gru", fusion=None, **tiny_overrides())
    with pytest.raises(ValueError, match="needs a classifier with an image tower"):
        grid_size(text_only)
    tokens = mmzoo.build_model("coord_cnn_gru_glimpse", **tiny_overrides())
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        build_object_grid_model(tokens, num_classes=1)
