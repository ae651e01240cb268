"""Attention: masking, normalisation, and agreement between batched and one-query-at-a-time use."""

import pytest
import torch

from seq2seq.models import Attention
from seq2seq.models.attention import KINDS

pytestmark = pytest.mark.usefixtures("single_thread")

B, S, T, Q = 3, 5, 4, 4
LENGTHS = [3, 5, 1]  # unsorted, one full, one of length 1


def key_size(kind):
    return Q if kind == "dot" else 6  # only 'dot' needs query size == key size


def make_inputs(kind, seed=0):
    """Double-precision query (B, T, Q), keys (B, S, K) and mask (B, S).

    Keys at padded positions are large random values, not zeros, so a leak through the mask would show.
    """
    torch.manual_seed(seed)
    attention = Attention(kind, Q, key_size(kind)).double()
    query = torch.randn(B, T, Q, dtype=torch.double)
    keys = torch.randn(B, S, key_size(kind), dtype=torch.double)
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)  # (B, S)
    keys[~mask] = 100 * torch.randn(int((~mask).sum()), key_size(kind), dtype=torch.double)
    return attention, query, keys, mask


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    attention, query, keys, mask = make_inputs(kind)

    context, weights = attention(query, keys, mask)

    assert context.shape == (B, T, key_size(kind))
    assert weights.shape == (B, T, S)


@pytest.mark.parametrize("kind", KINDS)
def test_weights_are_exactly_zero_on_padding_and_rows_sum_to_one(kind):
    attention, query, keys, mask = make_inputs(kind)

    _, weights = attention(query, keys, mask)

    padded = weights.masked_select(~mask.unsqueeze(1))  # every padded weight, for every query
    assert padded.numel() > 0
    assert torch.equal(padded, torch.zeros_like(padded))
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T, dtype=torch.double), rtol=0, atol=1e-6)
    assert (weights >= 0).all()
    # The length-1 sentence has only one place to look.
    assert torch.equal(weights[2, :, 0], torch.ones(T, dtype=torch.double))


@pytest.mark.parametrize("kind", KINDS)
def test_context_is_the_weighted_sum_of_the_keys(kind):
    attention, query, keys, mask = make_inputs(kind)

    context, weights = attention(query, keys, mask)

    expected = torch.einsum("bts,bsk->btk", weights, keys)
    torch.testing.assert_close(context, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_queries_equal_one_query_at_a_time(kind):
    attention, query, keys, mask = make_inputs(kind)
    projected_keys = attention.project_keys(keys)

    context, weights = attention(query, keys, mask, projected_keys)

    for t in range(T):
        step_context, step_weights = attention(query[:, t : t + 1], keys, mask, projected_keys)
        torch.testing.assert_close(step_context, context[:, t : t + 1])
        torch.testing.assert_close(step_weights, weights[:, t : t + 1])


@pytest.mark.parametrize("kind", KINDS)
def test_padded_keys_do_not_matter(kind):
    attention, query, keys, mask = make_inputs(kind)
    other_keys = keys.clone()
    other_keys[~mask] = torch.randn(int((~mask).sum()), key_size(kind), dtype=torch.double)

    context, weights = attention(query, keys, mask)
    other_context, other_weights = attention(query, other_keys, mask)

    assert torch.equal(weights, other_weights)
    torch.testing.assert_close(context, other_context)


def test_bahdanau_with_precomputed_projected_keys_equals_without():
    attention, query, keys, mask = make_inputs("bahdanau")
    projected_keys = attention.project_keys(keys)
    assert projected_keys.shape[:2] == (B, S)

    with_keys = attention(query, keys, mask, projected_keys)
    without_keys = attention(query, keys, mask)

    torch.testing.assert_close(with_keys.context, without_keys.context, rtol=0, atol=0)
    torch.testing.assert_close(with_keys.weights, without_keys.weights, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["dot", "general"])
def test_only_bahdanau_has_projected_keys(kind):
    attention, _, keys, _ = make_inputs(kind)

    assert attention.project_keys(keys) is None


@pytest.mark.parametrize("kind", KINDS)
def test_attention_keeps_no_state_between_calls(kind):
    attention, query, keys, mask = make_inputs(kind)
    before = dict(vars(attention))

    first = attention(query, keys, mask, attention.project_keys(keys))
    _, _, other_keys, _ = make_inputs(kind, seed=1)
    attention(query, other_keys, mask, attention.project_keys(other_keys))
    again = attention(query, keys, mask, attention.project_keys(keys))

    assert vars(attention).keys() == before.keys()
    assert not [name for name, value in vars(attention).items() if isinstance(value, torch.Tensor)]
    torch.testing.assert_close(first.context, again.context, rtol=0, atol=0)


def test_dot_with_mismatched_sizes_raises():
    with pytest.raises(ValueError, match="dot"):
        Attention("dot", 4, 6)


def test_unknown_kind_raises_listing_the_options():
    with pytest.raises(ValueError, match="bahdanau"):
        Attention("luong", 4, 4)
