from dinov2.data.datasets.extra import DatasetIndexError, build_index
from dinov2.data.datasets.image_net import ImageNet

__all__ = ["DatasetIndexError", "ImageNet", "build_index"]
