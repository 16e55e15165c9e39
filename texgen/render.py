"""Headless rendering with pyrender (EGL on Mesa CPUs and on NVIDIA GPUs).

The mesh is drawn as a triangle soup (one vertex per face corner) so that per-corner UVs and
UV seams are drawn exactly as the user made them. Textured passes are unlit (pyrender's FLAT
mode): a render shows the texture's values alone, with no lighting or material factor.

Two passes use their own shaders in pyrender's OpenGL context: the depth and normal pass
(:meth:`Renderer.render`, float images read back at once) and :func:`rasterise_uv`, which
draws UV triangles into an integer image for the UV-space rasteriser (:mod:`texgen.texels`).
On a CPU rasteriser (llvmpipe) the views' passes skip back faces when they cannot show: the mesh is
closed and wound outwards (:attr:`texgen.mesh.Mesh.closed_outward`) and every camera sees it from
outside (:meth:`texgen.camera.Camera.clears_sphere`). A GPU draws them at almost no cost.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Sequence

import numpy as np
import torch

from .camera import Camera
from .errors import TexgenError
from .mesh import Mesh

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
UNIT_RADIUS = 1.0 + 1e-5  # the unit frame's vertices lie in this sphere around the origin (float32 rounding)


@dataclass
class ViewBuffers:
    """What the renderer returns for B cameras of H x W pixels.

    depth : (B, H, W) float32 linear depth, 0 on the background
    normals : (B, 3, H, W) float32 unit camera-space normals (OpenGL axes), 0 on the background
    mask : (B, H, W) bool foreground
    """

    depth: torch.Tensor
    normals: torch.Tensor
    mask: torch.Tensor

    def control_depth(self) -> torch.Tensor:
        """(B, H, W) depth normalised per view for ControlNet: near = 1, far = 0.1, background = 0."""
        out = torch.zeros_like(self.depth)
        for b in range(self.depth.shape[0]):
            fg = self.mask[b]
            if fg.any():
                d = self.depth[b][fg]
                near, far = d.min(), d.max()
                out[b][fg] = 1.0 - 0.9 * (d - near) / (far - near).clamp_min(1e-6)
        return out


class Renderer:
    """Draws one mesh from many cameras. Create once per mesh; it keeps the GPU buffers.

    The renderer owns an EGL context: use it from one thread.
    """

    def __init__(self, mesh: Mesh):
        pyrender = _pyrender()
        self.mesh = mesh
        faces = mesh.faces[mesh.face_ok]
        self._positions = np.take(mesh.unit_positions, faces, axis=0).reshape(-1, 3)
        self._uvs = None
        if mesh.has_uvs:
            self._uvs = mesh.corner_uvs()[mesh.face_ok].reshape(-1, 2).astype(np.float32)
        self._scene = pyrender.Scene(bg_color=np.zeros(4), ambient_light=np.ones(3))
        self._texture_node = None
        self._camera_node = None
        self._geometry: _ViewGeometry | None = None

    def _primitive(self, **attributes):
        pyrender = _pyrender()
        # single-sided when back faces may be skipped: per view, unless SKIP_CULL_FACES (see _draw)
        material = pyrender.MetallicRoughnessMaterial(baseColorFactor=np.ones(4),
                                                      doubleSided=not self._may_skip_back_faces,
                                                      baseColorTexture=attributes.pop("texture", None))
        return pyrender.Primitive(positions=self._positions, material=material, **attributes)

    def _offscreen(self, camera: Camera):
        return _offscreen(camera.width, camera.height)

    def _draw(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        pyrender = _pyrender()
        if self._camera_node is not None:
            self._scene.remove_node(self._camera_node)
        self._camera_node = self._scene.add(_pyrender_camera(camera), pose=camera.pose)
        flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA
        if not self._back_faces_hidden([camera]):
            flags |= pyrender.RenderFlags.SKIP_CULL_FACES
        color, depth = self._offscreen(camera).render(self._scene, flags=flags)
        if camera.orthographic:  # pyrender linearises every depth buffer with the perspective formula
            hit = depth > 0
            depth = np.where(hit, camera.znear + camera.zfar - camera.znear * camera.zfar / np.where(hit, depth, 1), 0)
        return color, depth

    def _back_faces_hidden(self, cameras: Sequence[Camera]) -> bool:
        """True when a closed, outward mesh is seen from outside by every camera: its front faces
        alone show, and skipping the back faces gives the same images for a third less drawing on a CPU."""
        return self._may_skip_back_faces and all(camera.clears_sphere(UNIT_RADIUS) for camera in cameras)

    @cached_property
    def _may_skip_back_faces(self) -> bool:
        """Whether skipping back faces pays: on a CPU rasteriser, for a closed, outward mesh. A GPU draws
        back faces at almost no cost, and the check (:attr:`Mesh.closed_outward`) takes 0.7 s a million faces."""
        return _software_rasteriser() and self.mesh.closed_outward

    def render(self, cameras: Sequence[Camera]) -> ViewBuffers:
        """Depth, camera-space normals and foreground mask of each camera.

        One OpenGL pass per camera writes each pixel's camera-space face normal and linear depth as
        floats (:data:`_VIEW_VERTEX_SHADER`), each channel read back into its plane: no colour
        encoding of the normals and no depth-buffer linearisation.
        """
        if len({(camera.width, camera.height) for camera in cameras}) > 1:
            raise ValueError("render() takes cameras of one image size")
        height, width = (cameras[0].height, cameras[0].width) if cameras else (0, 0)
        depth = torch.empty((len(cameras), height, width))  # every pixel is read back from GL
        normals = torch.empty((len(cameras), 3, height, width))
        if cameras:
            if self._geometry is None:
                self._geometry = _ViewGeometry(self._positions, np.repeat(self.mesh.face_normals[self.mesh.face_ok], 3,
                                                                          axis=0))
            self._geometry.draw(cameras, depth.numpy(), normals.numpy(), self._back_faces_hidden(cameras))
        return ViewBuffers(depth, normals, depth > 0)

    def render_texture(self, cameras: Sequence[Camera], texture: np.ndarray,
                       smooth: bool = True) -> torch.Tensor:
        """Render the mesh with ``texture`` mapped through its UVs, unlit.

        texture : (N, M, C) uint8 or float in [0, 1], C in 1..4
        smooth : bilinear filtering with mipmaps; False samples the nearest texel (for masks)
        returns : (B, C, H, W) float32 in [0, 1]; background pixels are 0
        """
        pyrender = _pyrender()
        self.mesh.require_uvs()
        texture = np.asarray(texture)
        if texture.ndim == 2:
            texture = texture[:, :, None]
        channels = texture.shape[2]
        if texture.dtype != np.uint8:
            texture = texture_bytes(texture)
        rgba = np.zeros(texture.shape[:2] + (4,), dtype=np.uint8)
        rgba[:, :, :channels] = texture
        if channels < 4:  # a fourth channel is data (a mask), not opacity: the material is opaque
            rgba[:, :, 3] = 255
        if smooth:
            sampler = pyrender.Sampler(magFilter=pyrender.constants.GLTF.LINEAR,
                                       minFilter=pyrender.constants.GLTF.LINEAR_MIPMAP_LINEAR)
        else:
            sampler = pyrender.Sampler(magFilter=pyrender.constants.GLTF.NEAREST,
                                       minFilter=pyrender.constants.GLTF.NEAREST)
        tex = pyrender.Texture(source=rgba, source_channels="RGBA", sampler=sampler)
        if self._texture_node is None:
            self._texture_node = self._scene.add(pyrender.Mesh([self._primitive(texcoord_0=self._uvs, texture=tex)]))
        else:  # the mesh stays uploaded; pyrender swaps the texture and frees the last one
            self._texture_node.mesh.primitives[0].material.baseColorTexture = tex
        images = torch.empty((len(cameras), channels) + ((cameras[0].height, cameras[0].width) if cameras else (0, 0)))
        for image, camera in zip(images, cameras):
            color, depth = self._draw(camera)  # rows flipped (a negative stride), which torch cannot view:
            gl_rows = torch.from_numpy(np.ascontiguousarray(color[::-1]))  # GL's own buffer, not a copy
            image.copy_(gl_rows.flip(0)[:, :, :channels].permute(2, 0, 1))  # 3x faster than a numpy copy first
            image.mul_(torch.from_numpy(depth > 0)).div_(255.0)
        return images

    def close(self) -> None:
        """Free this mesh's GPU buffers (the shared context stays for the next renderer).

        Rendering the emptied scene makes pyrender unbind the meshes it uploaded; a renderer
        that never drew (no camera yet) has nothing bound.
        """
        for node in list(self._scene.mesh_nodes):
            self._scene.remove_node(node)
        if self._camera_node is not None:
            _offscreen(1, 1).render(self._scene, flags=_pyrender().RenderFlags.DEPTH_ONLY)
        if self._geometry is not None:
            self._geometry.close()
            self._geometry = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def texture_bytes(values: np.ndarray) -> np.ndarray:
    """uint8 texture values of floats in [0, 1] (clipped), rounded as :meth:`Renderer.render_texture` does."""
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


def _pyrender_camera(camera: Camera):
    """The pyrender camera of ``camera`` (its projection matrix is the one every pass uses)."""
    pyrender = _pyrender()
    if camera.orthographic:
        return pyrender.OrthographicCamera(xmag=camera.ymag * camera.width / camera.height, ymag=camera.ymag,
                                           znear=camera.znear, zfar=camera.zfar)
    return pyrender.PerspectiveCamera(yfov=camera.yfov, aspectRatio=camera.width / camera.height,
                                      znear=camera.znear, zfar=camera.zfar)


_VIEW_VERTEX_SHADER = """#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
uniform mat4 view;  // world -> camera
uniform mat4 projection;  // with y negated, so that GL's first row is the image's top row
flat out vec3 camera_normal;
out float depth;
void main() {
    vec4 eye = view * vec4(position, 1.0);
    camera_normal = mat3(view) * normal;
    depth = -eye.z;
    gl_Position = projection * eye;
}
"""
_VIEW_FRAGMENT_SHADER = """#version 330 core
flat in vec3 camera_normal;
in float depth;
layout(location = 0) out vec4 result;
void main() { result = vec4(camera_normal, depth); }
"""


class _ViewGeometry:
    """A triangle soup uploaded once, drawn from many cameras into float depth and normal images.

    positions, normals : (3 F, 3) one row per face corner; normals are the faces' unit world normals
    """

    def __init__(self, positions: np.ndarray, normals: np.ndarray):
        _offscreen()._platform.make_current()
        self.count = len(positions)
        self.vertex_array, self.buffers = _vertex_array([np.asarray(positions, np.float32),
                                                         np.asarray(normals, np.float32)])

    def draw(self, cameras: Sequence[Camera], depth: np.ndarray, normals: np.ndarray, cull: bool) -> None:
        """Draw each camera (all of one size) into ``depth`` (B, H, W) (linear depth) and ``normals``
        (B, 3, H, W) (camera-space normals), zeros on the background: each channel is read from GL
        straight into its plane. ``cull`` skips triangles wound clockwise as seen from the camera."""
        from OpenGL import GL as gl

        width, height = cameras[0].width, cameras[0].height
        _offscreen()._platform.make_current()
        program = _program("depth and normal pass", _VIEW_VERTEX_SHADER, _VIEW_FRAGMENT_SHADER)
        with _framebuffer(width, height, gl.GL_RGBA32F):
            gl.glBindVertexArray(self.vertex_array)
            _use_depth_tested(program, width, height)
            if cull:  # the projection flips y, so faces counter-clockwise in the world are clockwise on screen
                gl.glEnable(gl.GL_CULL_FACE)
                gl.glFrontFace(gl.GL_CW)
                gl.glCullFace(gl.GL_BACK)
            try:
                for index, camera in enumerate(cameras):
                    projection = _pyrender_camera(camera).get_projection_matrix(width, height)
                    projection[1] *= -1.0
                    for name, matrix in (("view", camera.world_to_camera()), ("projection", projection)):
                        gl.glUniformMatrix4fv(gl.glGetUniformLocation(program, name), 1, gl.GL_TRUE,
                                              np.ascontiguousarray(matrix, dtype=np.float32))
                    gl.glClearBufferfv(gl.GL_COLOR, 0, np.zeros(4, np.float32))
                    gl.glClearBufferfv(gl.GL_DEPTH, 0, np.ones(1, np.float32))
                    gl.glDrawArrays(gl.GL_TRIANGLES, 0, self.count)
                    for channel, plane in zip((gl.GL_RED, gl.GL_GREEN, gl.GL_BLUE, gl.GL_ALPHA),
                                              (*normals[index], depth[index])):
                        gl.glReadPixels(0, 0, width, height, channel, gl.GL_FLOAT, plane)
            finally:
                gl.glDisable(gl.GL_CULL_FACE)
                gl.glFrontFace(gl.GL_CCW)  # pyrender culls with GL's default winding
                gl.glUseProgram(0)
                gl.glBindVertexArray(0)

    def close(self) -> None:
        _offscreen()._platform.make_current()
        _delete_vertex_array(self.vertex_array, self.buffers)


def _vertex_array(attributes: Sequence[np.ndarray]) -> tuple[int, np.ndarray]:
    """A vertex array with one buffer per attribute, at locations 0, 1, ...: (V,) or (V, C) float32
    arrays as floats, uint32 arrays as integers. Returns it and its buffers."""
    from OpenGL import GL as gl

    vertex_array = gl.glGenVertexArrays(1)
    buffers = np.atleast_1d(gl.glGenBuffers(len(attributes)))
    gl.glBindVertexArray(vertex_array)
    for location, (buffer, data) in enumerate(zip(buffers, attributes)):
        data = np.ascontiguousarray(data)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, buffer)
        gl.glBufferData(gl.GL_ARRAY_BUFFER, data.nbytes, data, gl.GL_STATIC_DRAW)
        width = data.shape[1] if data.ndim == 2 else 1
        if data.dtype == np.uint32:
            gl.glVertexAttribIPointer(location, width, gl.GL_UNSIGNED_INT, 0, None)
        else:
            gl.glVertexAttribPointer(location, width, gl.GL_FLOAT, False, 0, None)
        gl.glEnableVertexAttribArray(location)
    gl.glBindVertexArray(0)
    return vertex_array, buffers


def _delete_vertex_array(vertex_array: int, buffers: np.ndarray) -> None:
    from OpenGL import GL as gl

    gl.glDeleteBuffers(len(buffers), buffers)
    gl.glDeleteVertexArrays(1, [vertex_array])


def _use_depth_tested(program: int, width: int, height: int) -> None:
    """Draw with ``program`` over a ``width`` x ``height`` viewport, both sides of every triangle, the
    nearest fragment kept (the state both of this module's own passes use)."""
    from OpenGL import GL as gl

    gl.glUseProgram(program)
    gl.glViewport(0, 0, width, height)
    gl.glDisable(gl.GL_CULL_FACE)
    gl.glDisable(gl.GL_BLEND)
    gl.glEnable(gl.GL_DEPTH_TEST)
    gl.glDepthFunc(gl.GL_LESS)


@contextmanager
def _framebuffer(width: int, height: int, color_format: int):
    """A bound framebuffer of one colour attachment (``color_format``) and a float depth buffer."""
    from OpenGL import GL as gl

    framebuffer = gl.glGenFramebuffers(1)
    color, depth = gl.glGenRenderbuffers(2)
    try:
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, framebuffer)
        for renderbuffer, storage, attachment in ((color, color_format, gl.GL_COLOR_ATTACHMENT0),
                                                  (depth, gl.GL_DEPTH_COMPONENT32F, gl.GL_DEPTH_ATTACHMENT)):
            gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, renderbuffer)
            gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, storage, width, height)
            gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, attachment, gl.GL_RENDERBUFFER, renderbuffer)
        if gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER) != gl.GL_FRAMEBUFFER_COMPLETE:
            raise TexgenError(f"OpenGL cannot make a {width} x {height} framebuffer of format {color_format:#x}")
        yield framebuffer
    finally:
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
        gl.glDeleteRenderbuffers(2, [color, depth])
        gl.glDeleteFramebuffers(1, [framebuffer])


UV_TILE = 4096  # rasterise_uv draws larger images in tiles of this size

_UV_VERTEX_SHADER = """#version 330 core
layout(location = 0) in vec2 corner;  // texel-centre coordinates: x right, y down
layout(location = 1) in uint triangle;
layout(location = 2) in float rank;  // in [0, 1): the triangle's place in the priority order
uniform vec2 origin;  // the tile's first column and row
uniform float tile;
uniform float direction;  // -1: the highest rank is nearest; +1: the lowest
flat out uint id;
void main() {
    id = triangle + 1u;
    vec2 ndc = (corner - origin + 0.5) / tile * 2.0 - 1.0;
    gl_Position = vec4(ndc.x, -ndc.y, direction * (2.0 * rank - 1.0), 1.0);
}
"""
_UV_FRAGMENT_SHADER = """#version 330 core
flat in uint id;
layout(location = 0) out uint covering;
void main() { covering = id; }
"""


def rasterise_uv(corners: np.ndarray, priority: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre of an N x N image, drawn with OpenGL.

    GL samples each pixel at its centre, and its top-left rule gives a centre on an edge shared by
    two triangles to exactly one of them. Corners are snapped to GL's sub-pixel grid (1/256 px on
    Mesa and NVIDIA), so a centre that close to an edge may fall on either side of it.
    corners : (T, 3, 2) float triangle corners in texel-centre coordinates (texel (row, col) has
        its centre at x = col, y = row)
    priority : (T,) int where triangles overlap, the highest wins in ``top`` and the lowest in
        ``bottom`` (ties: the later triangle wins in ``top``)
    returns : top, bottom (N, N) int32 triangle index covering each texel, -1 where none does
    """
    from OpenGL import GL as gl

    top = np.full((size, size), -1, dtype=np.int32)
    bottom = top.copy()
    if len(corners) == 0 or size == 0:
        return top, bottom
    rank = np.empty(len(priority), dtype=np.float32)
    rank[np.argsort(priority, kind="stable")] = (np.arange(len(priority)) + 0.5) / len(priority)
    tile = min(size, UV_TILE)
    _offscreen()._platform.make_current()
    program = _program("UV rasteriser", _UV_VERTEX_SHADER, _UV_FRAGMENT_SHADER)
    vertex_array, buffers = _vertex_array([corners.reshape(-1, 2).astype(np.float32),
                                           np.repeat(np.arange(len(corners), dtype=np.uint32), 3),
                                           np.repeat(rank, 3)])
    try:
        gl.glBindVertexArray(vertex_array)
        with _framebuffer(tile, tile, gl.GL_R32UI):
            _use_depth_tested(program, tile, tile)
            gl.glUniform1f(gl.glGetUniformLocation(program, "tile"), float(tile))
            for row in range(0, size, tile):
                for col in range(0, size, tile):
                    gl.glUniform2f(gl.glGetUniformLocation(program, "origin"), float(col), float(row))
                    rows, cols = min(tile, size - row), min(tile, size - col)
                    for image, direction in ((top, -1.0), (bottom, 1.0)):
                        gl.glUniform1f(gl.glGetUniformLocation(program, "direction"), direction)
                        gl.glClearBufferuiv(gl.GL_COLOR, 0, np.zeros(4, np.uint32))
                        gl.glClearBufferfv(gl.GL_DEPTH, 0, np.ones(1, np.float32))
                        gl.glDrawArrays(gl.GL_TRIANGLES, 0, 3 * len(corners))
                        # GL's row 0 is the bottom of the viewport, where the tile's last row was drawn
                        pixels = gl.glReadPixels(0, tile - rows, cols, rows, gl.GL_RED_INTEGER, gl.GL_UNSIGNED_INT)
                        image[row:row + rows, col:col + cols] = \
                            np.frombuffer(pixels, np.uint32).reshape(rows, cols)[::-1]
                        image[row:row + rows, col:col + cols] -= 1
    finally:
        gl.glUseProgram(0)
        gl.glBindVertexArray(0)
        _delete_vertex_array(vertex_array, buffers)
    return top, bottom


def _program(name: str, vertex_shader: str, fragment_shader: str) -> int:
    """This thread's compiled program ``name`` (in this thread's context)."""
    programs = _local.__dict__.setdefault("programs", {})
    if name in programs:
        return programs[name]
    from OpenGL import GL as gl

    program = gl.glCreateProgram()
    for kind, source in ((gl.GL_VERTEX_SHADER, vertex_shader), (gl.GL_FRAGMENT_SHADER, fragment_shader)):
        shader = gl.glCreateShader(kind)
        gl.glShaderSource(shader, source)
        gl.glCompileShader(shader)
        if not gl.glGetShaderiv(shader, gl.GL_COMPILE_STATUS):
            raise TexgenError(f"the {name} shader does not compile: {gl.glGetShaderInfoLog(shader)!r}")
        gl.glAttachShader(program, shader)
        gl.glDeleteShader(shader)
    gl.glLinkProgram(program)
    if not gl.glGetProgramiv(program, gl.GL_LINK_STATUS):
        raise TexgenError(f"the {name} program does not link: {gl.glGetProgramInfoLog(program)!r}")
    programs[name] = program
    return program


_local = threading.local()


def _offscreen(width: int | None = None, height: int | None = None):
    """This thread's OpenGL context, resized to ``width`` x ``height`` (kept as it is when not given).

    All renderers of a thread share one context: pyrender's EGL platform terminates the
    display when any context is deleted, which would break every other renderer.
    """
    renderer = getattr(_local, "offscreen", None)
    if renderer is None:
        _draw_single_sample()
        try:
            renderer = _pyrender().OffscreenRenderer(width or 1, height or 1)
        except Exception as exc:
            raise TexgenError(
                f"cannot start headless OpenGL rendering ({exc}). On Linux install the EGL packages "
                "(apt install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1) and keep "
                "PYOPENGL_PLATFORM=egl") from exc
        _local.offscreen = renderer
    if width is not None and (renderer.viewport_width, renderer.viewport_height) != (width, height):
        renderer.viewport_width, renderer.viewport_height = width, height
    return renderer


def _draw_single_sample() -> None:
    """Make pyrender draw without multisampling and read its buffers back without resolving them.

    pyrender hard-codes a 4x multisample framebuffer. Its depth resolve keeps one of the four
    samples, which on Mesa lies 0.4 px off the centre, and it costs three times the drawing time
    on a CPU. Back-projection samples the views at pixel centres, so that is where depth,
    normals and colours are wanted. A request for 0 samples makes the storage single-sample,
    and :func:`_read_single_sample` reads it directly.
    """
    module = _pyrender().renderer
    storage = module.glRenderbufferStorageMultisample
    if getattr(storage, "single_sample", False):
        return

    def single_sample(target, samples, internal_format, width, height):
        return storage(target, 0, internal_format, width, height)

    single_sample.single_sample = True
    module.glRenderbufferStorageMultisample = single_sample
    if sys.platform != "darwin":  # pyrender resizes its images there
        module.Renderer._read_main_framebuffer = _read_single_sample


def _read_single_sample(self, scene, flags):
    """pyrender's ``Renderer._read_main_framebuffer`` for a single-sample framebuffer.

    The same results (colour, and depth linearised with the perspective formula, 0 on the
    background) without the blit to a second framebuffer, and with the depth converted in three
    array operations instead of boolean-mask indexing: a third of the time of a render on a CPU.
    """
    from OpenGL import GL as gl

    width, height = self._main_fb_dims[0], self._main_fb_dims[1]
    gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, self._main_fb_ms)
    ndc = np.frombuffer(gl.glReadPixels(0, 0, width, height, gl.GL_DEPTH_COMPONENT, gl.GL_FLOAT), np.float32)
    ndc = ndc.reshape(height, width)[::-1] * np.float32(2.0) - np.float32(1.0)
    camera = scene.main_camera_node.camera
    near, far = camera.znear, camera.zfar
    with np.errstate(divide="ignore"):
        if far is None:
            depth = np.float32(2.0 * near) / (np.float32(1.0) - ndc)
        else:
            depth = np.float32(2.0 * near * far) / (np.float32(far + near) - ndc * np.float32(far - near))
    depth[ndc >= 1.0] = 0.0
    if flags & _pyrender().RenderFlags.DEPTH_ONLY:
        return depth
    channels, layout = (4, gl.GL_RGBA) if flags & _pyrender().RenderFlags.RGBA else (3, gl.GL_RGB)
    color = np.frombuffer(gl.glReadPixels(0, 0, width, height, layout, gl.GL_UNSIGNED_BYTE), np.uint8)
    return color.reshape(height, width, channels)[::-1], depth


@cache
def _software_rasteriser() -> bool:
    """True when OpenGL draws on the CPU (Mesa's llvmpipe or softpipe, SwiftShader), asked once per process."""
    from OpenGL import GL as gl

    _offscreen()._platform.make_current()
    renderer = (gl.glGetString(gl.GL_RENDERER) or b"").decode(errors="replace").lower()
    return any(name in renderer for name in ("llvmpipe", "softpipe", "swiftshader"))


def _pyrender():
    try:
        import pyrender
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise TexgenError(f"pyrender is required for rendering: pip install pyrender ({exc})") from exc
    return pyrender


__all__ = ["Renderer", "ViewBuffers", "rasterise_uv", "texture_bytes"]
