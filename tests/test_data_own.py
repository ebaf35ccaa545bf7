"""Tests of `mmzoo.data.from_csv` / `from_jsonl` on a tiny folder of PNGs the tests write themselves."""

import csv
import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo.data
from mmzoo.data import DataError, from_csv, from_jsonl
from mmzoo.data.shapes import encode_png, generate_example

ROWS = [  # image, text, label
    ("img/0.png", "what color is the circle?", "red"),
    ("img/1.png", "what color is the square?", "blue"),
    ("img/2.png", "is there a red circle?", "yes"),
    ("img/3.png", "what color is the triangle?", "red"),
    ("img/4.png", "Is there a BLUE square?", "no"),
]


def _write_images(folder, n=5, size=32):
    (folder / "img").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        image = generate_example("captions", "train", i, image_size=size)["image"]
        (folder / "img" / f"{i}.png").write_bytes(encode_png(image))
        images.append(image)
    return images


def _write_csv(path, rows, header=("image", "text", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_jsonl(path, rows, keys=("image", "text", "label")):
    path.write_text("".join(json.dumps(dict(zip(keys, row))) + "\n" for row in rows))
    return path


@pytest.fixture
def folder(tmp_path):
    images = _write_images(tmp_path)
    return tmp_path, images


def test_csv_gives_the_model_format_and_info(folder):
    root, images = folder
    ds, info = from_csv(_write_csv(root / "train.csv", ROWS), batch_size=2, with_info=True)
    assert ds.element_spec == (
        {"image": tf.TensorSpec((None, 32, 32, 3), tf.uint8), "text": tf.TensorSpec((None,), tf.string)},
        tf.TensorSpec((None,), tf.int64))
    batches = list(ds.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[0][0]["image"][1], images[1])  # unshuffled: file order, exact pixels
    assert batches[0][0]["text"][0] == b"what color is the circle?"
    assert info.class_names == ("blue", "no", "red", "yes")
    labels = np.concatenate([b[1] for b in batches])
    assert [info.class_names[i] for i in labels] == [r[2] for r in ROWS]
    assert info.image_size == (32, 32) and info.num_examples == 5 and info.num_skipped == 0
    # Same tokenization as the model's TextVectorization: lower-cased, punctuation stripped.
    assert "blue" in info.vocabulary and "BLUE" not in info.vocabulary and "circle?" not in info.vocabulary
    layer = keras.layers.TextVectorization(standardize="lower_and_strip_punctuation")
    layer.adapt([r[1] for r in ROWS])
    assert list(info.vocabulary) == layer.get_vocabulary(include_special_tokens=False)
    assert info.model_kwargs() == {"num_classes": 4, "class_names": list(info.class_names),
                                   "vocabulary": list(info.vocabulary), "image_size": 32}


def test_jsonl_matches_csv_and_resizes(folder):
    root, _ = folder
    a = from_csv(_write_csv(root / "d.csv", ROWS), batch_size=None, image_size=16)
    b = from_jsonl(_write_jsonl(root / "d.jsonl", ROWS), batch_size=None, image_size=(16, 16))
    for (fa, la), (fb, lb) in zip(a.as_numpy_iterator(), b.as_numpy_iterator()):
        assert fa["image"].shape == (16, 16, 3) and fa["image"].dtype == np.uint8
        np.testing.assert_array_equal(fa["image"], fb["image"])
        assert fa["text"] == fb["text"] and la == lb


def test_image_root_absolute_paths_and_unlabelled(folder, tmp_path_factory):
    root, _ = folder
    elsewhere = tmp_path_factory.mktemp("csv")
    rows = [(r[0], r[1]) for r in ROWS]
    ds = from_csv(_write_csv(elsewhere / "x.csv", rows, header=("image", "text")), label_column=None,
                  image_root=root, batch_size=5)
    features = next(iter(ds))
    assert isinstance(features, dict) and features["image"].shape == (5, 32, 32, 3)
    absolute = [(str(root / r[0]), r[1], r[2]) for r in ROWS]
    assert next(iter(from_csv(_write_csv(elsewhere / "y.csv", absolute), batch_size=5)))[1].shape == (5,)


def test_other_column_names_and_numeric_labels(folder):
    root, _ = folder
    rows = [(r[0], r[1], str(i % 3 * 5)) for i, r in enumerate(ROWS)]  # labels "0", "5", "10"
    path = _write_csv(root / "q.csv", rows, header=("file", "question", "answer"))
    _, info = from_csv(path, image_column="file", text_column="question", label_column="answer", with_info=True)
    assert info.class_names == ("0", "5", "10")  # numeric order, not "0", "10", "5"


def test_shuffle_is_seeded_and_reshuffles_each_epoch(folder):
    root, _ = folder
    rows = ROWS * 8
    path = _write_csv(root / "many.csv", rows)

    def order(ds):
        return [t for b in ds.as_numpy_iterator() for t in b[0]["text"].tolist()]

    a = from_csv(path, shuffle=True, seed=3, batch_size=8)
    b = from_csv(path, shuffle=True, seed=3, batch_size=8)
    first = order(a)
    assert first == order(b)
    assert sorted(first) == sorted(r[1].encode() for r in rows)
    assert order(a) != first  # a new order every epoch


def test_validation_file_uses_training_class_names(folder):
    root, _ = folder
    _, info = from_csv(_write_csv(root / "train.csv", ROWS), with_info=True)
    val = from_csv(_write_csv(root / "val.csv", ROWS[:2]), class_names=info.class_names, batch_size=2)
    assert next(iter(val))[1].numpy().tolist() == [info.class_names.index("red"), info.class_names.index("blue")]
    with pytest.raises(DataError, match=r"val2\.csv, row 2 \(line 3\): label 'green' is not one of the 4"):
        from_csv(_write_csv(root / "val2.csv", [ROWS[0], ("img/1.png", "q", "green")]),
                 class_names=info.class_names)


def test_missing_image_names_file_and_row(folder):
    root, _ = folder
    rows = ROWS[:2] + [("img/nope.png", "where?", "red")]
    with pytest.raises(DataError, match=r"m\.csv, row 3 \(line 4\): image file not found: .*nope\.png") as e:
        from_csv(_write_csv(root / "m.csv", rows))
    assert e.value.row == 3 and e.value.path.endswith("m.csv")


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncate"], ids=["empty", "text", "truncated"])
def test_corrupt_image_names_file_and_row(folder, content):
    root, _ = folder
    good = (root / "img" / "0.png").read_bytes()
    (root / "img" / "bad.png").write_bytes(good[: len(good) // 2] if content == "truncate" else content)
    rows = [ROWS[0], ("img/bad.png", "what?", "red")]
    with pytest.raises(DataError, match=r"c\.jsonl, row 2 \(line 2\): image file is (corrupt|empty).*bad\.png"):
        from_jsonl(_write_jsonl(root / "c.jsonl", rows))


def test_skip_bad_rows_reports_how_many(folder):
    root, _ = folder
    (root / "img" / "bad.png").write_bytes(b"garbage")
    rows = ROWS + [("img/missing.png", "a", "red"), ("img/bad.png", "b", "red"), ("img/0.png", "c", "")]
    with pytest.warns(UserWarning, match=r"Skipped 3 of 8 rows of .*s\.csv"):
        ds, info = from_csv(_write_csv(root / "s.csv", rows), skip_bad_rows=True, batch_size=None,
                            with_info=True)
    assert info.num_skipped == 3 and [row for row, _ in info.skipped] == [6, 7, 8]
    assert "not found" in info.skipped[0][1] and "corrupt" in info.skipped[1][1] and "empty label" in info.skipped[2][1]
    assert info.num_examples == 5 and len(list(ds)) == 5


def test_all_rows_bad_is_an_error(folder):
    root, _ = folder
    with pytest.raises(DataError, match="all 1 rows are bad"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from_csv(_write_csv(root / "a.csv", [("img/missing.png", "a", "red")]), skip_bad_rows=True)


def test_empty_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        from_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"header\.csv has no data rows"):
        from_csv(_write_csv(tmp_path / "header.csv", []))
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl has no data rows"):
        from_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        from_csv(tmp_path / "nothere.csv")


def test_missing_columns(folder):
    root, _ = folder
    path = _write_csv(root / "cols.csv", [(r[0], r[1], r[2]) for r in ROWS], header=("img", "text", "label"))
    with pytest.raises(DataError, match=r"cols\.csv has no column 'image'.*\['img', 'text', 'label'\].*image_column"):
        from_csv(path)
    jpath = _write_jsonl(root / "cols.jsonl", ROWS, keys=("image", "question", "label"))
    with pytest.raises(DataError, match=r"cols\.jsonl has no column 'text'.*text_column"):
        from_jsonl(jpath)


def test_bad_jsonl_lines_and_values(folder):
    root, _ = folder
    path = root / "b.jsonl"
    path.write_text(json.dumps(dict(zip(("image", "text", "label"), ROWS[0]))) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"b\.jsonl, row 2 \(line 3\): not valid JSON"):
        from_jsonl(path)
    path.write_text(json.dumps({"image": "img/0.png", "text": None, "label": "red"}) + "\n")
    with pytest.raises(DataError, match=r"row 1 \(line 1\): no text"):
        from_jsonl(path)


def test_different_image_sizes_need_image_size(folder):
    root, _ = folder
    big = generate_example("vqa", "train", 0, image_size=48)["image"]
    (root / "img" / "big.png").write_bytes(encode_png(big))
    path = _write_csv(root / "sizes.csv", [ROWS[0], ("img/big.png", "x", "red")])
    with pytest.raises(ValueError, match="different sizes.*image_size"):
        from_csv(path)
    ds = from_csv(path, image_size=40, batch_size=2)
    assert next(iter(ds))[0]["image"].shape == (2, 40, 40, 3)


def test_check_images_false_needs_image_size_and_checks_existence(folder):
    root, _ = folder
    path = _write_csv(root / "f.csv", ROWS + [("img/missing.png", "x", "red")])
    with pytest.raises(ValueError, match="image_size"):
        from_csv(path, check_images=False)
    with pytest.raises(DataError, match="row 6.*not found"):
        from_csv(path, check_images=False, image_size=32)


def test_public_names():
    for name in ("load", "from_csv", "from_jsonl", "DataInfo", "DataError", "shapes_config", "adapt_vocabulary"):
        assert hasattr(mmzoo.data, name), name
    assert os.fspath(DataError("x", path="p").path) == "p"


def test_several_columns_each_checked_and_named_in_errors(folder):
    root, images = folder
    rows = [("img/0.png", "img/1.png", "q one", "red"), ("img/2.png", "img/nope.png", "q two", "blue")]
    path = _write_jsonl(root / "views.jsonl", rows, keys=("front", "side", "question", "label"))
    with pytest.raises(DataError, match=r"views\.jsonl, row 2 \(line 2\): image file not found: .*nope\.png "
                                        r"\(column 'side'\)") as e:
        from_jsonl(path, image_column=["front", "side"], text_column=["question"])
    assert (e.value.row, e.value.column) == (2, "side")
    with pytest.warns(UserWarning, match="Skipped 1 of 2 rows"):
        ds, info = from_jsonl(path, image_column=["front", "side"], text_column=["question"], skip_bad_rows=True,
                              batch_size=None, with_info=True)
    (features, label), = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(features["side"], images[1])
    assert features["question"] == b"q one" and info.num_skipped == 1
    with pytest.raises(DataError, match=r"has no column 'back'.*image_column=\.\.\."):
        from_jsonl(path, image_column=["front", "back"], text_column="question")


def test_image_only_and_text_only_columns(folder):
    root, images = folder
    ds, info = from_csv(_write_csv(root / "i.csv", [(r[0], r[2]) for r in ROWS], header=("image", "label")),
                        text_column=None, batch_size=5, with_info=True)
    features, _ = next(iter(ds))
    assert sorted(features) == ["image"] and dict(info.input_kinds) == {"image": "image"}
    assert "vocabulary" not in info.model_kwargs() and info.model_kwargs()["image_size"] == 32
    ds, info = from_csv(_write_csv(root / "t.csv", [(r[1], r[2]) for r in ROWS], header=("question", "label")),
                        image_column=[], text_column=["question"], batch_size=5, with_info=True)
    features, _ = next(iter(ds))
    assert sorted(features) == ["question"] and info.image_size is None and "image_size" not in info.model_kwargs()


@pytest.mark.parametrize(
    "columns, message",
    [
        ({"image_column": 3}, r"`image_column` must be a column name or a list of column names. Received: image_column=3"),
        ({"text_column": ["text", ""]}, r"`text_column` must be a column name or a list"),
        ({"image_column": None, "text_column": []}, r"Name at least one image or text column"),
        ({"image_column": ["image", "image"]}, r"\['image'\] is named more than once"),
        ({"text_column": "label"}, r"\['label'\] is named more than once"),
        ({"label_column": ""}, r"`label_column` must be a column name or None"),
    ],
)
def test_column_arguments_are_checked(folder, columns, message):
    root, _ = folder
    with pytest.raises(ValueError, match=message):
        from_csv(_write_csv(root / "c.csv", ROWS), **columns)


# === Files as other programs write them: encodings, long values, spreadsheet quirks ===

ACCENTED = [  # image, text, label: texts outside ASCII, as spreadsheets in other languages hold them
    ("img/0.png", "quelle est la forme à gauche ?", "rouge"),
    ("img/1.png", "¿de qué color es el círculo?", "bleu"),
    ("img/2.png", "größer als das Quadrat?", "rouge"),
]


def _csv_bytes(rows, header=("image", "text", "label"), encoding="utf-8", newline="\n", delimiter=","):
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(row) for row in rows]
    return "".join(line + newline for line in lines).encode(encoding)


def _texts_and_labels(ds, info):
    return [(f["text"].decode(), info.class_names[label]) for f, label in ds.as_numpy_iterator()]


def _load(path, **kwargs):
    loader = from_jsonl if str(path).endswith(".jsonl") else from_csv
    return loader(path, batch_size=None, with_info=True, **kwargs)


def test_utf8_with_or_without_a_byte_order_mark_reads_the_same(folder):
    root, _ = folder
    expected = [(text, label) for _, text, label in ACCENTED]
    jsonl = "".join(json.dumps(dict(zip(("image", "text", "label"), row)), ensure_ascii=False) + "\n"
                    for row in ACCENTED).encode()
    for name, data in [("plain.csv", _csv_bytes(ACCENTED)), ("bom.csv", b"\xef\xbb\xbf" + _csv_bytes(ACCENTED)),
                       ("plain.jsonl", jsonl), ("bom.jsonl", b"\xef\xbb\xbf" + jsonl)]:
        (root / name).write_bytes(data)
        assert _texts_and_labels(*_load(root / name)) == expected, name
        assert _texts_and_labels(*_load(root / name, encoding="UTF8")) == expected, name  # any spelling of UTF-8


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-8-sig"])
def test_other_encodings_are_read_with_encoding(folder, encoding):
    root, _ = folder
    path = root / "enc.csv"
    path.write_bytes(_csv_bytes(ACCENTED, encoding=encoding))  # utf-16 and utf-8-sig write a byte-order mark
    assert _texts_and_labels(*_load(path, encoding=encoding)) == [(t, label) for _, t, label in ACCENTED]
    jsonl = root / "enc.jsonl"
    jsonl.write_bytes("".join(json.dumps(dict(zip(("image", "text", "label"), row)), ensure_ascii=False) + "\n"
                              for row in ACCENTED).encode(encoding))
    assert _texts_and_labels(*_load(jsonl, encoding=encoding)) == [(t, label) for _, t, label in ACCENTED]


def test_an_undecodable_value_fails_its_row_naming_file_row_column_and_encoding(folder):
    root, _ = folder
    path = root / "latin.csv"
    path.write_bytes(_csv_bytes(ROWS[:2]) + _csv_bytes(ACCENTED[:1], header=(), encoding="latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv, row 3 \(line 4\): the text in column 'text' is not valid "
                                        r"utf-8 text \(byte 0xe0\); pass the file's encoding, e\.g\. "
                                        r"encoding='cp1252'.*skip_bad_rows=True") as e:
        _load(path)
    assert (e.value.row, e.value.column) == (3, "text") and "\n" not in str(e.value)
    with pytest.warns(mmzoo.data.own_data.SkippedRowsWarning, match=r"Skipped 1 of 3 rows of .*latin\.csv: row 3"):
        ds, info = _load(path, skip_bad_rows=True)
    assert [t for t, _ in _texts_and_labels(ds, info)] == [r[1] for r in ROWS[:2]]
    path.write_bytes(_csv_bytes(ROWS[:1]) + b"img/1.png,\x81 q,red\n")  # 0x81: undefined in cp1252 too
    with pytest.raises(DataError, match=r"row 2 \(line 3\): the text in column 'text' is not valid cp1252 text "
                                        r"\(byte 0x81\); pass the file's encoding \(encoding=\.\.\.\)"):
        _load(path, encoding="cp1252")
    jsonl = root / "latin.jsonl"
    jsonl.write_bytes(b'{"image": "img/0.png", "text": "a", "label": "red"}\n'
                      + '{"image": "img/1.png", "text": "à", "label": "red"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.jsonl, row 2 \(line 2\): the text in column 'text' is not valid"):
        _load(jsonl)
    with pytest.warns(UserWarning, match="Skipped 1 of 2 rows"):
        assert _load(jsonl, skip_bad_rows=True)[1].num_examples == 1


def test_files_that_cannot_be_decoded_are_refused_whole(folder):
    root, _ = folder
    path = root / "wide.csv"
    path.write_bytes(_csv_bytes(ROWS, encoding="utf-16"))
    for kwargs in ({}, {"encoding": "latin-1"}, {"skip_bad_rows": True}):
        with pytest.raises(DataError, match=r"wide\.csv starts with a UTF-16 byte-order mark, but is read as "
                                            r"\S+: pass encoding='utf-16'\."):
            _load(path, **kwargs)
    path.write_bytes(_csv_bytes(ROWS, encoding="utf-16") + b"A")  # cut in the middle of a character
    with pytest.raises(DataError, match=r"wide\.csv cannot be read as utf-16 text after line \d+ \(truncated data\)"):
        _load(path, encoding="utf-16", skip_bad_rows=True)
    path.write_bytes(b"\xef\xbb\xbf" + _csv_bytes(ROWS))
    with pytest.raises(DataError, match=r"starts with a UTF-8 byte-order mark, but is read as cp1252: "
                                        r"pass encoding='utf-8'"):
        _load(path, encoding="cp1252")
    path.write_bytes("image,texte à,label\n".encode("latin-1") + b"img/0.png,q,red\n")
    with pytest.raises(DataError, match=r"wide\.csv, line 1: the header is not valid utf-8 text \(byte 0xe0\)"):
        _load(path, skip_bad_rows=True)
    with pytest.raises(ValueError, match=r"`encoding` must be a text encoding Python knows.*encoding='klingon'"):
        _load(path, encoding="klingon")


def test_long_values_are_read_and_the_csv_field_limit_restored(folder, monkeypatch):
    root, _ = folder
    limit = csv.field_size_limit()
    long_text = "word " * 60_000  # 300 000 characters: over csv's default limit of 131 072
    path = _write_csv(root / "long.csv", [(ROWS[0][0], long_text, "red"), ROWS[1]])
    assert [t for t, _ in _texts_and_labels(*_load(path))] == [long_text, ROWS[1][1]]
    assert csv.field_size_limit() == limit
    # Over MAX_FIELD_CHARS: the row is bad, named with its column; quoted across lines, the next row still reads.
    monkeypatch.setattr(mmzoo.data.own_data, "MAX_FIELD_CHARS", 1000)
    path = _write_csv(root / "long.csv", [ROWS[0], (ROWS[1][0], "x" * 600 + "\n" + "y" * 600, "red"), ROWS[2]])
    with pytest.raises(DataError, match=r"long\.csv, row 2 \(lines 3-4\): the text in column 'text' is 1,201 "
                                        r"characters long, over the limit of 1,000") as e:
        _load(path)
    assert e.value.column == "text" and csv.field_size_limit() == limit
    with pytest.warns(UserWarning, match="Skipped 1 of 3 rows"):
        ds, info = _load(path, skip_bad_rows=True)
    assert [t for t, _ in _texts_and_labels(ds, info)] == [ROWS[0][1], ROWS[2][1]]
    assert csv.field_size_limit() == limit


def test_spreadsheet_quirks_crlf_spaces_quoted_newlines_blank_rows_semicolons(folder):
    root, _ = folder
    expected = [(r[1], r[2]) for r in ROWS[:3]]
    path = root / "q.csv"
    path.write_bytes(_csv_bytes(ROWS[:3], newline="\r\n"))
    assert _texts_and_labels(*_load(path)) == expected
    path.write_bytes(b" image ; text ;label \r\n" + _csv_bytes(ROWS[:3], header=(), delimiter=";")
                     + b";;\r\n\r\n")  # a header with spaces, an empty spreadsheet row, a blank line
    assert _texts_and_labels(*_load(path, delimiter=";")) == expected
    # Spaces after a delimiter, as hand-written files have them, are not part of the value: a quote after them opens.
    path.write_bytes(b'image,text,label\nimg/0.png, "first line\r\nsecond, line",red\nimg/1.png , "say ""hi""", red \n')
    assert _texts_and_labels(*_load(path)) == [("first line\r\nsecond, line", "red"), ('say "hi"', "red")]
    path.write_bytes(b'image,text,label\nimg/0.png,"first line\nsecond line",red\nimg/nope.png,x,red\n')
    with pytest.warns(UserWarning, match="Skipped 1 of 2 rows"):
        ds, info = _load(path, skip_bad_rows=True)
    assert _texts_and_labels(ds, info) == [("first line\nsecond line", "red")]
    assert info.skipped[0][0] == 2  # the second data row, on line 4
    with pytest.raises(DataError, match=r"q\.csv, row 2 \(line 4\): image file not found"):
        _load(path)


def test_header_problems_and_row_length_are_one_line_errors(folder):
    root, _ = folder
    path = root / "h.csv"
    for data, message in [
        (b"", r"h\.csv is empty: it needs a header row and at least one data row\."),
        (b"\xef\xbb\xbf\r\n\r\n", r"h\.csv is empty"),
        (b"image,text,label\r\n", r"h\.csv has no data rows\."),
        (b"image,text,text,label\nimg/0.png,a,b,red\n",
         r"h\.csv: the header names a column twice \('text' at columns \[2, 3\]\); rename one\."),
        (_csv_bytes(ROWS, delimiter=";"), r"h\.csv has no column 'image', 'text', 'label'\. Its columns are "
                                          r"\['image;text;label'\]"),
        (b"image,text,label\nimg/0.png,what, if anything,red\n",
         r"h\.csv, row 1 \(line 2\): 4 values for the header's 3 columns \(a value holding the delimiter ',' must "
         r"be quoted\)"),
    ]:
        path.write_bytes(data)
        with pytest.raises(DataError, match=message) as e:
            _load(path)
        assert "\n" not in str(e.value)
    # Doubled columns that are not read, unnamed trailing columns and empty trailing values are harmless.
    path.write_bytes(b"image,note,note,text,label,,\nimg/0.png,a,b,q,red,,\nimg/1.png,a,b,r,blue\n")
    assert _texts_and_labels(*_load(path)) == [("q", "red"), ("r", "blue")]


def test_json_values_that_are_not_text_fail_their_row(folder):
    root, _ = folder
    path = root / "s.jsonl"
    path.write_text('{"image": "img/0.png", "text": "\\ud800 lone", "label": "red"}\n')
    with pytest.raises(DataError, match=r"row 1 \(line 1\): the text in column 'text' holds a lone surrogate "
                                        r"\(U\+D800\), which is not text"):
        _load(path)


@pytest.mark.xdist_group("cli")
def test_cli_train_skip_bad_rows(folder, tmp_path, capsys):
    from mmzoo import cli

    root, _ = folder
    rows = [ROWS[i % 5] for i in range(8)]
    path = root / "bad.csv"
    path.write_bytes(_csv_bytes(rows[:3]) + "img/3.png,une forme à droite,red\n".encode("latin-1")
                     + _csv_bytes(rows[3:], header=()))
    argv = ["train", "--dataset", str(path), "--recipe", "small_cnn_lstm_concat", "--epochs", "1", "--batch-size",
            "4", "--image-size", "32", "--verbose", "0", "--no-export", "--output-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"mmzoo train: error: {path}, row 4 (line 5): the text in column 'text' is not valid utf-8")
    assert "--encoding cp1252" in err and "--skip-bad-rows" in err and "=True" not in err, err
    assert cli.main(argv + ["--skip-bad-rows"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("Skipped")] == [
        f"Skipped 1 of 9 rows of {path}: row 4: the text in column 'text' is not valid utf-8 text (byte 0xe0); pass "
        "the file's encoding, e.g. encoding='cp1252' (Windows) or encoding='latin-1'"]
    assert (tmp_path / "run" / "model.keras").exists()
    assert cli.main(["train", "--skip-bad-rows", "--no-export"]) == 2
    assert capsys.readouterr().err.strip() == "mmzoo train: error: --skip-bad-rows: goes with .csv/.jsonl data"
