"""Configuration of the example ResNet: the block type, depth and stem of a timm ResNet."""

from typing import Any, List, Optional

from hubguard import PretrainedConfig

BLOCK_TYPES = ("basic", "bottleneck")
STEM_TYPES = ("", "deep", "deep-tiered")


class ResnetConfig(PretrainedConfig):
    """Settings of :class:`~modeling_resnet.ResnetModel`, validated on construction.

    Args:
        block_type: ``"basic"`` (two 3x3 convolutions) or ``"bottleneck"`` (1x1, 3x3, 1x1).
        layers: the number of blocks in each of the four stages.
        num_classes: the size of the classification head; 0 builds no head.
        input_channels: the channels of the input images.
        cardinality: the number of convolution groups in a bottleneck (ResNeXt when above 1).
        base_width: the channels per group in a bottleneck.
        stem_width: the channels of the stem's first convolutions (deep stems only).
        stem_type: ``""`` (one 7x7 convolution), ``"deep"`` (three 3x3 convolutions) or
            ``"deep-tiered"`` (three 3x3 convolutions with growing widths).
        avg_down: downsample shortcuts with average pooling before the 1x1 convolution.

    Raises:
        ValueError: a value is out of range or of the wrong type.
    """

    model_type = "custom-resnet"

    def __init__(
        self,
        block_type: str = "bottleneck",
        layers: Optional[List[int]] = None,
        num_classes: int = 1000,
        input_channels: int = 3,
        cardinality: int = 1,
        base_width: int = 64,
        stem_width: int = 64,
        stem_type: str = "",
        avg_down: bool = False,
        **kwargs: Any,
    ) -> None:
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        if stem_type not in STEM_TYPES:
            raise ValueError(f"stem_type must be one of {STEM_TYPES}, got {stem_type!r}")
        layers = [3, 4, 6, 3] if layers is None else list(layers)
        if len(layers) != 4 or not all(_is_int(count) and count >= 1 for count in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        _check_int("num_classes", num_classes, minimum=0)
        _check_int("input_channels", input_channels, minimum=1)
        _check_int("cardinality", cardinality, minimum=1)
        _check_int("base_width", base_width, minimum=1)
        _check_int("stem_width", stem_width, minimum=1)
        if not isinstance(avg_down, bool):
            raise ValueError(f"avg_down must be true or false, got {avg_down!r}")

        self.block_type = block_type
        self.layers = layers
        self.num_classes = num_classes
        self.input_channels = input_channels
        self.cardinality = cardinality
        self.base_width = base_width
        self.stem_width = stem_width
        self.stem_type = stem_type
        self.avg_down = avg_down
        super().__init__(**kwargs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
