"""Camera conventions, checked against real renders: which face a camera sees, where a point lands."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from texgen.camera import FRAME_MARGIN, Camera, default_views, look_at, orbit_camera, orbit_views
from texgen.mesh import Mesh

pytest.importorskip("pyrender")
from texgen.render import Renderer

# the colour each side of the cube is painted with, and where its block sits in the 3 x 2 texture
SIDES = {  # name: (outward axis, colour)
    "+X": ((1, 0, 0), (230, 20, 20)), "-X": ((-1, 0, 0), (20, 230, 230)),
    "+Y": ((0, 1, 0), (20, 230, 20)), "-Y": ((0, -1, 0), (230, 20, 230)),
    "+Z": ((0, 0, 1), (20, 20, 230)), "-Z": ((0, 0, -1), (230, 230, 20)),
}
BLOCK = 32


def coloured_cube() -> Mesh:
    """A cube from -1 to 1 whose six sides show six flat colours (each side its own UV island)."""
    positions, faces, uvs = [], [], []
    texture = np.zeros((2 * BLOCK, 3 * BLOCK, 3), np.uint8)
    for index, (axis, colour) in enumerate(SIDES.values()):
        normal = np.array(axis, float)
        tangent = np.roll(np.abs(normal), 1)
        bitangent = np.cross(normal, tangent)
        corners = [normal + a * tangent + b * bitangent for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        row, col = divmod(index, 3)
        texture[row * BLOCK:(row + 1) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = colour
        # the UV quad stays well inside its block, so filtering never mixes two sides
        u0, v0 = (col + 0.25) / 3, 1 - (row + 0.75) / 2
        square = [(u0, v0), (u0 + 0.5 / 3, v0), (u0 + 0.5 / 3, v0 + 0.25), (u0, v0 + 0.25)]
        base = len(positions)
        positions += corners
        uvs += square
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return Mesh.from_arrays(np.array(positions), np.array(faces), np.array(uvs), texture=texture, name="cube")


@pytest.fixture(scope="module")
def cube() -> Mesh:
    return coloured_cube()


@pytest.fixture(scope="module")
def renderer(cube: Mesh):
    with Renderer(cube) as r:
        yield r


def colour_at(image: torch.Tensor, x: float, y: float) -> tuple[int, ...]:
    """RGB 0-255 of the pixel that contains image point (x, y)."""
    return tuple(round(float(c) * 255) for c in image[:, math.floor(y), math.floor(x)])


@pytest.mark.parametrize("side, azimuth, elevation", [
    ("+X", 90, 0), ("-X", -90, 0), ("+Z", 0, 0), ("-Z", 180, 0), ("+Y", 0, 90), ("-Y", 0, -90), ("-Z", -180, 10),
])
def test_orbit_camera_on_an_axis_sees_that_side(renderer: Renderer, cube: Mesh, side: str, azimuth: float,
                                                elevation: float) -> None:
    camera = orbit_camera(azimuth, elevation, 48)
    image = renderer.render_texture([camera], cube.texture)[0]
    assert colour_at(image, 24, 24) == SIDES[side][1]
    np.testing.assert_allclose(camera.forward, -camera.position / np.linalg.norm(camera.position), atol=1e-12)


@pytest.mark.parametrize("side", list(SIDES))
def test_look_at_from_each_axis_sees_that_side(renderer: Renderer, cube: Mesh, side: str) -> None:
    """look_at with the default +Y up, including the two eyes on the up axis (degenerate up)."""
    axis = np.array(SIDES[side][0], float)
    pose = look_at(axis * 4.0)
    rotation = pose[:3, :3]
    assert np.isfinite(pose).all()
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    camera = Camera(pose, 48, 48, znear=1.0, zfar=10.0)
    np.testing.assert_allclose(camera.forward, -axis, atol=1e-12)
    image = renderer.render_texture([camera], cube.texture)[0]
    assert colour_at(image, 24, 24) == SIDES[side][1]


def test_look_at_up_is_kept_upright_and_degenerate_up_is_replaced() -> None:
    pose = look_at((3.0, 1.0, 2.0), target=(0.5, 0.0, 0.0))
    right, up, back = pose[:3, 0], pose[:3, 1], pose[:3, 2]
    assert right[1] == pytest.approx(0.0, abs=1e-12) and up[1] > 0  # no roll: the horizon stays level
    np.testing.assert_allclose(back, np.array([2.5, 1.0, 2.0]) / np.linalg.norm([2.5, 1.0, 2.0]))
    np.testing.assert_allclose(pose[:3, 3], [3.0, 1.0, 2.0])
    for eye in ((0.0, 2.0, 0.0), (0.0, -2.0, 0.0), (1e-5, 2.0, 0.0)):  # along +-up, and nearly so
        pose = look_at(eye)
        assert np.isfinite(pose).all()
        np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-9)
        np.testing.assert_allclose(-pose[:3, 2], -np.array(eye) / np.linalg.norm(eye), atol=1e-9)


def test_projection_matches_the_rendered_pixel_colour_and_depth(renderer: Renderer, cube: Mesh) -> None:
    camera = orbit_camera(60, 30, 96)
    image = renderer.render_texture([camera], cube.texture)[0]
    depth = renderer.render([camera]).depth[0]
    centres = {side: np.array(axis, float) * cube.scale for side, (axis, _) in SIDES.items()
               if side in ("+X", "+Y", "+Z")}
    pixels, depths = camera.project(torch.tensor(np.stack(list(centres.values()))))
    slack = depth_slack(depth.numpy())
    found = {}
    for (side, _), (x, y), d in zip(centres.items(), pixels.tolist(), depths.tolist()):
        assert colour_at(image, x, y) == SIDES[side][1]
        assert float(depth[int(y), int(x)]) == pytest.approx(d, abs=slack[int(y), int(x)])
        found[side] = (x, y)
    # +Y is the top side, and from the front-right the front (+Z) side lies left of the right (+X) side
    assert found["+Y"][1] < 48 < found["+Z"][1] and found["+Z"][0] < found["+X"][0]


def depth_slack(depth: np.ndarray) -> np.ndarray:
    """(H, W) how far a pixel's depth may stray from the depth at its centre.

    Depth is drawn at pixel centres, exactly where the rays below are cast; the slack covers the
    rasteriser's rounding where a pixel's depth changes fast (near the cube's edges)
    """
    dy, dx = np.gradient(depth.astype(np.float64))
    return np.abs(dx) + np.abs(dy) + 1e-5


def ray_cube_depth(camera: Camera, half: float) -> np.ndarray:
    """(H, W) exact depth of the cube [-half, half]^3 along each pixel-centre ray, 0 where it misses."""
    rays = camera.pixel_rays().astype(np.float64) @ camera.pose[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (-half - camera.position) / rays
        t1 = (half - camera.position) / rays
    enter = np.minimum(t0, t1).max(axis=-1)
    leave = np.maximum(t0, t1).min(axis=-1)
    view_z = -(camera.pixel_rays()[..., 2]).astype(np.float64)
    return np.where(enter < leave, enter * view_z, 0.0)


def test_rendered_depth_is_linear_depth_and_projection_inverts_pixel_rays(renderer: Renderer, cube: Mesh) -> None:
    camera = orbit_camera(-130, -25, 64)
    buffers = renderer.render([camera])
    depth = buffers.depth[0].numpy().astype(np.float64)
    truth = ray_cube_depth(camera, cube.scale)
    both = (depth > 0) & (truth > 0)
    assert both.sum() > 0.98 * max((depth > 0).sum(), (truth > 0).sum())  # the same outline
    error = np.abs(depth - truth)[both] / depth_slack(depth)[both]
    assert (error <= 1).mean() > 0.99  # the rest are pixels across an edge
    assert np.median(error) < 0.5

    rows, cols = np.nonzero(both)
    rays = camera.pixel_rays()[rows, cols].astype(np.float64)
    in_camera = rays * (depth[rows, cols] / -rays[:, 2])[:, None]
    world = in_camera @ camera.pose[:3, :3].T + camera.pose[:3, 3]
    pixels, projected = camera.project(torch.from_numpy(world))
    np.testing.assert_allclose(pixels.numpy(), np.stack([cols + 0.5, rows + 0.5], axis=1), atol=1e-6)
    np.testing.assert_allclose(projected.numpy(), depth[rows, cols], rtol=1e-9)


def test_orbit_positions_frame_and_schedules() -> None:
    yfov = math.radians(40.0)
    distance = FRAME_MARGIN / math.sin(yfov / 2)
    for azimuth, elevation in ((0, 0), (90, 0), (-90, 30), (180, -45), (33, 89.9)):
        camera = orbit_camera(azimuth, elevation, 64)
        az, el = math.radians(azimuth), math.radians(elevation)
        expected = distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        np.testing.assert_allclose(camera.position, expected, atol=1e-12)
        assert camera.znear < distance - 1 and camera.zfar > distance + 1
    np.testing.assert_allclose(orbit_camera(90, 0, 8).position / distance, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(orbit_camera(0, 90, 8).position / distance, [0, 1, 0], atol=1e-12)

    # the unit sphere fits in the view with the margin: its outline touches 1 / FRAME_MARGIN of the half height
    camera = orbit_camera(20, 10, 200)
    directions = np.random.default_rng(0).normal(size=(4000, 3))
    points = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    pixels, depth = camera.project(torch.from_numpy(points))
    reach = np.abs(pixels.numpy() - 100).max() / 100
    assert 0.9 / FRAME_MARGIN < reach <= 1 / FRAME_MARGIN + 1e-6 and (depth > 0).all()

    views = orbit_views([0, 90, 180, 270], [-20, 40], 32)
    assert [(c.azimuth, c.elevation) for c in views[:5]] == [(0, -20), (90, -20), (180, -20), (270, -20), (0, 40)]
    schedule = default_views(8, 32)
    assert [c.direction_word for c in schedule[:6]] == ["front view", "back view", "side view", "side view",
                                                       "overhead view", "bottom view"]
    assert len(default_views(25, 32)) == 25  # beyond the plan, a Fibonacci sphere


@pytest.mark.parametrize("azimuth, elevation, word", [
    (0, 0, "front view"), (45, 10, "front view"), (-45, 0, "front view"), (46, 0, "side view"),
    (-90, 20, "side view"), (134, 0, "side view"), (135, 0, "back view"), (180, 0, "back view"),
    (-170, 0, "back view"), (300, 0, "side view"), (330, 0, "front view"), (0, 60, "overhead view"),
    (180, 89.9, "overhead view"), (90, -60, "bottom view"), (0, 59, "front view"),
])
def test_direction_words(azimuth: float, elevation: float, word: str) -> None:
    assert orbit_camera(azimuth, elevation, 8).direction_word == word


def test_orthographic_camera(renderer: Renderer, cube: Mesh) -> None:
    camera = orbit_camera(90, 0, 64, orthographic=True)
    assert camera.focal == pytest.approx(64 / (2 * FRAME_MARGIN))
    half = cube.scale  # half the cube's side in the unit frame
    point = torch.tensor([[half, 0.3, -0.2]], dtype=torch.float64)
    pixels, depth = camera.project(point)
    # on +X looking at -X with +Y up, the camera's right is -Z
    np.testing.assert_allclose(pixels[0].numpy(), [32 + 0.2 * camera.focal, 32 - 0.3 * camera.focal], atol=1e-9)
    assert float(depth[0]) == pytest.approx(3.0 - half)
    np.testing.assert_allclose(camera.directions_to_camera(torch.rand(5, 3, dtype=torch.float64)).numpy(),
                               np.tile([1.0, 0.0, 0.0], (5, 1)), atol=1e-12)

    buffers = renderer.render([camera])
    image = renderer.render_texture([camera], cube.texture)[0]
    assert colour_at(image, *pixels[0].tolist()) == SIDES["+X"][1]
    # no perspective: the side is a square of 2 * half * focal pixels at one depth
    mask = buffers.mask[0].numpy()
    assert abs(mask.any(axis=0).sum() - 2 * half * camera.focal) <= 1
    assert abs(mask.any(axis=1).sum() - 2 * half * camera.focal) <= 1
    np.testing.assert_allclose(buffers.depth[0].numpy()[mask], 3.0 - half, atol=1e-3)


@pytest.mark.parametrize("orthographic", [False, True])
def test_sample_grid_is_projection_in_grid_sample_coordinates(orthographic: bool) -> None:
    """grid_sample's x = -1 and 1 are the image's left and right edges (align_corners=False)."""
    camera = orbit_camera(30, 20, 96, orthographic=orthographic)
    camera = Camera(camera.pose, 128, 96, orthographic, ymag=camera.ymag)  # not square
    points = torch.from_numpy(np.random.default_rng(3).uniform(-0.8, 0.8, (500, 3)))
    pixels, depth = camera.project(points)
    grid, grid_depth = camera.sample_grid(points)
    np.testing.assert_allclose(grid.numpy(), (2 * pixels / torch.tensor([128.0, 96.0]) - 1).numpy(), atol=1e-9)
    np.testing.assert_allclose(grid_depth.numpy(), depth.numpy(), atol=1e-12)
