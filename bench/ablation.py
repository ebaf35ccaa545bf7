"""Where does a ResNet50 + LSTM training step's time go? One knob at a time, alternating child processes.

Times `train_on_batch` of the plain-Keras ResNet50 + Embedding + LSTM + concat model (bench/train_throughput.py's
"keras" system) under variants, each in a fresh process (thread settings and XLA only count at start-up), in
rounds that alternate the variants so load from other processes hits all alike. Prints median samples/s per
variant and its ratio to the first.

    python bench/ablation.py --image-size 64 --batch-size 32 --runs 3 base fused_bn inter_op_1 lstm_unroll
    python bench/ablation.py --list

A variant is a "+"-joined list of knobs, e.g. `fused_bn+inter_op_1`.
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

KNOBS = {
    "base": "plain Keras, as bench/train_throughput.py's keras system",
    "image_only": "ResNet50 tower alone (no text tower)",
    "text_only": "Embedding + LSTM alone (no image tower)",
    "fused_bn": "BatchNormalization layers run as one FusedBatchNormV3 op (mmzoo.towers.normalization.FusedBatchNormalization)",
    "fused_adam": "mmzoo.compile_model: Adam as one ResourceApplyAdam op per variable, built before the first step",
    "inter_op_1": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "intra_op_1": "tf.config.threading.set_intra_op_parallelism_threads(1)",
    "lstm_unroll": "keras.layers.LSTM(unroll=True)",
    "lstm_impl1": "keras.layers.LSTM(implementation=1)",
    "no_lstm_dropout": "LSTM dropout=0 (mmzoo recipes pass dropout=0.1 to the LSTM)",
    "jit": "compile(jit_compile=True) (XLA)",
    "channels_first": "keras.config.set_image_data_format('channels_first') (NCHW convolutions)",
    "onednn_off": "TF_ENABLE_ONEDNN_OPTS=0",
    "no_remapper": "grappler remapper off (no Conv+BN/Relu fusion)",
}


def child(args):
    knobs = set(args.variant.split("+"))
    unknown = knobs - set(KNOBS)
    if unknown:
        raise SystemExit(f"unknown knob(s) {sorted(unknown)}; see --list")
    import keras
    import numpy as np
    import tensorflow as tf

    from common import build_keras_model, synthetic_batch  # bench/common.py

    if "inter_op_1" in knobs:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if "intra_op_1" in knobs:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    if "channels_first" in knobs:
        keras.config.set_image_data_format("channels_first")
    if "no_remapper" in knobs:
        tf.config.optimizer.set_experimental_options({"remapping": False})
    keras.utils.set_random_seed(0)
    model = build_keras_model(
        args.image_size,
        image="text_only" not in knobs,
        text="image_only" not in knobs,
        fused_bn="fused_bn" in knobs,
        lstm_kwargs=dict(
            unroll="lstm_unroll" in knobs,
            implementation=1 if "lstm_impl1" in knobs else 2,
            dropout=0.0 if "no_lstm_dropout" in knobs else 0.1,
        ),
    )
    compile_kwargs = dict(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile="jit" in knobs
    )
    if "fused_adam" in knobs:
        import mmzoo

        mmzoo.compile_model(model, "adam", **compile_kwargs)
    else:
        model.compile(optimizer="adam", **compile_kwargs)
    x, y = synthetic_batch(args.batch_size, args.image_size, kind="ids", rng=np.random.default_rng(0))
    x = {k: v for k, v in x.items() if k in {i.name for i in model.inputs}}
    if "channels_first" in knobs and "image" in x:
        x["image"] = np.ascontiguousarray(x["image"].transpose(0, 3, 1, 2))
    x = {k: tf.constant(v) for k, v in x.items()}
    y = tf.constant(y)
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    if args.profile:
        import tensorflow as tf

        tf.profiler.experimental.start(args.profile)
    times, cpu = [], time.process_time()
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / args.steps
    if args.profile:
        tf.profiler.experimental.stop()
        print_op_profile(args.profile, args.steps, sum(times), file=sys.stderr)
    print(json.dumps({"samples_per_s": args.batch_size / statistics.median(times), "cpu_s_per_step": cpu,
                      "load": os.getloadavg()[0]}))


def print_op_profile(logdir, steps, seconds, file, top=25):
    """Sum the TF profiler's host op events by op type and print the top ones (ms per step)."""
    import collections
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    path = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1]
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    by_type = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if "tf_Compute" not in line.name and "tf_data" not in line.name and "TF executor" not in line.name and not line.name.startswith("tf_"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if ":" not in name:
                    continue
                by_type[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    total = sum(by_type.values())
    print(f"op time summed over threads: {total / steps:.0f} ms/step; wall {1000 * seconds / steps:.0f} ms/step", file=file)
    for op, ms in by_type.most_common(top):
        print(f"  {op:40s} {ms / steps:8.1f} ms/step {100 * ms / total:5.1f}%", file=file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["base"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--list", action="store_true", help="list the knobs and exit")
    parser.add_argument("--profile", metavar="LOGDIR", help="run each variant once under the TF profiler, print op times")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        for name, text in KNOBS.items():
            print(f"{name:16s} {text}")
        return
    if args.child:
        args.variant = args.child
        return child(args)
    results = {v: [] for v in args.variants}
    cpu = {v: [] for v in args.variants}
    loads = []
    if args.profile:
        args.runs = 1
    passthrough = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
    for _ in range(args.runs):
        for variant in args.variants:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            env["TF_ENABLE_ONEDNN_OPTS"] = "0" if "onednn_off" in variant.split("+") else "1"
            extra = ["--profile", os.path.join(args.profile, variant)] if args.profile else []
            out = subprocess.run([sys.executable, __file__, "--child", variant, *passthrough, *extra], env=env,
                                 capture_output=True, text=True)
            if args.profile:
                print(f"== {variant}", file=sys.stderr)
                print("\n".join(l for l in out.stderr.splitlines() if l.startswith(("op time", "  "))), file=sys.stderr)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                results[variant].append(float("nan"))
                continue
            record = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(record["samples_per_s"])
            cpu[variant].append(record["cpu_s_per_step"])
            loads.append(record["load"])
            print(f"{variant}: {record['samples_per_s']:.2f} samples/s, {record['cpu_s_per_step']:.2f} CPU s/step "
                  f"(load {record['load']:.2f})", file=sys.stderr)
    base = statistics.median(results[args.variants[0]])
    print(f"{args.image_size} px, batch {args.batch_size}, {args.steps} timed steps (median step), {args.runs} runs; "
          f"load average {min(loads):.2f}-{max(loads):.2f}")
    print(f"| variant | median samples/s | runs | vs {args.variants[0]} | CPU s/step (median) |")
    print("|---|---|---|---|---|")
    for variant, values in results.items():
        median = statistics.median(values)
        print(f"| {variant} | {median:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {median / base:.2f}x | "
              f"{statistics.median(cpu[variant]):.2f} |")


if __name__ == "__main__":
    main()
