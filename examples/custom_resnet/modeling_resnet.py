"""The example's models: a timm ResNet as a feature extractor and as an image classifier."""

from typing import Dict, Optional

import torch
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from hubguard import PreTrainedModel

from .configuration_resnet import ResnetConfig

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _build_resnet(config: ResnetConfig) -> ResNet:
    return ResNet(
        block=BLOCKS[config.block_type],
        layers=config.layers,
        num_classes=config.num_classes,
        in_chans=config.input_channels,
        cardinality=config.cardinality,
        base_width=config.base_width,
        stem_width=config.stem_width,
        stem_type=config.stem_type,
        avg_down=config.avg_down,
    )


class ResnetModel(PreTrainedModel):
    """The ResNet body: ``forward`` returns the last feature map, shape (batch, channels, h, w)."""

    config_class = ResnetConfig

    def __init__(self, config: ResnetConfig) -> None:
        super().__init__(config)
        self.model = _build_resnet(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixel_values)


class ResnetModelForImageClassification(PreTrainedModel):
    """The ResNet with its classification head.

    ``forward`` returns ``{"logits"}``, plus ``"loss"`` (cross-entropy) when ``labels`` are given.
    """

    config_class = ResnetConfig

    def __init__(self, config: ResnetConfig) -> None:
        super().__init__(config)
        self.model = _build_resnet(config)

    def forward(self, pixel_values: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        logits = self.model(pixel_values)
        if labels is None:
            return {"logits": logits}
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}
