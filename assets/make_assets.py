"""Make texgen's sample meshes, deterministically (CC0, see README.md).

    python assets/make_assets.py [OUT_DIR]      # default: this folder

Writes ``crate.obj`` (6 UV islands, hand-made layout), ``knot.ply`` (no UVs), ``creature.obj``
(organic, xatlas layout fixed at generation time) and ``vase.glb`` (surface of revolution with
a cylindrical UV seam), each textured objects with a 512² procedural texture.

Every texture is painted from a function of 3D position through the UVs: each UV triangle is
rasterised and the pattern is evaluated at the interpolated surface point. Colours therefore
match across UV seams wherever the pattern is continuous in 3D, which makes the seam metrics of
these references meaningful.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np

SIZE = 512  # texture side in texels
MARGIN = 4.0  # texels painted past each UV triangle's edges (island padding)
Shader = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (points (M, 3), face ids (M,)) -> (M, 3) in [0, 1]


# ---------------------------------------------------------------------- 3D patterns


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def value_noise(points: np.ndarray, frequency: float, seed: int) -> np.ndarray:
    """(M,) smooth 3D value noise in [0, 1] at ``points`` (M, 3): hashed lattice, quintic fade."""
    table = np.random.default_rng(seed).permutation(256)
    values = np.random.default_rng(seed + 1).random(256)
    p = points * frequency
    cell = np.floor(p).astype(np.int64)
    f = p - cell
    fade = f * f * f * (f * (f * 6.0 - 15.0) + 10.0)
    out = np.zeros(len(points))
    for corner in range(8):
        offset = np.array([(corner >> axis) & 1 for axis in range(3)])
        lattice = (cell + offset) & 255
        value = values[table[(table[(table[lattice[:, 0]] + lattice[:, 1]) & 255] + lattice[:, 2]) & 255]]
        weight = np.prod(np.where(offset == 1, fade, 1.0 - fade), axis=1)
        out += weight * value
    return out


def fbm(points: np.ndarray, frequency: float, seed: int, octaves: int = 4) -> np.ndarray:
    """(M,) fractal sum of value noise, in [0, 1]."""
    total, norm, amplitude = np.zeros(len(points)), 0.0, 1.0
    for octave in range(octaves):
        total += amplitude * value_noise(points, frequency * 2.0 ** octave, seed + 7 * octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend colours a, b ((3,) or (M, 3)) by t (M,)."""
    return a + (np.asarray(b) - a) * t[:, None]


# ---------------------------------------------------------------------- painting through the UVs


def paint(positions: np.ndarray, faces: np.ndarray, uvs: np.ndarray, uv_faces: np.ndarray,
          shader: Shader, size: int = SIZE) -> np.ndarray:
    """Rasterise every UV triangle (v up, row 0 at v = 1) and shade the texels at their 3D points.

    Texels up to ``MARGIN`` outside a triangle take the colour of its nearest point (island
    padding); each texel goes to the triangle that contains it most deeply.
    returns : (size, size, 3) uint8; texels no triangle reaches are dark grey
    """
    corners = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size], axis=1)[uv_faces]  # (F, 3, 2) pixels
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    low = np.floor(corners.min(axis=1) - MARGIN).astype(np.int64)
    extent = np.ceil(corners.max(axis=1) + MARGIN).astype(np.int64) - low
    ok = np.flatnonzero(np.abs(area2) > 1e-12)
    ok = ok[np.argsort(extent[ok].prod(axis=1), kind="stable")]  # similar sizes share a batch
    texel, depth, owner, weight = [], [], [], []
    for batch in np.array_split(ok, max(1, len(ok) // 256)):
        w, h = extent[batch].max(axis=0)
        xs = low[batch, 0, None, None] + np.arange(w)[None, None, :] + 0.5  # (B, 1, w)
        ys = low[batch, 1, None, None] + np.arange(h)[None, :, None] + 0.5  # (B, h, 1)
        pa, pb, pc = (p[batch][:, None, None, :] for p in (a, b, c))
        bary = np.stack([(pb[..., 0] - xs) * (pc[..., 1] - ys) - (pb[..., 1] - ys) * (pc[..., 0] - xs),
                         (pc[..., 0] - xs) * (pa[..., 1] - ys) - (pc[..., 1] - ys) * (pa[..., 0] - xs),
                         (pa[..., 0] - xs) * (pb[..., 1] - ys) - (pa[..., 1] - ys) * (pb[..., 0] - xs)], axis=-1)
        bary /= area2[batch, None, None, None]
        edges = np.linalg.norm(np.stack([c - b, a - c, b - a], axis=1)[batch], axis=2)  # (B, 3)
        inside = (bary * (np.abs(area2[batch])[:, None] / edges)[:, None, None, :]).min(axis=-1)  # texels
        xs, ys = np.broadcast_arrays(xs, ys)
        keep = (inside > -MARGIN) & (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
        texel.append(ys[keep].astype(np.int64) * size + xs[keep].astype(np.int64))
        depth.append(inside[keep])
        owner.append(np.broadcast_to(batch[:, None, None], keep.shape)[keep])
        weight.append(bary[keep])
    texel, depth, owner, weight = (np.concatenate(x) for x in (texel, depth, owner, weight))
    order = np.lexsort((depth, texel))
    last = order[np.r_[texel[order][1:] != texel[order][:-1], True]]  # the deepest candidate per texel
    weight = np.clip(weight[last], 0.0, None)
    weight /= weight.sum(axis=1, keepdims=True)
    points = np.einsum("mk,mkd->md", weight, positions[faces[owner[last]]])
    texture = np.full((size * size, 3), 0.15)
    texture[texel[last]] = shader(points, owner[last])
    return np.clip(np.round(texture * 255.0), 0, 255).astype(np.uint8).reshape(size, size, 3)


# ---------------------------------------------------------------------- crate: 6 hand-made islands

CRATE_HALF = np.array([0.5, 0.4, 0.4])  # a 1.0 x 0.8 x 0.8 box
CRATE_CELLS = 12  # grid cells per face side
# per face: name, outward axis, sign, in-plane right axis (+-), up axis (+-), island rotation (quarter turns)
CRATE_FACES = [("front", 2, 1, (0, 1), (1, 1), 0), ("back", 2, -1, (0, -1), (1, 1), 0),
               ("right", 0, 1, (2, -1), (1, 1), 1), ("left", 0, -1, (2, 1), (1, 1), 2),
               ("top", 1, 1, (0, 1), (2, -1), 0), ("bottom", 1, -1, (0, 1), (2, 1), 2)]


def crate_geometry() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A subdivided box with one UV island per side (2 x 3 grid, two islands rotated).

    returns : positions (V, 3), faces (F, 3), uvs (T, 2), uv_faces (F, 3), side (F,) index into CRATE_FACES
    """
    n = CRATE_CELLS
    lattice, faces, uvs, uv_faces, side = [], [], [], [], []
    margin = 8.0 / SIZE
    cell_w, cell_h = 0.5, 1.0 / 3.0
    scale = min((cell_w - 2 * margin) / (2 * CRATE_HALF[0]), (cell_h - 2 * margin) / (2 * CRATE_HALF[1]))
    s, t = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    quads = np.array([[i * (n + 1) + j, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1, i * (n + 1) + j + 1]
                      for i in range(n) for j in range(n)])
    for index, (_, axis, sign, (right, right_sign), (up, up_sign), turns) in enumerate(CRATE_FACES):
        grid = np.zeros((n + 1, n + 1, 3), dtype=np.int64)  # integer lattice: 0..2n along each axis
        grid[..., axis] = n + sign * n
        grid[..., right] = n + right_sign * (2 * s - n)
        grid[..., up] = n + up_sign * (2 * t - n)
        lattice.append(grid.reshape(-1, 3))
        local = np.stack([s, t], axis=-1).reshape(-1, 2) / n - 0.5
        local = local * [2 * CRATE_HALF[right] * scale, 2 * CRATE_HALF[up] * scale]
        for _ in range(turns):
            local = np.stack([-local[:, 1], local[:, 0]], axis=1)
        centre = [cell_w * (index % 2 + 0.5), 1.0 - cell_h * (index // 2 + 0.5)]
        offset = index * (n + 1) ** 2
        tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]) + offset
        faces.append(tris)
        uv_faces.append(tris)
        uvs.append(local + centre)
        side.append(np.full(len(tris), index))
    lattice = np.concatenate(lattice)
    unique, inverse = np.unique(lattice, axis=0, return_inverse=True)
    positions = (unique / n - 1.0) * CRATE_HALF
    return positions, inverse.reshape(-1)[np.concatenate(faces)], np.concatenate(uvs), np.concatenate(uv_faces), \
        np.concatenate(side)


def label_masks(height: int = 24) -> list[np.ndarray]:
    """One (height, W) float stencil per crate side: its name, then a mark that shows orientation."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    masks = []
    for name, *_ in CRATE_FACES:
        text = name.upper()
        width = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=font)) + height + 8
        image = Image.new("L", (width, height))
        draw = ImageDraw.Draw(image)
        draw.text((2, (height - 12) // 2 - 1), text, fill=255, font=font)
        x = width - height + 2  # an upward arrow, so rotations and mirrors show
        draw.polygon([(x + height // 2 - 3, 2), (x + 2, height // 2), (x + height - 8, height // 2)], fill=255)
        draw.rectangle([x + height // 2 - 6, height // 2, x + height // 2, height - 3], fill=255)
        masks.append(np.asarray(image, dtype=np.float64) / 255.0)
    return masks


def crate_shader(side: np.ndarray) -> Shader:
    """Planks with gaps and grain, a frame along every edge, metal corners, a stencilled label per side."""
    masks = label_masks()
    palette = np.array([[0.75, 0.1, 0.08], [0.1, 0.2, 0.6], [0.1, 0.45, 0.15], [0.55, 0.15, 0.55],
                        [0.05, 0.05, 0.05], [0.8, 0.45, 0.05]])

    def shade(points: np.ndarray, face: np.ndarray) -> np.ndarray:
        which = side[face]
        axis = np.array([CRATE_FACES[k][1] for k in range(6)])[which]
        right = np.array([CRATE_FACES[k][3][0] for k in range(6)])[which]
        right_sign = np.array([CRATE_FACES[k][3][1] for k in range(6)])[which]
        up = np.array([CRATE_FACES[k][4][0] for k in range(6)])[which]
        up_sign = np.array([CRATE_FACES[k][4][1] for k in range(6)])[which]
        rows = np.arange(len(points))
        a = points[rows, right] * right_sign / CRATE_HALF[right]  # -1..1 across the side, left to right
        b = points[rows, up] * up_sign / CRATE_HALF[up]  # -1..1 bottom to top
        border = np.minimum(CRATE_HALF[right] * (1 - np.abs(a)), CRATE_HALF[up] * (1 - np.abs(b)))
        height = (points[:, 1] + CRATE_HALF[1]) / (2 * CRATE_HALF[1])
        # planks: boards along the side's longer horizontal direction, stacked across
        across = np.where(axis == 1, points[:, 2], points[:, 1])
        plank = np.floor((across + 0.4) / 0.16)
        stretch = np.where((axis == 1)[:, None] | (axis == 2)[:, None], [1.0, 10.0, 10.0], [10.0, 10.0, 1.0])
        grain = fbm(points * stretch + plank[:, None] * 3.1, 2.0, seed=11)
        plank_tone = 0.85 + 0.3 * value_noise(np.stack([plank, which * 1.0, plank * 0.0], 1) + 0.5, 1.0, 5)
        wood = mix(np.array([0.68, 0.48, 0.26]), [0.93, 0.76, 0.5], grain) * plank_tone[:, None]
        gap = 1.0 - 0.6 * (1.0 - smoothstep(0.0, 0.006, np.abs(((across + 0.4) % 0.16) - 0.08) - 0.074))
        wood = wood * gap[:, None]
        wood = wood * (0.8 + 0.35 * np.abs(a))[:, None] * (0.9 + 0.1 * b)[:, None]  # per-side gradient
        label = np.zeros(len(points))
        for k, mask in enumerate(masks):
            sel = which == k
            span = 0.6 * CRATE_HALF[CRATE_FACES[k][3][0]]
            u = (a[sel] * CRATE_HALF[CRATE_FACES[k][3][0]] + span) / (2 * span)
            v = 0.5 - b[sel] * CRATE_HALF[CRATE_FACES[k][4][0]] / (2 * span * mask.shape[0] / mask.shape[1])
            inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
            value = np.zeros(sel.sum())
            value[inside] = mask[(v[inside] * mask.shape[0]).astype(int), (u[inside] * mask.shape[1]).astype(int)]
            label[sel] = value
        ink = palette[which] * (0.85 + 0.3 * fbm(points, 9.0, seed=21))[:, None]
        interior = mix(wood, ink, label * 0.9)
        # frame boards along every edge and metal corners: functions of 3D position alone,
        # so they continue across the UV seams
        frame_wood = mix(np.array([0.35, 0.22, 0.12]), [0.52, 0.34, 0.18], fbm(points, 6.0, seed=31))
        frame_edge = 1.0 - 0.5 * (1.0 - smoothstep(0.0, 0.008, np.abs(border - 0.08)))
        color = mix(interior, frame_wood, 1.0 - smoothstep(0.075, 0.085, border)) * frame_edge[:, None]
        corner = np.max(np.abs(np.abs(points) - CRATE_HALF), axis=1)  # distance to the nearest box corner
        metal = mix(np.array([0.45, 0.47, 0.5]), [0.7, 0.72, 0.75], fbm(points, 12.0, seed=41))
        color = mix(color, metal, 1.0 - smoothstep(0.11, 0.12, corner))
        return color * (0.75 + 0.25 * height)[:, None]

    return shade


# ---------------------------------------------------------------------- knot: no UVs, strong self-occlusion


def torus_knot(p: int = 2, q: int = 3, segments: int = 256, sides: int = 16,
               tube: float = 0.38) -> tuple[np.ndarray, np.ndarray]:
    """A closed (p, q) torus-knot tube. returns positions (V, 3), faces (F, 3), outward winding."""
    t = np.arange(segments) / segments * 2 * np.pi
    radius = 2.0 + np.cos(q * t)
    curve = np.stack([radius * np.cos(p * t), radius * np.sin(p * t), -np.sin(q * t)], axis=1)
    tangent = np.stack([-p * radius * np.sin(p * t) - q * np.sin(q * t) * np.cos(p * t),
                        p * radius * np.cos(p * t) - q * np.sin(q * t) * np.sin(p * t),
                        -q * np.cos(q * t)], axis=1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.cross(tangent, [0.0, 0.0, 1.0])  # the tangent is never parallel to z
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    angle = np.arange(sides) / sides * 2 * np.pi
    ring = np.cos(angle)[None, :, None] * normal[:, None] + np.sin(angle)[None, :, None] * binormal[:, None]
    positions = (curve[:, None] + tube * ring).reshape(-1, 3) / 3.0
    i, j = np.meshgrid(np.arange(segments), np.arange(sides), indexing="ij")
    a, b = i * sides + j, ((i + 1) % segments) * sides + j
    c, d = ((i + 1) % segments) * sides + (j + 1) % sides, i * sides + (j + 1) % sides
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return positions, (faces if winds_outward(positions, faces) else faces[:, ::-1].copy())


def winds_outward(positions: np.ndarray, faces: np.ndarray) -> bool:
    """True when a closed mesh's faces wind counter-clockwise seen from outside (positive volume)."""
    tri = positions[faces]
    return bool(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() > 0)


# ---------------------------------------------------------------------- creature: merged, smoothed primitives


def capsule(points: np.ndarray, a: tuple, b: tuple, radius: float) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    t = np.clip((points - a) @ (b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1) - radius


def ellipsoid(points: np.ndarray, centre: tuple, radii: tuple) -> np.ndarray:
    radii = np.asarray(radii)
    return (np.linalg.norm((points - centre) / radii, axis=1) - 1.0) * radii.min()


def smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 + (d1 - d2) * h - k * h * (1.0 - h)


def creature_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance (approximate) of a four-legged creature facing +Z, feet at y = -0.6."""
    d = ellipsoid(points, (0.0, 0.05, 0.0), (0.36, 0.32, 0.6))
    parts = [ellipsoid(points, (0.0, 0.42, 0.58), (0.24, 0.23, 0.25)),  # head
             ellipsoid(points, (0.0, 0.33, 0.8), (0.13, 0.1, 0.13)),  # snout
             capsule(points, (0.12, 0.58, 0.52), (0.24, 0.85, 0.46), 0.06),  # ears
             capsule(points, (-0.12, 0.58, 0.52), (-0.24, 0.85, 0.46), 0.06),
             capsule(points, (0.0, 0.2, -0.55), (0.0, 0.5, -0.9), 0.05)]  # tail
    for x in (-0.2, 0.2):
        for z in (-0.35, 0.35):
            parts.append(capsule(points, (x, -0.05, z), (x * 1.15, -0.52, z * 1.1), 0.09))  # legs
    for part in parts:
        d = smooth_union(d, part, 0.08)
    return d


def surface_nets(field: np.ndarray, origin: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the zero level of a sampled field (X, Y, Z), negative inside, positive on the border.

    One vertex per cell the surface crosses (the mean of its edge crossings), one quad per grid
    edge the surface crosses, split along its shorter diagonal. returns positions (V, 3), faces (F, 3)
    """
    dims = np.array(field.shape)
    offsets = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)])
    corners = [field[i:dims[0] - 1 + i, j:dims[1] - 1 + j, k:dims[2] - 1 + k] for i, j, k in offsets]
    total = np.zeros(tuple(dims - 1) + (3,))
    count = np.zeros(tuple(dims - 1))
    for a in range(8):
        for b in range(a + 1, 8):
            if np.abs(offsets[a] - offsets[b]).sum() != 1:
                continue
            crossing = (corners[a] < 0) != (corners[b] < 0)
            t = corners[a][crossing] / (corners[a][crossing] - corners[b][crossing])
            total[crossing] += offsets[a] + t[:, None] * (offsets[b] - offsets[a])
            count[crossing] += 1
    active = count > 0
    index = np.full(tuple(dims - 1), -1, dtype=np.int64)
    index[active] = np.arange(active.sum())
    positions = origin + (np.argwhere(active) + total[active] / count[active][:, None]) * step
    quads = []
    for axis in range(3):
        b, c = (axis + 1) % 3, (axis + 2) % 3
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(0, -1), slice(1, None)
        f0, f1 = field[tuple(low)], field[tuple(high)]
        edges = np.argwhere((f0 < 0) != (f1 < 0))
        interior = (edges[:, [b, c]] >= 1) & (edges[:, [b, c]] <= dims[[b, c]] - 2)
        edges = edges[interior.all(axis=1)]
        quad = []
        for db, dc in ((1, 1), (0, 1), (0, 0), (1, 0)):  # counter-clockwise around +axis
            cell = edges.copy()
            cell[:, b] -= db
            cell[:, c] -= dc
            quad.append(index[tuple(cell.T)])
        quad = np.stack(quad, axis=1)
        outward_negative = f0[tuple(edges.T)] >= 0  # outside at the low end: the surface faces -axis
        quad[outward_negative] = quad[outward_negative][:, ::-1]
        quads.append(quad)
    quad = np.concatenate(quads)
    p = positions[quad]
    short02 = np.linalg.norm(p[:, 0] - p[:, 2], axis=1) <= np.linalg.norm(p[:, 1] - p[:, 3], axis=1)
    first = np.where(short02[:, None], quad[:, [0, 1, 2]], quad[:, [0, 1, 3]])
    second = np.where(short02[:, None], quad[:, [0, 2, 3]], quad[:, [1, 2, 3]])
    return positions, np.concatenate([first, second])


def creature_geometry() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The creature's surface, smoothed, with a fixed xatlas layout. returns positions, faces, uvs, uv_faces."""
    import trimesh
    import xatlas

    step = 0.032
    origin = np.array([-0.6, -0.75, -1.05])
    shape = np.ceil((np.array([0.6, 1.05, 1.05]) - origin) / step).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    field = creature_sdf(origin + grid * step).reshape(tuple(shape))
    positions, faces = surface_nets(field, origin, step)
    mesh = trimesh.Trimesh(positions, faces, process=False)
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=10)
    positions = np.round(np.asarray(mesh.vertices), 6)
    atlas = xatlas.Atlas()
    atlas.add_mesh(positions.astype(np.float32), faces.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear = SIZE, 4, True
    atlas.generate(pack_options=pack)
    _, uv_faces, uvs = atlas[0]
    return positions, faces, np.round(uvs.astype(np.float64), 6), uv_faces.astype(np.int64)


def creature_shader(points: np.ndarray, face: np.ndarray) -> np.ndarray:
    """A cream belly, a warm brown back with soft dark spots, dark hooves, gentle noise."""
    rng = np.random.default_rng(7)
    centres = rng.uniform([-0.45, -0.1, -0.8], [0.45, 0.9, 0.9], size=(90, 3))
    nearest = np.min(np.linalg.norm(points[:, None] - centres[None], axis=2), axis=1)
    wobble = fbm(points, 3.0, seed=51)
    back = smoothstep(-0.05, 0.35, points[:, 1] + 0.25 * (wobble - 0.5))
    color = mix(np.array([0.93, 0.86, 0.72]), [0.78, 0.47, 0.22], back)
    color = mix(color, [0.36, 0.2, 0.1], (1.0 - smoothstep(0.07, 0.1, nearest + 0.05 * wobble)) * back)
    color = mix(color, [0.2, 0.18, 0.18], 1.0 - smoothstep(-0.48, -0.42, points[:, 1]))
    return color * (0.85 + 0.3 * fbm(points, 10.0, seed=61))[:, None]


# ---------------------------------------------------------------------- vase: surface of revolution


VASE_OUTLINE = np.array([(0.26, 0.0), (0.33, 0.1), (0.42, 0.35), (0.36, 0.62), (0.19, 0.86), (0.17, 1.0),
                         (0.24, 1.2)])  # (radius, height) control points of the outer wall
VASE_WALL = 0.025


def catmull_rom(points: np.ndarray, samples: int) -> np.ndarray:
    """(samples, 2) points along a Catmull-Rom spline through ``points`` (K, 2), ends included."""
    padded = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    s = np.linspace(0.0, len(points) - 1, samples)
    k = np.minimum(s.astype(int), len(points) - 2)
    t = (s - k)[:, None]
    p0, p1, p2, p3 = padded[k], padded[k + 1], padded[k + 2], padded[k + 3]
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)


def vase_geometry(around: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A thick-walled vase closed at the bottom: one UV island, u around (seam at angle 0), v along the
    profile from the outer bottom centre over the rim to the inner bottom centre.

    returns : positions (V, 3), faces (F, 3), uvs (T, 2), uv_faces (F, 3)
    """
    outer = catmull_rom(VASE_OUTLINE, 34)
    inner = (outer - [VASE_WALL, 0.0])[::-1]
    inner = inner[inner[:, 1] >= VASE_WALL]
    profile = np.concatenate([np.linspace([0.0, 0.0], outer[0], 5)[:-1], outer, inner,
                              np.linspace([inner[-1, 0], VASE_WALL], [0.0, VASE_WALL], 5)])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(profile, axis=0), axis=1))])
    margin = MARGIN / SIZE
    v = margin + (1 - 2 * margin) * (1.0 - arc / arc[-1])  # the outer bottom at the top of the image
    rings = len(profile) - 2  # profile[0] and profile[-1] are the poles
    angle = np.arange(around) / around * 2 * np.pi
    ring = profile[1:-1]
    positions = np.concatenate([[[0.0, profile[0, 1], 0.0]],
                                np.stack([ring[:, None, 0] * np.sin(angle), np.repeat(ring[:, 1:], around, 1),
                                          ring[:, None, 0] * np.cos(angle)], axis=-1).reshape(-1, 3),
                                [[0.0, profile[-1, 1], 0.0]]])
    u = margin + (1 - 2 * margin) * np.arange(around + 1) / around
    uvs = np.stack(np.meshgrid(u, v[1:-1]), axis=-1).reshape(-1, 2)  # (rings * (around + 1), 2)
    pole_u = margin + (1 - 2 * margin) * (np.arange(around) + 0.5) / around
    poles = [np.stack([pole_u, np.full(around, v[end])], 1) for end in (0, -1)]  # one UV per fan triangle
    uvs = np.concatenate([uvs] + poles)
    k, j = np.meshgrid(np.arange(rings - 1), np.arange(around), indexing="ij")
    k, j = k.reshape(-1), j.reshape(-1)
    cols = np.arange(around)
    first, last = 1 + cols, 1 + (rings - 1) * around + cols  # positions of the first and last ring
    first_next, last_next = 1 + (cols + 1) % around, 1 + (rings - 1) * around + (cols + 1) % around
    a, b = 1 + k * around + j, 1 + k * around + (j + 1) % around  # quad corners on ring k and ring k + 1
    c, d = b + around, a + around
    ta, tb = k * (around + 1) + j, k * (around + 1) + j + 1  # their UVs: column around repeats column 0
    tc, td = tb + around + 1, ta + around + 1
    top_pole, pole_uv = len(positions) - 1, rings * (around + 1)
    last_uv = (rings - 1) * (around + 1) + cols
    faces = np.concatenate([np.stack([np.zeros(around, np.int64), first, first_next], 1),
                            np.stack([a, c, b], 1), np.stack([a, d, c], 1),
                            np.stack([np.full(around, top_pole), last_next, last], 1)])
    uv_faces = np.concatenate([np.stack([pole_uv + cols, cols, cols + 1], 1),
                               np.stack([ta, tc, tb], 1), np.stack([ta, td, tc], 1),
                               np.stack([pole_uv + around + cols, last_uv + 1, last_uv], 1)])
    positions = np.round(positions, 6)
    if not winds_outward(positions, faces):
        faces, uv_faces = faces[:, ::-1].copy(), uv_faces[:, ::-1].copy()
    return positions, faces, np.round(uvs, 6), uv_faces


def vase_shader(points: np.ndarray, face: np.ndarray) -> np.ndarray:
    """A glaze from deep blue to teal, wavy bands, a ring of dots, a darker inside, fine speckle."""
    theta = np.arctan2(points[:, 0], points[:, 2])
    y = points[:, 1]
    color = mix(np.array([0.1, 0.16, 0.42]), [0.2, 0.62, 0.6], smoothstep(0.0, 1.2, y))
    wave = y + 0.025 * np.sin(6 * theta)
    for height in (0.22, 0.78, 1.1):
        color = mix(color, [0.93, 0.86, 0.66], 1.0 - smoothstep(0.012, 0.02, np.abs(wave - height)))
    dots = np.hypot((np.mod(theta * 12 / (2 * np.pi), 1.0) - 0.5) * 0.3, y - 0.5)
    color = mix(color, [0.85, 0.3, 0.15], 1.0 - smoothstep(0.025, 0.032, dots))
    outer = np.interp(y, catmull_rom(VASE_OUTLINE, 200)[:, 1], catmull_rom(VASE_OUTLINE, 200)[:, 0])
    inside = smoothstep(-0.6 * VASE_WALL, -0.9 * VASE_WALL, np.hypot(points[:, 0], points[:, 2]) - outer)
    color = color * (1.0 - 0.45 * inside)[:, None]
    return color * (0.9 + 0.2 * fbm(points, 24.0, seed=71, octaves=2))[:, None]


# ---------------------------------------------------------------------- writing


def write_textured_obj(folder: Path, name: str, positions: np.ndarray, faces: np.ndarray, uvs: np.ndarray,
                       uv_faces: np.ndarray, texture: np.ndarray) -> None:
    from texgen.export import atomic_write, mtl_bytes, obj_bytes, png_bytes
    from texgen.mesh import Mesh

    mesh = Mesh.from_arrays(positions, faces, uvs, uv_faces, texture, name=name)
    atomic_write(folder / f"{name}.obj", obj_bytes(mesh, f"{name}.mtl", name))
    atomic_write(folder / f"{name}.mtl", mtl_bytes(name, f"{name}_albedo.png"))
    atomic_write(folder / f"{name}_albedo.png", png_bytes(texture))


def main(folder: Path = Path(__file__).resolve().parent) -> list[Path]:
    """Write every asset into ``folder``; returns the files written."""
    import trimesh

    from texgen.export import atomic_write, glb_bytes, png_bytes
    from texgen.mesh import Mesh

    folder.mkdir(parents=True, exist_ok=True)
    positions, faces, uvs, uv_faces, side = crate_geometry()
    write_textured_obj(folder, "crate", positions, faces, uvs, uv_faces,
                       paint(positions, faces, uvs, uv_faces, crate_shader(side)))

    positions, faces = torus_knot()
    knot = trimesh.Trimesh(np.round(positions, 6), faces, process=False)
    atomic_write(folder / "knot.ply", trimesh.exchange.ply.export_ply(knot, encoding="binary"))

    positions, faces, uvs, uv_faces = creature_geometry()
    write_textured_obj(folder, "creature", positions, faces, uvs, uv_faces,
                       paint(positions, faces, uvs, uv_faces, creature_shader))

    positions, faces, uvs, uv_faces = vase_geometry()
    texture = paint(positions, faces, uvs, uv_faces, vase_shader)
    vase = Mesh.from_arrays(positions, faces, uvs, uv_faces, texture, name="vase")
    atomic_write(folder / "vase.glb", glb_bytes(vase, png_bytes(texture), "vase"))
    names = ["crate.obj", "crate.mtl", "crate_albedo.png", "knot.ply", "creature.obj", "creature.mtl",
             "creature_albedo.png", "vase.glb"]
    return [folder / name for name in names]


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")
