"""`from_csv` / `from_jsonl` hold out validation rows (`validation_split`, `subset`) like Keras' directory loaders."""

import csv
import json

import pytest

from mmzoo.data import from_csv, from_jsonl
from mmzoo.data.shapes import encode_png, generate_example

COLOURS = ("red", "blue", "green", "yellow")


def _write_images_csv(folder, num_images, rows_of_image, name="data.csv"):
    """A CSV of image,text,label over `num_images` PNGs in folder/img; `rows_of_image(i)` gives image i's
    (text, label) rows."""
    (folder / "img").mkdir()
    rows = []
    for i in range(num_images):
        image = generate_example("captions", "train", i, image_size=32)["image"]
        (folder / "img" / f"{i}.png").write_bytes(encode_png(image))
        rows += [(f"img/{i}.png", text, label) for text, label in rows_of_image(i)]
    path = folder / name
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("image", "text", "label"), *rows])
    return path


@pytest.fixture
def data_file(tmp_path):
    """20 rows, each text unique ("word<i>"), so a row is known by its text."""
    return _write_images_csv(tmp_path, 20, lambda i: [(f"word{i}", COLOURS[i % 4])])


def _texts(ds):
    return [t.decode() for features, _ in ds.unbatch().as_numpy_iterator() for t in [features["text"]]]


def test_both_subsets_partition_the_rows(data_file):
    train, val, info = from_csv(data_file, validation_split=0.25, subset="both", seed=3, with_info=True)
    train_texts, val_texts = _texts(train), _texts(val)
    assert len(val_texts) == 5 and len(train_texts) == 15
    assert sorted(train_texts + val_texts) == sorted(f"word{i}" for i in range(20))
    assert info.num_examples == 15
    # The vocabulary is the training rows': a held-out row's words are unknown to the model, as in real use.
    assert set(info.vocabulary) == set(train_texts)
    assert info.class_names == ("blue", "green", "red", "yellow")  # every row's labels


def test_subsets_agree_across_calls_and_follow_the_seed(data_file):
    _, val = from_csv(data_file, validation_split=0.25, subset="both", seed=3)
    alone = from_csv(data_file, validation_split=0.25, subset="validation", seed=3)
    training = from_csv(data_file, validation_split=0.25, subset="training", seed=3, shuffle=True)
    assert _texts(alone) == _texts(val)
    assert not set(_texts(training)) & set(_texts(val))
    other = from_csv(data_file, validation_split=0.25, subset="validation", seed=4)
    assert sorted(_texts(other)) != sorted(_texts(val))


def test_labels_keep_their_ids_in_both_subsets(data_file):
    train, val, info = from_csv(data_file, validation_split=0.5, subset="both", seed=0, with_info=True)
    for ds in (train, val):
        for features, label in ds.unbatch().as_numpy_iterator():
            index = int(features["text"].decode()[4:])
            assert info.class_names[int(label)] == COLOURS[index % 4]


def test_each_subset_caches_to_its_own_files(data_file, tmp_path):
    prefix = str(tmp_path / "cache")
    train, val = from_csv(data_file, validation_split=0.25, subset="both", seed=3, cache=prefix)
    assert len(_texts(train)) == 15 and len(_texts(val)) == 5
    assert len(_texts(val)) == 5  # read back from its own cache
    names = {p.name.split(".")[0] for p in tmp_path.iterdir() if p.name.startswith("cache")}
    assert names == {"cache_training", "cache_validation"}


def test_jsonl_takes_the_same_options(data_file):
    lines = [dict(zip(("image", "text", "label"), row)) for row in csv.reader(open(data_file))][1:]
    jsonl = data_file.with_suffix(".jsonl")
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, from_json = from_jsonl(jsonl, validation_split=0.25, subset="both", seed=3)
    _, from_table = from_csv(data_file, validation_split=0.25, subset="both", seed=3)
    assert _texts(from_json) == _texts(from_table)


@pytest.mark.parametrize("options, message", [
    (dict(validation_split=1.0, subset="both"), "validation_split"),
    (dict(validation_split=-0.1, subset="both"), "validation_split"),
    (dict(validation_split="10%", subset="both"), "validation_split"),
    (dict(validation_split=0.2), "subset"),
    (dict(validation_split=0.2, subset="train"), "subset"),
    (dict(subset="validation"), "subset"),
])
def test_bad_holdout_options_are_named(data_file, options, message):
    with pytest.raises(ValueError, match=message):
        from_csv(data_file, **options)


def test_one_row_cannot_be_split(data_file, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("image,text,label\nimg/0.png,hello,red\n")
    with pytest.raises(ValueError, match="at least 2 rows"):
        from_csv(path, validation_split=0.5, subset="both")


def test_questions_about_one_image_stay_on_one_side(tmp_path):
    """Three questions per image: whole images are held out, so validation asks about no image the model saw."""
    path = _write_images_csv(tmp_path, 8, lambda i: [(f"q{i}x{j}", COLOURS[j]) for j in range(3)], "qa.csv")
    for seed in range(4):
        train, val = from_csv(path, validation_split=0.25, subset="both", seed=seed)
        train_images = {text.split("x")[0] for text in _texts(train)}
        val_images = {text.split("x")[0] for text in _texts(val)}
        assert len(_texts(val)) == 6 and len(val_images) == 2  # 25 % of 24 rows: two whole images
        assert not train_images & val_images and len(train_images | val_images) == 8
