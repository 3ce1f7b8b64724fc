"""Log destinations and levels: log_dest file/stderr/syslog/none, log_type."""
import os
import re

from conftest import wait_for


def test_log_dest_file_gets_connect_and_disconnect_lines(start_broker, raw, tmp_path):
    path = str(tmp_path / "ferromq.log")
    b = start_broker(extra_lines=["log_dest file %s" % path])
    r = raw(b, 5)
    assert r.connect("logged-client").rc == 0
    r.disconnect()
    text = wait_for(lambda: "logged-client disconnected" in open(path).read() and open(path).read(),
                    what="disconnect line in the log file")
    assert "client logged-client connected from 127.0.0.1:" in text
    assert "(0x00)" in text
    # The first log_dest replaced the default: nothing on stderr but sanitizer output.
    assert "logged-client" not in b.log_text()


def test_log_dest_file_and_stderr(start_broker, raw, tmp_path):
    path = str(tmp_path / "both.log")
    b = start_broker(extra_lines=["log_dest file %s" % path, "log_dest stderr"])
    r = raw(b, 4)
    assert r.connect("twice").rc == 0
    r.disconnect()
    wait_for(lambda: "twice" in open(path).read(), what="file line")
    wait_for(lambda: "twice" in b.log_text(), what="stderr line")


def test_log_dest_syslog_and_none_start(start_broker, raw):
    for dest in ("syslog", "none"):
        b = start_broker(extra_lines=["log_dest %s" % dest])
        r = raw(b, 4)
        assert r.connect("quiet-" + dest).rc == 0
        r.disconnect()
        assert "quiet-" + dest not in b.log_text()
        b.stop()


def test_log_type_error_only_hides_info(tmp_path):
    import subprocess
    import socket
    import time
    from conftest import broker_bin, free_port
    import mqttraw as M
    port = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text("listener %d 127.0.0.1\npersistence false\nlog_type error\n" % port)
    logp = tmp_path / "log"
    with open(logp, "wb") as lf:
        p = subprocess.Popen([broker_bin(), "-c", str(conf)], stdout=lf, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _connectable(port), what="listening")
            r = M.RawClient(port, 4)
            assert r.connect("hidden").rc == 0
            r.disconnect()
            time.sleep(0.2)  # give a wrongly-logged line the chance to appear
        finally:
            p.terminate()
            assert p.wait(10) == 0
    assert "hidden" not in logp.read_text()


def _connectable(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_log_format_json_carries_client_fields(start_broker, client):
    import json
    b = start_broker(log_format="json")
    c = client(b, "json-client", protocol=5)
    c.disconnect()
    b.wait_log(r'"msg":"client json-client disconnected')
    lines = [json.loads(line) for line in b.log_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "msg"} <= set(x) for x in lines)
    conn = [x for x in lines if x["msg"].startswith("client json-client connected")][0]
    assert conn["level"] == "info" and conn["client_id"] == "json-client"
    assert conn["address"].startswith("127.0.0.1:") and conn["protocol"] == "mqttv5"
    assert conn["identity"] is None and conn["username"] is None and conn["reason_code"] == 0
    gone = [x for x in lines if x["msg"].startswith("client json-client disconnected")][0]
    assert gone["reason_code"] == 0 and gone["client_id"] == "json-client"


def test_text_lines_name_reason_address_identity(start_broker, raw):
    b = start_broker()
    r = raw(b, 5)
    assert r.connect("text-client", username="alice").rc == 0
    r.disconnect()
    b.wait_log(r"client text-client disconnected \(0x00\) from 127\.0\.0\.1:\d+, identity -")
    assert re.search(r"client text-client connected from 127\.0\.0\.1:\d+ \(v5, .*username alice, "
                     r"identity -\) \(0x00\)", b.log_text())
