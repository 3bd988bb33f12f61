"""Rows appended to and taken out of every storage a table can have, in that storage."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.catalog.rows import append_rows, pq_encode, swap_remove_order, take_rows
from edgegnn.errors import ConfigError
from edgegnn.tensors import (
    DenseTensor,
    LowRankTensor,
    ProductQuantizedTensor,
    QuantizedTensor,
    RowScaledTensor,
    quantize_rows,
)

RNG = np.random.default_rng(4)
TABLE = RNG.standard_normal((50, 8)).astype(np.float32)
NEW = RNG.standard_normal((3, 8)).astype(np.float32)


def test_dense_rows_are_appended_as_they_are():
    out = append_rows(DenseTensor(TABLE), NEW)
    np.testing.assert_array_equal(out.to_dense(), np.vstack([TABLE, NEW]))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_rows_get_their_own_scales_and_the_old_codes_stay(bits):
    table = quantize_rows(TABLE, bits)
    out = append_rows(table, NEW)
    assert out.bits == bits and out.scale.dtype == table.scale.dtype
    np.testing.assert_array_equal(out.q[:50], table.q)
    np.testing.assert_array_equal(out.scale[:50], table.scale)
    np.testing.assert_allclose(out.to_dense()[50:], NEW, atol=float(out.scale[50:].max()) / 2 + 1e-6)


def test_a_table_with_one_scale_gives_new_rows_that_scale_and_clips_beyond_it(caplog):
    scale = np.float32(np.abs(TABLE).max() / 127)
    table = QuantizedTensor(q=np.rint(TABLE / scale).astype(np.int8), scale=np.full(50, scale, np.float32), bits=8)
    big = NEW.copy()
    big[0, 0] = 10 * np.abs(TABLE).max()
    out = append_rows(table, big, name="item")
    assert (out.scale == scale).all()
    assert out.q[50, 0] == 127 and "1 of 3 new rows exceed the table's one scale" in caplog.text
    np.testing.assert_allclose(out.to_dense()[51:], big[1:], atol=float(scale) / 2 + 1e-6)


def test_low_rank_rows_are_least_squares_against_the_fixed_right_factor():
    left, right = RNG.standard_normal((50, 3)).astype(np.float32), RNG.standard_normal((8, 3)).astype(np.float32)
    table = LowRankTensor(left=DenseTensor(left), right=DenseTensor(right))
    in_span = (RNG.standard_normal((2, 3)) @ right.T).astype(np.float32)
    out = append_rows(table, in_span)
    assert out.right is table.right
    np.testing.assert_allclose(out.to_dense()[50:], in_span, atol=1e-4)
    np.testing.assert_array_equal(out.left.to_dense()[:50], left)


def test_product_quantized_rows_take_each_subvectors_nearest_codeword():
    books = RNG.standard_normal((4, 8, 2)).astype(np.float32)          # M=4 sub-vectors of 2, K=8
    codes = RNG.integers(0, 8, (50, 4)).astype(np.uint8)
    table = ProductQuantizedTensor(codes=codes, codebooks=books)
    wanted = np.array([[3, 0, 7, 1], [5, 5, 2, 6]], np.uint8)
    rows = np.stack([np.concatenate([books[m, c] for m, c in enumerate(w)]) for w in wanted])
    rows += np.float32(1e-3)                                           # near, not on, the codewords
    np.testing.assert_array_equal(pq_encode(rows, books), wanted)
    out = append_rows(table, rows)
    np.testing.assert_array_equal(out.codes, np.vstack([codes, wanted]))


def test_other_storages_are_refused_in_one_line():
    table = RowScaledTensor(base=DenseTensor(TABLE), row_scale=DenseTensor(np.ones(50, np.float32)))
    with pytest.raises(ConfigError, match="new items can be added to dense, int8/int4, low-rank"):
        append_rows(table, NEW, name="item")
    with pytest.raises(ConfigError, match="items can be removed from"):
        take_rows(table, np.arange(3), name="item")


def test_a_swap_removal_moves_only_the_last_survivors_into_the_holes():
    removed = np.array([2, 7, 48])
    order = swap_remove_order(50, removed)
    assert len(order) == 47 and not set(order) & set(removed.tolist())
    assert sorted(order.tolist()) == sorted(set(range(50)) - set(removed.tolist()))
    unchanged = np.setdiff1d(np.arange(47), removed)
    np.testing.assert_array_equal(order[unchanged], unchanged)        # every other row keeps its place
    assert order[2] == 47 and order[7] == 49                          # the survivors past the end, in order


@pytest.mark.parametrize("table", [DenseTensor(TABLE), quantize_rows(TABLE, 8),
                                   LowRankTensor(left=DenseTensor(TABLE[:, :3]), right=DenseTensor(TABLE[:8, :3])),
                                   ProductQuantizedTensor(codes=RNG.integers(0, 8, (50, 4)).astype(np.uint8),
                                                          codebooks=RNG.standard_normal((4, 8, 2)).astype(np.float32))],
                         ids=["dense", "int8", "low-rank", "pq"])
def test_taken_rows_are_the_rows_in_that_order(table):
    order = swap_remove_order(50, np.array([0, 10]))
    out = take_rows(table, order)
    assert type(out) is type(table)
    np.testing.assert_array_equal(out.to_dense(), table.to_dense()[order])
