"""Frozen image towers run once: their outputs for the whole training data, held in memory, are what the rest of
the backbone trains on every epoch."""

import math


TOWER_OUTPUT_CACHE_BYTES = 2 << 30  # held in memory at most: the frozen image towers' outputs for the training data


def tower_output_bytes(towers, num_examples):
    if not num_examples:
        return math.inf  # unknown: do not risk it
    return num_examples * sum(math.prod(tower.output.shape[1:]) for tower in towers) * 4


def with_tower_outputs(model, ds, *, batch_size, shuffle_seed=None):
    """`ds` of preprocessed features with each image replaced by its (frozen) tower's output, computed in one pass
    and held in memory (what `mmzoo.get_feature_model` trains on); reshuffled every epoch given `shuffle_seed`."""
    import numpy as np
    import tensorflow as tf

    towers = {model.modalities[key].backbone_key: tower for key, tower in model.image_towers.items()}
    forward = {key: tf.function(lambda images, tower=tower: tower(images, training=False))
               for key, tower in towers.items()}
    columns, labels = {}, []
    for features, label in ds:
        for key, value in features.items():
            columns.setdefault(key, []).append((forward[key](value) if key in forward else value).numpy())
        labels.append(label.numpy())
    columns = {key: np.concatenate(parts) for key, parts in columns.items()}
    label = np.concatenate(labels)
    cached = tf.data.Dataset.from_tensor_slices((columns, label))
    if shuffle_seed is not None:
        cached = cached.shuffle(len(label), seed=shuffle_seed, reshuffle_each_iteration=True)
    return cached.batch(batch_size).prefetch(tf.data.AUTOTUNE)
