"""The hubguard example model: a custom ResNet config and two models wrapping timm's ResNet.

``configuration_resnet.py`` and ``modeling_resnet.py`` are the files a saved model
carries as its remote code; this module only holds helpers for building and registering.
"""

from hubguard import AutoConfig, AutoModel, AutoModelForImageClassification

from .configuration_resnet import ResnetConfig
from .modeling_resnet import ResnetModel, ResnetModelForImageClassification


def resnet50d_config(**kwargs: object) -> ResnetConfig:
    """Return the config of a ResNet-50-D: bottleneck blocks [3, 4, 6, 3], deep 32-wide stem, average-pool shortcuts."""
    settings = {"block_type": "bottleneck", "layers": [3, 4, 6, 3], "stem_width": 32, "stem_type": "deep", "avg_down": True}
    settings.update(kwargs)
    return ResnetConfig(**settings)


def tiny_config(**kwargs: object) -> ResnetConfig:
    """Return a small config for tests: basic blocks [1, 1, 1, 1] and 10 classes."""
    settings = {"block_type": "basic", "layers": [1, 1, 1, 1], "num_classes": 10}
    settings.update(kwargs)
    return ResnetConfig(**settings)


def register_auto_classes() -> None:
    """Register the example with the Auto classes and mark its classes for code export on save."""
    AutoConfig.register(ResnetConfig.model_type, ResnetConfig, exist_ok=True)
    AutoModel.register(ResnetConfig, ResnetModel, exist_ok=True)
    AutoModelForImageClassification.register(ResnetConfig, ResnetModelForImageClassification, exist_ok=True)
    ResnetConfig.register_for_auto_class()
    ResnetModel.register_for_auto_class("AutoModel")
    ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")


__all__ = [
    "ResnetConfig",
    "ResnetModel",
    "ResnetModelForImageClassification",
    "register_auto_classes",
    "resnet50d_config",
    "tiny_config",
]
