"""A weight used at every time step of a loop, whose gradient is one matrix product for the whole sequence.

In the input-feeding decoder every step multiplies its input by the same LSTM weight: ``gates_t = x_t W^T``.
Autograd then computes the weight's gradient step by step -- ``grad_t^T x_t``, a (4H, in) product from only B
rows -- and adds it to the gradient so far: T products with an inner dimension of B (64) that each write the
whole (4H, in) matrix (2048 x 1024 floats, 8 MB, for ``ref_bilstm``), and T additions of it. On a CPU that
write, not the arithmetic, is the cost (how much of a training step: benchmarks/README.md, "Training speed").

The gradient is a sum over steps, so it can wait: ``sum_t grad_t^T x_t = G^T X`` with G and X every step's
gradients and inputs stacked, (T*B, 4H) and (T*B, in). :func:`shared_linear` records x_t and grad_t as the
backward pass reaches each step, and the first step of the loop -- whose backward runs last, because every
later step depends on it through the recurrence -- computes G^T X once: one product with an inner dimension of
T*B, one write. The input's gradient (``grad_t W``) is needed at once by the step before and is computed as
usual. The arithmetic is the same; only where the sums happen changes (float rounding differs in the last bits).

Use one :class:`SharedWeight` per weight and per forward pass; once-differentiable (no double backward).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class SharedWeight:
    """One forward pass's record of a weight shared by the steps of a loop."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []  # x_t of the steps whose backward has run, each (B, in)
        self.grads: list[Tensor] = []  # their output gradients, each (B, out)
        self.steps = 0  # steps run forward


class _SharedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, addend: Optional[Tensor], shared: SharedWeight) -> Tensor:
        ctx.first = shared.steps == 0
        shared.steps += 1
        ctx.shared = shared
        ctx.addend_shape = None if addend is None else addend.shape
        ctx.save_for_backward(x, weight)
        if addend is None:
            return x @ weight.t()  # (B, out)
        return torch.addmm(addend, x, weight.t())  # (B, out); addend: a bias (out,) or a per-step term (B, out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # grad: (B, out)
        x, weight = ctx.saved_tensors
        shared: SharedWeight = ctx.shared
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None  # (B, in)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            shared.inputs.append(x)
            shared.grads.append(grad)
            if ctx.first:  # every other step's backward has run: the whole sum in one product
                grads = torch.cat(shared.grads)  # (T*B, out)
                grad_weight = grads.t() @ torch.cat(shared.inputs)  # (out, in)
                shared.inputs, shared.grads = [], []
        grad_addend = None
        if ctx.needs_input_grad[2]:
            grad_addend = grad.sum(0) if len(ctx.addend_shape) == 1 else grad
        return grad_x, grad_weight, grad_addend, None


def shared_linear(x: Tensor, weight: Tensor, addend: Optional[Tensor], shared: SharedWeight) -> Tensor:
    """``addend + x @ weight.T`` for one step of a loop; ``shared`` collects the weight's gradient (see above).

    Shapes: x (B, in), weight (out, in), addend None, (out,) or (B, out) -> (B, out). Without autograd (no
    gradient wanted) it is a plain product.
    """
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return x @ weight.t() if addend is None else torch.addmm(addend, x, weight.t())
    return _SharedLinear.apply(x, weight, addend, shared)
