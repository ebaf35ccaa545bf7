"""Image captioning: captioners (an image tower's token grid + a GRU/LSTM or Transformer decoder), teacher-forcing
packing in tf.data, a replica-safe loss, in-graph greedy and beam generation, SavedModel export that returns text,
caption metrics (BLEU-4, CIDEr-D) and a training call.

    captioner = mmzoo.build_model("small_cnn_gru_captioner", vocabulary=words, max_length=40)
    captioner.compile()                                    # CaptionLoss, fused Adam
    captioner.fit(pack_dataset(captioner, batches))        # batches of {"image": uint8, "text": captions}
    captioner.generate(images, strategy="beam")            # {"caption", "token_ids", "log_probability"}
    mmzoo.export_model(captioner, "saved_models/captioner")
"""

import importlib

_PUBLIC = {
    "AttentionRNNDecoder": "mmzoo.captioning.rnn_decoder",
    "CaptionLoss": "mmzoo.captioning.loss",
    "CaptionPacker": "mmzoo.captioning.packing",
    "ImageCaptioner": "mmzoo.captioning.model",
    "PositionEmbedding": "mmzoo.captioning.positions",
    "TransformerCaptionDecoder": "mmzoo.captioning.transformer_decoder",
    "TransformerDecoderBlock": "mmzoo.captioning.transformer_decoder",
    "bleu": "mmzoo.captioning.metrics",
    "build_captioner": "mmzoo.captioning.model",
    "caption_dataset": "mmzoo.captioning.data",
    "cider_d": "mmzoo.captioning.metrics",
    "evaluate_captions": "mmzoo.captioning.metrics",
    "group_by_image": "mmzoo.captioning.data",
    "export_captioner": "mmzoo.captioning.export",
    "generate": "mmzoo.captioning.generation",
    "initialize_image_tower": "mmzoo.captioning.training",
    "load_captioner": "mmzoo.captioning.training",
    "pack_dataset": "mmzoo.captioning.packing",
    "train_captioner": "mmzoo.captioning.training",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmzoo.captioning' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
