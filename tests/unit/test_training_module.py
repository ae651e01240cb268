"""The LightningModule's loss: the fast path (output layer on real tokens only) equals the plain one."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from seq2seq.data.collate import collate
from seq2seq.training.module import TranslationModule
from seq2seq.training.nonfinite import NonFiniteLossError, NonFiniteUpdates
from tests.helpers.teacher_forcing import logits_and_attention

OPTIM = {"optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "label_smoothing": 0.0,
         "scheduler": "none", "warmup_steps": 0, "plateau_factor": 0.5, "plateau_patience": 1, "min_lr": 1e-6}
DECODE = {"beam_size": 1, "length_penalty": 0.6, "n_best": 1, "max_length_ratio": 1.5, "max_length_constant": 5,
          "max_length": None}


def make_module(input_feeding: bool, label_smoothing: float) -> TranslationModule:
    model = {"hidden_size": 8, "src_embedding_dim": 6, "tgt_embedding_dim": 6, "input_feeding": input_feeding,
             "attention": "general", "dropout": 0.0}
    return TranslationModule(model, 11, 13, {**OPTIM, "label_smoothing": label_smoothing}, DECODE)


@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_on_real_tokens_equals_full_logits_with_ignore_index(input_feeding, label_smoothing):
    torch.manual_seed(0)
    module = make_module(input_feeding, label_smoothing).double().eval()
    batch = collate([(0, [4, 5, 6], [7, 8, 9, 10]), (1, [5], [7]), (2, [6, 7, 8, 9, 10], [11, 12])])
    loss_sum, count = module.loss(batch)
    logits = logits_and_attention(module.model, batch.src, batch.src_lengths, batch.tgt_in)[0]  # (B, T, V)
    plain = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0,
                            label_smoothing=label_smoothing, reduction="sum")
    assert int(count) == batch.num_tgt_tokens == 4 + 1 + 1 + 1 + 2 + 1
    torch.testing.assert_close(loss_sum, plain, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("normalization", ["tokens", "sentences", None])
def test_the_loss_is_divided_by_tokens_or_sentences_and_logged_per_token(monkeypatch, normalization):
    # "sentences" (OpenNMT-py's default) weighs every target token of the run the same: a batch of long targets
    # counts more than one of short targets. "tokens" weighs every batch the same; None: an older checkpoint's
    # hyperparameters, without the key, divide by tokens. train/loss is per token in every case.
    torch.manual_seed(0)
    module = make_module(True, 0.0)
    if normalization is not None:
        module.hparams.optim = {**OPTIM, "loss_normalization": normalization}
    module._trainer = SimpleNamespace(world_size=1)
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, float(torch.as_tensor(value).detach())))
    batch = collate([(0, [4, 5, 6], [7, 8, 9, 10, 11]), (1, [5], [7, 8, 9])])  # 6 + 4 target tokens, 2 sentences
    loss_sum, count = module.loss(batch)
    objective = module.training_step(batch, 0)
    divisor = 2 if normalization == "sentences" else 10
    assert int(count) == 10
    torch.testing.assert_close(objective, loss_sum / divisor)
    assert logged["train/loss"] == pytest.approx(float(loss_sum / 10))
    objective.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def test_attached_tokenizer_must_match_the_vocabulary():
    from seq2seq.data.tokenizer import TextTokenizer

    module = make_module(True, 0.0)
    tokenizer = TextTokenizer.train(["a b c"], kind="word", vocab_size=100, min_frequency=1)
    with pytest.raises(ValueError, match="source tokenizer has 7 tokens but the model was built for 11"):
        module.attach_tokenizers(tokenizer, tokenizer)


def guard_step(module, optimizer, clip: float | None, guard: NonFiniteUpdates | None = None) -> NonFiniteUpdates:
    """What Lightning does between backward and the optimizer step: the guard's hook, with a stand-in trainer."""
    guard = guard or NonFiniteUpdates(max_in_a_row=2)
    trainer = SimpleNamespace(gradient_clip_val=clip, current_epoch=0, global_step=7)
    guard.on_before_optimizer_step(trainer, module, optimizer)
    return guard


def test_an_update_with_non_finite_gradients_is_skipped(monkeypatch):
    torch.manual_seed(0)
    module = make_module(True, 0.0)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    batch = collate([(0, [4, 5, 6], [7, 8]), (1, [5], [7])])
    loss_sum, count = module.loss(batch)
    (loss_sum / count).backward()
    next(module.parameters()).grad[0, 0] = float("inf")
    before = [p.detach().clone() for p in module.parameters()]
    guard = guard_step(module, optimizer, clip=1.0)
    optimizer.step()
    assert all(p.grad is None for p in module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert (guard.in_a_row, guard.total) == (1, 1)
    with pytest.raises(NonFiniteLossError, match=r"2 batches in a row \(optim.max_nonfinite_in_a_row=2\)"):
        guard._loss = torch.tensor(float("nan"))  # a NaN loss, as on_before_backward records it
        guard_step(module, optimizer, clip=1.0, guard=guard)


def test_finite_gradients_are_clipped_to_the_limit(monkeypatch):
    torch.manual_seed(0)
    module = make_module(True, 0.0)
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, float(value)))
    batch = collate([(0, [4, 5, 6], [7, 8]), (1, [5], [7])])
    loss_sum, _ = module.loss(batch)
    (loss_sum * 100).backward()
    unclipped = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()])))
    guard = guard_step(module, torch.optim.Adam(module.parameters()), clip=0.5)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()]))
    assert abs(float(norm) - 0.5) < 1e-4
    assert logged["train/grad_norm"] == pytest.approx(unclipped)  # the norm before clipping is what is logged
    assert (guard.in_a_row, guard.total, logged["train/skipped_nonfinite"]) == (0, 0, 0.0)


@pytest.mark.parametrize("optimizer_name", ["adam", "adamw"])
def test_the_fused_optimizer_updates_as_the_plain_one(optimizer_name):
    torch.manual_seed(0)
    module = make_module(True, 0.0)
    module.hparams.optim = {**OPTIM, "optimizer": optimizer_name, "weight_decay": 0.01}
    fused = module.configure_optimizers()
    assert fused.defaults["fused"] is True
    plain_module = make_module(True, 0.0)
    plain_module.load_state_dict(module.state_dict())
    plain_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer_name]
    plain = plain_class(plain_module.parameters(), lr=1e-3, weight_decay=0.01, foreach=False)
    batches = [collate([(0, [4, 5, 6], [7, 8]), (1, [5], [7])]), collate([(0, [6, 7], [9, 10, 11])])]
    for batch in batches * 3:
        for each_module, optimizer in ((module, fused), (plain_module, plain)):
            optimizer.zero_grad()
            loss_sum, count = each_module.loss(batch)
            (loss_sum / count).backward()
            optimizer.step()
    for a, b in zip(module.parameters(), plain_module.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
