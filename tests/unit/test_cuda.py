"""On a GPU, the same answers as on the CPU: the packed encoder through cuDNN, and the Translator's decoding.

cuDNN's RNN kernels are a different implementation from the CPU's (their own packed layout, their own h_n
order internally), so "which part of h_n is which layer and direction" is checked again there, against the
CPU result of the very same weights. Skipped without CUDA (CI has none); run on a GPU machine with
``python -m pytest -m gpu``. TF32 is switched off so that float32 means float32 on both devices.
"""

import pytest
import torch

from seq2seq import Translator
from tests.unit.test_encoder import as_tuple, make_batch, make_encoder
from tests.unit.test_translator_api import FIXTURE, NUMBERS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def no_tf32():
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@pytest.mark.parametrize("lengths, max_length", [([3, 1, 5, 3, 2], 6), ([5, 5, 5], 5)], ids=["packed", "no-padding"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_the_encoder_on_cuda_gives_the_cpu_outputs_final_states_and_gradients(rnn_type, lengths, max_length):
    # float32, in training mode (cuDNN's RNN has no backward in eval mode); dropout 0, so nothing random.
    cpu = make_encoder(rnn_type, num_layers=2).float().train()
    gpu = make_encoder(rnn_type, num_layers=2).float().train().cuda()
    gpu.load_state_dict(cpu.state_dict())
    src, lengths = make_batch(lengths, max_length)  # (B, S), (B,)

    on_cpu, on_gpu = cpu(src, lengths), gpu(src.cuda(), lengths.cuda())
    torch.testing.assert_close(on_gpu.outputs.cpu(), on_cpu.outputs, atol=1e-5, rtol=1e-5)  # (B, S, D*H)
    torch.testing.assert_close(on_gpu.mask.cpu(), on_cpu.mask)
    for final_gpu, final_cpu in zip(as_tuple(on_gpu.final), as_tuple(on_cpu.final), strict=True):
        assert final_gpu.shape == (2, 2, len(lengths), 4)  # (L, D, B, H)
        torch.testing.assert_close(final_gpu.cpu(), final_cpu, atol=1e-5, rtol=1e-5)

    # Gradients through the padded outputs and every final state reach the same weights the same way.
    def loss(encoded):
        return encoded.outputs.square().sum() + sum(state.sum() for state in as_tuple(encoded.final))

    loss(on_cpu).backward()
    loss(on_gpu).backward()
    for (name, weight_cpu), weight_gpu in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(weight_gpu.grad.cpu(), weight_cpu.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("beam_size", [1, 5], ids=["greedy", "beam5"])
def test_the_translator_on_cuda_translates_and_scores_as_on_the_cpu(beam_size):
    cpu = Translator.from_checkpoint(FIXTURE, device="cpu")
    gpu = Translator.from_checkpoint(FIXTURE, device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    on_cpu = cpu.translate(NUMBERS, beam_size=beam_size, n_best=min(beam_size, 2), batch_size=4)
    on_gpu = gpu.translate(NUMBERS, beam_size=beam_size, n_best=min(beam_size, 2), batch_size=4)
    assert [t.text for t in on_gpu] == [t.text for t in on_cpu]
    assert [t.score for t in on_gpu] == pytest.approx([t.score for t in on_cpu], abs=1e-4)
    sources, targets = NUMBERS[:-1], [t.text for t in on_cpu[:-1]]  # an empty source cannot be scored
    scored_cpu, scored_gpu = cpu.score(sources, targets), gpu.score(sources, targets)
    assert [s.log_prob for s in scored_gpu] == pytest.approx([s.log_prob for s in scored_cpu], abs=1e-4)


def test_an_ensemble_on_cuda_decodes_as_on_the_cpu():
    cpu = Translator.from_checkpoint([FIXTURE, FIXTURE], device="cpu")
    gpu = Translator.from_checkpoint([FIXTURE, FIXTURE], device="cuda")
    on_cpu, on_gpu = cpu.translate(NUMBERS, beam_size=5), gpu.translate(NUMBERS, beam_size=5)
    assert [t.text for t in on_gpu] == [t.text for t in on_cpu]
