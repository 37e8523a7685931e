"""Query-budgeted architecture search over a benchmark, optionally guided by a ranker.

`Strategy.run(benchmark, ranker, budget, seed, constraint=None) -> History` for every sampler; `search(cfg)` is the
pipeline behind search.py.
"""

from nasrank.search.constraints import Constraint
from nasrank.search.history import History
from nasrank.search.nar_tier import NarTier
from nasrank.search.strategies import Evolution, PredictorEvolution, RandomSearch, Strategy, TopK

__all__ = ["Constraint", "History", "Strategy", "RandomSearch", "Evolution", "TopK", "NarTier", "PredictorEvolution"]
