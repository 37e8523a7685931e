"""Search a benchmark with a query budget: `python search.py sampler=nar_tier data=nb201_cifar100 budget=150`
(see conf/search.yaml; samplers in conf/sampler/)."""

import hydra
from omegaconf import DictConfig

from nasrank import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
@cli.guard
def main(cfg: DictConfig) -> float:
    from nasrank.search.runner import search  # here, not at the top: a bad override is refused before torch is imported
    history, paths = search(cfg)
    print(history.summary())
    print("saved: " + ", ".join(str(p) for p in paths))
    return float(history.regret[-1])


if __name__ == "__main__":
    cli.run(main, "search")
