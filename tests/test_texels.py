"""The UV rasteriser: which texels each UV triangle covers, where they are in 3D, overlaps, islands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from texgen import render as render_module
from texgen import texels as texels_module
from texgen.errors import MeshError
from texgen.mesh import Mesh
from texgen.texels import (TexelMap, _altitude, _edge_functions, build_in_background, rasterise_parallelograms,
                           rasterise_triangles)


def texel_centres(size: int) -> np.ndarray:
    """(N * N, 2) UV of every texel centre, in flat (row * N + col) order; row 0 is v = 1."""
    rows, cols = np.divmod(np.arange(size * size), size)
    return np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=1)


def barycentric(points: np.ndarray, triangle: np.ndarray) -> np.ndarray:
    """(P, 3) barycentric coordinates of 2D points in one triangle (3, 2)."""
    a, b, c = triangle
    matrix = np.array([b - a, c - a]).T
    l1, l2 = np.linalg.solve(matrix, (points - a).T)
    return np.stack([1 - l1 - l2, l1, l2], axis=1)


def soup(uv_triangles: np.ndarray, positions: np.ndarray | None = None) -> Mesh:
    """A mesh of separate triangles with the given UV triangles (T, 3, 2); 3D positions random unless given."""
    count = len(uv_triangles)
    if positions is None:
        positions = np.random.default_rng(count).normal(size=(count * 3, 3))
    faces = np.arange(3 * count).reshape(-1, 3)
    return Mesh.from_arrays(positions, faces, uv_triangles.reshape(-1, 2), faces)


def quad_mesh(uv_corners: np.ndarray, positions: np.ndarray) -> Mesh:
    """Two triangles sharing a diagonal, with shared UVs: one island."""
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return Mesh.from_arrays(positions, faces, uv_corners, faces)


def test_every_texel_centre_lies_inside_its_triangle_and_none_is_missed() -> None:
    rng = np.random.default_rng(0)
    size = 40
    triangles = rng.uniform(0, 1, size=(30, 3, 2))
    mesh = soup(triangles)
    texels = TexelMap.build(mesh, size)
    centres = texel_centres(size)[texels.index.numpy()]
    face = texels.face.numpy()
    bary = texels.bary.numpy().astype(np.float64)
    # the stored barycentrics reproduce the texel centre in the stored face's UV triangle
    np.testing.assert_allclose(np.einsum("mk,mkd->md", bary, triangles[face]), centres, atol=1e-5)
    assert (bary >= 0).all() and np.allclose(bary.sum(axis=1), 1)

    # brute force over every texel and triangle: strictly inside somewhere -> valid; valid -> inside somewhere
    inside = np.stack([barycentric(texel_centres(size), t).min(axis=1) for t in triangles], axis=1)
    valid = texels.valid.reshape(-1)
    assert valid[inside.max(axis=1) > 1e-6].all()
    assert (inside.max(axis=1)[valid] >= -1e-6).all()
    assert texels.count == int(valid.sum()) > 0


def test_the_texel_centre_convention() -> None:
    """Texel (row, col) has its centre at u = (col + 0.5) / N, v = 1 - (row + 0.5) / N."""
    size = 8
    # a small triangle around the centre of texel (row 1, col 6) only
    u, v = 6.5 / size, 1 - 1.5 / size
    tiny = np.array([[[u - 0.02, v - 0.02], [u + 0.03, v - 0.02], [u, v + 0.03]]])
    texels = TexelMap.build(soup(tiny), size)
    assert texels.index.tolist() == [1 * size + 6]


def test_a_quad_over_the_whole_square_makes_every_texel_valid_and_interpolates_positions() -> None:
    size = 32
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    # an affine image of the UV square in 3D: position = origin + u * a + v * b
    origin, a, b = np.array([0.3, -2.0, 1.0]), np.array([2.0, 0.5, 0.0]), np.array([0.0, 1.0, 3.0])
    mesh = quad_mesh(uv, origin + uv[:, :1] * a + uv[:, 1:] * b)
    texels = TexelMap.build(mesh, size)
    assert texels.count == size * size and texels.valid.all()
    assert not texels.overlap.any()  # the texel centres on the shared diagonal are not overlaps
    assert set(texels.island.tolist()) == {int(mesh.face_islands[0])}
    centres = texel_centres(size)[texels.index.numpy()]
    expected = (origin + centres[:, :1] * a + centres[:, 1:] * b - mesh.center) * mesh.scale
    np.testing.assert_allclose(texels.position.numpy(), expected, atol=1e-5)
    normal = np.cross(a, b) / np.linalg.norm(np.cross(a, b))
    np.testing.assert_allclose(texels.normal.numpy(), np.tile(normal, (size * size, 1)), atol=1e-6)
    assert texels.bary.dtype == texels.position.dtype == texels.normal.dtype == torch.float32


def test_mirrored_uvs_are_flagged_as_overlap() -> None:
    """Two halves of a model that share one UV triangle (a mirrored layout): every shared texel is ambiguous."""
    size = 32
    shared = np.array([[0.1, 0.1], [0.45, 0.1], [0.1, 0.45]])
    alone = np.array([[0.6, 0.6], [0.9, 0.6], [0.6, 0.9]])
    left = np.array([[-1.0, 0, 0], [-0.5, 0, 0], [-1.0, 0.5, 0]])
    mesh = soup(np.stack([shared, shared, alone]), np.concatenate([left, left * [-1, 1, 1], left + [0, 0, 2]]))
    texels = TexelMap.build(mesh, size)
    face = texels.face.numpy()
    overlap = texels.overlap.numpy()
    in_shared = face != 2
    assert overlap[in_shared].all() and not overlap[~in_shared].any()
    # an overlapped texel keeps one of its faces; its 3D position lies on that face
    assert set(face[in_shared].tolist()) <= {0, 1}


def test_per_corner_uv_rows_with_equal_values_are_one_island() -> None:
    """Tools often send one UV row per face corner; equal values at a shared vertex are not a seam."""
    size = 16
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = positions[:, :2][faces].reshape(-1, 2)
    mesh = Mesh.from_arrays(positions, faces, uv)
    texels = TexelMap.build(mesh, size)
    assert texels.count == size * size and not texels.overlap.any()
    assert len(set(texels.island.tolist())) == 1


def test_island_labels_follow_the_faces() -> None:
    size = 32
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    low = np.array([[0.05, 0.05], [0.45, 0.05], [0.45, 0.45], [0.05, 0.45]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    mesh = Mesh.from_arrays(np.concatenate([positions, positions + [0, 0, 1]]), faces,
                            np.concatenate([low, low + 0.5]), faces)
    texels = TexelMap.build(mesh, size)
    islands = texels.island.numpy()
    np.testing.assert_array_equal(islands, mesh.face_islands[texels.face.numpy()])
    assert len(set(islands.tolist())) == 2
    rows, cols = np.divmod(texels.index.numpy(), size)
    upper_right = (rows < size // 2) & (cols >= size // 2)  # v > 0.5 and u > 0.5
    assert len(set(islands[upper_right].tolist())) == 1 and len(set(islands[~upper_right].tolist())) == 1


def test_degenerate_faces_and_zero_area_uvs_cover_nothing() -> None:
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 1, 3], [1, 1, 2], [0, 1, 2]])  # collinear; repeated vertex; fine
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.3, 0.3], [0.6, 0.6], [0.9, 0.9]])
    uv_faces = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 4, 5]])  # the last is a zero-area UV triangle
    mesh = Mesh.from_arrays(positions, faces, uvs, uv_faces)
    texels = TexelMap.build(mesh, 16)
    assert set(texels.face.tolist()) == {0}


def test_wrapped_uvs_rasterise_into_the_square() -> None:
    size = 16
    triangle = np.array([[0.1, 0.1], [0.8, 0.1], [0.1, 0.8]])
    home = TexelMap.build(soup(triangle[None]), size)
    wrapped = TexelMap.build(soup((triangle + [1.0, -1.0])[None]), size)
    np.testing.assert_array_equal(wrapped.index.numpy(), home.index.numpy())
    np.testing.assert_allclose(wrapped.bary.numpy(), home.bary.numpy(), atol=1e-6)


def test_images_scatter_and_gather() -> None:
    size = 16
    texels = TexelMap.build(soup(np.array([[[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]]])), size)
    values = torch.rand(texels.count, 3)
    image = texels.to_image(values, fill=-1.0)
    assert image.shape == (size, size, 3) and image.dtype == np.float32
    assert (image[~texels.valid] == -1).all()
    np.testing.assert_array_equal(texels.gather(image), values.numpy())
    np.testing.assert_array_equal(texels.to_image(np.ones(texels.count)) > 0, texels.valid)
    flat = np.arange(size * size)
    valid, invalid = flat[texels.valid.reshape(-1)], flat[~texels.valid.reshape(-1)]
    outside = np.array([-1, size * size, size * size + 5])
    for few in (slice(0, 3), slice(None)):  # a binary search, and a table for many lookups
        np.testing.assert_array_equal(texels.number_of(valid[few]), np.arange(texels.count)[few])  # row-major
        assert (texels.number_of(invalid[few]) == -1).all()
        assert (texels.number_of(np.r_[outside, valid[few]])[:3] == -1).all()


def test_chunking_does_not_change_the_exact_rasteriser(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    tri = rng.uniform(-2, 66, size=(60, 3, 2))
    whole = rasterise_triangles(tri, 64)
    monkeypatch.setattr(texels_module, "CHUNK_CANDIDATES", 97)  # many small chunks, down to one triangle each
    chunked = rasterise_triangles(tri, 64)

    def pairs(hits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        order = np.lexsort((hits[1], hits[0]))
        return np.stack([hits[0][order], hits[1][order]], axis=1)

    assert len(whole[0]) > 500
    np.testing.assert_array_equal(pairs(chunked), pairs(whole))


def test_drawing_in_tiles_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    mesh = soup(rng.uniform(0, 1, size=(60, 3, 2)))
    whole = TexelMap.build(mesh, 64)
    monkeypatch.setattr(render_module, "UV_TILE", 24)  # tiles that do not divide the image
    tiled = TexelMap.build(mesh, 64)
    for name in ("index", "face", "bary", "position", "normal", "overlap", "island"):
        np.testing.assert_array_equal(getattr(tiled, name).numpy(), getattr(whole, name).numpy())


def test_per_texel_arithmetic_in_chunks_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    mesh = soup(rng.uniform(0, 1, size=(60, 3, 2)))
    whole = TexelMap.build(mesh, 64)
    monkeypatch.setattr(texels_module, "TEXEL_CHUNK", 97)  # chunks that do not divide the texel count
    chunked = TexelMap.build(mesh, 64)
    assert whole.count > 10 * 97
    for name in ("index", "face", "bary", "position", "overlap", "island"):
        np.testing.assert_array_equal(getattr(chunked, name).numpy(), getattr(whole, name).numpy())


def test_a_map_built_in_the_background_is_the_same_and_raises_the_same_errors() -> None:
    rng = np.random.default_rng(6)
    mesh = soup(rng.uniform(0, 1, size=(40, 3, 2)))
    ready = build_in_background(mesh, 48)
    here = TexelMap.build(mesh, 48)
    there = ready.result(timeout=60)
    for name in ("index", "face", "bary", "position", "overlap", "island", "face_normals", "face_offsets"):
        np.testing.assert_array_equal(getattr(there, name).numpy(), getattr(here, name).numpy())
    bare = Mesh.from_arrays(mesh.positions, mesh.faces)
    with pytest.raises(MeshError, match="has no UV map"):
        build_in_background(bare, 48).result(timeout=60)


def test_texel_centres_exactly_on_every_edge_are_covered() -> None:
    """GL's top-left rule leaves out centres on a right or bottom edge; the exact test keeps them."""
    size = 16
    # a right triangle whose corners are texel centres: its legs and hypotenuse run through centres
    corners = np.array([[[2.5, 2.5], [12.5, 2.5], [2.5, 12.5]]]) / size
    texels = TexelMap.build(soup(corners), size)
    rows, cols = np.divmod(np.arange(size * size), size)
    x, y = cols, size - 1 - rows  # texel-centre coordinates with v up: centre (x, y) is at ((x + .5) / N, (y + .5) / N)
    inside = (x >= 2) & (y >= 2) & (x + y <= 14)
    np.testing.assert_array_equal(texels.valid.reshape(-1), inside)
    assert (texels.bary.numpy() >= 0).all()


def test_a_sliver_thinner_than_gl_sub_pixel_grid_keeps_its_texels() -> None:
    """A triangle 0.003 texels high across a row of texel centres: GL may draw none of them."""
    size = 16
    corners = np.array([[1.2, 4.999], [13.7, 4.999], [7.0, 5.002]])  # texel-centre coordinates (x, y down)
    uv = np.stack([(corners[:, 0] + 0.5) / size, 1 - (corners[:, 1] + 0.5) / size], axis=1)
    texels = TexelMap.build(soup(uv[None]), size)
    inside = barycentric(texel_centres(size), uv).min(axis=1) >= 0
    assert inside.sum() >= 5
    np.testing.assert_array_equal(texels.valid.reshape(-1), inside)


def jittered_grid(n: int) -> Mesh:
    """A flat grid of (n - 1)^2 quads, two triangles each, their corners jittered off any texel grid."""
    grid = np.stack(np.meshgrid(np.linspace(0.013, 0.987, n), np.linspace(0.021, 0.979, n)), axis=-1).reshape(-1, 2)
    jitter = np.random.default_rng(1).uniform(-0.3, 0.3, grid.shape) / n
    jitter[(grid == grid.min(axis=0)) | (grid == grid.max(axis=0))] = 0
    uv = grid + jitter
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = (corner.reshape(-1) for corner in (index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]))
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return Mesh.from_arrays(np.c_[uv, np.zeros(len(uv))], faces, uv, faces)


def test_gl_coverage_agrees_with_the_exact_test_on_a_dense_mesh() -> None:
    """Many small triangles sharing edges (a grid of quads): no hole, no texel outside its triangle."""
    size = 128
    mesh = jittered_grid(23)  # quad corners off the texel grid, so that GL's snapping matters
    uv, faces = mesh.uvs, mesh.faces
    texels = TexelMap.build(mesh, size)
    centres = texel_centres(size)
    low, high = uv.min(axis=0), uv.max(axis=0)
    within = ((centres > low) & (centres < high)).all(axis=1)
    assert texels.valid.reshape(-1)[within].all() and not texels.overlap.any()
    # each texel's barycentrics reproduce its centre in its own face's UV triangle
    np.testing.assert_allclose(np.einsum("mk,mkd->md", texels.bary.numpy().astype(np.float64),
                                         uv[faces[texels.face.numpy()]]), centres[texels.index.numpy()], atol=1e-6)


def mirrored_soup() -> Mesh:
    """Two triangles sharing one UV triangle (overlap) and a third alone."""
    shared, alone = np.array([[0.1, 0.1], [0.45, 0.1], [0.1, 0.45]]), np.array([[0.6, 0.6], [0.9, 0.6], [0.6, 0.9]])
    return soup(np.stack([shared, shared, alone]))


@pytest.mark.parametrize("mesh, size", [(jittered_grid(23), 128), (jittered_grid(40), 32), (mirrored_soup(), 32),
                                        (soup(np.random.default_rng(0).uniform(0, 1, size=(30, 3, 2))), 40)],
                         ids=["dense grid", "grid of slivers", "mirrored", "soup"])
def test_the_exact_rasteriser_alone_gives_the_map_gl_gives(monkeypatch: pytest.MonkeyPatch, mesh: Mesh,
                                                            size: int) -> None:
    """Where GL would settle nearly every texel, TexelMap.build tests every texel of every box instead:
    the same texels, faces and overlaps, barycentrics within rounding."""
    monkeypatch.setattr(texels_module, "_exact_is_cheaper", lambda *args: False)
    drawn = TexelMap.build(mesh, size)
    monkeypatch.setattr(texels_module, "_exact_is_cheaper", lambda *args: True)
    exact = TexelMap.build(mesh, size)
    for name in ("index", "face", "overlap", "island"):
        np.testing.assert_array_equal(getattr(exact, name).numpy(), getattr(drawn, name).numpy(), err_msg=name)
    np.testing.assert_allclose(exact.bary.numpy(), drawn.bary.numpy(), atol=1e-6)
    assert (exact.bary.numpy() >= 0).all() and np.allclose(exact.bary.numpy().sum(axis=1), 1)


def test_the_exact_rasteriser_is_chosen_where_most_triangles_are_slivers() -> None:
    mesh = jittered_grid(40)  # 3042 triangles
    for size, exact in ((16, True), (32, True), (1024, False)):
        corners = mesh.corner_uvs()
        tri = np.stack([corners[..., 0] * size - 0.5, (1.0 - corners[..., 1]) * size - 0.5], axis=-1)
        assert texels_module._exact_is_cheaper(tri, _altitude(_edge_functions(tri)) < texels_module.SLIVER,
                                               size) == exact, size


def test_a_face_running_past_the_edge_continues_on_the_other_side() -> None:
    size = 16
    straddling = TexelMap.build(soup(np.array([[[0.8, 0.2], [1.08, 0.2], [0.8, 0.6]]])), size)
    cols = straddling.index.numpy() % size
    assert (cols >= 12).any() and (cols == 0).any(), "the part beyond u = 1 wraps to column 0"
    assert (straddling.bary.numpy() >= 0).all()


def test_altitude_is_the_smallest_height_of_each_triangle() -> None:
    right = [[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]  # legs 4 and 3: the height onto the hypotenuse is 12 / 5
    sliver = [[0.0, 0.0], [100.0, 0.5], [50.0, 0.0]]  # area 12.5, about 100 long
    heights = _altitude(_edge_functions(np.array([right, sliver])))
    # twice the area over the longest side
    np.testing.assert_allclose(heights, [2.4, 2 * 12.5 / np.hypot(100, 0.5)], rtol=1e-12)


def test_parallelograms_cover_the_texels_inside_them() -> None:
    """Against brute force over every texel: inside by both side coordinates, edges included (the seam
    band's rectangles); shapes of no area and shapes off the texture cover nothing."""
    rng = np.random.default_rng(8)
    size = 40
    corner = rng.uniform(-5, 45, size=(30, 1, 2))
    sides = rng.uniform(-12, 12, size=(30, 2, 2))
    shapes = np.concatenate([corner + sides[:, :1], corner, corner + sides[:, 1:2],
                             corner + sides[:, :1] + sides[:, 1:2]], axis=1)  # (30, 4, 2): corner 1 is the origin
    shapes[0] = [[4, 4], [4, 8], [8, 8], [8, 4]]  # a square whose edges run through texel centres
    shapes[1] = 3.0  # no area
    shapes[2] += 100.0  # off the texture
    texel, shape = rasterise_parallelograms(shapes, size)
    found = np.zeros((len(shapes), size * size), bool)
    found[shape, texel] = True
    assert len(texel) == found.sum()  # one hit per (texel, shape)

    rows, cols = np.divmod(np.arange(size * size), size)
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    for index, quad in enumerate(shapes):
        basis = np.stack([quad[0] - quad[1], quad[2] - quad[1]], axis=1)
        if abs(np.linalg.det(basis)) < 1e-9:
            assert not found[index].any()
            continue
        s, t = np.linalg.solve(basis, (points - quad[1]).T)
        clearly_in = (s > 1e-6) & (s < 1 - 1e-6) & (t > 1e-6) & (t < 1 - 1e-6)
        clearly_out = (s < -1e-6) | (s > 1 + 1e-6) | (t < -1e-6) | (t > 1 + 1e-6)
        assert found[index][clearly_in].all() and not found[index][clearly_out].any()
    assert found[0].reshape(size, size)[4:9, 4:9].all() and found[0].sum() == 25  # edges included
    assert not found[1].any() and not found[2].any()
