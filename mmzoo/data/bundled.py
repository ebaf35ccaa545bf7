"""Facts about the bundled data that the command line shows: its name, an example question, and the sizes
`mmzoo list` counts parameters for. Kept here, beside the dataset, so nothing outside `mmzoo/data` knows them."""

VQA = "mmzoo_shapes/vqa"
CAPTIONS = "mmzoo_shapes/captions"
EXAMPLE_QUESTION = "what color is the circle?"  # one of the vqa config's question templates, filled in
VQA_NUM_CLASSES = 14  # the vqa answers: 5 colours, 3 shapes, yes/no, zero..three (mmzoo/data/shapes.py ANSWERS)
VQA_VOCABULARY_SIZE = 36  # words of the vqa train split's questions, as mmzoo.data.load adapts them

# The spoken configs (mmzoo/data/shapes.py builds them from these): the audio feature `speech` is int16 mono at
# SPEECH_SAMPLE_RATE Hz, at most *_NUM_SAMPLES long; loaders zero-pad it to that length (5 s and 10 s).
VQA_SPOKEN = "mmzoo_shapes/vqa_spoken"  # the vqa examples plus the question spoken; same 14 answer classes
SPOKEN_CAPTIONS = "mmzoo_shapes/spoken_captions"  # captions of one or two objects, written and spoken
SPEECH_SAMPLE_RATE = 8_000
VQA_SPOKEN_NUM_SAMPLES = 40_000
SPOKEN_CAPTIONS_NUM_SAMPLES = 80_000
SPOKEN_CAPTIONS_NUM_CLASSES = 15  # colour and shape of the large object, as in the captions config
