"""The whole model: shapes, padding invariance, weight tying, size, and that it can learn at all."""

import itertools

import pytest
import torch
from torch.nn import functional as F

from seq2seq.models import Seq2Seq
from seq2seq.models.attention import KINDS
from tests.helpers.teacher_forcing import logits_and_attention

pytestmark = pytest.mark.usefixtures("single_thread")

PAD, BOS, EOS = 0, 1, 2
SRC_VOCAB, TGT_VOCAB = 13, 11
B, S, T = 3, 6, 5


def small_model(**overrides):
    torch.manual_seed(0)
    options = dict(src_embedding_dim=5, tgt_embedding_dim=6, hidden_size=8)
    options.update(overrides)
    return Seq2Seq(SRC_VOCAB, TGT_VOCAB, **options)


def padded(lengths, max_length, vocab_size, seed):
    """(B, max_length) random real tokens up to each length, PAD after."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(EOS + 1, vocab_size, (len(lengths), max_length), generator=generator)
    tokens[torch.arange(max_length).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    return tokens, lengths


def test_constructs_from_vocabulary_sizes_alone():
    model = Seq2Seq(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB).eval()
    src, src_lengths = padded([2, 6, 4], S, SRC_VOCAB, seed=0)
    tgt_in, _ = padded([5, 3, 1], T, TGT_VOCAB, seed=1)

    with torch.no_grad():
        logits, attention = logits_and_attention(model, src, src_lengths, tgt_in)

    assert logits.shape == (B, T, TGT_VOCAB)
    assert attention.shape == (B, T, S)


@pytest.mark.parametrize(
    "rnn_type, attention, bridge",
    [
        ("lstm", "bahdanau", "concat"),
        ("gru", "general", "concat_raw"),
        ("lstm", "dot", "mean"),
        ("gru", "bahdanau", "zeros"),
    ],
)
def test_output_shapes(rnn_type, attention, bridge):
    model = small_model(rnn_type=rnn_type, attention=attention, bridge=bridge, encoder_num_layers=2).eval()
    src, src_lengths = padded([2, 6, 4], S, SRC_VOCAB, seed=0)
    tgt_in, _ = padded([5, 3, 1], T, TGT_VOCAB, seed=1)

    with torch.no_grad():
        logits, attention_weights = logits_and_attention(model, src, src_lengths, tgt_in)

    assert logits.shape == (B, T, TGT_VOCAB)
    assert attention_weights.shape == (B, T, S)


@pytest.mark.parametrize(
    "rnn_type, attention, input_feeding",
    list(itertools.product(["lstm", "gru"], KINDS, [True, False])),
    ids=lambda value: {True: "feed", False: "nofeed"}.get(value, value) if isinstance(value, bool) else value,
)
def test_a_sentence_gets_the_same_logits_alone_or_padded_in_a_batch(rnn_type, attention, input_feeding):
    model = small_model(
        rnn_type=rnn_type, attention=attention, input_feeding=input_feeding, encoder_num_layers=2, decoder_num_layers=2
    ).eval()  # eval: the default dropout is on
    # Every sentence is padded on both sides, none as long as S or T.
    src, src_lengths = padded([2, 5, 3], S, SRC_VOCAB, seed=0)
    tgt_in, tgt_lengths = padded([3, 4, 2], T, TGT_VOCAB, seed=1)

    with torch.no_grad():
        batch_logits, batch_attention = logits_and_attention(model, src, src_lengths, tgt_in)
        for b, (n, m) in enumerate(zip(src_lengths.tolist(), tgt_lengths.tolist())):
            logits, attention_weights = logits_and_attention(model, src[b : b + 1, :n], src_lengths[b : b + 1], tgt_in[b : b + 1, :m])

            torch.testing.assert_close(batch_logits[b, :m], logits[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(batch_attention[b, :m, :n], attention_weights[0], rtol=0, atol=1e-5)
            assert torch.equal(batch_attention[b, :, n:], torch.zeros(T, S - n))


def test_tied_embeddings_share_one_parameter():
    untied = small_model(tgt_embedding_dim=8)
    tied = small_model(tgt_embedding_dim=8, tie_embeddings=True)

    assert tied.output_layer.weight is tied.decoder.embedding.weight
    assert untied.output_layer.weight is not untied.decoder.embedding.weight
    count = lambda model: sum(parameter.numel() for parameter in model.parameters())  # noqa: E731
    assert count(untied) - count(tied) == TGT_VOCAB * 8
    # A gradient step through the output layer moves the embedding too.
    src, src_lengths = padded([2, 5, 3], S, SRC_VOCAB, seed=0)
    tgt_in, _ = padded([3, 4, 2], T, TGT_VOCAB, seed=1)
    logits_and_attention(tied, src, src_lengths, tgt_in)[0].sum().backward()
    assert tied.decoder.embedding.weight.grad is tied.output_layer.weight.grad


def test_tied_embeddings_with_mismatched_sizes_raise():
    with pytest.raises(ValueError, match="tie_embeddings"):
        small_model(tgt_embedding_dim=6, hidden_size=8, tie_embeddings=True)


def test_hidden_size_not_divisible_by_the_directions_raises():
    with pytest.raises(ValueError, match="divisible"):
        small_model(hidden_size=7, bidirectional=True)


def test_reference_configuration_has_the_reference_parameter_count():
    model = Seq2Seq(
        7865,
        5921,
        hidden_size=512,
        encoder_num_layers=2,
        decoder_num_layers=2,
        attention="general",
        bridge="concat_raw",
        dropout=0.3,
    )

    count = sum(parameter.numel() for parameter in model.parameters())

    assert 14.6e6 <= count <= 14.8e6


# A handful of pairs with a rule to learn (reverse the sentence, shift each token), unsorted lengths.
SOURCES = [[3, 4, 5], [6, 7, 8, 9], [10, 3], [4, 4, 11, 12, 5], [9], [8, 6, 7]]


def target_of(source):
    return [3 + (token - 3 + 1) % (TGT_VOCAB - 3) for token in reversed(source)]


def pad_rows(rows):
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows])


def greedy(model, src, src_lengths, max_steps):
    """Decode one sentence (src (1, S)) token by token until <eos>."""
    memory, state = model.encode(src, src_lengths)
    token = torch.tensor([BOS])
    result = []
    for _ in range(max_steps):
        output, _, state = model.decoder.step(token, memory, state)
        token = model.output_layer(output).argmax(-1)  # (1,)
        if token.item() == EOS:
            break
        result.append(token.item())
    return result


def test_a_small_model_overfits_a_handful_of_pairs_exactly():
    torch.manual_seed(0)
    model = Seq2Seq(SRC_VOCAB, TGT_VOCAB, src_embedding_dim=16, tgt_embedding_dim=16, hidden_size=32, dropout=0.0)
    targets = [target_of(source) for source in SOURCES]
    src = pad_rows(SOURCES)
    src_lengths = torch.tensor([len(source) for source in SOURCES])
    tgt_in = pad_rows([[BOS] + target for target in targets])
    tgt_out = pad_rows([target + [EOS] for target in targets])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    model.train()
    for _ in range(200):
        optimizer.zero_grad()
        logits = logits_and_attention(model, src, src_lengths, tgt_in)[0]  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, TGT_VOCAB), tgt_out.reshape(-1), ignore_index=PAD)
        loss.backward()
        optimizer.step()

    assert loss.item() < 0.05
    model.eval()
    with torch.no_grad():
        decoded = [
            greedy(model, src[b : b + 1, :n], src_lengths[b : b + 1], max_steps=len(targets[b]) + 3)
            for b, n in enumerate(src_lengths.tolist())
        ]
    assert decoded == targets
