"""Shared pieces of the training benchmarks: the one architecture in three forms, synthetic data, FLOP counts.

The architecture (issue 6): ResNet50 (no top, global average pooling, 2048) and Embedding(10000 + 2, 128,
padding 0) -> LSTM(256) over 32 tokens, concatenated -> Dense(256, relu) -> Dropout(0.1) -> Dense(10) logits.
As the mmzoo recipe builds it, the LSTM also has input dropout 0.1 (`dropout=` of the recipe); the hand-written
Keras model does the same, the PyTorch model applies Dropout(0.1) to the embeddings (nn.LSTM has no input
dropout). Texts have 8..32 real tokens, right-padded: Keras masks the padding, PyTorch packs the sequences.
"""

import numpy as np

VOCABULARY = [f"w{i}" for i in range(10000)]  # + '' (0, padding) and '[UNK]' (1) in TextVectorization
VOCABULARY_SIZE = len(VOCABULARY) + 2
EMBEDDING_DIM = 128
LSTM_UNITS = 256
FUSION_UNITS = 256
NUM_CLASSES = 10
SEQUENCE_LENGTH = 32
DROPOUT = 0.1


def synthetic_batch(batch_size, image_size, *, kind, rng):
    """One batch: float32 pixels 0..255 (NHWC), texts of 8..32 tokens, integer labels.

    `kind="strings"`: `{"image", "text"}` with text as space-joined words (mmzoo's raw input);
    `kind="ids"`: `{"image", "token_ids"}` with int64 ids right-padded with 0, plus "lengths".
    """
    images = rng.integers(0, 256, (batch_size, image_size, image_size, 3)).astype("float32")
    lengths = rng.integers(8, SEQUENCE_LENGTH + 1, batch_size)
    ids = np.zeros((batch_size, SEQUENCE_LENGTH), dtype="int64")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(2, VOCABULARY_SIZE, length)
    labels = rng.integers(0, NUM_CLASSES, batch_size).astype("int64")
    if kind == "strings":
        texts = np.array([" ".join(VOCABULARY[i - 2] for i in row[row > 0]) for row in ids], dtype=object)
        return {"image": images, "text": texts}, labels
    return {"image": images, "token_ids": ids, "lengths": lengths}, labels


def build_mmzoo_model(image_size, **overrides):
    """The mmzoo recipe with issue 6's sizes (everything else the recipe's defaults)."""
    import mmzoo

    return mmzoo.build_model(
        "resnet50_lstm_concat",
        num_classes=NUM_CLASSES,
        vocabulary=VOCABULARY,
        image_size=image_size,
        sequence_length=SEQUENCE_LENGTH,
        embedding_dim=EMBEDDING_DIM,
        text_units=LSTM_UNITS,
        fusion_units=FUSION_UNITS,
        **overrides,
    )


def build_keras_model(image_size, *, image=True, text=True, fused_bn=False, lstm_kwargs=None):
    """The same architecture written directly in plain Keras (keras.applications.ResNet50 + layers)."""
    import keras

    inputs, features = {}, []
    if image:
        channels_first = keras.config.image_data_format() == "channels_first"
        shape = (3, image_size, image_size) if channels_first else (image_size, image_size, 3)
        inputs["image"] = keras.Input(shape, name="image")
        x = keras.layers.Rescaling(1.0, offset=-127.5)(inputs["image"])  # stands in for preprocess_input
        resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
        if fused_bn:
            from mmzoo.towers.normalization import fuse_batch_normalization

            resnet = fuse_batch_normalization(resnet)
        features.append(keras.layers.GlobalAveragePooling2D()(resnet(x)))
    if text:
        inputs["token_ids"] = keras.Input((SEQUENCE_LENGTH,), dtype="int64", name="token_ids")
        x = keras.layers.Embedding(VOCABULARY_SIZE, EMBEDDING_DIM, mask_zero=True)(inputs["token_ids"])
        features.append(keras.layers.LSTM(LSTM_UNITS, **{"dropout": DROPOUT, **(lstm_kwargs or {})})(x))
    x = keras.layers.Concatenate()(features) if len(features) > 1 else features[0]
    x = keras.layers.Dense(FUSION_UNITS, activation="relu")(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(x))


def build_torch_model():
    """The same architecture in PyTorch: torchvision resnet50 + nn.LSTM on packed sequences."""
    import torch
    import torchvision
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.resnet = torchvision.models.resnet50(weights=None)
            self.resnet.fc = nn.Identity()
            self.embedding = nn.Embedding(VOCABULARY_SIZE, EMBEDDING_DIM, padding_idx=0)
            self.text_dropout = nn.Dropout(DROPOUT)
            self.lstm = nn.LSTM(EMBEDDING_DIM, LSTM_UNITS, batch_first=True)
            self.fusion = nn.Linear(2048 + LSTM_UNITS, FUSION_UNITS)
            self.dropout = nn.Dropout(DROPOUT)
            self.logits = nn.Linear(FUSION_UNITS, NUM_CLASSES)

        def forward(self, image, token_ids, lengths):
            image_features = self.resnet(image)
            packed = nn.utils.rnn.pack_padded_sequence(
                self.text_dropout(self.embedding(token_ids)), lengths, batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(packed)
            fused = torch.relu(self.fusion(torch.cat([image_features, h[-1]], dim=1)))
            return self.logits(self.dropout(fused))

    return Net()


def training_flops_per_sample(image_size):
    """Matmul FLOPs (2 per multiply-add) of one training sample: convolutions, dense layers and the LSTM,
    forward x 3 (forward, gradient of the inputs, gradient of the weights). Element-wise work (BN, ReLU,
    pooling, Adam) is not counted. Counted on the hand-written Keras model, so it is the same for all three."""
    import keras

    model = build_keras_model(image_size)
    forward = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            kernel_h, kernel_w, in_c, _ = layer.kernel.shape
            forward += 2 * out_h * out_w * out_c * kernel_h * kernel_w * in_c
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.LSTM):
            forward += 2 * SEQUENCE_LENGTH * (int(np.prod(layer.cell.kernel.shape)) + int(np.prod(layer.cell.recurrent_kernel.shape)))
    return 3 * forward


def _leaf_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer
