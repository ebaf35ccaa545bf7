"""Which modalities each example has: presence flags, and modality dropout that switches them off in training.

A model that can do without an input takes, for every modality, a boolean flag per example (`<name>_present`).
The fusion layers read the flags (`presence=[flag_1, ..., flag_N]`, each `(batch,)` boolean) so that an absent
modality contributes nothing: masked means and sums, renormalised gates, masked attention keys. Feeding zeros
instead would not do: a black image or an empty question is an input like any other, and its features are not
zero.

`ModalityDropout` switches flags off at random during training, per example, so that a model learns to answer from
what is left (the modality dropout of Neverova et al., 2016, "ModDrop"). It never leaves an example with nothing.
"""

import numbers

import keras
from keras import ops

PRESENT_SUFFIX = "_present"


def presence_key(name):
    """The name of input `name`'s presence flag: `"image"` -> `"image_present"`."""
    return f"{name}{PRESENT_SUFFIX}"


def check_presence(presence, layer_name, modalities):
    """`presence` as a list of one flag (or None: present) per modality; a one-line error otherwise."""
    if presence is None:
        return [None] * len(modalities)
    if not isinstance(presence, (list, tuple)) or len(presence) != len(modalities):
        received = (f"a {type(presence).__name__}" if not isinstance(presence, (list, tuple))
                    else f"{len(presence)} flags")
        raise ValueError(
            f"{layer_name} was built for modalities {list(modalities)!r} and expects `presence` to be None or a list "
            f"of {len(modalities)} boolean (batch,) flags, one per modality. Received: presence={received}"
        )
    return list(presence)


def presence_weights(presence, dtype):
    """Each flag as a `(batch, 1)` float of `dtype` (1.0 present, 0.0 absent), or None where every example has it."""
    return [None if p is None else ops.expand_dims(ops.cast(p, dtype), -1) for p in presence]


def resolve_rates(rates, modalities, argument="modality_dropout"):
    """`rates` (one float for every modality, or `{name: rate}`, missing names 0) -> a tuple in modality order;
    errors name `rates` as `argument`."""

    def check(value, name):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
            raise ValueError(f"Modality dropout rates must be floats in [0, 1). Received: {name}={value!r}")
        return float(value)

    if isinstance(rates, dict):
        unknown = sorted(set(rates) - set(modalities))
        if unknown:
            raise ValueError(
                f"`{argument}` names inputs the model does not have: {unknown}. Expected some of "
                f"{list(modalities)}. Received: {argument}={rates!r}"
            )
        return tuple(check(rates.get(m, 0.0), f"{argument}[{m!r}]") for m in modalities)
    return tuple(check(rates, argument) for _ in modalities)


@keras.saving.register_keras_serializable(package="mmzoo")
class ModalityDropout(keras.layers.Layer):
    """Drops whole modalities per example during training: `call([flag_1, ..., flag_N])` -> the flags with some
    switched off.

    In training each example loses modality `m` with probability `rates[m]`, independently; where that would leave
    an example with none of the modalities it had, it keeps one of them, chosen uniformly. So the rate at which
    a modality is actually dropped is a little under `rates[m]` (for two modalities at 0.3: 0.3 - 0.3 * 0.3 / 2 =
    0.255). Outside training the flags pass unchanged. Draws come from a `keras.random.SeedGenerator(seed)`.

    Args:
        rates: one float in [0, 1) per modality, or one for all.
        modalities: names of the flags, in the order `call` takes them.
        seed: seed of the draws (None: unseeded).
    """

    def __init__(self, rates, modalities, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(modalities, str) or not isinstance(modalities, (list, tuple)) or len(modalities) < 2:
            raise ValueError(f"ModalityDropout needs two or more modalities. Received: modalities={modalities!r}")
        self.modalities = tuple(modalities)
        given = dict(zip(self.modalities, rates)) if isinstance(rates, (list, tuple)) else rates
        if isinstance(rates, (list, tuple)) and len(rates) != len(self.modalities):
            raise ValueError(f"ModalityDropout takes one rate per modality {list(self.modalities)}. "
                             f"Received: rates={list(rates)!r}")
        self.rates = resolve_rates(given, self.modalities, argument="rates")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, presence, training=None):
        flags = [ops.cast(p, "bool") for p in check_presence(presence, "ModalityDropout", self.modalities)]
        if not training or not any(self.rates):
            return flags
        had = ops.stack(flags, axis=1)  # (batch, N)
        draws = keras.random.uniform(ops.shape(had), seed=self.seed_generator)
        kept = ops.logical_and(had, draws >= ops.convert_to_tensor(self.rates, dtype=draws.dtype))
        # Rows left with nothing keep one of the modalities they had: the one with the highest fresh draw.
        scores = keras.random.uniform(ops.shape(had), seed=self.seed_generator) + ops.cast(had, draws.dtype)
        rescue = ops.logical_and(ops.one_hot(ops.argmax(scores, axis=1), len(self.modalities), dtype="bool"), had)
        emptied = ops.expand_dims(ops.logical_not(ops.any(kept, axis=1)), -1)
        kept = ops.where(emptied, rescue, kept)
        return [kept[:, i] for i in range(len(self.modalities))]

    def compute_output_spec(self, presence, training=None):
        return [keras.KerasTensor(p.shape, dtype="bool") for p in presence]

    def get_config(self):
        config = super().get_config()
        config.update({"rates": list(self.rates), "modalities": list(self.modalities), "seed": self.seed})
        return config
