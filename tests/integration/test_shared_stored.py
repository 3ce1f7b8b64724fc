"""A $share member whose queued messages are held only in the store ends
(a Clean Start discards its session): the broker stays up, the group goes
on with its other members, and the log says those messages were not handed
to another member. Resharing read such an entry's store id as
a message pointer (a crash, found by tests/fuzz/fuzz_handlers)."""
import mqttraw as M
from conftest import assert_broker_alive, connect_raw


def test_member_ends_with_messages_in_the_store(start_broker, raw):
    b = start_broker()
    m1 = connect_raw(raw, b, "shs-m1", clean=False)
    m1.subscribe([("$share/g/shs/#", 1)])
    m1.disconnect()
    m1.close()
    pub = connect_raw(raw, b, "shs-pub")
    # Queued for the offline member, committed: their bodies leave memory.
    for i in range(2):
        assert pub.publish("shs/x", b"offline-%d" % i, 1, pid=i + 1).rc == 0
    m2 = connect_raw(raw, b, "shs-m2")
    m2.subscribe([("$share/g/shs/#", 1)])
    again = connect_raw(raw, b, "shs-m1", clean=True)  # ends the old session
    assert pub.publish("shs/x", b"after", 1, pid=9).rc == 0
    got = []
    while True:
        try:
            pk = m2.expect(M.PUBLISH, timeout=2.0)
        except TimeoutError:
            break
        got.append(pk.payload)
        m2.ack(pk)
    assert b"after" in got, got
    # What the ended session still held only in the store is not resent: said.
    assert "session shs-m1 ended with 2 $share messages whose body is only in the store" in b.log_text()
    again.close()
    assert_broker_alive(b)
