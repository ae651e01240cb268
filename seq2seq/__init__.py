"""seq2seq: attention-based RNN encoder-decoders, trained with Lightning and configured with Hydra.

Shape legend used in every docstring and comment of the package:

    B  batch size             S  source length (padded)     T  target length (padded)
    E  embedding size         H  hidden size per direction  D  directions (1 or 2)
    L  number of layers       V  vocabulary size            K  beam size
"""

__version__ = "0.1.0"
