"""How parameters start: every scheme draws what it says, and the shipped configs do not fall back to PyTorch's
per-module defaults, whose small RNN and Linear weights halve what the model learns in its first steps
(benchmarks/README.md, "Learning per step")."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from seq2seq.config_checks import ConfigError, check_train_config
from seq2seq.models import Seq2Seq
from seq2seq.models.initialization import initialize
from seq2seq.training.module import TranslationModule
from tests.unit.test_config import compose_train, options

SRC_VOCAB, TGT_VOCAB = 50, 60
SHIPPED = [f"model={name}" for name in options("model")] + [f"experiment={name}" for name in options("experiment")]


def embeddings(model: Seq2Seq) -> list[nn.Embedding]:
    return [model.encoder.embedding, model.decoder.embedding]


def tiny(**options) -> Seq2Seq:
    settings = dict(src_embedding_dim=8, tgt_embedding_dim=8, hidden_size=12, encoder_num_layers=2,
                    decoder_num_layers=2, dropout=0.0)
    return Seq2Seq(SRC_VOCAB, TGT_VOCAB, **{**settings, **options})


@pytest.mark.parametrize("shipped", SHIPPED)
def test_every_shipped_config_starts_with_uniform_weights_and_unit_normal_embeddings(shipped):
    cfg = compose_train([shipped])
    torch.manual_seed(0)
    # Through the LightningModule, as train.py builds it: the settings must reach the network.
    module = TranslationModule(OmegaConf.to_container(cfg.model), 500, 400, OmegaConf.to_container(cfg.optim),
                               OmegaConf.to_container(cfg.decode))
    bound = cfg.model.init_range
    assert (cfg.model.init, bound, cfg.model.embedding_init_std) == ("uniform", 0.1, 1.0)
    tables = {id(embedding.weight) for embedding in embeddings(module.model)}
    for name, parameter in module.model.named_parameters():
        if id(parameter) in tables:
            continue
        assert parameter.abs().max() <= bound, name
        if parameter.numel() >= 100:
            # PyTorch's defaults for these layers stay within 1/sqrt(fan_in): at most 0.0625 in these models.
            assert parameter.abs().max() > 0.09, name
    for embedding in embeddings(module.model):
        real_rows = torch.cat([embedding.weight[: embedding.padding_idx], embedding.weight[embedding.padding_idx + 1:]])
        assert float(real_rows.std()) == pytest.approx(1.0, rel=0.05)
        assert embedding.weight[embedding.padding_idx].abs().sum() == 0


def test_uniform_spreads_every_parameter_over_its_range():
    torch.manual_seed(0)
    model = tiny(init="uniform", init_range=0.3, embedding_init_std=None)  # OpenNMT-py's: embeddings too
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.3, name
        if parameter.numel() >= 100:
            assert parameter.abs().max() > 0.25, name  # not left at a smaller default
    assert model.decoder.rnn.bias_ih_l0.abs().sum() > 0  # biases are drawn too


def test_embedding_init_std_draws_the_embeddings_alone():
    torch.manual_seed(0)
    model = Seq2Seq(300, 400, init="uniform", init_range=0.1, embedding_init_std=0.5)
    for embedding in embeddings(model):
        assert float(embedding.weight[1:].std()) == pytest.approx(0.5, rel=0.05)
        assert embedding.weight[0].abs().sum() == 0
    assert model.output_layer.weight.abs().max() <= 0.1


def test_xavier_bounds_each_gate_by_its_own_shape_and_zeroes_biases():
    torch.manual_seed(0)
    model = tiny(init="xavier", embedding_init_std=None)
    rnn = model.decoder.rnn  # input: embedding 8 + fed-back 12; 4 gates of 12
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"):
        weight = getattr(rnn, name)
        bound = math.sqrt(6.0 / (weight.shape[1] + rnn.hidden_size))  # one gate: (H, in)
        for gate in weight.chunk(4, dim=0):
            assert gate.abs().max() <= bound
            assert gate.abs().max() > 0.8 * bound
    for name, parameter in model.named_parameters():
        if parameter.dim() == 1:
            assert parameter.abs().sum() == 0, name
    table = model.encoder.embedding.weight  # (V, E): drawn as a matrix too, with embedding_init_std=None
    assert table.abs().max() <= math.sqrt(6.0 / sum(table.shape))


def test_pytorch_keeps_each_modules_default():
    torch.manual_seed(0)
    model = Seq2Seq(SRC_VOCAB, 5000, init="pytorch")
    assert float(model.decoder.embedding.weight.std()) == pytest.approx(1.0, rel=0.05)  # nn.Embedding: N(0, 1)
    bound = 1 / math.sqrt(model.decoder.rnn.hidden_size)  # nn.LSTM: U(-1/sqrt(H), 1/sqrt(H))
    assert model.decoder.rnn.weight_hh_l0.abs().max() <= bound


def test_lstm_forget_bias_sets_only_the_forget_gate():
    torch.manual_seed(0)
    model = tiny(lstm_forget_bias=1.0)
    for rnn in (model.encoder.rnn, model.decoder.rnn):
        hidden = rnn.hidden_size
        for name, bias in rnn.named_parameters():
            if not name.startswith("bias"):
                continue
            forget = bias[hidden:2 * hidden]
            expected = 1.0 if name.startswith("bias_ih") else 0.0
            assert torch.all(forget == expected), name
            others = torch.cat([bias[:hidden], bias[2 * hidden:]])
            assert others.abs().max() <= 0.1 and others.abs().sum() > 0, name  # still drawn by the scheme


def test_a_tied_output_layer_is_drawn_once_by_the_scheme():
    torch.manual_seed(0)
    model = tiny(tgt_embedding_dim=12, tie_embeddings=True)
    assert model.output_layer.weight is model.decoder.embedding.weight
    # The shared matrix is the output layer's weight too: U(-0.1, 0.1), not N(0, 1) (logits would blow up).
    assert model.output_layer.weight.abs().max() <= 0.1
    assert model.output_layer.weight[0].abs().sum() == 0  # the padding row, zeroed after the draw
    assert float(model.encoder.embedding.weight[1:].std()) > 0.5  # the untied source embeddings: N(0, 1)


def test_an_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match=r"init must be one of \['uniform', 'xavier', 'pytorch'\]"):
        initialize(nn.Linear(2, 2), "normal")


@pytest.mark.parametrize("override, key, words", [
    ("model.init=normal", "model.init", "must be one of"),
    ("model.init_range=0", "model.init_range", "must be in (0, 1]"),
    ("model.lstm_forget_bias=1.0", "model.lstm_forget_bias", "'gru'"),
    ("model.embedding_init_std=0", "model.embedding_init_std", "must be positive or null"),
])
def test_impossible_init_settings_are_refused_naming_the_key(override, key, words):
    cfg = compose_train(["model=bigru", override])
    with pytest.raises(ConfigError) as caught:
        check_train_config(cfg)
    assert str(caught.value).startswith(f"{key}: ") and words in str(caught.value)
