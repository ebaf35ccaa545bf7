"""mmzoo.optimizers: the fused Adam computes Keras' Adam, and compile_model traces the first step once."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.optimizers import Adam, compile_model

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_backbone.py"


def _apply(optimizer, gradients, initial, steps=4):
    """Variables, moments and velocities after `steps` applications of the same gradients."""
    variables = [keras.Variable(value) for value in initial]
    optimizer.build(variables)
    for _ in range(steps):
        optimizer.apply(gradients, variables)
    return [v.numpy() for v in variables], [m.numpy() for m in optimizer._momentums], [
        v.numpy() for v in optimizer._velocities
    ]


def _dense_case(seed=0):
    rng = np.random.default_rng(seed)
    initial = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    gradients = [tf.constant(rng.normal(size=v.shape).astype("float32")) for v in initial]
    return initial, gradients


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4},
        {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.5},
        {"learning_rate": 0.01, "amsgrad": True},  # falls back to the Keras update
    ],
)
def test_fused_adam_computes_keras_adam(kwargs):
    initial, gradients = _dense_case()
    expected = _apply(keras.optimizers.Adam(**kwargs), gradients, initial)
    got = _apply(Adam(**kwargs), gradients, initial)
    for expected_part, got_part in zip(expected, got):
        for e, g in zip(expected_part, got_part):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-6)
    # Four steps moved every weight: the comparison is not between two untouched copies.
    assert min(float(np.abs(w - i).min()) for w, i in zip(got[0], initial)) > 1e-3


def test_fused_adam_sums_repeated_rows_of_an_embedding_gradient():
    # A batch that uses token 1 twice gives IndexedSlices with index 1 twice. Adam must see the summed gradient
    # (what a dense gradient would be): the first step then moves each touched weight by exactly lr.
    gradient = tf.IndexedSlices(tf.constant([[1.0, -1.0], [2.0, 3.0]]), tf.constant([1, 1]), tf.constant([3, 2]))
    dense = tf.convert_to_tensor(gradient)
    initial = [np.zeros((3, 2), "float32")]
    from_slices = _apply(Adam(0.1), [gradient], initial, steps=1)
    from_dense = _apply(Adam(0.1), [dense], initial, steps=1)
    np.testing.assert_allclose(from_slices[2][0], from_dense[2][0], rtol=1e-6)
    np.testing.assert_allclose(from_slices[0][0], [[0, 0], [-0.1, -0.1], [0, 0]], atol=1e-6)


def test_fused_adam_config_round_trip():
    optimizer = Adam(learning_rate=0.02, beta_1=0.85, epsilon=1e-5, amsgrad=True)
    config = keras.saving.serialize_keras_object(optimizer)
    assert config["registered_name"] == "mmzoo>FusedAdam"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is Adam
    assert restored.get_config() == optimizer.get_config()


def _tiny_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(inputs)))


def _count_traces(model):
    traces = []
    step = model.train_step

    def counting_step(data):
        traces.append(1)  # Python runs here once per trace, never per executed step
        return step(data)

    model.train_step = counting_step
    return traces


def test_compile_model_traces_the_first_step_once():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.arange(8) % 3
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    plain = _tiny_model()
    plain.compile(optimizer="adam", loss=loss)
    plain_traces = _count_traces(plain)
    plain.train_on_batch(x, y)
    # Keras builds the optimizer inside the first tf.function call, and a call that creates variables is traced
    # twice. If this ever gives 1, Keras builds optimizers eagerly itself and compile_model's build is moot.
    assert len(plain_traces) == 2

    model = compile_model(_tiny_model(), loss=loss)
    assert isinstance(model.optimizer, Adam) and model.optimizer.built
    traces = _count_traces(model)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert len(traces) == 1
    assert int(model.optimizer.iterations.numpy()) == 3


def test_compile_model_keeps_a_given_optimizer_and_compile_arguments():
    sgd = keras.optimizers.SGD(0.1)
    model = compile_model(_tiny_model(), sgd, loss="mse", metrics=["mae"])
    assert model.optimizer is sgd and sgd.built
    history = model.fit(np.ones((4, 4), "float32"), np.zeros((4, 3), "float32"), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "mae"}


def test_compile_model_refuses_an_unbuilt_model():
    class Unbuilt(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    with pytest.raises(ValueError, match="not built"):
        compile_model(Unbuilt(), loss="mse")


def test_saved_model_with_fused_adam_loads_and_resumes(tmp_path):
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = np.arange(16) % 3
    model = compile_model(_tiny_model(), Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = mmzoo.load_model(path)
    assert type(loaded.optimizer) is Adam
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    # Both continue identically: the moments and the step count came back.
    model.train_on_batch(x[:8], y[:8])
    loaded.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-6)


@pytest.mark.slow
def test_fused_adam_on_two_replicas_equals_one_replica():
    # A subprocess: logical CPU devices must be configured before TensorFlow initialises.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--optimizer", "fused_adam"], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_abs_diff"] <= 1e-5
    assert result["max_replica_disagreement"] == 0.0
    assert result["max_step"] > 5e-4  # the step moved the trainable weights (by about lr = 1e-3)
