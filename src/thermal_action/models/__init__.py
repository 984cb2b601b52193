"""SlowFast action detector: backbone variants, RoIAlign, action head, interaction, builder."""

from thermal_action.models.backbone import SlowFastBackbone, rgb_stem_to_thermal
from thermal_action.models.build import build_model
from thermal_action.models.detector import ActionDetector
from thermal_action.models.feature_bank import FeatureBank, MemoryBatch
from thermal_action.models.head import ActionHead
from thermal_action.models.interaction import InteractionStructure
from thermal_action.models.ops.roi_align import roi_align
from thermal_action.models.variants import VARIANTS

__all__ = [
    "VARIANTS",
    "ActionDetector",
    "ActionHead",
    "FeatureBank",
    "InteractionStructure",
    "MemoryBatch",
    "SlowFastBackbone",
    "build_model",
    "rgb_stem_to_thermal",
    "roi_align",
]
