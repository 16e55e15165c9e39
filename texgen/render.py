"""Headless rendering with pyrender (EGL on Mesa CPUs and on NVIDIA GPUs).

The mesh is drawn as a triangle soup (one vertex per face corner) so that per-corner UVs and
UV seams are drawn exactly as the user made them. Every pass is unlit (pyrender's FLAT mode):
a textured render shows the texture's values alone, with no lighting or material factor.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .camera import Camera
from .errors import TexgenError
from .mesh import Mesh

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


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
        self._positions = mesh.unit_positions[faces].reshape(-1, 3)
        normals = mesh.face_cross[mesh.face_ok]
        normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        self._face_normals = np.repeat(normals, 3, axis=0).astype(np.float32)
        self._uvs = None
        if mesh.has_uvs:
            self._uvs = mesh.corner_uvs()[mesh.face_ok].reshape(-1, 2).astype(np.float32)
        self._scene = pyrender.Scene(bg_color=np.zeros(4), ambient_light=np.ones(3))
        normal_colors = np.concatenate([self._face_normals * 0.5 + 0.5, np.ones((len(self._positions), 1))], axis=1)
        self._normal_node = self._scene.add(pyrender.Mesh([self._primitive(color_0=normal_colors)]))
        self._texture_node = None
        self._camera_node = None

    def _primitive(self, **attributes):
        pyrender = _pyrender()
        material = pyrender.MetallicRoughnessMaterial(baseColorFactor=np.ones(4), doubleSided=True,
                                                      baseColorTexture=attributes.pop("texture", None))
        return pyrender.Primitive(positions=self._positions, material=material, **attributes)

    def _offscreen(self, camera: Camera):
        return _offscreen(camera.width, camera.height)

    def _draw(self, camera: Camera, node) -> tuple[np.ndarray, np.ndarray]:
        pyrender = _pyrender()
        for other in (self._normal_node, self._texture_node):
            if other is not None:
                other.mesh.is_visible = other is node
        if self._camera_node is not None:
            self._scene.remove_node(self._camera_node)
        if camera.orthographic:
            cam = pyrender.OrthographicCamera(xmag=camera.ymag * camera.width / camera.height, ymag=camera.ymag,
                                              znear=camera.znear, zfar=camera.zfar)
        else:
            cam = pyrender.PerspectiveCamera(yfov=camera.yfov, aspectRatio=camera.width / camera.height,
                                             znear=camera.znear, zfar=camera.zfar)
        self._camera_node = self._scene.add(cam, pose=camera.pose)
        flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA | pyrender.RenderFlags.SKIP_CULL_FACES
        color, depth = self._offscreen(camera).render(self._scene, flags=flags)
        if camera.orthographic:  # pyrender linearises every depth buffer with the perspective formula
            hit = depth > 0
            depth = np.where(hit, camera.znear + camera.zfar - camera.znear * camera.zfar / np.where(hit, depth, 1), 0)
        return color, depth

    def render(self, cameras: Sequence[Camera]) -> ViewBuffers:
        """Depth, camera-space normals and foreground mask of each camera."""
        depths, normals = [], []
        for camera in cameras:
            color, depth = self._draw(camera, self._normal_node)
            world = color[:, :, :3].astype(np.float32) / 127.5 - 1.0
            rotation = camera.pose[:3, :3].astype(np.float32)
            cam_normals = world @ rotation  # world -> camera: R^T n, applied per row
            cam_normals /= np.maximum(np.linalg.norm(cam_normals, axis=-1, keepdims=True), 1e-6)
            cam_normals[depth <= 0] = 0
            depths.append(depth.astype(np.float32))
            normals.append(cam_normals.transpose(2, 0, 1))
        depth_t = torch.from_numpy(np.stack(depths))
        return ViewBuffers(depth_t, torch.from_numpy(np.stack(normals)), depth_t > 0)

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
            texture = np.clip(np.round(texture * 255.0), 0, 255).astype(np.uint8)
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
        images = []
        for camera in cameras:
            color, depth = self._draw(camera, self._texture_node)
            image = color[:, :, :channels].astype(np.float32) / 255.0
            image[depth <= 0] = 0
            images.append(image.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(images))

    def close(self) -> None:
        """Free this mesh's GPU buffers (the shared context stays for the next renderer).

        Rendering the emptied scene makes pyrender unbind the meshes it uploaded; a renderer
        that never drew (no camera yet) has nothing bound.
        """
        for node in list(self._scene.mesh_nodes):
            self._scene.remove_node(node)
        if self._camera_node is not None:
            _offscreen(1, 1).render(self._scene, flags=_pyrender().RenderFlags.DEPTH_ONLY)

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_local = threading.local()


def _offscreen(width: int, height: int):
    """This thread's OpenGL context, resized to ``width`` x ``height``.

    All renderers of a thread share one context: pyrender's EGL platform terminates the
    display when any context is deleted, which would break every other renderer.
    """
    renderer = getattr(_local, "offscreen", None)
    if renderer is None:
        _draw_single_sample()
        try:
            renderer = _pyrender().OffscreenRenderer(width, height)
        except Exception as exc:
            raise TexgenError(
                f"cannot start headless OpenGL rendering ({exc}). On Linux install the EGL packages "
                "(apt install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1) and keep "
                "PYOPENGL_PLATFORM=egl") from exc
        _local.offscreen = renderer
    if (renderer.viewport_width, renderer.viewport_height) != (width, height):
        renderer.viewport_width, renderer.viewport_height = width, height
    return renderer


def _draw_single_sample() -> None:
    """Make pyrender draw without multisampling: one sample per pixel, at the pixel centre.

    pyrender hard-codes a 4x multisample framebuffer. Its depth resolve keeps one of the four
    samples, which on Mesa lies 0.4 px off the centre, and it costs three times the drawing time
    on a CPU. Back-projection samples the views at pixel centres, so that is where depth,
    normals and colours are wanted. A request for 0 samples makes the storage single-sample.
    """
    module = _pyrender().renderer
    storage = module.glRenderbufferStorageMultisample
    if getattr(storage, "single_sample", False):
        return

    def single_sample(target, samples, internal_format, width, height):
        return storage(target, 0, internal_format, width, height)

    single_sample.single_sample = True
    module.glRenderbufferStorageMultisample = single_sample


def _pyrender():
    try:
        import pyrender
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise TexgenError(f"pyrender is required for rendering: pip install pyrender ({exc})") from exc
    return pyrender


__all__ = ["Renderer", "ViewBuffers"]
