"""The one way mmzoo turns an image file into the pixels a model sees.

Training data (`mmzoo.data.load`, `from_csv`, `from_jsonl`) and both signatures of an export
(`serving_default`, `serving_image_bytes`) decode with `decode_image` and resize with `resize_image`, so a
photo is seen the same way when it is trained on and when it is served.

    pixels = resize_image(decode_image(read_image_file("scene.png")), 64)   # uint8 (64, 64, 3)

Decoding is bounded: an image may be at most `MAX_IMAGE_BYTES` long and declare at most `MAX_IMAGE_PIXELS`
pixels, which its header says before any pixel is decoded. `decode_image` checks both inside the graph (so an
export refuses such a request with an InvalidArgumentError); `read_image_file` and `check_image_bytes` check them
in Python with an error naming the file. Both read the header with `declared_image_size`.
"""

import numbers
import os
import stat

import tensorflow as tf

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "ImageFileError", "check_image_bytes", "check_image_file",
           "decode_image", "declared_image_size", "read_image_file", "resize_image"]

# Pillow's decompression-bomb threshold is 89.5 MP (warning) / 179 MP (error); 40 MP is tighter because TF
# decodes in full before resizing: 40 MP is 120 MB of RGB uint8 (up to 320 MB for a 16-bit RGBA PNG during
# decoding), a 7,000 x 5,700 photo, larger than any phone or DSLR camera of 2024 but no multi-gigabyte bomb.
MAX_IMAGE_PIXELS = 40_000_000
# Long enough for any photo within MAX_IMAGE_PIXELS (a 40 MP JPEG at top quality is about 20 MB, a PNG of it
# around 60 MB at worst); short enough that a request or a file is never read without end.
MAX_IMAGE_BYTES = 64 * 2**20
# A JPEG's segments before its frame header, and a GIF's blocks, are walked one by one to find the sizes, at
# about 8 us a step. A JPEG has a few dozen segments there; encoders write GIF data in 255-byte sub-blocks, so
# 65,536 blocks hold about 16 MB of GIF data, more than a GIF within MAX_IMAGE_PIXELS needs in practice. A file
# past either is made to be slow to walk and is refused, after at most ~0.5 s.
MAX_JPEG_SEGMENTS = 4096
MAX_GIF_BLOCKS = 65_536
FORMATS = ("unknown", "PNG", "JPEG", "GIF", "BMP", "WebP")
SUPPORTED = "JPEG, PNG, GIF, BMP or WebP"


class ImageFileError(ValueError):
    """An image file or image bytes refused before decoding. `path` names them; `reason` says why, as a predicate
    ("is a directory, ...", "declares 20000 x 20000 = ... pixels ..."); `problem` is one of "file" (not a regular
    file), "size" (too many bytes), "empty", "format" (unknown), "blocks" (too slow to walk) and "pixels"."""

    def __init__(self, path, reason, problem):
        super().__init__(f"{path} {reason}")
        self.path, self.reason, self.problem = path, reason, problem


def decode_image(encoded):
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes (a scalar string tensor) -> uint8 RGB pixels (H, W, 3).

    Any bit depth becomes 8 bits (16-bit PNGs are scaled down), grey and grey+alpha become RGB, RGBA loses its
    alpha channel (no compositing), and an animated GIF gives its first frame.

    Bytes longer than `MAX_IMAGE_BYTES`, of another format, or whose header declares more than
    `MAX_IMAGE_PIXELS` pixels raise an InvalidArgumentError naming the size and the limit, before decoding.
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    with tf.control_dependencies([_check_header(encoded)]):
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def declared_image_size(encoded) -> tuple[str, int, int, int]:
    """(format, width, height, pixels) that encoded image bytes declare in their header, without decoding.

    `pixels` is what decoding allocates: width x height, or for a GIF the canvas or the sum of all frames'
    areas, whichever is larger (TF reads every frame). A JPEG with more than
    `MAX_JPEG_SEGMENTS` segments before its frame header, or a GIF with more than `MAX_GIF_BLOCKS` blocks, gives
    width = height = -1. The format is ``"unknown"`` for bytes that are none of the five.
    """
    kind, width, height, pixels = _declared_size(tf.convert_to_tensor(encoded, tf.string))
    return FORMATS[int(kind)], int(width), int(height), int(pixels)


def check_image_bytes(encoded: bytes, name="the image") -> bytes:
    """`encoded`, if within the limits; else raise `ImageFileError` naming `name`, the size and the limit."""
    if len(encoded) > MAX_IMAGE_BYTES:
        raise ImageFileError(name, _too_long(len(encoded)), "size")
    if not encoded:
        raise ImageFileError(name, "is empty", "empty")
    kind, width, height, pixels = declared_image_size(encoded)
    if kind == "unknown":
        raise ImageFileError(name, f"is not a {SUPPORTED} image (it starts with {bytes(encoded[:8])!r})", "format")
    if width < 0:
        raise ImageFileError(name, "is a " + _TOO_MANY_BLOCKS[kind == "JPEG"], "blocks")
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageFileError(name, f"declares {width} x {height} = {pixels} pixels ({kind}), more than the limit of "
                                   f"{MAX_IMAGE_PIXELS} (mmzoo.images.MAX_IMAGE_PIXELS)", "pixels")
    return encoded


def _too_long(size):
    return f"is {size} bytes long, more than the limit of {MAX_IMAGE_BYTES} (mmzoo.images.MAX_IMAGE_BYTES)"


_TOO_MANY_BLOCKS = (
    f"GIF image with more than {MAX_GIF_BLOCKS} blocks, the limit (mmzoo.images.MAX_GIF_BLOCKS)",
    f"JPEG image without a frame header (SOFn) within its first {MAX_JPEG_SEGMENTS} segments "
    "(mmzoo.images.MAX_JPEG_SEGMENTS); its size cannot be checked")
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def check_image_file(path, info=None) -> int:
    """The size of `path` if it is a regular file of at most `MAX_IMAGE_BYTES`; else `ImageFileError`
    (`FileNotFoundError` when there is no such file). Reads nothing: a device or a FIFO is never opened."""
    path = os.fspath(path)
    info = info or os.stat(path)  # follows links: a link to a regular file is fine
    if not stat.S_ISREG(info.st_mode):
        kind = next((what for test, what in _FILE_KINDS if test(info.st_mode)), "something other than a file")
        raise ImageFileError(path, f"is {kind}, not a regular file", "file")
    if info.st_size > MAX_IMAGE_BYTES:
        raise ImageFileError(path, _too_long(info.st_size), "size")
    return info.st_size


def read_image_file(path) -> bytes:
    """The bytes of an image file, checked before decoding: a regular file (no device, FIFO or directory) of at
    most `MAX_IMAGE_BYTES`, in a supported format, declaring at most `MAX_IMAGE_PIXELS` pixels. Raises
    `ImageFileError` naming the file, the size found and the limit (`FileNotFoundError` for no file)."""
    path = os.fspath(path)
    check_image_file(path)
    # Non-blocking, and checked again once open: the path may have become a FIFO since it was checked.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(descriptor, "rb") as f:
        check_image_file(path, os.fstat(f.fileno()))
        encoded = f.read(MAX_IMAGE_BYTES + 1)  # the file may have grown since
    return check_image_bytes(encoded, path)


def resize_image(images, size):
    """Resize `images` ((H, W, 3) or a batch (B, H, W, 3), any real dtype) to `size` and return uint8 pixels.

    Bilinear with antialiasing (a photo much larger than the model's size is averaged, not sampled), then
    rounded and clipped to 0..255: the result is what a uint8 image of that size holds, so a model sees the
    same numbers whether the pixels were resized before it was fed or inside its export. Images already of
    `size` are only cast (and rounded) to uint8.

    `size` is an int (square) or `(height, width)`.
    """
    size = _as_size(size)
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"`images` must be (H, W, 3) or (B, H, W, 3). Received: images with shape {images.shape}")
    static = tuple(images.shape[-3:-1])
    if static == size:
        return _to_uint8(images)

    def resized():
        return _to_uint8(tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=True))

    if None not in static:
        return resized()
    same = tf.reduce_all(tf.equal(tf.shape(images)[-3:-1], size))
    images = tf.cond(same, lambda: _to_uint8(images), resized)
    return tf.ensure_shape(images, [None] * (images.shape.rank - 3) + [*size, 3])


def _to_uint8(images):
    if images.dtype == tf.uint8:
        return images
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(images, tf.float32)), 0.0, 255.0), tf.uint8)


def _as_size(size):
    sides = [size, size] if isinstance(size, numbers.Integral) else size
    try:
        sides = list(sides)
    except TypeError:
        sides = []
    if len(sides) != 2 or not all(isinstance(side, numbers.Integral) and not isinstance(side, bool) and side > 0 for side in sides):
        raise ValueError(f"`size` must be a positive int or a (height, width) pair. Received: size={size!r}")
    return tuple(int(side) for side in sides)


# --- Reading the header inside the graph: one definition for the Python checks and the exports' signatures ---

_SCALAR_STRING = [tf.TensorSpec([], tf.string)]
_PAD = 32  # zero bytes after the data: a truncated header reads zeros


@tf.function(input_signature=_SCALAR_STRING, autograph=False)
def _check_header(encoded):
    """Asserts (InvalidArgumentError) that `encoded` is within MAX_IMAGE_BYTES, of a known format, and declares
    at most MAX_IMAGE_PIXELS pixels; returns True once they hold. Nothing is decoded."""
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    short = length <= MAX_IMAGE_BYTES
    zero = tf.constant(0, tf.int64)
    kind, width, height, pixels = tf.cond(short, lambda: _declared_size(encoded), lambda: (tf.constant(0), zero, zero, zero))
    ok = short & (kind > 0) & (width >= 0) & (pixels <= MAX_IMAGE_PIXELS)
    # The message is only built for a refusal: most images pass, and string formatting costs more than the check.
    return tf.cond(ok, lambda: tf.constant(True), lambda: _refuse(length, kind, width, height, pixels))


def _refuse(length, kind, width, height, pixels):
    """Fails with the first limit the image exceeds, in one line naming the size and the limit."""
    messages = [
        tf.strings.join(["image bytes are ", tf.strings.as_string(length), " bytes long, more than the limit of "
                         f"{MAX_IMAGE_BYTES} (mmzoo.images.MAX_IMAGE_BYTES)"]),
        tf.constant(f"image bytes are not a {SUPPORTED} image"),
        tf.gather(tf.constant(_TOO_MANY_BLOCKS), tf.cast(kind == 2, tf.int32)),
        tf.strings.join([tf.gather(tf.constant(FORMATS), kind), " image declares ", tf.strings.as_string(width), " x ",
                         tf.strings.as_string(height), " = ", tf.strings.as_string(pixels), " pixels, more than the "
                         f"limit of {MAX_IMAGE_PIXELS} (mmzoo.images.MAX_IMAGE_PIXELS)"])]
    failed = tf.stack([length > MAX_IMAGE_BYTES, kind == 0, width < 0, pixels > MAX_IMAGE_PIXELS])
    message = tf.gather(tf.stack(messages), tf.argmax(tf.cast(failed, tf.int32)))
    with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
        return tf.constant(True)


# Header fields at fixed offsets, read from the first _PAD bytes at once: (offset, bytes, "<" little/">" big endian).
_FIELDS = {"png_width": (16, 4, ">"), "png_height": (20, 4, ">"), "bmp_header": (14, 4, "<"),
           "bmp_width16": (18, 2, "<"), "bmp_height16": (20, 2, "<"), "bmp_width": (18, 4, "<"), "bmp_height": (22, 4, "<"),
           "vp8l_bits": (21, 4, "<"), "vp8_width": (26, 2, "<"), "vp8_height": (28, 2, "<"),
           "vp8x_width": (24, 3, "<"), "vp8x_height": (27, 3, "<"), "gif_width": (6, 2, "<"), "gif_height": (8, 2, "<")}


def _field_weights():
    """A (_PAD, fields) matrix: the header's bytes times it give every field of _FIELDS in one product."""
    weights = [[0] * len(_FIELDS) for _ in range(_PAD)]
    for column, (offset, count, order) in enumerate(_FIELDS.values()):
        for i in range(count):
            weights[offset + i][column] = 256 ** (i if order == "<" else count - 1 - i)
    return weights


@tf.function(input_signature=_SCALAR_STRING, autograph=False)
def _declared_size(encoded):
    """(format index into FORMATS, width, height, pixels): int32 and three int64 scalars."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(encoded, 0, _PAD), b"\0" * _PAD]), 0, _PAD)

    def starts(prefix, at=0):
        return tf.equal(tf.strings.substr(head, at, len(prefix)), prefix)

    kind = tf.constant(0)
    for index, matches in ((1, starts(b"\x89PNG\r\n\x1a\n")), (2, starts(b"\xff\xd8\xff")), (3, starts(b"GIF")),
                           (4, starts(b"BM")), (5, starts(b"RIFF") & starts(b"WEBP", 8))):
        kind = tf.where(matches, tf.constant(index), kind)
    values = tf.reduce_sum(tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)[:, None] * _field_weights(), axis=0)
    fields = {name: values[i] for i, name in enumerate(_FIELDS)}
    fields["webp_chunk"] = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 15, 1), tf.uint8)[0], tf.int64)
    sizes = [(0, 0), (fields["png_width"], fields["png_height"]), (0, 0), (0, 0), _bmp_size(fields), _webp_size(fields)]
    width, height = (tf.gather(tf.stack([_where(True, size[i], 0) for size in sizes]), kind) for i in (0, 1))
    walk = tf.equal(kind, 2) | tf.equal(kind, 3)  # JPEG and GIF: their sizes are found by walking their blocks
    width, height, pixels = tf.cond(
        walk, lambda: tf.cond(tf.equal(kind, 2), lambda: _jpeg_size(_Bytes(encoded)), lambda: _gif_size(_Bytes(encoded), fields)),
        lambda: (width, height, width * height))
    # A side over the limit is refused whatever the other: their product could overflow int64 and pass.
    pixels = tf.where((width > MAX_IMAGE_PIXELS) | (height > MAX_IMAGE_PIXELS), tf.constant(MAX_IMAGE_PIXELS + 1, tf.int64),
                      pixels)
    # A 12-byte BMP core header stores 16-bit sizes where TensorFlow's decoder reads 32-bit ones: the two would
    # disagree on the size, so such files (OS/2 1.x bitmaps, rare) are refused as unsupported.
    kind = tf.where(tf.equal(kind, 4) & tf.equal(fields["bmp_header"], 12), tf.constant(0), kind)
    return kind, width, height, pixels


def _where(condition, yes, no):
    """tf.where, with Python ints taken as int64 (all sizes and offsets here are int64)."""
    yes, no = (value if isinstance(value, tf.Tensor) else tf.constant(value, tf.int64) for value in (yes, no))
    return tf.where(condition, yes, no)


class _Bytes:
    """The bytes of a string tensor, read as unsigned integers at int64 offsets; past the end they read 0."""

    def __init__(self, encoded):
        self.raw = tf.io.decode_raw(tf.strings.join([encoded, b"\0" * _PAD]), tf.uint8)
        self.size = tf.cast(tf.strings.length(encoded), tf.int64)
        self.last = self.size + _PAD - 1

    def u8(self, at):
        return tf.cast(tf.gather(self.raw, tf.minimum(tf.cast(at, tf.int64), self.last)), tf.int64)

    def le(self, at, count):
        return sum(self.u8(at + i) * 256**i for i in range(count))

    def be16(self, at):
        return self.u8(at) * 256 + self.u8(at + 1)


def _bmp_size(fields):
    core = tf.equal(fields["bmp_header"], 12)  # BITMAPCOREHEADER: 16-bit sizes; the others: signed 32-bit

    def signed(value):
        return tf.abs(_where(value >= 2**31, value - 2**32, value))  # a negative height: stored top-down

    return (_where(core, fields["bmp_width16"], signed(fields["bmp_width"])),
            _where(core, fields["bmp_height16"], signed(fields["bmp_height"])))


def _webp_size(fields):
    chunk, bits = fields["webp_chunk"], fields["vp8l_bits"]  # "VP8 " (lossy), "VP8L" (lossless), "VP8X" (extended)
    lossless = (tf.bitwise.bitwise_and(bits, 0x3FFF) + 1, tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1)
    lossy = (tf.bitwise.bitwise_and(fields["vp8_width"], 0x3FFF), tf.bitwise.bitwise_and(fields["vp8_height"], 0x3FFF))
    extended = (fields["vp8x_width"] + 1, fields["vp8x_height"] + 1)
    return tuple(_where(chunk == ord("X"), extended[i], _where(chunk == ord("L"), lossless[i], lossy[i])) for i in (0, 1))


_SOF_MARKERS = tf.constant([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF], tf.int64)


def _jpeg_size(data):
    """The first SOFn frame header's size, found by walking the segments (and fill bytes) that precede it."""

    def more(at, steps):
        return (at < data.size) & tf.equal(data.u8(at), 0xFF) & (steps < MAX_JPEG_SEGMENTS) & ~_is_sof(data.u8(at + 1))

    def step(at, steps):
        marker = data.u8(at + 1)
        alone = tf.equal(marker, 0x01) | ((marker >= 0xD0) & (marker <= 0xD9))  # markers without a length
        return at + _where(tf.equal(marker, 0xFF), 1, _where(alone, 2, 2 + data.be16(at + 2))), steps + 1

    at, steps = tf.while_loop(more, step, (tf.constant(2, tf.int64), tf.constant(0, tf.int64)))
    found = (at < data.size) & _is_sof(data.u8(at + 1))
    width, height = _where(found, data.be16(at + 7), 0), _where(found, data.be16(at + 5), 0)
    # Not found (a stray byte ends the walk, too many segments, or the data ends): refused, since the decoder
    # would skip stray bytes and find a frame header that the walk did not see.
    return _where(found, width, -1), _where(found, height, -1), width * height


def _is_sof(marker):
    return tf.reduce_any(tf.equal(marker, _SOF_MARKERS))


def _gif_size(data, fields):
    """The canvas (the logical screen, widened to the largest frame) and the pixels of all frames: TF's decoder
    reads every frame, and sizes its canvas by the largest frame."""

    def table(flags):  # bytes of a global or local colour table
        return _where(flags >= 0x80, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7)), 0)

    def more(at, total, width, height, steps):
        return ((at < data.size) & (steps < MAX_GIF_BLOCKS) & (total <= MAX_IMAGE_PIXELS)
                & (tf.equal(data.u8(at), 0x2C) | tf.equal(data.u8(at), 0x21)))  # an image or an extension

    def block(at, total, width, height, steps):
        frame = tf.equal(data.u8(at), 0x2C)
        frame_width, frame_height = data.le(at + 5, 2), data.le(at + 7, 2)
        start = at + _where(frame, 11 + table(data.u8(at + 9)), 2)  # past the descriptor and LZW code size
        end, steps = tf.while_loop(  # the data sub-blocks: a length byte, then that many bytes; 0 ends them
            lambda at, steps: (data.u8(at) > 0) & (at < data.size) & (steps < MAX_GIF_BLOCKS),
            lambda at, steps: (at + data.u8(at) + 1, steps + 1), (start, steps + 1))
        area = _where(frame, frame_width * frame_height, 0)
        return (end + 1, total + area, _where(frame, tf.maximum(width, frame_width), width),
                _where(frame, tf.maximum(height, frame_height), height), steps)

    zero = tf.constant(0, tf.int64)
    at, total, width, height, steps = tf.while_loop(more, block, (13 + table(data.u8(10)), zero, fields["gif_width"], fields["gif_height"], zero))
    cut = (steps >= MAX_GIF_BLOCKS) & (total <= MAX_IMAGE_PIXELS)
    return _where(cut, -1, width), _where(cut, -1, height), tf.maximum(width * height, total)
