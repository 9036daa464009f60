"""The world simulator: homes, residents, devices and an imperfect assistant with known ground truth.

>>> from homeloop.world import WorldConfig, simulate
>>> result = simulate(WorldConfig(homes=10, days=7, seed=0), nlu=model)   # doctest: +SKIP
>>> result.write(lake, "sim")                                               # doctest: +SKIP
"""

from homeloop.world.config import WorldConfig
from homeloop.world.simulate import Rewriter, SimulationResult, simulate, simulate_to_lake

__all__ = ["Rewriter", "SimulationResult", "WorldConfig", "simulate", "simulate_to_lake"]
