"""Classification heads. The head carries the class names, so they survive `.keras` saves and reach exports."""

import keras


@keras.saving.register_keras_serializable(package="mmzoo")
class ClassifierHead(keras.layers.Layer):
    """Dropout -> (optional hidden Dense) -> Dense(num_classes) logits, always float32.

    `class_names` is not used in the computation; it is stored in the config so that whatever holds the
    model (export, a CLI's `predict`) can turn class indices into names without a side file.
    """

    def __init__(self, num_classes, class_names=None, hidden_units=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(class_names) != num_classes:
                raise ValueError(
                    f"`class_names` must have one name per class ({num_classes}). "
                    f"Received: {len(class_names)} names: {class_names[:10]}"
                )
            if len(set(class_names)) != len(class_names):
                raise ValueError(f"`class_names` must be unique. Received: class_names={class_names}")
        if hidden_units is not None and (not isinstance(hidden_units, int) or hidden_units < 1):
            raise ValueError(f"`hidden_units` must be None or a positive integer. Received: hidden_units={hidden_units!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.num_classes = num_classes
        self.class_names = class_names
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.dropout_layer = keras.layers.Dropout(dropout)
        self.hidden = None
        if hidden_units is not None:
            self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        # Logits stay float32 under mixed precision so softmax/cross-entropy are computed stably.
        self.logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = shape[:-1] + (self.hidden_units,)
        self.logits.build(shape)

    def call(self, inputs, training=None):
        x = self.dropout_layer(inputs, training=training)
        if self.hidden is not None:
            x = self.hidden(x)
        return self.logits(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            class_names=self.class_names,
            hidden_units=self.hidden_units,
            dropout=self.dropout,
        )
        return config


def find_class_names(model):
    """The class names stored in the model's ClassifierHead, or None."""
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, ClassifierHead):
            return layer.class_names
    return None
