"""The exported encoder, checked as ``tests/unit/test_encoder.py`` checks the PyTorch one.

Packing does not export; the graph uses ONNX's RNN operators with each sequence's length instead. So the
question this project exists to answer is asked again, of a second runtime: on a padded, unsorted batch, does
every sequence get the outputs (0 at padding) and the final state, per layer and direction, that it gets
alone -- and that the packed PyTorch encoder gives it?
"""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx]'")
import onnxruntime as ort  # noqa: E402

from seq2seq.export.encoder_graph import encoder_graph  # noqa: E402
from seq2seq.models import Seq2Seq  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

# The PyTorch encoder's own test cases: unsorted lengths, a length of 1, ties, the longest padded or not.
from tests.unit.test_encoder import EMBED, HIDDEN, LENGTH_CASES, VOCAB, make_batch  # noqa: E402


def make_model(rnn_type, num_layers, bidirectional, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(VOCAB, 7, src_embedding_dim=EMBED, tgt_embedding_dim=EMBED, encoder_hidden_size=HIDDEN,
                   hidden_size=8, encoder_num_layers=num_layers, rnn_type=rnn_type, bidirectional=bidirectional,
                   bridge="concat" if bidirectional else "forward", dropout=0.0).eval()


class ExportedEncoder:
    def __init__(self, model, tmp_path):
        path = tmp_path / "encoder.onnx"
        path.write_bytes(encoder_graph(model, final_states=True).SerializeToString())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [output.name for output in self.session.get_outputs()]

    def __call__(self, src, lengths):
        return dict(zip(self.names, self.session.run(None, {"src": src.numpy(), "src_lengths": lengths.numpy()})))


@pytest.mark.parametrize("case", LENGTH_CASES, ids=list(LENGTH_CASES))
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_each_sequence_gets_what_it_gets_alone_and_what_the_packed_encoder_gives(
        tmp_path, rnn_type, num_layers, bidirectional, case):
    lengths, max_length = LENGTH_CASES[case]
    model = make_model(rnn_type, num_layers, bidirectional)
    exported = ExportedEncoder(model, tmp_path)
    src, lengths = make_batch(lengths, max_length)
    batch = exported(src, lengths)
    finals = ["final_h", "final_c"] if rnn_type == "lstm" else ["final_h"]
    with torch.no_grad():
        packed = model.encoder(src, lengths)
    packed_finals = packed.final if isinstance(packed.final, tuple) else (packed.final,)

    # The whole batch against the packed PyTorch encoder: outputs, mask, every layer's and direction's final state.
    np.testing.assert_allclose(batch["memory_keys"], packed.outputs.numpy(), atol=1e-6)
    np.testing.assert_array_equal(batch["memory_mask"], packed.mask.numpy())
    for name, final in zip(finals, packed_finals):
        assert batch[name].shape == (num_layers, 2 if bidirectional else 1, len(lengths), HIDDEN)
        np.testing.assert_allclose(batch[name], final.numpy(), atol=1e-6)

    for b, n in enumerate(lengths.tolist()):
        alone = exported(src[b : b + 1, :n], lengths[b : b + 1])  # unpadded: nothing to skip
        np.testing.assert_allclose(batch["memory_keys"][b, :n], alone["memory_keys"][0], atol=1e-6)
        assert not batch["memory_keys"][b, n:].any(), "padded positions must be exactly 0"
        for name in finals:
            np.testing.assert_allclose(batch[name][:, :, b], alone[name][:, :, 0], atol=1e-6)
        # Where the final states sit in the top layer's output: forward at n-1, backward at 0.
        top_h = batch["final_h"][-1, :, b]  # (D, H)
        np.testing.assert_allclose(top_h[0], batch["memory_keys"][b, n - 1, :HIDDEN], atol=1e-6)
        if bidirectional:
            np.testing.assert_allclose(top_h[1], batch["memory_keys"][b, 0, HIDDEN:], atol=1e-6)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_the_decoders_first_state_and_projected_keys_are_the_models(tmp_path, rnn_type):
    model = make_model(rnn_type, 2, True)
    exported = ExportedEncoder(model, tmp_path)
    src, lengths = make_batch(*LENGTH_CASES["longest-padded"])
    batch = exported(src, lengths)
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
    rnn_state = state.rnn if isinstance(state.rnn, tuple) else (state.rnn,)
    for name, value in zip(["state_h", "state_c"], rnn_state):
        np.testing.assert_allclose(batch[name], value.numpy(), atol=1e-6)
    np.testing.assert_allclose(batch["memory_projected_keys"], memory.projected_keys.numpy(), atol=1e-6)
    np.testing.assert_array_equal(batch["state_attentional"], np.zeros((len(lengths), 8), dtype=np.float32))
