"""Greedy and beam search: properties on tiny random models, exact answers on hand-built ones.

The search's rules live in two places, PyTorch's (``seq2seq.inference.search``) and the ONNX runtime's numpy
copy (``seq2seq.runtime.search``): every case here runs against both (the ``implementation`` fixture), the
numpy one through :class:`NumpyModel`, which hands it the same model on numpy arrays -- once with each row's
whole distribution, once with only its best k tokens (``step_top_k``, what the exported decoder step offers).

Random models run in double precision (so near-ties cannot flip a choice between a batch and a sentence
alone) with their weights scaled up and eos's bias raised, so that their hypotheses end at varied steps.
The hand-built ``BigramModel`` has next-token probabilities that depend only on the previous token, so
the best sequence, and what greedy search picks instead, can be worked out by hand.
"""

import math
import sys

import numpy as np
import pytest
import torch

from seq2seq.decode_options import DecodeOptions
from seq2seq.inference import search
from seq2seq.inference.search import BOS_ID, EOS_ID, PAD_ID, Hypotheses
from seq2seq.models import DecoderState, Memory, Seq2Seq
from seq2seq.runtime import search as numpy_search
from tests.helpers.teacher_forcing import logits_and_attention

pytestmark = pytest.mark.usefixtures("single_thread")

SRC_VOCAB, TGT_VOCAB = 10, 12
LENGTHS = [3, 7, 1, 4, 5, 2]  # unsorted, with a length of 1; the longest is padded too
# (rnn_type, input_feeding, seed, eos bias): in each, some of the batch's hypotheses end with eos at
# different steps and some run to their maximum length, with greedy and with beam search.
MODELS = [("lstm", True, 2, 1.0), ("lstm", False, 1, 0.5), ("gru", True, 6, 1.5), ("gru", False, 4, 1.0)]
MODEL_IDS = [f"{rnn}-{'feed' if feed else 'nofeed'}-seed{seed}" for rnn, feed, seed, _ in MODELS]


def make_model(rnn_type="lstm", input_feeding=True, seed=0, eos_bias=1.0):
    torch.manual_seed(seed)
    model = Seq2Seq(
        src_vocab_size=SRC_VOCAB,
        tgt_vocab_size=TGT_VOCAB,
        hidden_size=8,
        src_embedding_dim=8,
        tgt_embedding_dim=8,
        rnn_type=rnn_type,
        input_feeding=input_feeding,
        dropout=0.0,
        init="pytorch",  # the seeds in MODELS were picked for PyTorch's per-module draws
        embedding_init_std=None,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)  # sharper, more input-dependent distributions than the initial ones
        model.output_layer.bias[EOS_ID] += eos_bias
    return model.double().eval()


IMPLEMENTATION = "torch"  # set for each test by the fixture below


@pytest.fixture(autouse=True, params=["torch", "numpy", "numpy-top-k"])
def implementation(request, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "IMPLEMENTATION", request.param)
    return request.param


class NumpyModel:
    """A PyTorch model (or the fake below) as the numpy search sees an exported one: arrays in, arrays out."""

    def __init__(self, model):
        self.model = model

    def encode(self, src, src_lengths):
        with torch.inference_mode():
            memory, state = self.model.encode(torch.from_numpy(src), torch.from_numpy(src_lengths))
        return TorchRows(memory), TorchRows(state)

    def step_log_probs(self, tokens, memory, state):
        with torch.inference_mode():
            log_probs, attention, state = self.model.step_log_probs(torch.from_numpy(tokens), memory.value, state.value)
        return log_probs.numpy().copy(), attention.numpy(), TorchRows(state)


class TorchRows:
    """A memory or state of the PyTorch model, selected by numpy indices."""

    def __init__(self, value):
        self.value = value

    def index_select(self, indices):
        return TorchRows(self.value.index_select(torch.from_numpy(indices)))


class NumpyTopKModel(NumpyModel):
    """The same, also offering each row's k best tokens but pad and bos, equal ones by lower id (a stable sort)."""

    def __init__(self, model, vocab_size):
        super().__init__(model)
        self.vocab_size = vocab_size

    def step_top_k(self, tokens, memory, state, k):
        log_probs, attention, state = self.step_log_probs(tokens, memory, state)
        log_probs[:, [PAD_ID, BOS_ID]] = -math.inf
        order = torch.sort(torch.from_numpy(log_probs), dim=1, descending=True, stable=True).indices[:, :k].numpy()
        return np.take_along_axis(log_probs, order, axis=1), order, attention, state


def run_search(name, model, src, lengths, options):
    if IMPLEMENTATION == "torch":
        return getattr(search, name)(model, src, lengths, options)
    vocab_size = model.log_probs.shape[1] if isinstance(model, BigramModel) else model.output_layer.out_features
    adapted = NumpyModel(model) if IMPLEMENTATION == "numpy" else NumpyTopKModel(model, vocab_size)
    found = getattr(numpy_search, name)(adapted, src.numpy(), lengths.numpy(), options)
    return Hypotheses(found.tokens, found.scores, [torch.from_numpy(a) for a in found.attention], found.nbest)


def max_output_length(src_lengths, ratio, constant, limit=None):
    if IMPLEMENTATION == "torch":
        return search.max_output_length(src_lengths, ratio, constant, limit)
    return torch.from_numpy(numpy_search.max_output_length(src_lengths.numpy(), ratio, constant, limit))


def greedy_search(model, src, lengths, **options):
    """Greedy search with these options (the others at their defaults)."""
    return run_search("greedy_search", model, src, lengths, DecodeOptions(beam_size=1, **options))


def beam_search(model, src, lengths, **options):
    """Beam search with these options (the others at their defaults)."""
    return run_search("beam_search", model, src, lengths, DecodeOptions(**options))


def make_batch(lengths=LENGTHS, seed=100):
    """Random real tokens up to each length, PAD (0) after."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    src = torch.randint(4, SRC_VOCAB, (len(lengths), int(lengths.max()) + 1), generator=generator)
    src[torch.arange(src.size(1)) >= lengths.unsqueeze(1)] = 0
    return src, lengths


def alone(src, lengths, index):
    return src[index : index + 1, : lengths[index]], lengths[index : index + 1]


class BigramModel:
    """A fake model with the search's interface: p(next | previous token) from a table, whatever the source.

    ``probs`` maps a previous token to {next token: probability}; every other entry gets a tiny
    probability and each row is renormalised, so no log-prob is -inf.
    """

    def __init__(self, probs, vocab_size=10):
        table = torch.full((vocab_size, vocab_size), 1e-6, dtype=torch.double)
        for previous, row in probs.items():
            for token, p in row.items():
                table[previous, token] = p
        self.log_probs = (table / table.sum(dim=1, keepdim=True)).log()  # (V, V)
        self.encode_calls, self.step_rows, self.inference_mode = 0, [], []

    def encode(self, src, src_lengths):
        batch_size, src_length = src.shape
        self.encode_calls += 1
        mask = torch.arange(src_length) < src_lengths.unsqueeze(1)  # (B, S)
        memory = Memory(torch.zeros(batch_size, src_length, 1, dtype=torch.double), mask, None)
        return memory, DecoderState(torch.zeros(1, batch_size, 1), torch.zeros(batch_size, 1))

    def step_log_probs(self, tokens, memory, state):
        self.step_rows.append(tokens.numel())
        self.inference_mode.append(torch.is_inference_mode_enabled())
        attention = memory.mask.double() / memory.mask.sum(dim=1, keepdim=True)  # uniform over real tokens
        return self.log_probs[tokens].clone(), attention, state.index_select(torch.arange(tokens.numel()))


A, B, C, D = 4, 5, 6, 7
# Greedy takes A (0.6), then at best 0.35: A C eos = 0.21. B (0.4) then eos (0.9) = 0.36 is better.
GREEDY_MISSES = {BOS_ID: {A: 0.6, B: 0.4}, A: {C: 0.35, D: 0.34, EOS_ID: 0.31}, B: {EOS_ID: 0.9, C: 0.1},
                 C: {EOS_ID: 1.0}, D: {EOS_ID: 1.0}}
# "S eos" = 0.55 * 0.9 (log -0.70) beats "L M N eos" = 0.45 * 0.95^3 (log -0.95) in total, not per token.
S, L, M, N, X = 4, 5, 6, 7, 8
SHORT_OR_LONG = {BOS_ID: {S: 0.55, L: 0.45}, S: {EOS_ID: 0.9, X: 0.1}, X: {X: 1.0},
                 L: {M: 0.95, EOS_ID: 0.05}, M: {N: 0.95, EOS_ID: 0.05}, N: {EOS_ID: 0.95, X: 0.05}}


def check_consistent(hypotheses: Hypotheses, batch_size, n_best=1):
    assert len(hypotheses.tokens) == len(hypotheses.scores) == len(hypotheses.attention) == batch_size
    for tokens, score, nbest in zip(hypotheses.tokens, hypotheses.scores, hypotheses.nbest):
        assert len(nbest) == n_best
        assert nbest[0] == (tokens, score)
        assert all(not {PAD_ID, BOS_ID, EOS_ID} & set(entry) for entry, _ in nbest)


def test_max_output_length():
    src_lengths = torch.tensor([1, 4, 7])
    assert max_output_length(src_lengths, 1.5, 10).tolist() == [11, 16, 20]  # floor(1.5 * 7 + 10) = 20
    assert max_output_length(src_lengths, 1.5, 10, limit=15).tolist() == [11, 15, 15]
    assert max_output_length(src_lengths, 0.0, 0).tolist() == [1, 1, 1]  # at least one step


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
@pytest.mark.parametrize("config", MODELS, ids=MODEL_IDS)
def test_beam_size_one_is_greedy(config, length_penalty):
    model = make_model(*config)
    src, lengths = make_batch()
    greedy = greedy_search(model, src, lengths)
    beam = beam_search(model, src, lengths, beam_size=1, length_penalty=length_penalty)
    check_consistent(beam, len(LENGTHS))
    assert beam.tokens == greedy.tokens
    for beam_attention, greedy_attention in zip(beam.attention, greedy.attention):
        torch.testing.assert_close(beam_attention, greedy_attention)
    if length_penalty == 0.0:
        assert beam.scores == pytest.approx(greedy.scores, abs=1e-9)


@pytest.mark.parametrize("search", ["greedy", "beam"])
@pytest.mark.parametrize("config", MODELS, ids=MODEL_IDS)
def test_batch_equals_each_sentence_alone(config, search):
    model = make_model(*config)
    src, lengths = make_batch()
    decode = greedy_search if search == "greedy" else lambda *a: beam_search(*a, beam_size=3, n_best=3)
    batched = decode(model, src, lengths)
    limits = max_output_length(lengths, 1.5, 10).tolist()
    ended = [len(tokens) < limit for tokens, limit in zip(batched.tokens, limits)]
    assert 2 <= sum(ended) < len(ended), "some sentences should finish early, at different steps, and some not"
    for index in range(len(LENGTHS)):
        single = decode(model, *alone(src, lengths, index))
        assert batched.tokens[index] == single.tokens[0]
        assert batched.scores[index] == pytest.approx(single.scores[0], abs=1e-9)
        assert [t for t, _ in batched.nbest[index]] == [t for t, _ in single.nbest[0]]
        torch.testing.assert_close(batched.attention[index], single.attention[0])


@pytest.mark.parametrize("config", MODELS, ids=MODEL_IDS)
def test_scores_and_attention_match_teacher_forcing(config):
    """Every n-best score is the model's log-prob of that hypothesis; the attention is the model's."""
    model = make_model(*config)
    src, lengths = make_batch()
    limits = max_output_length(lengths, 1.5, 10)
    result = beam_search(model, src, lengths, beam_size=4, n_best=4, length_penalty=0.0)
    check_consistent(result, len(LENGTHS), n_best=4)
    for index in range(len(LENGTHS)):
        for rank, (tokens, score) in enumerate(result.nbest[index]):
            # Live hypotheses are only finished at the limit, so a shorter one must have ended with eos.
            ended = len(tokens) < limits[index]
            tgt = torch.tensor([BOS_ID] + tokens + ([EOS_ID] if ended else []))
            logits, attention = logits_and_attention(model, *alone(src, lengths, index), tgt[:-1].unsqueeze(0))
            log_probs = torch.log_softmax(logits[0], dim=-1).gather(1, tgt[1:].unsqueeze(1))
            assert score == pytest.approx(log_probs.sum().item(), abs=1e-9)
            if rank == 0:
                assert result.attention[index].shape == (len(tokens) + ended, lengths[index])
                torch.testing.assert_close(result.attention[index], attention[0])


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_beam_finds_what_greedy_misses(length_penalty):
    model = BigramModel(GREEDY_MISSES)
    src, lengths = make_batch([3, 1, 2])
    greedy = greedy_search(model, src, lengths)
    assert greedy.tokens == [[A, C]] * 3
    assert greedy.scores == pytest.approx([math.log(0.6 * 0.35)] * 3, abs=1e-4)
    for beam_size in (2, 3, 5):
        beam = beam_search(model, src, lengths, beam_size=beam_size, length_penalty=length_penalty)
        assert beam.tokens == [[B]] * 3
        penalty = ((5 + 2) / 6) ** length_penalty  # "B eos" has length 2
        assert beam.scores == pytest.approx([math.log(0.4 * 0.9) / penalty] * 3, abs=1e-4)
        assert [a.shape for a in beam.attention] == [(2, 3), (2, 1), (2, 2)]


def test_encoder_runs_once_and_steps_advance_whole_batch_under_inference_mode():
    model = BigramModel(GREEDY_MISSES)
    src, lengths = make_batch([3, 1, 2])
    beam_search(model, src, lengths, beam_size=4)
    assert model.encode_calls == 1
    assert model.step_rows[0] == 3 * 4  # all sentences x beams in one step
    assert all(model.inference_mode)


def test_length_penalty_changes_the_choice():
    model = BigramModel(SHORT_OR_LONG)
    src, lengths = make_batch([3, 5])
    assert greedy_search(model, src, lengths).tokens == [[S]] * 2
    none = beam_search(model, src, lengths, beam_size=2, n_best=2, length_penalty=0.0)
    assert none.tokens == [[S]] * 2
    assert none.scores == pytest.approx([math.log(0.55 * 0.9)] * 2, abs=1e-4)
    strong = beam_search(model, src, lengths, beam_size=2, n_best=2, length_penalty=2.0)
    assert strong.tokens == [[L, M, N]] * 2
    assert strong.scores == pytest.approx([math.log(0.45 * 0.95**3) / 1.5**2] * 2, abs=1e-4)  # lp(4) = (9/6)^2
    assert [[t for t, _ in nbest] for nbest in strong.nbest] == [[[L, M, N], [S]]] * 2


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_max_length_is_respected(search):
    decode = {
        "greedy": greedy_search,
        "beam": lambda *a, **k: beam_search(*a, beam_size=3, n_best=3, **k),
    }[search]
    src, lengths = make_batch()
    never_ends = make_model(eos_bias=-100.0)
    result = decode(never_ends, src, lengths, max_length=4)
    assert all(len(tokens) == 4 for nbest in result.nbest for tokens, _ in nbest)
    assert all(attention.shape[0] == 4 for attention in result.attention)  # no eos step
    limits = max_output_length(lengths, 0.5, 1).tolist()
    result = decode(never_ends, src, lengths, max_length_ratio=0.5, max_length_constant=1)
    for limit, nbest in zip(limits, result.nbest):
        assert [len(tokens) for tokens, _ in nbest] == [limit] * len(nbest)
    result = decode(make_model(*MODELS[0]), src, lengths, max_length=3)
    assert all(len(tokens) <= 3 for nbest in result.nbest for tokens, _ in nbest)


def test_max_length_holds_where_longer_would_score_better():
    """With a strong length penalty "L M N eos" beats everything, but the first sentence's limit is 2 steps
    while the second one's (6) keeps the batch going."""
    src, lengths = make_batch([1, 5])
    result = beam_search(BigramModel(SHORT_OR_LONG), src, lengths, beam_size=3, n_best=3, length_penalty=2.0,
                         max_length_ratio=1.0, max_length_constant=1)
    assert [tokens for tokens, _ in result.nbest[0]] == [[S], [L, M], [S, X]]
    assert result.tokens[1] == [L, M, N]


@pytest.mark.parametrize("config", MODELS, ids=MODEL_IDS)
def test_nbest_is_sorted_distinct_and_sized(config):
    src, lengths = make_batch()
    result = beam_search(make_model(*config), src, lengths, beam_size=4, n_best=3)
    check_consistent(result, len(LENGTHS), n_best=3)
    for nbest in result.nbest:
        scores = [score for _, score in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(tokens) for tokens, _ in nbest}) == 3


# "A B C eos" = 0.7 * 0.99^3 = 0.679 is the best, and greedy's. With 2 beams, "J eos" (0.3) finishes at step 2 and
# "A B eos" (0.0069) at step 3, filling the pool while "A B C" (0.686) is still live and far ahead.
A1, B1, C1, J1 = 4, 5, 6, 7
JUNK_FINISHES_FIRST = {BOS_ID: {A1: 0.7, J1: 0.3}, J1: {EOS_ID: 1.0}, A1: {B1: 0.99, EOS_ID: 0.01},
                       B1: {C1: 0.99, EOS_ID: 0.01}, C1: {EOS_ID: 0.99, J1: 0.01}}


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_a_full_pool_does_not_end_the_search_while_a_live_hypothesis_is_ahead(length_penalty):
    """Ending a sentence as soon as K hypotheses have finished (fairseq's rule) would return "J" here, worse than
    greedy search; the search goes on while its best live hypothesis is ahead of the best finished one."""
    src, lengths = make_batch([3, 2])
    greedy = greedy_search(BigramModel(JUNK_FINISHES_FIRST), src, lengths)
    assert greedy.tokens == [[A1, B1, C1]] * 2
    model = BigramModel(JUNK_FINISHES_FIRST)
    beam = beam_search(model, src, lengths, beam_size=2, n_best=2, length_penalty=length_penalty)
    assert beam.tokens == [[A1, B1, C1]] * 2
    penalty = ((5 + 4) / 6) ** length_penalty  # "A B C eos" has length 4
    assert beam.scores == pytest.approx([math.log(0.7 * 0.99**3) / penalty] * 2, abs=1e-4)
    assert [[tokens for tokens, _ in nbest] for nbest in beam.nbest] == [[[A1, B1, C1], [J1]]] * 2
    assert len(model.step_rows) == 4  # and it ends at the step where "A B C eos" finishes


def test_impossible_options_are_refused_where_they_are_made_naming_them():
    for options, named in [(dict(beam_size=0), "beam_size"), (dict(beam_size=2, n_best=3), "n_best"),
                           (dict(beam_size=2, n_best=0), "n_best"), (dict(length_penalty=-1.0), "length_penalty")]:
        with pytest.raises(ValueError, match=named):
            DecodeOptions(**options)


@pytest.mark.parametrize("options", [dict(beam_size=1), dict(beam_size=3, n_best=3), dict(beam_size=5, n_best=2),
                                     dict(beam_size=4, length_penalty=0.0, max_length=6)],
                         ids=["greedy", "beam3", "beam5", "beam4-lp0-max6"])
@pytest.mark.parametrize("config", MODELS, ids=MODEL_IDS)
def test_each_implementation_finds_exactly_what_pytorchs_search_finds(config, options):
    """Not only consistent with itself: the same hypotheses, n-best lists, scores and attention as
    seq2seq.inference.search on the same model and batch."""
    model = make_model(*config)
    src, lengths = make_batch()
    decode = "greedy_search" if options.get("beam_size") == 1 else "beam_search"
    expected = getattr(search, decode)(model, src, lengths, DecodeOptions(**options))
    found = run_search(decode, model, src, lengths, DecodeOptions(**options))
    assert found.tokens == expected.tokens
    assert [[t for t, _ in entries] for entries in found.nbest] == [[t for t, _ in entries] for entries in expected.nbest]
    assert found.scores == pytest.approx(expected.scores, abs=1e-9)
    for got, want in zip(found.attention, expected.attention):
        torch.testing.assert_close(got, want)
