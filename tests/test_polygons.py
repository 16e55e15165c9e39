"""Polygons: fans for convex ones, ear clipping for concave ones, and the polygons back from triangles."""

from __future__ import annotations

import numpy as np
import pytest

from texgen.polygons import polygon_faces, triangulate


def area(points: np.ndarray, local: np.ndarray) -> np.ndarray:
    """(T,) signed area of each triangle, seen from +Z."""
    a, b, c = (points[local[:, i]] for i in range(3))
    return np.cross(b - a, c - a)[:, 2] / 2


def test_convex_polygons_are_fans_and_triangles_stay() -> None:
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    local = triangulate(np.concatenate([square, square[:3]]), np.array([4, 3]))
    assert local.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2]]


def test_a_dart_is_cut_along_its_inner_diagonal() -> None:
    # corner 1 is reflex: the fan's diagonal 0-2 runs outside the dart, 1-3 inside it
    dart = np.array([[0, 0, 0], [1, 0.5, 0], [2, 0, 0], [1, 2, 0]], float)
    local = triangulate(np.concatenate([dart[:3], dart]), np.array([3, 4]))  # after a triangle, which stays
    assert local[0].tolist() == [0, 1, 2]
    local = local[1:]
    assert sorted(map(sorted, local.tolist())) == [[0, 1, 3], [1, 2, 3]]
    assert (area(dart, local) > 0).all() and area(dart, local).sum() == 1.5


def test_a_concave_polygon_in_any_plane_keeps_its_winding() -> None:
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    radii = np.array([2.0, 1.0] * 5)
    star = np.stack([np.cos(angles) * radii, np.sin(angles) * radii, np.zeros(10)], axis=1)
    shoelace = np.cross(star, np.roll(star, -1, axis=0))[:, 2].sum() / 2
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    local = triangulate(star @ rotation.T + 5.0, np.array([10]))
    assert len(local) == 8 and (area(star, local) > 0).all()
    assert area(star, local).sum() == pytest.approx(shoelace)


def test_repeated_corners_keep_a_zero_area_triangle_each() -> None:
    # an L whose reflex corner is written twice: earcut drops one, which gets a triangle of no area
    ell = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [1, 1, 0], [1, 1, 0], [1, 2, 0], [0, 2, 0]], float)
    local = triangulate(ell, np.array([7]))
    assert len(local) == 5 and sorted(set(local.reshape(-1).tolist())) == list(range(7))
    assert (area(ell, local) >= 0).all() and area(ell, local).sum() == pytest.approx(3.0)
    assert (area(ell, local) == 0).sum() == 1


def test_polygons_without_a_plane_fall_back_to_a_fan(caplog: pytest.LogCaptureFixture) -> None:
    bow_tie = np.array([[0, 0, 0], [2, 2, 0], [2, 0, 0], [0, 2, 0]], float)
    triangle = bow_tie[:3]
    with caplog.at_level("WARNING", logger="texgen.polygons"):
        local = triangulate(np.concatenate([bow_tie, triangle, bow_tie]), np.array([4, 3, 4]))
    assert local.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 1, 2], [0, 2, 3]]
    # one warning for the file, however many polygons fail
    assert [r.getMessage() for r in caplog.records] == [
        "earcut cannot cut 2 concave polygons of 4 corners (do they cross themselves?); they are triangulated as fans"]


def test_polygons_come_back_where_their_triangles_agree() -> None:
    # a quad (triangles 0-1), a triangle, and a quad whose triangles disagree on a corner (2 and 3)
    local = np.array([[0, 1, 3], [1, 2, 3], [0, 1, 2], [0, 1, 2], [0, 2, 3]])
    values = np.array([[10, 11, 13], [11, 12, 13], [20, 21, 22], [30, 31, 32], [99, 32, 33]])
    corners, sizes = polygon_faces(values, local, np.array([4, 3, 4]))
    assert sizes.tolist() == [4, 3, 3, 3]
    assert corners.tolist() == [10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 99, 32, 33]
    # a polygon corner no triangle uses cannot be written back either
    corners, sizes = polygon_faces(values[:2, [0, 1, 1]], np.array([[0, 1, 1], [1, 1, 1]]), np.array([4]))
    assert sizes.tolist() == [3, 3] and corners.tolist() == [10, 11, 11, 11, 12, 12]
