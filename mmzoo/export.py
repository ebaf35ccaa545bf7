"""SavedModel export for serving: raw pixels (or encoded image bytes) and strings in, probabilities out, or,
for a dual encoder, one embedding signature per encoder (for a vector index).

Layout is TF Serving's `<root>/<name>/<version>/`. Every write goes to a hidden temporary directory beside the
target and is renamed into place only when complete, so a failed or interrupted export never leaves a partial
model and never damages an existing version.
"""

import contextlib
import os
import re
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf

from mmzoo.heads import find_class_names

SERVING_DEFAULT = "serving_default"
SERVING_IMAGE_BYTES = "serving_image_bytes"
EMBED_PREFIX = "embed_"
_ENCODER_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^[0-9]+$")


def export_model(model, path, *, overwrite=False):
    """Export `model` as a SavedModel and return the version directory written.

    `path` is either a version directory (`saved_models/vqa/3`) or a model directory (`saved_models/vqa`), in
    which case the next free version number is used. An existing version is replaced only with `overwrite=True`.

    Signatures: `serving_default` takes each image input as uint8 `[None, H, W, 3]` and each text input as
    string `[None]` and returns `probabilities` and, when the model carries class names, `label`.
    `serving_image_bytes` takes encoded JPEG/PNG/GIF/BMP bytes (`<name>_bytes`, string `[None]`) instead.

    A trainer (`mmzoo.trainers`) names what it serves in its `inference_model` (the classifier, the student);
    only that is exported, never the training wrapper.

    `model` may also be a dict of encoders, `{"image": image_encoder, "text": text_encoder}` (what a
    `DualEncoder`'s `inference_model` is): each takes one image (H, W, 3) or string input and returns one
    embedding, and gets a signature `embed_<key>` (uint8 pixels or strings under `<key>`, `embedding` out),
    plus `embed_<key>_bytes` (encoded images under `<key>_bytes`) for an image encoder. `serving_default` is
    the first of them.
    """
    model = getattr(model, "inference_model", model)
    if isinstance(model, dict):
        specs = _encoder_specs(model)
        models = list(model.values())
    elif isinstance(model, keras.Model):
        specs = _input_specs(model)
        models = [model]
    else:
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    target = _version_directory(os.fspath(path))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"Export target {target} already exists; pass overwrite=True to replace it.")
    parent = os.path.dirname(target) or "."
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
    try:
        with _portable_recurrent_layers(*models):
            _build_archive(model, specs).write_out(staging, verbose=False)
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _version_directory(path):
    path = path.rstrip("/\\") or path
    if _VERSION.match(os.path.basename(path)):
        if int(os.path.basename(path)) < 1:
            raise ValueError(f"A SavedModel version must be a positive integer. Received: path={path!r}")
        return path
    versions = [int(entry) for entry in os.listdir(path) if _VERSION.match(entry)] if os.path.isdir(path) else []
    return os.path.join(path, str(max(versions, default=0) + 1))


def _swap_into_place(staging, target):
    if not os.path.exists(target):
        os.rename(staging, target)
        return
    retired = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.old-{uuid.uuid4().hex}")
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _input_specs(model):
    """{input name: (kind, batch shape)} for a model taking a dict of images (H, W, 3) and/or scalar strings."""
    try:
        structure = model.input
    except (AttributeError, ValueError):  # a subclassed or unbuilt model has no symbolic inputs
        structure = None
    if not isinstance(structure, dict):
        raise ValueError(
            "export_model serves functional models whose inputs are a dict of images (H, W, 3) and scalar "
            f"strings, such as mmzoo.build_model() returns. Received: inputs {structure!r}"
        )
    specs = {}
    for name, tensor in structure.items():
        shape, dtype = tuple(tensor.shape), tensor.dtype
        if dtype == "string" and len(shape) == 1:
            specs[name] = ("text", shape)
        elif len(shape) == 4 and shape[-1] == 3 and None not in shape[1:]:
            specs[name] = ("image", shape)
        else:
            raise ValueError(
                "export_model serves models whose inputs are images (H, W, 3) and scalar strings. "
                f"Received: input '{name}' with shape {shape} and dtype {dtype}"
            )
    return specs


def _encoder_specs(encoders):
    """{key: (kind, batch shape)} for a dict of single-input, single-output encoders."""
    if not encoders:
        raise ValueError("`model` is an empty dict; give keras.Model encoders, e.g. {'image': ..., 'text': ...}.")
    specs = {}
    for key, encoder in encoders.items():
        if not isinstance(key, str) or not _ENCODER_KEY.match(key):
            raise ValueError(f"Encoder names must be lowercase identifiers (they name signatures). Received: {key!r}")
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`model` must be a keras.Model or a dict of them. Received: model[{key!r}]={encoder!r}")
        try:
            inputs, outputs = encoder.inputs, encoder.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
            raise ValueError(
                "Each encoder of a dict export must be a functional model with one input (an image (H, W, 3) or a "
                f"scalar string) and one output. Received: model[{key!r}] with inputs {inputs!r}"
            )
        shape, dtype = tuple(inputs[0].shape), inputs[0].dtype
        if dtype == "string" and len(shape) == 1:
            specs[key] = ("text", shape)
        elif len(shape) == 4 and shape[-1] == 3 and None not in shape[1:]:
            specs[key] = ("image", shape)
        else:
            raise ValueError(
                "Encoders take an image (H, W, 3) or a scalar string. "
                f"Received: model[{key!r}] with input shape {shape} and dtype {dtype}"
            )
    return specs


def _build_encoder_archive(encoders, specs):
    archive = keras.export.ExportArchive()
    for key, encoder in encoders.items():
        archive.track(encoder)
        kind, shape = specs[key]
        embed = _embedding_endpoint(encoder, key, kind)
        if kind == "text":
            archive.add_endpoint(
                f"{EMBED_PREFIX}{key}", embed, input_signature=[{key: tf.TensorSpec([None], tf.string, name=key)}]
            )
            continue
        archive.add_endpoint(
            f"{EMBED_PREFIX}{key}", embed, input_signature=[{key: tf.TensorSpec(shape, tf.uint8, name=key)}]
        )
        name = f"{key}_bytes"
        archive.add_endpoint(
            f"{EMBED_PREFIX}{name}",
            _bytes_endpoint(embed, key, shape[1:3]),
            input_signature=[{name: tf.TensorSpec([None], tf.string, name=name)}],
        )
    return archive


def _embedding_endpoint(encoder, key, kind):
    def embed(inputs):
        value = tf.cast(inputs[key], tf.float32) if kind == "image" else inputs[key]
        return {"embedding": tf.cast(encoder(value, training=False), tf.float32)}

    return embed


def _bytes_endpoint(embed, key, size):
    def embed_bytes(inputs):
        return embed({key: _decode_images(inputs[f"{key}_bytes"], size)})

    return embed_bytes


def _build_archive(model, specs):
    if isinstance(model, dict):
        return _build_encoder_archive(model, specs)
    class_names = find_class_names(model)

    def outputs(inputs):
        logits = model(inputs, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        result = {"probabilities": probabilities}
        if class_names:
            result["label"] = tf.gather(tf.constant(class_names), tf.argmax(probabilities, axis=-1))
        return result

    def serve(inputs):
        return outputs(
            {name: tf.cast(value, tf.float32) if specs[name][0] == "image" else value for name, value in inputs.items()}
        )

    def serve_image_bytes(inputs):
        decoded = {}
        for name, (kind, shape) in specs.items():
            decoded[name] = _decode_images(inputs[f"{name}_bytes"], shape[1:3]) if kind == "image" else inputs[name]
        return outputs(decoded)

    archive = keras.export.ExportArchive()
    archive.track(model)
    pixel_specs, bytes_specs = {}, {}
    for name, (kind, shape) in specs.items():
        if kind == "image":
            pixel_specs[name] = tf.TensorSpec(shape, tf.uint8, name=name)
            bytes_specs[f"{name}_bytes"] = tf.TensorSpec([None], tf.string, name=f"{name}_bytes")
        else:
            pixel_specs[name] = bytes_specs[name] = tf.TensorSpec([None], tf.string, name=name)
    archive.add_endpoint(SERVING_DEFAULT, serve, input_signature=[pixel_specs])
    if any(kind == "image" for kind, _ in specs.values()):
        archive.add_endpoint(SERVING_IMAGE_BYTES, serve_image_bytes, input_signature=[bytes_specs])
    return archive


def _decode_images(encoded, size):
    def decode(one):
        image = tf.io.decode_image(one, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(tf.cast(image, tf.float32), size)

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([*size, 3], tf.float32))


@contextlib.contextmanager
def _portable_recurrent_layers(*models):
    """Trace LSTM/GRU with the generic kernel: a graph traced on a GPU would otherwise bake in CudnnRNN ops
    that a CPU-only server cannot run. Same weights, same maths."""
    changed = []
    for model in models:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if getattr(layer, "use_cudnn", False) in ("auto", True) and all(layer is not seen for seen, _ in changed):
                changed.append((layer, layer.use_cudnn))
                layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in changed:
            layer.use_cudnn = value


class ExportedModel:
    """A reloaded export. Call it with a dict of numpy-like inputs; get a dict of numpy outputs."""

    def __init__(self, path):
        self.path = path
        self.saved_model = tf.saved_model.load(path)
        self.signatures = self.saved_model.signatures

    def __call__(self, inputs):
        return self._run(SERVING_DEFAULT, inputs)

    def predict_image_bytes(self, inputs):
        """Like calling the model, with encoded images under `<name>_bytes` keys."""
        return self._run(SERVING_IMAGE_BYTES, inputs)

    def input_names(self):
        """Names of the inputs `serving_default` takes, e.g. ("image", "text")."""
        return tuple(sorted(self.signatures[SERVING_DEFAULT].structured_input_signature[1]))

    def num_classes(self):
        """Width of the `probabilities` output."""
        return self.signatures[SERVING_DEFAULT].structured_outputs["probabilities"].shape[-1]

    def serve_tensors(self, inputs):
        """`probabilities` for a dict of tensors (pixels of any real dtype, strings), in eager or graph code such
        as a `tf.data` map (where a distillation teacher runs)."""
        signature = self.signatures[SERVING_DEFAULT]
        feeds = {}
        for name, spec in signature.structured_input_signature[1].items():
            value = inputs[name]
            if spec.dtype == tf.uint8 and value.dtype != tf.uint8:
                value = tf.cast(tf.clip_by_value(tf.round(tf.cast(value, tf.float32)), 0.0, 255.0), tf.uint8)
            feeds[name] = value
        return signature(**feeds)["probabilities"]

    def embed(self, key, values):
        """Embeddings from the `embed_<key>` signature of a dual-encoder export, e.g. `embed("text", ["a red
        circle"])`; `key` may end in `_bytes` for encoded images. Returns float32 numpy [N, dim]."""
        return self._run(f"{EMBED_PREFIX}{key}", {key: values})["embedding"]

    def embed_images(self, images):
        """Embeddings of images: uint8 (or float, rounded and clipped) pixels [N, H, W, 3]."""
        return self.embed("image", images)

    def embed_image_bytes(self, encoded):
        """Embeddings of encoded JPEG/PNG/GIF/BMP images (a list of bytes), resized to the encoder's size."""
        return self.embed("image_bytes", encoded)

    def embed_texts(self, texts):
        """Embeddings of texts: a list or array of strings [N]."""
        return self.embed("text", texts)

    def run(self, signature_name, inputs):
        """Call any signature with a dict of numpy-like inputs; returns a dict of numpy outputs."""
        return self._run(signature_name, inputs)

    def _run(self, signature_name, inputs):
        if signature_name not in self.signatures:
            raise ValueError(f"{self.path} has no signature '{signature_name}'. It has: {sorted(self.signatures)}")
        signature = self.signatures[signature_name]
        expected = signature.structured_input_signature[1]
        if not isinstance(inputs, dict) or set(inputs) != set(expected):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"Expected a dict with keys {sorted(expected)}. Received: {got}")
        feeds = {}
        for name, spec in expected.items():
            value = inputs[name]
            if spec.dtype == tf.uint8:
                value = np.clip(np.rint(np.asarray(value, dtype=np.float64)), 0, 255).astype(np.uint8)
            feeds[name] = tf.convert_to_tensor(value, dtype=spec.dtype)
        outputs = {name: value.numpy() for name, value in signature(**feeds).items()}
        if "label" in outputs:
            outputs["label"] = np.array([label.decode("utf-8") for label in outputs["label"]])
        return outputs


def load_exported(path):
    """Reload an export. `path` is a version directory, or a model directory whose highest version is used."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"No exported model at {path!r}: not a directory.")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        versions = [int(entry) for entry in os.listdir(path) if _VERSION.match(entry)]
        if not versions:
            raise ValueError(f"No SavedModel at {path!r}: no saved_model.pb and no numbered version directories.")
        path = os.path.join(path, str(max(versions)))
    return ExportedModel(path)
