"""BatchNormalization as one fused TensorFlow op, and a helper that swaps it into a built Keras model.

Keras 3's `BatchNormalization` on the TensorFlow backend computes `tf.nn.moments` and `tf.nn.batch_normalization`
out of about a dozen element-wise ops, and autodiff differentiates each of them: every BN layer reads and writes
its activation many times per training step. `FusedBatchNormV3` (and its gradient op) does the same maths in one
pass, and with oneDNN on it runs as oneDNN's batch normalization. On ResNet50 that is most of the gap between
Keras and PyTorch on a CPU (docs/benchmarks.md).
"""

import keras


@keras.saving.register_keras_serializable(package="mmzoo", name="FusedBatchNormalization")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel where it applies.

    Named like the Keras layer on purpose: Keras names a layer's entry in `.weights.h5` files after its class, so
    with the same class name, weight files saved from a plain model load into a fused one and back.

    Same arguments, variables and results as the Keras layer (the moving variance is updated with the biased
    batch variance, as Keras does). It falls back to the Keras computation for anything the fused kernel does not
    cover: other backends, inputs that are not 4-D float32 with the channel axis last or first, masks, renorm,
    synchronized statistics, or `center`/`scale` off.
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and self.center
            and self.scale
            and len(inputs.shape) == 4
            and self.axis % 4 in (1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and self.compute_dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        axis = self.axis % 4
        data_format = "NHWC" if axis == 3 else "NCHW"
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format=data_format, is_training=True
            )
            # The kernel returns the unbiased (n / (n - 1)) batch variance; Keras tracks the biased one.
            shape = tf.shape(inputs, out_type=tf.int64)
            count = tf.cast(tf.reduce_prod(shape) // shape[axis], variance.dtype)
            variance = variance * tf.math.maximum(count - 1.0, 0.0) / tf.math.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            gamma,
            beta,
            mean=tf.convert_to_tensor(self.moving_mean),
            variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon,
            data_format=data_format,
            is_training=False,
        )
        return outputs


def fuse_batch_normalization(model):
    """Make `model`'s `keras.layers.BatchNormalization` layers this module's fused `BatchNormalization`, in place,
    and return `model`. Weights, layer names and variable paths stay as they are (weight files load into either).

    In place because the subclass only replaces `call`: re-classing each layer keeps its variables and graph
    connections, where cloning the model rebuilt all of ResNet50 again (1.5 s of start-up, docs/benchmarks.md).
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):  # as export.py and heads.py walk models
        if type(layer) is keras.layers.BatchNormalization:  # exactly: not subclasses with their own call
            layer.__class__ = BatchNormalization
    return model


FusedBatchNormalization = BatchNormalization  # the name it is registered under
