"""collate: padding, <bos>/<eos> placement, and moving a Batch the way Lightning does."""

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from seq2seq.data.collate import Batch, collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

EXAMPLES = [(4, [10, 11, 12], [20]), (9, [13], [21, 22, 23])]


def test_collate_pads_and_shifts_the_target():
    batch = collate(EXAMPLES)
    assert batch.src.tolist() == [[10, 11, 12], [13, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 20, PAD_ID, PAD_ID], [BOS_ID, 21, 22, 23]]
    assert batch.tgt_out.tolist() == [[20, EOS_ID, PAD_ID, PAD_ID], [21, 22, 23, EOS_ID]]
    assert batch.indices.tolist() == [4, 9]
    assert batch.num_tgt_tokens == 2 + 4
    assert len(batch) == 2


def test_padding_does_not_depend_on_batch_mates():
    alone = collate(EXAMPLES[:1])
    together = collate(EXAMPLES)
    assert together.tgt_out[0, : alone.tgt_out.shape[1]].tolist() == alone.tgt_out[0].tolist()


def test_empty_source_is_rejected():
    with pytest.raises(ValueError, match="example 3 has an empty source"):
        collate([(3, [], [5])])


def test_lightning_can_move_a_batch():
    moved = move_data_to_device(collate(EXAMPLES), torch.device("cpu"))
    assert isinstance(moved, Batch) and moved.src.tolist() == collate(EXAMPLES).src.tolist()
