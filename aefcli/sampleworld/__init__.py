"""A synthetic but physically plausible multi-source world for offline runs and tests.

Land cover (landcover.py) with class phenologies and spectra (classes.py,
phenology.py) drives Sentinel-2 L2A-like scenes (optical.py) and Sentinel-1
GRD-like backscatter (radar.py), written as COGs (cog.py) under a static STAC
catalog (stac.py), with labels, a truth map and text descriptions (vectors.py).
"""

from aefcli.sampleworld.config import WorldConfig
from aefcli.sampleworld.world import SampleWorld, write_sample_world

__all__ = ["SampleWorld", "WorldConfig", "write_sample_world"]
