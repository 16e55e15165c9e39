"""Back-projection: occlusion, cutoff, cos^k weights, edge erosion, and the texture state's blending."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from texgen import project as project_module
from texgen.camera import Camera, orbit_camera
from texgen.mesh import Mesh
from texgen.project import (ProjectionSettings, TextureState, ViewSamples, _dilate_by_pooling, dilate, sample_colour,
                            sample_view, sample_views, unreliable_pixels)
from texgen.texels import TexelMap

pytest.importorskip("pyrender")
from texgen.render import Renderer

SIZE = 128  # pixels of every test view
TEXELS = 64


def quads(corners: list[np.ndarray], uv_boxes: list[tuple[float, float, float, float]]) -> Mesh:
    """Flat quads (each (4, 3), counter-clockwise) each mapped onto its UV box (u0, v0, u1, v1)."""
    positions, uvs, faces = [], [], []
    for quad, (u0, v0, u1, v1) in zip(corners, uv_boxes):
        base = len(positions)
        positions += list(quad)
        uvs += [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    faces = np.array(faces)
    return Mesh.from_arrays(np.array(positions, float), faces, np.array(uvs, float), faces)


def rectangle(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


def front_camera(size: int = SIZE) -> Camera:
    """An orthographic camera on +Z whose view is exactly the unit frame's [-1.08, 1.08] square."""
    return orbit_camera(0, 0, size, orthographic=True)


def project_scene(mesh: Mesh, camera: Camera,
                  settings: ProjectionSettings | None = None) -> tuple[TexelMap, ViewSamples, np.ndarray]:
    """Render the mesh, sample the view at every texel; also return each texel's (x, y) pixel position."""
    texels = TexelMap.build(mesh, TEXELS)
    with Renderer(mesh) as renderer:
        buffers = renderer.render([camera])
    samples = sample_view(texels, camera, buffers.depth[0], None, settings or ProjectionSettings(), buffers.normals[0])
    pixels, _ = camera.project(texels.position)
    return texels, samples, pixels.numpy()


def outline_distance(pixels: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Chebyshev distance in pixels from each point (P, 2) to the border of the box [x0, x1] x [y0, y1]."""
    inside = np.minimum.reduce([pixels[:, 0] - x0, x1 - pixels[:, 0], pixels[:, 1] - y0, y1 - pixels[:, 1]])
    return np.abs(inside)


def to_pixels(camera: Camera, mesh: Mesh, x: float, y: float) -> tuple[float, float]:
    """Pixel of a user-frame point on the z = 0 plane, through the unit frame."""
    point = (np.array([[x, y, 0.0]]) - mesh.center) * mesh.scale
    (px, py), = camera.project(torch.from_numpy(point))[0].tolist()
    return px, py


def test_depth_test_rejects_occluded_texels_and_erodes_depth_edges() -> None:
    """A small card in front of a large one: what the card hides is never painted from this view."""
    back = rectangle(-1, 1, -1, 1, -0.5)
    card = rectangle(-0.4, 0.3, -0.3, 0.5, 0.5)
    mesh = quads([back, card], [(0, 0, 0.5, 1), (0.55, 0, 1, 1)])
    camera = front_camera()
    texels, samples, pixels = project_scene(mesh, camera)
    on_back = texels.face.numpy() < 2
    # orthographic: a back texel is hidden exactly when the card's outline contains its (x, y)
    x0, y1 = to_pixels(camera, mesh, -0.4, -0.3)
    x1, y0 = to_pixels(camera, mesh, 0.3, 0.5)
    behind = (pixels[:, 0] > x0) & (pixels[:, 0] < x1) & (pixels[:, 1] > y0) & (pixels[:, 1] < y1)
    bx0, by1 = to_pixels(camera, mesh, -1, -1)
    bx1, by0 = to_pixels(camera, mesh, 1, 1)
    # the edge pixel and 2 px of erosion, and 1 px of nearest lookup
    clear = (outline_distance(pixels, x0, x1, y0, y1) > 4) & (outline_distance(pixels, bx0, bx1, by0, by1) > 4)
    visible = samples.visible.numpy()
    assert not visible[on_back & behind].any()
    assert (on_back & ~behind & clear).sum() > 1000 and visible[on_back & ~behind & clear].all()
    # the depth jump at the card's outline is eroded on the back card: nothing within 2 px of it is used
    assert not visible[on_back & ~behind & (outline_distance(pixels, x0, x1, y0, y1) < 2)].any()
    # the card itself is fully visible away from its own outline
    card_inner = ~on_back & clear
    assert card_inner.sum() > 100 and visible[card_inner].all()


def test_a_surface_sunk_just_behind_another_is_hidden() -> None:
    """The duck's eyes: separate parts pushed 0.009 (unit frame) into the head must not take its colour."""
    head = rectangle(-1, 1, -1, 1, 0)
    eye = rectangle(-0.3, 0.3, -0.3, 0.3, -0.012)
    mesh = quads([head, eye], [(0, 0, 0.5, 1), (0.55, 0, 1, 1)])
    assert 0.008 < 0.012 * mesh.scale < 0.009
    for camera in (front_camera(), orbit_camera(0, 0, SIZE)):
        texels, samples, _ = project_scene(mesh, camera)
        visible = samples.visible.numpy()
        assert not visible[texels.face.numpy() >= 2].any()
        assert visible[texels.face.numpy() < 2].mean() > 0.8


@pytest.mark.parametrize("tilt, cutoff, seen", [(60, 75, True), (80, 75, False), (60, 55, False), (0, 75, True)])
def test_cutoff_angle_and_cos_power_weights(tilt: float, cutoff: float, seen: bool) -> None:
    """A card turned by ``tilt`` degrees, seen by an orthographic camera: cos is the same at every texel.

    At 128 px the depth of a card turned by 60 degrees changes by 0.03 from one pixel to the next, more
    than the depth tolerance: the test's slack grows with the slope, so the card is still seen.
    """
    angle = math.radians(tilt)
    turn = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    card = rectangle(-1, 1, -1, 1, 0) @ turn.T
    mesh = quads([card], [(0, 0, 1, 1)])
    camera = front_camera()
    texels = TexelMap.build(mesh, TEXELS)
    with Renderer(mesh) as renderer:
        buffers = renderer.render([camera])
    for power in (1.0, 4.0, 6.0):
        settings = ProjectionSettings(cos_power=power, cutoff_deg=cutoff, edge_erode_px=1)
        samples = sample_view(texels, camera, buffers.depth[0], None, settings, buffers.normals[0])
        visible = samples.visible.numpy()
        if not seen:
            assert not visible.any() and len(samples.texel) == len(samples.weight) == len(samples.cos) == 0
            continue
        assert visible.mean() > 0.8
        np.testing.assert_array_equal(samples.texel.numpy(), np.flatnonzero(visible))
        np.testing.assert_allclose(samples.cos.numpy(), math.cos(angle), atol=1e-5)
        np.testing.assert_allclose(samples.weight.numpy(), math.cos(angle) ** power, rtol=1e-4)


def test_silhouette_erosion_width() -> None:
    card = rectangle(-1, 1, -1, 1, 0)
    mesh = quads([card], [(0, 0, 1, 1)])
    camera = front_camera()
    x0, y1 = to_pixels(camera, mesh, -1, -1)
    x1, y0 = to_pixels(camera, mesh, 1, 1)
    for erode in (0, 2, 4):
        _, samples, pixels = project_scene(mesh, camera, ProjectionSettings(edge_erode_px=erode))
        distance = outline_distance(pixels, x0, x1, y0, y1)
        visible = samples.visible.numpy()
        assert visible[distance > erode + 1.5].all()
        assert not visible[distance < erode].any()


def roof(bend_deg: float) -> Mesh:
    """Two cards meeting along the y axis, each turned back by ``bend_deg`` / 2: a ridge towards +Z."""
    half = math.radians(bend_deg / 2)
    ridge = [[0, -1, 0], [0, 1, 0]]
    left = np.array([[-math.cos(half), -1, -math.sin(half)], ridge[0], ridge[1], [-math.cos(half), 1, -math.sin(half)]])
    right = np.array([ridge[0], [math.cos(half), -1, -math.sin(half)], [math.cos(half), 1, -math.sin(half)], ridge[1]])
    return quads([left, right], [(0, 0, 0.45, 1), (0.55, 0, 1, 1)])


@pytest.mark.parametrize("bend, crease", [(90, True), (30, False)])
def test_creases_are_unreliable(bend: float, crease: bool) -> None:
    mesh = roof(bend)
    camera = orbit_camera(0, 0, SIZE)
    with Renderer(mesh) as renderer:
        buffers = renderer.render([camera])
    settings = ProjectionSettings(edge_erode_px=1)
    with_normals = unreliable_pixels(buffers.depth[0], buffers.normals[0], settings).numpy()
    depth_only = unreliable_pixels(buffers.depth[0], None, settings).numpy()
    ridge = round(to_pixels(camera, mesh, 0, 0)[0])
    band = slice(SIZE // 2 - 20, SIZE // 2 + 20)  # rows in the middle, away from the top and bottom outline
    assert not depth_only[band, ridge - 3:ridge + 3].any()  # the surface is continuous in depth
    assert with_normals[band, ridge - 1:ridge + 1].all() == crease
    assert not with_normals[band, ridge - 15:ridge - 4].any() and not with_normals[band, ridge + 4:ridge + 15].any()
    np.testing.assert_array_equal(with_normals & ~depth_only, with_normals ^ depth_only)  # normals only add


def test_projected_colours_match_the_texture_at_texel_centres() -> None:
    """Render a linear ramp texture and sample it back: the pixel and texel conventions agree."""
    size = 64
    u = (np.arange(size) + 0.5) / size
    ramp = np.stack([*np.meshgrid(u, u[::-1]), np.full((size, size), 0.25)], axis=-1)  # r = u, g = v, b = const
    mesh = quads([rectangle(-1, 1, -1, 1, 0)], [(0, 0, 1, 1)])
    camera = orbit_camera(0, 0, 256)
    with Renderer(mesh) as renderer:
        image = renderer.render_texture([camera], ramp)
        buffers = renderer.render([camera])
    texels = TexelMap.build(mesh, size)
    samples = sample_view(texels, camera, buffers.depth[0], image[0], normals=buffers.normals[0])
    visible = samples.visible.numpy()
    assert visible.mean() > 0.9
    expected = texels.gather(ramp)[visible]
    # 8-bit texture and render, bilinear in both directions: within two steps of 1/255
    np.testing.assert_allclose(samples.color.numpy(), expected, atol=2.5 / 255)
    dense = samples.scatter(samples.color, fill=-1.0).numpy()
    assert dense.shape == (texels.count, 3) and (dense[~visible] == -1).all()
    visibility = sample_view(texels, camera, buffers.depth[0], None, normals=buffers.normals[0])
    assert visibility.color.shape == (visible.sum(), 0)
    # the paint loop tests a view first and projects its image afterwards: the same samples
    later = sample_colour(texels, camera, visibility, image[0])
    np.testing.assert_array_equal(later.texel.numpy(), samples.texel.numpy())
    np.testing.assert_allclose(later.color.numpy(), samples.color.numpy(), atol=1e-6)
    assert later.weight is visibility.weight and later.cos is visibility.cos


def test_sample_views_gives_every_views_samples_in_order() -> None:
    """Views sampled side by side on threads are the views sampled one after the other."""
    mesh = quads([rectangle(-1, 1, -1, 1, 0), rectangle(-0.4, 0.4, -0.4, 0.4, 0.3)], [(0, 0, 0.5, 1), (0.5, 0, 1, 1)])
    cameras = [orbit_camera(azimuth, elevation, 96) for azimuth, elevation in ((0, 0), (30, 10), (-40, 25), (10, -30),
                                                                                (60, 0))]
    with Renderer(mesh) as renderer:
        buffers = renderer.render(cameras)
        images = renderer.render_texture(cameras, np.random.default_rng(0).uniform(0, 1, (32, 32, 3)))
    texels = TexelMap.build(mesh, TEXELS)
    for pictures in (images, None):
        together = list(sample_views(texels, cameras, buffers, pictures))
        assert len(together) == len(cameras)
        for index, samples in enumerate(together):
            image = None if pictures is None else pictures[index]
            alone = sample_view(texels, cameras[index], buffers.depth[index], image, normals=buffers.normals[index])
            assert samples.texel.numel() > 0
            for name in ("texel", "color", "weight", "cos"):
                assert torch.equal(getattr(samples, name), getattr(alone, name))


def test_lookups_split_over_threads_match_one_grid_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    values = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0))
    grid = torch.rand(1001, 2, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2  # some outside the image
    monkeypatch.setattr(project_module, "LOOKUP_SPLIT", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # 1001 points: the last part is padded
    for mode in ("bilinear", "nearest"):
        plain = F.grid_sample(values[None], grid[None, None], mode=mode, padding_mode="zeros",
                              align_corners=False)[0, :, 0]
        assert torch.equal(project_module._lookup(values, mode, grid), plain)


def square_texels(count: int = 16) -> TexelMap:
    size = int(math.sqrt(count))
    return TexelMap.build(quads([rectangle(-1, 1, -1, 1, 0)], [(0, 0, 1, 1)]), size)


def random_samples(count: int, seed: int, seen: float = 0.6) -> ViewSamples:
    """A view that sees a random ``seen`` share of ``count`` texels, with random colours and cos."""
    rng = np.random.default_rng(seed)
    texel = torch.from_numpy(np.flatnonzero(rng.uniform(size=count) < seen))
    cos = torch.from_numpy(rng.uniform(0.3, 1.0, len(texel)).astype(np.float32))
    return ViewSamples(count, texel, torch.from_numpy(rng.uniform(0, 1, (len(texel), 3)).astype(np.float32)),
                       cos ** 4, cos)


def test_accumulate_is_a_weighted_mean_with_a_best_view_record() -> None:
    texels = square_texels(64)
    state = TextureState(texels)
    views = [random_samples(texels.count, seed) for seed in range(3)]
    for index, samples in enumerate(views):
        state.accumulate(samples, index)
    weights = torch.stack([v.scatter(v.weight) for v in views]).numpy().astype(np.float64)
    colours = torch.stack([v.scatter(v.color) for v in views]).numpy().astype(np.float64)
    total = weights.sum(axis=0)
    seen = total > 0
    np.testing.assert_allclose(state.weight.numpy(), total, rtol=1e-6)
    mean = (weights[..., None] * colours).sum(axis=0)[seen] / total[seen, None]
    np.testing.assert_allclose(state.color.numpy()[seen], mean, atol=1e-6)
    assert (state.color.numpy()[~seen] == 0).all() and state.painted.numpy().tolist() == seen.tolist()
    cos = torch.stack([v.scatter(v.cos) for v in views]).numpy()
    np.testing.assert_array_equal(state.best_cos.numpy(), cos.max(axis=0))
    np.testing.assert_array_equal(state.best_view.numpy(), np.where(seen, cos.argmax(axis=0), -1))
    image = state.image(background=0.5)
    assert image.shape == (8, 8, 3)
    np.testing.assert_array_equal(texels.gather(image)[~seen], 0.5)


def bits(tensor: torch.Tensor) -> np.ndarray:
    return tensor.numpy().view(np.int32 if tensor.dtype == torch.float32 else np.int64)


@pytest.mark.parametrize("method", ["accumulate", "replace"])
def test_texels_outside_allow_are_left_bit_for_bit(method: str) -> None:
    texels = square_texels(64)
    state = TextureState(texels)
    state.accumulate(random_samples(texels.count, 0, seen=0.7), 0)
    state.color[3] = -0.0  # a sign bit that arithmetic with zero would lose
    before = {name: getattr(state, name).clone() for name in ("color", "weight", "best_cos", "best_view")}
    allow = torch.from_numpy(np.random.default_rng(1).uniform(size=texels.count) < 0.5)
    allow[3] = False
    new = random_samples(texels.count, 2, seen=1.0)
    new.color[~allow[new.texel]] = torch.tensor([float("nan"), float("inf"), -1e30])  # garbage where it may not paint
    if method == "replace":
        state.replace(new, 1, allow, strength=0.5)
    else:
        state.accumulate(new, 1, allow)
    for name, old in before.items():
        np.testing.assert_array_equal(bits(getattr(state, name))[~allow.numpy()], bits(old)[~allow.numpy()], name)
    assert (state.best_view[allow] >= 0).all()


def test_replace_overwrites_mixes_with_strength_and_fills_unpainted() -> None:
    texels = square_texels(16)
    state = TextureState(texels)
    first = ViewSamples(16, torch.arange(4, 16), torch.full((12, 3), 0.2), torch.ones(12), torch.full((12,), 0.5))
    state.accumulate(first, 0)  # texels 0-3 stay unpainted
    second = ViewSamples(16, torch.arange(16), torch.full((16, 3), 0.8), torch.ones(16), torch.full((16,), 0.9))
    allow = torch.ones(16, dtype=torch.bool)
    state.replace(second, 1, allow, strength=0.25)
    colour = state.color[:, 0].numpy()
    np.testing.assert_allclose(colour[:4], 0.8)  # unpainted texels take the new colour whatever the strength
    np.testing.assert_allclose(colour[4:], 0.2 + 0.25 * (0.8 - 0.2))
    assert state.best_view.tolist() == [1] * 16
    state.replace(second, 2, allow, strength=1.0)
    np.testing.assert_allclose(state.color.numpy(), 0.8)  # full strength: the earlier colour is gone, not averaged


@pytest.mark.parametrize("radius", [0, 1, 5])
def test_dilate_is_a_square_maximum_on_the_cpu_and_by_pooling(radius: int) -> None:
    values = torch.from_numpy(np.random.default_rng(7).uniform(size=(2, 37, 53)).astype(np.float32))
    values[values < 0.9] = 0  # sparse peaks, as in a mask
    expected = F.max_pool2d(values[:, None], 2 * radius + 1, stride=1, padding=radius)[:, 0]
    assert torch.equal(dilate(values, radius), expected)
    assert torch.equal(_dilate_by_pooling(values, radius) if radius else values, expected)


@pytest.mark.parametrize("settings", [dict(cutoff_deg=0), dict(cutoff_deg=95), dict(cos_power=-1),
                                      dict(depth_tolerance=-0.1), dict(edge_erode_px=-1), dict(depth_edge=0)])
def test_projection_settings_refuse_values_out_of_range(settings: dict) -> None:
    name = next(iter(settings))
    with pytest.raises(ValueError, match=name if name == "cutoff_deg" else "out of range"):
        ProjectionSettings(**settings)
