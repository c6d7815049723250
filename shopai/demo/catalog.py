"""The demo shop's vocabulary and catalog: categories, brands, colours, materials, bilingual text, images.

Everything here is pure (no I/O except reading Fashion-MNIST) and driven by a numpy Generator,
so the same seed always gives the same catalog.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from shopai.demo.fashion_mnist import CLASS_NAMES, load_fashion_mnist

CURRENCY = "CNY"

# --------------------------------------------------------------------------------------------------
# Categories: one per Fashion-MNIST class, in label order (category index == Fashion-MNIST label).


@dataclass(frozen=True)
class Category:
    slug: str  # the `category` field of a product
    label: int  # Fashion-MNIST label
    department: str  # clothing / shoes / bags
    name_zh: str
    ref_price: float  # a mid-tier product's typical list price, CNY
    nouns: tuple[tuple[str, str], ...]  # (English, Chinese) product nouns for titles
    search_nouns: tuple[tuple[str, str], ...]  # (English, Chinese) words a shopper types
    materials: tuple[str, ...]
    size_kind: str  # alpha / waist / shoe / none
    season_amplitude: float  # log-amplitude of the yearly cycle of interest in this category
    season_peak_doy: int  # day of year when interest peaks
    phrases: tuple[tuple[str, str], ...]  # description sentences (English, Chinese)


CATEGORIES: tuple[Category, ...] = (
    Category(
        "t-shirts",
        0,
        "clothing",
        "T恤/上衣",
        129.0,
        (("T-shirt", "T恤"), ("Tee", "短袖T恤"), ("Top", "上衣")),
        (("t-shirt", "T恤"), ("tee", "短袖"), ("top", "上衣")),
        ("cotton", "organic-cotton", "linen", "modal"),
        "alpha",
        0.55,
        196,
        (
            ("An easy everyday layer that goes with everything.", "百搭的日常单品。"),
            ("Cut for comfort on warm days.", "夏日穿着舒适清爽。"),
        ),
    ),
    Category(
        "trousers",
        1,
        "clothing",
        "长裤",
        299.0,
        (("Trousers", "长裤"), ("Chinos", "休闲裤")),
        (("trousers", "长裤"), ("pants", "裤子"), ("jeans", "牛仔裤")),
        ("denim", "twill", "corduroy", "linen", "wool"),
        "waist",
        0.05,
        300,
        (
            ("A versatile pair for the office and the weekend.", "通勤周末两相宜。"),
            ("Tailored for a clean, comfortable fit.", "剪裁利落，穿着舒适。"),
        ),
    ),
    Category(
        "pullovers",
        2,
        "clothing",
        "套头衫/毛衣",
        349.0,
        (("Pullover", "套头衫"), ("Sweater", "毛衣"), ("Jumper", "针织衫")),
        (("sweater", "毛衣"), ("pullover", "套头衫"), ("jumper", "针织衫")),
        ("wool", "cashmere", "merino", "cotton", "fleece"),
        "alpha",
        0.55,
        10,
        (
            ("A cosy layer for cool days.", "微凉天气的温暖之选。"),
            ("Easy to wear on its own or over a shirt.", "可单穿也可叠穿。"),
        ),
    ),
    Category(
        "dresses",
        3,
        "clothing",
        "连衣裙",
        399.0,
        (("Dress", "连衣裙"), ("Midi Dress", "中长款连衣裙"), ("Maxi Dress", "长款连衣裙")),
        (("dress", "连衣裙"), ("summer dress", "夏季连衣裙"), ("maxi dress", "长裙")),
        ("cotton", "silk", "linen", "chiffon", "knit"),
        "alpha",
        0.4,
        190,
        (
            ("Effortless for both daytime and evening.", "白天夜晚都能轻松驾驭。"),
            ("A flattering silhouette with a relaxed feel.", "修饰身形，轻松自在。"),
        ),
    ),
    Category(
        "coats",
        4,
        "clothing",
        "外套/大衣",
        899.0,
        (("Coat", "大衣"), ("Jacket", "夹克"), ("Overcoat", "长款大衣")),
        (("coat", "大衣"), ("jacket", "外套"), ("winter coat", "冬季外套")),
        ("wool", "down", "cashmere-blend", "waterproof-nylon"),
        "alpha",
        0.85,
        350,
        (
            ("Built to keep you warm through winter.", "陪你温暖过冬。"),
            ("A timeless outer layer for cold weather.", "寒冷季节的经典外搭。"),
        ),
    ),
    Category(
        "sandals",
        5,
        "shoes",
        "凉鞋",
        259.0,
        (("Sandals", "凉鞋"), ("Slide Sandals", "凉拖")),
        (("sandals", "凉鞋"), ("slides", "凉拖"), ("summer sandals", "夏季凉鞋")),
        ("leather", "suede", "rubber", "woven"),
        "shoe",
        0.95,
        185,
        (
            ("Made for summer days and holidays.", "夏日出游必备。"),
            ("A cushioned footbed for all-day comfort.", "软垫鞋床，久穿舒适。"),
        ),
    ),
    Category(
        "shirts",
        6,
        "clothing",
        "衬衫",
        259.0,
        (("Shirt", "衬衫"), ("Button-down Shirt", "纽扣衬衫"), ("Blouse", "女式衬衫")),
        (("shirt", "衬衫"), ("blouse", "女士衬衫"), ("button-down shirt", "正装衬衫")),
        ("cotton", "linen", "oxford", "silk", "flannel", "denim"),
        "alpha",
        0.1,
        120,
        (
            ("Smart enough for work, relaxed enough for weekends.", "上班得体，周末休闲。"),
            ("A crisp collar and a clean cut.", "挺括领型，简洁剪裁。"),
        ),
    ),
    Category(
        "sneakers",
        7,
        "shoes",
        "运动鞋",
        549.0,
        (("Sneakers", "运动鞋"), ("Trainers", "休闲运动鞋"), ("Running Shoes", "跑鞋")),
        (("sneakers", "运动鞋"), ("trainers", "休闲鞋"), ("running shoes", "跑鞋")),
        ("canvas", "leather", "mesh", "suede", "knit"),
        "shoe",
        0.12,
        100,
        (
            ("Cushioned soles for all-day walking.", "缓震鞋底，全天行走舒适。"),
            ("A clean design that goes with jeans or trousers.", "简约设计，轻松搭配牛仔裤或长裤。"),
        ),
    ),
    Category(
        "bags",
        8,
        "bags",
        "包袋",
        599.0,
        (
            ("Handbag", "手提包"),
            ("Tote Bag", "托特包"),
            ("Shoulder Bag", "单肩包"),
            ("Crossbody Bag", "斜挎包"),
        ),
        (("handbag", "手提包"), ("tote bag", "托特包"), ("bag", "包包")),
        ("leather", "canvas", "nylon", "vegan-leather", "straw"),
        "none",
        0.0,
        1,
        (
            ("Roomy enough for a tablet and daily essentials.", "容量充足，可放下平板和日常随身物品。"),
            ("An adjustable strap and a secure zip closure.", "可调节肩带，拉链开合更安全。"),
        ),
    ),
    Category(
        "ankle-boots",
        9,
        "shoes",
        "短靴",
        699.0,
        (("Ankle Boots", "短靴"), ("Chelsea Boots", "切尔西靴")),
        (("ankle boots", "短靴"), ("boots", "靴子"), ("chelsea boots", "切尔西靴")),
        ("leather", "suede", "waterproof-leather", "nubuck"),
        "shoe",
        0.7,
        355,
        (
            ("A grippy sole for wet city streets.", "防滑鞋底，雨天出行更安心。"),
            ("Pairs well with jeans, dresses and skirts.", "搭配牛仔裤、连衣裙都好看。"),
        ),
    ),
)
assert [c.label for c in CATEGORIES] == list(range(len(CLASS_NAMES)))
CATEGORY_SLUGS: tuple[str, ...] = tuple(c.slug for c in CATEGORIES)
DEPARTMENTS: tuple[str, ...] = ("clothing", "shoes", "bags")
DEPARTMENT_ZH = {"clothing": "服装", "shoes": "鞋履", "bags": "箱包"}

# (category, material) -> title noun that already names the material, so titles do not repeat it.
NOUN_OVERRIDES: dict[tuple[str, str], tuple[str, str]] = {
    ("trousers", "denim"): ("Jeans", "牛仔裤"),
    ("coats", "down"): ("Down Jacket", "羽绒服"),
    ("shirts", "denim"): ("Denim Shirt", "牛仔衬衫"),
    ("shirts", "flannel"): ("Flannel Shirt", "法兰绒衬衫"),
}

# --------------------------------------------------------------------------------------------------
# Materials: English name, Chinese name, price multiplier, description phrase (en, zh).
MATERIALS: dict[str, tuple[str, str, float, str, str]] = {
    "cotton": ("Cotton", "纯棉", 1.0, "soft, breathable cotton", "柔软透气的纯棉面料"),
    "organic-cotton": ("Organic Cotton", "有机棉", 1.1, "certified organic cotton", "认证有机棉面料"),
    "linen": ("Linen", "亚麻", 1.05, "airy, quick-drying linen", "轻盈速干的亚麻面料"),
    "modal": ("Modal", "莫代尔", 1.0, "silky-smooth modal", "顺滑亲肤的莫代尔面料"),
    "denim": ("Denim", "牛仔", 1.0, "sturdy stretch denim", "耐穿的弹力牛仔布"),
    "twill": ("Twill", "斜纹棉", 0.95, "cotton twill", "棉质斜纹布"),
    "corduroy": ("Corduroy", "灯芯绒", 1.0, "fine-wale corduroy", "细条灯芯绒"),
    "wool": ("Wool", "羊毛", 1.15, "warm, natural wool", "保暖的天然羊毛"),
    "cashmere": ("Cashmere", "羊绒", 1.6, "pure cashmere", "纯羊绒"),
    "merino": ("Merino", "美利奴羊毛", 1.3, "fine merino wool", "细腻的美利奴羊毛"),
    "fleece": ("Fleece", "抓绒", 0.85, "cosy fleece", "舒适的抓绒面料"),
    "silk": ("Silk", "真丝", 1.5, "smooth mulberry silk", "顺滑的桑蚕丝"),
    "chiffon": ("Chiffon", "雪纺", 0.95, "light, flowing chiffon", "轻盈飘逸的雪纺"),
    "knit": ("Knit", "针织", 1.0, "stretchy knit", "弹力针织面料"),
    "down": ("Down", "羽绒", 1.3, "warm duck-down fill", "温暖的鸭绒填充"),
    "cashmere-blend": ("Cashmere-blend", "羊绒混纺", 1.35, "a wool and cashmere blend", "羊毛羊绒混纺面料"),
    "waterproof-nylon": ("Waterproof Nylon", "防水尼龙", 1.1, "waterproof nylon", "防水尼龙面料"),
    "nylon": ("Nylon", "尼龙", 0.9, "lightweight nylon", "轻质尼龙"),
    "leather": ("Leather", "真皮", 1.3, "genuine leather", "头层真皮"),
    "suede": ("Suede", "麂皮", 1.2, "soft suede", "柔软麂皮"),
    "rubber": ("Rubber", "橡胶", 0.7, "flexible rubber", "柔韧橡胶"),
    "woven": ("Woven", "编织", 0.9, "hand-woven straps", "手工编织带"),
    "oxford": ("Oxford", "牛津纺", 1.0, "oxford cotton", "牛津纺棉布"),
    "flannel": ("Flannel", "法兰绒", 0.95, "brushed flannel", "磨毛法兰绒"),
    "canvas": ("Canvas", "帆布", 0.85, "durable canvas", "耐磨帆布"),
    "mesh": ("Mesh", "网面", 0.95, "breathable mesh", "透气网面"),
    "vegan-leather": ("Vegan Leather", "环保素皮", 1.0, "vegan leather", "环保素皮"),
    "straw": ("Straw", "草编", 0.8, "natural straw", "天然草编"),
    "waterproof-leather": ("Waterproof Leather", "防水真皮", 1.4, "waterproof leather", "防水真皮"),
    "nubuck": ("Nubuck", "磨砂皮", 1.25, "brushed nubuck", "磨砂牛巴戈皮"),
}

# --------------------------------------------------------------------------------------------------
# Colours: slug, English, Chinese, RGB (the colour a tinted image takes), weight in the assortment.
COLOURS: tuple[tuple[str, str, str, tuple[int, int, int], float], ...] = (
    ("black", "Black", "黑色", (28, 28, 30), 0.16),
    ("white", "White", "白色", (246, 246, 244), 0.12),
    ("grey", "Grey", "灰色", (128, 128, 132), 0.10),
    ("navy", "Navy", "藏青色", (30, 42, 96), 0.10),
    ("blue", "Blue", "蓝色", (45, 110, 200), 0.09),
    ("beige", "Beige", "米色", (215, 195, 155), 0.08),
    ("brown", "Brown", "棕色", (115, 72, 40), 0.07),
    ("red", "Red", "红色", (200, 32, 45), 0.07),
    ("green", "Green", "绿色", (40, 130, 70), 0.06),
    ("pink", "Pink", "粉色", (240, 145, 175), 0.06),
    ("purple", "Purple", "紫色", (120, 60, 160), 0.05),
    ("yellow", "Yellow", "黄色", (240, 200, 40), 0.04),
)
COLOUR_RGB = np.array([c[3] for c in COLOURS], dtype=np.float64)
# Image background: a light studio grey that neither white nor black garments disappear into.
BACKGROUND_RGB = (226, 228, 232)

# --------------------------------------------------------------------------------------------------
# Brands: name, tier, departments sold. Tiers set the price level.
TIERS: dict[str, float] = {"budget": 0.6, "mid": 1.0, "premium": 1.7, "luxury": 3.2}
TIER_ZH = {"budget": "平价", "mid": "中档", "premium": "高端", "luxury": "奢华"}
TIER_WEIGHT = {"budget": 1.2, "mid": 1.0, "premium": 0.7, "luxury": 0.35}
TIER_PHRASES = {
    "budget": ("Great value for everyday wear.", "高性价比，日常百搭。"),
    "mid": ("Quality basics at a fair price.", "品质好物，价格实在。"),
    "premium": ("Premium craftsmanship with refined details.", "做工精良，细节考究。"),
    "luxury": ("A luxury finish, made in small batches.", "奢华质感，小批量精制。"),
}
BRANDS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("Urbanite", "budget", frozenset({"clothing", "shoes"})),
    ("Kinso", "budget", frozenset({"clothing"})),
    ("Breezy", "budget", frozenset({"clothing", "shoes"})),
    ("Daytrip", "budget", frozenset({"bags", "shoes"})),
    ("Pebble & Co", "budget", frozenset({"clothing", "bags"})),
    ("Nordwind", "mid", frozenset({"clothing"})),
    ("Linea", "mid", frozenset({"clothing"})),
    ("Hanami", "mid", frozenset({"clothing", "bags"})),
    ("Westfield Supply", "mid", frozenset({"clothing", "bags"})),
    ("Coastline", "mid", frozenset({"clothing", "shoes"})),
    ("Stride", "mid", frozenset({"shoes"})),
    ("Carryall", "mid", frozenset({"bags"})),
    ("Maison Verre", "premium", frozenset({"clothing", "bags"})),
    ("Aurelio", "premium", frozenset({"clothing", "shoes"})),
    ("Silverbirch", "premium", frozenset({"clothing"})),
    ("Kestrel", "premium", frozenset({"shoes"})),
    ("Atelier Lune", "premium", frozenset({"clothing", "bags"})),
    ("Valmont", "luxury", frozenset({"clothing", "shoes", "bags"})),
    ("Castellane", "luxury", frozenset({"clothing", "bags"})),
    ("Oro Nero", "luxury", frozenset({"shoes", "bags"})),
)
BRAND_NAMES: tuple[str, ...] = tuple(b[0] for b in BRANDS)
BRAND_TIER: tuple[str, ...] = tuple(b[1] for b in BRANDS)
BRAND_LOG_MULT = np.log([TIERS[b[1]] for b in BRANDS])

# Styles per department: slug, English, Chinese ("" = no style word).
STYLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "clothing": (
        ("", "", ""),
        ("classic", "Classic", "经典款"),
        ("slim-fit", "Slim-fit", "修身"),
        ("relaxed", "Relaxed", "宽松"),
        ("essential", "Essential", "基础款"),
        ("vintage", "Vintage", "复古"),
    ),
    "shoes": (
        ("", "", ""),
        ("classic", "Classic", "经典款"),
        ("lightweight", "Lightweight", "轻便"),
        ("vintage", "Vintage", "复古"),
        ("platform", "Platform", "厚底"),
    ),
    "bags": (
        ("", "", ""),
        ("classic", "Classic", "经典款"),
        ("mini", "Mini", "迷你"),
        ("everyday", "Everyday", "通勤"),
        ("structured", "Structured", "硬挺"),
    ),
}

SIZE_SCALES: dict[str, tuple[str, ...]] = {
    "alpha": ("XS", "S", "M", "L", "XL", "XXL"),
    "waist": ("26", "27", "28", "29", "30", "31", "32", "33", "34", "36"),
    "shoe": tuple(str(s) for s in range(35, 47)),
}


def charm_price(x: float) -> float:
    """Round a raw price to a shop-like list price: 79, 229, 1299, 3699 (CNY)."""
    if x >= 1000:
        return float(max(1, round(x / 100)) * 100 - 1)
    return float(max(2, round(x / 10)) * 10 - 1)


def _sizes(kind: str, rng: np.random.Generator) -> list[str]:
    if kind == "none":
        return []
    scale = SIZE_SCALES[kind]
    lo_len = {"alpha": 4, "waist": 5, "shoe": 6}[kind]
    length = int(rng.integers(lo_len, len(scale) + 1))
    start = int(rng.integers(0, len(scale) - length + 1))
    return list(scale[start : start + length])


# --------------------------------------------------------------------------------------------------
# Images


def garment_intensity(gray: np.ndarray) -> np.ndarray:
    """Fashion-MNIST intensity in [0, 1], stretched so that the garment's 90th-percentile pixel is 1.

    Some originals are dim or have a few bright specks on a mid-grey body; stretching by a high
    percentile of the non-black pixels makes every garment's body solid before it is coloured."""
    g = gray.astype(np.float64)
    nonzero = g[g > 0]
    scale = float(np.percentile(nonzero, 90)) if nonzero.size else 255.0
    return np.clip(g / max(scale, 1.0), 0.0, 1.0)


def tint_image(gray: np.ndarray, rgb: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """Colour a light-on-black Fashion-MNIST image: the garment takes ``rgb``, the background is light grey.

    With ``I = garment_intensity(gray)``, ``coverage = min(1, 1.5 I)`` says how much of a pixel is garment,
    ``shade = 0.45 + 0.55 I`` keeps the folds and seams visible, and
    ``pixel = (1 - coverage) * background + coverage * shade * rgb``. Where I >= 2/3 a pixel is exactly
    ``shade * rgb`` (0.82-1.0 times the garment colour).
    """
    i = garment_intensity(gray)
    coverage = np.minimum(1.0, 1.5 * i)[..., None]
    shade = (0.45 + 0.55 * i)[..., None]
    colour = np.asarray(rgb, dtype=np.float64)[None, None, :]
    bg = np.asarray(BACKGROUND_RGB, dtype=np.float64)[None, None, :]
    out = (1.0 - coverage) * bg + coverage * shade * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def png_base64(rgb_image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb_image, mode="RGB").save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Products


@dataclass
class CatalogArrays:
    """Per-product facts the simulation needs, as arrays indexed by product position."""

    product_ids: list[str]
    category: np.ndarray  # int, index into CATEGORIES
    brand: np.ndarray  # int, index into BRANDS
    colour: np.ndarray  # int, index into COLOURS
    material: list[str]
    base_price: np.ndarray  # float, initial list price
    cost: np.ndarray
    image_index: np.ndarray  # Fashion-MNIST train index
    payloads: list[dict] = field(default_factory=list)  # product.upserted payloads (initial price)


def build_catalog(n_products: int, rng: np.random.Generator, late: np.ndarray) -> CatalogArrays:
    """Make ``n_products`` products (``late`` marks cold-start ones that get a "new-arrival" tag)."""
    images, labels = load_fashion_mnist("train")
    category, image_index = _categories_and_images(n_products, labels, rng)
    product_ids = [f"p{i + 1:05d}" for i in range(n_products)]
    out = CatalogArrays(
        product_ids, category, np.empty(n_products, dtype=np.int64), np.empty(n_products, dtype=np.int64),
        [], np.empty(n_products), np.empty(n_products), image_index,
    )
    titles: set[str] = set()
    for i in range(n_products):
        cat = CATEGORIES[category[i]]
        look = _draw_look(cat, rng, titles)
        titles.add(look.title)
        tier = BRAND_TIER[look.brand]
        mat_mult = MATERIALS[look.material][2]
        raw = cat.ref_price * TIERS[tier] * mat_mult * float(np.exp(rng.normal(0.0, 0.12)))
        price = charm_price(raw)
        unit_cost = round(price * float(rng.uniform(0.3, 0.55)), 2)
        sizes = _sizes(cat.size_kind, rng)
        phrase = cat.phrases[int(rng.integers(len(cat.phrases)))]
        image_b64 = png_base64(tint_image(images[image_index[i]], COLOURS[look.colour][3]))
        out.payloads.append(
            {
                "product_id": product_ids[i],
                "title": look.title,
                "title_zh": _title_zh(look),
                **_descriptions(cat, look, tier, sizes, phrase),
                "category": cat.slug,
                "brand": BRAND_NAMES[look.brand],
                "price": price,
                "currency": CURRENCY,
                "tags": _tags(cat, look, tier, bool(late[i])),
                "image_base64": image_b64,
                "attributes": _attributes(cat, look, tier, sizes),
                "cost": unit_cost,
            }
        )
        out.brand[i], out.colour[i] = look.brand, look.colour
        out.base_price[i], out.cost[i] = price, unit_cost
        out.material.append(look.material)
    return out


def _categories_and_images(
    n_products: int, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Categories spread evenly over the products, and for each a distinct real picture of its class
    (a random draw without replacement from each class)."""
    n_cat = len(CATEGORIES)
    category = rng.permutation(np.arange(n_products) % n_cat)
    per_class = np.bincount(category, minlength=n_cat)
    image_index = np.empty(n_products, dtype=np.int64)
    for c in range(n_cat):
        pool = np.flatnonzero(labels == c)
        if per_class[c] > pool.size:
            raise ValueError(
                f"n_products={n_products} needs {per_class[c]} images of class {c}; "
                f"Fashion-MNIST train has {pool.size}"
            )
        image_index[category == c] = rng.choice(pool, size=per_class[c], replace=False)
    return category, image_index


@dataclass
class _Look:
    """What a product's title says: brand, colour, material, style, noun."""

    brand: int  # index into BRANDS
    colour: int  # index into COLOURS
    material: str
    style: tuple[str, str, str]  # (tag, English, Chinese)
    noun: tuple[str, str]  # (English, Chinese)
    material_in_title: bool
    title: str


_COLOUR_W = np.array([c[4] for c in COLOURS])
_COLOUR_P = _COLOUR_W / _COLOUR_W.sum()
_BRAND_W = np.array([TIER_WEIGHT[b[1]] for b in BRANDS])
_BRAND_OK = {d: np.array([d in b[2] for b in BRANDS]) for d in DEPARTMENTS}


def _draw_look(cat: Category, rng: np.random.Generator, titles: set[str]) -> _Look:
    """A brand selling in the category's department (weighted by tier), a colour, material, style and
    noun; drawn again (up to 60 times) while the title is already taken."""
    dept = cat.department
    w = _BRAND_W * _BRAND_OK[dept]
    for _attempt in range(60):
        b = int(rng.choice(len(BRANDS), p=w / w.sum()))
        col = int(rng.choice(len(COLOURS), p=_COLOUR_P))
        mat = cat.materials[int(rng.integers(len(cat.materials)))]
        style = STYLES[dept][int(rng.integers(len(STYLES[dept])))]
        noun = NOUN_OVERRIDES.get((cat.slug, mat)) or cat.nouns[int(rng.integers(len(cat.nouns)))]
        mat_in_title = (cat.slug, mat) not in NOUN_OVERRIDES
        mat_en = MATERIALS[mat][0] if mat_in_title else ""
        words = [BRAND_NAMES[b], style[1], COLOURS[col][1], mat_en, noun[0]]
        title = " ".join(x for x in words if x)
        if title not in titles:
            break
    return _Look(b, col, mat, style, noun, mat_in_title, title)


def _title_zh(look: _Look) -> str:
    mat_zh = MATERIALS[look.material][1] if look.material_in_title else ""
    return f"{BRAND_NAMES[look.brand]} {look.style[2]}{COLOURS[look.colour][2]}{mat_zh}{look.noun[1]}"


def _descriptions(cat: Category, look: _Look, tier: str, sizes: list[str], phrase: tuple[str, str]) -> dict:
    """English and Chinese descriptions: what it is and is made of, a category phrase, the tier, sizes."""
    brand, (colour_en, colour_zh) = BRAND_NAMES[look.brand], COLOURS[look.colour][1:3]
    _en, _zh, _mult, mat_phrase_en, mat_phrase_zh = MATERIALS[look.material]
    phrase_en, phrase_zh = phrase
    tier_en, tier_zh = TIER_PHRASES[tier]
    size_text = f"{sizes[0]}–{sizes[-1]}" if sizes else "one size"
    size_text_zh = f"{sizes[0]}–{sizes[-1]}" if sizes else "均码"
    noun_lower = look.noun[0].lower().replace("chelsea", "Chelsea")
    lead = f"{look.style[1]} {colour_en.lower()}" if look.style[1] else colour_en
    return {
        "description": (
            f"{lead} {noun_lower} by {brand}, made from {mat_phrase_en}. "
            f"{phrase_en} {tier_en} Sizes: {size_text}."
        ),
        "description_zh": (
            f"{brand} {look.style[2]}{colour_zh}{look.noun[1]}，采用{mat_phrase_zh}。"
            f"{phrase_zh}{tier_zh}尺码：{size_text_zh}。"
        ),
    }


def _tags(cat: Category, look: _Look, tier: str, late: bool) -> list[str]:
    tags = [cat.department, cat.slug, COLOURS[look.colour][0], look.material, tier]
    if cat.season_amplitude >= 0.5:
        tags.append("summer" if 100 <= cat.season_peak_doy <= 260 else "winter")
    if look.style[0]:
        tags.append(look.style[0])
    if late:
        tags.append("new-arrival")
    return tags


def _attributes(cat: Category, look: _Look, tier: str, sizes: list[str]) -> dict:
    dept, colour = cat.department, COLOURS[look.colour]
    attributes = {
        "department": dept,
        "department_zh": DEPARTMENT_ZH[dept],
        "category_zh": cat.name_zh,
        "colour": colour[0],
        "colour_zh": colour[2],
        "colour_hex": "#{:02x}{:02x}{:02x}".format(*colour[3]),
        "size": ",".join(sizes) if sizes else "one size",
        "material": look.material,
        "material_zh": MATERIALS[look.material][1],
        "tier": tier,
    }
    if look.style[0]:
        attributes["style"] = look.style[0]
    return attributes
