"""ReNAS (Xu et al., CVPR 2021): a relativistic predictor trained to order pairs, not to regress.

The architecture is the feature tensor of `nasrank.encodings.tensor.renas_tensor` (`batch.tensor`:
type matrix plus per-cell FLOPs and params matrices, 19 x 7 x 7 on NAS-Bench-101, 31 x 8 x 8 on
NAS-Bench-201); a small LeNet-style CNN turns it into a score, trained with the pairwise logistic
loss.  Following the authors' released code, every tensor element is standardised with the mean and
std of the training split (sklearn's `StandardScaler` there): the FLOPs/params matrices sit on very
different scales per cell, and without it the CNN mostly sees the type matrix.

The CNN is an encoder like those of `nasrank.models.encoders`, so the same module also runs a GIN
over the PyG graph (`model/encoder=gin`, as `model=renas_gin` does) for ablations.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchmetrics.functional import kendall_rank_corrcoef

from nasrank.core import ConfigError
from nasrank.models.encoders import mlp
from nasrank.models.regressor import RegressorModule


class ReNASCNNEncoder(nn.Module):
    """ReNAS's predictor body: 3x3 conv-BN-ReLU layers over the M x M tensor, then an FC stack.

    Paper/released-code sizes: convs 19 -> 38 -> 128 (padding 1, so the M x M layout is kept),
    FC 128 M^2 -> 120 -> 84, then the module's linear head (84 -> 1).

    Args:
        channels, tensor_side: tensor channels C and side M (filled from the datamodule's `data_info`,
            which has them only when the data attaches a ReNAS tensor: ``tensors=[renas]`` or ``[renas_edge]``).
        max_nodes: the side when `tensor_side` is not given (the node view's side is the space's node count).
        conv_channels: output channels of each conv layer.
        fc: widths of the fully connected layers after flattening (ReLU after each).
        standardize: standardise every tensor element with training-split statistics
            (`fit_inputs`); until fitted, the statistics are the identity (mean 0, std 1).
    """

    reads = ("renas",)  # batch.tensor

    def __init__(self, channels: int | None = None, max_nodes: int = 7, conv_channels: Sequence[int] = (38, 128),
                 fc: Sequence[int] = (120, 84), standardize: bool = True, tensor_side: int | None = None) -> None:
        super().__init__()
        if channels is None:
            raise ConfigError("the ReNAS CNN reads batch.tensor: the data must attach it (model.tensors=[renas])")
        if not conv_channels or not fc or min(*conv_channels, *fc) < 1:
            raise ConfigError(f"conv_channels={list(conv_channels)} and fc={list(fc)} must be non-empty lists of positive widths")
        side = tensor_side or max_nodes
        self.shape = (channels, side, side)
        self.standardize = standardize
        self.register_buffer("in_mean", torch.zeros(self.shape))
        self.register_buffer("in_std", torch.ones(self.shape))
        layers: list[nn.Module] = []
        for c_in, c_out in zip([channels, *conv_channels[:-1]], conv_channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.fc = mlp([conv_channels[-1] * side * side, *fc], final_act=True)
        self.out_dim = fc[-1]

    @torch.no_grad()
    def fit_inputs(self, tensors: Tensor) -> None:
        """Per-element mean and std of the training tensors (N, C, M, M); elements constant over the
        training split keep std 1, so they pass through centred instead of blowing up."""
        if tensors.shape[1:] != self.shape or len(tensors) < 2:
            raise ConfigError(f"fit_inputs needs at least 2 tensors of shape {self.shape}, got {tuple(tensors.shape)}")
        std = tensors.std(0, correction=0)
        self.in_mean.copy_(tensors.mean(0))
        self.in_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, batch) -> Tensor:
        x = getattr(batch, "tensor", None)
        if x is None:
            raise ConfigError("batch has no ReNAS tensor: set model.tensors=[renas] (or data.tensors=[renas])")
        if x.shape[1:] != self.shape:
            raise ConfigError(f"ReNAS tensor has shape {tuple(x.shape[1:])} but the CNN was built for {self.shape}")
        if self.standardize:
            x = (x - self.in_mean) / self.in_std
        return self.fc(self.convs(x).flatten(1))


class RenasModule(RegressorModule):
    """ReNAS predictor: an encoder (the CNN by default) + linear head, ranked by a pairwise loss.

    The body is `RegressorModule`'s (which also fits the CNN's input standardisation); what makes it
    ReNAS is its config: the CNN over the ReNAS tensor (`model/encoder=renas_cnn`) and the pairwise
    logistic loss (`conf/model/renas.yaml`).  The class exists for its name: searches, logs and the
    stored search results tell ReNAS rankers (any encoder) from MSE regressors by it.

    Every epoch logs ``train/ktau``, the Kendall tau (tau-a, as ReNAS's ``right_pair``) of the training
    batches' scores from the training forward pass, averaged over the epoch: the released code keeps the
    epoch where it is highest (`experiment=renas_paper_*` checkpoints on it).

    Args:
        extra_epoch_step: call the optimiser once more at the start of every epoch, re-applying the
            previous epoch's last gradient, as the released ``train()`` does (its ``optimizer.step()``
            before the batch loop; in the first epoch there is no gradient yet, so nothing moves).
        batch_mean_train_ktau: ``train/ktau`` is the unweighted mean of the batches' KTau, as the released
            code averages ``right_pair`` (default: weighted by batch size).
        **kwargs: encoder, data_info, loss, optimizer, ... of `RegressorModule`.
    """

    def __init__(self, *args, extra_epoch_step: bool = False, batch_mean_train_ktau: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.extra_epoch_step = extra_epoch_step
        self.per_batch_means = frozenset({"ktau"}) if batch_mean_train_ktau else frozenset()

    def on_train_epoch_start(self) -> None:
        if self.extra_epoch_step:
            self.optimizers(use_pl_optimizer=False).step()

    def training_loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        scores = self(batch)
        ktau = kendall_rank_corrcoef(scores.detach(), batch.y_norm, variant="a") if len(scores) > 1 else scores.new_zeros(())
        return self.loss_fn(scores, batch.y_norm), {"ktau": ktau}
