"""Samples/s of mmzoo's input pipelines alone (no model), next to the training rate of a recipe.

    python bench/input_pipeline.py                      # mmzoo_shapes/vqa, batch 32, 64 px, 5 runs
    python bench/input_pipeline.py --build              # also time a fresh build of the default vqa config
    python bench/input_pipeline.py --json out.json

Every figure is the median of `--runs` timed passes in this one process, after a warm-up pass. The training
rate is `model.fit` on one batch repeated (so it excludes input), for the recipe given with `--recipe`; the
pipeline must deliver at least 10x that so input is never the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmzoo  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
import mmzoo.data  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, TFDS {tfds.__version__}")


def _epoch(ds, limit=None) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    for i, batch in enumerate(ds):
        n += int(tf.shape(batch[1])[0])
        if limit is not None and i + 1 >= limit:
            break
    return n, time.perf_counter() - start


def _rate(ds, runs, limit=None, warmup=True) -> dict:
    first = _epoch(ds, limit) if warmup else None
    rates = []
    for _ in range(runs):
        n, seconds = _epoch(ds, limit)
        rates.append(n / seconds)
    result = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": len(rates)}
    if first is not None:
        result["warmup_pass"] = first[0] / first[1]
    return result


def _own_data_csv(folder: str, n: int, size: int) -> str:
    from mmzoo.data.shapes import ANSWERS, encode_png, generate_example

    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    lines = ["image,text,label"]
    for i in range(n):
        ex = generate_example("vqa", "train", i, image_size=size)
        with open(os.path.join(folder, "img", f"{i}.png"), "wb") as f:
            f.write(encode_png(ex["image"]))
        lines.append(f"img/{i}.png,{ex['text']},{ex['label']}")
    assert set(ANSWERS)  # labels are answer names
    path = os.path.join(folder, "data.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _training_rate(recipe, info, ds, runs, steps) -> dict:
    import keras

    model = mmzoo.build_model(recipe, **info.model_kwargs())
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    one_batch = ds.take(1).cache().repeat()
    model.fit(one_batch, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing, first allocations
    batch_size = int(next(iter(ds))[1].shape[0])
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        model.fit(one_batch, steps_per_epoch=steps, epochs=1, verbose=0)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: TFDS' own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--own-data-rows", type=int, default=2000)
    parser.add_argument("--recipe", default="small_cnn_lstm_concat", help="recipe whose training rate to compare")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--build", action="store_true", help="also time a fresh build of mmzoo_shapes/vqa")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)

    results = {"command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
               "machine": _machine(), "batch_size": args.batch_size, "image_size": args.image_size}
    rows = []

    if args.build:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            tfds.builder("mmzoo_shapes/vqa", data_dir=tmp).download_and_prepare(
                download_config=tfds.download.DownloadConfig(compute_stats=tfds.download.ComputeStatsMode.SKIP))
            results["build_vqa_seconds"] = time.perf_counter() - start
        print(f"fresh build of mmzoo_shapes/vqa (12 000 examples): {results['build_vqa_seconds']:.1f} s")

    kwargs = dict(batch_size=args.batch_size, data_dir=args.data_dir)
    ds, info = mmzoo.data.load("mmzoo_shapes/vqa", "train", image_size=args.image_size, with_info=True, **kwargs)
    cases = {
        "tfds: load('mmzoo_shapes/vqa', 'train') defaults (cached after the first epoch)": ds,
        "tfds: same, cache=False (decode PNG every epoch)": mmzoo.data.load(
            "mmzoo_shapes/vqa", "train", image_size=args.image_size, cache=False, **kwargs),
        "tfds: same, cache=False, resized to 2x (bilinear, antialiased)": mmzoo.data.load(
            "mmzoo_shapes/vqa", "train", image_size=2 * args.image_size, cache=False, **kwargs),
    }
    for name, dataset in cases.items():
        r = _rate(dataset, args.runs)
        results[name] = r
        rows.append((name, r))
        print(f"{name}: {r['median']:.0f} samples/s (min {r['min']:.0f}, max {r['max']:.0f}; warm-up pass "
              f"{r['warmup_pass']:.0f})", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = _own_data_csv(tmp, args.own_data_rows, args.image_size)
        start = time.perf_counter()
        own = mmzoo.data.from_csv(csv_path, batch_size=args.batch_size, shuffle=True, cache=False)
        check = time.perf_counter() - start
        results["own data: from_csv up-front check (rows/s)"] = args.own_data_rows / check
        print(f"own data: from_csv() checks {args.own_data_rows / check:.0f} rows/s up front", flush=True)
        name = f"own data: from_csv({args.own_data_rows} PNG files), shuffle, cache=False"
        r = _rate(own, args.runs)
        results[name] = r
        rows.append((name, r))
        print(f"{name}: {r['median']:.0f} samples/s (min {r['min']:.0f}, max {r['max']:.0f})", flush=True)

    if args.recipe:
        r = _training_rate(args.recipe, info, ds, args.runs, args.train_steps)
        name = f"training: {args.recipe} fit on one repeated batch"
        results[name] = r
        print(f"{name}: {r['median']:.0f} samples/s (min {r['min']:.0f}, max {r['max']:.0f})", flush=True)
        slowest = min(row[1]["median"] for row in rows)
        results["slowest pipeline / training"] = slowest / r["median"]
        print(f"slowest pipeline above is {slowest / r['median']:.1f}x the training rate")

    print("\n| pipeline | samples/s (median) | min | max |\n|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['median']:.0f} | {r['min']:.0f} | {r['max']:.0f} |")
    print(f"\nCommand: `{results['command']}`\nMachine: {results['machine']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
