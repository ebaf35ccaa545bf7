"""Where the time from process start to the first finished training step goes, for the mmzoo ResNet50 recipe.

    python bench/startup.py                                   # 64 px batch 32, the three ways below, 2 rounds
    python bench/startup.py --image-size 224 --batch-size 16 --ways compile_model

Each measurement is a fresh child process (imports and tracing are per process); ways alternate. Ways:
  keras_compile   model.compile(optimizer="adam", ...): Keras builds the optimizer inside the first tf.function
                  call, so the training step is traced twice.
  keras_prebuilt  as keras_compile, then model.optimizer.build(model.trainable_variables): traced once.
  compile_model   mmzoo.compile_model(model, "adam", ...): the fused Adam, built before the first step.
Prints, per child, the seconds since process start at the end of each phase: importing TensorFlow and Keras,
building the recipe, compiling, the first `train_on_batch` (tracing, graph optimisation and one step), and the
second (one step).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

WAYS = ("keras_compile", "keras_prebuilt", "compile_model")
PHASES = ("import", "build", "compile", "first_step", "second_step")


def child(args):
    marks = {}
    import mmzoo  # first: it sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported
    import keras
    import numpy as np
    import tensorflow as tf

    marks["import"] = time.time() - args.t0
    from common import build_mmzoo_model, synthetic_batch

    model = build_mmzoo_model(args.image_size)
    marks["build"] = time.time() - args.t0
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if args.way == "compile_model":
        mmzoo.compile_model(model, "adam", loss=loss)
    else:
        model.compile(optimizer="adam", loss=loss)
        if args.way == "keras_prebuilt":
            model.optimizer.build(model.trainable_variables)
    marks["compile"] = time.time() - args.t0
    x, y = synthetic_batch(args.batch_size, args.image_size, kind="strings", rng=np.random.default_rng(0))
    x, y = {"image": tf.constant(x["image"]), "text": tf.constant(list(x["text"]))}, tf.constant(y)
    model.train_on_batch(x, y)
    marks["first_step"] = time.time() - args.t0
    model.train_on_batch(x, y)
    marks["second_step"] = time.time() - args.t0
    marks["load"] = os.getloadavg()[0]
    print("RESULT " + json.dumps(marks), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma list of {', '.join(WAYS)}")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--way", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    ways = args.ways.split(",")
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"--ways: unknown {unknown}; expected a comma list of {', '.join(WAYS)}")
    results = {way: [] for way in ways}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for round_ in range(args.runs):
        for way in ways[round_ % len(ways):] + ways[: round_ % len(ways)]:
            command = [sys.executable, __file__, "--child", "--way", way, "--image-size", str(args.image_size),
                       "--batch-size", str(args.batch_size), "--t0", repr(time.time())]
            run = subprocess.run(command, capture_output=True, text=True, env=env)
            lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode or not lines:
                raise SystemExit(f"{way} failed:\n{run.stderr[-3000:]}")
            marks = json.loads(lines[-1][len("RESULT "):])
            results[way].append(marks)
            print(f"  {way}: " + ", ".join(f"{p} {marks[p]:.1f}" for p in PHASES) + f" s (load {marks['load']:.2f})",
                  flush=True)
    print(f"\n{args.image_size} px, batch {args.batch_size}, {args.runs} alternating rounds; seconds since process "
          "start at the end of each phase (median)")
    print("| way | " + " | ".join(PHASES) + " | first step alone |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    for way, runs in results.items():
        medians = {p: statistics.median(r[p] for r in runs) for p in PHASES}
        alone = statistics.median(r["first_step"] - r["compile"] for r in runs)
        print(f"| {way} | " + " | ".join(f"{medians[p]:.1f}" for p in PHASES) + f" | {alone:.1f} |")


if __name__ == "__main__":
    main()
