"""Caption generation inside the graph: the encoder runs once, then a `tf.while_loop` runs the decoder one token
at a time with its cache (a recurrent state, or a Transformer's keys and values), for the whole batch at once,
and stops when every caption has ended or `max_length` tokens are out.

`generation_function(captioner, ...)` builds the pure-TensorFlow function both `ImageCaptioner.generate` (through
a `tf.function`) and the export's signatures (mmzoo/captioning/export.py) call, so what a user tries in Python is
what the SavedModel serves. Greedy decoding takes the most likely token; beam search keeps the `num_beams` most
likely partial captions and returns the one with the best log-probability per token (`length_penalty` 1.0; 0.0
ranks by the plain sum, which favours short captions).
"""

import numpy as np
import tensorflow as tf

from mmzoo.captioning.packing import END_ID, OOV_ID, PAD_ID, START_ID

STRATEGIES = ("greedy", "beam")
_NEVER = -1e9  # log-probability given to tokens that may not be generated (padding, unknown, start)


def check_options(captioner, max_length, strategy, num_beams, length_penalty):
    """The generation options, checked: (max_length, strategy, num_beams, length_penalty)."""
    if max_length is None:
        max_length = captioner.max_length
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= captioner.max_length:
        raise ValueError(f"`max_length` must be an integer in [1, {captioner.max_length}] (the captioner's "
                         f"max_length). Received: max_length={max_length!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {', '.join(STRATEGIES)}. Received: strategy={strategy!r}")
    if not isinstance(num_beams, int) or isinstance(num_beams, bool) or num_beams < 1:
        raise ValueError(f"`num_beams` must be a positive integer. Received: num_beams={num_beams!r}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) or length_penalty < 0:
        raise ValueError(f"`length_penalty` must be a number >= 0. Received: length_penalty={length_penalty!r}")
    return max_length, strategy, (num_beams if strategy == "beam" else 1), float(length_penalty)


def generation_function(captioner, *, max_length=None, strategy="greedy", num_beams=4, length_penalty=1.0):
    """A function `pixels (batch, size, size, 3) float32 -> {"caption", "token_ids", "log_probability"}` made of
    TensorFlow ops only (callable in a `tf.function` or an export's endpoint)."""
    max_length, strategy, num_beams, length_penalty = check_options(captioner, max_length, strategy, num_beams,
                                                                    length_penalty)
    words = tf.constant(captioner.id_to_token)

    def run(pixels):
        image_tokens = captioner.encoder(pixels, training=False)
        if strategy == "greedy":
            token_ids, log_probability = _greedy(captioner.decoder, image_tokens, max_length)
        else:
            token_ids, log_probability = _beam(captioner.decoder, image_tokens, max_length, num_beams, length_penalty)
        return {"caption": detokenize(token_ids, words), "token_ids": token_ids, "log_probability": log_probability}

    return run


def generate(captioner, images, *, max_length=None, strategy="greedy", num_beams=4, length_penalty=1.0):
    """`ImageCaptioner.generate`: numpy outputs, captions as str. One traced `tf.function` per set of options,
    kept on the captioner."""
    options = check_options(captioner, max_length, strategy, num_beams, length_penalty)
    function = captioner._generators.functions.get(options)
    if function is None:
        run = generation_function(captioner, max_length=options[0], strategy=options[1], num_beams=options[2],
                                  length_penalty=options[3])
        size = captioner.image_size
        function = tf.function(run, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        captioner._generators.functions[options] = function
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must be pixels of shape [batch, height, width, 3]. Received: shape {images.shape}")
    pixels = tf.cast(captioner.prepare_images(images), tf.float32)
    outputs = {name: value.numpy() for name, value in function(pixels).items()}
    outputs["caption"] = np.array([caption.decode("utf-8") for caption in outputs["caption"]], dtype=str)
    return outputs


def detokenize(token_ids, words):
    """Token ids (batch, length) -> one string per row: its words up to the end token, space-separated."""
    is_word = token_ids > END_ID
    tokens = tf.gather(words, token_ids)
    return tf.strings.reduce_join(tf.ragged.boolean_mask(tokens, is_word), axis=1, separator=" ")


def _allowed_log_probabilities(logits):
    """Log-softmax over the vocabulary, with padding, unknown and start never chosen."""
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    vocabulary_size = tf.shape(logits)[-1]
    banned = tf.reduce_sum(tf.one_hot([PAD_ID, OOV_ID, START_ID], vocabulary_size), axis=0) > 0
    return tf.where(banned[None], _NEVER, log_probabilities)


def _greedy(decoder, image_tokens, max_length):
    batch = tf.shape(image_tokens)[0]
    cache = decoder.start(image_tokens, max_length)
    columns = tf.one_hot(tf.range(max_length), max_length, dtype=tf.int32)  # writes token i into column i

    def not_done(index, previous, cache, token_ids, log_probability, finished):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    def step(index, previous, cache, token_ids, log_probability, finished):
        logits, cache = decoder.step(previous, index, cache)
        scores = _allowed_log_probabilities(logits)
        chosen = tf.argmax(scores, axis=-1, output_type=tf.int32)
        chosen = tf.where(finished, PAD_ID, chosen)
        gained = tf.gather(scores, chosen, batch_dims=1)
        log_probability += tf.where(finished, 0.0, gained)
        token_ids += chosen[:, None] * columns[index][None]
        return index + 1, chosen, cache, token_ids, log_probability, finished | tf.equal(chosen, END_ID)

    state = (tf.constant(0), tf.fill([batch], START_ID), cache, tf.zeros([batch, max_length], tf.int32),
             tf.zeros([batch], tf.float32), tf.zeros([batch], tf.bool))
    _, _, _, token_ids, log_probability, _ = tf.while_loop(not_done, step, state, maximum_iterations=max_length)
    return token_ids, log_probability


def _beam(decoder, image_tokens, max_length, num_beams, length_penalty):
    batch = tf.shape(image_tokens)[0]
    # Beam k of image b is row b * num_beams + k of every flattened tensor.
    cache = decoder.start(tf.repeat(image_tokens, num_beams, axis=0), max_length)
    columns = tf.one_hot(tf.range(max_length), max_length, dtype=tf.int32)
    # Only the first beam is alive at the start: the others would repeat it.
    first_scores = tf.tile(tf.concat([[0.0], tf.fill([num_beams - 1], _NEVER)], 0)[None], [batch, 1])

    def not_done(index, previous, cache, token_ids, scores, lengths, finished):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    def step(index, previous, cache, token_ids, scores, lengths, finished):
        logits, cache = decoder.step(tf.reshape(previous, [-1]), index, cache)
        vocabulary_size = tf.shape(logits)[-1]
        candidates = tf.reshape(_allowed_log_probabilities(logits), [batch, num_beams, -1])
        # A finished caption can only be continued by padding, at no cost: it keeps its score and its place.
        pad_only = tf.one_hot(PAD_ID, vocabulary_size, on_value=0.0, off_value=_NEVER)
        candidates = tf.where(finished[..., None], pad_only[None, None], candidates)
        totals = tf.reshape(scores[..., None] + candidates, [batch, -1])
        scores, best = tf.math.top_k(totals, k=num_beams)
        beams, chosen = best // vocabulary_size, best % vocabulary_size
        rows = tf.reshape(beams + tf.range(batch)[:, None] * num_beams, [-1])
        cache = tf.nest.map_structure(lambda tensor: tf.gather(tensor, rows), cache)
        token_ids = tf.gather(token_ids, beams, batch_dims=1) + chosen[..., None] * columns[index][None, None]
        was_finished = tf.gather(finished, beams, batch_dims=1)
        lengths = tf.gather(lengths, beams, batch_dims=1) + tf.cast(tf.logical_not(was_finished), tf.float32)
        finished = was_finished | tf.equal(chosen, END_ID)
        return index + 1, chosen, cache, token_ids, scores, lengths, finished

    state = (tf.constant(0), tf.fill([batch, num_beams], START_ID), cache,
             tf.zeros([batch, num_beams, max_length], tf.int32), first_scores, tf.zeros([batch, num_beams]),
             tf.zeros([batch, num_beams], tf.bool))
    _, _, _, token_ids, scores, lengths, _ = tf.while_loop(not_done, step, state, maximum_iterations=max_length)
    ranking = scores / tf.pow(tf.maximum(lengths, 1.0), length_penalty)
    best = tf.argmax(ranking, axis=-1, output_type=tf.int32)
    return tf.gather(token_ids, best, batch_dims=1), tf.gather(scores, best, batch_dims=1)
