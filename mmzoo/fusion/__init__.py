"""Fusion layers: combine the features of N named modalities into `(batch, units)`.

A layer is built for `modalities` (default `("image", "text")`) and called on one input per modality, in that
order: `layer([front, side, question], mask=[None, side_mask, question_mask])`, each input pooled `(batch, dim)`
or tokens `(batch, steps, dim)` (mmzoo/fusion/base.py). Two class attributes let a model builder check a choice
before building anything: `requires_tokens` (every input must be tokens) and `max_inputs` (None: any N >= 2;
`film` and `glimpse` are only defined for 2, an image token grid and text tokens).

Each family lives in its own file; a new fusion is one file plus one line in `FUSIONS`. Families with
`supports_presence` also take `presence=[flag_1, ..., flag_N]` (mmzoo/fusion/presence.py): a modality absent
from an example contributes nothing to its output.
"""

from mmzoo.fusion.attention import CoAttentionFusion, CrossAttentionFusion
from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, masked_mean
from mmzoo.fusion.concat import ConcatFusion
from mmzoo.fusion.elementwise import ProductFusion, SumFusion
from mmzoo.fusion.film import FiLMFusion
from mmzoo.fusion.gated import GatedFusion
from mmzoo.fusion.glimpse import GlimpseFusion
from mmzoo.fusion.late import LateFusion
from mmzoo.fusion.presence import ModalityDropout, presence_key
from mmzoo.fusion.tensor import LowRankFusion, TensorFusion

FUSIONS = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "product": ProductFusion,
    "gated": GatedFusion,
    "attention": CrossAttentionFusion,
    "coattention": CoAttentionFusion,
    "tensor": TensorFusion,
    "lowrank": LowRankFusion,
    "film": FiLMFusion,
    "glimpse": GlimpseFusion,
    "late": LateFusion,
}


def get_fusion(name, **kwargs):
    """Returns a new fusion layer `FUSIONS[name](**kwargs)`, e.g.
    `get_fusion("gated", units=64, modalities=["front", "side", "question"])`."""
    if not isinstance(name, str) or name not in FUSIONS:
        raise ValueError(
            f"Unknown fusion {name!r}. Expected one of: {', '.join(FUSIONS)}. Received: fusion={name!r}"
        )
    return FUSIONS[name](**kwargs)


__all__ = [
    "FUSIONS",
    "get_fusion",
    "DEFAULT_MODALITIES",
    "FusionLayer",
    "masked_mean",
    "ConcatFusion",
    "SumFusion",
    "ProductFusion",
    "GatedFusion",
    "CrossAttentionFusion",
    "CoAttentionFusion",
    "TensorFusion",
    "LowRankFusion",
    "FiLMFusion",
    "GlimpseFusion",
    "LateFusion",
    "ModalityDropout",
    "presence_key",
]
