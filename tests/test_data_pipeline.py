"""Tests of `mmzoo.data.load`: the model format, resizing, shuffling, info, and other TFDS datasets."""

import numpy as np
import pytest
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds

import keras
import mmzoo.data
from mmzoo.data import shapes

TINY = shapes.shapes_config("vqa", num_train=48, num_validation=20, num_test=8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _load(data_dir, split="train", **kwargs):
    kwargs.setdefault("batch_size", 8)
    return mmzoo.data.load("mmzoo_shapes", split, config=TINY, data_dir=data_dir, **kwargs)


def test_model_format_and_info(data_dir):
    ds, info = _load(data_dir, with_info=True)
    assert ds.element_spec == (
        {"image": tf.TensorSpec((None, 64, 64, 3), tf.uint8), "text": tf.TensorSpec((None,), tf.string)},
        tf.TensorSpec((None,), tf.int64))
    batches = list(ds.as_numpy_iterator())
    assert sum(len(b[1]) for b in batches) == 48
    labels = np.concatenate([b[1] for b in batches])
    assert labels.min() >= 0 and labels.max() < len(shapes.ANSWERS)
    assert info.class_names == shapes.ANSWERS and info.num_classes == 14
    assert info.image_size == (64, 64) and info.num_examples == 48 and info.split == "train"
    texts = [shapes.generate_example("vqa", "train", i)["text"] for i in range(48)]
    layer = keras.layers.TextVectorization(standardize="lower_and_strip_punctuation")
    layer.adapt(tf.constant(texts))
    # Same tokens as the model's own TextVectorization would find (order among equal counts may differ).
    assert sorted(info.vocabulary) == sorted(layer.get_vocabulary(include_special_tokens=False))
    assert info.model_kwargs()["image_size"] == 64


def test_examples_are_the_generated_ones(data_dir):
    ds = _load(data_dir, "test", batch_size=None)
    got = {(ex[0]["text"].decode(), int(ex[1]), ex[0]["image"].tobytes()) for ex in ds.as_numpy_iterator()}
    want = set()
    for i in range(8):
        ex = shapes.generate_example("vqa", "test", i)
        want.add((ex["text"], shapes.ANSWERS.index(ex["label"]), ex["image"].tobytes()))
    assert got == want


def test_resize_and_unshuffled_order_is_stable(data_dir):
    a = _load(data_dir, "validation", image_size=32, batch_size=5)
    first = list(a.as_numpy_iterator())
    assert first[0][0]["image"].shape == (5, 32, 32, 3) and first[0][0]["image"].dtype == np.uint8
    second = list(a.as_numpy_iterator())
    for (fa, la), (fb, lb) in zip(first, second):
        np.testing.assert_array_equal(fa["image"], fb["image"])
        np.testing.assert_array_equal(la, lb)
    # A resized image is still in 0..255 and close to an area-average of the original.
    original = next(_load(data_dir, "validation", batch_size=5).as_numpy_iterator())[0]["image"][0]
    pooled = original.reshape(32, 2, 32, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(first[0][0]["image"][0].astype(float) - pooled).mean() < 8


def test_shuffle_is_seeded_and_reshuffles(data_dir):
    def texts(ds):
        return [t for b in ds.as_numpy_iterator() for t in b[0]["text"].tolist()]

    a = _load(data_dir, shuffle=True, seed=1)
    first = texts(a)
    assert first == texts(_load(data_dir, shuffle=True, seed=1))
    assert texts(a) != first
    assert sorted(first) == sorted(texts(_load(data_dir, shuffle=False)))


def test_options(data_dir):
    ds = _load(data_dir, batch_size=None, feature_keys={"label": None}, cache=False)
    assert set(ds.element_spec) == {"image", "text"}
    ds = _load(data_dir, batch_size=10, drop_remainder=True)
    assert ds.element_spec[1].shape == (10,)
    _, info = _load(data_dir, with_info=True, max_tokens=5)
    assert len(info.vocabulary) == 5
    ds = _load(data_dir, "train[:50%]", batch_size=None, shuffle=False)
    assert len(list(ds)) == 24


def test_bad_arguments(data_dir):
    with pytest.raises(ValueError, match=r"no feature 'question' for the text.*feature_keys"):
        _load(data_dir, feature_keys={"text": "question"})
    with pytest.raises(ValueError, match="feature_keys"):
        _load(data_dir, feature_keys={"audio": "x"})
    with pytest.raises(ValueError, match=r"must be a scalar Text.*"):
        _load(data_dir, feature_keys={"text": "label"})
    with pytest.raises(ValueError, match="image_size"):
        _load(data_dir, image_size=0)
    with pytest.raises(ValueError, match="either in `name` or with `config`"):
        mmzoo.data.load("mmzoo_shapes/vqa", config=TINY, data_dir=data_dir)


class MmzooTestUserDataset(tfds.core.GeneratorBasedBuilder):
    """A user's image + text dataset: other keys, grayscale images of varying size, string answers."""

    VERSION = tfds.core.Version("0.1.0")
    pkg_dir_path = epath.Path(__file__).parent  # tests/ is not a package, where TFDS looks for metadata

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "picture": tfds.features.Image(shape=(None, None, 1)),
            "meta": {"question": tfds.features.Text()},
            "answer": tfds.features.Text(),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6), "validation": self._generate_examples(3)}

    def _generate_examples(self, n):
        for i in range(n):
            image = np.full((20 + i, 30, 1), 10 * i, np.uint8)
            yield i, {"picture": image, "meta": {"question": f"how bright is {i}?"}, "answer": ["dark", "light"][i % 2]}


def test_other_tfds_dataset_through_feature_keys(data_dir):
    keys = {"image": "picture", "text": "meta/question", "label": "answer"}
    with pytest.raises(ValueError, match="no fixed size"):
        mmzoo.data.load("mmzoo_test_user_dataset", "train", data_dir=data_dir, feature_keys=keys)
    ds, info = mmzoo.data.load("mmzoo_test_user_dataset", "validation", data_dir=data_dir, feature_keys=keys,
                               image_size=(16, 24), batch_size=3, with_info=True)
    features, labels = next(iter(ds))
    assert features["image"].shape == (3, 16, 24, 3) and features["image"].dtype == tf.uint8
    assert info.class_names == ("dark", "light")  # collected from the training split
    assert sorted(labels.numpy().tolist()) == [0, 0, 1]
    assert set(info.vocabulary) >= {"how", "bright", "is"}
