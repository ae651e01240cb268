"""Execute the ```python blocks of docs/rnn_states.md so the guide stays correct.

Blocks are cumulative (later blocks use names defined by earlier ones), so the
test for block ``i`` executes blocks ``0..i`` in order in one fresh namespace.
"""

import linecache
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "rnn_states.md"
MIN_BLOCKS = 4

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _blocks():
    return _FENCE.findall(DOC.read_text(encoding="utf-8"))


def _run_upto(index):
    namespace = {"__name__": "docs_rnn_states"}
    for i, source in enumerate(_blocks()[: index + 1]):
        filename = f"{DOC.name}[python block {i}]"
        # Register the source so tracebacks show the failing doc line.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        exec(code, namespace)
    return namespace


def test_doc_has_enough_code_blocks():
    blocks = _blocks()
    assert len(blocks) >= MIN_BLOCKS, f"{DOC} has {len(blocks)} python blocks"
    assert all(block.strip() for block in blocks), "empty python block in doc"
    # The blocks after the setup one must actually prove something.
    assert sum("assert" in block for block in blocks) >= MIN_BLOCKS


@pytest.mark.parametrize("index", range(len(_blocks()) if DOC.exists() else 0))
def test_doc_block_runs(index):
    _run_upto(index)
