"""Every option of every config group composes, passes the value checks, and maps onto its constructor."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from seq2seq.config import DataConfig, ModelConfig, register_configs
from seq2seq.config_checks import check_train_config
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.models import Seq2Seq

CONF = Path(__file__).resolve().parents[2] / "conf"
register_configs()


def compose_train(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "output_dir=/tmp/unused"])


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


GROUP_OPTIONS = [(group, option) for group in ("data", "model", "trainer", "logger", "callbacks", "experiment")
                 for option in options(group)]


@pytest.mark.parametrize("group, option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_group_option_composes_and_passes_the_checks(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) in (("data", "text"), ("experiment", "wmt_bilstm")):
        overrides.append("data.root=/some/corpus")
    cfg = compose_train(overrides)
    check_train_config(cfg)
    assert OmegaConf.to_container(cfg, resolve=False)


def test_the_groups_have_the_documented_options():
    assert {"bilstm", "bigru", "lstm", "luong"} <= set(options("model"))
    assert {"default", "cpu", "gpu", "ddp", "ddp_cpu"} <= set(options("trainer"))
    assert {"numbers", "multi30k", "text"} <= set(options("data"))
    assert {"multi30k_bilstm", "ref_bilstm", "wmt_bilstm"} <= set(options("experiment"))


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


@pytest.mark.skipif(not has_module("hydra_plugins.hydra_optuna_sweeper"),
                    reason="hydra-optuna-sweeper is an optional extra (pip install -e '.[optuna]')")
def test_optuna_search_composes():
    cfg = compose_train(["hparams_search=optuna"])
    assert cfg.optimized_metric == "val/bleu"


def test_model_and_data_keys_are_constructor_arguments():
    model_args = set(inspect.signature(Seq2Seq.__init__).parameters) - {"self", "src_vocab_size", "tgt_vocab_size",
                                                                        "padding_idx"}
    assert set(ModelConfig.__dataclass_fields__) == model_args
    data_args = set(inspect.signature(TranslationDataModule.__init__).parameters) - {"self", "tokenizer_dir"}
    assert set(DataConfig.__dataclass_fields__) == data_args


def test_reference_experiment_is_the_documented_model():
    cfg = compose_train(["experiment=ref_bilstm"])
    model = Seq2Seq(7865, 5921, **OmegaConf.to_container(cfg.model))
    assert sum(p.numel() for p in model.parameters()) == 14_709_537
    assert cfg.model.attention == "general" and cfg.model.input_feeding and cfg.model.bridge == "concat_raw"
    assert cfg.data.batch_size == 64 and cfg.trainer.gradient_clip_val == 1.0 and cfg.optim.lr == 1e-3


@pytest.mark.parametrize("override, key", [("model.hiden_size=3", "hiden_size"), ("model.hidden_size=big", "hidden_size"),
                                           ("optim.lr=fast", "lr")])
def test_typos_and_wrong_types_fail_at_composition_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as error:
        compose_train([override])
    assert key in str(error.value) + str(error.value.__cause__)


def test_text_data_needs_a_root():
    cfg = compose_train(["data=text"])
    assert OmegaConf.is_missing(cfg.data, "root")


def test_keys_added_with_plus_are_refused_by_the_checks():
    from seq2seq.config_checks import ConfigError

    cfg = compose_train(["+model.hiden_size=3"])
    with pytest.raises(ConfigError, match=r"model\.hiden_size: unknown key"):
        check_train_config(cfg)
