"""Password file and ACL enforced by the broker: CONNACK codes, denied
publishes and subscriptions, per-delivery read checks, $SYS, SIGHUP reload.
The plant rules from the security issue are checked exactly."""
import os
import signal
import subprocess

import mqttraw as M
import pytest
from conftest import PROTOCOLS, REPO, broker_bin, connect_raw, wait_for

PASSWD_BIN = os.environ.get("FERROMQ_PASSWD") or os.path.join(REPO, "build", "ferromq-passwd")

PLANT_ACL = """# gateways: username = device id
pattern write plants/+/devices/%u/#
pattern read plants/+/devices/%u/commands/#

user cloud-historian
topic read plants/+/devices/+/#

user ops
topic write plants/+/devices/+/commands/#

user admin
topic read $SYS/#
"""


def make_passwd(path, users):
    first = True
    for user, pw in users.items():
        args = [PASSWD_BIN] + (["-c"] if first else []) + ["-b", str(path), user, pw]
        subprocess.run(args, check=True, capture_output=True)
        first = False


@pytest.fixture
def secured(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    make_passwd(pw, {"dev7": "s7", "dev8": "s8", "cloud-historian": "hist", "ops": "ops", "admin": "adm"})
    acl = tmp_path / "acl"
    acl.write_text(PLANT_ACL)
    return start_broker(allow_anonymous="false", password_file=str(pw), acl_file=str(acl))


def login(raw, b, user, pw, proto=4, cid=None, **kw):
    return connect_raw(raw, b, cid or user, proto, username=user, password=pw, **kw)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_bad_credentials_refused(secured, raw, proto):
    for user, pw in (("dev7", "wrong"), ("nobody", "s7"), ("dev7", "")):
        r = raw(secured, proto)
        ca = r.connect("x-" + user, username=user, password=pw)
        assert ca.rc == (0x86 if proto == 5 else 4), (user, ca)
    r = raw(secured, proto)
    ca = r.connect("anon")  # allow_anonymous false, no username
    assert ca.rc == (0x87 if proto == 5 else 5), ca
    assert login(raw, secured, "dev7", "s7", proto)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_gateway_publishes_only_its_own_tree(secured, raw, proto):
    cloud = login(raw, secured, "cloud-historian", "hist", proto)
    assert cloud.subscribe([("plants/+/devices/+/#", 1)]).codes == [1]
    gw = login(raw, secured, "dev7", "s7", proto)
    ack = gw.publish("plants/p1/devices/dev7/temp", b"21.5", qos=1)
    assert ack.rc in (None, 0)
    p = cloud.expect(M.PUBLISH)
    assert (p.topic, p.payload) == ("plants/p1/devices/dev7/temp", b"21.5")
    cloud.ack(p)
    ack = gw.publish("plants/p1/devices/dev8/temp", b"spoofed", qos=1)
    if proto == 5:
        assert ack.rc == 0x87, ack
    else:
        assert ack.type == M.PUBACK  # v3 has no reason code: acknowledged, dropped silently
    assert cloud.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_gateway_subscribes_only_its_own_commands(secured, raw, proto):
    gw = login(raw, secured, "dev7", "s7", proto)
    denied = 0x87 if proto == 5 else 0x80
    ack = gw.subscribe([("plants/p1/devices/dev7/commands/#", 1),
                        ("plants/p1/devices/dev8/commands/#", 1),
                        ("plants/+/devices/+/commands/#", 1),
                        ("plants/p1/devices/dev7/temp", 1)])
    assert ack.codes == [1, denied, denied, denied], ack.codes
    ops = login(raw, secured, "ops", "ops", proto)
    ops.publish("plants/p1/devices/dev7/commands/start", b"go", qos=1)
    p = gw.expect(M.PUBLISH)
    assert p.topic == "plants/p1/devices/dev7/commands/start"
    gw.ack(p)
    ops.publish("plants/p1/devices/dev8/commands/start", b"not yours", qos=1)
    assert gw.quiet(0.3) == []


def test_sys_readable_only_by_allowed_users(secured, raw):
    gw = login(raw, secured, "dev7", "s7", 5)
    assert gw.subscribe([("$SYS/#", 0)]).codes == [0x87]
    admin = login(raw, secured, "admin", "adm", 5)
    assert admin.subscribe([("$SYS/#", 0)]).codes == [0]
    cloud = login(raw, secured, "cloud-historian", "hist", 5)
    assert cloud.subscribe([("#", 0)]).codes == [0x87]  # wider than its read rule


def test_delivery_checked_against_deny(start_broker, raw, tmp_path):
    """A granted wildcard subscription that overlaps a deny rule: the denied
    topics are not delivered."""
    acl = tmp_path / "acl"
    acl.write_text("topic read sensors/#\ntopic deny sensors/secret/#\ntopic write sensors/#\n")
    b = start_broker(acl_file=str(acl))
    sub = connect_raw(raw, b, "anon-sub", 5)
    assert sub.subscribe([("sensors/#", 1)]).codes == [1]
    pub = connect_raw(raw, b, "anon-pub", 5)
    pub.publish("sensors/secret/key", b"no", qos=1)
    pub.publish("sensors/temp", b"yes", qos=1)
    p = sub.expect(M.PUBLISH)
    assert p.topic == "sensors/temp"


def test_sighup_reloads_passwords(secured, raw, tmp_path):
    assert login(raw, secured, "dev7", "s7", 4)
    make_passwd(tmp_path / "passwd", {"dev7": "new-secret"})
    secured.proc.send_signal(signal.SIGHUP)
    def new_password_works():
        r = raw(secured, 4)
        return r.connect("dev7-reload", username="dev7", password="new-secret").rc == 0
    wait_for(new_password_works, what="new password accepted after SIGHUP")
    r = raw(secured, 4)
    assert r.connect("dev7-old", username="dev7", password="s7").rc == 4


def test_check_config_reports_acl_line(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("user a\ntopic read ok/#\ntopic read bad/#/x\n")
    conf = tmp_path / "c.conf"
    conf.write_text("listener 1883\nacl_file %s\n" % acl)
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "%s:3:" % acl in r.stderr, r.stderr
