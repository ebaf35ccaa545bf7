"""Caption generation inside the graph: the encoder runs once, then a `tf.while_loop` runs the decoder one token
at a time with its cache (a recurrent state, or a Transformer's keys and values), for the whole batch at once,
and stops when every caption has ended or `max_length` tokens are out.

`generation_function(captioner, ...)` builds the pure-TensorFlow function both `ImageCaptioner.generate` (through
a `tf.function`) and the export's signatures (mmzoo/captioning/export.py) call, so what a user tries in Python is
what the SavedModel serves. Greedy decoding takes the most likely token; beam search keeps the `num_beams` most
likely partial captions live and the `num_beams` best finished ones apart, and returns the finished caption with
the best score, its log-probability over length ** `length_penalty` (1.0: per token; 0.0: the plain sum, which
favours short captions). One beam is greedy decoding.
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
        if num_beams == 1:  # a beam of one is greedy decoding (check_options gives greedy one beam)
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
    """Beam search with the finished captions kept apart from the live beams: a caption that ends leaves its
    slot to a live one, and every comparison among finished captions (which to keep, which to return) uses the
    same score, the log-probability over length ** length_penalty (the end token counted)."""
    batch = tf.shape(image_tokens)[0]
    # Beam k of image b is row b * num_beams + k of every flattened tensor.
    cache = decoder.start(tf.repeat(image_tokens, num_beams, axis=0), max_length)
    columns = tf.one_hot(tf.range(max_length), max_length, dtype=tf.int32)
    best_possible_length = tf.pow(float(max_length), length_penalty)

    def not_done(index, previous, cache, live, done):
        # A live caption's log-probability only falls as it grows, so its score can reach at most that sum over
        # max_length ** length_penalty; once no live caption can beat the worst kept finished one, stop.
        bound = tf.reduce_max(live[1], axis=1) / best_possible_length
        settled = tf.reduce_min(done[1], axis=1) >= bound
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(settled)))

    def step(index, previous, cache, live, done):
        live_ids, live_sums = live
        logits, cache = decoder.step(tf.reshape(previous, [-1]), index, cache)
        vocabulary_size = tf.shape(logits)[-1]
        candidates = tf.reshape(_allowed_log_probabilities(logits), [batch, num_beams, -1])
        totals = tf.reshape(live_sums[..., None] + candidates, [batch, -1])
        # Twice the beams: even if every live beam's best continuation ends, num_beams others stay live.
        sums, best = tf.math.top_k(totals, k=2 * num_beams)
        beams, chosen = best // vocabulary_size, best % vocabulary_size
        ids = tf.gather(live_ids, beams, batch_dims=1) + chosen[..., None] * columns[index][None, None]
        # At max_length every caption is complete, ended or not; beams that were never alive are not captions.
        ends = (tf.equal(chosen, END_ID) | tf.equal(index, max_length - 1)) & (sums > _NEVER / 2)
        scores = tf.where(ends, sums / tf.pow(tf.cast(index + 1, tf.float32), length_penalty), _NEVER)
        done = _keep_best(num_beams, done, (ids, scores, sums))
        live_sums, keep = tf.math.top_k(tf.where(ends, _NEVER, sums), k=num_beams)
        rows = tf.reshape(tf.gather(beams, keep, batch_dims=1) + tf.range(batch)[:, None] * num_beams, [-1])
        cache = tf.nest.map_structure(lambda tensor: tf.gather(tensor, rows), cache)
        live = (tf.gather(ids, keep, batch_dims=1), live_sums)
        return index + 1, tf.gather(chosen, keep, batch_dims=1), cache, live, done

    # Only the first beam is alive at the start: the others would repeat it.
    first_sums = tf.tile(tf.concat([[0.0], tf.fill([num_beams - 1], _NEVER)], 0)[None], [batch, 1])
    empty_ids = tf.zeros([batch, num_beams, max_length], tf.int32)
    nothing = tf.fill([batch, num_beams], _NEVER)
    state = (tf.constant(0), tf.fill([batch, num_beams], START_ID), cache, (empty_ids, first_sums),
             (empty_ids, nothing, nothing))
    _, _, _, _, (token_ids, scores, sums) = tf.while_loop(not_done, step, state, maximum_iterations=max_length)
    best = tf.argmax(scores, axis=-1, output_type=tf.int32)
    return tf.gather(token_ids, best, batch_dims=1), tf.gather(sums, best, batch_dims=1)


def _keep_best(count, kept, new):
    """The `count` best finished captions by score among `kept` and `new`, each (token ids, score, log-prob)."""
    ids, scores, sums = (tf.concat([old, fresh], axis=1) for old, fresh in zip(kept, new))
    scores, top = tf.math.top_k(scores, k=count)
    return tf.gather(ids, top, batch_dims=1), scores, tf.gather(sums, top, batch_dims=1)
