"""BucketBatchSampler: coverage, token budget, determinism, DDP sharding, exact length."""

import random
from collections import Counter

import pytest

from seq2seq.data.sampler import BucketBatchSampler

LENGTHS = [random.Random(0).randint(1, 30) for _ in range(203)]


def make(lengths=LENGTHS, **overrides):
    options = dict(max_tokens=120, batch_size=None, shuffle=True, seed=7)
    options.update(overrides)
    return BucketBatchSampler(lengths, **options)


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


LIMITS = [
    dict(max_tokens=120, batch_size=None),
    dict(max_tokens=None, batch_size=16),
    dict(max_tokens=120, batch_size=5),
]


@pytest.mark.parametrize("limits", LIMITS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_example_exactly_once_per_epoch(limits, shuffle):
    sampler = make(shuffle=shuffle, **limits)
    for epoch in range(3):
        indices = [i for batch in epoch_batches(sampler, epoch) for i in batch]
        assert sorted(indices) == list(range(len(LENGTHS)))


def test_token_budget_and_sentence_limit_are_respected():
    for sampler in (make(max_tokens=120), make(max_tokens=120, batch_size=5)):
        for batch in sampler:
            assert max(LENGTHS[i] for i in batch) * len(batch) <= 120
            assert sampler.batch_size is None or len(batch) <= sampler.batch_size


def test_batches_are_homogeneous_in_length():
    # Sorting by length means a batch spans a narrow range compared to the data (1..30).
    spans = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in make(max_tokens=200)]
    assert max(spans) <= 2


def test_equal_lengths_are_ordered_by_the_tie_length_so_batches_run_fewer_decoder_steps():
    # Many examples of each padded length, targets of every length below it: as in a task whose sources
    # are longer than its targets. Sorting ties by the target length makes a batch's longest target shorter.
    rng = random.Random(1)
    lengths = [rng.randint(5, 12) for _ in range(2000)]
    targets = [rng.randint(1, length) for length in lengths]

    def mean_longest_target(sampler, epoch):
        batches = epoch_batches(sampler, epoch)
        return sum(max(targets[i] for i in batch) for batch in batches) / len(batches)

    plain = make(lengths, max_tokens=None, batch_size=32)
    tied = make(lengths, tie_lengths=[targets], max_tokens=None, batch_size=32)
    assert len(tied) == len(plain)  # the same cut: only which examples share a batch changes
    for batch in tied:
        assert max(lengths[i] for i in batch) - min(lengths[i] for i in batch) <= 1
    assert mean_longest_target(tied, 0) < 0.8 * mean_longest_target(plain, 0)
    for epoch in range(2):
        indices = sorted(i for batch in epoch_batches(tied, epoch) for i in batch)
        assert indices == list(range(len(lengths)))
    assert epoch_batches(tied, 0) != epoch_batches(tied, 1)  # full ties still broken at random, per epoch
    with pytest.raises(ValueError, match=r"tie_lengths must be rows of 2000 lengths, got shape \(1, 3\)"):
        make(lengths, tie_lengths=[[1, 2, 3]], max_tokens=None, batch_size=32)


def test_tie_lengths_order_row_by_row():
    rng = random.Random(2)
    lengths = [rng.randint(5, 6) for _ in range(600)]
    sources = [rng.randint(1, length) for length in lengths]
    targets = [rng.randint(1, length) for length in lengths]
    sampler = make(lengths, tie_lengths=[sources, targets], max_tokens=None, batch_size=600, shuffle=False)
    (batch,) = list(sampler)
    keys = [(lengths[i], sources[i], targets[i]) for i in batch]
    assert keys == sorted(keys)  # by length, then source length, then target length


def test_len_is_exact_and_stable_across_epochs():
    sampler = make()
    for epoch in range(4):
        assert len(epoch_batches(sampler, epoch)) == len(sampler)


def test_order_changes_across_epochs_but_repeats_for_same_seed_and_epoch():
    first, second = make(), make()
    assert epoch_batches(first, 0) != epoch_batches(first, 1)
    assert epoch_batches(first, 3) == epoch_batches(second, 3)
    assert epoch_batches(make(seed=8), 3) != epoch_batches(second, 3)


def test_without_shuffle_order_is_fixed_and_shortest_first():
    sampler = make(shuffle=False, max_tokens=None, batch_size=10)
    batches = epoch_batches(sampler, 0)
    assert epoch_batches(sampler, 5) == batches
    maxima = [max(LENGTHS[i] for i in b) for b in batches]
    assert maxima == sorted(maxima)


@pytest.mark.parametrize("num_replicas", [2, 3, 4])
def test_ranks_get_equal_counts_and_cover_everything(num_replicas):
    ranks = [make(num_replicas=num_replicas, rank=r) for r in range(num_replicas)]
    num_batches = len(make())
    for epoch in range(2):
        per_rank = [epoch_batches(s, epoch) for s in ranks]
        assert {len(b) for b in per_rank} == {len(ranks[0])}
        assert len(ranks[0]) == -(-num_batches // num_replicas)  # ceil
        all_batches = [tuple(b) for batches in per_rank for b in batches]
        counts = Counter(i for b in all_batches for i in b)
        assert set(counts) == set(range(len(LENGTHS)))  # everything seen at least once
        # Only the padding batches repeat: at most num_replicas - 1 whole batches are duplicated.
        assert len(all_batches) - len(set(all_batches)) == len(ranks[0]) * num_replicas - num_batches


def test_two_ranks_are_disjoint_when_batches_divide_evenly():
    lengths = [5] * 40  # max_tokens=50 -> batches of 10 -> 4 batches
    ranks = [make(lengths, max_tokens=50, num_replicas=2, rank=r) for r in range(2)]
    batches = [[i for b in epoch_batches(s, 1) for i in b] for s in ranks]
    assert not set(batches[0]) & set(batches[1])
    assert sorted(batches[0] + batches[1]) == list(range(40))


def test_fewer_batches_than_ranks_still_gives_every_rank_one():
    ranks = [make([3, 3], max_tokens=100, num_replicas=4, rank=r) for r in range(4)]
    assert [len(list(s)) for s in ranks] == [1, 1, 1, 1]


def test_example_longer_than_budget_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"example 2 has length 50 > max_tokens=40"):
        make([3, 4, 50, 2], max_tokens=40)


def test_needs_a_limit():
    with pytest.raises(ValueError, match="needs max_tokens or batch_size"):
        make(max_tokens=None, batch_size=None)


@pytest.mark.parametrize("bad", [dict(rank=2, num_replicas=2), dict(max_tokens=0), dict(batch_size=0)])
def test_invalid_arguments(bad):
    with pytest.raises(ValueError):
        make(**bad)


def test_set_epoch_is_reachable_the_way_lightning_calls_it():
    # lightning.fabric.utilities.data._set_sampler_epoch calls dataloader.batch_sampler.sampler.set_epoch.
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = make()
    loader = DataLoader(range(len(LENGTHS)), batch_sampler=sampler)
    _set_sampler_epoch(loader, 5)
    assert sampler.epoch == 5


def greedy_batch_sizes(sorted_lengths, max_tokens, batch_size):
    """The batching rule stated one example at a time: take the next example while its length (the batch
    maximum) times the new size fits max_tokens and the new size fits batch_size."""
    sizes, current = [], 0
    for length in sorted_lengths:
        fits_tokens = max_tokens is None or length * (current + 1) <= max_tokens
        fits_sentences = batch_size is None or current + 1 <= batch_size
        if current and not (fits_tokens and fits_sentences):
            sizes.append(current)
            current = 0
        current += 1
    return [*sizes, current]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("limits", LIMITS + [dict(max_tokens=37, batch_size=None), dict(max_tokens=300, batch_size=3)])
def test_the_vectorized_cut_follows_the_greedy_rule_example_by_example(seed, limits):
    rng = random.Random(seed)
    lengths = [rng.choice([1, 2, 3, 5, 8, 13, 21, 30]) for _ in range(rng.randint(1, 400))]
    sampler = make(lengths, shuffle=False, **limits)
    expected = greedy_batch_sizes(sorted(lengths), limits["max_tokens"], limits["batch_size"])
    assert [len(batch) for batch in epoch_batches(sampler, 0)] == expected
    # shuffled: the same multiset of sizes, in another order
    shuffled = make(lengths, shuffle=True, **limits)
    assert sorted(len(batch) for batch in epoch_batches(shuffled, 2)) == sorted(expected)


def test_batches_are_lists_of_python_ints_for_any_lengths_type():
    import numpy as np

    batch = next(iter(make(np.array(LENGTHS, dtype=np.int32))))
    assert isinstance(batch, list) and all(type(i) is int for i in batch)
