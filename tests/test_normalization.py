"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes, and swaps in keeping weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.towers.normalization import FusedBatchNormalization, fuse_batch_normalization


def _pair(axis, shape):
    keras_bn = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1.001e-5)
    fused_bn = FusedBatchNormalization(axis=axis, momentum=0.9, epsilon=1.001e-5)
    keras_bn.build(shape)
    fused_bn.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=v.shape).astype("float32") for v in keras_bn.weights]
    weights[3] = np.abs(weights[3]) + 0.1  # moving variance
    keras_bn.set_weights(weights)
    fused_bn.set_weights(weights)
    return keras_bn, fused_bn


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("training", [True, False])
def test_same_outputs_gradients_and_moving_statistics(axis, training):
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 5, 6, 7)).astype("float32"))
    results = []
    for layer in _pair(axis, x.shape):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.sin(y))
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y.numpy(), [g.numpy() for g in grads], [w.numpy() for w in layer.weights]))
    (y_keras, g_keras, w_keras), (y_fused, g_fused, w_fused) = results
    np.testing.assert_allclose(y_fused, y_keras, atol=1e-5)
    for expected, got in zip(g_keras, g_fused):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    for expected, got in zip(w_keras, w_fused):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_falls_back_where_the_fused_kernel_does_not_apply():
    layer = FusedBatchNormalization()
    x = np.random.default_rng(2).normal(size=(8, 3)).astype("float32")  # 2-D: Keras computation
    np.testing.assert_allclose(layer(x, training=True).numpy(), keras.layers.BatchNormalization()(x, training=True).numpy(), atol=1e-5)


def _resnet(seed):
    keras.utils.set_random_seed(seed)
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))


def test_fuse_keeps_names_weights_and_outputs_and_saves(tmp_path):
    model = _resnet(seed=4)
    names, paths = [layer.name for layer in model.layers[1:]], [w.path for w in model.weights]  # not the Input
    fused = fuse_batch_normalization(_resnet(seed=4))  # the same initial weights, fused in place
    assert [layer.name for layer in fused.layers[1:]] == names
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in fused.layers) == 53  # every BN of ResNet50
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    assert [w.path for w in fused.weights] == paths
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fused(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-4, atol=1e-4)
    path = tmp_path / "fused.keras"
    fused.save(path)
    reloaded = keras.models.load_model(path)
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in reloaded.layers) == 53
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), fused(x, training=False).numpy(), atol=1e-6)
    fused.save_weights(tmp_path / "w.weights.h5")
    model.load_weights(tmp_path / "w.weights.h5")  # weight files are interchangeable with the plain model


def test_fuse_reaches_nested_models():
    inner = _resnet(seed=5)
    outer = keras.Sequential([keras.Input((32, 32, 3)), inner, keras.layers.GlobalAveragePooling2D()])
    assert fuse_batch_normalization(outer) is outer
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in inner.layers) == 53
