"""`mmzoo distill`: a student recipe trained from a teacher model's softened predictions."""

import os

from mmzoo.cli.defaults import DEFAULT_IMAGE_SIZE
from mmzoo.cli.errors import UsageError
from mmzoo.cli.models import exported_image_size, load_any_model
from mmzoo.cli.run_names import export_dir
from mmzoo.run_files import CSV_LOG, KERAS_MODEL, OBJECT_WEIGHTS
from mmzoo.training import TrainingFailed


def distill_command(args):
    import keras

    import mmzoo
    from mmzoo import training
    from mmzoo.trainers.objects import pretrain_objects

    mmzoo.get_recipe(args.student_recipe)
    teacher, kind = load_any_model(args.teacher)
    image_size = _distill_image_size(teacher, kind, args.image_size)
    output_dir = args.output_dir or os.path.join("runs", f"distill_{args.student_recipe}")
    keras.utils.set_random_seed(args.seed)
    data = training.load_data(
        args.dataset, validation_data=args.val_data, test_data=args.test_data, train_split=args.train_split,
        validation_split=args.val_split, test_split=args.test_split, data_dir=args.data_dir,
        batch_size=args.batch_size, image_size=image_size, seed=args.seed, skip_bad_rows=args.skip_bad_rows,
        encoding=args.encoding)
    for line in data.skipped:
        print(line)
    student = mmzoo.build_model(args.student_recipe, **data.info.model_kwargs())
    requested = "auto" if args.object_epochs is None else args.object_epochs
    object_epochs = training.resolve_object_epochs(requested, student, data, data_dir=args.data_dir)
    print(f"Distilling {args.teacher} into {args.student_recipe} on {data.name} ({data.num_examples} examples, "
          f"{image_size} px), alpha {args.alpha}, temperature {args.temperature}, {args.epochs} epochs; writing to {output_dir}")
    if object_epochs:
        # Seeing from the object annotations, answering from labels and teacher: without it a token-grid student
        # does not learn to find objects from 2 000 labelled examples, and no teacher helps it (docs/trainers.md).
        pretrain_objects(student, data.tfds_name, args.train_split, epochs=object_epochs, batch_size=args.batch_size,
                         image_size=image_size, seed=args.seed, data_dir=args.data_dir,
                         learning_rate=args.learning_rate, schedule=args.schedule,
                         cache=os.path.join(output_dir, OBJECT_WEIGHTS), verbose=args.verbose)
    _fit_student(args, teacher if kind == "keras" else args.teacher, student, data, output_dir)
    model_path = os.path.join(output_dir, KERAS_MODEL)
    student.save(model_path)
    export_to = export_dir(args, f"{args.student_recipe}_distilled")
    export_path = mmzoo.export_model(student, export_to) if export_to else None
    print(f"  student model   {model_path}")
    print(f"  SavedModel      {export_path or '(not exported: --no-export)'}")
    return 0


def _distill_image_size(teacher, kind, requested):
    """--image-size: the teacher's image size unless given; a different one is an error."""
    teacher_size = getattr(teacher, "image_size", None) if kind == "keras" else exported_image_size(teacher)
    if requested is None:
        return teacher_size or DEFAULT_IMAGE_SIZE  # the data at the teacher's image size
    if teacher_size and requested != teacher_size:
        raise UsageError(f"--image-size {requested}: the teacher takes {teacher_size} px images; leave --image-size out")
    return requested


def _fit_student(args, teacher, student, data, output_dir):
    """Distil `teacher` into `student`; print the student's test accuracy."""
    import keras

    from mmzoo.run_files import has_nan_loss, read_csv_log
    from mmzoo.trainers import Distiller
    from mmzoo.schedules import learning_rate_schedule

    distiller = Distiller(teacher=teacher, student=student, alpha=args.alpha, temperature=args.temperature)
    steps = data.steps_per_epoch(args.batch_size)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(args.learning_rate, args.schedule, steps, args.epochs)))
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_LOG)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(csv_path)]
    distiller.fit(data.train, validation_data=data.validation, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose,
                  shuffle=False)  # shuffled in its pipeline; Keras warns when True is passed with a tf.data dataset
    if has_nan_loss(read_csv_log(csv_path)):
        raise TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    student.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if data.test is not None:
        accuracy = student.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
        print(f"Student test accuracy: {accuracy:.4f} ({data.test_source})")
