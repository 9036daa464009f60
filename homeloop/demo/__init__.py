"""The demo: the whole loop on the embedded default world, and the report sections it writes.

Orchestration and report assembly live here, above the capabilities (which never import it);
one module per part of the report:

- :mod:`~homeloop.demo.run`: :func:`run_demo`, everything below in order, written up as one report;
- :mod:`~homeloop.demo.world`: :data:`DEMO_CONFIG`, :func:`simulate_into`, :func:`held_out_world`
  and the sections on the simulated neighbourhood;
- :mod:`~homeloop.demo.defects`: defects found from implicit feedback;
- :mod:`~homeloop.demo.rewrites`: rewrites mined from rephrase chains and replayed (:func:`rewrite_loop`);
- :mod:`~homeloop.demo.home`: the smart-home experiments (:func:`home_experiments`) and their section;
- :mod:`~homeloop.demo.graceful`: an NLU update through the gate (:func:`demo_update`) and its section;
- :mod:`~homeloop.demo.privacy`: the privacy section from the benchmarks' recorded figures;
- :mod:`~homeloop.demo.nlu`: the assistant's NLU;
- :mod:`~homeloop.demo.recorded_figures`: the benchmark figures shipped with homeloop (``recorded/``).

The assistant's NLU in service, which real commands need too, is :mod:`homeloop.serving`.
"""

from homeloop.demo.run import run_demo
from homeloop.demo.world import DEMO_CONFIG, held_out_world, simulate_into

__all__ = ["DEMO_CONFIG", "held_out_world", "run_demo", "simulate_into"]
