"""Word and character error rates of the default transcriber on the bundled spoken captions, over seeds.

    python bench/transcription_results.py                         # seeds 0 1 2 at the command's batch size
    python bench/transcription_results.py --seeds 0 --batch-size 32
    python bench/transcription_results.py --table                 # the table of the runs recorded so far

Each run trains as `mmzoo train --task transcribe --seed S --batch-size B` does (`mel_crnn_ctc` on
`mmzoo_shapes/spoken_captions`, epochs "auto", Adam 3e-3 with cosine decay), then transcribes the 500 test clips
with greedy and with beam decoding. One JSON line per run (seed, batch size, WER / CER / exact match per
decoding, wall and CPU time, load average) is appended to `--out`; runs already recorded are skipped, so the
script can be stopped and resumed. Each run is its own process, as the command would be.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

RECIPE = "mel_crnn_ctc"
DATA = "mmzoo_shapes/spoken_captions"
STRATEGIES = ("greedy", "beam")
HERE = os.path.dirname(os.path.abspath(__file__))


def command(seed, batch_size):
    return f"mmzoo train --task transcribe --seed {seed} --batch-size {batch_size}"


def run_one(args):
    """Train one seed in this process, decode the test split both ways, append its JSON line to args.out."""
    from mmzoo.transcription import evaluate_transcripts, train_transcriber
    from mmzoo.transcription.data import transcription_dataset, transcripts_and_waveforms

    started = time.perf_counter()
    result = train_transcriber(RECIPE, DATA, batch_size=args.batch_size, seed=args.seed, verbose=2,
                               output_dir=os.path.join(args.runs, f"b{args.batch_size}_s{args.seed}"))
    wall = time.perf_counter() - started
    waveforms, references = transcripts_and_waveforms(transcription_dataset(DATA, "test", shuffle=False))
    decoded = {}
    for strategy in STRATEGIES:
        transcripts = result.model.transcribe(waveforms, strategy=strategy)["transcript"]
        decoded[strategy] = evaluate_transcripts(references, list(transcripts))
    usage = resource.getrusage(resource.RUSAGE_SELF)  # user + system CPU time of training and both decodings
    record = dict(seed=args.seed, batch_size=args.batch_size, epochs=len(result.history.get("loss", [])),
                  **decoded, final_val_loss=(result.history.get("val_loss") or [None])[-1], wall_s=round(wall, 1),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 1), command=command(args.seed, args.batch_size),
                  load_average=os.getloadavg(), machine=f"{os.cpu_count()} CPUs, {platform.machine()}")
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"seed {args.seed}, batch {args.batch_size}: greedy WER {decoded['greedy']['wer']:.4f}, "
          f"beam WER {decoded['beam']['wer']:.4f} in {wall:.0f} s")


def read_records(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def spread(values, percent=True):
    scale, unit = (100, " %") if percent else (1, "")
    low, mid, high = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    return f"{low:.2f} / {mid:.2f} / {high:.2f}{unit}"


def table(records):
    """Markdown: one line per (batch size, decoding) with each seed's WER, and WER / CER min / median / max."""
    lines = ["| batch | decoding | seeds | WER per seed | WER min / median / max | CER min / median / max | "
             "exact match (median) | wall time per run |", "|---|---|---|---|---|---|---|---|"]
    for batch_size in sorted({r["batch_size"] for r in records}):
        runs = sorted((r for r in records if r["batch_size"] == batch_size), key=lambda r: r["seed"])
        walls = ", ".join(f"{r['wall_s'] / 60:.1f}" for r in runs)
        for strategy in STRATEGIES:
            wer = [r[strategy]["wer"] for r in runs]
            per_seed = ", ".join(f"{r['seed']}: {r[strategy]['wer'] * 100:.2f} %" for r in runs)
            exact = statistics.median(r[strategy]["exact_match"] for r in runs)
            lines.append(f"| {batch_size} | {strategy} | {', '.join(str(r['seed']) for r in runs)} | {per_seed} | "
                         f"{spread(wer)} | {spread([r[strategy]['cer'] for r in runs])} | {exact:.3f} | "
                         f"{walls} min |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the command's (mmzoo.cli)")
    parser.add_argument("--out", default="runs/transcription_results/results.jsonl")
    parser.add_argument("--runs", default="runs/transcription_results", help="output folders of the runs")
    parser.add_argument("--table", action="store_true", help="print the table of the recorded runs and stop")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.batch_size is None:
        from mmzoo.cli import TRANSCRIBE_BATCH_SIZE
        args.batch_size = TRANSCRIBE_BATCH_SIZE
    if args.seed is not None:
        return run_one(args)
    if not args.table:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        for seed in args.seeds:
            if (seed, args.batch_size) in {(r["seed"], r["batch_size"]) for r in read_records(args.out)}:
                continue
            subprocess.run([sys.executable, os.path.join(HERE, "transcription_results.py"), "--seed", str(seed),
                            "--batch-size", str(args.batch_size), "--out", args.out, "--runs", args.runs],
                           check=True)
    print(f"\n## {RECIPE} on {DATA} test (500 clips)\n")
    print(table(read_records(args.out)))


if __name__ == "__main__":
    main()
