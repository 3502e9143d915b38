"""Model families; each module registers its builders on import."""

from fakescope.models.families import meso as meso  # noqa: F401
