"""One registry of towers, keyed by the kind of input each takes, and one registry of those input kinds.

A tower is registered under its name with its kind (`@register_tower("small_cnn", kind="image")`). An input kind
knows how a raw input of that kind enters a model: its `keras.Input`, the preprocessing that must run in the
`tf.data` pipeline rather than in the replicated graph (text vectorization), the numeric input the backbone takes,
and how a tower of that kind encodes it. A model builder asks these two registries and nothing else, so a new
kind of input (audio) is one new file that registers its kind and its towers.
"""

import dataclasses
import types

_TOWERS = {}
_KINDS = {}


@dataclasses.dataclass(frozen=True)
class Tower:
    """A registered tower: its `name`, the `kind` of input it encodes and the function that builds or applies it."""

    name: str
    kind: str
    function: object

    @property
    def description(self):
        return ((self.function.__doc__ or "").strip().splitlines() or [""])[0]


@dataclasses.dataclass(frozen=True)
class Modality:
    """One named input of a model and how it is encoded.

    `name` is the model's input name (a key of the dict the model takes), `kind` the input kind ("image",
    "text"), `tower` the registered tower encoding it, `backbone_key` the name of the numeric input the backbone
    takes for it, `shape`/`dtype` one raw example as the model takes it (batch axis excluded), `options` the
    kind's settings for this input (an image's `image_size`, a text's `sequence_length`, ...).
    """

    name: str
    kind: str
    tower: str
    backbone_key: str
    shape: tuple
    dtype: str
    options: types.MappingProxyType

    @property
    def image_size(self):
        return self.options.get("image_size")

    @property
    def sequence_length(self):
        return self.options.get("sequence_length")


class InputKind:
    """How inputs of one kind enter a model. A subclass sets `name` and `defaults` (the options a modality of
    this kind takes, with their defaults) and implements the steps a raw input goes through:

    raw `keras.Input` --`prepare`, `pipeline_layer` (tf.data; nothing by default)--> `backbone_input`
    --`encode` (the tower)--> pooled `(batch, dim)` or token `(batch, steps, dim)` features.
    """

    name = None
    defaults = {}

    def modality(self, name, tower, options):
        """The `Modality` for input `name` encoded by `tower`, with `options` checked and defaults filled in."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"Unknown option(s) {unknown} for the {self.name} input {name!r}. "
                f"Accepted: {', '.join(sorted(self.defaults))}"
            )
        resolved = types.MappingProxyType({**self.defaults, **self.check_options(name, options)})
        return Modality(
            name=name, kind=self.name, tower=tower, backbone_key=self.backbone_key(name),
            shape=self.raw_shape(resolved), dtype=self.raw_dtype, options=resolved,
        )

    def check_options(self, name, options):
        return dict(options)

    def backbone_key(self, name):
        return name

    def layer_prefix(self, modality):
        """Prefix of this input's layer names: `<tower>_tower` for an input named after its kind, else
        `<input>_<tower>_tower`, so that two inputs with the same tower get distinct layers."""
        if modality.name == self.name:
            return f"{modality.tower}_tower"
        return f"{modality.name}_{modality.tower}_tower"

    def raw_shape(self, options):
        raise NotImplementedError

    def raw_input(self, modality):
        import keras

        return keras.Input(modality.shape, dtype=modality.dtype, name=modality.name)

    def prepare(self, modality, value):
        """What the input pipeline does to a raw value before the pipeline layer: nothing by default."""
        return value

    def pipeline_layer(self, modality):
        return None

    def backbone_input(self, modality):
        import keras

        return keras.Input(modality.shape, dtype=modality.dtype, name=modality.backbone_key)

    def encode(self, modality, x, *, output, dropout):
        raise NotImplementedError

    def placeholder(self, modality, batch_size):
        """`batch_size` stand-ins for an absent input of `modality`, as the model takes it raw (a tensor of
        `modality.shape` and `modality.dtype` after the batch axis; `batch_size` an int or a scalar tensor).

        What fills the place of an input whose presence flag is off, wherever one is filled in (a model called
        without an input, a request to an export, a robustness evaluation): the fusion leaves it out, so any
        value of the right kind does, but each kind must say which, or a new kind would be fed something of
        another kind's shape."""
        raise NotImplementedError(
            f"The {self.name!r} input kind defines no placeholder for an absent input, so a model cannot be called, "
            f"served or evaluated without its {modality.name!r} input; implement "
            f"{type(self).__name__}.placeholder(modality, batch_size)."
        )


def register_tower(name, kind):
    """Decorator registering a tower function under `name` for inputs of `kind` ("image", "text", ...)."""

    def register(function):
        if name in _TOWERS:
            raise ValueError(f"A tower named {name!r} is already registered (kind {_TOWERS[name].kind!r}).")
        _TOWERS[name] = Tower(name, kind, function)
        return function

    return register


def register_input_kind(kind):
    """Register an input kind (an `InputKind` instance, e.g. `ImageInput` in mmzoo/towers/image.py) under
    `kind.name`."""
    if kind.name in _KINDS:
        raise ValueError(f"An input kind named {kind.name!r} is already registered.")
    _KINDS[kind.name] = kind
    return kind


def list_towers(kind=None):
    """Names of the registered towers, sorted; only those taking `kind` inputs if given."""
    _load_builtin()
    return sorted(name for name, tower in _TOWERS.items() if kind is None or tower.kind == kind)


def get_tower(name, kind=None, argument="tower"):
    """The registered `Tower` called `name` (of `kind`, if given); a one-line ValueError naming `argument` if none."""
    _load_builtin()
    tower = _TOWERS.get(name) if isinstance(name, str) else None
    if tower is None or (kind is not None and tower.kind != kind):
        expected = ", ".join(list_towers(kind))
        what = f"{kind} tower" if kind else "tower"
        raise ValueError(f"Unknown {what} {name!r}. Expected one of: {expected}. Received: {argument}={name!r}")
    return tower


def get_input_kind(name):
    _load_builtin()
    if name not in _KINDS:
        raise ValueError(f"Unknown input kind {name!r}. Expected one of: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def _load_builtin():
    """Import the built-in tower modules, which register themselves."""
    import mmzoo.towers.audio  # noqa: F401
    import mmzoo.towers.image  # noqa: F401
    import mmzoo.towers.text  # noqa: F401
