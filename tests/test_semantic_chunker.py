"""ClusterSemanticChunker: exact DP boundaries on hand-chosen vectors, tiling, size limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkeval.chunkers import get_chunker
from chunkeval.chunkers.semantic import ClusterSemanticChunker, segment_pieces, split_pieces
from chunkeval.tokenizers import get_tokenizer


class TableEmbedder:
    """Test input: each piece text maps to a hand-chosen vector."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = np.array([self.table[t] for t in texts], dtype=np.float32)
        return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True))


class LetterEmbedder:
    """Test input: a bag-of-letters vector, so pieces sharing letters are similar."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 27), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                out[i, ord(ch) - 97 if "a" <= ch <= "z" else 26] += 1
        out[:, 26] += 0.01  # no zero rows
        return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True))


def _objective(vectors: np.ndarray, ends: list[int]) -> float:
    """Σ over chunks of Σ_{a<b} (cos - mean pairwise cos), computed from the full matrix."""
    sim = vectors @ vectors.T
    n = len(vectors)
    mean = sim[np.triu_indices(n, 1)].mean()
    total, start = 0.0, 0
    for end in ends:
        block = sim[start:end, start:end] - mean
        total += block[np.triu_indices(end - start, 1)].sum()
        start = end
    return float(total)


def test_two_topics_give_two_chunks() -> None:
    # Pieces A A B B (A ⟂ B): mean pairwise cos = 2/6; AA|BB scores 4/3, AABB 0, A|A|B|B 0.
    embedder = TableEmbedder({"AAAA ": [1, 0], "BBBB ": [0, 1]})
    chunker = ClusterSemanticChunker(max_size=20, piece_size=5, length="chars", embedder=embedder)
    text = "AAAA AAAA BBBB BBBB "
    spans = chunker.chunk([text])
    rows = zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True)
    assert list(rows) == [(0, 0, 10), (0, 10, 20)]
    assert embedder.calls == [["AAAA ", "AAAA ", "BBBB ", "BBBB "]]


def test_a_chunk_of_blank_lines_is_dropped() -> None:
    # Pieces "AAAA " "AAAA " and two runs of five newlines; A ⟂ blank, so the DP cuts AA|BB as in
    # test_two_topics_give_two_chunks, and the second chunk, all whitespace, is not emitted.
    blank = "\n" * 5
    embedder = TableEmbedder({"AAAA ": [1, 0], blank: [0, 1]})
    chunker = ClusterSemanticChunker(max_size=20, piece_size=5, length="chars", embedder=embedder)
    text = "AAAA AAAA " + blank * 2
    assert chunker.pieces(text)[1].tolist() == [5, 10, 15, 20]
    spans = chunker.chunk([text, blank])
    rows = zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True)
    assert list(rows) == [(0, 0, 10)]
    assert embedder.calls == [["AAAA ", "AAAA ", blank, blank, blank]]


def test_three_topics_with_size_limit() -> None:
    # A A A B B C C C, max 3 pieces per chunk: 7 same-topic pairs of 28, mean 1/4;
    # AAA|BB|CCC = 3·0.75 + 0.75 + 3·0.75 = 5.25 beats every other segmentation.
    embedder = TableEmbedder({"aaaa ": [1, 0, 0], "bbbb ": [0, 1, 0], "cccc ": [0, 0, 1]})
    text = "aaaa " * 3 + "bbbb " * 2 + "cccc " * 3
    chunker = ClusterSemanticChunker(max_size=15, piece_size=5, length="chars", embedder=embedder)
    spans = chunker.chunk([text, "", text])
    assert spans.doc.tolist() == [0, 0, 0, 2, 2, 2]
    assert spans.start.tolist() == [0, 15, 25] * 2 and spans.end.tolist() == [15, 25, 40] * 2
    # With room for only 2 pieces the A and C runs must split; ties between AA|A and A|AA go to the
    # earliest start of the last chunk, i.e. the longest final chunk.
    spans = ClusterSemanticChunker(max_size=10, piece_size=5, length="chars", embedder=embedder).chunk([text])
    assert spans.end.tolist() == [5, 15, 25, 30, 40]
    # Size limit below two pieces: every piece alone.
    spans = ClusterSemanticChunker(max_size=5, piece_size=5, length="chars", embedder=embedder).chunk([text])
    assert spans.lengths().tolist() == [5] * 8


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 8),
    dim=st.integers(1, 4),
    max_size=st.integers(1, 12),
    seed=st.integers(0, 2**31),
)
def test_dp_matches_brute_force(n: int, dim: int, max_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lengths = rng.integers(1, 5, size=n)
    ends = segment_pieces(vectors, lengths, max_size).tolist()
    assert ends[-1] == n and ends == sorted(set(ends))
    starts = [0] + ends[:-1]
    for s, e in zip(starts, ends, strict=True):
        assert e - s == 1 or lengths[s:e].sum() <= max_size
    if n == 1:
        return
    best = -np.inf
    for cut_mask in itertools.product((0, 1), repeat=n - 1):
        candidate = [i + 1 for i, cut in enumerate(cut_mask) if cut] + [n]
        bounds = [0] + candidate
        if all(e - s == 1 or lengths[s:e].sum() <= max_size for s, e in zip(bounds, bounds[1:], strict=False)):
            best = max(best, _objective(vectors, candidate))
    assert _objective(vectors, ends) == pytest.approx(best, abs=1e-9)


def test_pieces_prefer_paragraph_then_sentence_then_word() -> None:
    text = "One two three.\n\nFour five six seven. Eight nine ten eleven twelve"
    starts, ends, lengths = split_pieces(text, 24)
    pieces = [text[s:e] for s, e in zip(starts, ends, strict=True)]
    assert pieces == ["One two three.\n\n", "Four five six seven. ", "Eight nine ten eleven ", "twelve"]
    assert lengths.tolist() == [len(p) for p in pieces]
    # No whitespace in a window: the cut falls where the window ends; "3.5" is no sentence end.
    starts, ends, _ = split_pieces("x" * 10 + "3.5" + "y" * 7, 8)
    assert ends.tolist() == [8, 16, 20]
    assert split_pieces("", 5)[0].size == 0


def test_token_pieces_and_chunks_tile_and_respect_max_size() -> None:
    tokenizer = get_tokenizer("cl100k_base")
    paragraphs = [
        "Cats purr and nap in the sun; a cat chases mice and naps again.",
        "Stars burn hydrogen. A star collapses into a black hole or a neutron star.",
        "Tax returns are due in April; the tax office checks every return.",
    ]
    text = "\n\n".join(p + " " + p for p in paragraphs) + " café ☕ naïve 東京"
    chunker = ClusterSemanticChunker(max_size=40, piece_size=12, embedder=LetterEmbedder())
    starts, ends, lengths = chunker.pieces(text)
    token_starts = tokenizer.offsets(text)
    token_starts = token_starts[token_starts[:, 1] > token_starts[:, 0], 0]
    assert starts[0] == 0 and ends[-1] == len(text) and np.array_equal(starts[1:], ends[:-1])
    for s, e, n in zip(starts, ends, lengths, strict=True):
        assert n == np.count_nonzero((token_starts >= s) & (token_starts < e))
        assert n <= 12
    spans = chunker.chunk([text, "short", ""])
    assert set(spans.doc.tolist()) == {0, 1}
    doc0 = spans.doc == 0
    s0, e0 = spans.start[doc0], spans.end[doc0]
    assert s0[0] == 0 and e0[-1] == len(text) and np.array_equal(s0[1:], e0[:-1]) and (e0 > s0).all()
    for s, e in zip(s0, e0, strict=True):
        assert np.count_nonzero((token_starts >= s) & (token_starts < e)) <= 40
        # Chunks are unions of whole pieces.
        assert s in starts and e in ends
    assert len(s0) > 1
    assert spans.start[~doc0].tolist() == [0] and spans.end[~doc0].tolist() == [5]


def test_config_name_and_lazy_embedder() -> None:
    chunker = ClusterSemanticChunker(max_size=300, piece_size=40)
    assert chunker.name == "semantic:300:40"
    assert chunker.config() == {"type": "cluster_semantic", "max_size": 300, "piece_size": 40, "length": "tokens",
                                "tokenizer": "cl100k_base", "embedder": "all-MiniLM-L6-v2"}
    assert chunker._embedder is None  # nothing loaded until chunk() runs
    assert get_chunker(chunker.config()) == chunker
    chars = ClusterSemanticChunker(max_size=100, piece_size=10, length="chars", embedder=LetterEmbedder())
    assert chars.name == "semantic:100:10:chars" and chars.config()["embedder"] == "LetterEmbedder"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="piece_size \\(50\\) must not exceed max_size \\(40\\)"):
        ClusterSemanticChunker(max_size=40, piece_size=50)
    with pytest.raises(ValueError, match="max_size must be >= 1"):
        ClusterSemanticChunker(max_size=0)
    with pytest.raises(ValueError, match="length must be"):
        ClusterSemanticChunker(length="words")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embed"):
        ClusterSemanticChunker(embedder=42)  # type: ignore[arg-type]

    class Broken:
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts) + 1, 3), dtype=np.float32)

    with pytest.raises(ValueError, match="one row per text"):
        ClusterSemanticChunker(max_size=10, piece_size=5, length="chars", embedder=Broken()).chunk(["hello world"])
    with pytest.raises(TypeError, match="wrap it in a list"):
        ClusterSemanticChunker(length="chars", embedder=LetterEmbedder()).chunk("text")


@pytest.mark.slow
def test_real_embedder_splits_at_topic_change() -> None:
    cooking = [
        "Whisk the eggs with the sugar in a large bowl until the mixture turns pale.",
        "Fold the sifted flour and the melted butter gently into the sweet batter.",
        "Bake the cake in a hot oven for thirty minutes until the top is golden.",
        "Let the warm sponge cool on a rack before you slice and serve it.",
    ]
    astronomy = [
        "The large telescope tracked a distant spiral galaxy across the night sky.",
        "Astronomers measured the redshift of its brightest stars with a spectrograph.",
        "A giant planet orbits one of those stars once every eleven Earth days.",
        "The light from that galaxy left it more than two billion years ago.",
    ]
    text = " ".join(cooking) + "\n\n" + " ".join(astronomy)
    # Every sentence is one piece (13-17 tokens, two never fit in 20), and all eight fit in one chunk:
    # only the embeddings can tell the DP where to cut.
    chunker = ClusterSemanticChunker(max_size=120, piece_size=20)
    starts, ends, lengths = chunker.pieces(text)
    assert len(starts) == 8 and lengths.sum() <= 120
    spans = chunker.chunk([text])
    assert spans.start.tolist() == [0, text.index("The large")]
    assert spans.end.tolist() == [text.index("The large"), len(text)]
    vectors = chunker.embedder.embed(["bake the cake", "the orbit of a planet"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
