"""The step-by-step cells equal nn.LSTM / nn.GRU run over the whole sequence, layer for layer."""

import pytest
import torch
from torch import nn

from seq2seq.models import stepwise

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("rnn_class", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("fed_width", [0, 3])
@pytest.mark.parametrize("fuse", [False, True], ids=["separate", "fused"])
def test_stepwise_cells_match_the_fused_module(rnn_class, num_layers, fed_width, fuse):
    torch.manual_seed(num_layers)
    B, T, E, H = 3, 5, 4, 6
    rnn = rnn_class(E + fed_width, H, num_layers=num_layers, batch_first=True, dropout=0.3).double().eval()
    inputs = torch.randn(B, T, E + fed_width, dtype=torch.double)
    h0 = torch.randn(num_layers, B, H, dtype=torch.double)
    state = (h0, torch.randn_like(h0)) if rnn_class is nn.LSTM else h0
    expected_outputs, expected_state = rnn(inputs, state)

    projected = stepwise.project_inputs(rnn, inputs[..., :E])  # (B, T, G*H)
    fused = stepwise.fuse_weights(rnn, E) if fuse and rnn_class is nn.LSTM else None
    outputs = []
    for t in range(T):
        fed = inputs[:, t, E:] if fed_width else None
        output, state = stepwise.step(rnn, projected[:, t], fed, state, fused)
        outputs.append(output)
    torch.testing.assert_close(torch.stack(outputs, 1), expected_outputs, rtol=0, atol=1e-12)
    if rnn_class is nn.LSTM:
        torch.testing.assert_close(state[0], expected_state[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(state[1], expected_state[1], rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(state, expected_state, rtol=0, atol=1e-12)


def test_dropout_between_layers_applies_in_training_only():
    torch.manual_seed(0)
    rnn = nn.LSTM(4, 6, num_layers=2, batch_first=True, dropout=0.5)
    x = torch.randn(3, 4)
    state = (torch.zeros(2, 3, 6), torch.zeros(2, 3, 6))
    projected = stepwise.project_inputs(rnn, x)
    rnn.eval()
    a, _ = stepwise.step(rnn, projected, None, state)
    b, _ = stepwise.step(rnn, projected, None, state)
    assert torch.equal(a, b)
    rnn.train()
    c, _ = stepwise.step(rnn, projected, None, state)
    assert not torch.allclose(a, c)


def test_fused_weights_pass_gradients_to_the_module():
    torch.manual_seed(0)
    rnn = nn.LSTM(5, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 3, 5, dtype=torch.double)
    state = (torch.zeros(2, 2, 4, dtype=torch.double), torch.zeros(2, 2, 4, dtype=torch.double))
    expected = torch.autograd.grad(rnn(x, state)[0].sum(), list(rnn.parameters()))
    projected = stepwise.project_inputs(rnn, x[..., :3])
    fused = stepwise.fuse_weights(rnn, 3)
    outputs = []
    for t in range(3):
        output, state = stepwise.step(rnn, projected[:, t], x[:, t, 3:], state, fused)
        outputs.append(output)
    got = torch.autograd.grad(torch.stack(outputs, 1).sum(), list(rnn.parameters()))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ["bahdanau", "general"])
def test_input_feeding_decoder_equals_the_plain_per_step_module_loop_in_fp32(rnn_type, attention):
    """The fast path (projection before the loop, fused cells) against nn.LSTM/nn.GRU called step by step."""
    from seq2seq.models import Seq2Seq

    torch.manual_seed(0)
    model = Seq2Seq(11, 13, src_embedding_dim=8, tgt_embedding_dim=8, hidden_size=12, encoder_num_layers=2,
                    decoder_num_layers=2, rnn_type=rnn_type, attention=attention, input_feeding=True).eval()
    src = torch.randint(1, 11, (3, 6))
    src_lengths = torch.tensor([6, 2, 4])
    tgt_in = torch.randint(1, 13, (3, 5))
    with torch.no_grad():
        memory, state = model.encode(src, src_lengths)
        fast = model.decoder(tgt_in, memory, state)
        decoder = model.decoder
        embedded = decoder.embedding(tgt_in)
        outputs = []
        for t in range(tgt_in.shape[1]):
            rnn_input = torch.cat([embedded[:, t], state.attentional], dim=-1).unsqueeze(1)  # (B, 1, E + H)
            rnn_output, rnn_state = decoder.rnn(rnn_input, state.rnn)
            output, _ = decoder.attend(rnn_output, memory)
            state = type(state)(rnn_state, output.squeeze(1))
            outputs.append(output.squeeze(1))
    torch.testing.assert_close(fast.outputs, torch.stack(outputs, 1), rtol=0, atol=1e-5)


def test_the_input_feeding_backward_handles_the_projected_embeddings_once_not_once_per_step():
    """Slicing projected[:, t] per step made backward zero-fill and add up T copies of the (B, T, 4H) tensor."""
    from seq2seq.models import Seq2Seq
    from tests.helpers.count_ops import CountResults

    torch.manual_seed(0)
    B, T, H = 3, 9, 6
    model = Seq2Seq(11, 13, src_embedding_dim=4, tgt_embedding_dim=5, hidden_size=H, decoder_num_layers=2,
                    input_feeding=True)
    outputs = model.decode(torch.randint(1, 11, (B, 4)), torch.tensor([4, 2, 3]), torch.randint(1, 13, (B, T)))
    with CountResults((B, T, 4 * H)) as counter:
        outputs.outputs.sum().backward()
    assert counter.count <= 2  # the step gradients stacked once (T + 1 or more if sliced per step)
