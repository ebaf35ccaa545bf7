"""Does masked pretraining on unlabelled captions help? Two measurements on the bundled mmzoo_shapes data.

    python bench/masked_pretraining.py                       # defaults below, ~15-25 min on 2 CPU cores
    python bench/masked_pretraining.py --pretrain-epochs 1 --finetune-epochs 2 --json out.json

(a) Masked-token accuracy on the captions test split with the true image vs an all-black image: the fused
    tokens must use the image, so the true image must score higher.
(b) Fine-tuning on 10 % of the labelled vqa training split, initialised from the pretrained towers and fusion
    (`pretrainer.initialize(classifier)`), vs the same classifier trained from scratch on the same 10 %, same
    epochs, seeds and learning rate. Each run keeps the weights of its best epoch on the vqa validation split
    (with 1 000 labelled examples both overfit; a fixed last epoch measures the overfitting more than the
    initialisation). Test accuracy on the full vqa test split, for several fine-tuning seeds.
    `--freeze-image-tower` keeps the pretrained image tower fixed while the rest fine-tunes: 1 000 answers are
    too few to improve the perception pretraining learned, and enough to wreck it.
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
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from mmzoo.trainers import MaskedPretrainer  # noqa: E402


def blank_images(features, label):
    return {"image": tf.zeros_like(features["image"]), "text": features["text"]}, label


def finetune(model, train, validation, test, epochs, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    best = keras.callbacks.EarlyStopping("val_accuracy", patience=epochs, restore_best_weights=True)
    model.fit(train, validation_data=validation, epochs=epochs, verbose=2, callbacks=[best])
    return model.evaluate(test, verbose=0, return_dict=True)["accuracy"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="small_cnn_bilstm_attention")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--fraction", type=int, default=10, help="percent of the vqa training split to fine-tune on")
    parser.add_argument("--mask-rate", type=float, default=0.15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune-seeds", type=int, default=2, help="fine-tuning runs of each kind")
    parser.add_argument("--freeze-image-tower", action="store_true",
                        help="fine-tune the pretrained classifier with its image tower frozen (the scratch one trains all)")
    parser.add_argument("--save-weights", help="save the pretrained classifier's weights here (.weights.h5)")
    parser.add_argument("--pretrained-weights", help="skip pretraining: load these saved weights instead")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    started = time.time()

    load = dict(batch_size=args.batch_size, seed=args.seed)
    captions, captions_info = mmzoo.data.load("mmzoo_shapes/captions", "train", with_info=True, **load)
    captions_test = mmzoo.data.load("mmzoo_shapes/captions", "test", **load)
    vqa, vqa_info = mmzoo.data.load("mmzoo_shapes/vqa", f"train[:{args.fraction}%]", with_info=True, **load)
    vqa_validation = mmzoo.data.load("mmzoo_shapes/vqa", "validation", **load)
    vqa_test = mmzoo.data.load("mmzoo_shapes/vqa", "test", **load)
    # One vocabulary for both: token ids must mean the same words in pretraining and fine-tuning.
    vocabulary = list(dict.fromkeys(captions_info.vocabulary + vqa_info.vocabulary))
    options = dict(vqa_info.model_kwargs(), vocabulary=vocabulary)

    keras.utils.set_random_seed(args.seed)
    pretrained = mmzoo.build_model(args.recipe, **options)
    pretrainer = MaskedPretrainer(pretrained, mask_rate=args.mask_rate, seed=args.seed)
    pretrainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    pretrain_started = time.time()
    if args.pretrained_weights:
        pretrainer.load_weights(args.pretrained_weights)
    else:
        pretrainer.fit(captions, epochs=args.pretrain_epochs, verbose=2)
        if args.save_weights:
            pretrainer.save_weights(args.save_weights)
    pretrain_seconds = time.time() - pretrain_started
    with_image = pretrainer.evaluate(captions_test, verbose=0, return_dict=True)
    blank = pretrainer.evaluate(captions_test.map(blank_images), verbose=0, return_dict=True)

    accuracies = {"pretrained": [], "scratch": []}
    for run in range(args.finetune_seeds):
        for kind in accuracies:
            keras.utils.set_random_seed(args.seed + 100 + run)  # the same head (and scratch towers) per run
            classifier = mmzoo.build_model(args.recipe, **options)
            if kind == "pretrained":
                copied = pretrainer.initialize(classifier)  # the one-liner
                if args.freeze_image_tower:
                    mmzoo.get_image_tower(classifier).trainable = False
            accuracies[kind].append(
                finetune(classifier, vqa, vqa_validation, vqa_test, args.finetune_epochs, args.learning_rate)
            )
            print(f"fine-tuning run {run}, {kind}: vqa test accuracy {accuracies[kind][-1]:.3f}", flush=True)
    pretrained_accuracy = sum(accuracies["pretrained"]) / len(accuracies["pretrained"])
    scratch_accuracy = sum(accuracies["scratch"]) / len(accuracies["scratch"])

    results = {
        "recipe": args.recipe,
        "settings": vars(args),
        "copied_layers": copied,
        "masked_token_accuracy": {"true_image": with_image["token_accuracy"], "blank_image": blank["token_accuracy"]},
        "masked_token_loss": {"true_image": with_image["token_loss"], "blank_image": blank["token_loss"]},
        "vqa_test_accuracy_mean": {"pretrained": pretrained_accuracy, "scratch": scratch_accuracy},
        "vqa_test_accuracy_runs": accuracies,
        "pretrain_seconds": round(pretrain_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
    }
    print(f"\nmasked-token accuracy, captions test: true image {with_image['token_accuracy']:.3f}, "
          f"blank image {blank['token_accuracy']:.3f}")
    print(f"vqa test accuracy after fine-tuning on {args.fraction}% of train (mean of {args.finetune_seeds}): "
          f"pretrained {pretrained_accuracy:.3f} {accuracies['pretrained']}, "
          f"from scratch {scratch_accuracy:.3f} {accuracies['scratch']}")
    print(f"total {results['total_seconds']} s, load average {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
