"""Small helpers shared by the library: seeding, atomic writes, verified downloads, run provenance."""

from fakescope.utils.io import atomic_path as atomic_path
from fakescope.utils.io import atomic_write_bytes as atomic_write_bytes
from fakescope.utils.io import atomic_write_text as atomic_write_text
from fakescope.utils.seed import seed_everything as seed_everything

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "seed_everything"]
