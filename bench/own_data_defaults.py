"""What `mmzoo train --dataset train.csv --val-data validation.csv --test-data test.csv` gives a user with no other
flag than the recipe: accuracy, epochs run (early stopping) and wall time, per dataset, recipe and seed.

Two datasets, written as a user would have them (PNG files and a CSV; no object annotations):
  * bundled: the bundled `mmzoo_shapes/vqa` examples (the same generator, 64 px);
  * other:   bench/other_vqa.py, made differently (shapes, colours, phrasings, 48 px).

    python bench/own_data_defaults.py --data-dir /tmp/own_data --out /tmp/own_data/results.json \
        --datasets bundled other --recipes default small_cnn_lstm_concat coord_cnn_gru_film --seeds 0 1 2

Each run is a separate `mmzoo train` process (as a user runs it), timed with wall-clock time; the table is printed
and written as JSON (one object per run). `--train N` writes only the first N training rows.
"""

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import other_vqa  # noqa: E402

SPLITS = ("train", "validation", "test")


def write_bundled(folder, counts):
    """The bundled vqa examples as PNG files and CSVs (image, text, label)."""
    from mmzoo.data import shapes

    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    for split, count in zip(SPLITS, counts):
        with open(os.path.join(folder, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "text", "label"])
            for i in range(count):
                example = shapes.generate_example("vqa", split, i)
                name = f"images/{split}_{i}.png"
                with open(os.path.join(folder, name), "wb") as png:
                    png.write(shapes.encode_png(example["image"]))
                label = example["label"]
                writer.writerow([name, example["text"], label if isinstance(label, str) else shapes.ANSWERS[label]])


def write_other(folder, counts):
    for split, count in zip(SPLITS, counts):
        other_vqa.write_split(folder, split, count)


def ensure_data(data_dir, name, counts):
    folder = os.path.join(data_dir, name)
    if not os.path.exists(os.path.join(folder, "test.csv")):
        (write_bundled if name == "bundled" else write_other)(folder, counts)
    return folder


def run(folder, recipe, seed, output_dir):
    """One `mmzoo train` on the folder's CSVs: {"test_accuracy", "epochs_run", "epochs", "seconds"}."""
    command = [sys.executable, "-m", "mmzoo.cli", "train", "--dataset", os.path.join(folder, "train.csv"),
               "--val-data", os.path.join(folder, "validation.csv"), "--test-data", os.path.join(folder, "test.csv"),
               "--seed", str(seed), "--output-dir", output_dir, "--no-export", "--verbose", "2"]
    if recipe != "default":
        command += ["--recipe", recipe]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    out = finished.stdout + finished.stderr
    if finished.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-3000:]}")
    accuracy = float(re.search(r"Test accuracy: ([0-9.]+)", out).group(1))
    planned = int(re.search(r" for (\d+) epochs", out).group(1))
    with open(os.path.join(output_dir, "training_log.csv")) as f:
        epochs_run = len(list(csv.DictReader(f)))
    return {"test_accuracy": accuracy, "epochs_run": epochs_run, "epochs": planned, "seconds": round(seconds, 1)}


def summarise(results):
    rows = {}
    for r in results:
        rows.setdefault((r["dataset"], r["recipe"]), []).append(r)
    print(f"{'dataset':8} {'recipe':28} {'test accuracy min / median / max':34} {'epochs run':12} {'minutes':10}")
    for (dataset, recipe), runs in rows.items():
        acc = sorted(r["test_accuracy"] for r in runs)
        epochs = ", ".join(f"{r['epochs_run']}/{r['epochs']}" for r in runs)
        minutes = ", ".join(f"{r['seconds'] / 60:.1f}" for r in runs)
        print(f"{dataset:8} {recipe:28} {acc[0]:.3f} / {statistics.median(acc):.3f} / {acc[-1]:.3f}"
              f"{'':10} {epochs:12} {minutes}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="JSON results file (appended to: runs already in it are kept)")
    parser.add_argument("--datasets", nargs="+", default=["bundled", "other"], choices=["bundled", "other"])
    parser.add_argument("--recipes", nargs="+", default=["default", "small_cnn_lstm_concat",
                                                         "coord_cnn_gru_film"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else []
    done = {(r["dataset"], r["recipe"], r["seed"]) for r in results}
    for dataset in args.datasets:
        counts = (10_000 if dataset == "bundled" else 8_000, 1_000, 1_000)
        folder = ensure_data(args.data_dir, dataset, counts)
        for recipe in args.recipes:
            for seed in args.seeds:
                if (dataset, recipe, seed) in done:
                    continue
                output_dir = os.path.join(args.data_dir, "runs", f"{dataset}_{recipe}_{seed}")
                result = {"dataset": dataset, "recipe": recipe, "seed": seed,
                          **run(folder, recipe, seed, output_dir)}
                print(json.dumps(result), flush=True)
                results.append(result)
                with open(args.out, "w") as f:
                    json.dump(results, f, indent=1)
    summarise(results)


if __name__ == "__main__":
    main()
