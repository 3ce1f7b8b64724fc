"""The cluster options (issue 14) through the real binary: `ferromq
--check-config` accepts the cluster layouts the documents show and names the
file and line of each mistake; `ferromq --help` lists the options."""
import os
import re
import subprocess

import pytest

from conftest import broker_bin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(tmp_path, lines, name="node.conf"):
    conf = tmp_path / name
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True,
                       timeout=20)
    return conf, r


def data(tmp_path):
    return "persistence_location %s" % (tmp_path / "data")


def three_nodes(tmp_path):
    """Node 1 of three on loopback, each with its own port."""
    return ["listener 1883 127.0.0.1", data(tmp_path),
            "cluster_node_id 1", "cluster_listener 17881",
            "cluster_peer 2 127.0.0.1:17882", "cluster_peer 3 127.0.0.1:17883"]


def test_three_node_cluster_is_valid(tmp_path):
    _, r = check(tmp_path, three_nodes(tmp_path) + ["cluster_election_timeout 1000", "cluster_heartbeat 100"])
    assert r.returncode == 0, r.stderr


def test_witness_and_joining_node_are_valid(tmp_path):
    _, r = check(tmp_path, [data(tmp_path), "cluster_node_id 3", "cluster_listener 17883", "cluster_role witness",
                            "cluster_peer 1 127.0.0.1:17881", "cluster_peer 2 127.0.0.1:17882"])
    assert r.returncode == 0, r.stderr
    # A witness's HTTP listener: the cluster's part of the API, with the same credentials as a broker's.
    _, r = check(tmp_path, [data(tmp_path), "cluster_node_id 3", "cluster_listener 17883", "cluster_role witness",
                            "cluster_peer 1 127.0.0.1:17881", "cluster_peer 2 127.0.0.1:17882",
                            "http_listener 17890", "http_token_file %s" % (tmp_path / "http.token")])
    assert r.returncode == 0, r.stderr
    _, r = check(tmp_path, [data(tmp_path), "cluster_node_id 4", "cluster_listener 17884 localhost",
                            "cluster_join true"])
    assert r.returncode == 0, r.stderr


def example_blocks():
    """The indented configurations of the example file's cluster section."""
    text = open(os.path.join(ROOT, "ferromq.conf.example")).read()
    section = text.split("Cluster (high availability)", 1)[1].split("\n# -----", 1)[0]
    blocks, cur = [], []
    for line in section.splitlines():
        m = re.match(r"^#   (\S.*)$", line)
        if m:
            cur.append(m.group(1))
        elif cur:
            blocks.append(cur)
            cur = []
    return blocks + ([cur] if cur else [])


def test_the_example_files_layouts_are_valid(tmp_path):
    blocks = example_blocks()
    assert len(blocks) == 2, blocks  # the witness and its broker
    for block in blocks:
        _, r = check(tmp_path, [data(tmp_path)] + block)
        assert r.returncode == 0, (block, r.stderr)


NEEDS_ID = "needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)"


@pytest.mark.parametrize("lines,where,what", [
    # the lines themselves
    (["cluster_node_id 0x10"], 1, "cluster_node_id: '0x10' is not a number in 0..9223372036854775807"),
    (["cluster_node_id 1", "cluster_listener 0"], 2, "cluster_listener: port must be 1..65535, not '0'"),
    (["cluster_listener 17881 0.0.0.0"], 1, "0.0.0.0 reaches none of them"),
    (["cluster_listener 17881 ::1"], 1, "a host is a name or an IPv4 address"),
    (["cluster_listener 17881", "cluster_listener 17882"], 2, "cluster_listener: one per node, and line 1 has it"),
    (["cluster_peer 2"], 1, "cluster_peer: expected N HOST:PORT"),
    (["cluster_peer 0 127.0.0.1:17882"], 1, "cluster_peer: N is a node id in 1..9223372036854775807, not '0'"),
    (["cluster_peer 2 127.0.0.1:70000"], 1, "cluster_peer 2: '127.0.0.1:70000': the port is a number 1-65535"),
    (["cluster_peer 2 h:1", "", "cluster_peer 2 i:1"], 3, "cluster_peer 2: listed twice (first on line 1)"),
    (["cluster_peer 2 h:1", "cluster_peer 3 H:1"], 2, "cluster_peer 3: H:1 is the address of node 2 too (line 1)"),
    (["cluster_role arbiter"], 1, "cluster_role: invalid value 'arbiter' (expected broker|witness)"),
    (["cluster_election_timeout 50"], 1, "cluster_election_timeout: '50' is not a number in 100..60000"),
    (["cluster_heartbeat 5"], 1, "cluster_heartbeat: '5' is not a number in 10..20000"),
    (["cluster_join maybe"], 1, "cluster_join: invalid value 'maybe' (expected true|false)"),
    # config_finish: options without an id
    (["workers 2", "cluster_peer 2 h:1"], 2, "cluster_peer " + NEEDS_ID),
    (["cluster_node_id 0", "cluster_role witness"], 2, "cluster_role " + NEEDS_ID),
])
def test_bad_cluster_lines_name_file_and_line(tmp_path, lines, where, what):
    conf, r = check(tmp_path, lines)
    assert r.returncode == 1, r
    err = r.stderr.strip()
    assert ("%s:%d: " % (conf, where)) in err, err
    assert what in err, err


@pytest.mark.parametrize("change,where,what", [
    # (index in three_nodes() to replace or None to append, line, ...)
    ({4: "", 5: ""}, 3, "cluster_node_id 1 needs a cluster_peer line for each other node, or cluster_join true"),
    ({3: ""}, 3, "cluster_node_id 1 needs cluster_listener PORT [ADDRESS]"),
    ({None: "cluster_join true"}, 5, "cluster_peer: with cluster_join true (line 7) the node learns the cluster"),
    ({None: "persistence false"}, 3, "a cluster broker's state is the replicated log"),
    ({None: "cluster_role witness\npersistence false"}, 3,
     "a witness keeps the raft log in persistence_location/raft: not with persistence false"),
    ({5: "cluster_peer 1 127.0.0.1:17883"}, 6, "cluster_peer 1: this node's own cluster_node_id (line 3)"),
    ({5: "cluster_peer 3 127.0.0.1:17881"}, 6, "cluster_peer 3: 127.0.0.1:17881 is this node's own cluster_listener"),
    ({None: "cluster_heartbeat 200"}, 7, "cluster_heartbeat 200 ms is more than a third of cluster_election_timeout"
     " 500 ms"),
    ({None: "cluster_election_timeout 120"}, 7, "cluster_heartbeat 50 ms is more than a third of "
     "cluster_election_timeout 120 ms"),
    ({None: "cluster_role witness"}, 1, "listener: a witness (cluster_role witness, line 7) has no MQTT listeners"),
    ({0: "", None: "cluster_role witness\nhttp_listener 17890\nhttp_token_file /tmp/t\nlistener 17891"}, 10,
     "listener: a witness (cluster_role witness, line 7) has no MQTT listeners"),
    ({0: "listener 17881 0.0.0.0"}, 4, "cluster_listener 127.0.0.1:17881: the port of the MQTT listener on line 1"),
    ({None: "http_listener 17881\nhttp_token_file /tmp/t"}, 4,
     "cluster_listener 127.0.0.1:17881: the port of the http_listener on line 7"),
])
def test_bad_cluster_nodes_name_file_and_line(tmp_path, change, where, what):
    lines = three_nodes(tmp_path)
    for i, text in change.items():
        if i is None:
            lines.append(text)
        else:
            lines[i] = text
    conf, r = check(tmp_path, lines)
    assert r.returncode == 1, r
    err = r.stderr.strip()
    assert ("%s:%d: " % (conf, where)) in err, err
    assert what in err, err


def test_a_bad_cluster_config_refuses_to_start(tmp_path):
    """The same checks stop a start, before anything is opened."""
    lines = three_nodes(tmp_path) + ["cluster_heartbeat 400"]
    conf = tmp_path / "node.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([broker_bin(), "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0, r
    assert "%s:7: cluster_heartbeat 400 ms" % conf in r.stderr, r.stderr
    assert not (tmp_path / "data").exists()


def test_help_lists_the_cluster_options():
    out = subprocess.run([broker_bin(), "--help"], capture_output=True, text=True, check=True).stdout
    for opt in ("cluster_node_id N", "cluster_listener PORT [ADDRESS]", "cluster_peer N HOST:PORT [MQTT_HOST:PORT]",
                "cluster_role broker|witness", "cluster_election_timeout MS", "cluster_heartbeat MS",
                "cluster_join true|false"):
        assert re.search(r"^  %s\n      \S" % re.escape(opt), out, re.M), opt
