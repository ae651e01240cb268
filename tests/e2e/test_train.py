"""train(cfg) and train.py end to end on tiny data: events, checkpoints, resume, multirun, DDP, seeds."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import lightning as L
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint import read_checkpoint
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train, script_command, tiny_overrides

pytestmark = pytest.mark.slow


def scalars(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_train_writes_events_checkpoints_and_tokenizers(train_config, tmp_path):
    metrics = train(train_config())
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "tokenizers" / "src_tokenizer.json").is_file()
    events = scalars(run)
    tags = set(events.Tags()["scalars"])
    for tag in ("train/loss", "train/ppl", "train/grad_norm", "train/tgt_tokens_per_sec", "val/loss", "val/bleu",
                "val/chrf", "val/chrf_pp", "val/ter", "val/exact_match", "val/wer", "val/cer"):
        assert tag in tags, f"{tag} not logged; got {sorted(tags)}"
    assert any(tag.startswith("attention/") for tag in events.Tags()["images"])
    assert "samples/val/text_summary" in events.Tags()["tensors"]  # the table of sample translations
    hparams = events.PluginTagToContent("hparams")  # TensorBoard's HParams view: settings and metric columns
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"model.hidden_size" in hparams["_hparams_/session_start_info"]
    assert b"val/bleu" in hparams["_hparams_/experiment"] and b"val/wer" in hparams["_hparams_/experiment"]
    assert "test/bleu" in metrics and 0.0 <= metrics["test/exact_match"] <= 1.0
    assert metrics["test/wer"] >= 0.0 and metrics["test/cer"] >= 0.0
    # The checkpoint is self-contained and loads without unpickling code.
    stored = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert stored.src_tokenizer.vocab_size == stored.hyper_parameters["src_vocab_size"]
    assert stored.global_step == events.Scalars("train/loss")[-1].step + 1


def test_same_seed_gives_identical_loss_curves(tmp_path):
    from tests.e2e.conftest import compose_train

    curves = []
    for name in ("a", "b"):
        cfg = compose_train(tiny_overrides(tmp_path / name) + ["test_after_training=false", "~callbacks.progress_bar"])
        train(cfg)
        curves.append([event.value for event in scalars(tmp_path / name / "run").Scalars("train/loss")])
    assert len(curves[0]) > 5
    assert curves[0] == curves[1]


def test_the_init_setting_reaches_the_model_and_the_checkpoint(tmp_path):
    import torch

    from seq2seq.training.module import TranslationModule
    from seq2seq.training.run import make_datamodule, make_module
    from tests.e2e.conftest import compose_train

    cfg = compose_train(tiny_overrides(tmp_path) + ["model.init=xavier", "model.lstm_forget_bias=2.0",
                                                    "trainer.max_epochs=1", "test_after_training=false"])
    datamodule = make_datamodule(cfg.data, tmp_path / "tokenizers")
    datamodule.prepare_data()
    datamodule.setup("fit")
    rnn = make_module(cfg, datamodule).model.decoder.rnn  # as train() builds it
    hidden = rnn.hidden_size
    assert torch.all(rnn.bias_ih_l0[hidden:2 * hidden] == 2.0)  # the forget-gate setting
    assert rnn.bias_ih_l0[:hidden].abs().sum() == 0  # xavier: other biases zero
    train(cfg)
    stored = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    settings = stored.hyper_parameters["model"]
    assert (settings["init"], settings["lstm_forget_bias"]) == ("xavier", 2.0)
    # A checkpoint rebuilds its network with its own settings, then loads the trained weights over them.
    module = TranslationModule.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt",
                                                    weights_only=False)
    assert module.hparams.model["init"] == "xavier"


def test_resume_continues_the_step_count(train_config, tmp_path):
    train(train_config("trainer.max_epochs=1", "test_after_training=false"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    first_steps = read_checkpoint(last).global_step
    assert first_steps > 0
    resumed_dir = tmp_path / "resumed"
    train(train_config("trainer.max_epochs=2", "test_after_training=false", f"ckpt_path={last}", f"output_dir={resumed_dir}"))
    resumed = read_checkpoint(resumed_dir / "checkpoints" / "last.ckpt")
    assert resumed.global_step == 2 * first_steps
    assert resumed.epoch == 1
    # The resumed run logged only steps after the checkpoint.
    steps = [event.step for event in scalars(resumed_dir).Scalars("train/loss")]
    assert min(steps) >= first_steps


def test_train_script_runs_and_multirun_writes_one_directory_per_job(tmp_path):
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("output_dir=")]
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        script_command("train.py", "-m", "model=bilstm,bigru", "trainer.max_epochs=1", "test_after_training=false",
                       f"hydra.sweep.dir={sweep}", *overrides, "trainer.enable_model_summary=true"),
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(path.name for path in sweep.iterdir() if path.is_dir() and path.name.isdigit())
    assert jobs == ["0", "1"]
    for job in jobs:
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        assert list((sweep / job / "tensorboard").glob("events.*"))
    assert "rnn_type: gru" in (sweep / "1" / ".hydra" / "config.yaml").read_text()
    # The first screen: the model's size by part, and no advert, FLOPs column of zeros or upstream deprecation.
    console = result.stdout + result.stderr
    assert len(re.findall(r"model: Seq2Seq, [\d,]+ trainable parameters \(encoder [\d,]+, bridge [\d,]+, decoder", console)) == 2
    assert "💡" not in console and "FLOPs" not in console and "LeafSpec" not in console


def test_ddp_cpu_with_two_processes(train_config, tmp_path):
    metrics = train(train_config("trainer=ddp_cpu", "trainer.max_epochs=1", "test_after_training=false",
                                 "trainer.accelerator=cpu"))
    assert "val/bleu" in metrics
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = read_checkpoint(last)
    # 200 pairs in batches of 32 make 7 batches, padded to 8 and split 4 + 4 between the two ranks.
    assert stored.global_step == 4
    # The corpus metrics of the two-process validation are those of the whole split, decoded in one process.
    from seq2seq import Translator
    from seq2seq.inference.metrics import error_rates

    sources = (tmp_path / "numbers" / "val.de").read_text(encoding="utf-8").splitlines()
    references = (tmp_path / "numbers" / "val.en").read_text(encoding="utf-8").splitlines()
    outputs = [result.text for result in Translator.from_checkpoint(last, device="cpu").translate(sources, beam_size=1)]
    rates = error_rates(outputs, references)
    assert metrics["val/wer"] == pytest.approx(rates.wer) and metrics["val/cer"] == pytest.approx(rates.cer)


class ProgressBarMetrics(L.Callback):
    """What the progress bar was given at the latest validation (for runs inside the test process)."""

    latest: dict = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            ProgressBarMetrics.latest = dict(trainer.progress_bar_metrics)


@pytest.mark.parametrize("monitor", ["val/bleu", "val/wer"])
def test_the_progress_bar_shows_bleu_and_the_monitored_metric(tmp_path, monitor):
    ProgressBarMetrics.latest = {}
    train(compose_train(tiny_overrides(tmp_path) + [
        "trainer.max_epochs=1", "test_after_training=false", f"monitor={monitor}",
        f"monitor_mode={'min' if monitor == 'val/wer' else 'max'}",
        "+callbacks.bar_metrics._target_=tests.e2e.test_train.ProgressBarMetrics"]))
    shown = {name for name in ProgressBarMetrics.latest if name.startswith("val/")}
    assert shown == {"val/bleu", monitor}


def test_monitor_val_wer_keeps_the_checkpoint_with_the_lowest_error_rate(tmp_path):
    result = subprocess.run(
        script_command("train.py", *tiny_overrides(tmp_path), "trainer.max_epochs=4", "optim.lr=0.01", "model.hidden_size=64",
                       "data.numbers.train_size=600",
                       "monitor=val/wer", "monitor_mode=min", "test_after_training=false",
                       "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"),
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    wer = {event.step: event.value for event in scalars(run).Scalars("val/wer")}
    assert len(wer) == 4 and len(set(wer.values())) > 1  # it moved, so the choice means something
    best_step = min(wer, key=lambda step: (wer[step], step))  # the first of equals, as ModelCheckpoint keeps it
    best = list((run / "checkpoints").glob("best-*.ckpt"))
    # Validation events carry the step of the batch before (global_step - 1), as Lightning logs them.
    assert [read_checkpoint(path).global_step for path in best] == [best_step + 1], (wer, best)
    validations = [line for line in result.stderr.splitlines() if " - validation |" in line]
    assert len(validations) == 4 and all("val/wer " in line and "val/cer " in line for line in validations)
    assert "best val/wer" in validations[0]


def test_mistyped_key_fails_at_composition_naming_it(tmp_path):
    result = subprocess.run(script_command("train.py", "model.hiden_size=3"), cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "hiden_size" in result.stderr


def test_wrong_type_fails_at_composition_naming_it(tmp_path):
    result = subprocess.run(script_command("train.py", "model.hidden_size=big"), cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "hidden_size" in result.stderr


@pytest.mark.parametrize("max_tgt_length", [12, None])
def test_decoding_never_runs_past_the_output_cap_whatever_the_source_length(tmp_path, max_tgt_length):
    import torch

    from seq2seq.data.tokenizer import EOS_ID
    from seq2seq.training.run import make_datamodule, make_module
    from tests.e2e.conftest import compose_train

    limit = "null" if max_tgt_length is None else max_tgt_length
    cfg = compose_train(tiny_overrides(tmp_path) + [f"data.max_tgt_length={limit}"])
    datamodule = make_datamodule(cfg.data, tmp_path / "tokenizers")
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = make_module(cfg, datamodule)  # as train() builds it, and as its checkpoints store it
    longest_target = max(len(ids) for ids in datamodule.train_split().tgt_ids)
    cap = (max_tgt_length if max_tgt_length is not None else longest_target) + 1
    assert module.hparams.decode["max_length"] == cap
    with torch.no_grad():
        module.model.output_layer.bias[EOS_ID] = -1e9  # never ends by itself: only the cap stops it
    module.eval()
    src = torch.randint(4, datamodule.src_tokenizer.vocab_size, (2, 400))
    for beam_size in (1, 3):
        options = dataclasses.replace(module.decode_options, beam_size=beam_size)
        hypotheses = module.decoding.search(src, torch.tensor([400, 250]), options)
        assert [len(tokens) for tokens in hypotheses.tokens] == [cap, cap]  # not 1.5 x 400 + 10
