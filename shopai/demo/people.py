"""Made-up personal details of the demo shop's shoppers: the name, e-mail, phone and shipping address an order
system sends with ``order.created``, so the demo exercises the sealing of personal fields (services/common/vault.py).

Deterministic in (seed, user id) and independent of the simulation's random streams: adding them changed no
other event. E-mail addresses are under ``example.com`` (RFC 2606) and phone numbers use the ``+86 170 0``
prefix, so nothing here reaches a real person.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

SURNAMES = (("Wang", "王"), ("Li", "李"), ("Zhang", "张"), ("Liu", "刘"), ("Chen", "陈"), ("Yang", "杨"),
            ("Huang", "黄"), ("Zhao", "赵"), ("Wu", "吴"), ("Zhou", "周"), ("Xu", "徐"), ("Sun", "孙"))
GIVEN_NAMES = (("Wei", "伟"), ("Fang", "芳"), ("Na", "娜"), ("Min", "敏"), ("Jing", "静"), ("Lei", "磊"),
               ("Qiang", "强"), ("Yan", "艳"), ("Jie", "杰"), ("Tao", "涛"), ("Ming", "明"), ("Xiu", "秀"),
               ("Hui", "慧"), ("Jun", "军"), ("Ping", "平"), ("Ling", "玲"))
CITIES = (("Shanghai", "Shanghai", "200000"), ("Beijing", "Beijing", "100000"), ("Guangzhou", "Guangdong", "510000"),
          ("Shenzhen", "Guangdong", "518000"), ("Hangzhou", "Zhejiang", "310000"), ("Chengdu", "Sichuan", "610000"),
          ("Nanjing", "Jiangsu", "210000"), ("Wuhan", "Hubei", "430000"), ("Xi'an", "Shaanxi", "710000"))
STREETS = ("Nanjing Road", "Huaihai Road", "Renmin Road", "Jiefang Road", "Zhongshan Road", "Jianshe Road",
           "Heping Street", "Changjiang Road", "Xinhua Street", "Wenhua Road")


def personal_details(seed: int, user_id: str) -> dict[str, Any]:
    """The order payload's personal fields for one shopper: the same for every order of theirs."""
    digest = hashlib.sha256(f"{seed}:people:{user_id}".encode()).digest()
    r = random.Random(int.from_bytes(digest[:8], "big"))
    (surname, surname_zh), (given, given_zh) = r.choice(SURNAMES), r.choice(GIVEN_NAMES)
    city, region, postal = r.choice(CITIES)
    number = int.from_bytes(digest[8:12], "big") % 10_000_000
    return {
        "customer_name": f"{surname_zh}{given_zh}" if r.random() < 0.5 else f"{given} {surname}",
        "email": f"{given.lower()}.{surname.lower()}.{user_id}@example.com",
        "phone": f"+86 1700{number // 10_000:03d}{number % 10_000:04d}",
        "shipping_address": {
            "recipient": f"{given} {surname}",
            "line1": f"{r.randint(1, 999)} {r.choice(STREETS)}",
            "line2": f"Apt {r.randint(1, 30)}{r.choice('ABCDEF')}",
            "city": city,
            "region": region,
            "postal_code": postal,
            "country": "CN",
        },
    }
