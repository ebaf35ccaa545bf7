"""One call of `mmzoo.train`: its phases, from the strategy to the summary, and what it returns."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings

from mmzoo import distribute
from mmzoo.run_files import BACKUP_DIR, CSV_LOG, KERAS_MODEL, LOG_DIR, OBJECT_WEIGHTS, PLOT
from mmzoo.schedules import learning_rate_schedule
from mmzoo.training.data import load_data
from mmzoo.training.errors import OptionError, TrainingFailed
from mmzoo.training.model_inputs import (audio_columns, audio_length, builds_audio, data_input_kinds, declared_audio,
                                         describe_inputs, image_size_of, infer_model_kwargs, model_audio,
                                         option_audio, recipe_input_kinds, recipe_overrides, tower_name)
from mmzoo.training.object_epochs import resolve_object_epochs
from mmzoo.training.options import AUTO_VALIDATION_FRACTION, DEFAULT_COLUMNS, check_options, is_file_data
from mmzoo.training.pretrained import copy_pretrained, pretrained_vocabulary
from mmzoo.training.tower_outputs import TOWER_OUTPUT_CACHE_BYTES, tower_output_bytes, with_tower_outputs


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained full model (raw inputs; shares its backbone's weights).
        history: one dict per epoch from the CSV log (``epoch``, ``loss``, ``accuracy``, ``val_loss``, ...), the
            epochs of an interrupted earlier run included.
        test_metrics: ``{"loss", "accuracy"}`` on the test data, or None without test data.
        paths: ``output_dir``, ``keras_model``, ``export`` (None if not exported), ``csv_log``, ``plot`` (None
            without matplotlib), ``log_dir`` (TensorBoard; None without tensorboard), ``object_weights`` (None
            without object pretraining). A non-chief worker's files are removed: its paths are all None.
        is_chief: whether this process wrote the outputs (always, except on non-chief workers of a cluster).
    """

    model: object
    history: list
    test_metrics: dict | None
    paths: dict
    is_chief: bool = True


def train(model, data, *, validation_data=None, test_data=None, train_split="train", validation_split="validation",
          test_split="test", data_dir=None, image_column="image", text_column="text", audio_column="audio",
          skip_bad_rows=False,
          encoding="utf-8", epochs="auto", patience="auto", validation_fraction="auto", batch_size=32,
          image_size=None, learning_rate=1e-3,
          schedule="constant", seed=0, strategy="default", object_epochs=0, train_image_tower=False, init=None,
          model_options=None, output_dir=None, export_dir=None, callbacks=(), verbose=1, quiet=False):
    """Train `model` on `data`; what `mmzoo train` does, as a function. Returns a `TrainResult`.

    Args:
        model: a recipe name (`mmzoo.list_models()`; built from the data's classes, vocabulary and image size, plus
            `model_options`) or a classifier built with `mmzoo.build_model` (under `strategy`'s scope).
        data: a TFDS name (``"mmzoo_shapes/vqa"``) with `train_split`, `validation_split` and `test_split`
            (None: none); a .csv/.jsonl file (docs/data.md) with `validation_data` and `test_data` files; or a
            `tf.data.Dataset` of raw ``({"image", "text"}, label)`` batches with datasets as `validation_data` and
            `test_data`. `test_data` defaults to `validation_data`. `data_dir`: TFDS' data directory.
        image_column, text_column: the columns of .csv/.jsonl files (every file), as `mmzoo.data.from_csv` takes
            them: one name each gives the inputs ``"image"`` and ``"text"``; lists (``["front", "side"]``) give
            inputs named after their columns, for a model with those inputs (`model_options`' ``towers``).
        audio_column: the WAV columns of .csv/.jsonl files (`mmzoo.data.from_csv`'s default: the column "audio",
            else the columns of .wav paths; with audio, absent default image and text columns are not asked
            for). An audio input's ``sample_rate`` and ``num_samples`` come from the data, as the image size
            does: a recipe is built with the data's (the training file's most common rate and longest clip, or
            a TFDS feature's rate and declared length); a built model's, or ones given in `model_options`, are
            what a file's clips are resampled and padded to, and TFDS audio of another rate is an `OptionError`.
        skip_bad_rows, encoding: for every .csv/.jsonl file, as `mmzoo.data.from_csv` takes them: leave out bad
            rows (how many is printed, one line per file) instead of raising; the files' text encoding (the
            default reads UTF-8 with or without a byte-order mark).
        epochs: ``"auto"`` scales them to the data's size (`mmzoo.run_length.auto_epochs`: 25 for 10,000
            examples, 5 for 50,000, within 3 to 50), or a number.
        patience: early stopping (`mmzoo.run_length`): stop after this many epochs without a better validation
            accuracy, and keep the best epoch's weights (also when the run does not stop early); ``"auto"``: for a
            .csv/.jsonl file a fifth of the epochs, at least 2, else off; 0 or None: off. Needs validation data.
            After a resumed interruption it counts from the resumed epoch.
        validation_fraction: with a .csv/.jsonl file and no `validation_data`: the fraction of its rows held out
            for validation (and test, without `test_data`); ``"auto"``: 0.1.
        batch_size: the global batch, split over a strategy's replicas.
        image_size: pixels (square) the data is resized to; default the model's size or the data's own.
        learning_rate, schedule: Adam's learning rate; ``"cosine"`` decays it to 0 over all epochs (keyed on the
            optimizer's step, so a resumed run continues the same curve), ``"constant"`` keeps it.
        seed: `keras.utils.set_random_seed` and the data's shuffle; None leaves the random state as it is.
        strategy: ``"default"``, ``"mirrored"``, ``"multiworker"`` (TF_CONFIG) or a `tf.distribute.Strategy`
            (`mmzoo.distribute`). Under a multi-worker strategy every worker calls `train` with the same
            arguments; the chief writes the outputs, the others a temporary folder they remove.
        object_epochs: epochs of object-grid pretraining of the image tower on the TFDS data's object annotations
            (`mmzoo.trainers.objects.pretrain_objects`, cached in the output folder) before the rest trains with
            the tower frozen (unless `train_image_tower`); ``"auto"``: `resolve_object_epochs`.
        init: a .keras file from `mmzoo pretrain` (with a recipe name): its vocabulary is used and its weighted
            backbone layers but the head (towers, fusion) are copied, by name.
        model_options: more `mmzoo.build_model` arguments for a recipe name. ``towers``
            (``{"front": "small_cnn", "side": "small_cnn", "question": "gru"}``: each names an input of the
            data, and every column of a .csv/.jsonl file has one) replaces the recipe's image and text towers;
            the recipe still gives the fusion and the widths. A ``fusion`` other than the recipe's drops the
            recipe's ``fusion_options`` and ``text_token_embeddings`` (they belong to its fusion), and one tower
            alone is built without a fusion.
        output_dir: where the backup, logs, plot, object weights and ``model.keras`` go (default
            ``runs/<model name>``). After an interruption the same call continues from the last completed epoch.
        export_dir: SavedModel directory (`mmzoo.export_model`: the next free version), or None for no export.
        callbacks: more Keras callbacks for `fit`, after the run's own.
        verbose: `fit` verbosity (0, 1, 2). quiet: print no messages (the progress bars follow `verbose`).

    Raises:
        OptionError (a ValueError): a bad option, in one line naming it. TrainingFailed: the loss became NaN.
    """
    options = dict(locals())
    check_options(options)
    return _Training(options).run()


def _make_strategy(strategy):
    import tensorflow as tf  # importing runs nothing: a MultiWorkerMirroredStrategy can still be made after it

    if not (strategy in distribute.STRATEGIES or isinstance(strategy, tf.distribute.Strategy)):
        raise OptionError("strategy", strategy,
                          f"expected one of {', '.join(distribute.STRATEGIES)} or a tf.distribute.Strategy")
    try:
        return distribute.make_strategy(strategy)
    except ValueError as error:  # TF_CONFIG missing or malformed
        raise OptionError("strategy", strategy, str(error)) from None


class _Training:
    """One call of `train`: its phases, in the order that keeps the random operations (and so the results) of
    the same arguments the same from one version to the next."""

    def __init__(self, options):
        self.o = options
        self.say = (lambda *args: None) if options["quiet"] else print

    def run(self):
        o = self.o
        # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
        self.strategy, self.worker = _make_strategy(o["strategy"])
        self.multi_worker = distribute.is_multi_worker(self.strategy)
        self._check_model()
        self._output_dirs()
        if not self.worker.is_chief:
            self.say = lambda *args: None
        started = time.perf_counter()
        import keras

        if o["seed"] is not None:
            keras.utils.set_random_seed(o["seed"])
        if o["validation_fraction"] == "auto":
            o["validation_fraction"] = AUTO_VALIDATION_FRACTION if is_file_data(o["data"]) else 0.0
        self.data = load_data(
            o["data"], validation_data=o["validation_data"], test_data=o["test_data"], train_split=o["train_split"],
            validation_split=o["validation_split"], test_split=o["test_split"], data_dir=o["data_dir"],
            batch_size=o["batch_size"], image_size=self.image_size, seed=o["seed"], class_names=self.class_names,
            image_column=o["image_column"], text_column=o["text_column"], skip_bad_rows=o["skip_bad_rows"],
            encoding=o["encoding"], validation_fraction=o["validation_fraction"], audio_column=o["audio_column"],
            **self.audio)
        self._check_audio()
        self._resolve_run_length()
        for line in self.data.skipped:
            if o["quiet"]:
                warnings.warn(line, stacklevel=3)
            else:
                self.say(line)
        self._check_recipe_inputs()
        model, copied = self._build_model()
        self._check_inputs(model)
        self._announce(model, copied)
        self.object_epochs = self._pretrain_objects(model)
        backbone, fitted = self._compile(model)
        train, val, test = self._preprocess(model, backbone)
        log, paths = self._fit(model, fitted, train, val)
        test_metrics = self._evaluate(backbone, test)
        paths.update(self._save(model))
        if not self.worker.is_chief:
            return self._finish_non_chief(model, log, test_metrics)
        paths["plot"] = self._plot(log)
        self._summary(started, log, test_metrics, paths)
        return TrainResult(model, log, test_metrics, paths)

    def _check_audio(self):
        """The audio the model declares is the data's: one line now, naming the option, rather than a model that
        hears its data at the wrong speed. A file's clips were loaded at the declared rate and length already;
        TFDS audio cannot be resampled, and a tf.data dataset's clips are as the user made them."""
        declared, info, source = self.audio, self.data.info, self.audio_source
        data = {"sample_rate": info.sample_rate if info is not None else None,
                "num_samples": info.num_samples if info is not None else audio_length(self.data.train.element_spec[0])}
        value, whose = (self.name, f"model {self.name!r} declares") if source == "model" else (
            self.o["model_options"], "model_options declare")
        fix = "build the model with" if source == "model" else "leave out, or set,"
        for option, unit, why in (("sample_rate", " Hz", "TFDS audio cannot be resampled"),
                                  ("num_samples", " samples", "pad or crop the dataset's clips")):
            if declared.get(option) and data[option] and declared[option] != data[option]:
                raise OptionError(source, value, f"{whose} {option}={declared[option]} for its audio; the data's "
                                  f"audio has {data[option]}{unit} ({why}): {fix} {option}={data[option]}")

    def _resolve_run_length(self):
        """`epochs` and `patience` with "auto" resolved for this data (`mmzoo.run_length`)."""
        from mmzoo import run_length

        o = self.o
        if o["epochs"] == "auto":
            o["epochs"] = run_length.auto_epochs(self.data.num_examples)
        if o["patience"] == "auto":
            # A user's file: nobody tuned the run to it. TFDS data and datasets keep the epochs they were given:
            # a recipe may rest at a plateau before it learns more (docs/cli.md, the main job's seeds).
            o["patience"] = run_length.auto_patience(o["epochs"]) if is_file_data(o["data"]) else 0
        if o["patience"] and self.data.validation is None:
            self.say("No validation data: early stopping is off, and all epochs run.")
            o["patience"] = 0

    # --- before the data ---

    def _check_model(self):
        import keras

        model = self.o["model"]
        if isinstance(model, str):
            from mmzoo.recipes import recipe_task

            if recipe_task(model) != "classify":  # an unknown recipe: one line too, before any data is built
                raise OptionError("model", model, "a classifier recipe; a captioning recipe trains with task "
                                  "caption (`mmzoo train --task caption`, mmzoo.captioning.train_captioner)")
            # Class names given for the model also fix the label ids of .csv/.jsonl data.
            self.name, self.image_size = model, self.o["image_size"]
            self.class_names = (self.o["model_options"] or {}).get("class_names")
            self.audio_source = "model_options"
            self.audio = declared_audio(option_audio(self.o["model_options"] or {}), self.audio_source)
        elif isinstance(model, keras.Model):
            sizes = {m.image_size for m in getattr(model, "modalities", {}).values() if m.kind == "image"}
            # Image inputs of several sizes: the data keeps its own size, and each input's pipeline step resizes it
            # (`MultimodalClassifier.preprocess_inputs`), as the export resizes a decoded image.
            size = getattr(model, "image_size", None) if len(sizes) <= 1 else None
            if self.o["image_size"] is not None and size is not None and self.o["image_size"] != size:
                raise OptionError("image_size", self.o["image_size"], f"model {model.name!r} takes {size} px images; "
                                  "leave image_size out")
            for argument in ("init", "model_options"):
                if self.o[argument] is not None:
                    raise OptionError(argument, self.o[argument], "goes with a recipe name, not a built model")
            self.name, self.image_size = model.name, self.o["image_size"] or size
            self.class_names = getattr(model, "class_names", None)
            self.audio_source = "model"
            self.audio = declared_audio(model_audio(model), self.audio_source)
        else:
            raise OptionError("model", model, "expected a recipe name (mmzoo.list_models()) or a built classifier")

    def _output_dirs(self):
        o, worker = self.o, self.worker
        self.output_dir = worker.output_dir(os.fspath(o["output_dir"] or os.path.join("runs", self.name)))
        self.export_dir = None if o["export_dir"] is None else os.fspath(o["export_dir"])
        if not worker.is_chief and self.export_dir is not None:
            self.export_dir = os.path.join(self.output_dir, "export")
        if not worker.is_chief and not self.o["quiet"]:
            print(f"{worker.description}: training; the chief writes the outputs (this worker's backup: "
                  f"{self.output_dir})")

    # --- the model ---

    def _build_model(self):
        """(model, names of the layers copied from `init`), built in the strategy's scope."""
        import mmzoo

        o = self.o
        if not isinstance(o["model"], str):
            return o["model"], []
        pretrained = None
        if o["init"] is not None:
            from mmzoo.classifier import load_model

            pretrained = load_model(o["init"])  # before the new model: loading consumes random numbers too
        with self.strategy.scope():
            options = self._model_kwargs()
            if pretrained is not None:  # token ids must mean the same words as in pretraining
                options["vocabulary"] = pretrained_vocabulary(pretrained, o["init"])
            model = mmzoo.build_model(o["model"], **options)
            copied = copy_pretrained(pretrained, model, o["init"]) if pretrained is not None else []
        return model, copied

    def _model_kwargs(self):
        """The data's classes, vocabulary and image size, then `model_options` and what they imply for the recipe
        (`recipe_overrides`)."""
        info, model_options = self.data.info, self.o["model_options"] or {}
        if info is not None:
            options = info.model_kwargs()
        else:
            options = infer_model_kwargs(self.data.train, model_options)
            size = image_size_of(self.data.train.element_spec[0])
            if size is not None:
                options["image_size"] = size
        # Only for a recipe with an audio input: build_classifier drops audio options without one
        # (_audio_arguments), and build_model refuses arguments a task's builder does not take (captioning).
        if builds_audio(self.o["model"], model_options):
            audio = info.audio_options() if info is not None else {
                "num_samples": audio_length(self.data.train.element_spec[0])}
            options.update({key: value for key, value in audio.items() if value is not None})
        return {**options, **recipe_overrides(self.o["model"], model_options)}

    def _check_inputs(self, model):
        """The data has the model's inputs, of their kinds: one line naming both now rather than an error from
        inside `fit`. Towers given by name must match the columns of a .csv/.jsonl file exactly (a column named
        but given no tower is more likely a typo than a column to leave out)."""
        modalities = getattr(model, "modalities", None)
        if not isinstance(modalities, dict):
            return
        data_kinds = data_input_kinds(self.data)
        model_kinds = {key: modality.kind for key, modality in modalities.items()}
        wrong = [key for key, kind in model_kinds.items()
                 if key not in data_kinds or data_kinds[key] not in (None, kind)]
        towers = (self.o["model_options"] or {}).get("towers") if isinstance(self.o["model"], str) else None
        if towers is not None:
            problems = [f"the data has no input {key!r}" for key in model_kinds if key not in data_kinds]
            problems += [f"{key}={tower_name(towers.get(key))} reads {model_kinds[key]}" for key in wrong
                         if key in data_kinds]
            if is_file_data(self.o["data"]):  # columns the user named; TFDS data may have inputs to leave out
                problems += [f"no tower for {key}" for key in data_kinds if key not in model_kinds]
            if problems:
                raise OptionError("model_options['towers']", towers, "expected one tower for each input of the "
                                  f"data, of its kind: {describe_inputs(data_kinds)} ({'; '.join(problems)})"
                                  + self._column_hint())
        else:
            self._refuse_missing_inputs(model_kinds, data_kinds)
            unused = {key: kind for key, kind in data_kinds.items() if key not in model_kinds}
            if unused and is_file_data(self.o["data"]):
                hint = "; to use them, name a tower for each input (--towers)" if isinstance(self.o["model"], str) \
                    else ""
                self.say(f"Not read by {self.name}: the data's {describe_inputs(unused)}{hint}.")

    def _check_recipe_inputs(self):
        """Before building: a recipe whose inputs the data lacks is refused for that, rather than for what building
        it without them lacks (a text tower with no texts to take a vocabulary from)."""
        model_kinds = recipe_input_kinds(self.o["model"], self.o["model_options"] or {})
        if model_kinds:
            self._refuse_missing_inputs(model_kinds, data_input_kinds(self.data))

    def _refuse_missing_inputs(self, model_kinds, data_kinds):
        if any(key not in data_kinds or data_kinds[key] not in (None, kind) for key, kind in model_kinds.items()):
            what = f"recipe {self.name}" if isinstance(self.o["model"], str) else f"model {self.name!r}"
            raise OptionError("model", self.name, f"{what} takes {describe_inputs(model_kinds)}; the data has "
                              f"{describe_inputs(data_kinds)}: name a tower for each of the data's inputs in "
                              "model_options['towers'] (mmzoo train --towers)")

    def _column_hint(self):
        o = self.o
        if is_file_data(o["data"]) and not any(isinstance(o[a], (list, tuple)) for a in DEFAULT_COLUMNS):
            return ("; one image and one text column are the inputs 'image' and 'text' (lists of columns name the "
                    "inputs after their columns)")
        return ""

    def _announce(self, model, copied):
        o, data = self.o, self.data
        described = []
        if data.num_examples:
            described.append(f"{data.num_examples} examples")
        if data.info is not None:
            described.append(f"{data.info.num_classes} classes")
            if "text" in data.info.input_kinds.values():  # no words to count in audio or image data
                described.append(f"{len(data.info.vocabulary)} words")
        size = getattr(model, "image_size", None)
        if size is not None:
            height, width = (size, size) if isinstance(size, int) else size
            described.append(f"{height} px" if height == width else f"{height}x{width} px")
        audio = model_audio(model)
        if audio:
            rate, length = audio["sample_rate"][0], audio["num_samples"][0]
            described.append(f"{rate} Hz audio, {length / rate:.2f} s clips")
            columns = audio_columns(data.info) if is_file_data(o["data"]) else []
            if columns:  # found by their .wav paths, maybe: say which
                described.append(f"audio from column{'s' if len(columns) > 1 else ''} "
                                 + ", ".join(repr(column) for column in columns))
        self.say(
            f"Training {self.name} on {data.name}" + (f" ({', '.join(described)})" if described else "")
            + f" for {o['epochs']} epochs" + (f" at most (early stopping, patience {o['patience']})"
                                             if o["patience"] else "")
            + (f" with {self.worker.description}" if self.worker.kind != "default" else "")
            + f"; writing to {self.output_dir}"
        )
        if copied:
            self.say(f"Initialized {len(copied)} layers from {o['init']}: {', '.join(copied)}")

    def _pretrain_objects(self, model):
        from mmzoo.trainers.objects import pretrain_objects

        o = self.o
        epochs = resolve_object_epochs(o["object_epochs"], model, self.data, data_dir=o["data_dir"],
                                       multi_worker=self.multi_worker, from_pretrained=o["init"] is not None)
        if epochs:
            # Seeing from the object annotations first, answering from labels after: learning to see from answers
            # alone is slow (mmzoo/trainers/objects.py).
            pretrain_objects(
                model, self.data.tfds_name, o["train_split"], epochs=epochs, batch_size=o["batch_size"],
                image_size=self.image_size, seed=o["seed"], data_dir=o["data_dir"], learning_rate=o["learning_rate"],
                schedule=o["schedule"], cache=os.path.join(self.output_dir, OBJECT_WEIGHTS),
                freeze=not o["train_image_tower"], strategy=self.strategy,
                verbose=o["verbose"] if self.worker.is_chief else 0, quiet=o["quiet"] or not self.worker.is_chief)
        return epochs

    def _compile(self, model):
        """(backbone, the model `fit` runs): the feature model on cached tower outputs where the image towers are
        frozen and their outputs fit in memory, else the backbone."""
        import keras

        import mmzoo

        o = self.o
        # A tower frozen after object pretraining gives the same outputs every epoch: computed once, the rest of
        # the backbone trains on them, as long as they fit in TOWER_OUTPUT_CACHE_BYTES (examples x tokens x
        # width x 4 bytes); larger data keeps running the tower every epoch.
        towers = list(model.image_towers.values())
        self.fit_on_tower_outputs = (
            bool(self.object_epochs) and not any(tower.trainable for tower in towers) and not self.multi_worker
            and tower_output_bytes(towers, self.data.num_examples) <= TOWER_OUTPUT_CACHE_BYTES)
        with self.strategy.scope():
            backbone = mmzoo.get_backbone(model)
            fitted = mmzoo.get_feature_model(model) if self.fit_on_tower_outputs else backbone
            steps = self.data.steps_per_epoch(o["batch_size"])
            learning_rate = learning_rate_schedule(o["learning_rate"], o["schedule"], steps, o["epochs"])
            optimizer = keras.optimizers.Adam(learning_rate)
            # One optimizer for both: the same trainable weights, and the saved model keeps the state that trained
            # them. Keras' Adam, not mmzoo's fused one: the main job's measured accuracy (docs/cli.md) was obtained
            # with it.
            for compiled in {id(backbone): backbone, id(fitted): fitted}.values():
                mmzoo.compile_model(compiled, optimizer, metrics=["accuracy"],
                                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # logits
        return backbone, fitted

    def _preprocess(self, model, backbone):
        from mmzoo.preprocessing import preprocess_dataset

        data = self.data
        shard = distribute.shard_by_batch if self.multi_worker else (lambda ds: ds)
        train, val, test = (None if ds is None else shard(preprocess_dataset(model, ds))
                            for ds in (data.train, data.validation, data.test))
        distribute.patch_for_multiworker(backbone, self.strategy, train.element_spec)
        return train, val, test

    # --- fit, evaluate, save ---

    def _fit(self, model, fitted, train, val):
        """Fit, resuming from the backup; (the per-epoch log, paths of the log files)."""
        o = self.o
        os.makedirs(self.output_dir, exist_ok=True)
        backup_dir = os.path.join(self.output_dir, BACKUP_DIR)
        csv_path = os.path.join(self.output_dir, CSV_LOG)
        resume = _resume(backup_dir, csv_path, o["epochs"], self.say)
        callbacks, log_dir = self._callbacks(backup_dir, csv_path)
        if self.fit_on_tower_outputs and resume < o["epochs"]:
            self.say("Computing the frozen image tower's outputs once for all epochs.")
            train = with_tower_outputs(model, train, batch_size=o["batch_size"], shuffle_seed=o["seed"])
            val = None if val is None else with_tower_outputs(model, val, batch_size=o["batch_size"])
        # shuffle=False: the datasets are shuffled in their pipelines; Keras ignores `shuffle` for a tf.data
        # dataset, and warns about it when it is left True.
        fitted.fit(train, validation_data=val, epochs=o["epochs"], callbacks=callbacks, shuffle=False,
                   verbose=o["verbose"] if self.worker.is_chief else 0)
        from mmzoo.run_files import has_nan_loss, read_csv_log

        log = read_csv_log(csv_path)
        if has_nan_loss(log):
            raise TrainingFailed(f"the loss became NaN and training stopped; try a smaller learning rate (it was "
                                 f"{o['learning_rate']})")
        object_weights = os.path.join(self.output_dir, OBJECT_WEIGHTS) if self.object_epochs else None
        return log, {"output_dir": self.output_dir, "csv_log": csv_path, "log_dir": log_dir,
                     "object_weights": object_weights}

    def _callbacks(self, backup_dir, csv_path):
        import keras

        from mmzoo import run_length

        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            # Appending: the rows of the epochs before an interruption stay (`_resume` trimmed the rest).
            keras.callbacks.CSVLogger(csv_path, append=True),
            keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
        ]
        if self.o["patience"]:
            # In the backup's folder: removed with it when the run completes.
            best_weights = os.path.join(backup_dir, run_length.BEST_WEIGHTS)
            callbacks.append(run_length.early_stopping(self.o["patience"], verbose=int(not self.o["quiet"]),
                                                       csv_log=csv_path, best_weights=best_weights))
        if self.worker.is_chief and not self.o["quiet"]:
            callbacks.append(run_length.RemainingTime(self.say))
        log_dir = None
        if self.worker.is_chief:
            try:
                import tensorboard  # noqa: F401  (tf.summary needs it; TensorFlow 2.21 does not depend on it)
            except ImportError:
                self.say("TensorBoard logs skipped: the tensorboard package is not installed "
                         "(pip install tensorboard).")
            else:
                log_dir = os.path.join(self.output_dir, LOG_DIR)
                callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
        return callbacks + list(self.o["callbacks"] or ()), log_dir

    def _evaluate(self, backbone, test):
        # Every worker evaluates and saves: evaluation and reading some variables are collective operations that
        # all workers must join.
        if test is None:
            self.say("No test data; test accuracy not measured.")
            return None
        metrics = backbone.evaluate(test, verbose=0, return_dict=True)
        source = self.data.test_source
        if self.o["patience"] and self.data.test is self.data.validation:
            source += "; early stopping chose the epoch on them too, so this is optimistic: give test data"
        self.say(f"Test accuracy: {metrics['accuracy']:.4f} ({source}), loss {metrics['loss']:.4f}")
        return metrics

    def _save(self, model):
        import mmzoo

        model_path = os.path.join(self.output_dir, KERAS_MODEL)
        model.save(model_path)
        export_path = mmzoo.export_model(model, self.export_dir) if self.export_dir else None
        return {"keras_model": model_path, "export": export_path}

    def _finish_non_chief(self, model, log, test_metrics):
        import shutil

        shutil.rmtree(self.output_dir, ignore_errors=True)
        if not self.o["quiet"]:
            print(f"{self.worker.description}: done; removed {self.output_dir}")
        paths = dict.fromkeys(("output_dir", "keras_model", "export", "csv_log", "plot", "log_dir", "object_weights"))
        return TrainResult(model, log, test_metrics, paths, is_chief=False)

    def _plot(self, log):
        from mmzoo.run_files import plot_training_curves

        path = plot_training_curves(log, os.path.join(self.output_dir, PLOT), title=f"{self.name} on {self.data.name}")
        if path is None:
            self.say("Training curves not plotted: matplotlib is not installed (pip install matplotlib).")
        return path

    def _summary(self, started, log, test_metrics, paths):
        minutes, seconds = divmod(time.perf_counter() - started, 60)
        self.say()
        self.say(f"Done in {int(minutes)} min {seconds:.0f} s.")
        if test_metrics is not None:
            self.say(f"  test accuracy   {test_metrics['accuracy']:.2%}")
        line = _epochs_line(log, self.o["epochs"], self.o["patience"])
        if line:
            self.say(f"  epochs          {line}")
        self.say(f"  keras model     {paths['keras_model']}")
        self.say(f"  SavedModel      {paths['export'] or '(not exported)'}")
        self.say(f"  training curves {paths['plot'] or '(not plotted: matplotlib is not installed)'}")
        tensorboard = f", TensorBoard: tensorboard --logdir {paths['log_dir']}" if paths["log_dir"] else ""
        self.say(f"  logs            {paths['csv_log']}{tensorboard}")


def _epochs_line(log, epochs, patience):
    """'12 of 25 (stopped early; kept epoch 8, validation accuracy 0.9460)', or None without early stopping."""
    scores = [row.get("val_accuracy") for row in log]
    if not patience or not log or any(score is None for score in scores):
        return None
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # Keras keeps the first of equal epochs
    stopped = "stopped early; " if len(log) < epochs else ""
    return f"{len(log)} of {epochs} ({stopped}kept epoch {best + 1}, validation accuracy {scores[best]:.4f})"


def _resume(backup_dir, csv_path, epochs, say):
    """The epoch the backup continues from (0: a fresh start), said, with the CSV log trimmed to match."""
    from mmzoo.run_files import resume_epoch, trim_csv_log

    epoch = resume_epoch(backup_dir)
    if epoch >= epochs:
        # An earlier run was killed after its last epoch's backup but before it finished: nothing left to fit.
        say(f"Resuming: all {epochs} epochs were already completed; finishing the run.")
    elif epoch:
        say(f"Resuming from the backup in {backup_dir}: epoch {epoch + 1} of {epochs}.")
    trim_csv_log(csv_path, epoch)
    return epoch
