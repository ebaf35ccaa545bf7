"""Speech <-> text retrieval on the bundled `mmzoo_shapes/spoken_captions`: train a dual encoder over {audio, text}
on the train split, then rank every test recording against every test caption and back.

    python bench/audio_retrieval.py                        # mel_crnn (CPU-sized) + gru, 40 epochs, seeds 0 1 2
    python bench/audio_retrieval.py --seeds 0 --epochs 5 --json out.jsonl
    python bench/audio_retrieval.py --table --json out.jsonl --epochs 40    # the tables of recorded runs

Prints recall@1/5/10 in both directions over the whole test split (500 examples, 500 candidates per query),
next to chance (the expected recall of a random ranking: k / N with one positive), per seed and min / median /
max over the seeds, with the training time and the load average. Two scorings, as bench/retrieval.py: `exact`
counts only the example's own caption (audio -> text) or recording (text -> audio); `same caption` also counts
every example whose caption is identical (its recording says the same words in another voice).

The audio tower is the CPU-sized one of the audio recipes (`mmzoo.recipes`: 20 ms hop, 32 mel bins, widths
16/32/32, a 64-unit GRU, mean-pooled), the text tower a 64-unit GRU over 40 tokens, projections to 64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import mmzoo  # noqa: F401  (before TensorFlow: turns on oneDNN)
import keras
import mmzoo.data
from mmzoo.trainers.contrastive import build_dual_encoder, embed_dataset, retrieval_recall, same_text_positives

DATA = "mmzoo_shapes/spoken_captions"
KS = (1, 5, 10)
DIRECTIONS = (("a2t", "audio -> text"), ("t2a", "text -> audio"))
# The audio recipes' CPU-sized tower (mmzoo/recipes.py: _CPU_AUDIO, _CPU_AUDIO_SIZES).
AUDIO_OPTIONS = {"frame_step_ms": 20.0, "audio_widths": (16, 32, 32), "mel_bins": 32, "audio_units": 64}


def train_and_rank(args, seed):
    """Train one dual encoder with `seed`; its recall on the test split (exact and same caption) and timings."""
    keras.utils.set_random_seed(seed)
    train, info = mmzoo.data.load(DATA, args.train_split, batch_size=args.batch_size, seed=seed,
                                  drop_remainder=True, with_info=True)
    validation = mmzoo.data.load(DATA, "validation", batch_size=100)
    test = mmzoo.data.load(DATA, args.test_split, batch_size=100)
    audio = dict(AUDIO_OPTIONS, sample_rate=info.sample_rate, num_samples=info.num_samples)
    dual = build_dual_encoder(audio_tower=args.audio_tower, audio_options=audio, text_tower=args.text_tower,
                              vocabulary=info.vocabulary, sequence_length=args.sequence_length, embedding_dim=64,
                              text_units=64, projection_dim=args.projection_dim, seed=seed)
    steps = args.epochs * (info.num_examples // args.batch_size)
    dual.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)))
    start, cpu_start = time.perf_counter(), time.process_time()
    history = dual.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
    train_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    recordings, texts, captions = embed_dataset(dual, test)
    exact = retrieval_recall(recordings, texts, ks=KS, directions=dual.directions)
    same = retrieval_recall(recordings, texts, ks=KS, positives=same_text_positives(captions),
                            directions=dual.directions)
    return dict(seed=seed, epochs=args.epochs, n=len(captions), distinct_captions=len(set(captions)),
                exact=exact, same=same, temperature=float(dual.temperature), train_s=round(train_s, 1),
                cpu_s=round(cpu_s, 1), final_loss=history.history["loss"][-1],
                final_val_loss=history.history["val_loss"][-1], load_average=os.getloadavg(),
                params=dual.count_params())


def print_tables(results):
    n = results[0]["n"]
    print(f"\n## Speech <-> text retrieval on {DATA} test ({n} examples, {n} candidates per query)\n")
    print("| direction | scoring | seed | R@1 | R@5 | R@10 | chance R@1 | chance R@5 | chance R@10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for direction, label in DIRECTIONS:
        for scoring in ("exact", "same"):
            for result in results:
                scores = result[scoring]
                recalls = " | ".join(f"{scores[f'{direction}_recall_at_{k}']:.3f}" for k in KS)
                chances = " | ".join(f"{scores[f'{direction}_chance_at_{k}']:.3f}" for k in KS)
                name = "exact" if scoring == "exact" else "same caption"
                print(f"| {label} | {name} | {result['seed']} | {recalls} | {chances} |")
    if len(results) > 1:
        print("\nmin / median / max over seeds " + ", ".join(str(r["seed"]) for r in results) + ":\n")
        print("| direction | scoring | R@1 | R@5 | R@10 |")
        print("|---|---|---|---|---|")
        for direction, label in DIRECTIONS:
            for scoring in ("exact", "same"):
                cells = []
                for k in KS:
                    values = [r[scoring][f"{direction}_recall_at_{k}"] for r in results]
                    cells.append(f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}")
                name = "exact" if scoring == "exact" else "same caption"
                print(f"| {label} | {name} | {' | '.join(cells)} |")
    print()
    for r in results:
        load = r["load_average"]
        print(f"seed {r['seed']}: {r['epochs']} epochs, {r['train_s']:.0f} s wall ({r['cpu_s']:.0f} s CPU), learned "
              f"temperature {r['temperature']:.4f}, final loss {r['final_loss']:.3f} (validation "
              f"{r['final_val_loss']:.3f}), distinct captions {r['distinct_captions']} of {r['n']}, load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"Keras {keras.__version__}, {results[0]['params']:,} parameters")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 40: at 20 the three seeds' audio -> text R@1 were 0.026-0.118 and the loss still falling (docs/audio.md).
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--audio-tower", default="mel_crnn")
    parser.add_argument("--text-tower", default="gru")
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--sequence-length", type=int, default=40)
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--json", default=None, help="append each seed's result as a JSON line to this file")
    parser.add_argument("--table", action="store_true", help="print the tables of the runs --json holds with "
                        "--epochs, and stop")
    args = parser.parse_args()
    if args.table:
        if not args.json or not os.path.isfile(args.json):
            parser.error(f"--table reads the runs --json recorded; no such file: --json {args.json}")
        with open(args.json) as f:
            records = [r for r in map(json.loads, filter(str.strip, f)) if r["epochs"] == args.epochs]
        if not records:
            parser.error(f"{args.json} records no run of --epochs {args.epochs}")
        print_tables(records)
        return
    results = []
    for seed in args.seeds:
        result = train_and_rank(args, seed)
        results.append(result)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(dict(result, args=vars(args))) + "\n")
        keras.backend.clear_session()
    print_tables(results)


if __name__ == "__main__":
    main()
