"""Image + spoken question against the written question and each single modality, on `mmzoo_shapes/vqa_spoken`.

    python bench/audio_results.py                          # every row, seeds 0 1 2 (each run in its own process)
    python bench/audio_results.py --rows speech text --seeds 0 --epochs 15
    python bench/audio_results.py --table                  # the table of the runs recorded so far

Rows, all built from one recipe (default `coord_cnn_mel_crnn_coattention`: its widths, fusion, head and audio
tower), trained by `mmzoo.train` as `mmzoo train` does (batch 64, Adam 3e-3 with cosine decay, object
pretraining "auto"):

- `image+speech`: the recipe as it is (image + the question spoken);
- `image+text`: the recipe's towers with the text tower `gru` in place of the audio one (the written question);
- `image`, `speech`, `text`: one of those towers alone (no fusion: a projection in its place).

The image tower is object-pretrained (4 epochs, then frozen) wherever its token grid reaches the fusion, i.e. in
the two fused rows; both rows of a seed share one pretraining (the first run's cached tower weights, which the
other run's own pretraining would recompute from the same seed and images), so they differ only in how the
question arrives. The single-image row pools its tower, so it trains it end to end from the answers.

Each run appends one JSON line (row, seed, test accuracy and loss, per-epoch validation accuracy, wall time,
command, load average) to `--out`; runs already recorded are skipped, so the script can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

RECIPE = "coord_cnn_mel_crnn_coattention"
DATA = "mmzoo_shapes/vqa_spoken"
ROWS = ("image+speech", "image+text", "image", "speech", "text")
TEXT_TOWER = "gru"
OBJECT_WEIGHTS = "image_tower_objects.weights.h5"  # mmzoo.run_files.OBJECT_WEIGHTS
DEFAULT_EPOCHS = 15
HERE = os.path.dirname(os.path.abspath(__file__))


def row_towers(recipe_towers, row):
    """The `towers` of `row`: the recipe's image and audio entries (audio options included), a text tower."""
    parts = {"image": {"image": recipe_towers["image"]}, "speech": {"audio": recipe_towers["audio"]},
             "text": {"text": TEXT_TOWER}}
    towers = {}
    for part in row.split("+"):
        towers.update(parts[part])
    return towers


def command(row, seed, epochs, recipe):
    """The command that reproduces one run (the CLI's where its flags can say it)."""
    flags = f"--dataset {DATA} --epochs {epochs} --seed {seed} --no-export"
    if row == "image+speech":
        return f"mmzoo train --recipe {recipe} {flags}"
    if row in ("image+text", "text", "image"):
        towers = {"image+text": f"image=coord_cnn,text={TEXT_TOWER}", "text": f"text={TEXT_TOWER}",
                  "image": "image=coord_cnn"}[row]
        return f"mmzoo train --recipe {recipe} --towers {towers} {flags}"
    # --towers takes tower names only; the recipe's audio entry sets per-input options too.
    return f"python bench/audio_results.py --rows {row} --seeds {seed} --epochs {epochs}"


def per_question_type(model, data_dir=None):
    """{question type: test accuracy} of `model` on the spoken VQA's test split (read with its question types,
    the features converted as mmzoo.data converts them)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from mmzoo.data import shapes
    from mmzoo.data.pipeline import waveform

    builder = tfds.builder(DATA, data_dir=data_dir)
    num_samples = int(builder.info.metadata["speech_num_samples"])

    def features(example):
        inputs = {"image": tf.cast(example["image"], tf.float32), "text": example["text"],
                  "audio": waveform(example["speech"], num_samples)}
        return {key: inputs[key] for key in model.modalities}, example["label"], example["question_type"]

    correct, types = [], []
    for x, label, qtype in builder.as_dataset(split="test", shuffle_files=False).map(features).batch(100):
        correct.extend(np.argmax(model(x, training=False), axis=-1) == label.numpy())
        types.extend(qtype.numpy())
    correct, types = np.array(correct), np.array(types)
    return {name: round(float(correct[types == i].mean()), 4) for i, name in enumerate(shapes.QUESTION_TYPES)}


def run_one(args):
    """Train one (row, seed) in this process and append its JSON line to args.out."""
    import mmzoo
    from mmzoo.recipes import get_recipe

    towers = row_towers(get_recipe(args.recipe)["towers"], args.run)
    output_dir = os.path.join(args.runs, args.run.replace("+", "_"), f"s{args.seed}")
    shared = os.path.join(args.runs, f"objects_s{args.seed}.weights.h5")
    fused_image = "image" in towers and len(towers) > 1
    if fused_image and os.path.isfile(shared):
        os.makedirs(output_dir, exist_ok=True)
        shutil.copyfile(shared, os.path.join(output_dir, OBJECT_WEIGHTS))
    options = {"towers": towers}
    started = time.perf_counter()
    result = mmzoo.train(args.recipe, DATA, epochs=args.epochs, batch_size=64, learning_rate=3e-3,
                         schedule="cosine", seed=args.seed, object_epochs="auto", model_options=options,
                         output_dir=output_dir, export_dir=None, verbose=2)
    wall = time.perf_counter() - started
    if fused_image and not os.path.isfile(shared) and os.path.isfile(os.path.join(output_dir, OBJECT_WEIGHTS)):
        shutil.copyfile(os.path.join(output_dir, OBJECT_WEIGHTS), shared)
    record = dict(row=args.run, seed=args.seed, epochs=args.epochs, recipe=args.recipe,
                  towers=towers,
                  test_accuracy=result.test_metrics["accuracy"], test_loss=result.test_metrics["loss"],
                  val_accuracy=[row.get("val_accuracy") for row in result.history],
                  per_question_type=per_question_type(result.model),
                  params=result.model.count_params(), wall_s=round(wall, 1),
                  command=command(args.run, args.seed, args.epochs, args.recipe),
                  load_average=os.getloadavg(), machine=f"{os.cpu_count()} CPUs, {platform.machine()}")
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"{args.run} seed {args.seed}: test accuracy {record['test_accuracy']:.4f} in {wall:.0f} s")


def read_records(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def type_table(records):
    """Markdown: per row, the median over seeds of the test accuracy of each question type."""
    types = list(records[0]["per_question_type"]) if records else []
    lines = ["| input(s) | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for row in ROWS:
        runs = [r for r in records if r["row"] == row]
        if runs:
            medians = [statistics.median(r["per_question_type"][t] for r in runs) for t in types]
            lines.append(f"| {row} | " + " | ".join(f"{m:.3f}" for m in medians) + " |")
    return "\n".join(lines)


def table(records):
    """Markdown: one line per row with each seed's test accuracy, min / median / max and wall times."""
    lines = ["| input(s) | seeds | test accuracy per seed | min / median / max | wall time per run | command |",
             "|---|---|---|---|---|---|"]
    for row in ROWS:
        runs = sorted((r for r in records if r["row"] == row), key=lambda r: r["seed"])
        if not runs:
            continue
        accuracies = [r["test_accuracy"] for r in runs]
        spread = f"{min(accuracies):.3f} / {statistics.median(accuracies):.3f} / {max(accuracies):.3f}"
        per_seed = ", ".join(f"{r['seed']}: {r['test_accuracy']:.3f}" for r in runs)
        walls = ", ".join(f"{r['wall_s'] / 60:.1f}" for r in runs)
        command_text = runs[0]["command"].replace(f"--seed {runs[0]['seed']}", "--seed S").replace(
            f"--seeds {runs[0]['seed']}", "--seeds S")
        lines.append(f"| {row} | {', '.join(str(r['seed']) for r in runs)} | {per_seed} | {spread} | {walls} min | "
                     f"`{command_text}` |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--out", default="runs/audio_results/results.jsonl")
    parser.add_argument("--runs", default="runs/audio_results", help="output folders of the runs")
    parser.add_argument("--table", action="store_true", help="print the table of the recorded runs and stop")
    parser.add_argument("--run", choices=ROWS, help=argparse.SUPPRESS)  # one run, in a child process
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run_one(args)
    if not args.table:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        # Seed-major: every row of seed 0 first, then the next seed.
        for seed in args.seeds:
            for row in args.rows:
                done = {(r["row"], r["seed"], r["epochs"], r["recipe"]) for r in read_records(args.out)}
                if (row, seed, args.epochs, args.recipe) in done:
                    continue
                subprocess.run([sys.executable, os.path.join(HERE, "audio_results.py"), "--run", row, "--seed",
                                str(seed), "--epochs", str(args.epochs), "--recipe", args.recipe, "--out", args.out,
                                "--runs", args.runs], check=True)
    records = [r for r in read_records(args.out) if r["epochs"] == args.epochs and r["recipe"] == args.recipe]
    print(f"\n## {args.recipe} rows on {DATA} test (1 000 questions), {args.epochs} epochs\n")
    print(table(records))
    print("\nMedian test accuracy over the seeds, per question type:\n")
    print(type_table(records))


if __name__ == "__main__":
    main()
