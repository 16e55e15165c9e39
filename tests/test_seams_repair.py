"""Seam smoothing (texgen.seam_blend) and `texgen inpaint-seams` (texgen.seams_repair).

Test assets are made here: an xatlas-unwrapped icosphere (several UV islands) textured with a
smooth function of the 3D position, so the reference texture is continuous across its seams;
then the same texture with a different colour offset on every island, and with holes punched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from texgen.errors import ConfigError, ImageError, MeshError
from texgen.fill import pad_islands
from texgen.mesh import Mesh, apply_unwrap, load_mesh
from texgen.seam_blend import seam_band, smooth_seams
from texgen.seams import edge_pairs, edge_turns, seam_stats
from texgen.seams_repair import SeamSettings, inpaint_seams
from texgen.texels import TexelMap

SIZE = 512
BAND = 8
MAGENTA = (255, 0, 255)
SPOT = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes" / "spot" / "spot_triangulated.obj"
DUCK = SPOT.parents[1] / "duck" / "Duck.glb"


@dataclass
class Asset:
    mesh: Mesh
    texels: TexelMap
    reference: np.ndarray  # (N, N, 3) uint8, continuous across seams
    offset: np.ndarray  # (N, N, 3) uint8, a colour offset per UV island
    holes: np.ndarray  # (M,) bool texels punched out of ``punched``
    punched: np.ndarray  # (N, N, 4) uint8: ``offset`` with transparent and magenta holes


def smooth_colour(position: np.ndarray) -> np.ndarray:
    """(M, 3) colours in [0.15, 0.85], smooth in 3D."""
    x, y, z = position.T
    return 0.5 + 0.35 * np.stack([np.sin(2.5 * x + 1), np.sin(2 * y + 2 * z), np.cos(3 * z - x)], axis=1)


def make_asset(mesh: Mesh, size: int, seed: int = 1) -> Asset:
    texels = TexelMap.build(mesh, size)
    colour = smooth_colour(texels.position.numpy())

    def bake(values: np.ndarray) -> np.ndarray:
        image = pad_islands(texels.to_image(np.clip(values, 0, 1)), texels.valid, 8)
        return np.round(image * 255).astype(np.uint8)

    rng = np.random.default_rng(seed)
    offset = rng.uniform(-0.12, 0.12, (int(mesh.face_islands.max()) + 1, 3))
    offset_texture = bake(colour + offset[texels.island.numpy()])
    position = texels.position.numpy()
    centres = position[rng.choice(texels.count, 4, replace=False)]
    near = np.linalg.norm(position[:, None] - centres[None], axis=2) < 0.15  # (M, 4)
    punched = np.dstack([offset_texture, np.full((size, size), 255, np.uint8)])
    flat = punched.reshape(-1, 4)
    index = texels.index.numpy()
    flat[index[near[:, :2].any(axis=1)], 3] = 0  # transparent holes
    flat[index[near[:, 2:].any(axis=1)], :3] = MAGENTA  # holes of the "unpainted" colour
    return Asset(mesh, texels, bake(colour), offset_texture, near.any(axis=1), punched)


@pytest.fixture(scope="module")
def sphere() -> Asset:
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("xatlas")
    shape = trimesh.creation.icosphere(subdivisions=3)
    mesh = apply_unwrap(Mesh.from_arrays(shape.vertices, shape.faces, name="sphere"), "auto")
    assert mesh.face_islands.max() >= 3, "the test needs several UV islands"
    return make_asset(mesh, SIZE)


def allowed_pixels(asset: Asset, region: np.ndarray, band: int = BAND) -> np.ndarray:
    """(N, N) bool: the region's texels, and gutter pixels (outside the islands) near them."""
    inside = asset.texels.to_image(region.astype(np.float32)) > 0
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    return inside | (~asset.texels.valid & (distance <= band + 1))


def assert_only_region_changed(asset: Asset, before: np.ndarray, after: np.ndarray, region: np.ndarray) -> None:
    """Valid texels outside ``region`` and far gutter pixels are bit-for-bit the same."""
    keep = ~allowed_pixels(asset, region)
    assert np.array_equal(after[keep], before[keep])
    outside = ~region
    assert np.array_equal(asset.texels.gather(after)[outside], asset.texels.gather(before)[outside])


# ---------------------------------------------------------------------- smooth_seams


def test_smooth_seams_closes_island_offsets_and_leaves_the_rest(sphere: Asset) -> None:
    texels, mesh = sphere.texels, sphere.mesh
    color = torch.from_numpy(texels.gather(sphere.offset).astype(np.float32) / 255)
    band = seam_band(mesh, texels, BAND)
    out = smooth_seams(mesh, texels, color, BAND, band=band)
    outside = torch.from_numpy(~band.mask)
    assert torch.equal(out[outside], color[outside])
    assert band.mask.any() and not band.mask.all()
    assert out.min() >= color.min() and out.max() <= color.max()
    repaired = sphere.offset.copy()
    repaired.reshape(-1, 3)[texels.index.numpy()] = np.round(out.numpy() * 255).astype(np.uint8)
    reference = seam_stats(mesh, sphere.reference).seam_delta_e
    assert seam_stats(mesh, sphere.offset).seam_delta_e > reference + 10
    assert seam_stats(mesh, repaired).seam_delta_e <= reference + 1.0


def test_smooth_seams_confidence_keeps_trusted_jumps(sphere: Asset) -> None:
    texels, mesh = sphere.texels, sphere.mesh
    color = torch.from_numpy(texels.gather(sphere.offset).astype(np.float32) / 255)
    pairs = edge_pairs(mesh)
    trusted = smooth_seams(mesh, texels, color, BAND, confidence=torch.ones(texels.count), pairs=pairs)
    assert torch.equal(trusted, color)
    # one island trusted, the others guessed: the trusted island does not move
    island = texels.island.numpy() == 0
    confidence = torch.from_numpy(island.astype(np.float32))
    out = smooth_seams(mesh, texels, color, BAND, confidence=confidence, pairs=pairs)
    assert torch.equal(out[torch.from_numpy(island)], color[torch.from_numpy(island)])
    assert not torch.equal(out, color)


def test_smooth_seams_with_no_seam_selected_changes_nothing(sphere: Asset) -> None:
    texels, mesh = sphere.texels, sphere.mesh
    color = torch.rand(texels.count, 3)
    pairs = edge_pairs(mesh)
    assert torch.equal(smooth_seams(mesh, texels, color, select=np.zeros(len(pairs.seam), bool), pairs=pairs), color)


# ---------------------------------------------------------------------- inpaint_seams, classical


def test_classical_brings_seams_within_1_delta_e_of_reference(sphere: Asset) -> None:
    result = inpaint_seams(sphere.mesh, sphere.offset, threshold="all", band=BAND)
    report = result.report
    reference = seam_stats(sphere.mesh, sphere.reference).seam_delta_e
    assert report["seam_delta_e_before"] > reference + 10
    assert report["seam_delta_e_after"] <= reference + 1.0
    assert report["seam_ratio_after"] < report["seam_ratio_before"]
    assert report["holes_before"] == report["holes_after"] == 0
    band = seam_band(sphere.mesh, sphere.texels, BAND)
    assert_only_region_changed(sphere, sphere.offset, result.texture, band.mask)
    assert result.texture.shape == sphere.offset.shape and result.texture.dtype == np.uint8
    assert result.preview.ndim == 3 and result.preview.shape[2] == 3
    json.dumps(report)


def test_classical_fills_every_hole_and_keeps_the_rest(sphere: Asset) -> None:
    result = inpaint_seams(sphere.mesh, sphere.punched, threshold="all", hole_color="#ff00ff", band=BAND)
    report = result.report
    assert report["holes_before"] == int(sphere.holes.sum()) > 0
    assert report["holes_after"] == 0
    filled = sphere.texels.gather(result.texture)[sphere.holes].astype(int)
    assert not (np.abs(filled - np.array(MAGENTA)) <= 2).all(axis=1).any()
    # holes take their surroundings' colours: close to the (offset) texture they were punched from
    expected = sphere.texels.gather(sphere.offset)[sphere.holes].astype(int)
    assert np.abs(filled - expected).mean() < 20
    band = seam_band(sphere.mesh, sphere.texels, BAND)
    assert_only_region_changed(sphere, sphere.punched[:, :, :3], result.texture, band.mask | sphere.holes)


def test_threshold_leaves_seams_below_it_alone(sphere: Asset) -> None:
    result = inpaint_seams(sphere.mesh, sphere.reference, threshold=1000.0)
    assert result.report["seams_repaired"] == 0
    assert np.array_equal(result.texture, sphere.reference)


def test_settings_come_from_a_mapping_and_name_bad_keys() -> None:
    from texgen.errors import ConfigError
    from texgen.settings import settings_from_mapping

    settings = settings_from_mapping(SeamSettings, {"threshold": "all", "band": 4, "hole_color": "255,0,255"})
    assert settings.threshold == "all" and settings.band == 4
    assert settings_from_mapping(SeamSettings, {"threshold": "3.5"}).threshold == 3.5
    for values, key in (({"method": "magic"}, "method"), ({"threshold": "most"}, "threshold"),
                        ({"hole_color": "pink"}, "hole_color"), ({"band": 0}, "band"), ({"bands": 3}, "bands")):
        with pytest.raises(ConfigError, match=key):
            settings_from_mapping(SeamSettings, values)


def test_cancel_stops_before_any_work(sphere: Asset) -> None:
    from texgen.errors import Cancelled
    from texgen.progress import CancelToken

    token = CancelToken()
    token.cancel()
    events = []
    with pytest.raises(Cancelled):
        inpaint_seams(sphere.mesh, sphere.offset, cancel=token, progress=events.append)
    assert [event.stage for event in events] == ["load"]


# ---------------------------------------------------------------------- bad input


def test_mesh_without_uvs_is_a_mesh_error() -> None:
    mesh = Mesh.from_arrays(np.eye(3), np.array([[0, 1, 2]]), name="flat")
    with pytest.raises(MeshError, match="no UV map"):
        inpaint_seams(mesh, np.zeros((16, 16, 3), np.uint8))


def test_a_file_that_is_not_an_image_is_an_image_error(sphere: Asset, tmp_path: Path) -> None:
    fake = tmp_path / "texture.png"
    fake.write_bytes(b"this is not a PNG")
    with pytest.raises(ImageError, match="not an image"):
        inpaint_seams(sphere.mesh, fake)
    with pytest.raises(ImageError, match="not found"):
        inpaint_seams(sphere.mesh, tmp_path / "missing.png")
    with pytest.raises(ImageError, match="shape"):
        inpaint_seams(sphere.mesh, np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ImageError, match="no base-colour texture"):
        inpaint_seams(sphere.mesh)


def test_a_mismatched_texture_size_is_resampled_with_a_warning(sphere: Asset) -> None:
    wide = cv2.resize(sphere.offset, (SIZE // 2, SIZE // 4), interpolation=cv2.INTER_AREA)
    with pytest.warns(UserWarning, match="resampled it to 256x256"):
        result = inpaint_seams(sphere.mesh, wide, threshold="all")
    assert result.texture.shape == (SIZE // 2, SIZE // 2, 3)
    assert any("resampled" in note for note in result.report["notes"])
    with pytest.warns(UserWarning, match="resampled it to 128x128"):
        assert inpaint_seams(sphere.mesh, sphere.offset, texture_size=128).texture.shape == (128, 128, 3)


# ---------------------------------------------------------------------- diffusion, CLI, a real mesh


def test_diffusion_runs_end_to_end_with_a_tiny_model(sphere: Asset, tiny_model_dir: Callable[..., Path]) -> None:
    from texgen.diffusion.loading import load_generator, release
    from texgen.settings import LoadOptions

    small = make_asset(sphere.mesh, 256)
    model, options = str(tiny_model_dir("sd15-controlnet", inpaint=True)), LoadOptions(vae_slicing=True)
    result = inpaint_seams(small.mesh, small.punched, method="diffusion", model=model, device="cpu",
                           load_options=options, threshold="all", hole_color="#ff00ff", view_size=64, steps=2,
                           views=2, band=6)
    classical = inpaint_seams(small.mesh, small.punched, generator=load_generator(model, device="cpu", options=options),
                              threshold="all", band=6).report  # a server passes its model to every job
    assert classical["method"] == "classical" and classical["generator"] is None and "loading" not in classical
    assert release(model, device="cpu", options=options)  # it was loaded, and cached, with these options
    report = result.report
    assert report["loading"] == options.to_dict() and (report["device"], report["dtype"]) == ("cpu", "float32")
    assert report["method"] == "diffusion" and len(report["views"]) == 2
    assert sum(view["texels"] for view in report["views"]) > 0
    assert report["holes_after"] == 0
    band = seam_band(small.mesh, small.texels, 6)
    assert_only_region_changed(small, small.punched[:, :, :3], result.texture, band.mask | small.holes)


def test_cli_writes_the_four_outputs(sphere: Asset, tmp_path: Path) -> None:
    from texgen.cli import main
    from texgen.export import mtl_bytes, obj_bytes, png_bytes

    (tmp_path / "ball.obj").write_bytes(obj_bytes(sphere.mesh, "ball.mtl", "ball"))
    (tmp_path / "ball.mtl").write_bytes(mtl_bytes("ball", "ball.png"))
    (tmp_path / "ball.png").write_bytes(png_bytes(sphere.reference))
    (tmp_path / "punched.png").write_bytes(png_bytes(sphere.punched))
    out = tmp_path / "out"
    args = ["inpaint-seams", str(tmp_path / "ball.obj"), "--texture", str(tmp_path / "punched.png"),
            "--threshold", "all", "--band", str(BAND), "--out", str(out)]
    assert main(args) == 0
    for name in ("ball_albedo.png", "ball.glb", "ball_report.json", "ball_preview.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "ball_report.json").read_text())
    assert report["holes_before"] > 0 and report["holes_after"] == 0
    assert report["seam_ratio_after"] < report["seam_ratio_before"]
    assert main(args) == 2  # refuses to overwrite
    assert main(args + ["--overwrite"]) == 0
    # without --texture, the mesh's own base-colour map (loaded through the MTL) is repaired
    assert main(["inpaint-seams", str(tmp_path / "ball.obj"), "--out", str(tmp_path / "own")]) == 0


@pytest.mark.skipif(not SPOT.is_file(), reason="shared eval mesh spot is absent")
def test_classical_on_spot_with_island_offsets() -> None:
    mesh = load_mesh(SPOT)
    asset = make_asset(mesh, 512, seed=2)
    # the offsets are made up, and the colour underneath is smooth across every edge: repair the hard ones too
    result = inpaint_seams(mesh, asset.offset, threshold="all", band=BAND, hard_edge_deg=180)
    reference = seam_stats(mesh, asset.reference).seam_delta_e
    assert result.report["seam_delta_e_before"] > reference + 10
    assert result.report["seam_delta_e_after"] <= reference + 1.0
    assert_only_region_changed(asset, asset.offset, result.texture, seam_band(mesh, asset.texels, BAND).mask)
    default = inpaint_seams(mesh, asset.offset, threshold="all", band=BAND).report  # spot's ears and horns
    assert default["seams_on_hard_edges"] > 0
    assert default["seams_repaired"] + default["seams_on_hard_edges"] == default["seam_edges"]


# ---------------------------------------------------------------------- hard edges


def hinge(angle_deg: float, normals: np.ndarray | None = None) -> Mesh:
    """Two triangles folded by ``angle_deg`` along their shared edge (x from 0 to 1), each with its own UVs."""
    fold = np.radians(angle_deg)
    positions = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -np.cos(fold), np.sin(fold)]])
    uvs = np.array([[0.1, 0.5], [0.4, 0.5], [0.25, 0.9], [0.6, 0.5], [0.9, 0.5], [0.75, 0.1]])
    mesh = Mesh.from_arrays(positions, np.array([[0, 1, 2], [1, 0, 3]]), uvs, np.array([[0, 1, 2], [4, 3, 5]]))
    if normals is not None:
        mesh.normals, mesh.normal_faces = normals, np.array([[0, 1, 2], [3, 4, 5]])
    return mesh


def test_edge_turns_reads_the_faces_and_the_files_normals() -> None:
    for angle in (0.0, 20.0, 90.0, 150.0):
        mesh = hinge(angle)
        pairs = edge_pairs(mesh)
        assert pairs.seam.tolist() == [True]
        assert edge_turns(mesh, pairs) == pytest.approx([angle], abs=1e-3)
    up = [0.0, 0.0, 1.0]
    tilted = [0.0, np.sin(np.radians(40)), np.cos(np.radians(40))]
    smooth, split = np.array([up] * 6), np.array([up] * 3 + [tilted] * 3)
    assert edge_turns(hinge(0.0, smooth), edge_pairs(hinge(0.0))) == pytest.approx([0.0], abs=1e-3)
    assert edge_turns(hinge(0.0, split), edge_pairs(hinge(0.0))) == pytest.approx([40.0], abs=1e-3)  # a hard edge
    assert edge_turns(hinge(90.0, smooth), edge_pairs(hinge(90.0))) == pytest.approx([90.0], abs=1e-3)  # a crease


def test_a_bump_beside_a_seam_is_no_hard_edge() -> None:
    """A scan's noise folds single faces; each side's normal is the fan of faces around the edge's ends."""
    steps = np.linspace(0.0, 1.0, 9)
    positions = np.array([[x, y, 0.0] for y in steps for x in steps])
    positions[4 * 9 + 3, 2] = 0.12  # a bump one column left of the seam at x = 0.5
    faces, uv_faces, uvs, uv_ids = [], [], [], {}
    for j in range(8):
        for i in range(8):
            side = int(i >= 4)  # two UV islands, the left and the right half
            corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            for x, y in corners:
                uv_ids.setdefault((x, y, side), len(uvs))
                if len(uvs) < len(uv_ids):
                    uvs.append([0.05 + 0.1 * side + 0.8 * steps[x], 0.05 + 0.9 * steps[y]])
            for tri in ((0, 1, 2), (0, 2, 3)):
                faces.append([corners[k][1] * 9 + corners[k][0] for k in tri])
                uv_faces.append([uv_ids[(*corners[k], side)] for k in tri])
    mesh = Mesh.from_arrays(positions, np.array(faces), np.array(uvs), np.array(uv_faces))
    pairs = edge_pairs(mesh)
    normals = mesh.face_normals
    single = np.degrees(np.arccos((normals[pairs.face_a] * normals[pairs.face_b]).sum(axis=1).clip(-1, 1)))
    assert pairs.seam.sum() == 8 and single[pairs.seam].max() > 40  # two faces alone make a crease
    assert edge_turns(mesh, pairs)[pairs.seam].max() < 30  # their fans do not


def test_seams_on_hard_edges_are_left_alone_unless_asked() -> None:
    mesh = load_mesh(Path(__file__).resolve().parents[1] / "assets" / "crate.obj")  # a box: every seam on a corner
    asset = make_asset(mesh, 256)
    kept = inpaint_seams(mesh, asset.offset, threshold="all", band=BAND)
    report = kept.report
    assert report["seams_repaired"] == 0 and report["seams_on_hard_edges"] == report["seam_edges"] > 0
    assert np.array_equal(kept.texture, asset.offset)

    def green(preview: np.ndarray) -> int:  # the preview's lines along the seams left alone
        return int(((preview[..., 0] <= 5) & (preview[..., 1] >= 250) & (preview[..., 2] <= 5)).sum())

    assert green(kept.preview) > 100
    assert any("hard edges alone" in note and "--hard-edge-deg 180" in note for note in report["notes"])
    repaired_all = inpaint_seams(mesh, asset.offset, threshold="all", band=BAND, hard_edge_deg=180)
    repaired = repaired_all.report
    assert repaired["seams_repaired"] == report["seam_edges"] and repaired["seams_on_hard_edges"] == 0
    assert repaired["seam_delta_e_after"] < report["seam_delta_e_after"] and green(repaired_all.preview) == 0
    with pytest.raises(ConfigError, match="hard_edge_deg"):
        inpaint_seams(mesh, asset.offset, hard_edge_deg=0)
    # nothing left to repaint: the diffusion method does not load its model (this one does not exist)
    idle = inpaint_seams(mesh, asset.offset, threshold="all", method="diffusion", model=str(Path("no") / "model"))
    assert np.array_equal(idle.texture, asset.offset) and idle.report["generator"] is None
    assert any("the model was not loaded" in note for note in idle.report["notes"])


@pytest.mark.skipif(not DUCK.is_file(), reason="shared eval mesh Duck is absent")
def test_the_ducks_painted_eye_rims_are_not_smeared(tmp_path: Path, capsys) -> None:
    """The Duck's pupils meet the socket's walls on hard edges, black against yellow by design:
    repairing those seams smeared dark bands across the head."""
    from texgen.cli import main

    mesh = load_mesh(DUCK)
    pairs = edge_pairs(mesh)
    hard = edge_turns(mesh, pairs)[pairs.seam] > 30
    assert main(["inpaint-seams", str(DUCK), "--method", "classical", "--out", str(tmp_path / "kept")]) == 0
    assert "on hard edges left alone" in capsys.readouterr().out
    report = json.loads((tmp_path / "kept" / "Duck_report.json").read_text())
    assert report["seams_on_hard_edges"] == int((hard & (seam_stats(mesh, mesh.texture[:, :, :3], pairs=pairs)
                                                          .per_seam > 2.3)).sum()) > 40
    after = np.asarray(Image.open(tmp_path / "kept" / "Duck_albedo.png").convert("RGB"))
    before, repaired = (seam_stats(mesh, image, pairs=pairs).per_seam for image in (mesh.texture[:, :, :3], after))
    assert np.abs(repaired[hard] - before[hard]).max() < 1.0  # the rims keep their colours
    assert main(["inpaint-seams", str(DUCK), "--method", "classical", "--hard-edge-deg", "180",
                 "--out", str(tmp_path / "all")]) == 0
    assert json.loads((tmp_path / "all" / "Duck_report.json").read_text())["seams_on_hard_edges"] == 0
