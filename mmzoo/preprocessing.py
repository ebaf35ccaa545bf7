"""The input-pipeline half of a model: what turns raw features into what its numeric backbone takes.

String vectorization cannot run inside a graph replicated by `tf.distribute` (docs/architecture.md), so training
runs it in `tf.data`, in front of the backbone, through the two functions here. Plain `fit` on the full model,
every trainer and retrieval go through them too, so there is one way a raw row becomes numbers.

    ds = mmzoo.preprocessing.preprocess_dataset(model, raw_ds)    # ({"image", "token_ids"}, label) batches
    model.backbone.fit(ds)                                         # inside any strategy's scope
"""

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def preprocess_features(model, features):
    """A dict of raw features (pixels, strings) -> the dict the model's backbone takes (pixels, token ids).

    Runs in `tf.data` maps or eagerly. Features the model does not use are dropped; a missing one is a
    ValueError naming it.
    """
    if not isinstance(features, dict):
        raise ValueError(f"Features must be a dict of named inputs. Received: {type(features).__name__}")
    missing = sorted(set(model.modalities) - set(features))
    if missing:
        raise ValueError(
            f"Model {model.name!r} needs input(s) {missing}. Received features: {sorted(features)}"
        )
    return model.preprocess_inputs(features)


def preprocess_dataset(model, dataset):
    """`dataset` of `(features, label[, sample_weight])` with `features` mapped by `preprocess_features`.

    Under `MultiWorkerMirroredStrategy`, mark the result with `mmzoo.distribute.shard_by_batch`.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`dataset` must be a tf.data.Dataset. Received: dataset={type(dataset).__name__}")

    def preprocess(*element):
        import keras

        features, label, sample_weight = keras.utils.unpack_x_y_sample_weight(
            element if len(element) > 1 else element[0]
        )
        return keras.utils.pack_x_y_sample_weight(preprocess_features(model, features), label, sample_weight)

    return dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
