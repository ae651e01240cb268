"""The Python API (``from seq2seq import Translator``) and the decoding features it offers: ensembles, scoring given
targets, alignments, sampling, target prefixes and int8 weights. Most run on the fixture checkpoint, a small numbers
model that translates some numbers right (tests/fixtures/README.md)."""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq import Translator
from seq2seq.checkpoint import CheckpointError
from seq2seq.config import register_configs
from seq2seq.data.collate import collate
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.ensemble import Ensemble
from seq2seq.inference.quantize import StepRNN, quantize_int8
from seq2seq.models import Seq2Seq, stepwise
from tests.unit.test_checkpoint import make_module, write_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"
NUMBERS = ["zweiundvierzig", "elf", "dreihundertzwölf", "neunhundertneunundneunzig", "sieben", "hundertundeins",
           "achtzehn", "sechshundertvierzig", "zweitausend", ""]


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.from_checkpoint(FIXTURE, device="cpu")


# --------------------------------------------------------------------------------------------- the API
def test_the_readme_example_runs_and_shows_what_it_returns():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"### Use it from Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    code = block.replace("logs/train/runs/<run>/checkpoints/last.ckpt", str(FIXTURE))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    results, translator = namespace["results"], namespace["translator"]
    first = results[0]
    shown = f"({first.text!r}, {first.score:.4f}, {[(t, round(s, 4)) for t, s in first.nbest]}, {first.alignment})"
    assert f"# {shown}" in block, shown  # what the README says it returns is what it returns
    perplexity = translator.score(["zweiundvierzig"], ["forty-two"])[0].perplexity
    assert f"teacher-forced: {perplexity:.4f}" in block
    assert len(results) == 2 and len(first.nbest) == 2


def test_decoding_options_default_to_evaluate_py_and_bad_ones_are_value_errors_naming_them(translator):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        evaluate = compose(config_name="evaluate", overrides=["ckpt_path=x"])
        serve = compose(config_name="serve", overrides=["ckpt_path=x"])
    assert dict(evaluate.decode) == dict(serve.decode) == asdict(DecodeOptions())
    assert {f.name for f in fields(DecodeOptions)} == set(evaluate.decode)
    keywords = {name: p.default for name, p in inspect.signature(Translator.translate).parameters.items()
                if p.kind == p.KEYWORD_ONLY and name != "prefixes"}
    assert keywords == {"batch_size": evaluate.batch_size, "max_tokens": evaluate.max_tokens}
    # Every option reaches the search: a greedy search and a beam search of one give the same tokens here.
    assert translator.translate(NUMBERS, beam_size=1)[0].text == translator.translate(NUMBERS, beam_size=2)[0].text
    for options, named in [(dict(beem_size=3), "beem_size"), (dict(beam_size=0), "beam_size"),
                           (dict(n_best=3, beam_size=2), "n_best"), (dict(sampling="top3"), "sampling"),
                           (dict(sampling="topk", beam_size=4), "sampling"), (dict(temperature=0.0), "temperature"),
                           (dict(batch_size=0), "batch_size")]:
        with pytest.raises(ValueError, match=rf"\b{named}\b"):
            translator.translate(["elf"], **options)


def test_results_come_back_in_order_with_empty_inputs_empty(translator):
    batched = translator.translate(NUMBERS, beam_size=3, batch_size=3)
    alone = [translator.translate(source, beam_size=3)[0] for source in NUMBERS]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert batched[-1].text == "" and batched[0].text == "forty-two"


# ------------------------------------------------------------------------------------------ ensembles
def test_an_ensemble_of_one_is_that_model_exactly(translator):
    single = Translator(Ensemble([translator.model]), translator.src_tokenizer, translator.tgt_tokenizer,
                        translator.device, output_cap=translator.output_cap)
    for options in (dict(beam_size=1), dict(beam_size=4, n_best=3)):
        ours, theirs = translator.translate(NUMBERS, **options), single.translate(NUMBERS, **options)
        assert [(r.text, r.score, r.nbest, r.attention) for r in ours] == \
            [(r.text, r.score, r.nbest, r.attention) for r in theirs]


@pytest.mark.parametrize("combine", ["probability", "log_probability"])
def test_an_ensembles_first_step_distribution_is_the_average_of_its_members(combine):
    torch.manual_seed(0)
    members = [Seq2Seq(20, 30, src_embedding_dim=8, tgt_embedding_dim=8, hidden_size=8, dropout=0.0).eval()
               for _ in range(3)]
    src, lengths = torch.randint(4, 20, (2, 5)), torch.tensor([5, 3])
    tokens = torch.full((2,), 2)  # bos
    memory, state = Ensemble(members, combine).encode(src, lengths)
    log_probs, _, _ = Ensemble(members, combine).step_log_probs(tokens, memory, state)
    each = []
    for member in members:
        member_memory, member_state = member.encode(src, lengths)
        each.append(member.step_log_probs(tokens, member_memory, member_state)[0])
    if combine == "probability":
        expected = torch.stack([lp.exp() for lp in each]).mean(0).log()
    else:
        expected = torch.stack(each).mean(0)
    torch.testing.assert_close(log_probs, expected)


def test_an_ensemble_of_checkpoints_with_different_tokenizers_is_refused_naming_both(tmp_path):
    first = write_checkpoint(tmp_path / "a.ckpt")
    module = make_module()
    size = module.src_tokenizer.vocab_size
    other = TextTokenizer.train([" ".join(f"wort{i}" for i in range(size - 4))], "word", 50, 1)  # as many, others
    assert other.vocab_size == size and other != module.src_tokenizer
    module.attach_tokenizers(other, module.tgt_tokenizer)
    second = write_checkpoint(tmp_path / "b.ckpt", module)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(first))} and {re.escape(str(second))} have different "
                                              r"source tokenizers"):
        Translator.from_checkpoint([first, second], device="cpu")


# ------------------------------------------------------------------------------------ scoring targets
def test_scores_of_given_targets_are_the_training_loss_on_the_same_batch():
    module = make_module(seed=3)
    module.eval()
    src_texts, tgt_texts = ["ein haus", "zwei häuser und ein haus", "drei"], ["a house", "two houses", "three more"]
    src_ids = module.src_tokenizer.encode_batch(src_texts)
    tgt_ids = module.tgt_tokenizer.encode_batch(tgt_texts)
    translator = Translator(module.model, module.src_tokenizer, module.tgt_tokenizer, torch.device("cpu"))
    scores = translator.decoding.score_ids(src_ids, tgt_ids, batch_size=2, max_tokens=None)
    with torch.no_grad():
        loss_sum, num_tokens = module.loss(collate([(i, s, t) for i, (s, t) in enumerate(zip(src_ids, tgt_ids))]))
    assert sum(s.log_prob for s in scores) == pytest.approx(-float(loss_sum), rel=1e-5)
    assert sum(s.num_tokens for s in scores) == int(num_tokens) == sum(len(t) + 1 for t in tgt_ids)
    assert scores[0].perplexity == pytest.approx(torch.exp(torch.tensor(-scores[0].log_prob / scores[0].num_tokens)))


def test_a_correct_translation_scores_higher_than_a_wrong_one(translator):
    right, wrong = translator.score(["zweiundvierzig", "zweiundvierzig"], ["forty-two", "seven hundred"])
    assert right.log_prob > wrong.log_prob and right.perplexity < wrong.perplexity


# ----------------------------------------------------------------------------------------- alignments
def test_alignments_index_real_source_and_output_pieces_only(translator):
    for result in translator.translate(NUMBERS[:-1], beam_size=3) + translator.translate(NUMBERS[:-1], beam_size=1):
        real_outputs = len(result.output_pieces) - (result.output_pieces[-1:] == ["<eos>"])
        assert [j for _, j in result.alignment] == list(range(real_outputs))  # every output piece once, eos never
        assert all(0 <= i < len(result.source_pieces) for i, _ in result.alignment)
        assert len(result.attention) == len(result.output_pieces)
        assert all(len(row) == len(result.source_pieces) for row in result.attention)  # no padding columns
        for i, j in result.alignment:
            assert result.attention[j][i] == max(result.attention[j])


# ------------------------------------------------------------------------------------------- sampling
def test_the_same_seed_gives_the_same_samples_and_other_seeds_others(translator):
    sources = NUMBERS[:-1] * 3
    draw = lambda seed: [r.text for r in translator.translate(sources, beam_size=1, sampling="topk", top_k=8,  # noqa
                                                                seed=seed, temperature=1.5)]
    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


@pytest.mark.parametrize("options", [dict(sampling="topk", top_k=1), dict(sampling="topp", top_p=1e-6)])
def test_sampling_from_the_single_most_probable_token_is_greedy_search(translator, options):
    greedy = translator.translate(NUMBERS, beam_size=1)
    sampled = translator.translate(NUMBERS, beam_size=1, seed=3, **options)
    assert [(r.text, r.score) for r in sampled] == [(r.text, r.score) for r in greedy]


# ------------------------------------------------------------------------------------------- prefixes
@pytest.mark.parametrize("beam_size", [1, 4])
def test_a_forced_prefix_starts_the_output_verbatim_and_the_search_goes_on(translator, beam_size):
    sources = ["zweiundvierzig", "dreihundertzwölf", "elf", "sieben"]
    prefixes = ["seven hundred", "three hundred", "", "one hundred and"]
    results = translator.translate(sources, prefixes=prefixes, beam_size=beam_size)
    for result, prefix in zip(results, prefixes):
        assert result.text.startswith(prefix)
        if prefix:
            assert len(result.text) > len(prefix)  # the search went on after it
    unforced = translator.translate(["elf"], beam_size=beam_size)[0]
    assert results[2].text == unforced.text and results[2].score == pytest.approx(unforced.score, abs=1e-5)
    with pytest.raises(ValueError, match="prefixes"):
        translator.translate(sources, prefixes=prefixes[:2])


# ------------------------------------------------------------------------------------------------ int8
def test_step_rnn_computes_what_the_stepwise_rnn_does_before_quantization():
    torch.manual_seed(0)
    for rnn in (torch.nn.LSTM(6 + 5, 5, num_layers=2, batch_first=True), torch.nn.GRU(6 + 5, 5, num_layers=2,
                                                                                      batch_first=True)):
        step_rnn = StepRNN(rnn, embedding_width=6)
        embedded, fed = torch.randn(3, 6), torch.randn(3, 5)
        h = torch.randn(2, 3, 5)
        state = (h, torch.randn(2, 3, 5)) if isinstance(rnn, torch.nn.LSTM) else h
        expected = stepwise.step(rnn, stepwise.project_inputs(rnn, embedded), fed, state)
        ours = step_rnn.step(step_rnn.project_inputs(embedded), fed, state)
        torch.testing.assert_close(ours[0], expected[0])
        torch.testing.assert_close(ours[1], expected[1])


def test_int8_decoding_quantizes_the_rnns_and_linear_layers_and_translates_as_fp32_mostly(translator):
    quantized = Translator.from_checkpoint(FIXTURE, device="cpu", quantize="int8")
    kinds = {type(module).__module__ for module in quantized.model.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds and "torch.ao.nn.quantized.dynamic.modules.rnn" in kinds
    assert not any(type(module) is torch.nn.Linear for module in quantized.model.modules())
    ours = quantized.translate(NUMBERS, beam_size=3)
    theirs = translator.translate(NUMBERS, beam_size=3)
    same = sum(a.text == b.text for a, b in zip(ours, theirs))
    assert same >= len(NUMBERS) - 2, [(a.text, b.text) for a, b in zip(ours, theirs)]
    assert all(abs(a.score - b.score) < 0.5 for a, b in zip(ours, theirs) if a.text == b.text)
    with pytest.raises(ValueError, match="quantize"):
        Translator.from_checkpoint(FIXTURE, device="cpu", quantize="int4")


def test_quantizing_leaves_the_original_model_as_it_was(translator):
    before = {name: value.clone() for name, value in translator.model.state_dict().items()}
    quantize_int8(translator.model)
    after = translator.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
