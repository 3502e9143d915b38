"""Model families; each module registers its builders (and pretrained weights) on import."""

from fakescope.models.families import cnn as cnn
from fakescope.models.families import efficientnet as efficientnet
from fakescope.models.families import meso as meso
from fakescope.models.families import mobile as mobile
from fakescope.models.families import resnet as resnet
from fakescope.models.families import vit as vit
from fakescope.models.families import xception as xception
