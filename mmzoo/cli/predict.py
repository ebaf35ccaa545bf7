"""`mmzoo predict`: a classifier's answer for one example, from an export or a .keras file alike."""

from mmzoo.cli.errors import UsageError
from mmzoo.cli.example_inputs import model_takes, predict_values, read_audio, read_image
from mmzoo.cli.models import audio_formats, exported_input_kinds, keras_input_kinds, load_any_model


def predict_command(args):
    import numpy as np

    model, kind = load_any_model(args.model)
    inputs = keras_input_kinds(model) if kind == "keras" else exported_input_kinds(model)
    audio = audio_formats(model, kind)
    feeds = {}
    for name, (flag, value) in predict_values(args, inputs).items():
        if inputs[name] == "image":
            feeds[name] = read_image(flag, value, inputs)
        elif inputs[name] == "audio":
            feeds[name] = read_audio(flag, value, inputs, *audio[name], resample=args.resample)
        else:
            feeds[name] = value
    probabilities, label = (_predict_keras(model, feeds, inputs) if kind == "keras"
                            else _predict_exported(model, feeds, inputs, args.model))
    print(f"{label}\t{float(np.max(probabilities)):.4f}")
    return 0


def _predict_exported(served, feeds, inputs, path):
    """(probabilities, the predicted label) of an export for one example: images as their encoded bytes (decoded
    and resized in its graph), audio as the waveform read here, texts as they are."""
    import tensorflow as tf

    request = {}
    for name, value in feeds.items():
        if inputs[name] == "image":
            request[f"{name}_bytes"] = [value]
        else:
            request[name] = [value] if inputs[name] == "text" else value[None]
    try:
        outputs = served.predict_image_bytes(request) if "image" in inputs.values() else served(request)
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"{path}: could not decode the images given ({model_takes(inputs)})") from None
    probabilities = outputs["probabilities"][0]
    return probabilities, str(outputs["label"][0]) if "label" in outputs else str(int(probabilities.argmax()))


def _predict_keras(model, feeds, inputs):
    """(probabilities, the predicted label) of a .keras classifier for one example: each image decoded and
    resized to its input's size by the functions its export uses, so both give the same answer."""
    import keras
    import numpy as np

    from mmzoo.heads import find_class_names
    from mmzoo.images import decode_image, resize_image

    batch = {}
    for name, value in feeds.items():
        if inputs[name] == "image":
            pixels = resize_image(decode_image(value), model.modalities[name].image_size)
            batch[name] = np.asarray(pixels, np.float32)[None]
        elif inputs[name] == "audio":
            batch[name] = value[None]
        else:
            batch[name] = np.array([value], dtype=object)
    logits = model(batch, training=False)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1))[0]
    names, best = find_class_names(model), int(probabilities.argmax())
    return probabilities, str(names[best]) if names else str(best)
