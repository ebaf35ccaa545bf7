"""SavedModel export of a captioner: images in, caption strings out, decoded inside the graph.

Signatures (TF Serving layout `<dir>/<version>/`, written through `mmzoo.export_dirs` like every mmzoo export):

* `serving_default`: `image` uint8 `[None, None, None, 3]` -> `caption` string `[None]`, `token_ids` int32
  `[None, max_length]` (the end token, then zeros) and `log_probability` float32 `[None]`;
* `serving_image_bytes`: `image_bytes` string `[None]` (JPEG/PNG/GIF/BMP/WebP) -> the same;
* `encode`: `image` uint8 -> `image_tokens` float32 `[None, tokens, units]`, for clients that run their own
  decoding loop over a separate decoder.

Pixels of another size than the captioner's, or decoded from bytes, are resized by `mmzoo.images.resize_image`,
the function the data pipelines use; requests are checked in the graph as the classifier export checks them (rank,
channels, sizes, empty batches answered empty). The generation loop is `generation_function`, the one
`ImageCaptioner.generate` runs.
"""

import json
import os

import keras
import tensorflow as tf

from mmzoo import export_dirs
from mmzoo.captioning.generation import check_options, generation_function
from mmzoo.serving_checks import (METADATA_FILE, SERVING_DEFAULT, SERVING_IMAGE_BYTES, decode_images, pixel_spec,
                                  served, string_spec, to_model_pixels)

ENCODE = "encode"


def export_captioner(captioner, path, *, overwrite=False, strategy="greedy", num_beams=4, max_length=None,
                     length_penalty=1.0):
    """Export `captioner` (an `ImageCaptioner`) and return the version directory written. `path`, `overwrite`:
    as `mmzoo.export_model`. `strategy`, `num_beams`, `max_length`, `length_penalty`: how the served captions are
    generated (fixed in the export, as `ImageCaptioner.generate` takes them)."""
    options = check_options(captioner, max_length, strategy, num_beams, length_penalty)
    model_dir, version = export_dirs.split_target(path)
    with export_dirs.Staging(model_dir, version, overwrite=overwrite) as staging:
        _archive(captioner, options).write_out(staging.path, verbose=False)
        _write_metadata(staging.path, captioner, options)
        return staging.publish()


def _archive(captioner, options):
    max_length, strategy, num_beams, length_penalty = options
    generate = generation_function(captioner, max_length=max_length, strategy=strategy, num_beams=num_beams,
                                   length_penalty=length_penalty)
    size = (captioner.image_size, captioner.image_size)

    def empty():
        return {"caption": tf.zeros([0], tf.string), "token_ids": tf.zeros([0, max_length], tf.int32),
                "log_probability": tf.zeros([0], tf.float32)}

    def serve(inputs):
        return served(inputs, {"image": "pixels"}, lambda checked: generate(to_model_pixels(checked["image"], size)),
                       empty)

    def serve_image_bytes(inputs):
        return served(inputs, {"image_bytes": "strings"},
                       lambda checked: generate(decode_images(checked["image_bytes"], size)), empty)

    tokens_shape = tuple(captioner.encoder.output.shape[1:])

    def encode(inputs):
        def respond(checked):
            tokens = captioner.encoder(to_model_pixels(checked["image"], size), training=False)
            return {"image_tokens": tf.cast(tokens, tf.float32)}

        return served(inputs, {"image": "pixels"}, respond,
                       lambda: {"image_tokens": tf.zeros([0, *tokens_shape], tf.float32)})

    archive = keras.export.ExportArchive()
    archive.track(captioner)
    archive.add_endpoint(SERVING_DEFAULT, serve, input_signature=[{"image": pixel_spec("image")}])
    archive.add_endpoint(SERVING_IMAGE_BYTES, serve_image_bytes,
                         input_signature=[{"image_bytes": string_spec("image_bytes")}])
    archive.add_endpoint(ENCODE, encode, input_signature=[{"image": pixel_spec("image")}])
    return archive


def _write_metadata(directory, captioner, options):
    """assets.extra/mmzoo.json, as the classifier export writes it, plus what a caption client needs to know."""
    max_length, strategy, num_beams, length_penalty = options
    metadata = {"task": "caption", "inputs": {"image": {"kind": "image", "image_size": [captioner.image_size] * 2}},
                "class_names": None, "max_length": max_length, "strategy": strategy, "num_beams": num_beams,
                "length_penalty": length_penalty, "vocabulary": captioner.id_to_token}
    target = os.path.join(directory, METADATA_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
