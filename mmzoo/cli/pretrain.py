"""`mmzoo pretrain`: masked modelling of a recipe's towers and fusion on captions."""

import os

from mmzoo.run_files import CSV_LOG, KERAS_MODEL
from mmzoo.training import TrainingFailed


def pretrain_command(args):
    import keras

    import mmzoo
    import mmzoo.data
    from mmzoo.run_files import has_nan_loss, read_csv_log
    from mmzoo.trainers import MaskedPretrainer

    mmzoo.get_recipe(args.recipe)
    output_dir = args.output_dir or os.path.join("runs", f"pretrain_{args.recipe}")
    keras.utils.set_random_seed(args.seed)
    common = dict(image_size=args.image_size, data_dir=args.data_dir)
    captions, info = mmzoo.data.load(args.dataset, args.train_split, batch_size=args.batch_size, seed=args.seed, with_info=True, **common)
    _, target = mmzoo.data.load(args.for_dataset, "train", batch_size=args.batch_size, with_info=True, **common)
    options = target.model_kwargs()  # the fine-tuning data's classes; both datasets' words
    options["vocabulary"] = list(dict.fromkeys(list(info.vocabulary) + list(target.vocabulary)))
    model = mmzoo.build_model(args.recipe, **options)
    pretrainer = MaskedPretrainer(model, mask_rate=args.mask_rate, image_mask_rate=args.image_mask_rate, seed=args.seed)
    pretrainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    print(f"Pretraining {args.recipe} on {info.name} {args.train_split} ({info.num_examples} examples) by masked modelling "
          f"for {args.epochs} epochs; writing to {output_dir}")
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_LOG)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(csv_path)]
    pretrainer.fit(captions, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)
    if has_nan_loss(read_csv_log(csv_path)):
        raise TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    model_path = os.path.join(output_dir, KERAS_MODEL)
    model.save(model_path)
    print(f"Saved the pretrained {args.recipe} (towers and fusion pretrained, head untrained) to {model_path}")
    print(f"  fine-tune it    mmzoo train --recipe {args.recipe} --dataset {args.for_dataset} --image-size {args.image_size} --init {model_path}")
    return 0
