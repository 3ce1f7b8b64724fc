"""A plant's health map from retained wills, across a broker crash (README,
"A plant's health map"): a gateway with a persistent session gets its will
published when the broker restarts; a clean session's will is not kept, so
its retained "online" stays although the gateway is gone."""
from conftest import wait_for


def gateway(client, b, client_id, clean):
    topic = "plant/health/" + client_id
    g = client(b, client_id, protocol=4, clean=clean,
               will=dict(topic=topic, payload=b"offline", qos=1, retain=True))
    g.publish(topic, b"online", qos=1, retain=True)
    # A SUBACK follows the commit of everything before it: the session, its
    # will and the retained "online" are on disk.
    g.subscribe("plant/commands/" + client_id, qos=1)
    return g


def test_persistent_gateway_will_survives_a_crash(start_broker, client):
    b = start_broker()
    durable = gateway(client, b, "gw-durable", clean=False)
    clean = gateway(client, b, "gw-clean", clean=True)
    b.kill9()
    for g in (durable, clean):
        g.close()
    b.start()
    watcher = client(b, "health-map", protocol=4)
    watcher.subscribe("plant/health/#", qos=1)

    def latest():
        return {m.topic: m.payload for m in watcher.messages.snapshot()}

    wait_for(lambda: latest().get("plant/health/gw-durable") == b"offline", timeout=10,
             what="the persistent gateway's will after the restart")
    assert latest().get("plant/health/gw-clean") == b"online"
