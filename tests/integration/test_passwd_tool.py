"""ferromq-passwd: create, add, update, delete; file mode and format; atomic
replacement; errors; and interoperability with mosquitto_passwd both ways
(its files pass our --check, our hashes check out independently)."""
import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
B64 = r"[A-Za-z0-9+/]"
PBKDF2_LINE = re.compile(r"^(?P<user>[^:]+):\$7\$(?P<it>\d+)\$(?P<salt>%s{16})\$(?P<hash>%s{86}==)$"
                         % (B64, B64))
SHA512_LINE = re.compile(r"^(?P<user>[^:]+):\$6\$(?P<salt>%s{16})\$(?P<hash>%s{86}==)$" % (B64, B64))


def tool():
    path = os.environ.get("FERROMQ_PASSWD") or os.path.join(REPO, "build", "ferromq-passwd")
    if not os.path.exists(path):
        pytest.fail("%s does not exist (set FERROMQ_PASSWD)" % path)
    return path


def run(*args, stdin=None):
    return subprocess.run([tool(), *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def lines(path):
    with open(path) as f:
        return f.read().splitlines()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def verify(line, password):
    """Checks a password line with Python's own hashlib."""
    m = PBKDF2_LINE.match(line)
    if m:
        salt, want = base64.b64decode(m["salt"]), base64.b64decode(m["hash"])
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(m["it"]))
        return got == want
    m = SHA512_LINE.match(line)
    assert m, line
    salt, want = base64.b64decode(m["salt"]), base64.b64decode(m["hash"])
    return hashlib.sha512(password.encode() + salt).digest() == want


def check(path, user, password):
    return run("--check", str(path), user, password).returncode


def test_help():
    r = run("--help")
    assert r.returncode == 0, r
    for opt in ("-c", "-b", "-D", "-I", "-H", "--check"):
        assert opt in r.stdout
    r = subprocess.run([tool()], capture_output=True, text=True)
    assert r.returncode != 0 and "Usage" in r.stderr


def test_create_add_update_delete(tmp_path):
    pw = tmp_path / "passwd"
    r = run("-c", "-b", str(pw), "alice", "secret pw")
    assert r.returncode == 0, r
    assert mode(pw) == 0o600
    (alice,) = lines(pw)
    m = PBKDF2_LINE.match(alice)
    assert m and m["user"] == "alice" and m["it"] == "101", alice
    assert verify(alice, "secret pw") and not verify(alice, "secret")

    # comments and blank lines survive; stdin (not a tty) gives the password
    with open(pw, "a") as f:
        f.write("# the plant gateways\n\n")
    r = run(str(pw), "dev7", stdin="gw-pass\n")
    assert r.returncode == 0, r
    got = lines(pw)
    assert got[:3] == [alice, "# the plant gateways", ""]
    assert PBKDF2_LINE.match(got[3])["user"] == "dev7" and verify(got[3], "gw-pass")

    # updating keeps the line in place and changes the salt
    r = run("-b", str(pw), "alice", "new pw")
    assert r.returncode == 0, r
    got = lines(pw)
    assert len(got) == 4 and got[0] != alice and got[0].startswith("alice:$7$101$")
    assert verify(got[0], "new pw")
    assert check(pw, "alice", "new pw") == 0
    assert check(pw, "alice", "secret pw") == 1
    assert check(pw, "dev7", "gw-pass") == 0

    r = run("-D", str(pw), "alice")
    assert r.returncode == 0, r
    got = lines(pw)
    assert got[:2] == ["# the plant gateways", ""] and got[2].startswith("dev7:")
    assert check(pw, "alice", "new pw") == 1
    assert mode(pw) == 0o600

    # -c overwrites
    r = run("-c", "-b", str(pw), "bob", "b")
    assert r.returncode == 0, r
    assert [ln.split(":")[0] for ln in lines(pw)] == ["bob"]


def test_mode_is_0600_even_if_it_was_not(tmp_path):
    pw = tmp_path / "passwd"
    assert run("-c", "-b", str(pw), "u", "p").returncode == 0
    os.chmod(pw, 0o644)
    assert run("-b", str(pw), "v", "q").returncode == 0
    assert mode(pw) == 0o600


def test_iterations_and_sha512(tmp_path):
    pw = tmp_path / "passwd"
    assert run("-c", "-I", "1000", "-b", str(pw), "a", "pa").returncode == 0
    assert run("-H", "sha512", "-b", str(pw), "b", "pb").returncode == 0
    assert run("-H", "sha512-pbkdf2", "-b", str(pw), "c", "pc").returncode == 0
    a, b, c = lines(pw)
    assert PBKDF2_LINE.match(a)["it"] == "1000" and verify(a, "pa")
    assert SHA512_LINE.match(b) and verify(b, "pb")
    assert PBKDF2_LINE.match(c)["it"] == "101" and verify(c, "pc")
    for user, password in (("a", "pa"), ("b", "pb"), ("c", "pc")):
        assert check(pw, user, password) == 0
        assert check(pw, user, password + "x") == 1


def test_atomic_replace_and_symlink(tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    assert run("-c", "-b", str(real), "u", "p").returncode == 0
    os.symlink(real, link)
    assert run("-b", str(link), "v", "q").returncode == 0
    assert os.path.islink(link)
    assert [ln.split(":")[0] for ln in lines(real)] == ["u", "v"]
    # no temporary files left behind
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


@pytest.mark.parametrize("args,message", [
    (["-c", "-D", "F", "u"], "-c and -D"),
    (["-b", "-D", "F", "u", "p"], "-b and -D"),
    (["F", "u", "p"], "needs -b"),
    (["-b", "F", "a:b", "p"], "username"),
    (["-b", "F", "#x", "p"], "username"),
    (["-b", "F", "u", ""], "password"),
    (["-I", "0", "-b", "F", "u", "p"], "-I"),
    (["-I", "x", "-b", "F", "u", "p"], "-I"),
    (["-H", "md5", "-b", "F", "u", "p"], "unknown hash"),
    (["-H", "sha512", "-I", "5", "-b", "F", "u", "p"], "-I applies"),
    (["-U", "F"], "not supported"),
    (["-q", "F", "u"], "unknown option"),
    (["F"], "missing"),
])
def test_usage_errors(tmp_path, args, message):
    pw = tmp_path / "passwd"
    assert run("-c", "-b", str(pw), "keep", "me").returncode == 0
    before = pw.read_text()
    r = run(*[str(pw) if a == "F" else a for a in args])
    assert r.returncode != 0, r
    assert message in r.stderr, r.stderr
    assert pw.read_text() == before


def test_file_errors(tmp_path):
    missing = tmp_path / "missing"
    r = run("-b", str(missing), "u", "p")
    assert r.returncode == 1 and "use -c" in r.stderr, r
    assert not missing.exists()

    pw = tmp_path / "passwd"
    assert run("-c", "-b", str(pw), "u", "p").returncode == 0
    r = run("-D", str(pw), "nobody")
    assert r.returncode == 1 and "nobody not found" in r.stderr, r

    # a file the broker would refuse is not modified
    with open(pw, "a") as f:
        f.write("broken line\n")
    before = pw.read_text()
    r = run("-b", str(pw), "v", "q")
    assert r.returncode == 1 and "%s:2:" % pw in r.stderr, r
    assert pw.read_text() == before
    pw.write_text(before.splitlines()[0] + "\n" + before.splitlines()[0] + "\n")
    r = run("-b", str(pw), "v", "q")
    assert r.returncode == 1 and "%s:2: user 'u' already defined on line 1" % pw in r.stderr, r


def test_check_exit_codes(tmp_path):
    pw = tmp_path / "passwd"
    assert run("-c", "-b", str(pw), "u", "p").returncode == 0
    assert check(pw, "u", "p") == 0
    assert check(pw, "u", "P") == 1
    assert check(pw, "nobody", "p") == 1
    assert check(tmp_path / "missing", "u", "p") == 2
    (tmp_path / "bad").write_text("u:plain\n")
    r = run("--check", str(tmp_path / "bad"), "u", "plain")
    assert r.returncode == 2 and "bad:1:" in r.stderr, r


def mosquitto_passwd(*args):
    if not os.path.exists(MOSQUITTO_PASSWD):
        pytest.skip("mosquitto_passwd is not installed")
    r = subprocess.run([MOSQUITTO_PASSWD, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    return r


def test_mosquitto_file_checks_with_ours(tmp_path):
    pw = tmp_path / "passwd"
    mosquitto_passwd("-c", "-b", str(pw), "alice", "secret pw")
    mosquitto_passwd("-H", "sha512", "-b", str(pw), "bob", "hunter2")
    mosquitto_passwd("-b", str(pw), "dev7", "gw pass with spaces")
    assert check(pw, "alice", "secret pw") == 0
    assert check(pw, "bob", "hunter2") == 0
    assert check(pw, "dev7", "gw pass with spaces") == 0
    assert check(pw, "alice", "hunter2") == 1
    assert check(pw, "bob", "secret pw") == 1
    assert check(pw, "carol", "x") == 1
    # and we can manage the file mosquitto_passwd made
    assert run("-b", str(pw), "carol", "c").returncode == 0
    assert run("-D", str(pw), "bob").returncode == 0
    assert [ln.split(":")[0] for ln in lines(pw)] == ["alice", "dev7", "carol"]
    assert check(pw, "alice", "secret pw") == 0


def test_our_file_is_read_by_mosquitto_passwd(tmp_path):
    # mosquitto_passwd rewrites the whole file: every line of ours must
    # survive it (it would drop lines it cannot parse).
    pw = tmp_path / "passwd"
    assert run("-c", "-b", str(pw), "alice", "a").returncode == 0
    assert run("-H", "sha512", "-b", str(pw), "bob", "b").returncode == 0
    assert run("-I", "2000", "-b", str(pw), "carol", "c").returncode == 0
    ours = lines(pw)
    mosquitto_passwd("-b", str(pw), "dave", "d")
    got = lines(pw)
    assert got[:3] == ours and got[3].startswith("dave:$7$")
    for user, password in (("alice", "a"), ("bob", "b"), ("carol", "c"), ("dave", "d")):
        assert check(pw, user, password) == 0


def prompt_session(args, answers):
    """Runs the tool on a pseudo-terminal, answering each prompt in turn.
    Returns (exit code, everything it wrote to the terminal)."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(tool(), [tool(), *args])
    out = b""
    pending = list(answers)
    answered = 0
    while True:
        r, _, _ = select.select([fd], [], [], 30)
        if not r:
            os.kill(pid, 9)
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        # Answer each prompt once, when it appears: the echoed newline after an
        # answer must not count as the next prompt (the tool flushes typed-ahead
        # input when it turns echo off for the next one).
        if pending and out.lower().count(b"password:") > answered \
                and out.rstrip().lower().endswith(b"password:"):
            answered += 1
            os.write(fd, pending.pop(0).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_prompt_twice_without_echo(tmp_path):
    pw = tmp_path / "passwd"
    code, out = prompt_session(["-c", str(pw), "alice"], ["s3cret!", "s3cret!"])
    assert code == 0, out
    assert "Password:" in out and "Reenter password:" in out
    assert "s3cret!" not in out  # not echoed
    assert check(pw, "alice", "s3cret!") == 0

    code, out = prompt_session([str(pw), "bob"], ["one", "two"])
    assert code == 1 and "do not match" in out, out
    assert [ln.split(":")[0] for ln in lines(pw)] == ["alice"]
