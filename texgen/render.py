"""Headless rendering in an OpenGL context that pyrender provides (EGL on Mesa CPUs and on NVIDIA GPUs).

The mesh is drawn as a triangle soup (one vertex per face corner) so that per-corner UVs and
UV seams are drawn exactly as the user made them. Every pass uses this module's own shaders and
framebuffers (single-sample, pixel centres): the depth and normal pass (:meth:`Renderer.render`,
float images read back at once), the textured pass (:meth:`Renderer.render_textures`: unlit, a
render shows the texture's values alone, with no lighting or material factor; a paint and its
mask sample in one draw) and :func:`rasterise_uv`, which draws UV triangles into an integer image
for the UV-space rasteriser (:mod:`texgen.texels`). The views' passes share one camera transform,
so every view's images line up pixel for pixel.
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
        self.mesh = mesh
        faces = mesh.faces[mesh.face_ok]
        self._positions = np.take(mesh.unit_positions, faces, axis=0).reshape(-1, 3)
        self._geometry: _Geometry | None = None  # positions and normals, for the depth and normal pass
        self._textured: _Geometry | None = None  # positions and UVs, for the textured pass

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
                self._geometry = _Geometry(self._positions, np.repeat(self.mesh.face_normals[self.mesh.face_ok], 3,
                                                                      axis=0))
            self._geometry.draw_views(cameras, depth.numpy(), normals.numpy(), self._back_faces_hidden(cameras))
        return ViewBuffers(depth, normals, depth > 0)

    def render_texture(self, cameras: Sequence[Camera], texture: np.ndarray,
                       smooth: bool = True) -> torch.Tensor:
        """Render the mesh with ``texture`` mapped through its UVs, unlit.

        texture : (N, M, C) uint8 or float in [0, 1], C in 1..4
        smooth : bilinear filtering with mipmaps; False samples the nearest texel (for masks)
        returns : (B, C, H, W) float32 in [0, 1]; background pixels are 0
        """
        return self.render_textures(cameras, [texture], [smooth])[0]

    def render_textures(self, cameras: Sequence[Camera], textures: Sequence[np.ndarray],
                        smooth: Sequence[bool]) -> list[torch.Tensor]:
        """:meth:`render_texture` of several textures at once: one pass per camera samples them all
        (each with its own filtering), so a paint and its mask cost one draw.

        returns : one (B, C_i, H, W) float32 per texture
        """
        self.mesh.require_uvs()
        if len({(camera.width, camera.height) for camera in cameras}) > 1:
            raise ValueError("render_textures() takes cameras of one image size")
        if not 1 <= len(textures) <= MAX_TEXTURES or len(smooth) != len(textures):
            raise ValueError(f"render_textures() takes 1 to {MAX_TEXTURES} textures, each with its smooth flag")
        planes = [np.asarray(texture) for texture in textures]
        planes = [plane[:, :, None] if plane.ndim == 2 else plane for plane in planes]
        height, width = (cameras[0].height, cameras[0].width) if cameras else (0, 0)
        images = [np.empty((len(cameras), height, width, 4), np.uint8) for _ in planes]
        if cameras:
            if self._textured is None:
                self._textured = _Geometry(self._positions, self.mesh.corner_uvs()[self.mesh.face_ok].reshape(-1, 2))
            self._textured.draw_textured(cameras, [_rgba_bytes(plane) for plane in planes], smooth, images,
                                         [self._back_faces_hidden([camera]) for camera in cameras])
        results = []
        for image, plane in zip(images, planes):
            result = torch.empty((len(cameras), plane.shape[2], height, width))
            result.copy_(torch.from_numpy(image[..., :plane.shape[2]]).permute(0, 3, 1, 2))
            results.append(result.div_(255.0))
        return results

    def close(self) -> None:
        """Free this mesh's buffers on the GPU (the shared context stays for the next renderer)."""
        for geometry in (self._geometry, self._textured):
            if geometry is not None:
                geometry.close()
        self._geometry = self._textured = None

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


class _Geometry:
    """A triangle soup uploaded once and drawn from many cameras, with this module's own shaders.

    positions : (3 F, 3) one row per face corner, in the unit frame
    attribute : (3 F, 3) the faces' unit world normals, for :meth:`draw_views`, or (3 F, 2) the
        corners' UVs (v up), for :meth:`draw_textured`
    """

    def __init__(self, positions: np.ndarray, attribute: np.ndarray):
        _make_current()
        self.count = len(positions)
        self.vertex_array, self.buffers = _vertex_array([np.asarray(positions, np.float32),
                                                         np.asarray(attribute, np.float32)])

    def draw_views(self, cameras: Sequence[Camera], depth: np.ndarray, normals: np.ndarray, cull: bool) -> None:
        """Draw each camera (all of one size) into ``depth`` (B, H, W) (linear depth) and ``normals``
        (B, 3, H, W) (camera-space normals), zeros on the background: each channel is read from GL
        straight into its plane. ``cull`` skips the back faces."""
        from OpenGL import GL as gl

        width, height = cameras[0].width, cameras[0].height
        program = self._start("depth and normal pass", _VIEW_VERTEX_SHADER, _VIEW_FRAGMENT_SHADER, width, height)
        with _framebuffer(width, height, [gl.GL_RGBA32F]):
            try:
                for index, camera in enumerate(cameras):
                    self._draw(program, camera, cull, 1)
                    for channel, plane in zip((gl.GL_RED, gl.GL_GREEN, gl.GL_BLUE, gl.GL_ALPHA),
                                              (*normals[index], depth[index])):
                        gl.glReadPixels(0, 0, width, height, channel, gl.GL_FLOAT, plane)
            finally:
                self._stop()

    def draw_textured(self, cameras: Sequence[Camera], textures: Sequence[np.ndarray], smooth: Sequence[bool],
                      images: Sequence[np.ndarray], cull: Sequence[bool]) -> None:
        """Draw each camera (all of one size) with every texture, unlit, into ``images`` (one (B, H, W, 4)
        uint8 per texture), zeros on the background. Each texture is (N, M, 4) uint8, rows bottom first
        (:func:`_rgba_bytes`), sampled through the UVs with trilinear filtering where ``smooth``, else
        the nearest texel, repeating outside the 0-1 square; ``cull`` skips the back faces, per camera."""
        from OpenGL import GL as gl
        from OpenGL.raw.GL.VERSION.GL_1_1 import glGenTextures

        width, height = cameras[0].width, cameras[0].height
        count = len(textures)
        program = self._start(f"textured pass of {count}", _TEXTURED_VERTEX_SHADER,
                              _textured_fragment_shader(count), width, height)
        # the raw call into an array: PyOpenGL 3.1.0 (pyrender's pin) on Python 3.12 fails to pass the
        # ctypes scalar that its own glGenTextures(1) makes
        names = np.zeros(count, np.uint32)
        glGenTextures(count, names)
        try:
            for unit, (name, texture, filtered) in enumerate(zip(names, textures, smooth)):
                _upload_texture(unit, int(name), texture, filtered)
                gl.glUniform1i(gl.glGetUniformLocation(program, f"texture{unit}"), unit)
            with _framebuffer(width, height, [gl.GL_RGBA8] * count):
                gl.glDrawBuffers(count, [gl.GL_COLOR_ATTACHMENT0 + unit for unit in range(count)])
                for index, camera in enumerate(cameras):
                    self._draw(program, camera, cull[index], count)
                    for unit, image in enumerate(images):
                        gl.glReadBuffer(gl.GL_COLOR_ATTACHMENT0 + unit)
                        gl.glReadPixels(0, 0, width, height, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, image[index])
        finally:
            self._stop()
            gl.glDeleteTextures(names)
            gl.glActiveTexture(gl.GL_TEXTURE0)

    def _start(self, name: str, vertex_shader: str, fragment_shader: str, width: int, height: int) -> int:
        """Bind the soup and this thread's program ``name`` for cameras of ``width`` x ``height``."""
        from OpenGL import GL as gl

        _make_current()
        program = _program(name, vertex_shader, fragment_shader)
        gl.glBindVertexArray(self.vertex_array)
        _use_depth_tested(program, width, height)
        return program

    def _draw(self, program: int, camera: Camera, cull: bool, outputs: int) -> None:
        """Clear the ``outputs`` colour attachments and the depth, and draw the soup from ``camera``."""
        from OpenGL import GL as gl

        width, height = camera.width, camera.height
        if cull:  # the projection flips y, so faces counter-clockwise in the world are clockwise on screen
            gl.glEnable(gl.GL_CULL_FACE)
            gl.glFrontFace(gl.GL_CW)
            gl.glCullFace(gl.GL_BACK)
        else:
            gl.glDisable(gl.GL_CULL_FACE)
        projection = _pyrender_camera(camera).get_projection_matrix(width, height)
        projection[1] *= -1.0
        for name, matrix in (("view", camera.world_to_camera()), ("projection", projection)):
            gl.glUniformMatrix4fv(gl.glGetUniformLocation(program, name), 1, gl.GL_TRUE,
                                  np.ascontiguousarray(matrix, dtype=np.float32))
        for output in range(outputs):
            gl.glClearBufferfv(gl.GL_COLOR, output, np.zeros(4, np.float32))
        gl.glClearBufferfv(gl.GL_DEPTH, 0, np.ones(1, np.float32))
        gl.glDrawArrays(gl.GL_TRIANGLES, 0, self.count)

    @staticmethod
    def _stop() -> None:
        from OpenGL import GL as gl

        gl.glDisable(gl.GL_CULL_FACE)
        gl.glFrontFace(gl.GL_CCW)
        gl.glUseProgram(0)
        gl.glBindVertexArray(0)

    def close(self) -> None:
        _make_current()
        _delete_vertex_array(self.vertex_array, self.buffers)


MAX_TEXTURES = 4  # Renderer.render_textures samples at most this many textures in one pass

_TEXTURED_VERTEX_SHADER = """#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec2 corner_uv;
uniform mat4 view;  // world -> camera
uniform mat4 projection;  // with y negated, so that GL's first row is the image's top row
out vec2 uv;
void main() {
    uv = corner_uv;
    gl_Position = projection * (view * vec4(position, 1.0));
}
"""


def _textured_fragment_shader(count: int) -> str:
    """The textured pass's fragment shader for ``count`` textures, each sampled into its own output."""
    lines = ["#version 330 core", "in vec2 uv;"]
    lines += [f"uniform sampler2D texture{i};\nlayout(location = {i}) out vec4 color{i};" for i in range(count)]
    lines += ["void main() {"] + [f"    color{i} = texture(texture{i}, uv);" for i in range(count)] + ["}"]
    return "\n".join(lines) + "\n"


def _rgba_bytes(texture: np.ndarray) -> np.ndarray:
    """(N, M, 4) uint8 of a (N, M, C) texture, C in 1..4, uint8 or float in [0, 1], rows bottom first
    (texture coordinate t is v, which runs up). The channels missing are 0, and the fourth is 255
    when the texture has fewer than four (a fourth channel is data, a mask, not opacity). OpenCV
    interleaves the channels: numpy's strided copies take 40x longer."""
    import cv2

    channels = texture.shape[2]
    if not 1 <= channels <= 4:
        raise ValueError(f"a texture has 1 to 4 channels, got {channels}")
    if texture.dtype != np.uint8:
        texture = texture_bytes(texture)
    texture = np.ascontiguousarray(texture)
    if channels == 3:
        rgba = cv2.cvtColor(texture, cv2.COLOR_RGB2RGBA)
    else:
        planes = list(cv2.split(texture)) if channels > 1 else [texture[:, :, 0]]
        planes += [np.zeros_like(planes[0])] * (3 - len(planes))
        rgba = cv2.merge(planes if channels == 4 else planes[:3] + [np.full_like(planes[0], 255)])
    return cv2.flip(rgba, 0)


def _upload_texture(unit: int, name: int, texture: np.ndarray, smooth: bool) -> None:
    """Make ``texture`` (N, M, 4) uint8, rows bottom first (:func:`_rgba_bytes`), the 2D texture ``name``
    on texture unit ``unit``: repeating, with mipmaps where ``smooth``."""
    from OpenGL import GL as gl

    gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
    gl.glBindTexture(gl.GL_TEXTURE_2D, name)
    gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
    height, width = texture.shape[:2]
    gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGBA8, width, height, 0, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, texture)
    if smooth:
        gl.glGenerateMipmap(gl.GL_TEXTURE_2D)
    filters = (gl.GL_LINEAR_MIPMAP_LINEAR, gl.GL_LINEAR) if smooth else (gl.GL_NEAREST, gl.GL_NEAREST)
    for parameter, value in ((gl.GL_TEXTURE_MIN_FILTER, filters[0]), (gl.GL_TEXTURE_MAG_FILTER, filters[1]),
                             (gl.GL_TEXTURE_WRAP_S, gl.GL_REPEAT), (gl.GL_TEXTURE_WRAP_T, gl.GL_REPEAT)):
        gl.glTexParameteri(gl.GL_TEXTURE_2D, parameter, value)


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
    nearest fragment kept (the state every pass of this module starts from)."""
    from OpenGL import GL as gl

    gl.glUseProgram(program)
    gl.glViewport(0, 0, width, height)
    gl.glDisable(gl.GL_CULL_FACE)
    gl.glDisable(gl.GL_BLEND)
    gl.glEnable(gl.GL_DEPTH_TEST)
    gl.glDepthFunc(gl.GL_LESS)


@contextmanager
def _framebuffer(width: int, height: int, color_formats: Sequence[int]):
    """A bound framebuffer of one colour attachment per format in ``color_formats`` and a float depth buffer."""
    from OpenGL import GL as gl

    framebuffer = gl.glGenFramebuffers(1)
    renderbuffers = np.atleast_1d(gl.glGenRenderbuffers(len(color_formats) + 1))
    attachments = [gl.GL_COLOR_ATTACHMENT0 + index for index in range(len(color_formats))] + [gl.GL_DEPTH_ATTACHMENT]
    try:
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, framebuffer)
        for renderbuffer, storage, attachment in zip(renderbuffers, [*color_formats, gl.GL_DEPTH_COMPONENT32F],
                                                     attachments):
            gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, renderbuffer)
            gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, storage, width, height)
            gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, attachment, gl.GL_RENDERBUFFER, renderbuffer)
        if gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER) != gl.GL_FRAMEBUFFER_COMPLETE:
            formats = ", ".join(f"{color_format:#x}" for color_format in color_formats)
            raise TexgenError(f"OpenGL cannot make a {width} x {height} framebuffer of formats {formats}")
        yield framebuffer
    finally:
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
        gl.glDeleteRenderbuffers(len(renderbuffers), renderbuffers)
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
    _make_current()
    program = _program("UV rasteriser", _UV_VERTEX_SHADER, _UV_FRAGMENT_SHADER)
    vertex_array, buffers = _vertex_array([corners.reshape(-1, 2).astype(np.float32),
                                           np.repeat(np.arange(len(corners), dtype=np.uint32), 3),
                                           np.repeat(rank, 3)])
    try:
        gl.glBindVertexArray(vertex_array)
        with _framebuffer(tile, tile, [gl.GL_R32UI]):
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


def _make_current() -> None:
    """Make this thread's OpenGL context current, creating it on first use.

    pyrender provides the context (EGL, or its other platforms); every pass draws with this
    module's own shaders into its own framebuffers. All renderers of a thread share the context:
    pyrender's EGL platform terminates the display when any context is deleted, which would
    break every other renderer.
    """
    context = getattr(_local, "context", None)
    if context is None:
        try:
            context = _pyrender().OffscreenRenderer(1, 1)
        except Exception as exc:
            raise TexgenError(
                f"cannot start headless OpenGL rendering ({exc}). On Linux install the EGL packages "
                "(apt install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1) and keep "
                "PYOPENGL_PLATFORM=egl") from exc
        _local.context = context
    context._platform.make_current()


@cache
def _software_rasteriser() -> bool:
    """True when OpenGL draws on the CPU (Mesa's llvmpipe or softpipe, SwiftShader), asked once per process."""
    from OpenGL import GL as gl

    _make_current()
    renderer = (gl.glGetString(gl.GL_RENDERER) or b"").decode(errors="replace").lower()
    return any(name in renderer for name in ("llvmpipe", "softpipe", "swiftshader"))


def _pyrender():
    if os.environ.get("PYOPENGL_PLATFORM") == "egl" and "pyrender" not in sys.modules:
        import pyglet  # a pyrender dependency

        # pyrender imports pyglet's window module, which loads X11 libraries unless pyglet is headless:
        # on a server without them (a GPU machine with only the driver's EGL) the import failed
        pyglet.options["headless"] = True
    try:
        import pyrender
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise TexgenError(f"pyrender is required for rendering: pip install pyrender ({exc})") from exc
    return pyrender


__all__ = ["Renderer", "ViewBuffers", "rasterise_uv", "texture_bytes"]
