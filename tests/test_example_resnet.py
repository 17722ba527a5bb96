"""The custom ResNet example: config validation, both models, save/load and a training step."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _fixtures_models import EXAMPLES, _private_cache_and_registry, example  # noqa: F401

from hubguard import AutoConfig, AutoModel, AutoModelForImageClassification

EXAMPLE_CODE = ("configuration_resnet.py", "modeling_resnet.py")
ALLOWED_IMPORTS = {"hubguard", "timm", "torch", "typing"}

INVALID_SETTINGS = [
    ({"block_type": "wide"}, "block_type must be one of"),
    ({"stem_type": "shallow"}, "stem_type must be one of"),
    ({"layers": [1, 1, 1]}, "layers must be four positive block counts"),
    ({"layers": [1, 0, 1, 1]}, "layers must be four positive block counts"),
    ({"layers": [1, True, 1, 1]}, "layers must be four positive block counts"),
    ({"num_classes": -1}, "num_classes must be an integer >= 0"),
    ({"input_channels": 0}, "input_channels must be an integer >= 1"),
    ({"cardinality": 1.5}, "cardinality must be an integer >= 1"),
    ({"base_width": "64"}, "base_width must be an integer >= 1"),
    ({"stem_width": 0}, "stem_width must be an integer >= 1"),
    ({"avg_down": 1}, "avg_down must be true or false"),
]


@pytest.mark.parametrize(("settings", "message"), INVALID_SETTINGS, ids=[next(iter(s)) + "-" + str(next(iter(s.values()))) for s, _ in INVALID_SETTINGS])
def test_config_rejects_invalid_value(example, settings, message):
    with pytest.raises(ValueError, match=message):
        example.ResnetConfig(**settings)


def test_resnet50d_config_values(example):
    config = example.resnet50d_config()
    assert config.block_type == "bottleneck"
    assert config.layers == [3, 4, 6, 3]
    assert config.stem_width == 32
    assert config.stem_type == "deep"
    assert config.avg_down is True
    assert config.num_classes == 1000


def test_resnet50d_parameter_count(example):
    model = example.ResnetModelForImageClassification(example.resnet50d_config())
    # timm's resnet50d has 25,576,264 parameters with the same settings.
    assert model.num_parameters() == 25_576_264


def test_invalid_value_in_saved_config_surfaces(example, tmp_path):
    example.tiny_config().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="stem_type must be one of"):
        AutoConfig.from_pretrained(tmp_path, stem_type="tall")


def test_feature_model_output_shape(example):
    model = example.ResnetModel(example.tiny_config()).eval()
    features = model(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 512, 2, 2)


def test_classifier_outputs_with_and_without_labels(example):
    model = example.ResnetModelForImageClassification(example.tiny_config()).eval()
    images = torch.randn(2, 3, 32, 32)
    without = model(images)
    assert list(without) == ["logits"]
    assert without["logits"].shape == (2, 10)
    labels = torch.tensor([1, 7])
    with_labels = model(images, labels=labels)
    assert list(with_labels) == ["loss", "logits"]
    expected = torch.nn.functional.cross_entropy(with_labels["logits"], labels)
    assert torch.equal(with_labels["loss"], expected)


def test_plain_training_loop_lowers_loss(example):
    torch.manual_seed(0)
    model = example.ResnetModelForImageClassification(example.tiny_config(num_classes=3))
    images = torch.randn(6, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = model(images, labels=labels)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_auto_round_trip_bit_identical(example, tmp_path):
    torch.manual_seed(0)
    model = example.ResnetModelForImageClassification(example.tiny_config(stem_type="deep-tiered", avg_down=True))
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(loaded) is example.ResnetModelForImageClassification
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(images)["logits"], model(images)["logits"])
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_feature_model_loads_classifier_checkpoint(example, tmp_path):
    torch.manual_seed(0)
    classifier = example.ResnetModelForImageClassification(example.tiny_config()).eval()
    classifier.save_pretrained(tmp_path)
    features = AutoModel.from_pretrained(tmp_path)
    images = torch.randn(1, 3, 32, 32)
    assert type(features) is example.ResnetModel
    assert torch.equal(features(images), classifier.model.forward_features(images))


def test_saved_folder_is_remote_code_repo(example, tmp_path):
    example.ResnetModelForImageClassification(example.tiny_config()).save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.json",
        "configuration_resnet.py",
        "model.safetensors",
        "modeling_resnet.py",
    ]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_resnet.ResnetConfig",
        "AutoModelForImageClassification": "modeling_resnet.ResnetModelForImageClassification",
    }
    assert config["model_type"] == "custom-resnet"
    for name in EXAMPLE_CODE:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "custom_resnet" / name).read_bytes()


@pytest.mark.parametrize("name", EXAMPLE_CODE)
def test_example_code_passes_strict_allowlist(name):
    """The exported files import only hubguard, torch, timm, typing and each other, and run nothing at import."""
    tree = ast.parse((EXAMPLES / "custom_resnet" / name).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {alias.name.split(".")[0] for alias in node.names} <= ALLOWED_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1 or node.module.split(".")[0] in ALLOWED_IMPORTS, node.module
        elif isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant), ast.dump(node)
        else:
            assert isinstance(node, (ast.Assign, ast.ClassDef, ast.FunctionDef)), ast.dump(node)


# Run by a separate interpreter with transformers on its path: load the hubguard-saved
# folder as a transformers remote-code repository, then save a config written by a
# transformers config class for hubguard to read.
TRANSFORMERS_SCRIPT = '''
import sys
import torch
import transformers
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig

folder, expected_path, written = sys.argv[1:4]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
logits = model(torch.ones(1, 3, 32, 32))["logits"]
print("logits equal:", torch.equal(logits, torch.load(expected_path)))
print("config:", type(config).__name__, config.model_type, config.layers)


class TransformersResnetConfig(PretrainedConfig):
    model_type = "custom-resnet"

    def __init__(self, block_type="basic", layers=(1, 1, 1, 1), stem_type="deep", **kwargs):
        self.block_type = block_type
        self.layers = list(layers)
        self.stem_type = stem_type
        super().__init__(**kwargs)


TransformersResnetConfig(architectures=["ResnetModel"], num_classes=7).save_pretrained(written)
print("transformers", transformers.__version__)
'''


@pytest.fixture(scope="session")
def transformers_path(tmp_path_factory) -> Path:
    """Install transformers into a throwaway folder (never into the project's environment)."""
    target = tmp_path_factory.mktemp("transformers-site")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target), "transformers"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if completed.returncode != 0:
        pytest.skip(f"transformers could not be installed into a throwaway folder: {completed.stderr.strip()[-300:]}")
    return target


@pytest.mark.slow
def test_transformers_interoperability(example, tmp_path, transformers_path):
    """transformers loads a hubguard-saved folder as remote code, and hubguard reads a transformers config."""
    torch.manual_seed(0)
    model = example.ResnetModelForImageClassification(example.tiny_config()).eval()
    model.save_pretrained(tmp_path / "saved")
    with torch.no_grad():
        torch.save(model(torch.ones(1, 3, 32, 32))["logits"], tmp_path / "expected.pt")

    environment = {
        **os.environ,
        "PYTHONPATH": str(transformers_path),
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", TRANSFORMERS_SCRIPT, str(tmp_path / "saved"), str(tmp_path / "expected.pt"), str(tmp_path / "written")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    assert "logits equal: True" in lines
    assert "config: ResnetConfig custom-resnet [1, 1, 1, 1]" in lines

    written = json.loads((tmp_path / "written" / "config.json").read_text())
    assert "transformers_version" in written
    config = example.ResnetConfig.from_pretrained(tmp_path / "written")
    assert config.architectures == ["ResnetModel"]
    assert config.num_classes == 7
    assert config.stem_type == "deep"
    assert config.transformers_version == written["transformers_version"]
