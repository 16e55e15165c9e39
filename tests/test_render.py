"""The headless renderer: linear depth, mask and normals of a sphere; unlit texture renders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from texgen.camera import Camera, default_views, orbit_camera
from texgen.mesh import Mesh, load_mesh

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("pyrender")
from texgen.render import Renderer, _software_rasteriser, rasterise_uv

SIZE = 96
ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=4)  # radius 1, 5120 faces
    return Mesh.from_arrays(ico.vertices, ico.faces, name="sphere")


def quad(texture: np.ndarray) -> Mesh:
    """A square facing +Z whose UVs cover the whole texture (v up, so the image's top row is at +Y)."""
    positions = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float64)
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    return Mesh.from_arrays(positions, np.array([[0, 1, 2], [0, 2, 3]]), uvs, texture=texture, name="quad")


def sphere_hits(camera, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact depth (H, W) of a sphere at the origin along each pixel-centre ray (0 on a miss),
    and its outward normal (H, W, 3) in camera coordinates."""
    rays = camera.pixel_rays().astype(np.float64)  # camera coordinates
    centre = camera.world_to_camera()[:3, 3]  # the origin, seen from the camera
    along = rays @ centre
    closest = np.sum(centre ** 2) - along ** 2
    hit = closest < radius ** 2
    t = along - np.sqrt(np.where(hit, radius ** 2 - closest, 0.0))
    points = rays * t[..., None]
    normals = (points - centre) / radius
    return np.where(hit, t * -rays[..., 2], 0.0), normals


def test_depth_mask_and_normals_of_a_sphere(sphere: Mesh) -> None:
    camera = orbit_camera(30, 20, SIZE)
    with Renderer(sphere) as renderer:
        buffers = renderer.render([camera])
    depth, mask, normals = buffers.depth[0].numpy(), buffers.mask[0].numpy(), buffers.normals[0].numpy()
    assert buffers.depth.dtype == torch.float32 and buffers.normals.shape == (1, 3, SIZE, SIZE)
    np.testing.assert_array_equal(mask, depth > 0)
    assert (depth[mask] > 0).all() and (depth[~mask] == 0).all() and (normals[:, ~mask] == 0).all()

    truth, true_normals = sphere_hits(camera)
    inside = truth > 0
    # the outline matches the true sphere's up to the pixels it cuts through
    assert (mask != inside).sum() <= 0.08 * inside.sum()
    # away from the rim, where a ray through a pixel centre meets a facet but misses the true sphere
    interior = binary_erosion(inside & mask, iterations=2)
    # linear depth along the view axis (not the z-buffer's 1/z), at the pixel centre (drawn single-sample).
    # The icosphere's facets lie within 2e-3 of the sphere, further along oblique rays: the error stays
    # below that plus one pixel's depth change
    slack = np.abs(np.gradient(truth)[0]) + np.abs(np.gradient(truth)[1]) + 2e-3
    error = np.abs(depth - truth)[interior] / slack[interior]
    assert error.max() < 1 and np.median(error) < 0.5
    # unit camera-space normals (OpenGL: +Z towards the viewer) that follow the sphere's
    length = np.linalg.norm(normals[:, mask], axis=0)
    np.testing.assert_allclose(length, 1.0, atol=1e-5)
    agreement = np.sum(normals.transpose(1, 2, 0)[interior] * true_normals[interior], axis=1)
    assert agreement.min() > 0.98
    centre = normals[:, SIZE // 2, SIZE // 2]
    assert centre[2] > 0.995  # at the image centre the sphere faces the camera

    control = buffers.control_depth()[0].numpy()
    assert control[~mask].max() == 0 and control[mask].max() == pytest.approx(1.0)
    assert control[mask].min() == pytest.approx(0.1)
    assert control[SIZE // 2, SIZE // 2] > control[mask].mean()  # near is bright


def test_closed_meshes_seen_from_outside_draw_front_faces_alone_with_the_same_images(sphere: Mesh) -> None:
    ball = Mesh.from_arrays(sphere.positions, sphere.faces, name="ball")
    lowest = np.argmin(sphere.positions[sphere.faces].mean(axis=1)[:, 1])  # at the bottom, out of every view
    open_ball = Mesh.from_arrays(sphere.positions, np.delete(sphere.faces, lowest, axis=0), name="open ball")
    inside_out = Mesh.from_arrays(sphere.positions, sphere.faces[:, ::-1], name="inside out")
    assert ball.closed_outward and not open_ball.closed_outward and not inside_out.closed_outward
    cameras = [orbit_camera(azimuth, 20, SIZE) for azimuth in (0, 100, 200, 300)]
    images = {}
    for mesh in (ball, open_ball, inside_out):
        with Renderer(mesh) as renderer:
            images[mesh.name] = renderer.render(cameras)
    np.testing.assert_array_equal(images["ball"].depth, images["open ball"].depth)
    np.testing.assert_array_equal(images["ball"].normals, images["open ball"].normals)
    # wound the other way, the corners are interpolated in another order: the same depth to float precision
    np.testing.assert_array_equal(images["ball"].mask, images["inside out"].mask)
    np.testing.assert_allclose(images["ball"].depth, images["inside out"].depth, atol=1e-4)
    np.testing.assert_allclose(images["ball"].normals, -images["inside out"].normals, atol=1e-6)

    # textured passes too: against the same ball made open by a small triangle hidden inside it
    uvs = np.stack([np.arctan2(sphere.positions[:, 0], sphere.positions[:, 2]) / (2 * np.pi) + 0.5,
                    sphere.positions[:, 1] / 2 + 0.5], axis=1)
    texture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    hidden = [[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]
    textured = Mesh.from_arrays(sphere.positions, sphere.faces, uvs, texture=texture, name="textured")
    opened = Mesh.from_arrays(np.concatenate([sphere.positions, hidden]),
                              np.concatenate([sphere.faces, [np.arange(3) + len(sphere.positions)]]),
                              np.concatenate([uvs, np.full((3, 2), 0.5)]), texture=texture, name="opened")
    assert textured.closed_outward and not opened.closed_outward
    renders = []
    for mesh in (textured, opened):
        with Renderer(mesh) as renderer:
            renders.append(renderer.render_texture(cameras, texture))
    np.testing.assert_array_equal(renders[0], renders[1])

    # on a CPU rasteriser (as in CI) the closed ball's views did skip back faces; from inside the
    # closed mesh every face is a back face: nothing is culled there
    inside = Camera(np.eye(4), SIZE, SIZE)
    assert not inside.clears_sphere(1.0) and cameras[0].clears_sphere(1.0)
    with Renderer(ball) as renderer:
        assert renderer._back_faces_hidden(cameras) == _software_rasteriser()
        assert renderer.render([inside]).mask.all()


def test_render_takes_cameras_of_one_size(sphere: Mesh) -> None:
    with Renderer(sphere) as renderer:
        with pytest.raises(ValueError, match="one image size"):
            renderer.render([orbit_camera(0, 0, 32), orbit_camera(90, 0, 48)])
        empty = renderer.render([])
    assert empty.depth.shape[0] == 0 and empty.normals.shape[:2] == (0, 3)


def test_render_texture_is_unlit_and_exact_on_a_flat_quad() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, size=(4, 4, 3))
    texture = np.kron(blocks, np.ones((16, 16, 1))).astype(np.uint8)  # 64 x 64, 4 x 4 flat blocks
    mesh = quad(texture)
    camera = orbit_camera(0, 0, 128)  # straight on, from +Z
    with Renderer(mesh) as renderer:
        image = renderer.render_texture([camera], texture)[0]
        rgba = renderer.render_texture([camera], np.dstack([texture, np.full((64, 64), 77, np.uint8)]))[0]
        grey = renderer.render_texture([camera], texture[:, :, 0].astype(np.float32) / 255.0)[0]
    assert image.shape == (3, 128, 128) and rgba.shape == (4, 128, 128) and grey.shape == (1, 128, 128)
    for row in range(4):
        for col in range(4):
            u, v = (col + 0.5) / 4, 1 - (row + 0.5) / 4  # the block's centre
            point = torch.tensor([[(2 * u - 1) * mesh.scale, (2 * v - 1) * mesh.scale, 0.0]], dtype=torch.float64)
            (x, y), = camera.project(point)[0].long().tolist()
            # no light, no material factor: the pixel holds the texture's value exactly
            np.testing.assert_array_equal(np.round(image[:, y, x].numpy() * 255), blocks[row, col])
            assert round(float(rgba[3, y, x]) * 255) == 77
            assert round(float(grey[0, y, x]) * 255) == blocks[row, col, 0]
    assert float(image[:, 0, 0].abs().sum()) == 0  # background


def test_smooth_false_samples_the_nearest_texel() -> None:
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    palette = {tuple(c) for c in texture.reshape(-1, 3)}
    camera = orbit_camera(0, 0, 160)
    with Renderer(quad(texture)) as renderer:
        nearest = renderer.render_texture([camera], texture, smooth=False)[0]
        smooth = renderer.render_texture([camera], texture)[0]
        mask = renderer.render([camera]).mask[0].numpy()
    def colours(image: torch.Tensor) -> set[tuple[int, ...]]:
        pixels = np.round(image.numpy().transpose(1, 2, 0)[mask] * 255).astype(int)
        return {tuple(p) for p in pixels}

    # drawn single-sample, each pixel is its centre's texel exactly, even on texel edges and the outline
    nearest_colours = colours(nearest)
    assert nearest_colours == palette
    assert len(colours(smooth)) > 4 * len(nearest_colours & palette)  # bilinear makes gradients


def test_renderers_share_one_context_and_close_cleanly(sphere: Mesh) -> None:
    camera = orbit_camera(0, 0, 32)
    first = Renderer(sphere)
    depth = first.render([camera]).depth
    with Renderer(quad(np.zeros((4, 4, 3), np.uint8))) as second:
        assert second.render([camera]).mask.any()
    # closing another renderer broke nothing
    np.testing.assert_array_equal(first.render([camera]).depth.numpy(), depth.numpy())
    first.close()
    with pytest.raises(Exception, match="no UV map"):
        Renderer(sphere).render_texture([camera], np.zeros((4, 4, 3), np.uint8))


def test_each_render_texture_call_shows_its_own_texture() -> None:
    """The textured mesh stays uploaded between calls; each call uploads its own texture."""
    camera = orbit_camera(0, 0, 32)
    red, blue = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    with Renderer(quad(red)) as renderer:
        mask = renderer.render([camera]).mask[0]
        for texture, channel in ((red, 0), (blue, 2), (red, 0)):
            image = renderer.render_texture([camera], texture, smooth=channel == 0)[0]
            assert (image[channel][mask] == 1).all() and (image[2 - channel][mask] == 0).all()


def test_render_textures_samples_several_textures_in_one_draw_as_one_at_a_time() -> None:
    """A paint (trilinear) and its mask (nearest) in one pass give each texture's own render, and every
    pass draws with one camera transform: an opaque texture covers the depth pass's foreground exactly."""
    mesh = load_mesh(ASSETS / "creature.obj")
    rng = np.random.default_rng(5)
    paint = rng.integers(0, 256, (64, 64, 3), np.uint8)
    flags = rng.integers(0, 2, (64, 64, 2), np.uint8) * np.uint8(255)
    opaque = np.dstack([paint, np.full((64, 64), 255, np.uint8)])
    cameras = default_views(4, 96)
    with Renderer(mesh) as renderer:
        together = renderer.render_textures(cameras, [paint, flags, opaque], smooth=[True, False, True])
        alone = [renderer.render_texture(cameras, paint), renderer.render_texture(cameras, flags, smooth=False)]
        mask = renderer.render(cameras).mask
        for texture, image in zip((paint, flags), together):
            assert image.shape == (4, texture.shape[2], 96, 96)
        for one, other in zip(together, alone):
            assert torch.equal(one, other)
        assert torch.equal(together[2][:, 3] > 0, mask) and mask.any()
        assert not torch.equal(together[0], together[1][:, :1].expand(-1, 3, -1, -1))  # each its own texture
        for textures, smooth, message in (([paint] * 5, [True] * 5, "1 to 4 textures"),
                                          ([paint, flags], [True], "each with its smooth flag")):
            with pytest.raises(ValueError, match=message):
                renderer.render_textures(cameras, textures, smooth)
        with pytest.raises(ValueError, match="cameras of one image size"):
            renderer.render_textures([cameras[0], orbit_camera(0, 0, 48)], [paint], [True])


def test_rasterise_uv_keeps_the_highest_priority_on_top_and_the_lowest_at_the_bottom() -> None:
    size = 8
    square = np.array([[-1.0, -1.0], [9.0, -1.0], [-1.0, 9.0]])  # covers the top-left half and more
    corners = np.stack([square, square, square + 0.25])
    top, bottom = rasterise_uv(corners, np.array([5, 9, 1]), size)
    assert top.dtype == np.int32 and top.shape == (size, size)
    assert top[0, 0] == 1 and bottom[0, 0] == 2  # priority 9 on top, priority 1 at the bottom
    assert top[7, 7] == -1 and bottom[7, 7] == -1  # beyond the hypotenuse: nothing
    tied_top, tied_bottom = rasterise_uv(corners[:2], np.array([3, 3]), size)
    assert tied_top[0, 0] == 1 and tied_bottom[0, 0] == 0  # ties: the later triangle on top
    empty_top, _ = rasterise_uv(np.zeros((0, 3, 2)), np.zeros(0, dtype=np.int64), size)
    assert (empty_top == -1).all()


def test_rasterise_uv_row_0_is_the_top_of_the_image() -> None:
    """A triangle in the first rows (y down) lands in the image's first rows."""
    top, _ = rasterise_uv(np.array([[[-0.5, -0.5], [15.5, -0.5], [-0.5, 2.5]]]), np.array([0]), 16)
    rows = np.flatnonzero((top >= 0).any(axis=1))
    assert rows.tolist() == [0, 1, 2] and (top[0] >= 0).sum() > (top[2] >= 0).sum()


def test_renders_where_no_x11_library_can_be_loaded() -> None:
    """A GPU server may have only the driver's EGL: pyrender's import of pyglet's window must not load X11."""
    script = textwrap.dedent("""
        import pyglet.lib

        load_library = pyglet.lib.loader.load_library

        def no_x11(*names, **kwargs):  # as on a machine without libX11 and libXrender: pyglet gets None
            if any(name.startswith("X") for name in names):
                return None
            return load_library(*names, **kwargs)

        pyglet.lib.loader.load_library = no_x11
        pyglet.lib.load_library = no_x11

        from texgen.camera import default_views
        from texgen.mesh import Mesh
        from texgen.render import Renderer

        mesh = Mesh.from_arrays([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], [[0, 0], [1, 0], [0, 1]], [[0, 1, 2]])
        with Renderer(mesh) as renderer:
            print(int(renderer.render(default_views(1, 32)).mask.sum()))
    """)
    environment = {**os.environ, "PYOPENGL_PLATFORM": "egl"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 0
