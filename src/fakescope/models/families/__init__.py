"""Model families; each module registers its builders (and pretrained weights) on import."""

from fakescope.models.families import cnn as cnn  # noqa: F401
from fakescope.models.families import efficientnet as efficientnet  # noqa: F401
from fakescope.models.families import meso as meso  # noqa: F401
from fakescope.models.families import resnet as resnet  # noqa: F401
from fakescope.models.families import vit as vit  # noqa: F401
from fakescope.models.families import xception as xception  # noqa: F401
