"""DINOv2 data pipeline: datasets, multi-crop augmentation, masking, collation, samplers."""

from .augmentations import DataAugmentationDINO
from .collate import collate_data_and_cast
from .data_loader import SamplerType, make_data_loader
from .loaders import make_dataset
from .masking import MaskingGenerator
from .samplers import EpochSampler, InfiniteSampler, ShardedInfiniteSampler

__all__ = [
    "DataAugmentationDINO",
    "EpochSampler",
    "InfiniteSampler",
    "MaskingGenerator",
    "SamplerType",
    "ShardedInfiniteSampler",
    "collate_data_and_cast",
    "make_data_loader",
    "make_dataset",
]
