"""shared_linear: a loop's shared weight gets its gradient from one product over all steps, equal to autograd's."""

import pytest
import torch

from seq2seq.models.shared_weight import SharedWeight, shared_linear
from tests.helpers.count_ops import CountResults

pytestmark = pytest.mark.usefixtures("single_thread")


def recurrence(linear, x_steps, h0, weight, addends):
    """h_t = tanh(addend_t + [x_t; h_{t-1}] W^T): every step uses the weight and depends on the one before."""
    h, outputs = h0, []
    for t, x in enumerate(x_steps):
        h = torch.tanh(linear(torch.cat([x, h], dim=-1), weight, addends[t]))  # (B, H)
        outputs.append(h)
    return torch.stack(outputs)  # (T, B, H)


def plain(x, weight, addend):
    return x @ weight.t() if addend is None else torch.addmm(addend, x, weight.t())


@pytest.mark.parametrize("addend_kind", ["bias", "per_step", "none"])
def test_gradients_equal_autograds_own(addend_kind):
    torch.manual_seed(0)
    T, B, X, H = 5, 3, 4, 6
    x_steps = torch.randn(T, B, X, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.double, requires_grad=True)
    weight = torch.randn(H, X + H, dtype=torch.double, requires_grad=True)
    bias = torch.randn(H, dtype=torch.double, requires_grad=True)
    per_step = torch.randn(T, B, H, dtype=torch.double, requires_grad=True)
    addends = {"bias": [bias] * T, "per_step": list(per_step), "none": [None] * T}[addend_kind]
    leaves = [x_steps, h0, weight] + {"bias": [bias], "per_step": [per_step], "none": []}[addend_kind]
    upstream = torch.randn(T, B, H, dtype=torch.double)

    expected = torch.autograd.grad((recurrence(plain, x_steps, h0, weight, addends) * upstream).sum(), leaves)
    shared = SharedWeight()
    outputs = recurrence(lambda x, w, a: shared_linear(x, w, a, shared), x_steps, h0, weight, addends)
    got = torch.autograd.grad((outputs * upstream).sum(), leaves)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)
    assert shared.inputs == [] and shared.grads == []  # nothing kept once the weight's gradient is out


def test_steps_the_loss_does_not_reach_add_nothing():
    torch.manual_seed(1)
    T, B, X, H = 4, 2, 3, 5
    x_steps = torch.randn(T, B, X, dtype=torch.double)
    h0 = torch.zeros(B, H, dtype=torch.double)
    weight = torch.randn(H, X + H, dtype=torch.double, requires_grad=True)
    expected = torch.autograd.grad(recurrence(plain, x_steps, h0, weight, [None] * T)[:2].sum(), weight)[0]
    shared = SharedWeight()
    outputs = recurrence(lambda x, w, a: shared_linear(x, w, a, shared), x_steps, h0, weight, [None] * T)
    got = torch.autograd.grad(outputs[:2].sum(), weight)[0]  # steps 2 and 3 are not part of the loss
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


PRODUCTS = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default)


def test_the_weight_gradient_is_one_product_for_the_whole_sequence():
    T, B, X, H = 6, 3, 4, 5
    x_steps = torch.randn(T, B, X)
    weight = torch.randn(H, X + H, requires_grad=True)
    shared = SharedWeight()
    outputs = recurrence(lambda x, w, a: shared_linear(x, w, a, shared), x_steps, torch.zeros(B, H), weight, [None] * T)
    with CountResults(weight.shape, PRODUCTS) as counter:
        outputs.sum().backward()
    assert counter.count == 1  # autograd's own way computes T of them and adds them up
    plain_outputs = recurrence(plain, x_steps, torch.zeros(B, H), weight, [None] * T)
    with CountResults(weight.T.shape, PRODUCTS) as plain_counter, CountResults(weight.shape, PRODUCTS) as plain_counter_t:
        plain_outputs.sum().backward()
    assert plain_counter.count + plain_counter_t.count == T


def test_without_autograd_it_is_a_plain_product():
    x, weight, bias = torch.randn(2, 3), torch.randn(4, 3, requires_grad=True), torch.randn(4)
    shared = SharedWeight()
    with torch.no_grad():
        out = shared_linear(x, weight, bias, shared)
    torch.testing.assert_close(out, torch.addmm(bias, x, weight.t()))
    assert out.grad_fn is None and shared.steps == 0
