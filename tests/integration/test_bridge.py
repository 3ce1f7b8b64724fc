"""The edge-to-cloud bridge: real ferromq (and mosquitto) processes on
loopback. The edge spools what leaves through a bridge in its store until the
cloud's PUBACK; these tests count what arrives where."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import free_port, wait_for

MOSQUITTO = "/usr/sbin/mosquitto"


def bridge_lines(name, cloud_port, topics, version="mqttv50", extra=()):
    lines = ["connection %s" % name,
             "address 127.0.0.1:%d" % cloud_port,
             "bridge_protocol_version %s" % version,
             "restart_timeout 1 2",
             "keepalive_interval 5"]
    lines += ["topic %s" % t for t in topics]
    lines += list(extra)
    return lines


def collect(client_factory, broker, topic, protocol=5, qos=1):
    sub = client_factory(broker, protocol=protocol)
    sub.subscribe(topic, qos)
    return sub


def wait_connected(edge, name="cloud", timeout=10):
    edge.wait_log(r"bridge %s: connected to" % name, timeout)


def test_out_remaps_and_arrives_in_order(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['machines/# out 1 "" plant-detroit/']))
    sub = collect(client, cloud, "plant-detroit/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for i in range(200):
        pub.publish("machines/chiller-01/temperature", b"%d" % i, qos=1)
    pub.publish("other/topic", b"not bridged", qos=1)
    got = sub.messages.wait_for(200, timeout=15)
    assert [m.topic for m in got] == ["plant-detroit/machines/chiller-01/temperature"] * 200
    assert [int(m.payload) for m in got] == list(range(200))
    time.sleep(0.3)
    assert len(sub.messages) == 200
