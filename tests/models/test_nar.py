"""NAR: Noam schedule, tier memory, padding/permutation behaviour of the token transformer, the
loss, training on a real subset (loss falls, tier embeddings move and land in checkpoints),
checkpoint round trip, and debug runs through Hydra with both encoders."""

from __future__ import annotations

from functools import partial

import hydra
import lightning as L
import pytest
import torch
from conftest import compose_train, needs_nb201
from lightning.pytorch.loggers import CSVLogger

from nasrank.cli import user_error
from nasrank.core import ConfigError
from nasrank.models.encoders import GINEncoder
from nasrank.models.losses import ListMLE, PairwiseLogistic
from nasrank.models.nar import NARModule, NoamWarmup, TierRankLoss
from nasrank.models.tiers import TierDecoder, TierMemory
from nasrank.models.transformer import TokenTransformer
from nasrank.training import check_checkpoint, train

SMALL = ["model.encoder.hidden=16", "model.encoder.layers=1", "model.tier_hidden=16", "model.score_hidden=16"]


# -- schedule, loss ----------------------------------------------------------------------------
def test_noam_matches_nar_formula_up_to_its_peak() -> None:
    w, lr_mul, d = 30, 0.07, 128
    sched = NoamWarmup(w)

    def nar_rate(s: int) -> float:  # the published schedule at NAR's step s >= 1
        return lr_mul * d ** -0.5 * min(s ** -0.5, s * w ** -1.5)

    peak = nar_rate(w)
    for step in (0, 5, w - 1, w, 100, 1000):
        assert sched(step) * peak == pytest.approx(nar_rate(step + 1), rel=1e-9)
    assert sched(w - 1) == pytest.approx(1.0) and sched(0) == pytest.approx(1 / w)
    flat = NoamWarmup(w, decay_power=0.0)
    assert flat(w // 2) == pytest.approx(sched(w // 2)) and flat(10 * w) == 1.0
    with pytest.raises(ConfigError, match="warmup_steps=0"):
        NoamWarmup(0)
    with pytest.raises(ConfigError, match="decay_power=-1"):
        NoamWarmup(5, decay_power=-1)


def test_tier_rank_loss_weights_and_parts() -> None:
    logits, tiers = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    scores, target = torch.tensor([0.3, -0.2, 0.1]), torch.tensor([1.0, 3.0, 2.0])
    ce = torch.nn.functional.cross_entropy(logits, tiers)
    rank = PairwiseLogistic()(scores, target)
    total, parts = TierRankLoss(PairwiseLogistic(), rank_weight=9.0)(logits, tiers, scores, target)
    assert total == pytest.approx(float(ce + 9 * rank)) and parts["tier_ce"] == pytest.approx(float(ce))
    only_rank, _ = TierRankLoss(ListMLE(), rank_weight=2.0, tier_weight=0.0)(logits, tiers, scores, target)
    assert only_rank == pytest.approx(2 * float(ListMLE()(scores, target)))
    with pytest.raises(ConfigError, match="rank_weight=0"):
        TierRankLoss(PairwiseLogistic(), rank_weight=0.0, tier_weight=0.0)


# -- tier memory and decoder -----------------------------------------------------------------
def test_tier_memory_means_skip_padding_and_survive_reset() -> None:
    mem = TierMemory(num_tiers=3, length=2, dim=1)
    h = torch.tensor([[[1.0], [10.0]], [[3.0], [99.0]], [[5.0], [7.0]]])
    pad = torch.tensor([[False, False], [False, True], [False, False]])
    mem.update(h, pad, torch.tensor([0, 0, 2]))
    assert mem.emb[0, :, 0].tolist() == [2.0, 10.0]  # the padded 99 is not averaged in
    assert mem.emb[1].abs().sum() == 0 and mem.emb[2, :, 0].tolist() == [5.0, 7.0]
    mem.reset()  # new epoch: means restart, embeddings stay until a tier is seen again
    mem.update(torch.full((1, 2, 1), 4.0), torch.zeros(1, 2, dtype=torch.bool), torch.tensor([2]))
    assert mem.emb[0, :, 0].tolist() == [2.0, 10.0] and mem.emb[2, :, 0].tolist() == [4.0, 4.0]
    with pytest.raises(ConfigError, match="tier labels must be in 0..2"):
        mem.update(h, pad, torch.tensor([0, 3, 1]))


@pytest.mark.parametrize("query", ["tiers", "arch"])
def test_decoder_depends_on_tiers_and_ignores_padding(query: str) -> None:
    torch.manual_seed(0)
    dec = TierDecoder(dim=8, num_tiers=3, layers=1, heads=2, dropout=0.0, query=query).eval()
    tiers, h = torch.randn(3, 4, 8), torch.randn(5, 4, 8)
    pad = torch.tensor([[False, False, True, False]] * 5)
    out = dec(tiers, h, pad)
    assert out.shape == (5, 4, 8)
    assert not torch.allclose(out, dec(tiers + 1.0, h, pad), atol=1e-4)
    garbage = h.clone()
    garbage[:, 2] = 1e3  # padding content must not reach the real positions
    real = ~pad[0]
    assert torch.allclose(dec(tiers, garbage, pad)[:, real], out[:, real], atol=1e-5)


# -- token transformer: padding and permutations ------------------------------------------------
def tokens_with_padding(b: int = 4, m: int = 7, f: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    pad = torch.zeros(b, m, dtype=torch.bool)
    pad[:, 3:6] = True  # NB101 layout: padding between the last op and the output node
    pad[0, 3:6] = False
    return torch.randn(b, m, f) * (~pad)[..., None], pad


@pytest.mark.parametrize("positional", ["sinusoid", "learned", "none"])
def test_transformer_output_ignores_padding_tokens(positional: str) -> None:
    enc = TokenTransformer(token_dim=11, max_nodes=7, hidden=16, layers=2, dropout=0.0, positional=positional).eval()
    tokens, pad = tokens_with_padding()
    out = enc.encode(tokens, pad)
    shuffled = tokens.clone()
    shuffled[1:, 3:6] = torch.randn(3, 3, 11) * 100  # any content, in any order, on padding slots
    assert out.shape == (4, 7, 16) and out[pad].abs().sum() == 0
    assert torch.allclose(enc.encode(shuffled, pad), out, atol=1e-5)


def test_transformer_without_positions_is_permutation_equivariant() -> None:
    enc = TokenTransformer(token_dim=11, max_nodes=7, hidden=16, layers=2, dropout=0.0, positional="none").eval()
    tokens, pad = tokens_with_padding()
    perm = torch.tensor([6, 4, 0, 5, 2, 1, 3])
    assert torch.allclose(enc.encode(tokens[:, perm], pad[:, perm]), enc.encode(tokens, pad)[:, perm], atol=1e-5)
    with_pos = TokenTransformer(token_dim=11, max_nodes=7, hidden=16, layers=2, dropout=0.0).eval()
    # with positions, node order is information (adjacency refers to it): a real permutation must matter
    assert not torch.allclose(with_pos.encode(tokens[:, perm], pad[:, perm]), with_pos.encode(tokens, pad)[:, perm], atol=1e-3)


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="positional='rope'; allowed: sinusoid, learned, none"):
        TokenTransformer(token_dim=3, max_nodes=4, positional="rope")
    with pytest.raises(ConfigError, match="hidden=10 must be divisible by heads=4"):
        TokenTransformer(token_dim=3, max_nodes=4, hidden=10)

    def nar(**kwargs) -> NARModule:
        return NARModule(encoder=partial(TokenTransformer, hidden=8, layers=1), data_info=dict(token_dim=5, max_nodes=3, num_tiers=2, in_dim=4),
                         loss=PairwiseLogistic(), optimizer=partial(torch.optim.AdamW), **kwargs)

    assert len(nar(members=2).nets) == 2
    mixed = nar(members=2, extra_encoders={"gin": partial(GINEncoder, hidden=8)}, tensors=["nar"])
    assert [type(net.encoder) for net in mixed.nets] == [TokenTransformer] * 2 + [GINEncoder] * 2
    with pytest.raises(ConfigError, match="members=0; allowed: ≥ 1"):
        nar(members=0)
    with pytest.raises(ConfigError, match="readout='max'; allowed: flatten, mean"):
        nar(readout="max")
    with pytest.raises(ConfigError, match="decoder query='both'; allowed: tiers, arch"):
        nar(decoder_query="both")


# -- real data: training, tier embeddings, checkpoints ---------------------------------------------
@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory):
    """AnalogNAS (PyPI, no shared files): 64 training cells, NAR model built from model=nar."""
    out = tmp_path_factory.mktemp("nar")
    cfg = compose_train(["model=nar", "data=analognas_cifar10", "data.n_train=64", "data.n_val=32",
                         "data.batch_size=32", "model.optimizer.lr=3e-3",
                         "model.scheduler.lr_lambda.warmup_steps=4", *SMALL], out)
    L.seed_everything(0)
    dm = hydra.utils.instantiate(cfg.data)
    return cfg, dm


def fresh_model(cfg, dm) -> NARModule:
    return hydra.utils.instantiate(cfg.model, data_info=dm.data_info())


def full_train_loss(model: NARModule, dm) -> float:
    batch = dm.collate(dm.split.train)
    net = model.nets[0].eval()
    with torch.no_grad():
        h, pad = net.encode(batch)
        loss, _ = model.loss_fn(net.tier_logits(h, pad), batch.tier, net.score(h, pad), batch.y_norm)
    return float(loss)


def test_training_lowers_loss_and_moves_tier_embeddings_into_checkpoints(subset, tmp_path) -> None:
    cfg, dm = subset
    model = fresh_model(cfg, dm)
    before = full_train_loss(model, dm)
    assert model.nets[0].tiers.emb.abs().sum() == 0
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    assert full_train_loss(model, dm) < 0.9 * before
    assert {"train/loss", "train/tier_acc", "train/tier_ce", "train/rank_loss", "val/ktau"} <= set(trainer.callback_metrics)
    emb = model.nets[0].tiers.emb
    assert (emb.abs().sum((1, 2)) > 0).all(), "every tier of the training split has an embedding"
    assert not torch.allclose(emb[0], emb[-1]), "best and worst tiers differ"
    path = tmp_path / "nar.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(state["nets.0.tiers.emb"], emb)
    assert check_checkpoint(str(path), fresh_model(cfg, dm)).keys() == model.state_dict().keys()


def test_state_dict_round_trip_gives_identical_predictions(subset, tmp_path) -> None:
    cfg, dm = subset
    model = hydra.utils.instantiate(cfg.model, data_info=dm.data_info(), members=2)
    batch = dm.collate(dm.split.train)
    model.train()
    model.training_loss(batch)  # fills the tier embeddings
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    clone = hydra.utils.instantiate(cfg.model, data_info=dm.data_info(), members=2)
    clone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    test = dm.collate(dm.split.test[:300])
    model.eval(), clone.eval()
    with torch.no_grad():
        a, b = model.outputs(test), clone.outputs(test)
    assert all(net.tiers.emb.abs().sum() > 0 for net in model.nets)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert a.tier_probs.shape == (300, 5) and torch.allclose(a.tier_probs.sum(1), torch.ones(300))
    assert torch.equal(a.top_tier_prob, a.tier_probs[:, 0]) and a.embedding.shape[0] == 300
    with torch.no_grad():  # the ensemble averages its members; plain scoring agrees with `outputs`
        members = torch.stack([net.score(*net.encode(test)) for net in model.nets])
        assert torch.allclose(a.scores, members.mean(0)) and torch.allclose(a.scores, model(test))
        assert not torch.allclose(members[0], members[1])


def test_token_encoder_needs_nar_tokens(subset) -> None:
    cfg, dm = subset
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg.model, data_info=dm.data_info(), tensors=[])
    assert isinstance(user_error(info.value), ConfigError) and "model.tensors must include 'nar'" in str(user_error(info.value))


# -- Hydra: debug runs with both encoders, experiments ---------------------------------------------------
class TextLogger(CSVLogger):
    """CSV logger that also records `log_text` calls (as the W&B logger offers)."""

    texts: list = []

    def log_text(self, key: str, columns: list, data: list) -> None:
        self.texts.append((key, columns, data))


#: encoder -> seeded test-KTau floor of the run below; seed 0 reaches 0.46 (transformer), 0.59 (gin), 0.59 (mixed),
#: while the same runs untrained score 0.21, 0.29 and 0.09
NAR_FLOORS = {"transformer": 0.35, "gin": 0.4, "mixed": 0.35}


@pytest.mark.parametrize("encoder", ["transformer", "gin", "mixed"])
def test_debug_fast_train_with_each_encoder(encoder: str, tmp_path, one_thread) -> None:
    overrides = ["debug=fast", "model=nar", "data=analognas_cifar10", "data.eval_batch_size=512", *SMALL, "data.n_train=256", "trainer.max_epochs=8"]
    overrides += {"transformer": [], "gin": ["model/encoder=gin"], "mixed": ["+model/encoder@model.extra_encoders.gin=gin"]}[encoder]
    cfg = compose_train(overrides, tmp_path)
    assert list(cfg.data.tensors) == ([] if encoder == "gin" else ["nar"])  # no NAR tokens built for a GIN alone
    metrics, objs = train(cfg)
    model = objs["model"]
    assert metrics["test/ktau"] > NAR_FLOORS[encoder], metrics["test/ktau"]
    assert 0 <= metrics["test/tier_acc"] <= 1 and "val/ktau" in metrics
    cm = model.test_tier_confusion
    assert cm.shape == (5, 5) and int(cm.sum()) == 2 * 512  # limit_test_batches=2 of 512 cells
    assert cm.diagonal().sum() / cm.sum() == pytest.approx(metrics["test/tier_acc"])
    length = 1 if encoder == "gin" else dm_max_nodes(objs)
    assert model.nets[0].tiers.emb.shape[:2] == (5, length)
    families = [type(net.encoder).__name__ for net in model.nets]
    assert families == {"transformer": ["TokenTransformer"], "gin": ["GINEncoder"], "mixed": ["TokenTransformer", "GINEncoder"]}[encoder]
    if encoder == "mixed":  # each family keeps tier embeddings of its own shape
        assert model.nets[1].tiers.emb.shape[:2] == (5, 1) and model.nets[1].tiers.emb.abs().sum() > 0


def dm_max_nodes(objs: dict) -> int:
    return objs["datamodule"].data_info()["max_nodes"]


def test_confusion_matrix_goes_to_text_loggers(subset, tmp_path) -> None:
    cfg, dm = subset
    model = fresh_model(cfg, dm)
    TextLogger.texts = []
    trainer = L.Trainer(max_epochs=1, logger=TextLogger(str(tmp_path)), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_test_batches=1)
    trainer.test(model, datamodule=dm, verbose=False)
    ((key, columns, rows),) = TextLogger.texts
    assert key == "text/test_tier_confusion" and len(columns) == 6 and len(rows) == 5
    assert sum(sum(r[1:]) for r in rows) == min(len(dm.split.test), dm.hparams.eval_batch_size)


def test_paper_config_composes_and_builds(subset, tmp_path) -> None:
    cfg = compose_train(["model=nar_paper"], tmp_path)
    m = cfg.model
    assert (m.encoder.hidden, m.encoder.layers, m.encoder.heads, m.encoder.ffn_mult, m.encoder.dropout) == (256, 6, 4, 4, 0.1)
    assert (m.decoder_layers, m.decoder_query, m.rank_weight, m.scheduler.lr_lambda.warmup_steps) == (6, "tiers", 9.0, 50)
    # NB201's paper network at toy width on the AnalogNAS cells (NB201), so the test stays fast: one step runs
    small = compose_train(["model=nar_paper_nb201", "data=analognas_cifar10", "data.n_train=64", "model.decoder_layers=1", *SMALL], tmp_path)
    dm = hydra.utils.instantiate(small.data)
    model = hydra.utils.instantiate(small.model, data_info=dm.data_info())
    loss, parts = model.training_loss(dm.collate(dm.split.train))
    loss.backward()
    assert loss > 0 and set(parts) == {"tier_ce", "rank_loss", "tier_acc"}
    assert model.nets[0].decoder.query == "tiers" and model.nets[0].tiers.emb.abs().sum() > 0


@pytest.mark.parametrize("loss", ["pairwise_hinge", "listnet", "listmle", "mse"])
def test_any_loss_is_nars_ranking_term(loss, subset, tmp_path) -> None:
    """`loss=<name>` swaps NAR's ranking term and keeps the tier cross-entropy and λ."""
    cfg = compose_train(["model=nar", f"loss={loss}", "model.rank_weight=2.0", *SMALL], tmp_path)
    model = hydra.utils.instantiate(cfg.model, data_info=subset[1].data_info())
    assert type(model.loss_fn.rank).__name__.lower() == loss.replace("_", "") and model.loss_fn.rank_weight == 2.0
    loss_value, parts = model.training_loss(subset[1].collate(subset[1].split.train))
    loss_value.backward()
    assert torch.isfinite(loss_value) and parts["tier_ce"] > 0


@pytest.mark.parametrize("experiment, data, n_train, epochs, lam", [
    ("nar_nb101", "nb101_cifar10", 4236, 35, 9.0),
    ("nar_nb201", "nb201_cifar10", 1000, 55, 1.0),
    ("nar_nb201", "nb201_cifar100", 1000, 55, 1.0),
    ("nar_nb201", "nb201_imagenet16", 1000, 55, 1.0),
])
def test_experiment_recipes_compose(experiment, data, n_train, epochs, lam, tmp_path) -> None:
    cfg = compose_train([f"experiment={experiment}", f"data={data}"], tmp_path)
    target = compose_train([f"data={data}"], tmp_path).data.target
    assert cfg.model._target_ == "nasrank.models.nar.NARModule" and cfg.data.target == target
    steps_per_epoch = -(-cfg.data.n_train // cfg.data.batch_size)
    # NB201 recipes express the paper's epochs as an equal step budget (max_epochs=-1)
    recipe_epochs = cfg.trainer.max_epochs if cfg.trainer.max_epochs > 0 else cfg.trainer.max_steps // steps_per_epoch
    assert (cfg.data.n_train, recipe_epochs, cfg.model.rank_weight) == (n_train, epochs, lam)


@needs_nb201
def test_nb201_experiment_debug_run(tmp_path, one_thread) -> None:
    cfg = compose_train(["experiment=nar_nb201", "data=nb201_cifar100", "debug=fast", "data.eval_batch_size=256", *SMALL,
                         "data.n_train=256", "trainer.max_epochs=8"], tmp_path)
    metrics, objs = train(cfg)
    # seed 0 reaches 0.40; the same run untrained scores 0.22
    assert objs["datamodule"].hparams.target == "cifar100/test_acc" and metrics["test/ktau"] > 0.3, metrics["test/ktau"]
