"""Pixel preprocessing that travels inside the model, so exports take raw 0..255 pixels."""

import keras
from keras import ops

# ImageNet channel means in BGR order, as in keras.applications.resnet.preprocess_input ("caffe" mode).
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="mmzoo")
class ResNetPreprocessing(keras.layers.Layer):
    """RGB pixels in [0, 255] -> the BGR, mean-centred input the Keras ResNet50 weights were trained on.

    A registered layer rather than `preprocess_input` in a Lambda, so `.keras` files reload with
    `safe_mode=True` and the SavedModel export needs no client-side preprocessing.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        pixels = ops.cast(inputs, self.compute_dtype)
        bgr = ops.flip(pixels, axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
