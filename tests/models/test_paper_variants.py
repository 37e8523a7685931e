"""The faithful NAR and ReNAS variants: the NB201 edge-view tensor and NAR's patch tokens on known
cells (values worked out from each cell's definition and the NAR repo's example files), Xavier init,
tier buckets restarted from zero, per-space paper settings, checkpoint monitors and training KTau."""

from __future__ import annotations

import itertools

import hydra
import numpy as np
import pytest
import torch
from conftest import compose_train
from scipy.stats import kendalltau

from nasrank.core import ConfigError
from nasrank.encodings.archs import EncodedArchs, EncodingSpec
from nasrank.encodings.cost import node_cost_scale
from nasrank.encodings.graph import dense_graphs
from nasrank.models.nar import NARModule
from nasrank.models.patch import PatchTransformer
from nasrank.models.renas import RenasModule
from nasrank.models.transformer import sinusoid_table
from nasrank.spaces import get_space
from nasrank.spaces.nb101 import NB101Arch

# The NAR repo's NB201 example cell (data/nasbench201_vertice_example.json)
NB201_CELL = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
# edge i -> j carries its op code: none 0, skip 1, conv1x1 2, conv3x3 3, avgpool 4
NB201_TYPES = [[0, 4, 2, 2], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
# The NAR repo's NB101 example cell (data/nasbench101_vertice_example.json)
NB101_MATRIX = [[0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0],
                [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]]
NB101_OPS = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]
TINY_NAR = dict(decoder_layers=1, decoder_heads=2, tier_hidden=8, score_hidden=8)


def encode(space: str, archs: list, tensors: tuple[str, ...]) -> tuple[EncodedArchs, object]:
    enc = EncodedArchs(dense_graphs(archs, get_space(space)), EncodingSpec(space, tensors))
    return enc, enc.collate(np.arange(len(archs)))


def nb201_edge_expected(side: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and params matrices of one NB201 cell of NB201_CELL: the two conv1x1 (edges 0 -> 2 and
    0 -> 3) have C*C weights + 2C BN parameters and that many FLOPs per output pixel; the pool and the
    skips cost nothing."""
    params = channels * channels + 2 * channels
    p = np.zeros((4, 4))
    p[0, 2] = p[0, 3] = params
    return p * side * side, p


def test_nb201_edge_tensor_of_the_nar_example_cell() -> None:
    _, batch = encode("nb201", [get_space("nb201").from_str(NB201_CELL)], ("renas_edge",))
    t = batch.tensor[0].numpy()
    assert t.shape == (31, 4, 4)
    np.testing.assert_array_equal(t[0], NB201_TYPES)
    # cells 0-4: 16 channels at 32x32, 5-9: 32 at 16x16, 10-14: 64 at 8x8 (CIFAR-10 network)
    for cell, (side, c) in enumerate([(32, 16)] * 5 + [(16, 32)] * 5 + [(8, 64)] * 5):
        flops, params = nb201_edge_expected(side, c)
        np.testing.assert_array_equal(t[1 + 2 * cell], flops)
        np.testing.assert_array_equal(t[2 + 2 * cell], params)
    assert t[1, 0, 2] == 294912 and t[30, 0, 3] == 4224  # the example file's cells0 FLOPs, cells16 params


def test_edge_view_is_refused_outside_nb201_and_next_to_the_node_view() -> None:
    with pytest.raises(ConfigError, match="renas_edge is NB201's edge view"):
        EncodingSpec("nb101", ("renas_edge",))
    with pytest.raises(ConfigError, match="choose one"):
        EncodingSpec("nb201", ("renas", "renas_edge"))


def patch_tokens(space: str, arch, tensors: tuple[str, ...]) -> torch.Tensor:
    """The tokens the patch encoder embeds (its projection's input) for one cell."""
    enc, batch = encode(space, [arch], tensors)
    info = enc.data_info(5)
    model = PatchTransformer(info["channels"], info["tensor_side"], hidden=8, layers=1, heads=2)
    seen = []
    model.proj.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    h, pad = model(batch)
    assert h.shape == (1, info["channels"], 8) and not pad.any()
    return seen[0][0]


def test_patch_tokens_of_a_known_nb201_cell() -> None:
    tokens = patch_tokens("nb201", get_space("nb201").from_str(NB201_CELL), ("renas_edge",))
    assert tokens.shape == (31, 16)  # one token per channel, a 4 x 4 patch each
    np.testing.assert_array_equal(tokens[0].reshape(4, 4), NB201_TYPES)
    flops, params = nb201_edge_expected(8, 64)
    np.testing.assert_array_equal(tokens[29].reshape(4, 4), flops)
    np.testing.assert_array_equal(tokens[30].reshape(4, 4), params)


def test_patch_tokens_of_a_known_nb101_cell() -> None:
    tokens = patch_tokens("nb101", NB101Arch(NB101_MATRIX, NB101_OPS), ("renas",))
    assert tokens.shape == (19, 49)  # 19 patches of 7 x 7
    a = np.array(NB101_MATRIX)
    codes = np.array([1, 3, 4, 3, 3, 2, 5])  # input 1, conv1x1 2, conv3x3 3, maxpool 4, output 5 (of the edge's head)
    np.testing.assert_array_equal(tokens[0].reshape(7, 7), a * codes[None, :])
    # first cell's params per vertex, as in the example file (64-wide vertices, 1x1 projections of the
    # 128-channel input into vertices 1, 4, 5): conv 9*64*64 + BN 128 (+ projection 128*64 + BN 128)
    params = np.array([0, 45312, 0, 36992, 45312, 12544, 0]) / 1e6 / node_cost_scale("nb101", "cifar10").params
    np.testing.assert_allclose(tokens[2].reshape(7, 7), a * params[None, :], rtol=1e-6)


def tiny_nar(space: str = "nb201", **kwargs) -> NARModule:
    enc, _ = encode("nb201", [get_space("nb201").from_str(NB201_CELL)], ("renas_edge",))
    info = {**enc.data_info(5), "space": space}
    encoder = hydra.utils.instantiate({"_target_": "nasrank.models.patch.PatchTransformer", "_partial_": True, "hidden": 16,
                                       "layers": 1, "heads": 2, "nar_code_layers": kwargs.get("nar_code_layers", False)})
    return NARModule(encoder, info, loss=torch.nn.Identity(), optimizer=None, **{**TINY_NAR, "tier_hidden": 16, **kwargs})


def test_xavier_init_reaches_every_weight_but_the_position_table() -> None:
    torch.manual_seed(0)
    default, xavier = tiny_nar(), tiny_nar(xavier_init=True)
    head = lambda m: m.nets[0].tier_head[0].weight  # noqa: E731 - (16, 31 * 16)
    bound = (6 / sum(head(xavier).shape)) ** 0.5
    assert head(xavier).abs().max() <= bound and head(xavier).abs().max() > 0.9 * bound
    assert head(default).abs().max() <= head(default).shape[1] ** -0.5 < 0.5 * bound  # PyTorch's own init
    np.testing.assert_array_equal(xavier.nets[0].encoder.positions.detach(), sinusoid_table(31, 16))


def test_tier_head_bias_and_decoder_positions_follow_the_flags() -> None:
    m = tiny_nar(tier_head_bias=False, decoder_positional=True)
    assert m.nets[0].tier_head[0].bias is None and m.nets[0].decoder.positional
    assert tiny_nar().nets[0].tier_head[0].bias is not None


@pytest.mark.parametrize("zero", [True, False])
def test_tier_buckets_restart_at_every_epoch(zero: bool) -> None:
    m = tiny_nar(reset_tiers_to_zero=zero)
    memory = m.nets[0].tiers
    memory.update(torch.ones(2, 31, 16), torch.zeros(2, 31, dtype=torch.bool), torch.tensor([0, 3]))
    m.on_train_epoch_start()
    assert memory.count.sum() == 0
    assert (memory.emb.abs().sum() == 0) == zero  # the NAR code's new buckets are all zero


def test_paper_settings_are_refused_on_another_space() -> None:
    with pytest.raises(ConfigError, match=r"published nb101 settings but the data is nb201; use experiment=nar_paper_nb201"):
        tiny_nar(space="nb201", paper_space="nb101")
    assert tiny_nar(space="nb201", paper_space="nb201").nets


@pytest.mark.parametrize("recipe, data, monitor, hidden, layers", [
    ("nar_paper_nb101", "nb101_cifar10", "val/tier_acc", 256, 2048), ("nar_paper_nb201", "nb201_cifar100", "val/tier_acc", 128, 256),
    ("renas_paper_nb101", "nb101_cifar10", "train/ktau", None, None), ("renas_paper_nb201", "nb201_cifar10", "train/ktau", None, None)])
def test_paper_recipes_resolve(recipe, data, monitor, hidden, layers, tmp_path) -> None:
    cfg = compose_train([f"experiment={recipe}", f"data={data}"], tmp_path)
    assert cfg.callbacks.model_checkpoint.monitor == monitor and cfg.callbacks.model_checkpoint.mode == "max"
    assert cfg.callbacks.early_stopping is None and cfg.trainer.get("max_steps", -1) == -1
    space = data.split("_")[0]
    assert list(cfg.data.tensors) == (["renas_edge"] if space == "nb201" else ["renas"])
    assert cfg.model.loss.ties  # the released RankLoss / pair_loss average over tied pairs too
    if hidden is not None:
        m = cfg.model
        assert (m.paper_space, m.encoder.hidden, m.tier_hidden, m.xavier_init, m.reset_tiers_to_zero) == (space, hidden, layers, True, True)
        assert (cfg.trainer.max_epochs, cfg.data.batch_size) == ((35, 256) if space == "nb101" else (55, 128))
    else:
        assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.model.optimizer.lr) == (200, 1024, 1e-3)
        assert cfg.callbacks.model_checkpoint.save_on_train_epoch_end
        assert cfg.model.extra_epoch_step and cfg.model.batch_mean_train_ktau


def test_renas_logs_the_training_batches_ktau() -> None:
    class Batch:
        tensor = torch.randn(12, 31, 4, 4)
        y_norm = torch.randn(12)

    encoder = hydra.utils.instantiate({"_target_": "nasrank.models.renas.ReNASCNNEncoder", "_partial_": True})
    model = RenasModule(encoder, {"channels": 31, "tensor_side": 4, "max_nodes": 8}, loss=torch.nn.MSELoss(), optimizer=None)
    _, extra = model.training_loss(Batch)
    scores = model(Batch).detach().numpy()
    assert extra["ktau"] == pytest.approx(kendalltau(scores, Batch.y_norm.numpy()).statistic, abs=1e-6)


def test_nar_code_layers_have_no_attention_bias_nor_inner_dropout() -> None:
    m = tiny_nar(nar_code_layers=True)
    enc_layer = m.nets[0].encoder.layers.layers[0]
    dec_layer = m.nets[0].decoder.layers.layers[0]
    for layer in (enc_layer, dec_layer):
        attns = [layer.self_attn] + ([layer.multihead_attn] if hasattr(layer, "multihead_attn") else [])
        assert all(a.in_proj_bias is None and a.out_proj.bias is None for a in attns)
        assert isinstance(layer.dropout, torch.nn.Identity) and layer.norm1.eps == 1e-6
        assert layer.linear1.bias is not None  # the feed-forward keeps its biases
    assert tiny_nar().nets[0].decoder.layers.layers[0].self_attn.in_proj_bias is not None
    batch = encode("nb201", [get_space("nb201").from_str(NB201_CELL)] * 3, ("renas_edge",))[1]
    batch.tier = torch.tensor([0, 1, 2])
    m.train()
    out = m.outputs(batch)
    assert out.tier_probs.shape == (3, 5) and out.scores.shape == (3,)


@pytest.mark.parametrize("n_train, drop_last, sizes", [(40, True, [16, 16]), (40, False, [16, 16, 8]), (10, True, [10])])
def test_drop_last_drops_the_incomplete_training_batch(n_train, drop_last, sizes, tmp_path) -> None:
    cfg = compose_train(["data=analognas_cifar10", f"data.n_train={n_train}", "data.n_val=8", "data.batch_size=16",
                         f"data.drop_last={str(drop_last).lower()}", "model.tensors=[]"], tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    assert [b.num_graphs for b in dm.train_dataloader()] == sizes


def test_nar_code_units_of_the_nb101_tensor() -> None:
    """The NAR/ReNAS code divides NB101 vertex FLOPs (2 per multiply-add) by 1e7 and params by 1e5."""
    enc = EncodedArchs(dense_graphs([NB101Arch(NB101_MATRIX, NB101_OPS)], get_space("nb101")),
                       EncodingSpec("nb101", ("renas",), cost_units="nar_code"))
    t = enc.collate([0]).tensor[0].numpy()
    # vertex 3 (conv3x3, 64 wide, fed by vertex 2, feeding vertex 5) of the first cell: 9*64*64 weights + BN
    # at 32x32, as in the example file (75497472 FLOPs, 36992 params)
    assert t[1, 2, 3] == pytest.approx(75497472 / 1e7) and t[2, 2, 3] == pytest.approx(36992 / 1e5)
    with pytest.raises(ConfigError, match="cost_units=nar_code is NB101's"):
        EncodingSpec("nb201", ("renas",), cost_units="nar_code")


def test_validation_tier_accuracy_is_that_of_the_tier_probabilities() -> None:
    m = tiny_nar().eval()
    space = get_space("nb201")
    batch = encode("nb201", [space.from_index(i) for i in (0, 77, 901, 4000, 12000, 15000)], ("renas_edge",))[1]
    batch.tier, batch.y, batch.idx = torch.tensor([0, 1, 2, 3, 4, 0]), torch.arange(6.0), torch.arange(6)
    m.nets[0].tiers.update(torch.randn(6, 31, 16), torch.zeros(6, 31, dtype=torch.bool), batch.tier)
    with torch.no_grad():
        m.validation_step(batch, 0)
        expected = (m.outputs(batch).tier_probs.argmax(-1) == batch.tier).float().mean()
    assert m.val_tier_acc.compute() == pytest.approx(float(expected))


def test_sampling_tier_memory_starts_at_zero_and_takes_in_each_batch_by_predicted_tier() -> None:
    """NAR's sampler: fresh zero buckets; each scored batch is matched against the means of the batches
    before it, then joins them under the tiers predicted for it (classify_enc_emb_by_pred)."""
    torch.manual_seed(0)
    m = tiny_nar().eval()
    net = m.nets[0]
    cells = list(itertools.islice(get_space("nb201").enumerate(), 0, 600, 50))
    (_, a), (_, b) = encode("nb201", cells[:6], ("renas_edge",)), encode("nb201", cells[6:], ("renas_edge",))
    net.tiers.emb = torch.randn_like(net.tiers.emb)  # the memory training left
    with torch.no_grad():
        trained = m.outputs(a).tier_probs
        m.follow_predicted_tiers()
        assert not net.tiers.emb.any()
        first = m.outputs(a).tier_probs
        h, pred = net.encode(a)[0], first.argmax(-1)
        expected = torch.zeros_like(net.tiers.emb)
        for t in pred.unique():
            expected[t] = h[pred == t].mean(0)
        torch.testing.assert_close(net.tiers.emb, expected)
        second = m.outputs(b).tier_probs
        net.tiers.following, net.tiers.emb = False, torch.zeros_like(expected)
        torch.testing.assert_close(first, m.outputs(a).tier_probs)  # batch a was matched against the zero memory
        net.tiers.following, net.tiers.emb = False, expected
        torch.testing.assert_close(second, m.outputs(b).tier_probs)  # batch b saw batch a's means
    assert not torch.allclose(first, trained)
