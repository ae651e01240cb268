"""Counting the tensors an operation produces, to test how much work a computation does (not how long it takes)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class CountResults(TorchDispatchMode):
    """Inside ``with``, counts the operator calls (of ``ops``, or any) whose result has the given shape."""

    def __init__(self, shape, ops=None) -> None:
        super().__init__()
        self.shape, self.ops, self.count = tuple(shape), ops, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if (self.ops is None or func in self.ops) and isinstance(result, torch.Tensor) and tuple(result.shape) == self.shape:
            self.count += 1
        return result
