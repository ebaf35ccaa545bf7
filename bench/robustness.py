"""Missing and noisy inputs on mmzoo_shapes/vqa: fusions trained with and without modality dropout.

    python bench/robustness.py --seeds 0,1,2 --json runs/robustness.json
    python bench/robustness.py --seeds 0 --epochs 2 --train-split "train[:20%]"     # a quick look

Every model has the same towers (small CNN at 64 px + LSTM, the `small_cnn_lstm_concat` sizes) and differs only
in its fusion (late, concat, gated, attention) and in modality dropout (none, or `--dropout-rate` per input). Two
single-input models of the same towers are the bar a model with an input missing is compared against. Each is
trained the same way (Adam, `--epochs` on `--train-split`), then measured on the test split by
`mmzoo.robustness.evaluate_robustness`: accuracy with every input, with the image absent and with the text
absent (through the presence flags), and the noise curves; effective robustness is taken against the late-fusion
model without dropout of the same seed. Results are appended to `--json` as each model finishes, so an
interrupted run keeps what it measured; the summary (min / median / max over seeds) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmzoo  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
import mmzoo.data  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from mmzoo.robustness import effective_robustness, evaluate_robustness  # noqa: E402

FUSIONS = ("late", "concat", "gated", "attention")
SINGLE = {"image_only": {"image_tower": "small_cnn"}, "text_only": {"text_tower": "lstm"}}


def _models(rate):
    """{run name: build_model overrides of small_cnn_lstm_concat}, the single-input ones last."""
    runs = {}
    for fusion in FUSIONS:
        runs[f"{fusion}"] = dict(fusion=fusion, modality_dropout=0.0)
        runs[f"{fusion}+dropout"] = dict(fusion=fusion, modality_dropout=rate)
    for name, towers in SINGLE.items():
        runs[name] = dict(image_tower=towers.get("image_tower"), text_tower=towers.get("text_tower"), fusion=None,
                          modality_dropout=None)
    return runs


def _train(run, overrides, seed, args, train, info):
    import keras

    keras.utils.set_random_seed(seed)
    kwargs = dict(info.model_kwargs(), **overrides, modality_dropout_seed=seed)
    model = mmzoo.build_model("small_cnn_lstm_concat", **kwargs)
    mmzoo.compile_model(model, keras.optimizers.Adam(args.learning_rate),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    names = list(model.modalities)  # a single-input model is given its input only
    model.fit(train.map(lambda features, label: ({k: features[k] for k in names}, label)), epochs=args.epochs,
              verbose=0)
    return model, time.perf_counter() - start


def _measure(model, test, levels, noise=True):
    """The robustness report of a two-input model as a dict (without `noise`: accuracy with every input and with
    each absent only); the test accuracy of a single-input one."""
    from mmzoo.robustness import accuracy

    features, labels = test
    if len(model.modalities) < 2:
        return {"all_present": accuracy(model, {k: features[k] for k in model.modalities}, labels)}
    if not noise:
        off = np.zeros(len(labels), bool)
        return {"all_present": accuracy(model, features, labels),
                "absent": {k: accuracy(model, {**features, f"{k}_present": off}, labels) for k in model.modalities}}
    report = evaluate_robustness(model, test, levels=levels, seed=0)
    return {"all_present": report.all_present, "absent": report.absent, "mean_curves": report.mean_curves,
            "curves": report.curves, "relative": report.relative}


def _test_arrays(args, image_size):
    data = mmzoo.data.load("mmzoo_shapes/vqa", "test", batch_size=256, image_size=image_size, data_dir=args.data_dir)
    parts = [(f["image"].numpy(), f["text"].numpy().astype(object), y.numpy()) for f, y in data]
    images, texts, labels = (np.concatenate(p) for p in zip(*parts))
    return {"image": images, "text": texts}, labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-split", default="train[:40%]")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--dropout-rate", type=float, default=0.3)
    parser.add_argument("--levels", default="0,0.2,0.4,0.6,0.8,1.0")
    parser.add_argument("--runs", default=None, help="comma-separated run names (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--no-noise", action="store_true",
                        help="measure accuracy with every input and with each absent only (no noise curves)")
    parser.add_argument("--json", default="robustness.json")
    parser.add_argument("--summary", default=None, metavar="FILE,FILE",
                        help="only print the summary of these result files together")
    args = parser.parse_args(argv)
    if args.summary:
        merged = {"runs": [r for path in args.summary.split(",") for r in json.load(open(path))["runs"]]}
        print(summary(merged))
        return
    levels = tuple(float(level) for level in args.levels.split(","))
    results = json.load(open(args.json)) if os.path.exists(args.json) else {"runs": []}
    results.update(command="python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
                   machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                           f"TensorFlow {tf.__version__}")
    runs = _models(args.dropout_rate)
    chosen = args.runs.split(",") if args.runs else list(runs)
    for seed in (int(s) for s in args.seeds.split(",")):
        train, info = mmzoo.data.load("mmzoo_shapes/vqa", args.train_split, batch_size=args.batch_size,
                                      image_size=64, data_dir=args.data_dir, seed=seed, with_info=True)
        test = _test_arrays(args, 64)
        for run in chosen:
            if any(r["run"] == run and r["seed"] == seed for r in results["runs"]):
                continue
            model, seconds = _train(run, runs[run], seed, args, train, info)
            measured = _measure(model, test, levels, noise=not args.no_noise)
            results["runs"].append({"run": run, "seed": seed, "train_seconds": seconds, "levels": levels, **measured})
            print(f"seed {seed} {run}: all {measured['all_present']:.3f}"
                  + "".join(f", {k} absent {v:.3f}" for k, v in measured.get("absent", {}).items())
                  + f" ({seconds:.0f} s)", flush=True)
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    print(summary(results))


def summary(results):
    """Markdown tables: min / median / max over seeds of each run's accuracies, relative and effective robustness."""
    def stats(values):
        values = sorted(values)
        if len(values) == 1:
            return f"{values[0]:.3f} (1 seed)"
        return f"{values[0]:.3f} / {float(np.median(values)):.3f} / {values[-1]:.3f}"

    by_run = {}
    for r in results["runs"]:
        by_run.setdefault(r["run"], []).append(r)
    late = {r["seed"]: r for r in by_run.get("late", [])}
    by_run = {run: by_run[run] for run in sorted(by_run, key=lambda run: (run.endswith("_only"), run))}
    lines = ["| model | seeds | all inputs | image absent | text absent | relative image / text | "
             "effective vs late image / text |", "|---|---:|---:|---:|---:|---:|---:|"]
    for run, rows in by_run.items():
        cells = [stats([r["all_present"] for r in rows])]
        if "absent" in rows[0]:
            cells += [stats([r["absent"][k] for r in rows]) for k in ("image", "text")]
            curved = [r for r in rows if "relative" in r]
            cells.append(" / ".join(stats([r["relative"][k] for r in curved]) for k in ("image", "text"))
                         if curved else "")
            effective = {k: [effective_robustness(r["mean_curves"][k], late[r["seed"]]["mean_curves"][k])
                             for r in curved if "mean_curves" in late.get(r["seed"], {})] for k in ("image", "text")}
            cells.append(" / ".join(stats(v) for v in effective.values()) if effective["image"] else "")
        else:
            cells += ["", "", "", ""]
        lines.append(f"| {run} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + _curve_table(by_run))


def _curve_table(by_run):
    """Markdown: each run's mean noise curve per input (the median over the seeds that measured curves)."""
    curved = {run: [r for r in rows if "mean_curves" in r] for run, rows in by_run.items()}
    curved = {run: rows for run, rows in curved.items() if rows}
    if not curved:
        return []
    levels = next(iter(curved.values()))[0]["levels"]
    lines = ["| model | noisy input | seeds | " + " | ".join(f"{level:g}" for level in levels) + " |",
             "|---|---|---:|" + "---:|" * len(levels)]
    for run, rows in curved.items():
        for key in ("image", "text"):
            median = np.median([r["mean_curves"][key] for r in rows], axis=0)
            lines.append(f"| {run} | {key} | {len(rows)} | " + " | ".join(f"{a:.3f}" for a in median) + " |")
    return lines


if __name__ == "__main__":
    main()
