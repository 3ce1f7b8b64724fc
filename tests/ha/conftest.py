"""Fixtures of the high-availability suite: clusters started in the test's
directory and stopped at its end; on a failure, every node's state and log
tail is printed."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import halib  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _finish(request, made):
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        for c in made:
            print("\n" + c.report())
    problems = []
    for c in made:
        problems += c.shutdown()
    if problems:
        pytest.fail("\n".join(problems) + "\n" + "\n".join(c.report() for c in made))


@pytest.fixture
def raft_cluster(tmp_path, request):
    """raft_cluster(n=3, witness_ids=(), args=()) -> a started RaftCluster
    (fm-cluster-node processes behind a FaultNet)."""
    if not os.access(halib.clusterlib.BIN, os.X_OK):
        pytest.fail("%s is not built (set FM_CLUSTER_NODE)" % halib.clusterlib.BIN)
    made = []

    def make(n=3, witness_ids=(), args=()):
        c = halib.RaftCluster(tmp_path / ("raft%d" % len(made)), n, witness_ids, args)
        made.append(c)
        c.start()
        return c

    yield make
    _finish(request, made)


@pytest.fixture
def broker_cluster(tmp_path, request):
    """broker_cluster(n=3, witness_ids=(), ...) -> a started BrokerCluster."""
    if not os.access(halib.broker_bin(), os.X_OK):
        pytest.fail("%s is not built (set FERROMQ_BIN)" % halib.broker_bin())
    made = []

    def make(n=3, witness_ids=(), **kw):
        c = halib.BrokerCluster(tmp_path / ("brokers%d" % len(made)), n, witness_ids, **kw)
        made.append(c)
        c.start()
        return c

    yield make
    _finish(request, made)


# The single-broker fixtures (start_broker, ...) of the other suites.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness"))
from fm_harness import start_broker  # noqa: E402,F401
