"""Bounded decoding: images are checked from their header (declared pixels, encoded size, format) before any
pixel is decoded, in Python (`mmzoo.images.read_image_file`) and in the graph (`mmzoo.images.decode_image`), and
only regular files are read. Every bad image here is crafted by hand."""

import os
import re
import resource
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli, images
from mmzoo.data import DataError, from_csv

BIG = 20_000  # 20,000 x 20,000 = 400 MP declared: 1.2 GB of RGB pixels if it were decoded
PIXELS = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)  # height 6, width 5
CONCAT_EXPORT = os.path.join(os.path.dirname(__file__), "fixtures", "v0_1_0", "concat_export")


def _png(width=None, height=None):
    data = bytearray(tf.io.encode_png(PIXELS).numpy())
    if width is not None:  # patch IHDR and recompute its CRC, so only the size is wrong
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _jpeg(width=None, height=None):
    data = bytearray(tf.io.encode_jpeg(PIXELS, quality=95).numpy())
    if width is not None:
        sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif(width=5, height=6, frame=None):
    """A one-colour GIF: logical screen `width` x `height`, one frame of `frame` (default the screen)."""
    frame_width, frame_height = frame or (width, height)
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame_width, frame_height, 0)
    codes = _lzw_zeros(frame_width * frame_height)
    blocks = b"".join(bytes([len(codes[i:i + 255])]) + codes[i:i + 255] for i in range(0, len(codes), 255))
    return screen + descriptor + b"\x02" + blocks + b"\x00\x3b"


def _lzw_zeros(count):
    """GIF LZW data (code size 2) for `count` pixels of colour 0: clear, one literal per pixel, end; codes of 3
    bits with a clear before the table would grow past 3 bits. Vectorised: a frame of 48 million pixels is
    written in about a second rather than a minute."""
    pairs, odd = divmod(count, 2)
    codes = np.concatenate([np.tile(np.array([4, 0, 0], np.uint8), pairs),  # clear, then two literals
                            np.array([4, 0] if odd else [], np.uint8), np.array([5], np.uint8)])  # ..., end
    bits = ((codes[:, None] >> np.arange(3, dtype=np.uint8)) & 1).astype(np.uint8).ravel()  # 3 bits, LSB first
    return np.packbits(bits, bitorder="little").tobytes()  # packbits pads the last byte with zeros


def _bmp(width=5, height=6):
    """A 24-bit BITMAPINFOHEADER BMP; rows bottom-up, padded to 4 bytes. A patched size keeps the small pixel
    array."""
    rows = b"".join(PIXELS[::-1][r][:, ::-1].tobytes() + b"\x00" * (-5 * 3 % 4) for r in range(6))
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(rows), 0, 0, 54) + header + rows


BOMBS = {
    "PNG": _png(BIG, BIG),
    "JPEG": _jpeg(BIG, BIG),
    "GIF": _gif(BIG, BIG, frame=(1, 1)),
    "BMP": _bmp(BIG, BIG),
}


def test_the_crafted_images_are_valid_at_their_true_size():
    for name, data in {"PNG": _png(), "JPEG": _jpeg(), "GIF": _gif(), "BMP": _bmp()}.items():
        assert images.declared_image_size(data) == (name, 5, 6, 30)
        assert tuple(tf.io.decode_image(data, channels=3, expand_animations=False).shape) == (6, 5, 3)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_python_check_refuses_a_header_declaring_too_many_pixels(kind):
    assert images.declared_image_size(BOMBS[kind])[1:] == (BIG, BIG, BIG * BIG)
    with pytest.raises(images.ImageFileError) as caught:
        images.check_image_bytes(BOMBS[kind], "bomb.img")
    assert str(caught.value) == (f"bomb.img declares {BIG} x {BIG} = {BIG * BIG} pixels ({kind}), more than the limit "
                                 f"of {images.MAX_IMAGE_PIXELS} (mmzoo.images.MAX_IMAGE_PIXELS)")
    assert caught.value.problem == "pixels"


def test_gif_frames_count_frame_by_frame():
    # A small screen with a frame larger than it: TF's canvas is the largest frame.
    gif = _gif(2, 2, frame=(8000, 6000))
    assert images.declared_image_size(gif)[1:] == (8000, 6000, 48_000_000)
    with pytest.raises(images.ImageFileError, match="8000 x 6000"):
        images.check_image_bytes(gif)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_decode_image_refuses_in_the_graph_fast_and_without_allocating(kind):
    decode = tf.function(lambda encoded: tf.shape(images.decode_image(encoded)))
    decode(_png())  # traced once, before timing
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        decode(BOMBS[kind])
    assert time.perf_counter() - start < 3
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown < 600 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"
    assert (f"{kind} image declares {BIG} x {BIG} = {BIG * BIG} pixels, more than the limit of "
            f"{images.MAX_IMAGE_PIXELS}") in caught.value.message


def test_decode_image_refuses_unknown_formats_and_too_many_bytes():
    decode = tf.function(lambda encoded: tf.shape(images.decode_image(encoded)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG, GIF, BMP or WebP image"):
        decode(b"hello, not an image")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"are {images.MAX_IMAGE_BYTES + 1} bytes long, more "
                       f"than the limit of {images.MAX_IMAGE_BYTES}"):
        decode(_png() + b"\0" * (images.MAX_IMAGE_BYTES + 1 - len(_png())))


def test_walks_made_to_be_slow_are_cut_short():
    jpeg = b"\xff\xd8" + b"\xff" * 100_000  # fill bytes, never a frame header
    with pytest.raises(images.ImageFileError, match=f"without a frame header .* first {images.MAX_JPEG_SEGMENTS} "):
        images.check_image_bytes(jpeg)
    gif = _gif()[:-1] + b"\x21\xfe" + b"\x01\x00" * images.MAX_GIF_BLOCKS + b"\x00\x3b"  # a comment of 1-byte blocks
    start = time.perf_counter()
    with pytest.raises(images.ImageFileError, match=f"more than {images.MAX_GIF_BLOCKS} blocks"):
        images.check_image_bytes(gif)
    assert time.perf_counter() - start < 15


def test_ordinary_images_decode_as_before():
    for data in (_png(), _jpeg(), _gif(), _bmp()):
        before = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        np.testing.assert_array_equal(images.decode_image(data).numpy(), before.numpy())
        graph = tf.function(images.decode_image)(tf.constant(data))
        np.testing.assert_array_equal(graph.numpy(), before.numpy())
    np.testing.assert_array_equal(images.decode_image(_png()).numpy(), PIXELS)


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "a character device"), (tmp_path, "a directory"), (fifo, "a FIFO")):
        with pytest.raises(images.ImageFileError, match=f"is {kind}"):
            images.read_image_file(path)
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(images.MAX_IMAGE_BYTES + 1)  # sparse: nothing written, nothing read
    with pytest.raises(images.ImageFileError, match=f"is {images.MAX_IMAGE_BYTES + 1} bytes long, more than the limit"):
        images.read_image_file(big)
    with pytest.raises(FileNotFoundError):
        images.read_image_file(tmp_path / "nope.png")


@pytest.fixture
def bad_rows_csv(tmp_path):
    (tmp_path / "good.png").write_bytes(_png())
    (tmp_path / "bomb.png").write_bytes(BOMBS["PNG"])
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    rows = ["good.png", "/dev/zero", "folder", "bomb.png", "pipe.png", "good.png"]
    path = tmp_path / "rows.csv"
    path.write_text("image,text,label\n" + "".join(f"{image},what is it,a\n" for image in rows))
    return path


@pytest.mark.parametrize("check_images", [True, False])
def test_own_data_rows_with_bad_image_files_fail_naming_file_row_and_column(bad_rows_csv, check_images):
    expected = {2: "/dev/zero (column 'image') is a character device", 3: "folder (column 'image') is a directory",
                4: f"bomb.png (column 'image') declares {BIG} x {BIG}", 5: "pipe.png (column 'image') is a FIFO"}
    if not check_images:
        del expected[4]  # not opened: refused by decode_image when the dataset is read
    done = []
    thread = threading.Thread(target=lambda: done.append(_load(bad_rows_csv, check_images, skip=True)), daemon=True)
    thread.start()
    thread.join(60)  # a FIFO opened for reading would block for ever
    assert done, "loading blocked on a device or a FIFO"
    _, info = done[0]
    assert [row for row, _ in info.skipped] == sorted(expected)
    for (row, reason), text in zip(info.skipped, (expected[row] for row in sorted(expected))):
        assert text in reason, reason
    first = min(expected)
    with pytest.raises(DataError, match=re.escape(f"rows.csv, row {first} (line {first + 1}): image file ")) as caught:
        _load(bad_rows_csv, check_images, skip=False)
    assert expected[first] in str(caught.value) and (caught.value.row, caught.value.column) == (first, "image")


def _load(path, check_images, skip):
    return from_csv(path, image_size=6, check_images=check_images, skip_bad_rows=skip, with_info=True)


def _one_line_error(capsys, code, *expected):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def test_predict_refuses_bad_image_files_in_one_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BOMBS["PNG"])
    cases = [(str(bomb), f"--image {bomb}: declares {BIG} x {BIG} = {BIG * BIG} pixels (PNG), more than the limit "
                         f"of {images.MAX_IMAGE_PIXELS}"),
             ("/dev/zero", "--image /dev/zero: is a character device, not a regular file"),
             (str(tmp_path), f"--image {tmp_path}: is a directory")]
    for image, expected in cases:
        code = cli.main(["predict", "--model", CONCAT_EXPORT, "--image", image, "--text", "what color is the circle"])
        _one_line_error(capsys, code, expected)
    good = tmp_path / "good.png"
    good.write_bytes(_png())
    assert cli.main(["predict", "--model", CONCAT_EXPORT, "--image", str(good), "--text", "what color is it"]) == 0


def test_exported_image_bytes_signature_refuses_a_bomb(tmp_path):
    model = mmzoo.build_classifier(towers={"image": "small_cnn"}, fusion=None, class_names=["a", "b"], image_size=8,
                                   fusion_units=4)
    served = mmzoo.load_exported(mmzoo.export_model(model, tmp_path / "export"))
    assert served.predict_image_bytes({"image_bytes": [_png()]})["probabilities"].shape == (1, 2)
    start = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"PNG image declares {BIG} x {BIG}"):
        served.predict_image_bytes({"image_bytes": [_png(), BOMBS["PNG"]]})
    assert time.perf_counter() - start < 5


def test_headers_that_would_hide_their_size_are_refused():
    # One stray byte after the first segment ends the segment walk; the decoder would skip it and find the frame.
    bomb = _jpeg(BIG, BIG)
    after_app0 = 4 + struct.unpack(">H", bomb[4:6])[0]
    hidden = bomb[:after_app0] + b"\x00" + bomb[after_app0:]
    with pytest.raises(images.ImageFileError, match="without a frame header"):
        images.check_image_bytes(hidden)
    with pytest.raises(tf.errors.InvalidArgumentError, match="without a frame header"):
        tf.function(images.decode_image)(tf.constant(hidden))
    # Sides whose product overflows int64 must not pass as a small (negative) number of pixels.
    assert images.declared_image_size(_png(0xC0000000, 0xC0000000))[3] > images.MAX_IMAGE_PIXELS
    with pytest.raises(images.ImageFileError, match="more than the limit"):
        images.check_image_bytes(_png(0xC0000000, 0xC0000000))
    # A 12-byte BMP core header: TensorFlow reads its sizes differently from the header's definition.
    core = bytearray(_bmp())
    core[14:18] = struct.pack("<I", 12)
    with pytest.raises(images.ImageFileError, match="is not a JPEG, PNG, GIF, BMP or WebP image"):
        images.check_image_bytes(bytes(core))
