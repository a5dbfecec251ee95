"""Backbone export: loads strictly into a fresh timm model, same features; the README snippet works as written."""

import json
import re

import pytest
import safetensors.torch
import timm
import torch
from torch import nn

import mosic.model.export as export_mod
from mosic.model.export import ExportError, export_backbone, load_exported

META = {"mosic_version": "0.1.0", "git_sha": "test", "config": {"model": "test_vit"}, "steps": 3}


def trained_like(name: str, img_size: int, **kwargs) -> nn.Module:
    """A randomly initialised timm model whose weights differ from a fresh one (so a silent no-load would show)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=img_size, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize(("name", "img_size"), [("test_vit", 32), ("vit_small_patch14_reg4_dinov2", 28)])
def test_export_loads_strictly_with_same_features(tmp_path, name, img_size):
    backbone = trained_like(name, img_size, num_classes=0)
    path = export_backbone(backbone, tmp_path / "backbone.safetensors", model_name=name, input_size=img_size,
                           meta=META)  # fmt: skip
    assert path == tmp_path / "backbone.safetensors"
    side = json.loads((tmp_path / "backbone.safetensors.json").read_text())
    assert side["model_name"] == name and side["img_size"] == img_size and side["meta"] == META
    assert side["num_classes"] == 0 and side["num_features"] == backbone.num_features

    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        expected_tokens, expected_pooled = backbone.forward_features(x), backbone(x)
    fresh = timm.create_model(name, pretrained=False, img_size=img_size, num_classes=0)
    fresh.load_state_dict(safetensors.torch.load_file(path), strict=True)
    loaded = load_exported(path)
    assert not loaded.training
    fresh.eval()
    with torch.no_grad():
        for model in (fresh, loaded):
            assert torch.equal(model.forward_features(x), expected_tokens)
            assert torch.equal(model(x), expected_pooled)


def test_classifier_head_is_dropped(tmp_path):
    backbone = trained_like("test_vit", 32, num_classes=10)
    assert isinstance(backbone.get_classifier(), nn.Linear)
    path = export_backbone(backbone, tmp_path / "b.safetensors", model_name="test_vit", input_size=32, meta={})
    assert not any(k.startswith("head.") for k in safetensors.torch.load_file(path))
    loaded = load_exported(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), backbone.forward_head(backbone.forward_features(x), pre_logits=True))


def test_wrapped_backbone(tmp_path):
    class Compiled(nn.Module):  # what torch.compile's OptimizedModule looks like from outside: keys "_orig_mod.*"
        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self._orig_mod = m

    backbone = trained_like("test_vit", 32, num_classes=0)
    path = export_backbone(Compiled(backbone), tmp_path / "b.safetensors", model_name="test_vit", input_size=32,
                           meta={})  # fmt: skip
    assert set(safetensors.torch.load_file(path)) == set(backbone.state_dict())


def test_mismatch_names_keys_and_writes_nothing(tmp_path):
    backbone = trained_like("test_vit", 32, num_classes=0)
    with pytest.raises(
        ExportError, match=r"wrong shapes \(key, backbone, timm\) \[\('pos_embed', \(1, 5, 64\), \(1, 17, 64\)\)\]"
    ):
        export_backbone(backbone, tmp_path / "a.safetensors", model_name="test_vit", input_size=64, meta={})
    with pytest.raises(ExportError, match=r"missing keys \['blocks.0.ls1.gamma'"):
        export_backbone(backbone, tmp_path / "b.safetensors", model_name="vit_small_patch14_reg4_dinov2",
                        input_size=28, meta={})  # fmt: skip
    with pytest.raises(TypeError):
        export_backbone(
            backbone, tmp_path / "c.safetensors", model_name="test_vit", input_size=32, meta={"x": object()}
        )
    assert list(tmp_path.iterdir()) == []


def test_readme_snippet_works_as_written(tmp_path, monkeypatch):
    snippet = re.search(r"```python\n(.*?)```", export_mod.__doc__, re.S).group(1)
    assert "mosic" not in snippet
    backbone = trained_like("test_vit", 32, num_classes=0)
    export_backbone(backbone, tmp_path / "backbone.safetensors", model_name="test_vit", input_size=32, meta=META)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README snippet", "exec"), namespace)
    model = namespace["model"].eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), backbone.forward_features(x))
