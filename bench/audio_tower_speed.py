"""Samples/s of the audio towers (mel_cnn, mel_crnn): forward and training step, in one process.

    python bench/audio_tower_speed.py                        # both towers x 2 sizes x forward/train, 5 rounds
    python bench/audio_tower_speed.py --runs 9 --steps 8 --batch-size 64
    python bench/audio_tower_speed.py --smoke                # tiny: checks the script works

Each case is one tower with a 14-class Dense head on raw waveforms (the log-mel front end is inside the tower, so
it is timed too): `forward` is `model(x, training=False)` in a tf.function, `train` a `train_on_batch` with Adam
and cross entropy. Every case is built and warmed up first (tracing, first steps); then `--runs` rounds each time
`--steps` calls of every case in turn, so that a change of machine load hits all cases alike; the table gives the
median samples/s over the rounds, and every round's value.

Three sizes: `defaults_16k_2s`, the towers' defaults (40 mel bins, 10 ms hop, CNN 32/64/64, 128 units) on their
default clips (16 kHz, 2 s); `defaults_8k_5s`, the same tower on the bundled spoken VQA's clips (8 kHz, 5 s); and
`recipe_8k_5s`, the audio recipes' CPU-sized tower (32 mel bins, 20 ms hop, CNN 16/32/32, 64 units) on them.

PyTorch: where `torch` is installed (the `bench` extra), the same two towers written in PyTorch (torch.stft, the
same triangular mel filters, per-example log-mel normalisation over valid frames, the same conv-BN-ReLU-pool
stages, nn.GRU over packed valid steps, masked mean) are timed in the same rounds. Without torch the script says
so and times mmzoo alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

NUM_CLASSES = 14
_DEFAULTS = dict(mel_bins=40, frame_step_ms=10.0, widths=(32, 64, 64), units=128)
SIZES = {
    "defaults_16k_2s": dict(_DEFAULTS, sample_rate=16000, num_samples=32000),
    "defaults_8k_5s": dict(_DEFAULTS, sample_rate=8000, num_samples=40000),
    "recipe_8k_5s": dict(sample_rate=8000, num_samples=40000, mel_bins=32, frame_step_ms=20.0, widths=(16, 32, 32),
                         units=64),
}
FRAME_LENGTH_MS = 25.0
TIME_POOLS = 2


def waveforms(batch_size, num_samples, rng):
    """Noise clips of 50-100 % of `num_samples`, zero-padded at the end, and labels."""
    x = np.zeros((batch_size, num_samples), np.float32)
    for row in range(batch_size):
        length = int(rng.integers(num_samples // 2, num_samples + 1))
        x[row, :length] = np.clip(0.1 * rng.standard_normal(length), -1, 1)
    return x, rng.integers(0, NUM_CLASSES, batch_size)


# === mmzoo (Keras) ===


def keras_case(tower, size, mode, x, y):
    """A zero-argument function running one forward pass or training step of the mmzoo tower + head."""
    import keras
    import tensorflow as tf

    from mmzoo.towers import build_audio_tower

    options = dict(SIZES[size])
    body = build_audio_tower(tower, output="pooled", frame_length_ms=FRAME_LENGTH_MS, time_pools=TIME_POOLS,
                             **options)
    waveform = keras.Input((options["num_samples"],))
    model = keras.Model(waveform, keras.layers.Dense(NUM_CLASSES)(body(waveform)))
    if mode == "forward":
        forward = tf.function(lambda batch: model(batch, training=False))
        inputs = tf.constant(x)
        return lambda: forward(inputs).numpy()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return lambda: model.train_on_batch(x, y)


# === PyTorch (only where torch is installed) ===


def mel_filters(sample_rate, fft_length, mel_bins, low=20.0):
    """(fft_length // 2 + 1, mel_bins) triangular filters on the HTK mel scale, 20 Hz to Nyquist."""
    def mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz) / 700.0)

    bins = np.linspace(0, sample_rate / 2, fft_length // 2 + 1)
    edges = np.linspace(mel(low), mel(sample_rate / 2), mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    m = mel(bins)[:, None]
    return np.maximum(0, np.minimum((m - lower) / (centre - lower), (upper - m) / (upper - centre))).astype(np.float32)


def torch_model(tower, size):
    import torch
    from torch import nn

    options = SIZES[size]
    rate, step_ms = options["sample_rate"], options["frame_step_ms"]
    window = int(round(rate * FRAME_LENGTH_MS / 1000))
    stride, fft = int(round(rate * step_ms / 1000)), 1 << (window - 1).bit_length()

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("window", torch.hann_window(window))
            self.register_buffer("filters", torch.from_numpy(mel_filters(rate, fft, options["mel_bins"])))
            stages, channels, mel = [], 1, options["mel_bins"]
            for i, width in enumerate(options["widths"]):
                stages += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width, momentum=0.1),
                           nn.ReLU(), nn.MaxPool2d((2 if i < TIME_POOLS else 1, 2), ceil_mode=True)]
                channels, mel = width, -(-mel // 2)
            self.cnn = nn.Sequential(*stages)
            features = mel * channels
            self.project = nn.Linear(features, options["units"]) if tower == "mel_cnn" else None
            self.gru = nn.GRU(features, options["units"], batch_first=True) if tower == "mel_crnn" else None
            self.head = nn.Linear(options["units"], NUM_CLASSES)

        def forward(self, x):
            lengths = (torch.arange(1, x.shape[1] + 1) * (x != 0)).amax(dim=1)
            spec = torch.stft(x, fft, stride, win_length=window, window=self.window, center=True,
                              pad_mode="reflect", return_complex=True).abs() ** 2
            logmel = torch.log(torch.matmul(spec.transpose(1, 2), self.filters) + 1e-6)  # (B, frames, mel)
            frames = torch.clamp(lengths // stride + 1, max=logmel.shape[1])
            mask = (torch.arange(logmel.shape[1])[None] < frames[:, None]).float()[..., None]
            count = mask.sum(dim=(1, 2), keepdim=True) * logmel.shape[2]
            mean = (logmel * mask).sum(dim=(1, 2), keepdim=True) / count
            var = (((logmel - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
            normalised = (logmel - mean) / torch.sqrt(var + 1e-5) * mask
            h = self.cnn(normalised[:, None])  # (B, C, steps, mel')
            steps = h.permute(0, 2, 3, 1).flatten(2)  # (B, steps, mel' * C)
            valid = torch.clamp(-(-frames // 2 ** TIME_POOLS), max=steps.shape[1])
            if self.gru is not None:
                packed = nn.utils.rnn.pack_padded_sequence(steps, valid, batch_first=True, enforce_sorted=False)
                states, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                             total_length=steps.shape[1])
            else:
                states = torch.relu(self.project(steps))
            token_mask = (torch.arange(steps.shape[1])[None] < valid[:, None]).float()[..., None]
            return self.head((states * token_mask).sum(1) / valid[:, None].float())

    return Tower()


def torch_case(tower, size, mode, x, y):
    import torch

    model = torch_model(tower, size)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    if mode == "forward":
        model.eval()

        def forward():
            with torch.no_grad():
                model(inputs)

        return forward
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    return step


def import_torch_first():
    """Whether torch is installed; imports it (with torch._dynamo, which its optimizers load on first use) before
    TensorFlow: torch 2.14 imported after TensorFlow 2.21 crashes with a segmentation fault in that import here."""
    try:
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401
    except Exception:  # not installed, or a build that cannot load here: time mmzoo alone
        return False
    return True


# === Timing ===


def measure(cases, *, batch_size, runs, steps, warmup):
    """{case: [samples/s per round]}: warm-up, then `runs` rounds of `steps` calls of every case in turn."""
    for run in cases.values():
        for _ in range(warmup):
            run()
    rates = {name: [] for name in cases}
    for _ in range(runs):
        for name, run in cases.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            rates[name].append(batch_size * steps / (time.perf_counter() - start))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 step, batch 4: checks the script works")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.runs, args.steps, args.warmup = 4, 1, 1, 1
    with_torch = import_torch_first()
    import mmzoo  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
    import keras
    import tensorflow as tf

    systems = {"mmzoo": keras_case}
    if with_torch:
        import torch

        torch.set_num_threads(os.cpu_count())
        systems["torch"] = torch_case
    rng = np.random.default_rng(0)
    cases, started = {}, time.perf_counter()
    for size in args.sizes:
        x, y = waveforms(args.batch_size, SIZES[size]["num_samples"], rng)
        for tower in ("mel_cnn", "mel_crnn"):
            for mode in ("forward", "train"):
                for system, make in systems.items():
                    cases[(size, tower, mode, system)] = make(tower, size, mode, x, y)
    rates = measure(cases, batch_size=args.batch_size, runs=args.runs, steps=args.steps, warmup=args.warmup)
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), TensorFlow "
          f"{tf.__version__}, Keras {keras.__version__}; batch {args.batch_size}, {args.runs} rounds of "
          f"{args.steps} steps after {args.warmup} warm-up calls; {time.perf_counter() - started:.0f} s; load "
          f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    if "torch" not in systems:
        print("PyTorch is not installed (pip install -e .[bench]): mmzoo alone.")
    print("\n| size | tower | mode | system | samples/s (median) | rounds |")
    print("|---|---|---|---|---|---|")
    for (size, tower, mode, system), values in rates.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {size} | {tower} | {mode} | {system} | {statistics.median(values):.0f} | {rounds} |")


if __name__ == "__main__":
    main()
