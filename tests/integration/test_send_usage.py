"""Usage errors exit 64 and an unreadable message exits 66 (sysexits EX_NOINPUT), before any
delivery is attempted; --help succeeds."""

import pytest

from checks import assert_exit
from salvo_cli import EXIT_USAGE


MSG = object()   # stands for a valid message file


# Each case is otherwise complete (--from, --to, a readable message) so that the one
# thing wrong with it is what makes it a usage error.
@pytest.mark.parametrize("args", [
    ["--no-such-option", "--to", "a@b.test", MSG],
    [MSG],                                                              # no --to
    ["--to", "a@b.test", "--tls", "sometimes", MSG],                    # bad --tls value
    ["--to", "a@b.test", "--mx-port", "not-a-port", MSG],
    ["--to", "a@b.test", "--route", "missing-equals-sign", MSG],
    ["--to", "a@b.test", "--timeout-scale", "fast", MSG],
    ["--to"],                                                           # missing argument
], ids=["bad-option", "no-to", "bad-tls", "bad-mx-port", "bad-route",
        "bad-timeout-scale", "to-without-value"])
def test_usage_errors_exit_64(salvo, message, args):
    args = ["send", "--from", "sender@origin.test"] + [message() if a is MSG else a
                                                       for a in args]
    res = salvo.run(*args, stdin=b"")
    assert_exit(res, EXIT_USAGE)
    assert res.stderr.strip(), "a usage error should say what is wrong%s" % res


EXIT_NOINPUT = 66


def test_missing_message_file_exits_66(salvo):
    res = salvo.run("send", "--from", "sender@origin.test", "--to", "a@b.test",
                    "/nonexistent/message.eml")
    assert_exit(res, EXIT_NOINPUT)
    assert "No such file" in res.stderr, res


def test_unreadable_directory_as_file_exits_66(salvo, tmp_path):
    res = salvo.run("send", "--from", "sender@origin.test", "--to", "a@b.test", str(tmp_path))
    assert_exit(res, EXIT_NOINPUT)
    assert "directory" in res.stderr, res


def test_help_exits_0_and_documents_the_options(salvo):
    res = salvo.run("send", "--help")
    assert_exit(res, 0)
    text = res.stdout + res.stderr
    for opt in ("--to", "--from", "--resolver", "--mx-port", "--route", "--tls", "--json"):
        assert opt in text, "--help does not mention %s%s" % (opt, res)
