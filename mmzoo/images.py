"""The one way mmzoo turns an image file into the pixels a model sees.

Training data (`mmzoo.data.load`, `from_csv`, `from_jsonl`) and both signatures of an export
(`serving_default`, `serving_image_bytes`) decode with `decode_image` and resize with `resize_image`, so a
photo is seen the same way when it is trained on and when it is served.

    pixels = resize_image(decode_image(tf.io.read_file("scene.png")), 64)   # uint8 (64, 64, 3)
"""

import numbers

import tensorflow as tf

__all__ = ["decode_image", "resize_image"]


def decode_image(encoded):
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes (a scalar string tensor) -> uint8 RGB pixels (H, W, 3).

    Any bit depth becomes 8 bits (16-bit PNGs are scaled down), grey and grey+alpha become RGB, RGBA loses its
    alpha channel (no compositing), and an animated GIF gives its first frame.
    """
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_image(images, size):
    """Resize `images` ((H, W, 3) or a batch (B, H, W, 3), any real dtype) to `size` and return uint8 pixels.

    Bilinear with antialiasing (a photo much larger than the model's size is averaged, not sampled), then
    rounded and clipped to 0..255: the result is what a uint8 image of that size holds, so a model sees the
    same numbers whether the pixels were resized before it was fed or inside its export. Images already of
    `size` are only cast (and rounded) to uint8.

    `size` is an int (square) or `(height, width)`.
    """
    size = _as_size(size)
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"`images` must be (H, W, 3) or (B, H, W, 3). Received: images with shape {images.shape}")
    static = tuple(images.shape[-3:-1])
    if static == size:
        return _to_uint8(images)

    def resized():
        return _to_uint8(tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=True))

    if None not in static:
        return resized()
    same = tf.reduce_all(tf.equal(tf.shape(images)[-3:-1], size))
    images = tf.cond(same, lambda: _to_uint8(images), resized)
    return tf.ensure_shape(images, [None] * (images.shape.rank - 3) + [*size, 3])


def _to_uint8(images):
    if images.dtype == tf.uint8:
        return images
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(images, tf.float32)), 0.0, 255.0), tf.uint8)


def _as_size(size):
    sides = [size, size] if isinstance(size, numbers.Integral) else size
    try:
        sides = list(sides)
    except TypeError:
        sides = []
    if len(sides) != 2 or not all(isinstance(side, numbers.Integral) and not isinstance(side, bool) and side > 0 for side in sides):
        raise ValueError(f"`size` must be a positive int or a (height, width) pair. Received: size={size!r}")
    return tuple(int(side) for side in sides)
