"""The trainable classifier (a Lightning module): a backbone of nets.py, an optional embedding layer and a
linear or cosine head. Kept apart from nets.py so that serving, which only runs the backbones, never imports
Lightning (importing it costs seconds of CPU at every start of the vision service)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from services.vision.core.nets import BACKBONES, CosineHead


class Classifier(pl.LightningModule):
    """backbone -> [linear embedding] -> head. ``embed(x)`` is the L2-normalised vector search uses."""

    def __init__(self, backbone: str = "resnet_small", classes: int = 10, in_channels: int = 1,
                 embed_dim: int = 0, cosine: bool = False, pretrained: bool = True, lr: float = 0.1,
                 weight_decay: float = 5e-4, label_smoothing: float = 0.1, epochs: int = 10,
                 steps_per_epoch: int = 100, backbone_lr_ratio: float = 1.0, dropout: float = 0.0,
                 margin: float = 0.0, scale: float = 16.0,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["augment"])
        self.backbone = BACKBONES[backbone](in_channels=in_channels, pretrained=pretrained)
        dim = self.backbone.out_dim
        self.embedding = nn.Linear(dim, embed_dim) if embed_dim else nn.Identity()
        dim = embed_dim or dim
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = CosineHead(dim, classes, scale, margin) if cosine else nn.Linear(dim, classes)
        self.augment = augment

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.backbone(x.contiguous(memory_format=torch.channels_last)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; ``target`` (training only) applies the cosine head's margin to the true class."""
        features = self.dropout(self.features(x))
        return self.head(features, target) if isinstance(self.head, CosineHead) else self.head(features)

    def on_fit_start(self) -> None:
        self.to(memory_format=torch.channels_last)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        logits = self(x, y)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.hparams.label_smoothing)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        backbone = list(self.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if id(p) not in ids]
        groups = [{"params": backbone, "lr": hp.lr * hp.backbone_lr_ratio}, {"params": rest, "lr": hp.lr}]
        optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], epochs=hp.epochs,
            steps_per_epoch=hp.steps_per_epoch, pct_start=0.25)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ProgressCallback(pl.Callback):
    """Reports the fraction of training batches done (and the loss) to ``report``."""

    def __init__(self, report: Callable[[float, str], None]) -> None:
        self.report = report

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        total = max(trainer.num_training_batches * trainer.max_epochs, 1)
        done = trainer.current_epoch * trainer.num_training_batches + batch_idx + 1
        if done % 10 == 0 or done == total:
            loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
            self.report(done / total, f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, loss {loss:.3f}")
