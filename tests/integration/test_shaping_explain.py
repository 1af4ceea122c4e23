"""`salvo shaping explain DOMAIN`: the effective limits for a destination, one line per field
with its value and the level it came from (docs/shaping.md, "Levels and precedence"), and
the rules file's validation (unknown fields are errors naming the field's path; exit 78,
the configuration-error status, for `explain` and for `salvo run`)."""

import json
import os
import re

import pytest

import servers
from conftest import REPO

SHIPPED = os.path.join(REPO, "etc", "shaping.json")
EX_CONFIG = 78
EX_USAGE = 64

FIELDS = ["max_connections", "max_new_connections_per_minute", "max_msgs_per_second",
          "max_msgs_per_minute", "max_msgs_per_hour", "burst", "max_msgs_per_connection",
          "max_rcpts_per_txn", "retry_schedule_s", "max_age_s", "tls", "timeouts.connect_ms",
          "timeouts.greeting_ms", "timeouts.ehlo_ms", "timeouts.starttls_ms",
          "timeouts.auth_ms", "timeouts.mail_ms", "timeouts.rcpt_ms", "timeouts.data_ms",
          "timeouts.data_block_ms", "timeouts.end_ms", "timeouts.rset_ms",
          "timeouts.quit_ms", "timeouts.idle_ms", "replica_local"]


def explain(salvo, *args):
    res = salvo.run("shaping", "explain", *args, json_out=False)
    return res


def parse(res):
    """{field: (value, provenance)} and {header: value} from explain's output."""
    assert res.rc == 0, "salvo shaping explain failed%s" % res
    fields, header = {}, {}
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^(destination|source|MX hosts|provider|shared with|rules file):\s*(.*)$",
                     line)
        if m:
            header[m.group(1)] = m.group(2).strip()
            continue
        parts = line.split(None, 2)
        assert parts[0] in FIELDS, "unexpected explain line %r%s" % (line, res)
        assert len(parts) == 3, "explain line without a value and a provenance: %r%s" % (
            line, res)
        fields[parts[0]] = (parts[1], parts[2].strip())
    assert sorted(fields) == sorted(FIELDS), "explain listed %s%s" % (sorted(fields), res)
    return fields, header


def shipped():
    with open(SHIPPED) as f:
        return json.load(f)


def rules_file(tmp_path, rules, name="rules.json"):
    p = tmp_path / name
    p.write_text(rules if isinstance(rules, str) else json.dumps(rules))
    return str(p)


def test_shipped_rules_gmail_by_mx(salvo):
    f, h = parse(explain(salvo, "gmail.com", "--rules", SHIPPED, "--mx", "aspmx.l.google.com"))
    assert h["provider"] == "gmail", h
    assert h["shared with"] == "provider:gmail", h
    assert "aspmx.l.google.com" in h["MX hosts"], h
    gmail = shipped()["providers"][0]
    assert gmail["name"] == "gmail"
    expect = {
        "max_connections": "10", "max_new_connections_per_minute": "60",
        "max_msgs_per_second": "10", "max_msgs_per_minute": "300",
        "max_msgs_per_hour": "10000", "burst": "20", "max_msgs_per_connection": "100",
        "max_rcpts_per_txn": "100", "retry_schedule_s": "300,600,1200,1800,3600,7200,14400",
        "tls": "required"}
    for k, v in expect.items():
        assert f[k] == (v, "provider gmail"), (k, f[k])
    # not in the gmail block: from the file's defaults
    assert f["max_age_s"] == ("259200", "defaults"), f["max_age_s"]


def test_workspace_domain_matched_by_mx_only(salvo):
    # A Workspace customer: not a gmail domain suffix, but Google MX hosts.
    f, h = parse(explain(salvo, "customer.example", "--rules", SHIPPED,
                         "--mx", "ASPMX.L.GOOGLE.COM.", "--mx", "alt1.aspmx.l.google.com"))
    assert h["provider"] == "gmail", h
    assert f["max_connections"] == ("10", "provider gmail"), f
    # and a name that only ends in the same letters does not match (label boundary)
    f, h = parse(explain(salvo, "customer.example", "--rules", SHIPPED,
                         "--mx", "mx.notgoogle.com"))
    assert h["provider"] == "(none matched)", h
    assert f["max_connections"] == ("5", "defaults"), f
    assert f["tls"] == ("opportunistic", "defaults"), f


def test_provider_by_domain_suffix_without_mx(salvo):
    f, h = parse(explain(salvo, "Mail.Yahoo.com.", "--rules", SHIPPED, "--mx", "mx.other.example"))
    assert h["provider"] == "yahoo", h
    assert f["max_rcpts_per_txn"] == ("20", "provider yahoo"), f


def test_domain_rule_overrides_provider_value(salvo, tmp_path):
    rules = shipped()
    rules["domains"] = {"gmail.com": {"max_msgs_per_second": 2.5, "max_msgs_per_hour": None,
                                      "timeouts": {"end_ms": 900000}}}
    path = rules_file(tmp_path, rules)
    f, h = parse(explain(salvo, "gmail.com", "--rules", path, "--mx", "aspmx.l.google.com"))
    assert h["provider"] == "gmail", h
    assert f["max_msgs_per_second"] == ("2.5", "domain gmail.com"), f
    # null: "no limit", overriding the provider's 10000
    assert f["max_msgs_per_hour"] == ("none", "domain gmail.com"), f
    assert f["timeouts.end_ms"] == ("900000", "domain gmail.com"), f
    # the rest field by field from the provider
    assert f["max_connections"] == ("10", "provider gmail"), f
    assert f["burst"] == ("20", "provider gmail"), f
    # exact domain only: a subdomain is not covered by the domain rule
    f, _ = parse(explain(salvo, "sub.gmail.com", "--rules", path, "--mx", "aspmx.l.google.com"))
    assert f["max_msgs_per_second"] == ("10", "provider gmail"), f
    # the domain rule matches case-insensitively, ignoring a trailing dot
    f, _ = parse(explain(salvo, "GMail.COM.", "--rules", path, "--mx", "aspmx.l.google.com"))
    assert f["max_msgs_per_second"] == ("2.5", "domain gmail.com"), f


def test_config_is_the_base_level(salvo, tmp_path):
    path = rules_file(tmp_path, {"defaults": {"burst": 3}})
    f, _ = parse(explain(salvo, "plain.example", "--rules", path, "--mx", "mx.plain.example",
                         "--set", "delivery.max_conns_per_dest=7",
                         "--set", "delivery.max_rcpts_per_txn=33",
                         "--set", "retry.schedule_s=11,22"))
    assert f["max_connections"] == ("7", "config"), f
    assert f["max_rcpts_per_txn"] == ("33", "config"), f
    assert f["retry_schedule_s"] == ("11,22", "config"), f
    assert f["burst"] == ("3", "defaults"), f
    # a rule still wins over the configuration
    path = rules_file(tmp_path, {"defaults": {"max_connections": 4}}, "r2.json")
    f, _ = parse(explain(salvo, "plain.example", "--rules", path, "--mx", "mx.plain.example",
                         "--set", "delivery.max_conns_per_dest=7"))
    assert f["max_connections"] == ("4", "defaults"), f
    # a configuration file is the base level too
    cfg = tmp_path / "salvo.json"
    cfg.write_text(json.dumps({"delivery": {"max_conns_per_dest": 9, "max_msgs_per_conn": 12},
                               "shaping": {"file": path}}))
    f, h = parse(explain(salvo, "plain.example", "--config", str(cfg),
                         "--mx", "mx.plain.example"))
    assert h["rules file"] == path, h
    assert f["max_connections"] == ("4", "defaults"), f
    assert f["max_msgs_per_connection"] == ("12", "config"), f
    # with no rules at all the configuration alone applies
    f, h = parse(explain(salvo, "plain.example", "--mx", "mx.plain.example",
                         "--set", "delivery.max_conns_per_dest=7"))
    assert f["max_connections"] == ("7", "config"), f


def test_level_one_is_labelled_config(salvo, tmp_path):
    """docs/shaping.md: level 1 is "config" -- the configuration's values, and the built-in
    ones for the fields the configuration has no setting for (no rates, burst 0,
    replica_local false); explain labels all of them "config"."""
    path = rules_file(tmp_path, {"defaults": {"max_connections": 4}})
    f, _ = parse(explain(salvo, "plain.example", "--rules", path, "--mx", "mx.plain.example"))
    assert f["max_connections"] == ("4", "defaults"), f
    expect = {"replica_local": "false", "burst": "0", "max_msgs_per_second": "none",
              "max_msgs_per_minute": "none", "max_msgs_per_hour": "none",
              "max_new_connections_per_minute": "none", "max_msgs_per_connection": "100",
              "timeouts.connect_ms": "30000", "timeouts.idle_ms": "5000",
              "tls": "opportunistic", "max_age_s": "259200"}
    for k, v in expect.items():
        assert f[k] == (v, "config"), (k, f[k])
    labels = {p for _, p in f.values()}
    assert labels <= {"config", "defaults"}, labels


def test_source_levels(salvo, tmp_path):
    rules = shipped()
    rules["domains"] = {"partner.example": {"tls": "verify"}}
    rules["sources"] = {
        "ip-a": {"defaults": {"max_msgs_per_hour": 500, "replica_local": True},
                 "providers": {"gmail": {"max_connections": 20}},
                 "domains": {"gmail.com": {"burst": 7}, "partner.example": {"max_age_s": 600}}}}
    path = rules_file(tmp_path, rules)
    f, h = parse(explain(salvo, "gmail.com", "--rules", path, "--mx", "aspmx.l.google.com",
                         "--source", "ip-a"))
    assert h["source"] == "ip-a", h
    assert f["max_msgs_per_hour"] == ("500", "source ip-a defaults"), f
    assert f["replica_local"] == ("true", "source ip-a defaults"), f
    assert f["max_connections"] == ("20", "source ip-a provider gmail"), f
    assert f["burst"] == ("7", "source ip-a domain gmail.com"), f
    assert f["max_msgs_per_second"] == ("10", "provider gmail"), f
    f, _ = parse(explain(salvo, "partner.example", "--rules", path, "--mx", "mx.partner.example",
                         "--source", "ip-a"))
    assert f["tls"] == ("verify", "domain partner.example"), f
    assert f["max_age_s"] == ("600", "source ip-a domain partner.example"), f
    assert f["max_connections"] == ("5", "defaults"), f      # not a gmail site
    # without the source, none of its levels
    f, _ = parse(explain(salvo, "gmail.com", "--rules", path, "--mx", "aspmx.l.google.com"))
    assert f["max_connections"] == ("10", "provider gmail"), f
    assert f["replica_local"][0] == "false", f


def test_mx_looked_up_selects_provider_and_site(net, salvo, tmp_path):
    zone = (servers.DnsZone()
            .mx("one.test", "mx1.hoster.test", 10).mx("one.test", "MX2.hoster.test", 20)
            .mx("two.test", "mx2.hoster.test", 5).mx("two.test", "mx1.hoster.test", 50)
            .a("mx1.hoster.test", "127.0.0.1").a("mx2.hoster.test", "127.0.0.1"))
    dns = net.dns(zone)
    path = rules_file(tmp_path, {"providers": [
        {"name": "hoster", "mx_suffixes": ["mx2.hoster.test"], "limits": {"max_connections": 2}}]})
    f, h = parse(explain(salvo, "one.test", "--rules", path, "--resolver", dns.resolver))
    assert h["provider"] == "hoster", h
    assert "mx1.hoster.test" in h["MX hosts"].lower(), h
    assert f["max_connections"] == ("2", "provider hoster"), f
    # without a provider rule, MX rollup: the same sorted, lowercased host set for both
    path2 = rules_file(tmp_path, {"defaults": {"burst": 1}}, "r2.json")
    sites = []
    for dom in ("one.test", "two.test"):
        f, h = parse(explain(salvo, dom, "--rules", path2, "--resolver", dns.resolver))
        assert h["provider"] == "(none matched)", h
        sites.append(h["shared with"])
    assert sites[0] == sites[1] == "mx:mx1.hoster.test,mx2.hoster.test", sites


BAD_FILES = [
    # (what, rules text, words the error must contain)
    ("unknown field in defaults", {"defaults": {"max_conections": 3}},
     ["defaults.max_conections"]),
    ("unknown field in a provider's limits",
     {"providers": [{"name": "p", "domain_suffixes": ["p.example"],
                     "limits": {"max_msgs_per_secnd": 3}}]},
     ["providers[0].limits.max_msgs_per_secnd"]),
    ("unknown top-level field", {"domain": {}}, ["domain"]),
    ("unknown timeout", {"domains": {"a.example": {"timeouts": {"connect_s": 3}}}},
     ["connect_s"]),
    ("rate of zero", {"defaults": {"max_msgs_per_second": 0}},
     ["defaults.max_msgs_per_second"]),
    ("string for a number", {"defaults": {"max_connections": "3"}},
     ["defaults.max_connections"]),
    ("bad tls", {"defaults": {"tls": "sometimes"}}, ["defaults.tls"]),
    # a repeated key is reported by the JSON reader with its position and the key's name
    ("repeated key", '{"defaults": {"burst": 1, "burst": 2}}', ["duplicate", "burst", "line 1"]),
    ("provider matching nothing", {"providers": [{"name": "p", "limits": {}}]},
     ["providers[0]"]),
    ("provider name twice", {"providers": [{"name": "p", "domain_suffixes": ["a.example"]},
                                           {"name": "p", "domain_suffixes": ["b.example"]}]},
     ["providers[1].name"]),
    ("bad provider name", {"providers": [{"name": "a b", "domain_suffixes": ["a.example"]}]},
     ["providers[0].name"]),
    ("empty retry schedule", {"defaults": {"retry_schedule_s": []}},
     ["defaults.retry_schedule_s"]),
    ("max_connections out of range", {"defaults": {"max_connections": 0}},
     ["defaults.max_connections"]),
    ("same domain twice, different case", {"domains": {"A.example": {}, "a.example": {}}},
     ["a.example"]),
    ("source for an undeclared provider",
     {"sources": {"s": {"providers": {"nope": {"burst": 1}}}}}, ["nope"]),
    ("not JSON", '{"defaults": ', []),
]


@pytest.mark.parametrize("what,rules,words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_rules_file_is_a_config_error_naming_the_field(salvo, tmp_path, what, rules, words):
    path = rules_file(tmp_path, rules)
    res = explain(salvo, "x.example", "--rules", path, "--mx", "mx.x.example")
    assert res.rc == EX_CONFIG, "expected exit %d for %s%s" % (EX_CONFIG, what, res)
    assert res.stdout.strip() == "", "explain printed limits for a bad file%s" % res
    for w in words:
        assert w in res.stderr, "error does not name %r%s" % (w, res)


def test_missing_rules_file_and_usage(salvo, tmp_path):
    res = explain(salvo, "x.example", "--rules", str(tmp_path / "nope.json"), "--mx", "m.example")
    assert res.rc == EX_CONFIG and "nope.json" in res.stderr, res
    res = explain(salvo, "--mx", "m.example")
    assert res.rc == EX_USAGE, res
    res = explain(salvo, "a.example", "b.example")
    assert res.rc == EX_USAGE, res
    res = salvo.run("shaping", "frobnicate", json_out=False)
    assert res.rc == EX_USAGE, res


def test_run_refuses_a_bad_rules_file(salvo, tmp_path):
    path = rules_file(tmp_path, {"defaults": {"max_conections": 3}})
    # 127.0.0.1:1 -- nothing listens; the rules file is checked before Redis is needed
    res = salvo.run("run", "--redis", "redis://127.0.0.1:1", "--instance", "x",
                    "--set", "shaping.file=%s" % path, json_out=False, guard_s=30)
    assert res.rc == EX_CONFIG, res
    assert "defaults.max_conections" in res.stderr, res
