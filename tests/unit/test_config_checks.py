"""check_train_config refuses well-typed but impossible values, naming the key (typos and wrong types fail
earlier, when the config is composed: tests/unit/test_config.py)."""

from __future__ import annotations

import pytest

from seq2seq.config_checks import ConfigError, check_train_config
from tests.e2e.conftest import compose_train, tiny_overrides

IMPOSSIBLE = [
    ("optim.lr=-0.001", "optim.lr", "must be positive"),
    ("optim.lr=0", "optim.lr", "must be positive"),
    ("data.batch_size=0", "data.batch_size", "must be positive"),
    ("data.max_tokens=-5", "data.max_tokens", "must be positive"),
    ("decode.beam_size=0", "decode.beam_size", "at least 1"),
    ("model.dropout=1.0", "model.dropout", "[0, 1)"),
    ("model.hidden_size=0", "model.hidden_size", "must be positive"),
    ("optim.label_smoothing=1.5", "optim.label_smoothing", "[0, 1)"),
    ("optim.loss_normalization=words", "optim.loss_normalization", "['tokens', 'sentences']"),
    ("optim.max_nonfinite_in_a_row=0", "optim.max_nonfinite_in_a_row", "at least 1"),
    ("checkpoint_every_n_steps=0", "checkpoint_every_n_steps", "positive"),
    ("monitor_mode=up", "monitor_mode", "['min', 'max']"),
    ("resume=always", "resume", "['never', 'auto']"),
    ("+trainer.max_epoch=3", "trainer.max_epoch", "not a Lightning Trainer argument"),
]


def test_the_default_and_tiny_configs_pass(tmp_path):
    check_train_config(compose_train([]))
    check_train_config(compose_train(tiny_overrides(tmp_path)))


@pytest.mark.parametrize("override,key,words", IMPOSSIBLE, ids=[case[0] for case in IMPOSSIBLE])
def test_an_impossible_value_is_refused_naming_the_key(tmp_path, override, key, words):
    cfg = compose_train(tiny_overrides(tmp_path) + [override])
    with pytest.raises(ConfigError) as caught:
        check_train_config(cfg)
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and words in message


def test_a_merging_bridge_needs_two_directions(tmp_path):
    cfg = compose_train(tiny_overrides(tmp_path) + ["model.bridge=sum", "model.bidirectional=false"])
    with pytest.raises(ConfigError, match=r"^model.bridge: 'sum' merges two directions and needs model.bidirectional"):
        check_train_config(cfg)
