"""The packed encoder: every property is checked against the same ``nn.LSTM``/``nn.GRU`` run alone.

Sizes are tiny (H=4) and everything runs in double precision in eval mode, so "equal to the RNN run on
one unpadded sentence" can be checked to round-off.
"""

import pytest
import torch

from seq2seq.models import Encoder

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, EMBED, HIDDEN, PAD = 11, 3, 4, 0

# Unsorted, with a length of 1 and ties; in the first case even the longest sentence is padded.
LENGTH_CASES = {
    "longest-padded": ([3, 1, 5, 3, 2], 6),
    "longest-is-S": ([4, 1, 5, 5, 2], 5),
    "no-padding": ([5, 5, 5], 5),  # the plain (unpacked) call
}


def make_encoder(rnn_type="lstm", num_layers=1, bidirectional=True, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    encoder = Encoder(VOCAB, EMBED, HIDDEN, num_layers, rnn_type, bidirectional, dropout, PAD).double()
    return encoder.eval()


def make_batch(lengths, max_length, seed=1):
    """Random real tokens (never PAD) up to each length, PAD after."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    src = torch.randint(PAD + 1, VOCAB, (len(lengths), max_length), generator=generator)
    src[torch.arange(max_length).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    return src, lengths


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_alone(encoder, src, b, n):
    """The encoder's own ``.rnn`` on sentence b alone, unpadded: output (n, D*H), final states (L, D, 1, H)."""
    output, final = encoder.rnn(encoder.embedding(src[b : b + 1, :n]))
    views = tuple(state.view(encoder.num_layers, encoder.num_directions, 1, HIDDEN) for state in as_tuple(final))
    return output[0], views


@pytest.mark.parametrize("case", LENGTH_CASES, ids=list(LENGTH_CASES))
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_outputs_and_final_states_equal_the_rnn_run_on_each_sentence_alone(rnn_type, num_layers, bidirectional, case):
    lengths, max_length = LENGTH_CASES[case]
    encoder = make_encoder(rnn_type, num_layers, bidirectional)
    src, lengths = make_batch(lengths, max_length)

    with torch.no_grad():
        encoded = encoder(src, lengths)
        finals = as_tuple(encoded.final)
        assert len(finals) == (2 if rnn_type == "lstm" else 1)
        for b, n in enumerate(lengths.tolist()):
            output, alone_finals = run_alone(encoder, src, b, n)
            torch.testing.assert_close(encoded.outputs[b, :n], output)
            for final, alone in zip(finals, alone_finals):
                # Every layer and direction, in the caller's batch order (lengths are unsorted).
                torch.testing.assert_close(final[:, :, b : b + 1], alone)


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_shapes_follow_the_padded_input_not_the_longest_sentence(rnn_type, num_layers, bidirectional):
    encoder = make_encoder(rnn_type, num_layers, bidirectional)
    src, lengths = make_batch([3, 1, 2], 5)  # the longest sentence (3) is shorter than S (5)
    batch_size, max_length = src.shape
    num_directions = 2 if bidirectional else 1

    encoded = encoder(src, lengths)

    assert encoded.outputs.shape == (batch_size, max_length, num_directions * HIDDEN)
    assert encoder.output_size == num_directions * HIDDEN
    assert encoded.mask.shape == (batch_size, max_length)
    for state in as_tuple(encoded.final):
        assert state.shape == (num_layers, num_directions, batch_size, HIDDEN)


@pytest.mark.parametrize("case", [case for case in LENGTH_CASES if case != "no-padding"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_padding_is_exactly_zero_and_mask_matches_lengths(rnn_type, case):
    lengths, max_length = LENGTH_CASES[case]
    encoder = make_encoder(rnn_type, num_layers=2)
    src, lengths = make_batch(lengths, max_length)

    encoded = encoder(src, lengths)

    assert encoded.mask.dtype == torch.bool
    expected_mask = torch.stack([torch.arange(max_length) < n for n in lengths.tolist()])
    assert torch.equal(encoded.mask, expected_mask)
    padded = encoded.outputs[~encoded.mask]  # (number of padded positions, D*H)
    assert padded.numel() > 0
    assert torch.equal(padded, torch.zeros_like(padded))
    # Real positions are not (all) zero, so the check above is not vacuous.
    assert (encoded.outputs[encoded.mask].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_mask_marks_exactly_the_positions_the_rnn_saw(dtype):
    encoder = make_encoder("gru", num_layers=1)
    src, lengths = make_batch([3, 1, 5, 3, 2], 6)

    encoded = encoder(src, lengths.to(dtype))

    # With H=4 random weights a real position is never exactly all-zero, so non-zero rows are the real ones.
    assert torch.equal(encoded.mask, encoded.outputs.abs().sum(-1) > 0)


def test_padding_stays_exactly_zero_with_dropout_in_training_mode():
    encoder = make_encoder("lstm", num_layers=2, dropout=0.5).train()
    src, lengths = make_batch([3, 1, 5, 3, 2], 6)

    encoded = encoder(src, lengths)

    padded = encoded.outputs[~encoded.mask]
    assert torch.equal(padded, torch.zeros_like(padded))


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_top_layer_final_states_are_the_outputs_at_each_directions_last_step(rnn_type, num_layers):
    encoder = make_encoder(rnn_type, num_layers, bidirectional=True)
    src, lengths = make_batch([3, 1, 5, 3, 2], 6)

    with torch.no_grad():
        encoded = encoder(src, lengths)
    h = as_tuple(encoded.final)[0]  # (L, D, B, H)

    for b, n in enumerate(lengths.tolist()):
        # Forward direction ends at the last real token, backward at position 0.
        assert torch.equal(h[-1, 0, b], encoded.outputs[b, n - 1, :HIDDEN])
        assert torch.equal(h[-1, 1, b], encoded.outputs[b, 0, HIDDEN:])
        # Lower layers never reach `outputs`: compare them with the RNN run alone.
        _, alone = run_alone(encoder, src, b, n)
        torch.testing.assert_close(h[:-1, :, b], alone[0][:-1, :, 0])


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_tokens_at_padded_positions_change_nothing(rnn_type, bidirectional):
    encoder = make_encoder(rnn_type, num_layers=2, bidirectional=bidirectional)
    src, lengths = make_batch([3, 1, 5, 3, 2], 6)
    scrambled = src.clone()
    padding = torch.arange(src.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    scrambled[padding] = torch.randint(1, VOCAB, (int(padding.sum()),), generator=torch.Generator().manual_seed(7))
    assert not torch.equal(src, scrambled)

    with torch.no_grad():
        original, changed = encoder(src, lengths), encoder(scrambled, lengths)

    assert torch.equal(original.outputs, changed.outputs)
    assert torch.equal(original.mask, changed.mask)
    for a, b in zip(as_tuple(original.final), as_tuple(changed.final)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "lengths, bad_index",
    [([3, 0, 2], 1), ([3, 2, -1], 2), ([0, 2, 3], 0), ([4, -2, 0], 1)],
    ids=["zero", "negative", "zero-first", "first-of-several"],
)
def test_empty_or_negative_length_raises_naming_the_batch_index(lengths, bad_index):
    encoder = make_encoder()
    src = torch.ones(3, 5, dtype=torch.long)

    with pytest.raises(ValueError, match=f"batch index {bad_index}"):
        encoder(src, torch.tensor(lengths))


def test_length_longer_than_the_padded_input_raises_naming_the_batch_index():
    encoder = make_encoder()
    src = torch.ones(3, 5, dtype=torch.long)

    with pytest.raises(ValueError, match="batch index 1"):
        encoder(src, torch.tensor([5, 6, 2]))


def test_lengths_of_the_wrong_shape_raise():
    encoder = make_encoder()
    src = torch.ones(3, 5, dtype=torch.long)

    with pytest.raises(ValueError, match="lengths"):
        encoder(src, torch.tensor([5, 4]))


def test_unknown_rnn_type_raises():
    with pytest.raises(ValueError, match="rnn_type"):
        Encoder(VOCAB, EMBED, HIDDEN, rnn_type="transformer")


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_a_batch_without_padding_skips_packing_with_the_packed_calls_values_and_gradients(rnn_type):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    src, lengths = make_batch([4, 4, 4], 4)
    plain_encoder, packed_encoder = make_encoder(rnn_type, 2, True), make_encoder(rnn_type, 2, True)
    encoded = plain_encoder(src, lengths)
    packed = pack_padded_sequence(packed_encoder.embedding(src), lengths, batch_first=True, enforce_sorted=False)
    packed_outputs, packed_final = packed_encoder.rnn(packed)
    outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True)
    finals = [state.view(2, 2, 3, HIDDEN) for state in as_tuple(packed_final)]
    torch.testing.assert_close(encoded.outputs, outputs, rtol=0, atol=1e-12)
    for got, expected in zip(as_tuple(encoded.final), finals, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    (encoded.outputs.sum() + sum(state.sum() for state in as_tuple(encoded.final))).backward()
    (outputs.sum() + sum(state.sum() for state in finals)).backward()
    for a, b in zip(plain_encoder.parameters(), packed_encoder.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10)
