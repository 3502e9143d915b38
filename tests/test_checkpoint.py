"""Checkpoints: safetensors round trip with metadata, --weights state dicts, pickle files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fakescope.errors import CheckpointError
from fakescope.models import create_detector, load_checkpoint, read_checkpoint_metadata, save_checkpoint


def _perturbed(name: str, seed: int = 0, **kw: object) -> torch.nn.Module:
    """A model whose weights and BN statistics differ from a fresh build (so a silent no-op load would show)."""
    torch.manual_seed(seed)
    model = create_detector(name, **kw)
    with torch.no_grad():
        for t in model.state_dict().values():  # parameters and persistent buffers (BN statistics)
            if t.is_floating_point():
                t.add_(0.05 * torch.randn_like(t))
    return model.eval()


@pytest.mark.parametrize("name", ["meso4", "mesoinception4", "cnn", "efficientnet_b0"])
def test_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    model = _perturbed(name)
    size = model.cfg.input_size
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
    path = save_checkpoint(model, tmp_path / "best", threshold=0.37, config={"lr": 1e-3, "model": name})
    assert path.suffix == ".safetensors" and path.is_file()
    assert json.loads(path.with_suffix(".json").read_text())["threshold"] == 0.37

    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert meta["model"] == name and meta["threshold"] == 0.37 and meta["config"]["lr"] == 1e-3
    assert meta["cfg"]["input_size"] == size and "fakescope_version" in meta
    assert read_checkpoint_metadata(path) == meta


def test_round_trip_keeps_the_pretrained_cfg_without_downloading(tmp_path: Path, shared_data: Path) -> None:
    model = create_detector("meso4.mesonet_df", weights_dir=shared_data / "weights" / "mesonet").eval()
    path = save_checkpoint(model, tmp_path / "meso.safetensors", model_kwargs={"drop_rate": 0.5})
    loaded, _ = load_checkpoint(path)  # nothing fetched: only the architecture is rebuilt
    assert loaded.cfg.name == "meso4.mesonet_df" and loaded.cfg.sha256 == model.cfg.sha256
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_cfg_from_checkpoint_sets_the_normalisation(tmp_path: Path) -> None:
    model = create_detector("meso4").eval()
    model.set_cfg(model.cfg.with_(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(path)
    assert torch.allclose(loaded.pixel_mean.flatten(), torch.tensor([0.5] * 3))
    assert torch.allclose(loaded.pixel_std.flatten(), torch.tensor([0.25] * 3))
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_weights_file_state_dict(tmp_path: Path) -> None:
    """``--weights FILE``: a plain safetensors state dict loaded into a named architecture."""
    model = _perturbed("meso4", seed=3)
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = create_detector("meso4", checkpoint_path=path).eval()
    x = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="without fakescope metadata"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="do not fit"):
        create_detector("mesoinception4", checkpoint_path=path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pickle_checkpoint_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"evil{suffix}"
    torch.save(create_detector("meso4").state_dict(), path)
    for call in (lambda: load_checkpoint(path), lambda: create_detector("meso4", checkpoint_path=path)):
        with pytest.raises(CheckpointError, match="pickle") as exc:
            call()
        assert str(path) in str(exc.value) and "safetensors" in str(exc.value)


def test_missing_and_garbage_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(junk)


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_pickle(tmp_path):
    """A header length of 0x..80 made the first byte look like a pickle opcode; the file must still load."""
    import torch
    from safetensors.torch import save_file

    from fakescope.models.checkpoint import load_weights_into

    model = torch.nn.Linear(2, 1)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    for pad in range(256):
        path = tmp_path / f"w{pad}.safetensors"
        save_file(state, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:  # pragma: no cover - some padding always lands on 0x80
        raise AssertionError("no padding gave a 0x80 first byte")
    load_weights_into(model, path)
