"""Fine-tuning the catalog embedder: every product is a class, every epoch shows it in new photos.

Instance discrimination: the net (pretrained EfficientNet-Lite0 -> 256-d linear embedding ->
CosFace head over the products: cosine logits at scale 30, the true product's cosine lowered by a
0.35 margin in training) learns to put a product's distorted photos (new
background, rotation, crop, scale, colour, blur, JPEG; ``distort.training_transform``) near its
own direction and away from the other products'. After training only the embedding is served:
the catalog images are embedded into the index (``model.VisionModel``), so products added later
are recognised without retraining.

Lightning runs the loop: fp32 (for EfficientNet's depthwise convolutions 1.5x faster on these
CPUs than bf16 autocast; ``bf16=1`` switches), checkpoints (``checkpoint_dir``), and a callback
that reports progress to the job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from services.vision.core.distort import training_transform
from services.vision.core.nets import Classifier

TRAIN_DEFAULTS: dict[str, float] = {
    "epochs": 6, "views": 4, "image_size": 64, "embed_dim": 256, "lr": 0.05, "backbone_lr_ratio": 0.3,
    "batch": 64, "margin": 0.35, "scale": 30.0, "crop_min": 0.75, "bf16": 0,
}
LIMITS: dict[str, tuple[float, float]] = {
    "epochs": (1, 100), "views": (1, 64), "image_size": (32, 320), "embed_dim": (16, 1280), "lr": (1e-5, 1.0),
    "backbone_lr_ratio": (0.0, 1.0), "batch": (4, 512), "margin": (0.0, 0.8), "scale": (1.0, 64.0),
    "crop_min": (0.1, 1.0), "bf16": (0, 1),
}


def training_params(raw: dict[str, str]) -> dict[str, float]:
    """Defaults overridden by a Train request's ``params``; ValueError names a bad one."""
    params = dict(TRAIN_DEFAULTS)
    for name, value in raw.items():
        if name not in LIMITS:
            raise ValueError(f"unknown param {name!r}; known: {', '.join(sorted(LIMITS))}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"param {name}={value!r} is not a number") from None
        low, high = LIMITS[name]
        if not low <= number <= high:
            raise ValueError(f"param {name}={value} is outside {low:g}..{high:g}")
        params[name] = number
    return params


class CatalogViews(Dataset):
    """``views`` random photos of each product per epoch; the label is the product's position."""

    def __init__(self, images: Sequence[Image.Image], views: int, image_size: int, crop_min: float = 0.75) -> None:
        self.images = [im.convert("RGB") for im in images]
        self.views = views
        self.transform = training_transform(image_size, crop_min)

    def __len__(self) -> int:
        return len(self.images) * self.views

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        label = i % len(self.images)
        return self.transform(self.images[label]), label


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


def finetune(images: Sequence[Image.Image], params: dict[str, float], *,
             report: Callable[[float, str], None] | None = None, checkpoint_dir: str | None = None,
             seed: int = 0) -> EmbeddingNet:
    """Train the embedder on ``images`` (one per product, in label order); returns it in eval mode."""
    if len(images) < 2:
        raise ValueError("fine-tuning needs at least 2 products with images")
    pl.seed_everything(seed, workers=True, verbose=False)
    epochs, views, size, batch = (int(params[k]) for k in ("epochs", "views", "image_size", "batch"))
    data = CatalogViews(images, views, size, params["crop_min"])
    loader = DataLoader(data, batch_size=min(batch, len(data)), shuffle=True, drop_last=len(data) > batch)
    net = Classifier(backbone="efficientnet_lite0", classes=len(images), in_channels=3,
                     embed_dim=int(params["embed_dim"]), cosine=True, lr=params["lr"], epochs=epochs,
                     steps_per_epoch=len(loader), backbone_lr_ratio=params["backbone_lr_ratio"],
                     label_smoothing=0.1, weight_decay=1e-4, margin=params["margin"], scale=params["scale"])
    callbacks: list[pl.Callback] = []
    if report is not None:
        callbacks.append(ProgressCallback(report))
    if checkpoint_dir:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs,
                         precision="bf16-mixed" if params["bf16"] else "32-true", logger=False,
                         enable_checkpointing=bool(checkpoint_dir), enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, num_sanity_val_steps=0)
    trainer.fit(net, loader)
    return EmbeddingNet(net.backbone, net.embedding)


class EmbeddingNet(torch.nn.Module):
    """What is served after fine-tuning: backbone and embedding, without the per-product head (the
    index replaces it) and without Lightning's trainer state."""

    def __init__(self, backbone: torch.nn.Module, embedding: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding = embedding
        self.eval()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.embedding(self.backbone(x)).float(), dim=1)
