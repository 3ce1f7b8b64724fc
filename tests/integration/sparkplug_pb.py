"""Sparkplug B payloads for the tests: the broker's own schema
(src/sparkplug/sparkplug_b.proto) compiled with Debian's protoc into a
temporary directory at first use, and imported (Debian python3-protobuf)."""
import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(REPO, "src", "sparkplug")
NS = "spBv1.0"

_pb = None


def pb():
    """The generated module sparkplug_b_pb2."""
    global _pb
    if _pb is None:
        out = tempfile.mkdtemp(prefix="spb-pb2-")
        atexit.register(shutil.rmtree, out, True)
        subprocess.run(["protoc", "--python_out=" + out, "-I" + PROTO_DIR,
                        os.path.join(PROTO_DIR, "sparkplug_b.proto")], check=True)
        sys.path.insert(0, out)
        try:
            _pb = importlib.import_module("sparkplug_b_pb2")
        finally:
            sys.path.remove(out)
    return _pb


def now_ms():
    return int(time.time() * 1000)


def payload(seq=None, timestamp=None, bdseq=None, metrics=()):
    """Serialized Payload. metrics: (name, alias, datatype, value) with value an
    int (long_value), float (double_value) or str."""
    m = pb()
    p = m.Payload()
    p.timestamp = now_ms() if timestamp is None else timestamp
    if seq is not None:
        p.seq = seq
    if bdseq is not None:
        x = p.metrics.add()
        x.name = "bdSeq"
        x.datatype = m.Int64
        x.long_value = bdseq
    for name, alias, dtype, value in metrics:
        x = p.metrics.add()
        if name:
            x.name = name
        if alias is not None:
            x.alias = alias
        x.datatype = dtype
        if isinstance(value, float):
            x.double_value = value
        elif isinstance(value, str):
            x.string_value = value
        else:
            x.long_value = value
    return p.SerializeToString()


def nbirth(bdseq, seq=0, n_metrics=2, timestamp=None):
    m = pb()
    metrics = [("Node Control/Rebirth", None, m.Boolean, 0)]
    metrics += [("m%d" % i, i + 1, m.Double, float(i)) for i in range(n_metrics - 1)]
    return payload(seq=seq, bdseq=bdseq, metrics=metrics, timestamp=timestamp)


def ndeath(bdseq, timestamp=None):
    """An NDEATH: bdSeq only, no seq."""
    return payload(bdseq=bdseq, timestamp=timestamp)


def decode(data):
    p = pb().Payload()
    p.ParseFromString(data)
    return p


def bdseq_of(p):
    for x in p.metrics:
        if x.name == "bdSeq":
            return x.long_value
    return None


def state(online, timestamp=None):
    return json.dumps({"online": online, "timestamp": now_ms() if timestamp is None else timestamp}).encode()


def topic(group, mtype, edge, device=None, ns=NS):
    return "/".join([ns, group, mtype, edge] + ([device] if device else []))


def cert(t):
    return "$sparkplug/certificates/" + t
