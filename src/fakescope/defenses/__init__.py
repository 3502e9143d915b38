"""Adversarial-input detection: feature squeezing and a learned detector on penultimate features.

>>> from fakescope.defenses import FeatureSqueezing
>>> fs = FeatureSqueezing(model).fit(x_clean)      # threshold at 5 % false positives on clean data
>>> suspicion = fs.score(x)                       # N, higher = more likely attacked
"""

from fakescope.defenses.learned import FeatureDetector as FeatureDetector
from fakescope.defenses.learned import JointModel as JointModel
from fakescope.defenses.squeezing import FeatureSqueezing as FeatureSqueezing
from fakescope.defenses.squeezing import SqueezeEnsemble as SqueezeEnsemble

__all__ = ["FeatureDetector", "FeatureSqueezing", "JointModel", "SqueezeEnsemble"]
