"""Captioning on the bundled `mmzoo_shapes/captions` data (64 px): quality and speed of the GRU and Transformer
captioners, greedy vs beam decoding, in-process `generate` vs the SavedModel.

    python bench/captioning.py --seeds 0 1 2 --train-examples 3000 --epochs 8 --out bench_captioning.json
    python bench/captioning.py --report bench_captioning.json        # the markdown tables of docs/captioning.md

Quality on the first `--eval-images` test images: exact match, BLEU-4, CIDEr-D (mmzoo.captioning.metrics) and the
per-attribute accuracy of the objects named: each reference object ("a small red circle at the top left") is
matched to the generated object agreeing with it most (one-to-one); an attribute counts as right when the matched
object has the same value, and an object the caption leaves out is wrong in every attribute. Speed (first seed
only): captions/s of greedy `generate` at batch 1 and 32 after warm-up (median of 5 runs), and the export's
`serving_default` at the same batches.
"""

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time

_COLORS = "red|green|blue|yellow|purple"
_SHAPES = "circle|square|triangle"
_PLACES = "in the center|at the top left|at the top right|at the bottom left|at the bottom right|at the top|" \
          "at the bottom|at the left|at the right"
_OBJECT = re.compile(rf"\b(large|small) ({_COLORS}) ({_SHAPES}) ({_PLACES})\b")
ATTRIBUTES = ("size", "color", "shape", "position")


def objects(caption):
    """[(size, colour, shape, position)] of the objects a bundled caption names."""
    return _OBJECT.findall(re.sub(r"[^\w\s]", " ", caption.lower()))


def attribute_hits(generated, reference):
    """Per attribute, how many of the reference's objects the generated caption gets right (best one-to-one match;
    a reference object matched to nothing, None, gets nothing right)."""
    want, got = objects(reference), objects(generated)[:6]
    candidates = got + [None] * len(want)
    best = (-1, [0] * len(ATTRIBUTES))
    for chosen in itertools.permutations(range(len(candidates)), len(want)):
        hits = [sum(candidates[c] is not None and w[a] == candidates[c][a] for w, c in zip(want, chosen))
                for a in range(len(ATTRIBUTES))]
        best = max(best, (sum(hits), hits))
    return best[1], len(want)


def attribute_accuracy(captions, references):
    totals, count, right_count = [0] * len(ATTRIBUTES), 0, 0
    for caption, refs in zip(captions, references):
        hits, n = attribute_hits(caption, refs[0])
        totals = [t + h for t, h in zip(totals, hits)]
        count += n
        right_count += len(objects(caption)) == n
    result = {name: total / count for name, total in zip(ATTRIBUTES, totals)}
    result["object_count"] = right_count / len(captions)
    return result


def quality(model, images, references, strategy, num_beams):
    from mmzoo.captioning.metrics import evaluate_captions

    captions = []
    start = time.perf_counter()
    for i in range(0, len(images), 50):
        captions += list(model.generate(images[i:i + 50], strategy=strategy, num_beams=num_beams)["caption"])
    seconds = time.perf_counter() - start
    return {**evaluate_captions(captions, references), **attribute_accuracy(captions, references),
            "seconds": seconds, "examples": captions[:3]}


def _rates(calls, batch, rounds=5):
    """{name: captions/s} of each call: median over `rounds` alternating rounds after a warm-up call each (noise on
    a shared machine then hits every call alike)."""
    times = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up: tracing
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(values) for name, values in times.items()}


def speed(model, images):
    import mmzoo

    result = {}
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        version = mmzoo.export_model(model, os.path.join(directory, "captioner"))
        result["export_seconds"] = time.perf_counter() - start
        served = mmzoo.load_exported(version)
        for batch in (1, 32):
            chunk = images[:batch]
            rates = _rates({"generate": lambda: model.generate(chunk),
                            "beam": lambda: model.generate(chunk, strategy="beam"),
                            "export": lambda: served({"image": chunk})}, batch)
            result.update({f"{name}_per_s_batch{batch}": rate for name, rate in rates.items()})
    return result


def speed_only(directory, args):
    """Speed of every .keras captioner in `directory` (saved by --save-models), on the first test images."""
    from mmzoo.captioning.data import caption_dataset, group_by_image
    from mmzoo.captioning.training import load_captioner

    images, _ = group_by_image(caption_dataset("mmzoo_shapes/captions", "test", batch_size=64, shuffle=False),
                               limit=32)
    runs = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".keras"):
            model = load_captioner(os.path.join(directory, name))
            runs.append({"model": name, "speed": speed(model, images)})
            print(json.dumps(runs[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump({"command": " ".join(sys.argv), "speed_runs": runs}, f, indent=1)


def run(recipe, seed, args):
    from mmzoo.captioning.data import caption_dataset, group_by_image
    from mmzoo.captioning.training import train_captioner

    start = time.perf_counter()
    trained = train_captioner(recipe, "mmzoo_shapes/captions", train_split=f"train[:{args.train_examples}]",
                              validation_split=None, test_split=None, epochs=args.epochs, batch_size=args.batch_size,
                              learning_rate=args.learning_rate, seed=seed, verbose=0)
    train_seconds = time.perf_counter() - start
    test = caption_dataset("mmzoo_shapes/captions", "test", batch_size=64, shuffle=False)
    images, references = group_by_image(test, limit=args.eval_images)
    result = {"recipe": recipe, "seed": seed, "train_seconds": train_seconds,
              "final_loss": trained.history["loss"][-1], "params": trained.model.count_params(),
              "greedy": quality(trained.model, images, references, "greedy", 1),
              "beam": quality(trained.model, images, references, "beam", args.num_beams)}
    if seed == args.seeds[0] and not args.no_speed:
        result["speed"] = speed(trained.model, images)
    if args.save_models:
        os.makedirs(args.save_models, exist_ok=True)
        trained.model.save(os.path.join(args.save_models, f"{recipe}_seed{seed}.keras"))
    return result


def report(paths):
    files = [json.load(open(path)) for path in paths]
    runs = [r for f in files for r in f.get("runs", [])]
    speed_runs = [r for f in files for r in f.get("speed_runs", [])]
    rows = ["| recipe | decoding | seeds | exact match | BLEU-4 | CIDEr-D | colour | shape | size | position | "
            "object count |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == recipe]
        for decoding in ("greedy", "beam"):
            cells = []
            for key in ("exact_match", "bleu4", "cider_d", "color", "shape", "size", "position", "object_count"):
                values = sorted(r[decoding][key] for r in mine)
                cells.append(" / ".join(f"{v:.3f}" for v in (values[0], statistics.median(values), values[-1]))
                             if len(values) > 1 else f"{values[0]:.3f}")
            rows.append(f"| {recipe} | {decoding} | {len(mine)} | " + " | ".join(cells) + " |")
    rows += ["", "| model | greedy/s b1 | greedy/s b32 | beam/s b1 | beam/s b32 | export/s b1 | export/s b32 | "
                 "export s |", "|---|---|---|---|---|---|---|---|"]
    for name, s in [(r["recipe"], r["speed"]) for r in runs if "speed" in r] + [(r["model"], r["speed"])
                                                                                 for r in speed_runs]:
        rows.append(f"| {name} | " + " | ".join(f"{s[k]:.1f}" for k in (
            "generate_per_s_batch1", "generate_per_s_batch32", "beam_per_s_batch1", "beam_per_s_batch32",
            "export_per_s_batch1", "export_per_s_batch32", "export_seconds")) + " |")
    rows += ["", "| recipe | seed | train s | final loss |", "|---|---|---|---|"]
    rows += [f"| {r['recipe']} | {r['seed']} | {r['train_seconds']:.0f} | {r['final_loss']:.3f} |" for r in runs]
    print("\n".join(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["small_cnn_gru_captioner", "small_cnn_transformer_captioner"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-examples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--num-beams", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--out", default="bench_captioning.json")
    parser.add_argument("--save-models", default=None, metavar="DIR", help="save each trained captioner there")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
    parser.add_argument("--speed-only", default=None, metavar="DIR", help="only time the .keras captioners in DIR")
    parser.add_argument("--report", nargs="+", default=None, metavar="JSON")
    args = parser.parse_args()
    if args.report:
        return report(args.report)
    if args.speed_only:
        return speed_only(args.speed_only, args)
    results = {"command": " ".join(sys.argv), "runs": []}
    for seed in args.seeds:  # seed-major: each recipe gets a first result early
        for recipe in args.recipes:
            results["runs"].append(run(recipe, seed, args))
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
            print(json.dumps({k: v for k, v in results["runs"][-1].items()}, default=str), flush=True)


if __name__ == "__main__":
    main()
