"""Pure parts of the vision service: the vector index, identification's unknown answer, the
verification rules, the training parameters, and the projection of catalog and code events."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from services.common.events import new_event
from services.common.projection import Ops
from services.vision.consumer import code_ops
from services.vision.core import codes
from services.vision.core.distort import foreground_mask, label_photo, make_query
from services.vision.core.finetune import affordable_epochs, finetune, training_params
from services.vision.core.index import VectorIndex
from services.vision.core.model import Product, VisionModel, choose_unknown_rule, evaluate, tune
from services.vision.core.verification import Limits, ProductMatch, judge_code, judge_history, unreadable
from services.vision.store import VisionKeys as K


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_the_index_is_exact_filters_by_category_and_copies_on_write():
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(50, 8)))
    ids = [f"p{i}" for i in range(50)]
    cats = ["bags" if i % 2 else "shoes" for i in range(50)]
    index = VectorIndex(8, ids, vectors, cats)
    q = unit(vectors[7] + 0.01)
    hits = index.search(q, 5)
    expected = np.argsort(-(vectors @ q))[:5]
    assert [h[0] for h in hits] == [ids[i] for i in expected]
    assert hits[0][1] == pytest.approx(float(vectors[7] @ q), abs=1e-5)
    assert all(index.categories[index.position[pid]] == "shoes" for pid, _ in index.search(q, 10, "shoes"))
    assert index.search(q, 3, "hats") == []
    moved = index.upsert(["p7"], unit(-vectors[7:8]), ["bags"])
    assert len(moved) == 50 and index.search(q, 1)[0][0] == "p7" and moved.search(q, 1)[0][0] != "p7"
    smaller = moved.remove(["p1", "p2", "nope"])
    assert len(smaller) == 48 and "p1" not in smaller.position and len(moved) == 50
    again = pickle.loads(pickle.dumps(smaller))
    assert again.search(q, 3) == smaller.search(q, 3)


class RowNet(torch.nn.Module):
    """A fake embedder: the image's mean colour, as a direction (so tests control similarity)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x.mean(dim=(2, 3)) + 3.0, dim=1)


def solid(rgb) -> Image.Image:
    return Image.new("RGB", (16, 16), tuple(rgb))


def model_with(colours: dict[str, tuple[int, int, int]]) -> VisionModel:
    model = VisionModel(net=RowNet(), image_size=16, index=VectorIndex(3), min_similarity=0.999)
    return model.with_products({p: (Product(p, f"title {p}", "cat", "fp"), solid(c)) for p, c in colours.items()})


def test_identification_answers_known_products_and_unknown_below_the_threshold():
    model = model_with({"red": (250, 10, 10), "green": (10, 250, 10), "blue": (10, 10, 250)})
    answer = model.identify(solid((250, 10, 10)), 2)
    assert answer.known and answer.best.product_id == "red" and answer.best.probability > 0.5
    assert next(m.product_id for m in answer.candidates) == "red" and len(answer.candidates) == 2
    grey = model.identify(solid((128, 128, 128)), 3)
    assert not grey.known  # nearest product is far below the calibrated similarity
    assert model.search(solid((10, 240, 20)), 1)[0].product_id == "green"


def test_evaluation_measures_recall_and_fits_the_identification_settings():
    model = model_with({f"p{i}": (i * 20, 255 - i * 20, 100) for i in range(10)})
    queries = [solid((i * 20 + 3, 255 - i * 20, 98)) for i in range(10)]
    metrics = evaluate(model, queries, [f"p{i}" for i in range(10)])
    assert metrics["recall_at_1"] == 1.0 and metrics["recall_at_5"] == 1.0
    assert metrics["scale"] > 0 and metrics["calibration_precision_when_known"] >= 0.95
    tuned = tune(model, metrics)
    assert (tuned.scale, tuned.min_similarity, tuned.min_confidence) == (
        metrics["scale"], metrics["min_similarity"], metrics["min_confidence"])
    assert all(tuned.identify(q, 1).best.product_id == f"p{i}" and tuned.identify(q, 1).known
               for i, q in enumerate(queries))
    far = tuned.identify(solid((128, 128, 128)), 1)
    assert not far.known  # a colour between the products: not one of them


def test_the_unknown_rule_names_what_it_can_and_keeps_its_precision():
    rng = np.random.default_rng(0)
    # Photos of catalog products: mostly confident and close; 10 % whose best match is wrong, less sure.
    right = np.r_[np.ones(90, bool), np.zeros(10, bool)]
    genuine = np.c_[np.r_[rng.uniform(0.7, 1.0, 90), rng.uniform(0.3, 0.6, 10)],
                    np.r_[rng.uniform(0.8, 0.95, 90), rng.uniform(0.6, 0.8, 10)]]
    # Photos of products the shop does not sell: the nearest is fairly close, its probability middling.
    impostor = np.c_[rng.uniform(0.2, 0.75, 100), rng.uniform(0.5, 0.85, 100)]
    confidence, similarity, seen = choose_unknown_rule(genuine, right, impostor)
    named = (genuine[:, 0] >= confidence) & (genuine[:, 1] >= similarity)
    wrong = (named & ~right).sum() + ((impostor[:, 0] >= confidence) & (impostor[:, 1] >= similarity)).sum()
    assert (named & right).sum() / ((named & right).sum() + wrong) >= 0.95
    assert (named & right).sum() >= 60  # not bought by naming nothing
    assert seen["calibration_precision_when_known"] >= 0.95 and 0.6 <= seen["calibration_known_share"] <= 0.9


def test_a_model_that_cannot_tell_names_nothing_rather_than_guess():
    genuine = np.array([[0.9, 0.9], [0.9, 0.9]])
    impostor = np.array([[0.95, 0.95], [0.95, 0.95]])  # strangers look closer than the products
    confidence, _, seen = choose_unknown_rule(genuine, np.array([True, False]), impostor)
    assert seen["calibration_known_share"] == 0 and seen["calibration_unknown_named"] == 0
    assert confidence > 0.95


def test_a_new_product_is_known_without_retraining():
    model = model_with({"red": (250, 10, 10)})
    bigger = model.with_products({"teal": (Product("teal", "Teal", "cat", "fp"), solid((0, 128, 128)))})
    assert bigger.identify(solid((0, 128, 128)), 1).best.product_id == "teal"
    assert "teal" not in model.products  # the served object was not changed under a request
    assert bigger.with_products({}, removed=["teal"]).search(solid((0, 128, 128)), 1)[0].product_id == "red"


@pytest.mark.parametrize("raw, problem", [
    ({"epochs": "0"}, "outside"), ({"views": "x"}, "not a number"), ({"colour": "1"}, "unknown param"),
])
def test_training_params_are_checked(raw, problem):
    with pytest.raises(ValueError, match=problem):
        training_params(raw)
    assert training_params({"epochs": "3"})["epochs"] == 3


def test_the_epochs_are_planned_to_the_time_budget():
    assert affordable_epochs(30, photos_per_epoch=1600, seconds_per_photo=0.01, budget_seconds=600) == 30
    assert affordable_epochs(30, photos_per_epoch=16000, seconds_per_photo=0.01, budget_seconds=600) == 3
    assert affordable_epochs(30, photos_per_epoch=10**6, seconds_per_photo=0.01, budget_seconds=600) == 1
    assert affordable_epochs(30, photos_per_epoch=10**6, seconds_per_photo=0.01, budget_seconds=0) == 30


def test_fine_tuning_measures_its_cost_and_keeps_to_a_small_budget():
    pictures = [solid((250, 10, 10)), solid((10, 250, 10)), solid((10, 10, 250)), solid((200, 200, 10))]
    plan: dict[str, float] = {}
    params = training_params({"epochs": "4", "views": "1", "image_size": "32", "batch": "4",
                              "budget_minutes": "0.0001"})  # 6 ms: less than one epoch costs
    net = finetune(pictures, params, plan=plan)
    assert plan["epochs_run"] == 1 and plan["seconds_per_photo"] > 0
    assert net.embed(torch.zeros(1, 3, 32, 32)).shape == (1, int(params["embed_dim"]))


KEY = codes.SigningKey.generate()
KEYS = {KEY.key_id: KEY.public_key}


def valid_check(serial: str = "S1") -> codes.CodeCheck:
    code = codes.sign(KEY, codes.Claims("p1", "B1", serial, KEY.key_id, 1_764_000_000))
    return codes.verify_payload(code.payload, KEYS)


def test_verdicts_follow_the_rules():
    check = valid_check()
    issued = {"product_id": "p1", "batch": "B1", "issued_at": "1764000000"}
    assert judge_code(check, issued) is None
    never = judge_code(check, {})
    assert never.verdict == "counterfeit" and "never issued" in never.reasons[-1]
    other = judge_code(check, {"product_id": "p2", "batch": "B1"})
    assert other.verdict == "counterfeit"
    forged = judge_code(codes.verify_payload(check_payload_altered(), KEYS), issued)
    assert forged.verdict == "counterfeit" and forged.alert

    limits = Limits(max_scans=5, max_places=2)
    ok = judge_history(check, 1_764_000_000, 1, 1, ProductMatch("match", "looks like it"), limits)
    assert ok.verdict == "authentic" and "looks like it" in ok.reasons and not ok.alert
    assert judge_history(check, 0, 6, 1, ProductMatch("no_photo"), limits).verdict == "suspicious"
    places = judge_history(check, 0, 3, 3, ProductMatch("no_photo"), limits)
    assert places.verdict == "suspicious" and any("3 different places" in r for r in places.reasons)
    moved = judge_history(check, 0, 1, 1, ProductMatch("mismatch", "the photo shows a bag"), limits)
    assert moved.verdict == "suspicious" and "the photo shows a bag" in moved.reasons
    unsure = judge_history(check, 0, 1, 1, ProductMatch("unsure", "could not be matched"), limits)
    assert unsure.verdict == "authentic"
    assert unreadable(False, True).verdict == "unreadable" and "blurred" in unreadable(False, True).reasons[-1]
    assert "not a ShopAI" in unreadable(True, False).reasons[0]


def check_payload_altered() -> str:
    payload = codes.sign(KEY, codes.Claims("p1", "B1", "S1", KEY.key_id, 1_764_000_000)).payload
    i = len(payload) // 2
    return payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1:]


def test_code_events_project_the_registry_and_the_scan_history():
    issued = new_event("code.issued", {"product_id": "p1", "batch": "B1", "key_id": KEY.key_id,
                                       "issued_at": 1_764_000_000, "serials": ["S1", "S2"]})
    ops = Ops()
    code_ops(issued, ops)
    assert [c[0] for c in ops.commands] == ["HSET", "HSET", "HINCRBY"] and ops.commands[1][1].endswith(":S2")
    assert ops.commands[2][1:] == [K.batch_products("B1"), "p1", "2"]  # the batch's serials, per product
    scanned = new_event("code.scanned", {"product_id": "p1", "batch": "B1", "serial": "S1", "location": " Paris "})
    ops = Ops()
    code_ops(scanned, ops)
    names = [c[0] for c in ops.commands]
    # a scan logged before the counting rules (no "counted") counts, at its lower-cased location
    assert names[:5] == ["HINCRBY", "HSETNX", "HSET", "HINCRBY", "SADD"] and ops.commands[4][2] == "paris"
    assert {"LPUSH", "LTRIM"} <= set(names)


def test_query_photos_and_label_photos_are_real_pictures():
    product = Image.new("RGB", (28, 28), (226, 228, 232))
    product.paste((200, 30, 30), (6, 6, 22, 22))
    rng = np.random.default_rng(1)
    queries = [make_query(product, rng) for _ in range(20)]
    assert all(q.mode == "RGB" and min(q.size) >= 8 for q in queries)
    assert len({q.size for q in queries}) > 5  # scale varies
    mask = foreground_mask(product)
    assert mask[10, 10] and not mask[0, 0]
    png = codes.render_png(valid_check().claims and codes.sign(KEY, valid_check().claims).payload)
    photo = label_photo(product, png)
    assert [f.text for f in codes.find_codes(photo)] == [codes.sign(KEY, valid_check().claims).payload]
    assert codes.find_codes(label_photo(product, None)) == []


def test_the_cosine_margin_lowers_only_the_true_class_and_only_in_training():
    from services.vision.core.nets import CosineHead

    torch.manual_seed(0)
    head = CosineHead(8, 5, scale=30.0, margin=0.35)
    emb, target = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    plain, trained = head(emb), head(emb, target)
    diff = plain - trained
    assert torch.allclose(diff[torch.arange(4), target], torch.full((4,), 30.0 * 0.35))
    diff[torch.arange(4), target] = 0
    assert torch.count_nonzero(diff) == 0
    assert training_params({})["margin"] == 0.35 and training_params({"margin": "0"})["margin"] == 0


def test_training_rotation_fills_corners_with_the_backdrop_and_a_new_background_covers_them():
    import random

    from services.vision.core.distort import _RandomBackground, _RotateOnBackdrop, training_transform

    product = Image.new("RGB", (28, 28), (226, 228, 232))
    product.paste((200, 30, 30), (4, 4, 24, 24))
    random.seed(3)
    rotated = [_RotateOnBackdrop(20, 96)(product) for _ in range(10)]
    assert all(min(r.size) >= 96 for r in rotated) and len({r.size for r in rotated}) > 1  # angles vary
    for r in rotated:
        a = np.asarray(r)
        assert tuple(a[0, 0]) == (226, 228, 232) and tuple(a[-1, -1]) == (226, 228, 232)  # never black
    covered = np.asarray(_RandomBackground(1.0)(rotated[0]))
    assert tuple(covered[0, 0]) != (226, 228, 232) or tuple(covered[-1, 0]) != (226, 228, 232)
    x = training_transform(64)(product)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32


def test_training_photos_carry_frames_thumbnails_light_and_corners_of_any_colour():
    import random

    from services.vision.core.distort import _FillAnyway, _Frame, _Light, _Resolution

    random.seed(5)
    checker = torch.from_numpy(np.indices((64, 64)).sum(0) % 2 * 255).to(torch.uint8).expand(3, 64, 64).clone()
    picture = torch.full((3, 64, 64), 230, dtype=torch.uint8)
    picture[:, 16:48, 16:48] = torch.tensor([200, 30, 30], dtype=torch.uint8)[:, None, None]
    framed = [_Frame(1.0)(picture) for _ in range(10)]
    for f in framed:
        ring = torch.cat([f[:, 0, :], f[:, -1, :], f[:, :, 0], f[:, :, -1]], dim=1)
        assert f.shape == picture.shape and (ring == ring[:, :1]).all()  # one plain colour all round
        assert f[:, 32, 32].tolist() == [200, 30, 30]  # the picture is still inside
    assert len({tuple(f[:, 0, 0].tolist()) for f in framed}) > 5  # of any colour
    small = [_Resolution(1.0, 8, 16)(checker) for _ in range(10)]
    # A 1-px checkerboard does not survive a thumbnail: smooth or blocky, its contrast is gone.
    assert all(s.shape == checker.shape and s.float().std() < checker.float().std() * 0.8 for s in small)
    assert _Resolution(0.0, 8, 16)(checker) is checker
    grey = torch.full((3, 32, 32), 0.5)
    lit = [_Light(1.0)(grey) for _ in range(10)]
    assert all(0 <= x.min() and x.max() <= 1 for x in lit) and max(float((x - grey).abs().max()) for x in lit) > 0.1
    product = Image.new("RGB", (96, 96), (226, 228, 232))
    product.paste((200, 30, 30), (20, 20, 76, 76))
    corners = {tuple(np.asarray(_FillAnyway(1.0, 30, 0.08)(product))[0, 0]) for _ in range(12)}
    assert (0, 0, 0) in corners and (255, 255, 255) in corners and len(corners) > 3


def test_a_stranger_is_half_one_product_and_half_its_neighbour():
    from services.vision.core.distort import stranger

    top, bottom = solid((250, 10, 10)), Image.new("RGB", (32, 32), (10, 10, 250))
    mixed = np.asarray(stranger(top, bottom))
    assert mixed.shape == (16, 16, 3)
    assert tuple(mixed[0, 0]) == (250, 10, 10) and tuple(mixed[-1, -1]) == (10, 10, 250)


def test_the_unknown_rule_is_fitted_to_name_no_stranger():
    from services.vision.core.model import fit_unknown_rule

    model = model_with({f"p{i}": (i * 25, 255 - i * 25, 100) for i in range(10)})
    photos = [solid((i * 25 + 2, 255 - i * 25, 101)) for i in range(10)]
    # Strangers: colours between two products, nearer to both than to anything else.
    strangers = [solid((i * 25 + 12, 255 - i * 25 - 12, 100)) for i in range(9)]
    settings = fit_unknown_rule(model, photos, [f"p{i}" for i in range(10)], strangers)
    tuned = tune(model, settings)
    assert all(tuned.identify(q, 1).known and tuned.identify(q, 1).best.product_id == f"p{i}"
               for i, q in enumerate(photos))
    assert not any(tuned.identify(s, 1).known for s in strangers)
    assert settings["calibration_unknown_named"] == 0 and settings["calibration_known_share"] == 1
