"""Filling unseen texels on the surface, and padding UV islands."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from texgen.fill import fill_unseen, nearest_painted, pad_islands, pad_texture
from texgen.mesh import Mesh
from texgen.texels import TexelMap

cv2 = pytest.importorskip("cv2")


def two_cards(gap: float = 0.02, size: int = 32) -> TexelMap:
    """Two parallel cards ``gap`` apart in 3D (a lid on a box), each its own UV island side by side."""
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    positions = np.concatenate([square, square + [0, 0, gap]])
    uvs = np.array([[0.02, 0.02], [0.48, 0.02], [0.48, 0.98], [0.02, 0.98]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    mesh = Mesh.from_arrays(positions, faces, np.concatenate([uvs, uvs + [0.5, 0]]), faces)
    return TexelMap.build(mesh, size)


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.int32)


def test_fill_unseen_keeps_painted_texels_and_fills_the_rest() -> None:
    texels = two_cards()
    rng = np.random.default_rng(0)
    colour = torch.from_numpy(rng.uniform(0, 1, (texels.count, 3)).astype(np.float32))
    colour[5] = -0.0
    painted = torch.from_numpy(rng.uniform(size=texels.count) < 0.3)
    painted[5] = True
    before = colour.clone()
    filled = fill_unseen(texels, colour, painted)
    np.testing.assert_array_equal(bits(colour.numpy()), bits(before.numpy()))  # the input is not modified
    np.testing.assert_array_equal(bits(filled.numpy()[painted.numpy()]), bits(colour.numpy()[painted.numpy()]))
    assert np.isfinite(filled.numpy()).all()
    # filled colours are blends of painted ones
    low, high = colour.numpy()[painted.numpy()].min(axis=0), colour.numpy()[painted.numpy()].max(axis=0)
    assert (filled.numpy() >= low - 1e-6).all() and (filled.numpy() <= high + 1e-6).all()

    everything = torch.ones(texels.count, dtype=torch.bool)
    np.testing.assert_array_equal(fill_unseen(texels, colour, everything).numpy(), colour.numpy())
    nothing = fill_unseen(texels, colour, torch.zeros(texels.count, dtype=torch.bool))
    assert (nothing.numpy() == 0.5).all()


def test_fill_smooths_texels_on_the_border_of_the_texture() -> None:
    """An island that covers the whole square: the smoothing's neighbours run off the texture's edges."""
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    texels = TexelMap.build(Mesh.from_arrays(square, faces, square[:, :2], faces), 16)
    assert texels.count == 16 * 16
    painted = torch.zeros(texels.count, dtype=torch.bool)
    painted[::7] = True
    colour = torch.from_numpy(np.random.default_rng(2).uniform(0, 1, (texels.count, 3)).astype(np.float32))
    filled = fill_unseen(texels, colour, painted).numpy()
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[painted.numpy()], colour.numpy()[painted.numpy()])


@pytest.mark.parametrize("iterations", [1, 3])
def test_smoothing_averages_each_unseen_texel_with_its_valid_neighbours(iterations: int) -> None:
    """Each step gives every unpainted texel the mean of the valid texels of its 3 x 3 square (itself
    included) as they were before the step; painted texels never change."""
    texels = two_cards()
    rng = np.random.default_rng(4)
    colour = torch.from_numpy(rng.uniform(0, 1, (texels.count, 3)).astype(np.float32))
    painted = torch.from_numpy(rng.uniform(size=texels.count) < 0.4)
    expected = fill_unseen(texels, colour, painted, smooth_iterations=0).numpy().astype(np.float64)
    size, free = texels.size, ~painted.numpy()
    for _ in range(iterations):
        image = np.zeros((size + 2, size + 2, 3))
        valid = np.zeros((size + 2, size + 2))
        image[1:-1, 1:-1] = texels.to_image(expected)
        valid[1:-1, 1:-1] = texels.valid
        total = sum(image[1 + dy:size + 1 + dy, 1 + dx:size + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        count = sum(valid[1 + dy:size + 1 + dy, 1 + dx:size + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        step = texels.gather(total / np.maximum(count, 1)[..., None])
        expected[free] = step[free]
    filled = fill_unseen(texels, colour, painted, smooth_iterations=iterations).numpy()
    np.testing.assert_allclose(filled, expected, rtol=0, atol=1e-6)


def test_voronoi_fill_takes_the_nearest_painted_texel_of_the_island() -> None:
    texels = two_cards()
    rng = np.random.default_rng(1)
    colour = torch.from_numpy(rng.uniform(0, 1, (texels.count, 3)).astype(np.float32))
    painted = torch.from_numpy(rng.uniform(size=texels.count) < 0.1)
    filled = fill_unseen(texels, colour, painted, smooth_iterations=0).numpy()
    positions, island = texels.position.numpy(), texels.island.numpy()
    source, target = np.flatnonzero(painted.numpy()), np.flatnonzero(~painted.numpy())
    distance = cdist(positions[target], positions[source])
    distance[island[target][:, None] != island[source][None, :]] = np.inf
    nearest = distance.min(axis=1)
    chosen = nearest_painted(texels, painted.numpy())
    np.testing.assert_allclose(np.linalg.norm(positions[target] - positions[chosen], axis=1), nearest, rtol=1e-5)
    np.testing.assert_array_equal(filled[target], colour.numpy()[chosen])


def test_nearest_painted_prefers_the_same_island() -> None:
    texels = two_cards(gap=0.01)
    island = texels.island.numpy()
    first, second = (np.flatnonzero(island == label) for label in np.unique(island))
    positions = texels.position.numpy()
    # the source: all of the second card, and the first card's texels near its x = 0 edge only
    edge = first[positions[first, 0] < positions[first, 0].min() + 0.01]
    painted = np.zeros(texels.count, bool)
    painted[edge] = painted[second] = True
    target = np.flatnonzero(~painted)
    assert np.isin(target, first).all()
    nearest = nearest_painted(texels, painted)
    # the other card is 0.01 away in 3D, the first card's own painted edge much farther: the own island wins
    assert (island[nearest] == island[first[0]]).all()
    assert np.linalg.norm(positions[target] - positions[nearest], axis=1).max() > 0.5

    # an island with no painted texel at all takes the nearest texel on any island
    painted = np.isin(np.arange(texels.count), second)
    nearest = nearest_painted(texels, painted)
    assert (island[nearest] != island[first[0]]).all()
    assert np.linalg.norm(positions[first] - positions[nearest], axis=1).max() < 0.03


def test_cv2_labels_number_the_zero_pixels_in_row_major_order() -> None:
    """pad_islands relies on this convention of cv2.distanceTransformWithLabels with DIST_LABEL_PIXEL."""
    valid = np.random.default_rng(2).uniform(size=(23, 31)) < 0.2
    distance, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    np.testing.assert_array_equal(labels[valid], np.arange(1, valid.sum() + 1))
    assert (distance[valid] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_pad_islands_copies_the_nearest_valid_colour_within_the_margin(dtype: type) -> None:
    rng = np.random.default_rng(3)
    size, margin = 48, 4
    valid = np.zeros((size, size), bool)
    valid[5:15, 8:30] = True
    valid[25:40, 20:28] = True
    valid[30:33, 40:41] = True
    # every valid texel gets a colour that names it, so the test can tell which one was copied
    ids = np.arange(size * size).reshape(size, size)
    image = np.stack([ids % 256, ids // 256, rng.integers(0, 256, (size, size))], axis=-1).astype(dtype)
    padded = pad_islands(image, valid, margin)
    assert padded.dtype == image.dtype and padded is not image
    np.testing.assert_array_equal(padded[valid], image[valid])

    # cv2's 5x5 mask approximates the Euclidean distance within a few percent
    distance = np.zeros((size, size))
    distance[~valid] = cdist(np.argwhere(~valid), np.argwhere(valid)).min(axis=1)
    changed = (padded != image).any(axis=-1)  # every colour is unique, so a padded texel always changes
    assert changed[~valid & (distance <= margin * 0.95)].all()
    assert not changed[distance > margin * 1.05].any()  # beyond the margin nothing changes
    source_ids = padded[changed][:, 0].astype(np.int64) + 256 * padded[changed][:, 1].astype(np.int64)
    source = np.stack(np.divmod(source_ids, size), axis=1)
    assert valid[source[:, 0], source[:, 1]].all()  # copied from a valid texel ...
    np.testing.assert_array_equal(padded[changed][:, 2], image[source[:, 0], source[:, 1], 2])
    copied = np.linalg.norm(np.argwhere(changed) - source, axis=1)
    assert (copied <= distance[changed] * 1.05 + 1e-9).all()  # ... at the nearest distance


def test_pad_texture_pads_as_pad_islands_with_the_maps_padding_made_once() -> None:
    texels = two_cards()
    image = np.random.default_rng(3).uniform(0, 1, (texels.size, texels.size, 4)).astype(np.float32)
    for margin in (0, 2, 5):
        np.testing.assert_array_equal(pad_texture(texels, image, margin), pad_islands(image, texels.valid, margin))
    assert texels.padding(2) is texels.padding(2)


def test_padding_prepared_in_the_background_is_the_padding_made_in_place() -> None:
    texels, again = two_cards(), two_cards()
    texels.prepare_padding(3)
    texels.prepare_padding(3)  # a second request waits on the first
    for made, expected in zip(texels.padding(3), again.padding(3)):
        np.testing.assert_array_equal(made, expected)
    assert texels.padding(3) is texels.padding(3)


def test_pad_islands_edge_cases() -> None:
    image = np.arange(16, dtype=np.float32).reshape(4, 4)[..., None]
    valid = np.zeros((4, 4), bool)
    np.testing.assert_array_equal(pad_islands(image, valid, 3), image)  # nothing to copy from
    np.testing.assert_array_equal(pad_islands(image, ~valid, 3), image)  # nothing to pad
    valid[0, 0] = True
    np.testing.assert_array_equal(pad_islands(image, valid, 0), image)  # no margin
    np.testing.assert_array_equal(pad_islands(image, valid, 1)[:2, :2, 0], [[0, 0], [0, 5]])  # 1.41 > 1


@pytest.mark.parametrize("search_alone", [1, 10**9])
def test_frontier_search_finds_the_exact_nearest_on_a_curved_mesh(search_alone: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The search looks at the painted frontier only; on a curved, many-island mesh it still finds
    the nearest painted texel of the island (by distance: ties may pick another texel), whether
    each island is searched alone or all together."""
    from pathlib import Path

    import texgen.fill
    from texgen.mesh import load_mesh

    monkeypatch.setattr(texgen.fill, "SEARCH_ALONE", search_alone)
    texels = TexelMap.build(load_mesh(Path(__file__).parents[1] / "assets" / "creature.obj"), 256)
    positions, island = texels.position.numpy(), texels.island.numpy()
    painted = positions[:, 0] > -0.2  # a large painted region with a curved frontier across many islands
    source, target = np.flatnonzero(painted), np.flatnonzero(~painted)
    chosen = nearest_painted(texels, painted)
    found = np.linalg.norm(positions[target] - positions[chosen], axis=1)
    # the exact answer: a k-d tree over every painted texel, islands lifted far apart in a fourth coordinate
    lifted = np.concatenate([positions, island[:, None] * 1e3], axis=1).astype(np.float64)
    exact, nearest = cKDTree(lifted[source]).query(lifted[target])
    same_island = island[source[nearest]] == island[target]
    assert same_island.mean() > 0.9
    np.testing.assert_allclose(found[same_island], exact[same_island], atol=1e-6)
