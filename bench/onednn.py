"""Training samples/s of an mmzoo recipe with oneDNN off and on (TF_ENABLE_ONEDNN_OPTS=0 / 1).

TensorFlow reads the flag once at import, so each measurement runs in a fresh child process; settings alternate
(0, 1, 0, 1, ...) so that load from other processes hits both alike. Prints one table: median samples/s per
setting and the ratio.

    python bench/onednn.py --recipe resnet50_lstm_concat --image-size 64 --batch-size 32 --runs 3
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def child(args):
    import mmzoo  # noqa: F401  (after the parent set the flag in our environment)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    words = ["what", "color", "is", "the", "circle", "square", "left", "of", "how", "many"]
    model = mmzoo.build_model(args.recipe, num_classes=10, vocabulary=words, image_size=args.image_size, sequence_length=32)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    n = args.batch_size
    images = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8)
    texts = tf.constant([" ".join(rng.choice(words, 12)) for _ in range(n)])
    labels = rng.integers(0, 10, n)
    batch = tf.data.Dataset.from_tensors(({"image": images, "text": texts}, labels)).cache()
    model.fit(batch.repeat(args.warmup), verbose=0)  # traces the train function and warms the caches
    start = time.perf_counter()
    model.fit(batch.repeat(args.steps), verbose=0)
    elapsed = time.perf_counter() - start
    print(json.dumps({"samples_per_s": args.steps * n / elapsed}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="resnet50_lstm_concat")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {"0": [], "1": []}
    for _ in range(args.runs):
        for flag in ("0", "1"):
            env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=flag, TF_CPP_MIN_LOG_LEVEL="2")
            out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, capture_output=True, text=True, check=True)
            results[flag].append(json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"])
            print(f"TF_ENABLE_ONEDNN_OPTS={flag}: {results[flag][-1]:.1f} samples/s", file=sys.stderr)
    off, on = statistics.median(results["0"]), statistics.median(results["1"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; recipe {args.recipe}, "
          f"{args.image_size} px, batch {args.batch_size}, {args.steps} timed steps, {args.runs} runs each")
    print("| TF_ENABLE_ONEDNN_OPTS | median samples/s | runs |")
    print("|---|---|---|")
    print(f"| 0 | {off:.1f} | {', '.join(f'{r:.1f}' for r in results['0'])} |")
    print(f"| 1 | {on:.1f} | {', '.join(f'{r:.1f}' for r in results['1'])} |")
    print(f"ratio on/off: {on / off:.2f}x")


if __name__ == "__main__":
    main()
