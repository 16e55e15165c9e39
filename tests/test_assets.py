"""The sample assets: they load, have the promised properties, and match their generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from texgen.mesh import Mesh, load_mesh

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FILES = ["crate.obj", "crate.mtl", "crate_albedo.png", "knot.ply", "creature.obj", "creature.mtl",
         "creature_albedo.png", "vase.glb"]
TEXTURED = ["crate.obj", "creature.obj", "vase.glb"]


def uv_islands(mesh: Mesh) -> int:
    """Number of connected groups of faces that share UV vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = mesh.uv_faces
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(mesh.uvs),) * 2)
    _, labels = connected_components(graph, directed=False)
    return len(np.unique(labels[np.unique(f)]))


def welded_is_closed(mesh: Mesh) -> bool:
    import trimesh

    _, inverse = np.unique(mesh.positions, axis=0, return_inverse=True)
    return trimesh.Trimesh(mesh.positions, inverse.reshape(-1)[mesh.faces], process=False).is_watertight


def test_readme_states_licence_and_every_file() -> None:
    text = (ASSETS / "README.md").read_text()
    assert "CC0" in text
    for name in FILES:
        assert f"`{name}`" in text
    assert sum(path.stat().st_size for path in ASSETS.iterdir()) < 3 * 1024 * 1024


def test_crate_has_six_islands_and_a_detailed_texture() -> None:
    mesh = load_mesh(ASSETS / "crate.obj")
    assert 200 <= len(mesh.faces) <= 5000 and not mesh.notes
    assert uv_islands(mesh) == 6
    assert len(mesh.uvs) > len(mesh.positions)  # UV seams: positions are shared, UVs are not
    assert welded_is_closed(mesh)
    assert mesh.texture.shape == (512, 512, 3)
    assert len(np.unique(mesh.texture.reshape(-1, 3), axis=0)) > 2000  # gradients and grain, not flat colours


def test_knot_has_no_uvs_and_is_unwrapped_on_load() -> None:
    bare = load_mesh(ASSETS / "knot.ply", unwrap="never")
    assert not bare.has_uvs and bare.texture is None
    assert 1000 <= len(bare.faces) < 20000
    assert welded_is_closed(bare)
    unwrapped = load_mesh(ASSETS / "knot.ply")
    assert unwrapped.has_uvs and any("xatlas" in note for note in unwrapped.notes)


def test_creature_is_organic_with_a_fixed_layout() -> None:
    mesh = load_mesh(ASSETS / "creature.obj", unwrap="never")
    assert mesh.has_uvs and uv_islands(mesh) > 1
    assert 1000 <= len(mesh.faces) < 20000
    assert mesh.texture.shape == (512, 512, 3)
    assert mesh.texture.reshape(-1, 3).std(axis=0).min() > 10  # varied, not flat


def test_vase_glb_has_an_embedded_texture_and_a_wrapping_seam() -> None:
    mesh = load_mesh(ASSETS / "vase.glb")
    assert mesh.has_uvs and mesh.texture.shape == (512, 512, 3)
    assert uv_islands(mesh) == 1 and len(mesh.faces) < 20000
    corners = mesh.uvs[mesh.uv_faces].reshape(-1, 2)
    _, position = np.unique(mesh.positions, axis=0, return_inverse=True)
    position = position.reshape(-1)[mesh.faces].reshape(-1)
    spread = np.zeros(position.max() + 1)
    np.maximum.at(spread, position, corners[:, 0])
    low = np.ones_like(spread)
    np.minimum.at(low, position, corners[:, 0])
    assert ((spread - low) > 0.9).sum() >= 30  # the seam column: u near 0 and near 1 at one position
    assert welded_is_closed(mesh)


@pytest.mark.parametrize("name", TEXTURED)
def test_reference_textures_are_continuous_across_seams(name: str) -> None:
    from texgen.seams import seam_stats

    mesh = load_mesh(ASSETS / name)
    stats = seam_stats(mesh, mesh.texture)
    assert stats.seam_edges > 0
    assert stats.seam_ratio < 1.2, stats.as_dict()


def test_interior_edges_beyond_the_cap_are_a_fixed_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense mesh's interior statistic is a mean over a fixed random subset; its seams are all measured."""
    from texgen import seams

    mesh = load_mesh(ASSETS / TEXTURED[0])
    every = seams.seam_stats(mesh, mesh.texture)
    assert every.interior_edges == int((~seams.edge_pairs(mesh).seam).sum())
    monkeypatch.setattr(seams, "INTERIOR_EDGES", every.interior_edges // 4)
    sampled = seams.seam_stats(mesh, mesh.texture)
    assert sampled.as_dict()["interior_edges_measured"] == every.interior_edges // 4
    assert sampled.seam_delta_e == every.seam_delta_e and np.array_equal(sampled.per_seam, every.per_seam)
    assert sampled.interior_delta_e == pytest.approx(every.interior_delta_e, rel=0.1)
    assert seams.seam_stats(mesh, mesh.texture).interior_delta_e == sampled.interior_delta_e  # the same edges


@pytest.mark.slow
def test_assets_match_their_generator(tmp_path: Path) -> None:
    """Regenerate into a temporary folder; geometry, UVs and textures equal the committed files."""
    spec = importlib.util.spec_from_file_location("make_assets", ASSETS / "make_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(tmp_path)
    assert sorted(path.name for path in written) == sorted(FILES)
    hint = "the committed assets differ from assets/make_assets.py's output: rerun it and commit"
    for name in ("crate.obj", "knot.ply", "creature.obj", "vase.glb"):
        fresh, kept = load_mesh(tmp_path / name, unwrap="never"), load_mesh(ASSETS / name, unwrap="never")
        np.testing.assert_array_equal(fresh.faces, kept.faces, err_msg=hint)
        np.testing.assert_allclose(fresh.positions, kept.positions, atol=1e-6, err_msg=hint)
        if kept.has_uvs:
            np.testing.assert_allclose(fresh.uvs[fresh.uv_faces], kept.uvs[kept.uv_faces], atol=1e-6, err_msg=hint)
            assert np.abs(fresh.texture.astype(int) - kept.texture).mean() < 1.0, hint
