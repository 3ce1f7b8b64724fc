import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from clusterlib import BIN, Cluster  # noqa: E402


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(n, witness_ids=(), args=()) -> a started Cluster, stopped
    at the end (each node's clean stop must exit 0)."""
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} is not built (set FM_CLUSTER_NODE)")
    made = []

    def make(n=3, witness_ids=(), args=()):
        c = Cluster(tmp_path / f"c{len(made)}", n, witness_ids, args)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        codes = c.shutdown()
        bad = {i: rc for i, rc in codes.items() if rc != 0}
        assert not bad, "nodes did not stop cleanly: %s (logs in %s)" % (bad, c.root)
