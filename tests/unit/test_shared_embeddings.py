"""model.share_embeddings: one embedding table for encoder and decoder (and the output layer with tie_embeddings),
through initialization, the optimizer, checkpoints, the Translator, averaging and int8 quantization."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from torch import nn

from seq2seq.config import OptimConfig
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.loading import average_checkpoints, build_model
from seq2seq.inference.quantize import quantize_int8
from seq2seq.inference.translator import Translator
from seq2seq.models import Seq2Seq
from seq2seq.models.initialization import initialize
from seq2seq.training.module import TranslationModule
from tests.unit.test_checkpoint import SRC_TEXTS, TGT_TEXTS, write_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")

SIZES = dict(src_embedding_dim=6, tgt_embedding_dim=6, hidden_size=6, dropout=0.0)
VOCAB = 23


def model(**settings) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(VOCAB, VOCAB, **{**SIZES, **settings})


def shared_module(seed: int = 0, tie_embeddings: bool = True) -> TranslationModule:
    """A tiny TranslationModule with one word tokenizer for both sides, as data.share_vocab trains it."""
    torch.manual_seed(seed)
    shared = TextTokenizer.train(SRC_TEXTS + TGT_TEXTS, "word", 50, 1)
    module = TranslationModule(
        model={**SIZES, "share_embeddings": True, "tie_embeddings": tie_embeddings},
        src_vocab_size=shared.vocab_size,
        tgt_vocab_size=shared.vocab_size,
        optim=asdict(OptimConfig()),
        decode=asdict(DecodeOptions(beam_size=1)),
    )
    module.attach_tokenizers(shared, shared)
    return module


def assert_shared(network: Seq2Seq, with_output_layer: bool) -> None:
    assert network.encoder.embedding.weight is network.decoder.embedding.weight
    assert (network.output_layer.weight is network.decoder.embedding.weight) == with_output_layer


def count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize("tie", [False, True])
def test_one_table_for_both_sides_saves_exactly_a_vocabulary_times_the_embedding_size(tie):
    separate, shared = model(tie_embeddings=tie), model(tie_embeddings=tie, share_embeddings=True)
    assert_shared(shared, with_output_layer=tie)
    assert separate.encoder.embedding.weight is not separate.decoder.embedding.weight
    assert count(separate) - count(shared) == VOCAB * SIZES["src_embedding_dim"]


def test_both_sides_train_the_one_table():
    network = model(share_embeddings=True, tie_embeddings=True)
    src = torch.tensor([[5, 6, 7]])
    tgt_in = torch.tensor([[2, 9, 10]])
    real = torch.ones(1, 3, dtype=torch.bool)
    network.target_log_probs(src, torch.tensor([3]), tgt_in, real).sum().backward()
    grad = network.encoder.embedding.weight.grad  # (V, E)
    # Rows the source alone uses (5, 6, 7), rows the target's input uses (9, 10): both sides reach the one table.
    assert grad[[5, 6, 7]].abs().sum() > 0 and grad[[9, 10]].abs().sum() > 0


@pytest.mark.parametrize("settings", [dict(tgt_embedding_dim=8), dict()])
def test_tables_of_different_shapes_are_refused_naming_both(settings):
    with pytest.raises(ValueError, match=r"share_embeddings needs one vocabulary and one embedding size.*source"):
        Seq2Seq(VOCAB, VOCAB + (0 if settings else 1), **{**SIZES, **settings, "share_embeddings": True})


def test_xavier_draws_the_shared_table_once(monkeypatch):
    calls = []
    original = nn.init.xavier_uniform_
    monkeypatch.setattr(nn.init, "xavier_uniform_", lambda tensor: calls.append(tensor.data_ptr()) or original(tensor))
    network = model(share_embeddings=True, init="xavier", embedding_init_std=None)
    calls.clear()
    initialize(network, "xavier", 0.1, None, None)
    assert calls.count(network.encoder.embedding.weight.data_ptr()) == 1


def test_the_shared_table_is_drawn_as_an_embedding_once_with_its_padding_row_zero(monkeypatch):
    calls = []
    original = torch.Tensor.normal_
    monkeypatch.setattr(torch.Tensor, "normal_", lambda tensor, *a, **k: calls.append(tensor.data_ptr()) or
                        original(tensor, *a, **k))
    network = model(share_embeddings=True, embedding_init_std=1.0)
    calls.clear()  # nn.Embedding draws its own weight when made; count initialize's draws alone
    initialize(network, "uniform", 0.1, None, 1.0)
    table = network.encoder.embedding.weight
    assert calls.count(table.data_ptr()) == 1
    assert torch.all(table[0] == 0)
    assert float(table[1:].detach().std()) == pytest.approx(1.0, rel=0.35)


def test_the_optimizer_updates_a_shared_table_once_and_it_stays_shared():
    module = shared_module()
    optimizer = module.configure_optimizers()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(parameters) == len({id(p) for p in parameters}) == len(list(module.model.parameters()))
    before = module.model.encoder.embedding.weight.detach().clone()
    from seq2seq.data.collate import collate

    src = module.src_tokenizer.encode_batch(SRC_TEXTS)
    tgt = module.tgt_tokenizer.encode_batch(TGT_TEXTS)
    batch = collate([(i, s, t) for i, (s, t) in enumerate(zip(src, tgt))])
    loss, _ = module.loss(batch)
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, module.model.encoder.embedding.weight)
    assert_shared(module.model, with_output_layer=True)


def test_a_checkpoint_rebuilds_the_tie_through_the_translator(tmp_path):
    module = shared_module()
    path = write_checkpoint(tmp_path / "shared.ckpt", module)
    translator = Translator.from_checkpoint(path, device="cpu")
    network = translator.decoding.model
    assert_shared(network, with_output_layer=True)
    assert torch.equal(network.encoder.embedding.weight, module.model.encoder.embedding.weight)
    assert translator.text.src_tokenizer == translator.text.tgt_tokenizer
    assert len(translator.translate(["ein zwei"])) == 1


def test_averaged_checkpoints_keep_the_tie_and_average_the_table(tmp_path):
    paths = [write_checkpoint(tmp_path / f"{seed}.ckpt", shared_module(seed), global_step=seed) for seed in (1, 2)]
    averaged = build_model(average_checkpoints(paths))
    assert_shared(averaged, with_output_layer=True)
    tables = [shared_module(seed).model.encoder.embedding.weight.detach() for seed in (1, 2)]
    assert torch.allclose(averaged.encoder.embedding.weight, (tables[0] + tables[1]) / 2)


def test_int8_quantization_of_a_shared_model_translates_and_leaves_the_original_tied():
    module = shared_module()
    network = module.model.eval()
    quantized = quantize_int8(network)
    assert_shared(network, with_output_layer=True)
    src = torch.tensor([[4, 5, 6]])
    memory, state = quantized.encode(src, torch.tensor([3]))
    log_probs, _, _ = quantized.step_log_probs(torch.tensor([2]), memory, state)
    assert log_probs.shape == (1, module.tgt_tokenizer.vocab_size)
    assert torch.allclose(log_probs.exp().sum(), torch.tensor(1.0), atol=1e-4)


def test_different_tokenizers_cannot_share_one_table():
    module = shared_module()
    other = TextTokenizer.train(["x y z"] * 3 + TGT_TEXTS + SRC_TEXTS[:1], "word", module.tgt_tokenizer.vocab_size, 1)
    assert other.vocab_size == module.tgt_tokenizer.vocab_size and other != module.src_tokenizer
    with pytest.raises(ValueError, match=r"model\.share_embeddings.*data\.share_vocab=true"):
        module.attach_tokenizers(module.src_tokenizer, other)
