"""A small builder for ONNX graphs: named inputs and outputs, weights as initializers, one call per node.

The exported graphs are written node by node (:mod:`.encoder_graph`, :mod:`.decoder_graph`) rather than traced
from the PyTorch modules: packing does not trace, and ONNX's own ``LSTM``/``GRU`` operators take each
sequence's length (``sequence_lens``) and stop there, which is what packing does. Writing the graph also keeps
it small: one fused operator per RNN layer, no shape bookkeeping a tracer would record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # what onnxruntime >= 1.14 runs in full; the ops below are all older than it
FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
Dim = Union[int, str]  # a fixed size, or a named one that varies from call to call ("batch")


class GraphBuilder:
    """Nodes, weights, inputs and outputs of one ONNX graph. Every value is named by the builder (``hint`` + a
    number) except the graph's inputs and outputs, whose names are the interface."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: Counter = Counter()
        self._renamed: dict[str, str] = {}  # values renamed to graph outputs

    def fresh(self, hint: str) -> str:
        self._used[hint] += 1
        return f"{hint}_{self._used[hint]}"

    def input(self, name: str, dtype: int, shape: Sequence[Dim]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        return name

    def output(self, value: str, name: str, dtype: int, shape: Sequence[Dim]) -> None:
        """Make ``value`` the graph output ``name``: the node that makes it is renamed to make ``name`` (an Identity
        node would cost a copy per call); later nodes that read ``value`` read ``name``."""
        if value in self._renamed or not any(value in node.output for node in self.nodes):
            self.nodes.append(helper.make_node("Identity", [self._renamed.get(value, value)], [name]))
        else:
            for node in self.nodes:
                for field in (node.input, node.output):
                    for index, existing in enumerate(field):
                        if existing == value:
                            field[index] = name
            self._renamed[value] = name
        self.outputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))

    def constant(self, array: np.ndarray, hint: str = "weight") -> str:
        """A weight or constant, stored in the graph: float32 for floating arrays, int64 for integer ones, bool
        arrays as they are."""
        array = np.asarray(array)
        array = array.astype(np.float32 if array.dtype.kind == "f" else np.int64 if array.dtype.kind in "iu" else array.dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array.copy(order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes) -> Union[str, list[str]]:
        """One node; its output name (or a list of ``outputs`` names). An input of '' is an omitted optional one."""
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        inputs = [self._renamed.get(name, name) for name in inputs]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def model(self, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seq2seq")
        onnx.checker.check_model(model, full_check=True)
        return model

    # Shorthands for the few patterns both graphs repeat.
    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None = None) -> str:
        """x (..., in) @ weight.T (+ bias): a PyTorch ``nn.Linear`` (weight (out, in))."""
        product = self.op("MatMul", x, self.constant(weight.T))
        return product if bias is None else self.op("Add", product, self.constant(bias))

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", x, self.constant(np.array([axis])))

    def squeeze(self, x: str, axis: int) -> str:
        return self.op("Squeeze", x, self.constant(np.array([axis])))

    def dim(self, x: str, axis: int) -> str:
        """The size of ``x`` along ``axis``, as a (1,) int64 tensor."""
        return self.op("Gather", self.op("Shape", x), self.constant(np.array([axis])), axis=0)
