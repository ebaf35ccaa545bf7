"""Adam as one fused TensorFlow op per variable, and compiling a model so that its first step is traced once.

Keras 3's `Adam.update_step` writes the update out of about twenty `keras.ops` calls per variable. On the
TensorFlow backend every one of them is a graph op, so a ResNet50 model (220 variables) spends seconds tracing
its optimizer, and each step reads and writes every weight, moment and velocity several times.
`ResourceApplyAdam` does the same maths in one kernel (docs/benchmarks.md).

Separately, Keras builds a model's optimizer inside the first `tf.function` call when no distribution strategy
is set, and `tf.function` traces a function that creates variables twice. `compile_model` creates the
optimizer's variables before that call.
"""

import keras


@keras.saving.register_keras_serializable(package="mmzoo", name="FusedAdam")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose per-variable update is TensorFlow's fused `ResourceApplyAdam`.

    Same arguments, variables, config and results as the Keras optimizer on dense gradients (the kernel computes
    `alpha = lr·sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)`, `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`,
    `w −= alpha·m / (sqrt(v) + ε)`, as Keras does). An embedding's gradient, whose rows repeat when a batch uses
    a token twice, is summed first, as for a dense gradient; Keras 3.15 squares the rows before summing them
    (docs/benchmarks.md). It falls back to the Keras update on other backends and with `amsgrad=True`. Weight
    decay, clipping and loss scaling happen in the base optimizer, before `update_step`, and are unchanged.
    """

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        # An embedding's gradient arrives as IndexedSlices, a row per token occurrence: summed here, before squaring.
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
            use_locking=False,
        )


def compile_model(model, optimizer="adam", **compile_kwargs):
    """`model.compile(optimizer, **compile_kwargs)`, with `"adam"` meaning this module's fused `Adam`, then
    the optimizer's variables created for `model.trainable_variables`, so that the first `fit` step is traced
    once instead of twice. Returns `model`.

    Compile again (this function or `model.compile`) after changing which layers are trainable.
    """
    if isinstance(optimizer, str) and optimizer.lower() == "adam":
        optimizer = Adam()
    if not model.built:
        raise ValueError(
            f"compile_model: model {model.name!r} is not built, so its variables are not known yet; expected a "
            "built model (every functional model, and every mmzoo recipe, is built)."
        )
    model.compile(optimizer=optimizer, **compile_kwargs)
    model.optimizer.build(model.trainable_variables)
    return model
