"""The attention decoder: teacher-forced ``forward`` must equal ``step`` run T times."""

import itertools

import pytest
import torch

from seq2seq.models import Decoder, DecoderState
from seq2seq.models.attention import KINDS

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, EMBED, HIDDEN = 9, 3, 4
B, S, T = 3, 5, 4
LENGTHS = [3, 5, 1]

CONFIGS = list(itertools.product(KINDS, [True, False], ["lstm", "gru"], [1, 2]))
IDS = [f"{kind}-{'feed' if feed else 'nofeed'}-{rnn}-L{layers}" for kind, feed, rnn, layers in CONFIGS]


def key_size(kind):
    return HIDDEN if kind == "dot" else 6  # only 'dot' needs the encoder's outputs as wide as the decoder


def make_decoder(kind="general", input_feeding=True, rnn_type="lstm", num_layers=1, seed=0):
    """A double-precision decoder in eval mode (its dropout is on, so eval mode must switch it off),
    its memory over random keys, and a random initial state."""
    torch.manual_seed(seed)
    decoder = Decoder(
        VOCAB, EMBED, HIDDEN, key_size(kind), num_layers, rnn_type, kind, None, input_feeding, dropout=0.3
    ).double().eval()
    keys = torch.randn(B, S, key_size(kind), dtype=torch.double)
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)  # (B, S)
    keys[~mask] = 0.0  # as the encoder leaves them
    memory = decoder.memory(keys, mask)

    def random_state():
        return torch.randn(num_layers, B, HIDDEN, dtype=torch.double)

    rnn_state = (random_state(), random_state()) if rnn_type == "lstm" else random_state()
    state = decoder.initial_state(rnn_state)
    tgt_in = torch.randint(1, VOCAB, (B, T))
    return decoder, memory, state, tgt_in


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def test_initial_state_starts_with_a_zero_attentional_vector():
    decoder, _, state, _ = make_decoder()

    assert isinstance(state, DecoderState)
    assert torch.equal(state.attentional, torch.zeros(B, HIDDEN, dtype=torch.double))


@pytest.mark.parametrize("kind, input_feeding, rnn_type, num_layers", CONFIGS, ids=IDS)
def test_forward_equals_step_run_t_times(kind, input_feeding, rnn_type, num_layers):
    decoder, memory, state, tgt_in = make_decoder(kind, input_feeding, rnn_type, num_layers)

    with torch.no_grad():
        decoded = decoder(tgt_in, memory, state)
        step_state = state
        step_outputs, step_weights = [], []
        for t in range(T):
            output, weights, step_state = decoder.step(tgt_in[:, t], memory, step_state)
            step_outputs.append(output)
            step_weights.append(weights)

    assert decoded.outputs.shape == (B, T, HIDDEN)
    assert decoded.attention.shape == (B, T, S)
    torch.testing.assert_close(decoded.outputs, torch.stack(step_outputs, dim=1), rtol=0, atol=1e-5)
    torch.testing.assert_close(decoded.attention, torch.stack(step_weights, dim=1), rtol=0, atol=1e-5)
    # The state after the last step agrees too, so decoding can continue from either.
    for forward_part, step_part in zip(as_tuple(decoded.state.rnn), as_tuple(step_state.rnn)):
        assert forward_part.shape == (num_layers, B, HIDDEN)
        torch.testing.assert_close(forward_part, step_part, rtol=0, atol=1e-5)
    torch.testing.assert_close(decoded.state.attentional, step_state.attentional, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_decoder_attention_is_zero_on_source_padding(kind):
    decoder, memory, state, tgt_in = make_decoder(kind)

    with torch.no_grad():
        attention = decoder(tgt_in, memory, state).attention

    padded = attention.masked_select(~memory.mask.unsqueeze(1))
    assert torch.equal(padded, torch.zeros_like(padded))
    torch.testing.assert_close(attention.sum(-1), torch.ones(B, T, dtype=torch.double), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_without_input_feeding_the_rnn_runs_once_over_all_steps(rnn_type):
    decoder, memory, state, tgt_in = make_decoder("bahdanau", False, rnn_type, num_layers=2)
    calls = []
    handle = decoder.rnn.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            decoder(tgt_in, memory, state)
    finally:
        handle.remove()
    assert calls == [T]  # one call, every target step in it


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_with_input_feeding_steps_go_through_the_stepwise_cells(rnn_type, monkeypatch):
    """The loop uses the RNN's parameters step by step (seq2seq.models.stepwise), never the fused module."""
    from seq2seq.models import stepwise

    decoder, memory, state, tgt_in = make_decoder("bahdanau", True, rnn_type, num_layers=2)
    module_calls, step_calls = [], []
    handle = decoder.rnn.register_forward_hook(lambda module, args, output: module_calls.append(1))
    original_step = stepwise.step
    monkeypatch.setattr(stepwise, "step", lambda *args: step_calls.append(1) or original_step(*args))
    try:
        with torch.no_grad():
            decoder(tgt_in, memory, state)
    finally:
        handle.remove()
    assert module_calls == [] and len(step_calls) == T


def test_later_target_tokens_do_not_change_earlier_outputs():
    """The decoder is causal: output t depends only on tgt_in[:, :t+1]."""
    decoder, memory, state, tgt_in = make_decoder("general", input_feeding=False)
    changed = tgt_in.clone()
    changed[:, -1] = (changed[:, -1] % (VOCAB - 1)) + 1  # a different real token at the last step
    assert not torch.equal(changed, tgt_in)

    with torch.no_grad():
        original, other = decoder(tgt_in, memory, state), decoder(changed, memory, state)

    torch.testing.assert_close(original.outputs[:, :-1], other.outputs[:, :-1], rtol=0, atol=0)


def test_index_select_picks_batch_rows_of_memory_and_state():
    decoder, memory, state, _ = make_decoder("bahdanau", rnn_type="lstm", num_layers=2)
    indices = torch.tensor([2, 0, 0, 1])

    picked_memory = memory.index_select(indices)
    picked_state = state.index_select(indices)

    assert torch.equal(picked_memory.keys, memory.keys[indices])
    assert torch.equal(picked_memory.mask, memory.mask[indices])
    assert torch.equal(picked_memory.projected_keys, memory.projected_keys[indices])
    for picked, original in zip(picked_state.rnn, state.rnn):
        assert torch.equal(picked, original[:, indices])
    assert torch.equal(picked_state.attentional, state.attentional[indices])
