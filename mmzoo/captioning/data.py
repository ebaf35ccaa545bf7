"""Image-caption data: the bundled `mmzoo_shapes/captions`, any TFDS image + text dataset, or your own CSV/JSONL
rows of (image path, caption), several rows per image allowed; and the grouping of captions by image that the
metrics need.

    train, info = caption_dataset("captions.csv", image_size=64, with_info=True)   # columns "image", "caption"
    train, info = caption_dataset("mmzoo_shapes/captions", "train", with_info=True)
    images, references = group_by_image(caption_dataset("val.csv", batch_size=None))

Every dataset yields batches of `{"image": uint8 [B, H, W, 3], "text": string [B]}` (`pack_dataset` turns them
into teacher-forcing batches). Own files are read by `mmzoo.data.from_csv` / `from_jsonl` with no label column, so
they get the same checks (bad rows, encodings, image limits) as every other file mmzoo reads.
"""

import hashlib
import os

import numpy as np

DEFAULT_CAPTION_COLUMN = "caption"


def is_caption_file(data):
    return isinstance(data, (str, os.PathLike)) and os.fspath(data).lower().endswith((".csv", ".jsonl"))


def caption_dataset(data, split="train", *, image_column="image", caption_column=None,
                    batch_size=32, image_size=None, shuffle=None, seed=None, data_dir=None, skip_bad_rows=False,
                    encoding="utf-8", with_info=False):
    """Batches of `{"image", "text"}` from a .csv/.jsonl file (`image_column` holds image paths, relative to the
    file's folder, `caption_column` the captions, default "caption") or a TFDS name (its "image" feature and
    `caption_column`, default "text"; `split`, `data_dir`). `shuffle` defaults to True for TFDS splits starting
    with "train" and False for files.
    With `with_info`, also a `mmzoo.data.DataInfo` whose `vocabulary` is the captions' words."""
    import mmzoo.data

    if is_caption_file(data):
        reader = mmzoo.data.from_csv if os.fspath(data).lower().endswith(".csv") else mmzoo.data.from_jsonl
        return reader(data, image_column=image_column, text_column=caption_column or DEFAULT_CAPTION_COLUMN,
                      label_column=None,
                      image_size=image_size, batch_size=batch_size, shuffle=bool(shuffle), seed=seed,
                      skip_bad_rows=skip_bad_rows, encoding=encoding, with_info=with_info)
    if not isinstance(data, str):
        raise ValueError(f"`data` must be a TFDS name or a .csv/.jsonl file. Received: data={data!r}")
    return mmzoo.data.load(data, split, batch_size=batch_size, image_size=image_size, shuffle=shuffle, seed=seed,
                           data_dir=data_dir, feature_keys={"image": image_column, "text": caption_column or "text",
                                                            "label": None}, with_info=with_info)


def longest_caption(data, split="train", *, caption_column=None, data_dir=None, encoding="utf-8"):
    """The most words a caption of `data` (a .csv/.jsonl file or a TFDS name and `split`, as `caption_dataset`
    takes them) has, counted as a captioner does. Only the captions are read: no image is decoded to count words."""
    import tensorflow as tf

    from mmzoo.captioning.metrics import words

    if is_caption_file(data):
        # No image column: the rows' captions only (a row with a bad image still counts; it cannot lengthen the
        # captioner by more than its own words).
        texts = caption_dataset(data, image_column=None, caption_column=caption_column, batch_size=1024,
                                encoding=encoding, skip_bad_rows=True).map(lambda features: features["text"])
    else:
        import tensorflow_datasets as tfds

        from mmzoo.data.pipeline import get_builder

        key = caption_column or "text"
        parts = key.split("/")
        wanted = True
        for part in reversed(parts):
            wanted = {part: wanted}
        rows = get_builder(data, data_dir=data_dir).as_dataset(split=split, decoders=tfds.decode.PartialDecoding(wanted))

        def caption(row):
            for part in parts:
                row = row[part]
            return row

        texts = rows.map(caption, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    lengths = (len(words(text.decode("utf-8"))) for batch in texts.as_numpy_iterator() for text in np.atleast_1d(batch))
    return max(lengths, default=0)


def group_by_image(dataset, limit=None):
    """`(images uint8 [N, H, W, 3], references [[caption, ...] x N])` from a dataset of {"image", "text"} (batched
    or not): rows with the same pixels are one image with several reference captions, in order of first
    appearance. `limit`: stop after that many distinct images."""
    images, references, index = [], [], {}
    for features in dataset.as_numpy_iterator():
        batch_images = features["image"] if features["image"].ndim == 4 else features["image"][None]
        batch_texts = np.atleast_1d(features["text"])
        for image, text in zip(batch_images, batch_texts):
            key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
            if key not in index:
                if limit is not None and len(images) >= limit:
                    continue
                index[key] = len(images)
                images.append(image)
                references.append([])
            references[index[key]].append(text.decode("utf-8"))
        if limit is not None and len(images) >= limit and features["image"].ndim == 3:
            break
    if not images:
        raise ValueError("The dataset holds no examples.")
    return np.stack(images).astype(np.uint8), references
