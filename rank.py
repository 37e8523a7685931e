"""Rank architectures with a trained ranker: `python rank.py ranker=<train.py run dir> archs=space k=20`
(see conf/rank.yaml)."""

import hydra
from omegaconf import DictConfig

from nasrank import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="rank")
@cli.guard
def main(cfg: DictConfig) -> None:
    from nasrank.ranking import rank  # here, not at the top: a bad override is refused before torch is imported
    table, path = rank(cfg)
    print(table.head(cfg.k).to_string(index=False))
    print(f"saved: {path} ({len(table)} architectures)")


if __name__ == "__main__":
    cli.run(main, "rank")
