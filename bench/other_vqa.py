"""A second image + question dataset, made differently from the bundled `mmzoo_shapes/vqa`, written as a user's CSV.

It checks that mmzoo's defaults for a user's own data are not tuned to the bundled data: other shapes (ring, cross,
diamond, bar), other colours (orange, cyan, magenta, white, olive), another image size (48 px), a gradient
background with speckles instead of uniform noise, objects that may touch the border, and other phrasings and
question types (colour of a shape, which shape has a colour, yes/no presence, counting up to four, left/right and
above/below as "which of the two ..." with a shape as the answer). Answers are drawn first and the scene after, so
the question alone is at chance within its type, as in the bundled data.

    python bench/other_vqa.py --out /tmp/other_vqa --train 8000 --validation 1000 --test 1000

writes train.csv, validation.csv, test.csv (columns image, text, label: what `mmzoo train --dataset` reads by default) and images/<split>_<i>.png.
"""

import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmzoo.data.shapes import encode_png  # noqa: E402  (PNG writing only; nothing else is shared)

SHAPES = ("ring", "cross", "diamond", "bar")
COLORS = {"orange": (240, 140, 20), "cyan": (30, 200, 210), "magenta": (210, 40, 160), "white": (245, 245, 245),
          "olive": (120, 130, 30)}
COUNT_WORDS = ("none", "one", "two", "three", "four")
SIZE = 48
PHRASES = {
    "color": ("which colour is the {shape}?", "tell me the colour of the {shape}", "the {shape} is what colour?"),
    "shape": ("name the shape that is {color}", "which shape is painted {color}?", "the {color} thing is a what?"),
    "present": ("are there any {color} {shape}s?", "can you see a {color} {shape}?", "any {color} {shape} here?"),
    "count": ("count the {shape}s", "how many {shape}s can you see?", "number of {color} things?"),
    "where": ("which is further {side}, the {shape} or the {shape2}?",
              "of the {shape} and the {shape2}, which one is more to the {side}?"),
}
SIDES = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}  # (axis: 0 = x, 1 = y; sign)


def _mask(shape, r, yy, xx):
    if shape == "ring":
        d = np.hypot(yy, xx)
        return (d <= r) & (d >= r * 0.55)
    if shape == "cross":
        return ((np.abs(xx) <= r * 0.3) & (np.abs(yy) <= r)) | ((np.abs(yy) <= r * 0.3) & (np.abs(xx) <= r))
    if shape == "diamond":
        return np.abs(xx) + np.abs(yy) <= r
    return (np.abs(xx) <= r) & (np.abs(yy) <= r * 0.4)  # bar


def _draw(rng, objects):
    ramp = np.linspace(0, 1, SIZE)[:, None, None]
    top, bottom = rng.integers(20, 90, 3), rng.integers(20, 90, 3)
    image = top * (1 - ramp) + bottom * ramp + np.zeros((SIZE, SIZE, 3))
    speckles = rng.random((SIZE, SIZE)) < 0.02
    image[speckles] = rng.integers(0, 256, (int(speckles.sum()), 3))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for shape, color, r, cx, cy in objects:
        rgb = np.clip(np.array(COLORS[color]) + rng.integers(-20, 21, 3), 0, 255)
        image[_mask(shape, r, yy - cy, xx - cx)] = rgb
    return image.astype(np.uint8)


def _place(rng, kinds):
    """(shape, colour, radius, cx, cy) for every kind, apart from each other; may touch the border."""
    while True:
        placed = []
        for shape, color in kinds:
            r = int(rng.integers(5, 9))
            cx, cy = (int(v) for v in rng.integers(r - 2, SIZE - r + 2, 2))
            if all(max(abs(cx - p[3]), abs(cy - p[4])) > r + p[2] + 1 for p in placed):
                placed.append((shape, color, r, cx, cy))
            else:
                break
        else:
            return placed


def _others(rng, n, exclude):
    pairs = [(s, c) for s in SHAPES for c in COLORS if not exclude(s, c)]
    return [pairs[i] for i in rng.integers(0, len(pairs), n)]


def _example(rng):
    kind = ("color", "shape", "present", "count", "where")[int(rng.integers(5))]
    shape, shape2 = rng.choice(SHAPES, 2, replace=False)
    color = str(rng.choice(list(COLORS)))
    phrase = str(rng.choice(PHRASES[kind]))
    if kind == "color":  # one object of `shape`; the answer is its colour
        kinds = [(shape, color)] + _others(rng, int(rng.integers(0, 3)), lambda s, c: s == shape)
        return kinds, phrase.format(shape=shape), color, None
    if kind == "shape":
        kinds = [(shape, color)] + _others(rng, int(rng.integers(0, 3)), lambda s, c: c == color)
        return kinds, phrase.format(color=color), str(shape), None
    if kind == "present":
        answer = "yes" if rng.random() < 0.5 else "no"
        kinds = ([(shape, color)] if answer == "yes" else []) + _others(
            rng, int(rng.integers(1, 4)), lambda s, c: s == shape and c == color)
        return kinds, phrase.format(shape=shape, color=color), answer, None
    if kind == "count":
        n = int(rng.integers(0, 5))
        by_color = "{color}" in phrase
        kinds = [(str(rng.choice(SHAPES)), color) if by_color else (shape, str(rng.choice(list(COLORS))))
                 for _ in range(n)]
        kinds += _others(rng, int(rng.integers(0, 5 - n)), (lambda s, c: c == color) if by_color else
                         (lambda s, c: s == shape))
        return kinds, phrase.format(shape=shape, color=color), COUNT_WORDS[n], None
    side = str(rng.choice(list(SIDES)))
    answer = str(rng.choice([shape, shape2]))
    kinds = [(shape, str(rng.choice(list(COLORS)))), (shape2, str(rng.choice(list(COLORS))))]
    kinds += _others(rng, int(rng.integers(0, 2)), lambda s, c: s in (shape, shape2))
    return kinds, phrase.format(shape=shape, shape2=shape2, side=side), answer, (side, answer, shape, shape2)


def _accept(placed, where):
    if where is None:
        return True
    side, answer, shape, shape2 = where
    axis, sign = SIDES[side]
    position = {p[0]: p[3 + axis] for p in placed[:2]}
    other = shape2 if answer == shape else shape
    return sign * (position[answer] - position[other]) >= 4  # clearly further that way


def generate(split, index, seed=7):
    rng = np.random.default_rng([seed, ("train", "validation", "test").index(split), index])
    while True:
        kinds, question, answer, where = _example(rng)
        placed = _place(rng, kinds)
        if _accept(placed, where):
            return _draw(rng, placed), question, answer


def write_split(folder, split, count):
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    path = os.path.join(folder, f"{split}.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "text", "label"])
        for i in range(count):
            image, question, answer = generate(split, i)
            name = f"images/{split}_{i}.png"
            with open(os.path.join(folder, name), "wb") as png:
                png.write(encode_png(image))
            writer.writerow([name, question, answer])
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    for split in ("train", "validation", "test"):
        print(write_split(args.out, split, getattr(args, split)))


if __name__ == "__main__":
    main()
