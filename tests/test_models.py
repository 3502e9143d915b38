"""Detector registry: every model honours the contract; names, cfgs, errors, HF label mapping and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fakescope.errors import FakescopeError
from fakescope.models import create_detector, get_detector_cfg, list_detectors
from fakescope.models._registry import count_parameters, describe_detector
from fakescope.models.families.hf import LabelHead, map_hf_labels

# Forward + backward at the declared input size costs 7-23 s of CPU each (30-80 s wall on 2 busy cores) for these;
# they run with -m slow, and their shape contract is still checked in the default run on the meta device (no
# compute). The default run keeps two timm models (efficientnet_b0, vit_small) and the small ones.
HEAVY = {"xception", "efficientnet_b4", "vit_base", "resnet50"}
EXPECTED = {
    "cnn",
    "resnet50",
    "xception",
    "meso4",
    "mesoinception4",
    "vit_small",
    "vit_base",
    "efficientnet_b0",
    "efficientnet_b4",
}


def _params(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


def test_registry_has_the_study_models_and_stronger_ones() -> None:
    assert set(list_detectors()) >= EXPECTED
    assert list_detectors("meso*") == ["meso4", "mesoinception4"]
    assert set(list_detectors(pretrained=True)) >= {
        "meso4.mesonet_df",
        "meso4.mesonet_f2f",
        "mesoinception4.mesonet_df",
        "mesoinception4.mesonet_f2f",
    }


@pytest.mark.parametrize("name", _params(list_detectors()))
def test_forward_backward_at_declared_input_size(name: str) -> None:
    torch.manual_seed(0)
    model = create_detector(name)
    size = model.cfg.input_size
    x = torch.rand(2, 3, size, size)
    model.train()
    logits = model(x)
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features)
    assert model.forward_head(feats).shape == (2,)
    model.eval()
    p = model.predict_proba(x)
    assert p.shape == (2,) and bool(((p >= 0) & (p <= 1)).all())


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_models_shape_contract_on_meta_device(name: str) -> None:
    with torch.device("meta"):
        model = create_detector(name)
        size = model.cfg.input_size
        feats = model.forward_features(torch.rand(2, 3, size, size))
        logits = model.forward_head(feats)
    assert feats.shape == (2, model.num_features)
    assert logits.shape == (2,)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("cnn", 224),
        ("resnet50", 224),
        ("xception", 299),
        ("meso4", 256),
        ("mesoinception4", 256),
        ("vit_small", 224),
        ("vit_base", 224),
        ("efficientnet_b0", 224),
        ("efficientnet_b4", 380),
    ],
)
def test_declared_input_sizes(name: str, size: int) -> None:
    assert get_detector_cfg(name).input_size == size


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if get_detector_cfg(n).extra.get("timm_name")))
def test_timm_families_normalise_like_their_imagenet_weights(name: str) -> None:
    import timm

    cfg = get_detector_cfg(name)
    pretrained_cfg = timm.get_pretrained_cfg(cfg.extra["timm_name"])
    assert pretrained_cfg is not None, cfg.extra["timm_name"]
    assert cfg.mean == pytest.approx(pretrained_cfg.mean)
    assert cfg.std == pytest.approx(pretrained_cfg.std)


def test_normalisation_happens_inside_the_model() -> None:
    torch.manual_seed(0)
    model = create_detector("cnn").eval()  # ImageNet mean/std from its cfg
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), model.backbone((x - mean) / std), atol=1e-5)
        assert not torch.allclose(model.forward_features(x), model.backbone(x), atol=1e-3)


def test_parameter_counts_match_a_real_build() -> None:
    assert count_parameters("meso4") == 27977  # the MesoNet paper's count
    assert count_parameters("mesoinception4") == 28615  # the MesoNet paper's count
    real = create_detector("cnn")
    assert count_parameters("cnn") == sum(p.numel() for p in real.parameters())


def test_describe_detector_reports_cfg_and_pretrained_names() -> None:
    info = describe_detector("mesoinception4.mesonet_df")
    assert info["params"] == 28615
    assert info["input_size"] == 256
    assert info["sha256"] and info["url"].startswith("https://github.com/DariusAf/MesoNet/")
    assert "mesoinception4.mesonet_f2f" in info["pretrained"]
    assert "Deepfake" in info["trained_on"]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown detector") as exc:
        create_detector("resnet5O")
    msg = str(exc.value)
    for name in EXPECTED:
        assert name in msg
    assert "did you mean resnet50" in msg
    with pytest.raises(ValueError, match=r"meso4\.mesonet_df"):
        create_detector("meso4.nonexistent")
    with pytest.raises(KeyError, match="efficientnet_b0"):
        get_detector_cfg("nope")


def test_imagenet_weights_refused_for_a_family_without_them() -> None:
    with pytest.raises(ValueError, match=r"meso4\.mesonet_df"):
        create_detector("meso4", pretrained=True)


def test_freeze_backbone_trains_only_the_head() -> None:
    model = create_detector("resnet50", freeze_backbone=True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_none_kwargs_do_not_override_model_defaults() -> None:
    model = create_detector("meso4", drop_rate=None)
    assert model.head[0].p == 0.5


# ------------------------------------------------------------------------------------------- Hugging Face


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "Real", 1: "Fake"}, {0: 0, 1: 1}),
        ({"0": "fake", "1": "real"}, {0: 1, 1: 0}),
        ({0: "Deepfake", 1: "Realism"}, {0: 1, 1: 0}),
        ({0: "original", 1: "manipulated"}, {0: 0, 1: 1}),
        ({0: "pristine", 1: "FAKE_FACE", 2: "deepfake-gan"}, {0: 0, 1: 1, 2: 1}),
    ],
)
def test_hf_label_mapping(id2label: dict, expected: dict) -> None:
    assert map_hf_labels(id2label) == expected


@pytest.mark.parametrize(
    "id2label",
    [
        {0: "LABEL_0", 1: "LABEL_1"},  # says nothing
        {0: "real_or_fake", 1: "fake"},  # both words
        {0: "fake", 1: "deepfake"},  # no real class
    ],
)
def test_hf_label_mapping_refuses_ambiguous_labels(id2label: dict) -> None:
    with pytest.raises(ValueError, match="label"):
        map_hf_labels(id2label)


def test_hf_label_mapping_overrides() -> None:
    assert map_hf_labels({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": "real", "LABEL_1": "fake"}) == {0: 0, 1: 1}


def test_hf_label_head_matches_softmax_probability() -> None:
    logits = torch.randn(5, 3)
    head = LabelHead({0: 0, 1: 1, 2: 1})
    p_fake = torch.sigmoid(head(logits).reshape(-1))
    assert torch.allclose(p_fake, torch.softmax(logits, 1)[:, 1:].sum(1), atol=1e-6)


def test_hf_without_transformers_gives_an_install_hint() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("transformers is installed")
    with pytest.raises(FakescopeError, match=r"fakescope\[hf\]"):
        create_detector("hf:Wvolf/ViT_Deepfake_Detection")


def test_hf_adapter_with_a_stand_in_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter's plumbing (processor contract, label head) against a minimal stand-in for ``transformers``."""
    import types

    class Config:
        id2label = {0: "Fake", 1: "Real"}  # noqa: RUF012
        image_size = 64

    class Processor:
        size = {"height": 64, "width": 64}  # noqa: RUF012
        image_mean = (0.5, 0.5, 0.5)
        image_std = (0.5, 0.5, 0.5)

    class Output:
        def __init__(self, logits: torch.Tensor) -> None:
            self.logits = logits

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, pixel_values: torch.Tensor) -> Output:
            return Output(self.fc(pixel_values.mean((2, 3))))

    def loader(obj: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(from_pretrained=lambda model_id, **kw: obj)

    fake = types.ModuleType("transformers")
    fake.AutoConfig = loader(Config())
    fake.AutoImageProcessor = loader(Processor())
    fake.AutoModelForImageClassification = loader(Classifier())
    monkeypatch.setitem(__import__("sys").modules, "transformers", fake)

    model = create_detector("hf:someone/deepfake-vit")
    assert model.cfg.arch == "hf:someone/deepfake-vit" and model.cfg.input_size == 64
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        class_logits = model.backbone.model(pixel_values=(x - 0.5) / 0.5).logits
        assert torch.allclose(model.predict_proba(x), torch.softmax(class_logits, 1)[:, 0], atol=1e-6)


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_models_list_and_info() -> None:
    from fakescope.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in EXPECTED:
        assert name in res.output
    assert "27,977" in res.output  # meso4's parameter count

    res = runner.invoke(app, ["models", "list", "--pretrained"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "mesoinception4.mesonet_df" in res.output
    assert "panel.dfdc_f2f (default)" in res.output and "mesonet_ensemble" in res.output

    res = runner.invoke(app, ["models", "info", "panel.dfdc_f2f", "--json"])
    assert res.exit_code == 0, res.output
    panel = json.loads(res.output)
    assert panel["combine"] == "any" and panel["members"] == ["mobilenet_v2.dfdc", "mesoinception4.mesonet_f2f"]
    assert (panel["input_size"], panel["crop_margin"]) == (256, 0.3)  # what load_model builds (test_bundled)

    res = runner.invoke(app, ["models", "info", "meso4.mesonet_df", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["input_size"] == 256 and info["tag"] == "mesonet_df" and info["params"] == 27977

    res = runner.invoke(app, ["models", "info", "nope"])
    assert res.exit_code == 2
    assert "meso4" in res.output
