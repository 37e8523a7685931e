"""Train and test a ranker: `python train.py model=nar data=nb201_cifar100` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from nasrank import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@cli.guard
def main(cfg: DictConfig) -> float | None:
    from nasrank.training import summary, train  # here, not at the top: a bad override is refused before torch is imported
    metrics, objs = train(cfg)
    if objs["trainer"].is_global_zero:  # under DDP every rank runs this script; one table is enough
        print(summary(metrics))
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    cli.run(main, "train")
