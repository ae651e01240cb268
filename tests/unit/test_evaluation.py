"""Translation in batches (order, empty lines, unknown words, truncation), input reading, rebuilding a model
from a checkpoint, checkpoint averaging, and the data settings a split evaluation uses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch import Tensor

from seq2seq.checkpoint import CheckpointError, read_checkpoint
from seq2seq.config import register_configs
from seq2seq.config_checks import ConfigError
from seq2seq.data.tokenizer import EOS_ID, PAD_ID, TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.evaluation import check_evaluate_config, output_paths, split_data_settings
from seq2seq.inference.length_batches import length_batches
from seq2seq.inference.loading import average_checkpoints, build_model, latest_checkpoints
from seq2seq.inference.search import greedy_search
from seq2seq.inference.text_io import format_nbest, format_translations, read_input
from seq2seq.inference.translator import LoadedCheckpoint, Translator
from seq2seq.models import Seq2Seq
from tests.helpers.teacher_forcing import logits_and_attention
from tests.unit.test_checkpoint import make_module, write_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
GREEDY = dict(beam_size=1, length_penalty=0.6, n_best=1, max_length_ratio=1.5, max_length_constant=10, max_length=None)
BEAM = dict(GREEDY, beam_size=3, n_best=2)


# ------------------------------------------------------------------------------- a model that copies
class _Source(NamedTuple):
    src: Tensor  # (N, S)

    def index_select(self, rows: Tensor) -> "_Source":
        return _Source(self.src.index_select(0, rows))


class _Position(NamedTuple):
    step: Tensor  # (N,) tokens emitted so far

    def index_select(self, rows: Tensor) -> "_Position":
        return _Position(self.step.index_select(0, rows))


class CopyModel:
    """The search's interface, translating by copying: step t is sure of source token t, then of eos.

    With one tokenizer on both sides, every output reads exactly as its own input, so any mix-up of
    sentences between batches shows.
    """

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.decoder = self

    def encode(self, src: Tensor, src_lengths: Tensor):
        return _Source(src), _Position(torch.zeros(src.size(0), dtype=torch.long))

    def step(self, tokens: Tensor, memory: _Source, state: _Position):
        src = memory.src
        position = state.step.clamp(max=src.size(1) - 1).unsqueeze(1)  # (N, 1)
        wanted = src.gather(1, position).squeeze(1)  # (N,)
        wanted = torch.where((state.step < src.size(1)) & (wanted != PAD_ID), wanted, EOS_ID)
        logits = torch.full((src.size(0), self.vocab_size), -20.0)
        logits[torch.arange(src.size(0)), wanted] = 20.0
        return logits, torch.zeros(src.shape), _Position(state.step + 1)

    def step_log_probs(self, tokens: Tensor, memory: _Source, state: _Position):
        logits, attention, state = self.step(tokens, memory, state)
        return torch.log_softmax(logits, dim=-1), attention, state


def translate_lines(translator: Translator, lines, decode: dict, batch_size: int, max_input_tokens: int,
                    lowercase: bool = False, name: str = "input", on_batch=None, max_tokens=None):
    """Raw lines through the translator's two halves: its text encoding, then its decoding path."""
    translator.text.max_input_tokens, translator.text.lowercase = max_input_tokens, lowercase
    return translator.decoding.translate_ids(translator.text.sources(lines, name), DecodeOptions(**decode),
                                             batch_size=batch_size, max_tokens=max_tokens, on_batch=on_batch)


@pytest.fixture
def copier() -> Translator:
    tokenizer = TextTokenizer.train(["a b c d e f g h"], "word", 50, 1)
    return Translator(CopyModel(tokenizer.vocab_size), tokenizer, tokenizer, torch.device("cpu"))


LINES = ["a b c", "", "d", "e f g h a b", "   ", "b zzz c", "h g", "a"]


@pytest.mark.parametrize("decode", [GREEDY, BEAM], ids=["greedy", "beam"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_translations_come_back_in_input_order_whatever_the_batching(copier, decode, batch_size):
    translations = translate_lines(copier, LINES, decode, batch_size, max_input_tokens=100)
    expected = [line.strip().replace("zzz", "<unk>") for line in LINES]
    assert [t.text for t in translations] == expected


def test_empty_lines_never_reach_the_model(copier):
    calls = []
    translations = translate_lines(copier, ["", "a", "  ", ""], GREEDY, 64, 100, on_batch=calls.append)
    assert [t.text for t in translations] == ["", "a", "", ""]
    assert calls == [1]  # one batch holding the single non-empty line


def test_long_lines_are_truncated_with_a_warning_naming_them(copier, caplog):
    lines = ["a b c d e f", "a b", "h g f e d c b a"]
    with caplog.at_level(logging.WARNING):
        translations = translate_lines(copier, lines, GREEDY, 64, max_input_tokens=4, name="in.txt")
    assert [t.text for t in translations] == ["a b c d", "a b", "h g f e"]
    warning = " ".join(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert "in.txt" in warning and "truncated to 4 tokens" in warning
    assert "line 1 (6 tokens)" in warning and "line 3 (8 tokens)" in warning and "line 2 " not in warning


def test_lowercasing_follows_the_training_data(copier):
    assert translate_lines(copier, ["A B"], GREEDY, 64, 100, lowercase=True)[0].text == "a b"
    assert translate_lines(copier, ["A B"], GREEDY, 64, 100)[0].text == "<unk> <unk>"


def test_nbest_output_uses_moses_format(copier):
    translations = translate_lines(copier, ["a b", "", "c"], BEAM, 64, 100)
    lines = format_nbest(translations, 2).splitlines()
    assert [line.split(" ||| ")[:2] for line in lines][:2] == [["0", "a b"], ["0", lines[1].split(" ||| ")[1]]]
    assert {line.split(" ||| ")[0] for line in lines} == {"0", "1", "2"}
    assert format_translations(translations) == "a b\n\nc\n"


@pytest.mark.parametrize("batch_size, max_tokens", [(4, 10), (64, 7), (2, None), (64, 1)])
def test_decoding_batches_keep_to_the_sentence_and_token_budgets_and_results_keep_input_order(copier, batch_size,
                                                                                              max_tokens):
    generator = torch.Generator().manual_seed(0)
    lengths = [int(n) for n in torch.randint(0, 9, (40,), generator=generator)]
    batches = length_batches(lengths, batch_size, max_tokens)
    assert sorted(i for batch in batches for i in batch) == [i for i, n in enumerate(lengths) if n]  # each once
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= batch_size
        assert max_tokens is None or padded <= max_tokens or len(batch) == 1  # a long one alone
    lines = [" ".join("abcdefgh"[(i + j) % 8] for j in range(n)) for i, n in enumerate(lengths)]
    seen = []
    translations = translate_lines(copier, lines, GREEDY, batch_size, 100, on_batch=seen.append, max_tokens=max_tokens)
    assert [t.text for t in translations] == lines
    assert seen == [len(batch) for batch in batches]


def test_batched_decoding_of_a_real_model_equals_decoding_one_sentence_at_a_time():
    torch.manual_seed(0)
    model = Seq2Seq(12, 12, src_embedding_dim=8, tgt_embedding_dim=8, hidden_size=8, dropout=0.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
        model.output_layer.bias[EOS_ID] += 1.0  # so that hypotheses end at varied steps
    model = model.double().eval()
    tokenizer = TextTokenizer.train(["a b c d e f g h"], "word", 12, 1)
    translator = Translator(model, tokenizer, tokenizer, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    src_ids = [torch.randint(4, 12, (n,), generator=generator).tolist() for n in (3, 7, 1, 5, 2, 6, 4)]
    batched = translator.decoding.translate_ids(src_ids, DecodeOptions(**GREEDY), batch_size=3, max_tokens=None)
    for ids, translation in zip(src_ids, batched):
        alone = greedy_search(model, torch.tensor([ids]), torch.tensor([len(ids)]), DecodeOptions(**GREEDY))
        assert translation.text == tokenizer.decode(alone.tokens[0])
        assert translation.score == pytest.approx(alone.scores[0])


# ---------------------------------------------------------------------------------------- reading input
def test_read_input_splits_on_newlines_only(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffone\r\ntwo\u2028half\n\nlast\n".encode("utf-8"))  # BOM, CRLF, U+2028, empty line
    assert read_input(str(path)) == ["one", "two\u2028half", "", "last"]


def test_read_input_names_the_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(ValueError, match=r"in\.txt:2: not valid UTF-8"):
        read_input(str(path))
    with pytest.raises(FileNotFoundError, match="input: file not found"):
        read_input(str(tmp_path / "missing.txt"))


# ---------------------------------------------------------------------------------------- checkpoints
def test_the_rebuilt_model_computes_what_the_trained_one_did(tmp_path):
    module = make_module(seed=3).eval()
    rebuilt = build_model(read_checkpoint(write_checkpoint(tmp_path / "m.ckpt", module)))
    src, src_lengths = torch.tensor([[4, 5, 6], [7, 4, 0]]), torch.tensor([3, 2])
    tgt_in = torch.tensor([[2, 4], [2, 5]])
    with torch.no_grad():
        assert torch.equal(logits_and_attention(rebuilt, src, src_lengths, tgt_in)[0], logits_and_attention(module.model, src, src_lengths, tgt_in)[0])
    assert not rebuilt.training


def test_weights_that_do_not_fit_the_hyperparameters_name_the_file(tmp_path):
    path = write_checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["hidden_size"] = 8
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="do not fit") as caught:
        build_model(read_checkpoint(path))
    assert str(path) in str(caught.value)


def test_averaging_takes_the_latest_distinct_steps_and_means_their_weights(tmp_path):
    modules = {step: make_module(seed=step) for step in (10, 20, 30)}
    for step, module in modules.items():
        write_checkpoint(tmp_path / f"best-step{step}.ckpt", module, global_step=step)
    write_checkpoint(tmp_path / "last.ckpt", modules[30], global_step=30)  # the same step twice counts once
    paths = latest_checkpoints(tmp_path, 2)
    assert [read_checkpoint(path).global_step for path in paths] == [30, 20]
    averaged = average_checkpoints(paths)
    for name, value in averaged.state_dict.items():
        if name.startswith("model."):
            expected = (modules[30].state_dict()[name] + modules[20].state_dict()[name]) / 2
            assert torch.allclose(value, expected, atol=1e-7), name
    assert averaged.global_step == 30
    with pytest.raises(CheckpointError, match="only 3 distinct steps"):
        latest_checkpoints(tmp_path, 4)


def test_checkpoints_of_different_models_are_not_averaged(tmp_path):
    write_checkpoint(tmp_path / "a.ckpt", make_module(), global_step=1)
    write_checkpoint(tmp_path / "b.ckpt", make_module(model={"hidden_size": 8, "src_embedding_dim": 4}), global_step=2)
    with pytest.raises(CheckpointError, match="cannot be averaged"):
        average_checkpoints([tmp_path / "b.ckpt", tmp_path / "a.ckpt"])


# ------------------------------------------------------------------------------------ config and data
def compose_evaluate(*overrides: str):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def test_evaluate_config_refuses_unknown_keys_and_defaults_to_beam_5():
    cfg = compose_evaluate("ckpt_path=x.ckpt")
    assert cfg.decode.beam_size == 5 and cfg.split == "test" and cfg.data is None
    with pytest.raises(Exception, match="beam"):
        compose_evaluate("ckpt_path=x.ckpt", "decode.beam=3")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "ckpt_path: required"),
        (["ckpt_path=x", "data=text"], "data.root: required with data=text"),
        (["ckpt_path=x", "batch_size=0"], "batch_size: must be at least 1"),
        (["ckpt_path=x", "decode.n_best=6"], "decode.n_best"),
        (["ckpt_path=x", "input=-", "data=numbers"], "input=... translates raw text"),
        (["ckpt_path=x", "output=-"], "output: '-'"),
    ],
)
def test_impossible_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_evaluate_config(compose_evaluate(*overrides))


def test_a_checkpoint_without_data_settings_needs_data(tmp_path):
    stored = read_checkpoint(write_checkpoint(tmp_path / "m.ckpt", data=None))
    with pytest.raises(ConfigError, match="data=<numbers|multi30k|text> data.root=DIR"):
        split_data_settings(compose_evaluate(f"ckpt_path={stored.path}"), LoadedCheckpoint.of(stored), stored.src_tokenizer, stored.tgt_tokenizer)


def test_other_data_must_use_the_checkpoints_tokenizer_kinds(tmp_path):
    stored = read_checkpoint(write_checkpoint(tmp_path / "m.ckpt"))  # word tokenizers on both sides
    cfg = compose_evaluate(f"ckpt_path={stored.path}", "data=text", f"data.root={tmp_path}")  # bpe by default
    with pytest.raises(ConfigError, match="does not match the checkpoint's vocabulary.*data.src_tokenizer=word"):
        split_data_settings(cfg, LoadedCheckpoint.of(stored), stored.src_tokenizer, stored.tgt_tokenizer)
    cfg = compose_evaluate(f"ckpt_path={stored.path}", "data=text", f"data.root={tmp_path}", "data.src_tokenizer=word",
                           "data.tgt_tokenizer=word", "split=dev")
    with pytest.raises(ConfigError, match="split: 'dev' is not in data.splits"):
        split_data_settings(cfg, LoadedCheckpoint.of(stored), stored.src_tokenizer, stored.tgt_tokenizer)


def test_evaluation_decodes_with_the_same_defaults_as_training_except_the_beam():
    """One default per setting: training's decode settings (validation, the test split after training) and
    evaluate.py's agree, length penalty included; only the beam differs (training decodes greedily by default)."""
    evaluation = compose_evaluate("ckpt_path=x").decode
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        training = dict(compose(config_name="train").decode)
    assert (training["beam_size"], evaluation.beam_size) == (1, 5)
    assert {key: evaluation[key] for key in training if key != "beam_size"} == \
        {key: value for key, value in training.items() if key != "beam_size"}


def test_default_outputs_go_to_the_runs_eval_folder(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_evaluate(f"ckpt_path={ckpt}", "decode.beam_size=4")
    hypotheses, metrics = output_paths(cfg, ckpt, {"name": "numbers", "root": "x"}, averaged=[])
    assert hypotheses == tmp_path / "run" / "eval" / "last.test.beam4.lp1.hyp"
    assert metrics == tmp_path / "run" / "eval" / "last.test.beam4.lp1.json"
    cfg = compose_evaluate(f"ckpt_path={ckpt}", f"output={tmp_path / 'out' / 'hyps.txt'}")
    assert output_paths(cfg, ckpt, {}, averaged=[]) == (tmp_path / "out" / "hyps.txt", tmp_path / "out" / "hyps.json")


@pytest.mark.parametrize("settings, name", [
    ([], "beam5.lp1"),
    (["decode.length_penalty=0"], "beam5.lp0"),
    (["decode.beam_size=1", "decode.length_penalty=0"], "beam1"),  # greedy: no length penalty applies
    (["decode.max_length_ratio=2", "decode.max_length_constant=5"], "beam5.lp1.len2x+5"),
    (["decode.max_length=80"], "beam5.lp1.max80"),
    (["decode.n_best=3"], "beam5.lp1"),  # n-best lists go to .nbest; the 1-best hypotheses do not change
])
def test_default_output_names_carry_every_setting_that_changes_the_hypotheses(tmp_path, settings, name):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_evaluate(f"ckpt_path={ckpt}", *settings)
    hypotheses, _ = output_paths(cfg, ckpt, {"name": "numbers", "root": "x"}, averaged=[])
    assert hypotheses.name == f"last.test.{name}.hyp"
