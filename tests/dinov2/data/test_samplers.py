"""Samplers: disjoint sharding per pass, exact continuation from a consumed-sample count."""

from __future__ import annotations

import itertools

import pytest
import torch

from dinov2.data import (
    EpochSampler,
    InfiniteSampler,
    SamplerType,
    ShardedInfiniteSampler,
    make_data_loader,
)


def _take(sampler, n: int) -> list[int]:
    return list(itertools.islice(iter(sampler), n))


@pytest.mark.parametrize("shuffle", [False, True])
def test_two_ranks_cover_the_dataset_disjointly_on_every_pass(shuffle):
    shards = [
        ShardedInfiniteSampler(sample_count=10, shuffle=shuffle, seed=3, start=r, step=2)
        for r in range(2)
    ]
    streams = [_take(s, 15) for s in shards]  # 3 passes of 5 indices per rank
    for p in range(3):
        a, b = (stream[5 * p : 5 * p + 5] for stream in streams)
        assert sorted(a + b) == list(range(10))
    if shuffle:
        assert streams[0][:5] != streams[0][5:10], "each pass uses a new permutation"
    else:
        assert streams[1][:5] == [1, 3, 5, 7, 9]


def test_sharded_sampler_keeps_ranks_in_lockstep_and_infinite_sampler_uses_all_samples():
    sharded = [
        _take(ShardedInfiniteSampler(sample_count=11, shuffle=True, start=r, step=2), 5)
        for r in range(2)
    ]
    assert len(set(sharded[0]) | set(sharded[1])) == 10  # one sample per pass dropped, 5 each
    plain = [InfiniteSampler(sample_count=11, shuffle=True, start=r, step=2) for r in range(2)]
    first_pass = _take(plain[0], 6) + _take(plain[1], 5)
    assert sorted(first_pass) == list(range(11))


@pytest.mark.parametrize("cls", [InfiniteSampler, ShardedInfiniteSampler])
@pytest.mark.parametrize("advance", [0, 1, 4, 5, 12, 23])
def test_resuming_at_consumed_count_reproduces_the_uninterrupted_tail(cls, advance):
    kwargs = dict(sample_count=11, shuffle=True, seed=7, start=1, step=2)
    straight = _take(cls(**kwargs), 30)
    resumed = _take(cls(advance=advance, **kwargs), 30 - advance)
    assert resumed == straight[advance:]


def test_seed_changes_the_order_and_is_reproducible():
    a = _take(InfiniteSampler(sample_count=50, shuffle=True, seed=0, start=0, step=1), 50)
    b = _take(InfiniteSampler(sample_count=50, shuffle=True, seed=0, start=0, step=1), 50)
    c = _take(InfiniteSampler(sample_count=50, shuffle=True, seed=1, start=0, step=1), 50)
    assert a == b and a != c and sorted(a) == list(range(50))


def test_data_loader_with_advance_continues_the_batch_sequence():
    dataset = torch.utils.data.TensorDataset(torch.arange(20))

    def loader(advance: int):
        return make_data_loader(
            dataset=dataset,
            batch_size=3,
            num_workers=0,
            seed=5,
            sampler_type=SamplerType.SHARDED_INFINITE,
            sampler_advance=advance,
        )

    straight = [batch[0].tolist() for batch in itertools.islice(loader(0), 10)]
    resumed = [batch[0].tolist() for batch in itertools.islice(loader(4 * 3), 6)]
    assert resumed == straight[4:]


def test_epoch_sampler_visits_each_index_once_and_reshuffles_per_epoch():
    sampler = EpochSampler(size=12, sample_count=12, shuffle=True, seed=1, start=0, step=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(12)) and first != second
    assert len(sampler) == 12


def test_bad_shard_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="start=2"):
        InfiniteSampler(sample_count=5, start=2, step=2)
    with pytest.raises(ValueError, match="too small"):
        ShardedInfiniteSampler(sample_count=1, start=0, step=2)
    with pytest.raises(ValueError, match="sampler_advance"):
        make_data_loader(
            dataset=list(range(4)),
            batch_size=2,
            num_workers=0,
            sampler_type=SamplerType.EPOCH,
            sampler_advance=2,
        )
