"""The seeded demo shop: a whole fashion shop's events (catalog, behaviour, orders, stock) and its hidden truth.

>>> from shopai.demo import DemoShopConfig, generate
>>> shop = generate(DemoShopConfig(seed=7, n_products=200, n_users=150, days=60), progress=False)
>>> shop.truth["users"]["u1"]["category_prefs"]  # doctest: +SKIP
"""

from shopai.demo.fashion_mnist import CLASS_NAMES, load_fashion_mnist
from shopai.demo.generator import DemoShop, DemoShopConfig, ShopStream, generate, stream

__all__ = ["CLASS_NAMES", "DemoShop", "DemoShopConfig", "ShopStream", "generate", "load_fashion_mnist", "stream"]
