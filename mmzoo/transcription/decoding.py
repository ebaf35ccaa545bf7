"""CTC decoding inside the graph: waveforms in, transcripts out, with `keras.ops.ctc_decode`.

`decoding_function(transcriber, strategy=...)` builds the TensorFlow function that both
`SpeechTranscriber.transcribe` (through a `tf.function`) and the export's signatures (mmzoo/transcription/export.py)
run, so what a user tries in Python is what the SavedModel serves. Both strategies decode each clip over its own
valid steps (the transcriber's `logits_model` gives their count):

* "greedy": the most likely class at every step, repeats merged, blanks dropped (`tf.nn.ctc_greedy_decoder`).
  Its `log_probability` is that of the best alignment (the sum of each step's best log-probability).
* "beam": CTC prefix beam search over `beam_width` prefixes (`tf.nn.ctc_beam_search_decoder`, which sums the
  probabilities of every alignment of a prefix); `log_probability` is the transcript's. No language model.

Both are ordinary TensorFlow kernels (CTCGreedyDecoder, CTCBeamSearchDecoder), so the export serves them; they
run on the CPU. Ids are 0-padded (0 is the blank, never emitted), `length` counts characters.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from mmzoo.transcription.model import INPUT

STRATEGIES = ("greedy", "beam")


def check_options(strategy, beam_width):
    """The decoding options, checked: (strategy, beam_width); greedy decoding has a beam width of 1."""
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {', '.join(STRATEGIES)}. Received: strategy={strategy!r}")
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
        raise ValueError(f"`beam_width` must be a positive integer. Received: beam_width={beam_width!r}")
    return strategy, (int(beam_width) if strategy == "beam" else 1)


def decode_logits(logits, lengths, id_to_token, strategy="greedy", beam_width=16):
    """Logits [batch, steps, classes] (blank = class 0) and valid steps [batch] -> {"transcript" string [batch],
    "token_ids" int32 [batch, steps] (0-padded), "length" int32 [batch], "log_probability" float32 [batch]}."""
    strategy, beam_width = check_options(strategy, beam_width)
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    lengths = tf.cast(lengths, tf.int32)
    decoded, scores = ops.ctc_decode(log_probabilities, lengths,
                                     strategy="greedy" if strategy == "greedy" else "beam_search",
                                     beam_width=beam_width, top_paths=1, mask_index=0)
    best = decoded[0]  # [batch, steps], -1 after the transcript
    token_ids = tf.maximum(best, 0)
    # Greedy: minus the sum of each step's best log-probability; beam search: the transcript's log-probability.
    log_probability = -scores[:, 0] if strategy == "greedy" else scores[:, 0]
    return {"transcript": detokenize(token_ids, tf.constant(id_to_token)), "token_ids": token_ids,
            "length": tf.reduce_sum(tf.cast(best >= 0, tf.int32), axis=1),
            "log_probability": tf.cast(log_probability, tf.float32)}


def detokenize(token_ids, id_to_token):
    """0-padded ids [batch, steps] -> one string per row: its characters joined (the blank shows as "")."""
    return tf.strings.reduce_join(tf.gather(id_to_token, token_ids), axis=1)


def decoding_function(transcriber, *, strategy="greedy", beam_width=16):
    """A function `waveforms (batch, num_samples) float32 -> decode_logits(...)'s dict`, made of TensorFlow ops
    only (callable in a `tf.function` or an export's endpoint)."""
    strategy, beam_width = check_options(strategy, beam_width)
    tokens = transcriber.id_to_token

    def run(waveforms):
        outputs = transcriber.logits_model({INPUT: waveforms}, training=False)
        return decode_logits(outputs["logits"], outputs["lengths"], tokens, strategy, beam_width)

    return run


def prepare_waveforms(transcriber, waveforms):
    """float32 [batch, num_samples]: `waveforms` (one clip or a batch, any length) cropped or zero-padded at the
    end to the transcriber's `num_samples`. Values must be finite and in [-1, 1]."""
    waveforms = np.asarray(waveforms)
    if waveforms.ndim == 1:
        raise ValueError(f"`waveforms` must be a batch [batch, samples]. Received: shape {waveforms.shape} (one clip: "
                         "wrap it in a list)")
    if waveforms.ndim != 2 or waveforms.dtype.kind != "f":
        raise ValueError(f"`waveforms` must be float waveforms [batch, samples] in [-1, 1]. Received: shape "
                         f"{waveforms.shape}, dtype {waveforms.dtype}")
    if waveforms.size and (not np.all(np.isfinite(waveforms)) or np.abs(waveforms).max() > 1.0):
        raise ValueError("`waveforms` must be finite and in [-1, 1]. Received: values from "
                         f"{np.nanmin(waveforms)} to {np.nanmax(waveforms)}")
    samples = transcriber.num_samples
    fitted = np.zeros((waveforms.shape[0], samples), np.float32)
    fitted[:, :min(samples, waveforms.shape[1])] = waveforms[:, :samples]
    return fitted


def transcribe(transcriber, waveforms, *, strategy="greedy", beam_width=16, batch_size=64):
    """`SpeechTranscriber.transcribe`: numpy outputs, transcripts as str, in batches of `batch_size`. One traced
    `tf.function` per set of options, kept on the transcriber."""
    options = check_options(strategy, beam_width)
    function = transcriber._decoders.functions.get(options)
    if function is None:
        run = decoding_function(transcriber, strategy=options[0], beam_width=options[1])
        spec = tf.TensorSpec([None, transcriber.num_samples], tf.float32)
        function = tf.function(run, input_signature=[spec])
        transcriber._decoders.functions[options] = function
    waveforms = prepare_waveforms(transcriber, waveforms)
    parts = [function(tf.constant(waveforms[start:start + batch_size]))
             for start in range(0, len(waveforms), batch_size)]
    if not parts:
        return {"transcript": np.array([], dtype=str), "token_ids": np.zeros((0, transcriber.num_steps), np.int32),
                "length": np.zeros((0,), np.int32), "log_probability": np.zeros((0,), np.float32)}
    outputs = {name: np.concatenate([part[name].numpy() for part in parts]) for name in parts[0]}
    outputs["transcript"] = np.array([text.decode("utf-8") for text in outputs["transcript"]], dtype=str)
    return outputs
