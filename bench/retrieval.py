"""Image <-> text retrieval on the bundled `mmzoo_shapes/captions` data: train a dual encoder on the train split,
then rank all test images against all test captions and back.

    python bench/retrieval.py                     # small_cnn + gru, 64 px, 5 epochs (about 10 min on 2 cores)
    python bench/retrieval.py --epochs 2 --image-pooling average

Prints recall@1/5/10 in both directions over the whole test split (1000 examples), next to chance (the
expected recall of a random ranking), the training time and the load average. Two scorings: `exact` counts only
the example's own caption (image -> text) or image (text -> image) as correct; `same caption` also counts any
example whose caption is identical (single-object scenes repeat: their captions cannot tell them apart).
"""

import argparse
import os
import platform
import time

import mmzoo  # noqa: F401  (before TensorFlow: turns on oneDNN)
import keras
import mmzoo.data
from mmzoo.trainers.contrastive import build_dual_encoder, embed_dataset, retrieval_recall, same_text_positives

KS = (1, 5, 10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--image-tower", default="small_cnn")
    parser.add_argument("--text-tower", default="gru")
    parser.add_argument("--image-pooling", default="flatten", choices=("average", "flatten"))
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--sequence-length", type=int, default=40)
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    name = "mmzoo_shapes/captions"
    train, info = mmzoo.data.load(name, args.train_split, batch_size=args.batch_size, image_size=64, seed=args.seed,
                                  drop_remainder=True, with_info=True)
    validation = mmzoo.data.load(name, "validation", batch_size=250, image_size=64)
    test = mmzoo.data.load(name, args.test_split, batch_size=250, image_size=64)

    dual = build_dual_encoder(
        image_tower=args.image_tower, text_tower=args.text_tower, vocabulary=info.vocabulary, image_size=64,
        sequence_length=args.sequence_length, image_pooling=args.image_pooling, projection_dim=args.projection_dim,
        seed=args.seed,
    )
    steps = args.epochs * (info.num_examples // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps, warmup_target=None)
    dual.compile(optimizer=keras.optimizers.Adam(schedule))
    start, cpu_start = time.perf_counter(), time.process_time()
    history = dual.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
    train_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    images, texts, captions = embed_dataset(dual, test)
    exact = retrieval_recall(images, texts, ks=KS)
    same = retrieval_recall(images, texts, ks=KS, positives=same_text_positives(captions))
    n = len(captions)

    print()
    print(f"## Retrieval on {name} {args.test_split} ({n} examples, {n} candidates per query)")
    print(f"{args.image_tower} ({args.image_pooling}) + {args.text_tower}, projection {args.projection_dim}, "
          f"{args.epochs} epochs of {info.num_examples} examples, batch {args.batch_size}, "
          f"learned temperature {float(dual.temperature):.4f}")
    print()
    print("| direction | scoring | R@1 | R@5 | R@10 | chance R@1 | chance R@5 | chance R@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for direction, label in (("i2t", "image -> text"), ("t2i", "text -> image")):
        for scoring, result in (("exact", exact), ("same caption", same)):
            recalls = " | ".join(f"{result[f'{direction}_recall_at_{k}']:.3f}" for k in KS)
            chances = " | ".join(f"{result[f'{direction}_chance_at_{k}']:.3f}" for k in KS)
            print(f"| {label} | {scoring} | {recalls} | {chances} |")
    print()
    print(f"distinct captions: {len(set(captions))} of {n}; final train loss {history.history['loss'][-1]:.3f}, "
          f"validation loss {history.history['val_loss'][-1]:.3f}")
    load = os.getloadavg()
    print(f"training: {train_seconds:.0f} s wall, {cpu_seconds:.0f} s CPU time on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")


if __name__ == "__main__":
    main()
