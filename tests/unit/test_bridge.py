"""The bridge: encoder final states (L_enc, D, B, H_enc) -> decoder initial state (L_dec, B, H_dec).

Inputs come from a real ``nn.LSTM``/``nn.GRU`` (its ``h_n`` viewed as (L, D, B, H)), so the layout the
bridge relies on is the one PyTorch actually produces.
"""

import itertools

import pytest
import torch
from torch import nn

from seq2seq.models import Bridge
from seq2seq.models.bridge import STRATEGIES

pytestmark = pytest.mark.usefixtures("single_thread")

B, S, E, H_ENC = 3, 5, 2, 4
LAYER_PAIRS = [(1, 1), (2, 1), (1, 2), (3, 2)]  # (encoder layers, decoder layers)
RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


def encoder_final(rnn_type, num_layers, bidirectional, hidden_size=H_ENC, seed=0):
    """Final states of a real RNN over a random batch, viewed (L, D, B, H): h, or (h, c) for an LSTM."""
    torch.manual_seed(seed)
    rnn = RNNS[rnn_type](E, hidden_size, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    with torch.no_grad():
        _, final = rnn(torch.randn(B, S, E))
    num_directions = 2 if bidirectional else 1

    def split(state):
        return state.view(num_layers, num_directions, B, hidden_size)

    return tuple(split(state) for state in final) if isinstance(final, tuple) else split(final)


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def expected_layer(decoder_layer, encoder_num_layers, decoder_num_layers):
    """The docstring's rule, written independently: aligned at the top, extra decoder layers take the bottom."""
    from_top = decoder_num_layers - 1 - decoder_layer
    return max(encoder_num_layers - 1 - from_top, 0)


def valid_configs():
    """(strategy, bidirectional, H_dec) that each strategy accepts, with H_dec == and != its merged size."""
    for strategy, bidirectional in itertools.product(STRATEGIES, [True, False]):
        num_directions = 2 if bidirectional else 1
        if strategy in ("sum", "mean") and not bidirectional:
            continue
        for decoder_hidden_size in sorted({num_directions * H_ENC, H_ENC, 6}):
            if strategy == "concat_raw" and decoder_hidden_size != num_directions * H_ENC:
                continue
            yield strategy, bidirectional, decoder_hidden_size


CONFIGS = list(valid_configs())


@pytest.mark.parametrize("layers", LAYER_PAIRS, ids=[f"enc{e}-dec{d}" for e, d in LAYER_PAIRS])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize(
    "strategy, bidirectional, decoder_hidden_size",
    CONFIGS,
    ids=[f"{s}-{'bi' if bi else 'uni'}-Hdec{h}" for s, bi, h in CONFIGS],
)
def test_output_shapes_and_the_decoder_rnn_accepts_the_state(
    strategy, bidirectional, decoder_hidden_size, rnn_type, layers
):
    encoder_num_layers, decoder_num_layers = layers
    bridge = Bridge(
        strategy, rnn_type, H_ENC, encoder_num_layers, bidirectional, decoder_hidden_size, decoder_num_layers
    )
    final = encoder_final(rnn_type, encoder_num_layers, bidirectional)

    state = bridge(final)

    if rnn_type == "lstm":
        assert isinstance(state, tuple) and len(state) == 2
    else:
        assert isinstance(state, torch.Tensor)
    for part in as_tuple(state):
        assert part.shape == (decoder_num_layers, B, decoder_hidden_size)
        assert part.is_contiguous()
    decoder_rnn = RNNS[rnn_type](E, decoder_hidden_size, num_layers=decoder_num_layers, batch_first=True)
    output, _ = decoder_rnn(torch.randn(B, 2, E), state)
    assert output.shape == (B, 2, decoder_hidden_size)


@pytest.mark.parametrize("layers", LAYER_PAIRS, ids=[f"enc{e}-dec{d}" for e, d in LAYER_PAIRS])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize(
    "strategy, merge",
    [
        ("sum", lambda fwd, bwd: fwd + bwd),
        ("mean", lambda fwd, bwd: (fwd + bwd) / 2),
        ("forward", lambda fwd, bwd: fwd),
        ("concat_raw", lambda fwd, bwd: torch.cat([fwd, bwd], dim=-1)),
    ],
    ids=["sum", "mean", "forward", "concat_raw"],
)
def test_unprojected_values_per_layer_and_sentence(strategy, merge, rnn_type, layers):
    encoder_num_layers, decoder_num_layers = layers
    merged_size = 2 * H_ENC if strategy == "concat_raw" else H_ENC
    bridge = Bridge(strategy, rnn_type, H_ENC, encoder_num_layers, True, merged_size, decoder_num_layers)
    assert len(bridge.projections) == 0  # sizes match: nothing learned in between
    final = encoder_final(rnn_type, encoder_num_layers, bidirectional=True)

    state = bridge(final)

    for encoder_state, decoder_state in zip(as_tuple(final), as_tuple(state)):
        for layer, b in itertools.product(range(decoder_num_layers), range(B)):
            source = expected_layer(layer, encoder_num_layers, decoder_num_layers)
            expected = merge(encoder_state[source, 0, b], encoder_state[source, 1, b])
            torch.testing.assert_close(decoder_state[layer, b], expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_forward_strategy_with_a_unidirectional_encoder_passes_states_through(rnn_type):
    bridge = Bridge("forward", rnn_type, H_ENC, 2, False, H_ENC, 2)
    final = encoder_final(rnn_type, 2, bidirectional=False)

    state = bridge(final)

    for encoder_state, decoder_state in zip(as_tuple(final), as_tuple(state)):
        assert torch.equal(decoder_state, encoder_state[:, 0])


@pytest.mark.parametrize("layers", LAYER_PAIRS, ids=[f"enc{e}-dec{d}" for e, d in LAYER_PAIRS])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_zeros_strategy_is_all_zero(rnn_type, layers):
    encoder_num_layers, decoder_num_layers = layers
    bridge = Bridge("zeros", rnn_type, H_ENC, encoder_num_layers, True, 6, decoder_num_layers)

    state = bridge(encoder_final(rnn_type, encoder_num_layers, bidirectional=True))

    assert len(list(bridge.parameters())) == 0
    for part in as_tuple(state):
        assert torch.equal(part, torch.zeros(decoder_num_layers, B, 6))


@pytest.mark.parametrize("layers", LAYER_PAIRS, ids=[f"enc{e}-dec{d}" for e, d in LAYER_PAIRS])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_concat_projects_each_layer_and_only_h_goes_through_tanh(rnn_type, layers):
    encoder_num_layers, decoder_num_layers = layers
    torch.manual_seed(0)
    bridge = Bridge("concat", rnn_type, H_ENC, encoder_num_layers, True, 6, decoder_num_layers)
    final = encoder_final(rnn_type, encoder_num_layers, bidirectional=True)

    with torch.no_grad():
        state = bridge(final)

    for index, (encoder_state, decoder_state) in enumerate(zip(as_tuple(final), as_tuple(state))):
        activation = torch.tanh if index == 0 else (lambda x: x)  # c is not bounded, so no tanh for it
        for layer, b in itertools.product(range(decoder_num_layers), range(B)):
            source = expected_layer(layer, encoder_num_layers, decoder_num_layers)
            raw = torch.cat([encoder_state[source, 0, b], encoder_state[source, 1, b]])
            expected = activation(bridge.projections[index](raw))
            torch.testing.assert_close(decoder_state[layer, b], expected)


@pytest.mark.parametrize(
    "encoder_num_layers, decoder_num_layers, expected",
    [(1, 1, [0]), (2, 1, [1]), (3, 2, [1, 2]), (1, 2, [0, 0]), (2, 3, [0, 0, 1]), (2, 4, [0, 0, 0, 1]), (4, 1, [3])],
)
def test_layers_are_aligned_at_the_top(encoder_num_layers, decoder_num_layers, expected):
    """Decoder layer i (bottom first) starts from encoder layer expected[i]."""
    bridge = Bridge("forward", "gru", H_ENC, encoder_num_layers, False, H_ENC, decoder_num_layers)
    # Encoder layer l holds the constant l, so the decoder state says where each layer came from.
    final = torch.arange(encoder_num_layers, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 1, B, H_ENC)

    state = bridge(final)

    assert state[:, 0, 0].tolist() == expected
    assert [expected_layer(i, encoder_num_layers, decoder_num_layers) for i in range(decoder_num_layers)] == expected


@pytest.mark.parametrize("bidirectional, decoder_hidden_size", [(True, H_ENC), (True, 6), (False, 2 * H_ENC)])
def test_concat_raw_with_mismatched_sizes_raises(bidirectional, decoder_hidden_size):
    with pytest.raises(ValueError, match="concat_raw"):
        Bridge("concat_raw", "lstm", H_ENC, 1, bidirectional, decoder_hidden_size, 1)


@pytest.mark.parametrize("strategy", ["sum", "mean"])
def test_direction_merging_strategies_need_a_bidirectional_encoder(strategy):
    with pytest.raises(ValueError, match="bidirectional"):
        Bridge(strategy, "lstm", H_ENC, 1, False, H_ENC, 1)


def test_unknown_strategy_raises_listing_the_options():
    with pytest.raises(ValueError, match="concat_raw"):
        Bridge("average", "lstm", H_ENC, 1, True, H_ENC, 1)


def test_wrong_number_of_state_tensors_raises():
    bridge = Bridge("forward", "gru", H_ENC, 1, True, H_ENC, 1)
    h = encoder_final("gru", 1, bidirectional=True)

    with pytest.raises(ValueError, match="state tensor"):
        bridge((h, h))
