"""Does distillation help? A small student trained with a teacher vs the same student trained on labels alone.

    python bench/distillation.py                                  # trains its own teacher, ~20-30 min on 2 cores
    python bench/distillation.py --teacher saved_models/mmzoo_train/1   # an exported teacher (e.g. `mmzoo train`)

The teacher (default: small_cnn_bilstm_attention trained on the whole vqa training split) is distilled into a
small student (small_cnn_lstm_concat at reduced widths) that sees only a fraction of the training split; the
baseline is the same student, same data, epochs and seed, with alpha=1 (labels only). Test accuracy on the full
vqa test split.

`--unlabelled N` adds a third student: distilled with alpha = 0 (the labels are not used) on the first N % of the
training split, the teacher labelling those images, for as many steps as the others take on their fraction. This
is how distillation is used when labels are scarce and images are not: the labels-only student sees `--fraction`
% of the split with labels, this one sees N % without.

`--object-epochs N` first pretrains the student's image tower to tell which object lies in each cell of its token
grid (mmzoo.trainers.objects, the object annotations of the whole training split, as `mmzoo train` does), then
freezes it for every student: what the students learn from labels or teacher is then the questions, not how to see.
`--object-weights PATH` keeps that tower, so later seeds load it instead of training it again.
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
from mmzoo.schedules import learning_rate_schedule  # noqa: E402
from mmzoo.trainers import Distiller  # noqa: E402
from mmzoo.trainers.objects import pretrain_objects  # noqa: E402

STUDENT_WIDTHS = dict(embedding_dim=32, text_units=32, fusion_units=64)


def compiled_classifier(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def pretrain_object_tower(student, args):
    """Object-grid pretraining of `student`'s image tower, as `mmzoo train` does it (Adam 3e-3 with cosine decay,
    batch 64; cached in --object-weights); the tower's weights."""
    pretrain_objects(student, "mmzoo_shapes/vqa", "train", epochs=args.object_epochs, batch_size=64, seed=args.seed,
                     learning_rate=3e-3, schedule="cosine", cache=args.object_weights, freeze=False, verbose=2)
    return mmzoo.get_image_tower(student).get_weights()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="an exported teacher (mmzoo.export_model); default: train one here")
    parser.add_argument("--teacher-recipe", default="small_cnn_bilstm_attention")
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--save-teacher", help="export the teacher trained here to this directory, for reuse")
    parser.add_argument("--student-recipe", default="small_cnn_lstm_concat")
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--fraction", type=int, default=20, help="percent of the vqa training split the student sees")
    parser.add_argument("--unlabelled", type=int, default=None,
                        help="also distil a student with alpha=0 on this percent of the split (labels unused), same steps")
    parser.add_argument("--runs", default="labels_only,distilled,unlabelled",
                        help="which students to train, comma-separated (unlabelled only with --unlabelled)")
    parser.add_argument("--object-epochs", type=int, default=0,
                        help="pretrain the student's image tower on object annotations for this many epochs, then freeze it")
    parser.add_argument("--object-weights", help="cache of that tower, a path ending in .weights.h5 (as Keras saves "
                        "weights): loaded if the file exists, else written")
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                        help="constant learning rate, or cosine decay to 0 over each student's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    started = time.time()

    load = dict(batch_size=args.batch_size, seed=args.seed)
    train, info = mmzoo.data.load("mmzoo_shapes/vqa", "train", with_info=True, **load)
    subset = mmzoo.data.load("mmzoo_shapes/vqa", f"train[:{args.fraction}%]", **load)
    test = mmzoo.data.load("mmzoo_shapes/vqa", "test", **load)

    if args.teacher:
        teacher = args.teacher
        teacher_accuracy = None
    else:
        keras.utils.set_random_seed(args.seed)
        teacher = compiled_classifier(mmzoo.build_model(args.teacher_recipe, **info.model_kwargs()), args.learning_rate)
        teacher.fit(train, epochs=args.teacher_epochs, verbose=2)
        teacher_accuracy = teacher.evaluate(test, verbose=0, return_dict=True)["accuracy"]
        print(f"teacher test accuracy {teacher_accuracy:.3f}")
        if args.save_teacher:
            print("teacher exported to", mmzoo.export_model(teacher, args.save_teacher))

    # (--runs key, result name, alpha, data, epochs)
    runs = [("labels_only", "labels_only", 1.0, subset, args.student_epochs),
            ("distilled", "distilled", args.alpha, subset, args.student_epochs)]
    if args.unlabelled:
        transfer = mmzoo.data.load("mmzoo_shapes/vqa", f"train[:{args.unlabelled}%]", **load)
        # The same number of optimizer steps as the students on `--fraction` % (epochs scale inversely).
        epochs = max(1, round(args.student_epochs * args.fraction / args.unlabelled))
        runs.append(("unlabelled", f"distilled_unlabelled_{args.unlabelled}pct", 0.0, transfer, epochs))
    wanted = set(args.runs.split(","))
    tower_weights = None
    if args.object_epochs:
        keras.utils.set_random_seed(args.seed)
        tower_weights = pretrain_object_tower(
            mmzoo.build_model(args.student_recipe, **info.model_kwargs(), **STUDENT_WIDTHS), args)
    results = {}
    for _, name, alpha, data, epochs in [run for run in runs if run[0] in wanted]:
        keras.utils.set_random_seed(args.seed + 1)  # the same initial student every time
        student = mmzoo.build_model(args.student_recipe, **info.model_kwargs(), **STUDENT_WIDTHS)
        if tower_weights is not None:
            mmzoo.get_image_tower(student).set_weights(tower_weights)
            mmzoo.get_image_tower(student).trainable = False
        distiller = Distiller(teacher, student, alpha=alpha, temperature=args.temperature, seed=args.seed)
        learning_rate = learning_rate_schedule(args.learning_rate, args.schedule, int(data.cardinality()), epochs)
        distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
        distiller.fit(data, epochs=epochs, verbose=2)
        results[name] = compiled_classifier(student, args.learning_rate).evaluate(test, verbose=0, return_dict=True)[
            "accuracy"
        ]
        print(f"student ({name}, alpha={alpha}) test accuracy {results[name]:.3f}")

    report = {
        "settings": vars(args),
        "teacher_test_accuracy": teacher_accuracy,
        "student_test_accuracy": results,
        "student_parameters": student.count_params(),
        "total_seconds": round(time.time() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
    }
    print(f"\nstudent on {args.fraction}% of vqa train: "
          + ", ".join(f"{name} {accuracy:.3f}" for name, accuracy in results.items())
          + f"; total {report['total_seconds']} s")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
