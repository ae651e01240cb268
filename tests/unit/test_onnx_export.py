"""export.py's graphs compute what the PyTorch model does, for every setting; the folder is whole or absent.

And the ONNX runtime translates as the PyTorch Translator does: the same texts, n-best lists, alignments and
scores (to 1e-4), greedy and beam search, with prefixes, for one model and for an ensemble.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("onnxruntime", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx]'")

from num2words import num2words  # noqa: E402

from seq2seq import Translator  # noqa: E402
from seq2seq.export.exporter import ExportError, export_checkpoints  # noqa: E402
from seq2seq.inference.quantize import quantize_int8  # noqa: E402
from seq2seq.runtime import OnnxTranslator  # noqa: E402
from seq2seq.runtime.manifest import MANIFEST_FILE, Manifest, ModelDirError  # noqa: E402
from seq2seq.runtime.onnx_model import OnnxModel  # noqa: E402
from tests.unit.test_checkpoint import make_module, write_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"
NUMBERS = [num2words(n, lang="de") for n in range(0, 1000, 2)]  # 500 sources the fixture model was trained for
TINY = {"src_embedding_dim": 5, "tgt_embedding_dim": 6, "hidden_size": 8, "encoder_hidden_size": 4, "dropout": 0.0}


def export(tmp_path, checkpoints, name="exported", **options) -> Path:
    output = tmp_path / name
    export_checkpoints([Path(c) for c in checkpoints], output, **options)
    return output


def sharpen(module, seed):
    """Scaled-up random weights: input-dependent distributions, hypotheses that end at varied steps."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in module.model.parameters():
            parameter.mul_(3.0)
    return module


def step_by_step_difference(model, exported: OnnxModel, steps=4) -> float:
    """The largest difference of memory, state, log-probs and attention over ``steps`` teacher-forced steps."""
    generator = torch.Generator().manual_seed(3)
    lengths = torch.tensor([2, 6, 1, 4])
    src = torch.randint(4, model.encoder.embedding.num_embeddings, (4, 6), generator=generator)
    src[torch.arange(6) >= lengths.unsqueeze(1)] = 0
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
        onnx_memory, onnx_state = exported.encode(src.numpy(), lengths.numpy())
        differences = [np.abs(onnx_memory.arrays["memory_keys"] - memory.keys.numpy()).max()]
        tokens = torch.tensor([2, 2, 2, 2])
        for step in range(steps):
            log_probs, attention, state = model.step_log_probs(tokens, memory, state)
            onnx_log_probs, onnx_attention, onnx_state = exported.step_log_probs(tokens.numpy(), onnx_memory, onnx_state)
            h = state.rnn[0] if isinstance(state.rnn, tuple) else state.rnn
            differences += [np.abs(onnx_log_probs - log_probs.numpy()).max(),
                            np.abs(onnx_attention - attention.numpy()).max(),
                            np.abs(onnx_state.arrays["state_h"] - h.numpy()).max(),
                            np.abs(onnx_state.arrays["state_attentional"] - state.attentional.numpy()).max()]
            tokens = torch.randint(4, model.output_layer.out_features, (4,), generator=generator)
    return float(max(differences))


# Every RNN, input feeding, bridge and attention; layers alternate between a decoder deeper than the encoder
# (its extra bottom layer starts from the encoder's bottom one) and a shallower one (the encoder's lowest left out).
SETTINGS = [dict(rnn_type=rnn, input_feeding=feed, bridge=bridge, attention=attention,
                 encoder_num_layers=2 + index % 2, decoder_num_layers=3 - 2 * (index % 2))
            for index, (rnn, feed, bridge, attention) in enumerate(itertools.product(
                ["lstm", "gru"], [True, False], ["concat", "concat_raw", "sum", "mean", "forward", "zeros"],
                ["bahdanau", "dot", "general"]))]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_every_rnn_bridge_and_attention_exports_and_steps_as_pytorch(tmp_path, settings):
    model_settings = {**TINY, **settings}
    module = sharpen(make_module(model=model_settings), 0)
    output = export(tmp_path, [write_checkpoint(tmp_path / "model.ckpt", module)])
    manifest = Manifest.read(output)
    exported = OnnxModel(output / manifest.members[0].encoder, output / manifest.members[0].decoder_step, threads=1)
    assert step_by_step_difference(module.model.eval(), exported) < 1e-5


def shipped_model_configs() -> dict[str, dict]:
    """conf/model/*.yaml, and the model section of each conf/experiment/*.yaml over its model group."""
    configs = {path.stem: yaml.safe_load(path.read_text()) for path in sorted((REPO / "conf" / "model").glob("*.yaml"))}
    for path in sorted((REPO / "conf" / "experiment").glob("*.yaml")):
        experiment = yaml.safe_load(path.read_text())
        group = next(entry["override /model"] for entry in experiment["defaults"] if "override /model" in entry)
        configs[f"experiment={path.stem}"] = {**configs[group], **experiment.get("model", {})}
    return configs


@pytest.mark.parametrize("name, settings", shipped_model_configs().items(), ids=list(shipped_model_configs()))
def test_every_shipped_model_config_exports_and_translates_as_pytorch(tmp_path, name, settings):
    module = make_module(model={**settings, "dropout": 0.0})
    checkpoint = write_checkpoint(tmp_path / "model.ckpt", module)
    output = export(tmp_path, [checkpoint])
    sources = ["ein zwei drei", "fünf sechs", "zwei", "drei vier fünf sechs"]
    for options in (dict(beam_size=1), dict(beam_size=3, n_best=2)):
        expected = Translator.from_checkpoint(checkpoint, device="cpu").translate(sources, **options)
        got = OnnxTranslator.from_dir(output, threads=1).translate(sources, **options)
        assert [t.text for t in got] == [t.text for t in expected]
        assert [t.score for t in got] == pytest.approx([t.score for t in expected], abs=1e-4)


@pytest.fixture(scope="module")
def fixture_export(tmp_path_factory) -> Path:
    return export(tmp_path_factory.mktemp("onnx"), [FIXTURE])


@pytest.mark.parametrize("options", [dict(beam_size=1), dict(beam_size=5, n_best=3), dict(beam_size=4, length_penalty=0.0)],
                         ids=["greedy", "beam5-nbest3", "beam4-lp0"])
def test_the_onnx_runtime_translates_as_pytorch_on_a_trained_model(fixture_export, options):
    expected = Translator.from_checkpoint(FIXTURE, device="cpu").translate(NUMBERS + [""], batch_size=64, **options)
    got = OnnxTranslator.from_dir(fixture_export, threads=1).translate(NUMBERS + [""], batch_size=64, **options)
    for source, a, b in zip(NUMBERS + [""], got, expected):
        assert (a.text, [n for n, _ in a.nbest], a.alignment) == (b.text, [n for n, _ in b.nbest], b.alignment), source
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert [s for _, s in a.nbest] == pytest.approx([s for _, s in b.nbest], abs=1e-4)
        np.testing.assert_allclose(np.array(a.attention), np.array(b.attention), atol=1e-4)
        assert (a.source_pieces, a.output_pieces) == (b.source_pieces, b.output_pieces)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_prefixes_force_the_same_starts_in_both_runtimes(fixture_export, beam_size):
    sources, prefixes = ["zweiundvierzig", "elf", "dreihundertzwölf"], ["forty", "", "three hundred and"]
    expected = Translator.from_checkpoint(FIXTURE, device="cpu").translate(sources, prefixes=prefixes,
                                                                            beam_size=beam_size)
    got = OnnxTranslator.from_dir(fixture_export, threads=1).translate(sources, prefixes=prefixes, beam_size=beam_size)
    assert [t.text for t in got] == [t.text for t in expected]
    assert got[2].text.startswith("three hundred and")


def test_sampling_is_refused_by_the_onnx_runtime_naming_the_option(fixture_export):
    with pytest.raises(ValueError, match="sampling"):
        OnnxTranslator.from_dir(fixture_export).translate(["elf"], beam_size=1, sampling="topk")


@pytest.mark.parametrize("combine", ["log_probability", "probability"])
def test_an_exported_ensemble_translates_as_the_pytorch_ensemble(tmp_path, combine):
    first = write_checkpoint(tmp_path / "a.ckpt", sharpen(make_module(seed=0, model=TINY), 0))
    second = write_checkpoint(tmp_path / "b.ckpt", sharpen(make_module(seed=1, model=TINY), 1))
    output = export(tmp_path, [first, second], ensemble_combine=combine)
    assert [m.encoder for m in Manifest.read(output).members] == ["encoder.0.onnx", "encoder.1.onnx"]
    sources = ["ein zwei drei", "fünf sechs", "zwei", "drei vier fünf sechs zwei"]
    expected = Translator.from_checkpoint([first, second], device="cpu", ensemble_combine=combine).translate(
        sources, beam_size=3, n_best=3)
    got = OnnxTranslator.from_dir(output, threads=1).translate(sources, beam_size=3, n_best=3)
    assert [[n for n, _ in t.nbest] for t in got] == [[n for n, _ in t.nbest] for t in expected]
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], abs=1e-4)


def test_average_last_exports_the_averaged_weights(tmp_path):
    for step, seed in ((10, 0), (20, 1)):
        write_checkpoint(tmp_path / "run" / f"step{step}.ckpt", sharpen(make_module(seed=seed, model=TINY), seed),
                         global_step=step)
    output = export(tmp_path, [tmp_path / "run" / "step20.ckpt"], average_last=2)
    expected = Translator.from_checkpoint(tmp_path / "run" / "step20.ckpt", device="cpu", average_last=2)
    sources = ["ein zwei drei", "fünf sechs"]
    got = OnnxTranslator.from_dir(output).translate(sources, beam_size=2)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected.translate(sources, beam_size=2)], abs=1e-4)
    assert len(Manifest.read(output).checkpoints[0]["averaged"]) == 2


def test_int8_export_quantizes_the_graphs_and_translates_as_fp32_mostly(tmp_path, fixture_export):
    output = export(tmp_path, [FIXTURE], quantize="int8")
    manifest = Manifest.read(output)
    assert manifest.quantize == "int8"
    import onnx

    operators = {node.op_type for node in onnx.load(str(output / manifest.members[0].decoder_step)).graph.node}
    assert operators & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul"}, operators
    int8 = OnnxTranslator.from_dir(output).translate(NUMBERS[:200], beam_size=1)
    fp32 = OnnxTranslator.from_dir(fixture_export).translate(NUMBERS[:200], beam_size=1)
    same = sum(a.text == b.text for a, b in zip(int8, fp32))
    assert same >= 0.9 * len(fp32), f"only {same} of {len(fp32)} int8 translations equal the fp32 ones"


# ------------------------------------------------------------------------------ the folder, whole or absent
def test_a_folder_with_files_is_not_overwritten_unless_asked(tmp_path):
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="output_dir: .*exported exists and is not empty.*overwrite=true"):
        export(tmp_path, [FIXTURE])
    assert (tmp_path / "exported" / "notes.txt").read_text() == "mine"
    export(tmp_path, [FIXTURE], overwrite=True)
    assert not (tmp_path / "exported" / "notes.txt").exists() and (tmp_path / "exported" / MANIFEST_FILE).is_file()


def test_graphs_that_disagree_with_pytorch_are_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(ExportError, match=r"differ from the PyTorch model by .*nothing was written"):
        export(tmp_path, [FIXTURE], tolerance=-1.0)  # no graph can be that close
    assert list(tmp_path.iterdir()) == []  # no output_dir, no staging folder


def test_a_model_with_int8_step_cells_is_refused_naming_the_setting(tmp_path):
    from seq2seq.export.exporter import check_exportable

    quantized = quantize_int8(Translator.from_checkpoint(FIXTURE, device="cpu").model)
    with pytest.raises(ExportError, match="step cells"):
        check_exportable(quantized, FIXTURE)


def test_a_changed_or_missing_file_is_refused_naming_it(tmp_path, fixture_export):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fixture_export, copy)
    graph = copy / "decoder_step.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(ModelDirError, match=r"decoder_step.onnx does not match its checksum"):
        OnnxTranslator.from_dir(copy)
    graph.unlink()
    with pytest.raises(ModelDirError, match=r"decoder_step.onnx is missing"):
        OnnxTranslator.from_dir(copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    (copy / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ModelDirError, match="format_version 99"):
        OnnxTranslator.from_dir(copy)
    with pytest.raises(ModelDirError, match="no manifest.json"):
        OnnxTranslator.from_dir(tmp_path)


def test_the_manifest_records_what_decoding_needs(fixture_export):
    manifest = Manifest.read(fixture_export)
    stored = Translator.from_checkpoint(FIXTURE, device="cpu")
    assert manifest.output_cap == stored.output_cap
    assert manifest.max_input_tokens == stored.text.max_input_tokens and manifest.lowercase == stored.text.lowercase
    assert manifest.special_ids == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert manifest.checkpoints[0]["path"] == str(FIXTURE) and manifest.opset >= 17
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest.versions)
    assert set(manifest.files) == {"encoder.onnx", "decoder_step.onnx", "src_tokenizer.json", "tgt_tokenizer.json"}


def test_the_readmes_example_without_pytorch_runs_and_returns_what_it_says(fixture_export):
    import re

    block = re.search(r"### Without PyTorch\n.*?```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    code = block.replace('"exported"', repr(str(fixture_export)))
    last = code.strip().splitlines()[-1]
    expression, claimed = last.split("#")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert repr(eval(expression, namespace)) == claimed.strip()  # noqa: S307


@pytest.mark.parametrize("tie", [False, True], ids=["shared", "shared-and-tied"])
def test_a_model_with_one_embedding_table_exports_and_steps_as_pytorch(tmp_path, tie):
    from seq2seq.export.decoder_graph import decoder_step_graph
    from seq2seq.export.encoder_graph import encoder_graph
    from seq2seq.models import Seq2Seq

    torch.manual_seed(0)
    model = Seq2Seq(15, 15, src_embedding_dim=8, tgt_embedding_dim=8, hidden_size=8, dropout=0.0,
                    share_embeddings=True, tie_embeddings=tie).eval()
    assert model.encoder.embedding.weight is model.decoder.embedding.weight
    (tmp_path / "e.onnx").write_bytes(encoder_graph(model).SerializeToString())
    (tmp_path / "d.onnx").write_bytes(decoder_step_graph(model).SerializeToString())
    assert step_by_step_difference(model, OnnxModel(tmp_path / "e.onnx", tmp_path / "d.onnx", threads=1)) < 1e-5
