"""When stderr is systemd's journal (JOURNAL_STREAM names its device and
inode), log lines carry a <N> syslog priority and no time stamp of ours;
otherwise they are unchanged. The journal is played by the log file."""
import os
import re

from conftest import Broker


def start_with_journal(tmp_path, monkeypatch, stream, **options):
    b = Broker(tmp_path, options)
    open(b.logpath, "ab").close()
    st = os.stat(b.logpath)
    monkeypatch.setenv("JOURNAL_STREAM", stream(st))
    return b.start()


def test_journal_lines_have_priority_and_no_time(tmp_path, monkeypatch):
    b = start_with_journal(tmp_path, monkeypatch, lambda st: "%d:%d" % (st.st_dev, st.st_ino))
    b.stop()
    lines = b.log_text().splitlines()
    assert re.match(r"^<5>notice: ferromq \S+ starting$", lines[0]), lines[:3]
    assert any(re.match(r"^<5>notice: ready: \d+ workers$", l) for l in lines), lines
    assert all(re.match(r"^<[3-7]>(error|warning|notice|info|debug): ", l) for l in lines), lines
    assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:", l) for l in lines), lines


def test_journal_json_keeps_its_fields(tmp_path, monkeypatch):
    b = start_with_journal(tmp_path, monkeypatch, lambda st: "%d:%d" % (st.st_dev, st.st_ino),
                           log_format="json")
    b.stop()
    first = b.log_text().splitlines()[0]
    assert re.match(r'^<5>\{"time":"[^"]+","level":"notice","msg":"ferromq \S+ starting"\}$', first), first


def test_inherited_journal_stream_of_another_file_changes_nothing(tmp_path, monkeypatch):
    # A JOURNAL_STREAM that is not our stderr (inherited, stderr redirected).
    b = start_with_journal(tmp_path, monkeypatch, lambda st: "%d:%d" % (st.st_dev, st.st_ino + 1))
    b.stop()
    first = b.log_text().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z notice: ferromq \S+ starting$", first), first
