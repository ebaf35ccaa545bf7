"""Seeded noise at a level in [0, 1] for a batch of one kind of input, after MultiBench's unimodal imperfections.

Every function takes a batch, a `level` (0: unchanged, 1: the strongest this noise goes) and a
`numpy.random.Generator`, and returns a new batch of the same shape and dtype. Level 1 is chosen to destroy
most of what a small image (32-224 px) or a short question says, so that a curve over 0 ... 1 runs from clean to
barely usable:

- images (uint8 pixels `[batch, height, width, 3]`): `gaussian_noise` (standard deviation `level * 128`),
  `blur` (a Gaussian of sigma `level * side / 16` pixels), `occlusion` (a black square over `level` of the
  area, at a random place), `grey_scale` (blended towards grey by `level`);
- texts (strings `[batch]`): `swap_characters` (each word, with probability `level`, gets two neighbouring
  characters swapped), `drop_words` (each word dropped with probability `level`), `replace_words` (each word
  replaced, with probability `level`, by a word drawn from `vocabulary`, or from the batch's own words).
"""

import numpy as np


def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 <= level <= 1.0:
        raise ValueError(f"A noise level must be a number in [0, 1]. Received: level={level!r}")
    return float(level)


def _check_pixels(images):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Image noise takes pixels [batch, height, width, 3]. Received: shape {images.shape}")
    return images


def gaussian_noise(images, level, rng):
    """Adds N(0, (level * 128)^2) to every pixel value, rounded and clipped to 0..255."""
    images, level = _check_pixels(images), _check_level(level)
    noisy = images.astype(np.float32) + rng.normal(0.0, 128.0 * level, size=images.shape)
    return np.clip(np.round(noisy), 0, 255).astype(images.dtype)


def _gaussian_kernel(sigma):
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _convolve(x, kernel, axis):
    """`x` convolved with `kernel` along `axis`, edges repeated (a sum of shifted copies: kernels are short)."""
    radius = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="edge")
    length = x.shape[axis]
    return sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(kernel))


def blur(images, level, rng):
    """A Gaussian blur of sigma `level * min(height, width) / 16` pixels (none at level 0)."""
    images, level = _check_pixels(images), _check_level(level)
    sigma = level * min(images.shape[1:3]) / 16.0
    if sigma < 0.1:
        return images.copy()
    kernel = _gaussian_kernel(sigma)
    blurred = _convolve(_convolve(images.astype(np.float32), kernel, axis=1), kernel, axis=2)
    return np.clip(np.round(blurred), 0, 255).astype(images.dtype)


def occlusion(images, level, rng):
    """A black square covering `level` of each image's area (as near as whole pixels allow), placed at random."""
    images, level = _check_pixels(images), _check_level(level)
    out = images.copy()
    height, width = images.shape[1:3]
    side_h, side_w = int(round(height * np.sqrt(level))), int(round(width * np.sqrt(level)))
    if side_h == 0 or side_w == 0:
        return out
    for i in range(len(out)):
        top, left = rng.integers(0, height - side_h + 1), rng.integers(0, width - side_w + 1)
        out[i, top:top + side_h, left:left + side_w] = 0
    return out


def grey_scale(images, level, rng):
    """Each pixel blended towards its luminance (ITU-R 601 weights): `(1 - level) * rgb + level * grey`."""
    images, level = _check_pixels(images), _check_level(level)
    pixels = images.astype(np.float32)
    grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    mixed = (1.0 - level) * pixels + level * grey[..., None]
    return np.clip(np.round(mixed), 0, 255).astype(images.dtype)


def _texts(texts):
    texts = np.asarray(texts)
    if texts.ndim != 1:
        raise ValueError(f"Text noise takes strings [batch]. Received: shape {texts.shape}")
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]


def _per_word(texts, level, rng, change):
    """Each text with `change(word, rng)` applied to each word with probability `level` (None drops it)."""
    level, out = _check_level(level), []
    for text in _texts(texts):
        words = []
        for word in text.split():
            new = change(word, rng) if rng.random() < level else word
            if new is not None:
                words.append(new)
        out.append(" ".join(words))
    return np.array(out, dtype=object)


def _swap(word, rng):
    if len(word) < 2:
        return word
    i = rng.integers(0, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def swap_characters(texts, level, rng):
    """Typos: each word, with probability `level`, gets two neighbouring characters swapped."""
    return _per_word(texts, level, rng, _swap)


def drop_words(texts, level, rng):
    """Each word dropped with probability `level`."""
    return _per_word(texts, level, rng, lambda word, rng: None)


def replace_words(texts, level, rng, vocabulary=None):
    """Each word replaced, with probability `level`, by one drawn uniformly from `vocabulary` (default: the
    distinct words of `texts`)."""
    words = sorted(set(vocabulary if vocabulary is not None else " ".join(_texts(texts)).split()))
    if not words:
        return np.array(_texts(texts), dtype=object)
    return _per_word(texts, level, rng, lambda word, rng: words[rng.integers(0, len(words))])


IMAGE_NOISE = {"gaussian_noise": gaussian_noise, "blur": blur, "occlusion": occlusion, "grey_scale": grey_scale}
TEXT_NOISE = {"swap_characters": swap_characters, "drop_words": drop_words, "replace_words": replace_words}
NOISE = {"image": IMAGE_NOISE, "text": TEXT_NOISE}
