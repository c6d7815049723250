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
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from services.vision.core.distort import training_transform

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from services.vision.core.classifier import Classifier

TRAIN_DEFAULTS: dict[str, float] = {
    "epochs": 40, "views": 8, "image_size": 64, "embed_dim": 256, "lr": 0.05, "backbone_lr_ratio": 0.3,
    "batch": 64, "margin": 0.35, "scale": 30.0, "crop_min": 0.75, "bf16": 0, "budget_minutes": 15,
}
LIMITS: dict[str, tuple[float, float]] = {
    "epochs": (1, 200), "views": (1, 64), "image_size": (32, 320), "embed_dim": (16, 1280), "lr": (1e-5, 1.0),
    "backbone_lr_ratio": (0.0, 1.0), "batch": (4, 512), "margin": (0.0, 0.8), "scale": (1.0, 64.0),
    "crop_min": (0.1, 1.0), "bf16": (0, 1), "budget_minutes": (0, 1440),
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


def affordable_epochs(epochs: int, photos_per_epoch: int, seconds_per_photo: float, budget_seconds: float) -> int:
    """The epochs that fit ``budget_seconds`` (0: no budget), at least one, at most ``epochs``."""
    if budget_seconds <= 0 or seconds_per_photo <= 0:
        return epochs
    return max(1, min(epochs, int(budget_seconds / (seconds_per_photo * max(photos_per_epoch, 1)))))


def seconds_per_photo(net: pl.LightningModule, data: Dataset, batch: int, precision: str, steps: int = 3,
                      warmup: int = 2) -> float:
    """What one training photo costs here (making it and a training step on it), timed on a copy of
    ``net`` after ``warmup`` steps (the first ones pay for allocations: one warm-up step overestimated
    the cost by a quarter), so the epochs can be planned to a time budget before the one-cycle
    schedule is fixed."""
    import copy
    import time

    probe = copy.deepcopy(net).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(probe.parameters(), lr=0.0)  # timing only: the copy is thrown away
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16"))
    n = min(batch, len(data))
    took = 0.0
    for step in range(warmup + steps):
        started = time.perf_counter()
        items = [data[int(i)] for i in torch.randint(len(data), (n,))]
        x, y = torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
        with autocast:
            loss = torch.nn.functional.cross_entropy(probe(x, y).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= warmup:
            took += time.perf_counter() - started
    return took / (steps * n)


def finetune(images: Sequence[Image.Image], params: dict[str, float], *,
             report: Callable[[float, str], None] | None = None, checkpoint_dir: str | None = None,
             seed: int = 0, plan: dict[str, float] | None = None) -> EmbeddingNet:
    """Train the embedder on ``images`` (one per product, in label order); returns it in eval mode.

    With ``budget_minutes`` (0: none) the epochs are cut to what fits the budget, measured on this
    machine before training; ``plan`` (if given) receives the epochs run and the cost per photo."""
    if len(images) < 2:
        raise ValueError("fine-tuning needs at least 2 products with images")
    import pytorch_lightning as pl  # here, not at the top: serving never pays for importing Lightning

    from services.vision.core.classifier import Classifier, ProgressCallback

    pl.seed_everything(seed, workers=True, verbose=False)
    epochs, views, size, batch = (int(params[k]) for k in ("epochs", "views", "image_size", "batch"))
    precision = "bf16-mixed" if params["bf16"] else "32-true"
    data = CatalogViews(images, views, size, params["crop_min"])
    loader = DataLoader(data, batch_size=min(batch, len(data)), shuffle=True, drop_last=len(data) > batch)

    def classifier(epochs: int) -> Classifier:
        return Classifier(backbone="efficientnet_lite0", classes=len(images), in_channels=3,
                          embed_dim=int(params["embed_dim"]), cosine=True, lr=params["lr"], epochs=epochs,
                          steps_per_epoch=len(loader), backbone_lr_ratio=params["backbone_lr_ratio"],
                          label_smoothing=0.1, weight_decay=1e-4, margin=params["margin"], scale=params["scale"])

    net = classifier(epochs)
    budget = float(params.get("budget_minutes", 0)) * 60
    cost = seconds_per_photo(net, data, batch, precision) if budget > 0 else 0.0
    planned = affordable_epochs(epochs, len(data), cost, budget)
    if planned != epochs:
        pl.seed_everything(seed, workers=True, verbose=False)
        net = classifier(planned)
    if plan is not None:
        plan.update(epochs_run=float(planned), seconds_per_photo=round(cost, 5),
                    planned_seconds=round(cost * planned * len(data), 1))
    if report is not None and budget > 0:
        report(0.0, f"{planned} of {epochs} epochs fit the {budget / 60:g}-minute budget "
                    f"({cost * 1000:.1f} ms per photo, {len(data)} photos per epoch)")
    callbacks: list[pl.Callback] = []
    if report is not None:
        callbacks.append(ProgressCallback(report))
    if checkpoint_dir:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=planned, precision=precision, logger=False,
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
