"""The Ray executor on a two-node cluster: two raylets on this machine (``ray.cluster_utils.Cluster``),
joined through ``ensure_ray(address)`` as a user joins an existing cluster. The embedding actors
land on both nodes, and the results still equal the local pipeline's row for row."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray", reason="the Ray executor needs pip install 'chunkeval[distributed]'")
import ray  # noqa: E402
import ray.cloudpickle  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import test_distributed  # noqa: E402
import test_evaluate  # noqa: E402
from chunkeval import distributed  # noqa: E402
from chunkeval import pipeline as pl  # noqa: E402
from chunkeval.chunkers import get_chunker  # noqa: E402
from chunkeval.evaluate import configuration  # noqa: E402
from test_distributed import _assert_same_group, _data, _scorers, _span_job  # noqa: E402
from test_evaluate import HashingEmbedder  # noqa: E402

pytestmark = pytest.mark.slow

ray.cloudpickle.register_pickle_by_value(test_evaluate)  # type: ignore[no-untyped-call]
ray.cloudpickle.register_pickle_by_value(test_distributed)  # type: ignore[no-untyped-call]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


class NodeRecordingEmbedder(HashingEmbedder):
    """Writes the id of the node it runs on into ``folder`` (one file per node)."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def embed(self, texts: list[str]) -> np.ndarray:
        import ray

        node = ray.get_runtime_context().get_node_id()
        Path(self.folder, node).write_text(str(os.getpid()))
        return super().embed(texts)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    distributed.ensure_ray(cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()  # type: ignore[no-untyped-call]


def test_a_two_node_cluster_gives_the_local_results(two_nodes: Cluster, tmp_path: Path) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2  # type: ignore[no-untyped-call]
    data = _data()
    chunker = get_chunker("fixed:200:0")
    embedder = NodeRecordingEmbedder(str(tmp_path))
    scorers = _scorers(data, chunker, embedder, "exact")
    attrs = configuration(chunker, embedder, "exact", "global")
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact",
                                       show_progress=False, search_shards=2, question_batch=9, embed_batch=20)
    assert len(list(tmp_path.iterdir())) == 2  # an embedding actor on each node
    local = pl.run_group(data, chunker, HashingEmbedder(), scorers, attrs, retrieval="exact")
    _assert_same_group(local, remote)


def test_parquet_scoring_on_two_nodes_equals_local(two_nodes: Cluster, tmp_path: Path) -> None:
    refs, rets, chunks, *_ = _span_job(tmp_path)
    local = distributed.score_parquet_local(refs, rets, chunks, tmp_path / "local", k="auto", semantics="chroma",
                                            part_questions=5).parts
    remote = distributed.score_parquet_ray(refs, rets, chunks, tmp_path / "ray", k="auto", semantics="chroma",
                                           part_questions=5).parts
    assert [p.name for p in remote] == [p.name for p in local] and len(local) == 6
    for a, b in zip(local, remote, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
