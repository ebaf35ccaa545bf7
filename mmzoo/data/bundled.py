"""Facts about the bundled data that the command line shows: its name, an example question, and the sizes
`mmzoo list` counts parameters for. Kept here, beside the dataset, so nothing outside `mmzoo/data` knows them."""

VQA = "mmzoo_shapes/vqa"
CAPTIONS = "mmzoo_shapes/captions"
EXAMPLE_QUESTION = "what color is the circle?"  # one of the vqa config's question templates, filled in
VQA_NUM_CLASSES = 14  # the vqa answers: 5 colours, 3 shapes, yes/no, zero..three (mmzoo/data/shapes.py ANSWERS)
VQA_VOCABULARY_SIZE = 36  # words of the vqa train split's questions, as mmzoo.data.load adapts them
