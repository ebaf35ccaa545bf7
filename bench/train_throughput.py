"""Training throughput of mmzoo's ResNet50 + LSTM recipe vs the same model in plain Keras and in PyTorch.

    python bench/train_throughput.py                          # 64 px batch 32 and 224 px batch 16, 3 runs
    python bench/train_throughput.py --sizes 64:32 --runs 5 --systems mmzoo,keras
    python bench/train_throughput.py --smoke                  # 32 px, 1 step, no torch: checks the script runs

Systems (each measurement is a fresh child process, so frameworks and thread pools never share a process):
  mmzoo          mmzoo.build_model("resnet50_lstm_concat", vocabulary of 10000, embedding 128, LSTM 256,
                 10 classes) fed raw {"image", "text"}, compiled with mmzoo.compile_model(model, "adam") (fused
                 Adam); whatever else mmzoo sets by default (oneDNN on, fused BatchNormalization).
  keras          the same architecture written directly in plain Keras 3 (keras.applications.ResNet50, Embedding,
                 LSTM, Dense), fed token ids, with TF_ENABLE_ONEDNN_OPTS=1 (its best plain setting here).
  keras_default  as keras with TensorFlow's default (oneDNN off on AMD CPUs). Not in the default list.
  torch          torchvision resnet50 + nn.LSTM on packed sequences (only when torch is installed: extra `bench`).
All train with Adam on one fixed in-memory batch (bench/common.py); a step is `train_on_batch` (Keras) or
zero_grad/forward/backward/step (PyTorch). samples/s = batch / median step time after `--warmup` steps. Rounds
alternate the systems (rotating the order), and the table gives medians over rounds and ratios of medians.

Also printed: matmul peak GFLOP/s through TensorFlow and NumPy (measured each round), achieved training FLOP/s
(matmul FLOPs of conv/dense/LSTM x 3, bench/common.py) as a fraction of those peaks, time from starting the child
process to the end of its first training step, peak resident memory (ru_maxrss), the load average, and serving
latency of mmzoo's SavedModel export vs the in-memory model (--serve-calls 0 skips it).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

TF_SYSTEMS = ("mmzoo", "keras", "keras_default")
ALL_SYSTEMS = (*TF_SYSTEMS, "torch")


# === Children ===


def _report(record):
    record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["load"] = os.getloadavg()[0]
    print("RESULT " + json.dumps(record), flush=True)


def _time_steps(step, args, t0):
    step()  # first step: tracing / allocation
    first_step_s = time.time() - t0
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "samples_per_s": args.batch_size / statistics.median(times),
        "step_s": times,
        "start_to_first_step_s": first_step_s,
    }


def child_train(args):
    import numpy as np

    from common import build_keras_model, build_mmzoo_model, build_torch_model, synthetic_batch

    rng = np.random.default_rng(0)
    if args.system == "torch":
        import torch

        torch.manual_seed(0)
        x, y = synthetic_batch(args.batch_size, args.image_size, kind="ids", rng=rng)
        image = torch.from_numpy(np.ascontiguousarray(x["image"].transpose(0, 3, 1, 2)))
        ids, lengths, labels = torch.from_numpy(x["token_ids"]), torch.from_numpy(x["lengths"]), torch.from_numpy(y)
        model = build_torch_model().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(image, ids, lengths), labels)
            loss.backward()
            optimizer.step()
            return loss.item()

        record = {"threads": torch.get_num_threads(), "version": torch.__version__}
    else:
        if args.system == "mmzoo":
            import mmzoo  # noqa: F401  (first: it sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported)
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        if args.system == "mmzoo":
            model = build_mmzoo_model(args.image_size)
            x, y = synthetic_batch(args.batch_size, args.image_size, kind="strings", rng=rng)
            x = {"image": tf.constant(x["image"]), "text": tf.constant(list(x["text"]))}
        else:
            model = build_keras_model(args.image_size)
            x, y = synthetic_batch(args.batch_size, args.image_size, kind="ids", rng=rng)
            x = {"image": tf.constant(x["image"]), "token_ids": tf.constant(x["token_ids"])}
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if args.system == "mmzoo":  # mmzoo's way: fused Adam, optimizer variables created before the first step
            mmzoo.compile_model(model, "adam", loss=loss)
        else:
            model.compile(optimizer="adam", loss=loss)
        y = tf.constant(y)

        def step():
            return model.train_on_batch(x, y)

        record = {
            "version": f"keras {keras.__version__}, tf {tf.__version__}",
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    record.update(_time_steps(step, args, args.t0))
    _report(record)


def child_peak(args):
    """Matmul GFLOP/s through TensorFlow and NumPy (square float32, best of several), and training FLOPs/sample."""
    import numpy as np
    import tensorflow as tf

    n, reps = args.matmul_size, 8
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)

    def best(fn):
        fn()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 2 * n**3 / min(times) / 1e9

    ta, tb = tf.constant(a), tf.constant(b)
    tf_matmul = tf.function(lambda: tf.linalg.matmul(ta, tb))
    record = {
        "tf_gflops": best(lambda: tf_matmul().numpy()),
        "numpy_gflops": best(lambda: a @ b),
    }
    if args.flops_sizes:
        from common import training_flops_per_sample

        record["train_flops_per_sample"] = {
            size: training_flops_per_sample(int(size)) for size in args.flops_sizes.split(",")
        }
    _report(record)


def child_serve(args):
    """p50/p99 latency of mmzoo's export (load_exported) vs the in-memory model, calls alternating."""
    import mmzoo  # first: it sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported
    import keras
    import numpy as np
    import tensorflow as tf
    from common import build_mmzoo_model, synthetic_batch

    keras.utils.set_random_seed(0)
    model = build_mmzoo_model(args.image_size, class_names=[f"class{i}" for i in range(10)])
    with tempfile.TemporaryDirectory() as tmp:
        exported = mmzoo.load_exported(mmzoo.export_model(model, os.path.join(tmp, "model", "1")))
        signature = exported.signatures["serving_default"]
        forward = tf.function(lambda inputs: model(inputs, training=False))
        result = {}
        for batch_size, calls in ((1, args.serve_calls), (32, max(3, args.serve_calls // 5))):
            x, _ = synthetic_batch(batch_size, args.image_size, kind="strings", rng=np.random.default_rng(batch_size))
            texts = np.array(list(x["text"]))
            raw = {"image": x["image"].astype(np.uint8), "text": texts}
            tensors = {"image": tf.constant(x["image"]), "text": tf.constant(texts)}
            sig_feeds = {"image": tf.constant(raw["image"]), "text": tf.constant(texts)}
            paths = {
                "forward (tf.function of model(x))": lambda: forward(tensors)[0, 0].numpy(),
                "predict_on_batch": lambda: model.predict_on_batch({"image": x["image"], "text": texts}),
                "SavedModel signature (tensors in)": lambda: signature(**sig_feeds)["probabilities"].numpy(),
                "load_exported()(numpy in)": lambda: exported(raw),
            }
            times = {name: [] for name in paths}
            for fn in paths.values():  # warm-up: trace and first-run allocations
                fn()
                fn()
            for _ in range(calls):
                for name, fn in paths.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
            result[batch_size] = {name: sorted(values) for name, values in times.items()}
    _report({"latency_s": result})


# === Parent ===


def run_child(kind, args, extra, env):
    t0 = time.time()
    command = [sys.executable, os.path.abspath(__file__), "--child", kind, "--t0", repr(t0), *extra]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"child {kind} {extra} failed with exit code {out.returncode}")
    return json.loads(lines[-1][len("RESULT "):])


def child_env(system):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    if system == "keras":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    elif system == "keras_default":
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    return env


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--sizes", default="64:32,224:16", help="image_px:batch pairs (default 64:32,224:16)")
    parser.add_argument("--systems", default="mmzoo,keras,torch", help=f"comma list of {', '.join(ALL_SYSTEMS)}")
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--steps", default="64:8,224:4", help="timed steps per child, per image size or one number")
    parser.add_argument("--warmup", type=int, default=2, help="steps after the first, untimed (default 2)")
    parser.add_argument("--serve-calls", type=int, default=40, help="timed calls per path at batch 1 (batch 32: a fifth)")
    parser.add_argument("--serve-sizes", default="64,224", help="image sizes to measure serving latency at")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--smoke", action="store_true", help="32 px, batch 4, 1 step, 1 run, no torch (seconds)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--image-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flops-sizes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.steps = int(args.steps) if args.steps.isdigit() else 0
        return {"train": child_train, "peak": child_peak, "serve": child_serve}[args.child](args)

    if args.smoke:
        args.sizes, args.steps, args.warmup, args.runs = "32:4", "1", 0, 1
        args.systems, args.serve_calls, args.serve_sizes, args.matmul_size = "mmzoo,keras", 2, "32", 256
    sizes = [tuple(int(v) for v in pair.split(":")) for pair in args.sizes.split(",")]
    steps = dict(tuple(int(v) for v in pair.split(":")) for pair in args.steps.split(",")) if ":" in args.steps else {}
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s) {sorted(unknown)}; choose from {', '.join(ALL_SYSTEMS)}")
    if "torch" in systems:
        probe = subprocess.run([sys.executable, "-c", "import torch, torchvision"], capture_output=True)
        if probe.returncode:
            print("torch/torchvision not installed (pip install -e .[bench]): skipping the torch system", file=sys.stderr)
            systems.remove("torch")

    log = {"sizes": sizes, "systems": systems, "train": [], "peak": [], "serve": {}, "uptime": []}
    flops_per_sample = {}
    for round_index in range(args.runs):
        log["uptime"].append(os.getloadavg())
        extra = ["--matmul-size", str(args.matmul_size)]
        if round_index == 0:
            extra += ["--flops-sizes", ",".join(str(size) for size, _ in sizes)]
        peak = run_child("peak", args, extra, child_env("keras"))
        flops_per_sample.update(peak.pop("train_flops_per_sample", {}))
        log["peak"].append(peak)
        print(f"round {round_index + 1}: matmul peak TF {peak['tf_gflops']:.0f}, NumPy {peak['numpy_gflops']:.0f} GFLOP/s "
              f"(load {peak['load']:.2f})", file=sys.stderr)
        for size, batch in sizes:
            order = systems[round_index % len(systems):] + systems[:round_index % len(systems)]
            for system in order:
                extra = ["--system", system, "--image-size", str(size), "--batch-size", str(batch),
                         "--steps", str(steps.get(size, args.steps)), "--warmup", str(args.warmup)]
                record = run_child("train", args, extra, child_env(system))
                record.update(system=system, image_size=size, batch_size=batch, round=round_index)
                log["train"].append(record)
                print(f"  {size} px batch {batch} {system}: {record['samples_per_s']:.2f} samples/s, first step after "
                      f"{record['start_to_first_step_s']:.1f} s, peak RSS {record['peak_rss_mib']:.0f} MiB "
                      f"(load {record['load']:.2f})", file=sys.stderr)
    for size in [int(s) for s in args.serve_sizes.split(",") if s] if args.serve_calls else []:
        record = run_child("serve", args, ["--image-size", str(size), "--serve-calls", str(args.serve_calls)],
                           child_env("mmzoo"))
        log["serve"][size] = record
        print(f"  serving {size} px measured (load {record['load']:.2f})", file=sys.stderr)
    log["uptime"].append(os.getloadavg())
    print_tables(log, flops_per_sample)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(log, f, indent=1)


def print_tables(log, flops_per_sample):
    tf_peak = statistics.median(p["tf_gflops"] for p in log["peak"])
    np_peak = statistics.median(p["numpy_gflops"] for p in log["peak"])
    loads = [r["load"] for r in log["train"]] + [p["load"] for p in log["peak"]]
    print(f"machine: {platform.machine()} {_cpu_name()}, {os.cpu_count()} cores; {len(log['peak'])} alternating rounds; "
          f"1-min load average seen by the children {min(loads):.2f}-{max(loads):.2f}")
    print(f"matmul peak (2048x2048 float32, median of rounds): TensorFlow {tf_peak:.0f} GFLOP/s, NumPy {np_peak:.0f} GFLOP/s")
    print()
    print("| image px | batch | system | samples/s (median) | runs | vs torch | vs keras | GFLOP/s | % TF peak | "
          "% NumPy peak | start to 1st step, s | peak RSS, MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, batch in log["sizes"]:
        medians = {}
        for system in log["systems"]:
            records = [r for r in log["train"] if r["system"] == system and r["image_size"] == size]
            medians[system] = (statistics.median(r["samples_per_s"] for r in records), records)
        for system, (median, records) in medians.items():
            gflops = median * flops_per_sample[str(size)] / 1e9
            ratio = lambda other: f"{median / medians[other][0]:.2f}x" if other in medians else "-"  # noqa: E731
            runs = ", ".join(f"{r['samples_per_s']:.2f}" for r in records)
            print(f"| {size} | {batch} | {system} | {median:.2f} | {runs} | "
                  f"{ratio('torch')} | {ratio('keras')} | {gflops:.0f} | {100 * gflops / tf_peak:.0f}% | "
                  f"{100 * gflops / np_peak:.0f}% | {statistics.median(r['start_to_first_step_s'] for r in records):.1f} | "
                  f"{max(r['peak_rss_mib'] for r in records):.0f} |")
    if log["serve"]:
        print()
        print("| image px | batch | path | p50, ms | p99, ms | calls | p50 / forward p50 |")
        print("|---|---|---|---|---|---|---|")
        for size, record in log["serve"].items():
            for batch, paths in record["latency_s"].items():
                forward = percentile(next(iter(paths.values())), 50)
                for name, values in paths.items():
                    p50 = percentile(values, 50)
                    print(f"| {size} | {batch} | {name} | {1000 * p50:.1f} | {1000 * percentile(values, 99):.1f} | "
                          f"{len(values)} | {p50 / forward:.2f}x |")
    print()
    print("training FLOPs per sample (matmul, x3): " + ", ".join(f"{s} px {v / 1e9:.2f} G" for s, v in flops_per_sample.items()))


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
