/* tests/unit/schedulers/test_failure_policy.c — the key rows of the failure classification
 * table and the names used in logs and events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "schedulers/failure_policy.h"

#define TEMP FAIL_TEMPORARY
#define PERM FAIL_PERMANENT

static void expect(enum fail_phase ph, enum fail_transport t, int code, int ec, int es, int ed,
                   enum fail_scope scope, enum fail_class cls, enum fail_action act)
{
    struct fail_verdict v = fail_classify(ph, t, code, ec, es, ed);
    if (v.scope != scope || v.cls != cls || v.action != act)
        fail_msg("%s t=%d %d %d.%d.%d: got %s/%d/%s, want %s/%d/%s", fail_phase_to_text(ph),
                 (int)t, code, ec, es, ed, fail_scope_to_text(v.scope), (int)v.cls,
                 fail_action_to_text(v.action), fail_scope_to_text(scope), (int)cls,
                 fail_action_to_text(act));
}

static void test_transport_before_mail(void **state)
{
    (void)state;
    const enum fail_transport ts[] = { FAIL_T_TIMEOUT, FAIL_T_REFUSED, FAIL_T_UNREACHABLE,
                                       FAIL_T_RESET };
    const enum fail_phase phs[] = { FAIL_PHASE_CONNECT, FAIL_PHASE_GREETING, FAIL_PHASE_EHLO,
                                    FAIL_PHASE_STARTTLS, FAIL_PHASE_TLS };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        for (size_t j = 0; j < sizeof phs / sizeof phs[0]; j++)
            expect(phs[j], ts[i], 0, 0, 0, 0, FAIL_SCOPE_HOST, TEMP, FAIL_ACT_NEXT_HOST);
}

static void test_transport_in_session(void **state)
{
    (void)state;
    expect(FAIL_PHASE_RCPT, FAIL_T_TIMEOUT, 0, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_MAIL, FAIL_T_RESET, 0, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
    /* After end-of-data the server may hold the message: no rush to a second MX. */
    expect(FAIL_PHASE_BODY, FAIL_T_TIMEOUT, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_BODY, FAIL_T_PROTOCOL, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_GREETING, FAIL_T_PROTOCOL, 0, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_TLS, FAIL_T_TLS, 0, 0, 0, 0, FAIL_SCOPE_HOST, TEMP, FAIL_ACT_NEXT_HOST);
}

static void test_dns_and_local(void **state)
{
    (void)state;
    expect(FAIL_PHASE_DNS, FAIL_T_DNS_TEMP, 0, 0, 0, 0, FAIL_SCOPE_DOMAIN, TEMP,
           FAIL_ACT_DEFER_DOMAIN);
    expect(FAIL_PHASE_DNS, FAIL_T_DNS_PERM, 0, 0, 0, 0, FAIL_SCOPE_DOMAIN, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_DNS, FAIL_T_NULLMX, 0, 0, 0, 0, FAIL_SCOPE_DOMAIN, PERM, FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_DNS, FAIL_T_TIMEOUT, 0, 0, 0, 0, FAIL_SCOPE_DOMAIN, TEMP,
           FAIL_ACT_DEFER_DOMAIN);
    expect(FAIL_PHASE_MAIL, FAIL_T_LOCAL_PERM, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_LOCAL, FAIL_T_LOCAL_TEMP, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
}

static void test_greeting_and_helo(void **state)
{
    (void)state;
    expect(FAIL_PHASE_GREETING, FAIL_T_NONE, 421, 0, 0, 0, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_GREETING, FAIL_T_NONE, 450, 4, 3, 2, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
    /* 554 greeting: next MX now; when all say so the message bounces. */
    expect(FAIL_PHASE_GREETING, FAIL_T_NONE, 554, 0, 0, 0, FAIL_SCOPE_HOST, PERM,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_EHLO, FAIL_T_NONE, 451, 0, 0, 0, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_HELO, FAIL_T_NONE, 550, 5, 5, 0, FAIL_SCOPE_HOST, PERM,
           FAIL_ACT_NEXT_HOST);
    /* A policy refusal before MAIL is about our address. */
    expect(FAIL_PHASE_GREETING, FAIL_T_NONE, 554, 5, 7, 1, FAIL_SCOPE_SOURCE, PERM,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_GREETING, FAIL_T_NONE, 421, 4, 7, 0, FAIL_SCOPE_SOURCE, TEMP,
           FAIL_ACT_NEXT_HOST);
}

static void test_tls_and_auth_never_bounce(void **state)
{
    (void)state;
    expect(FAIL_PHASE_STARTTLS, FAIL_T_NONE, 454, 4, 7, 0, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_STARTTLS, FAIL_T_NONE, 554, 0, 0, 0, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_AUTH, FAIL_T_NONE, 535, 5, 7, 8, FAIL_SCOPE_HOST, TEMP,
           FAIL_ACT_NEXT_HOST);
}

static void test_transaction(void **state)
{
    (void)state;
    expect(FAIL_PHASE_MAIL, FAIL_T_NONE, 451, 4, 3, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_MAIL, FAIL_T_NONE, 550, 5, 7, 1, FAIL_SCOPE_MESSAGE, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_MAIL, FAIL_T_NONE, 450, 4, 7, 1, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 450, 4, 2, 1, FAIL_SCOPE_RECIPIENT, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 550, 5, 1, 1, FAIL_SCOPE_RECIPIENT, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 550, 5, 7, 1, FAIL_SCOPE_RECIPIENT, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 452, 4, 5, 3, FAIL_SCOPE_RECIPIENT, TEMP,
           FAIL_ACT_RETRY_LATER);
    /* RFC 5321 §4.5.3.1.10: 552 to RCPT is read as 452. */
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 552, 5, 5, 3, FAIL_SCOPE_RECIPIENT, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_DATA, FAIL_T_NONE, 554, 5, 5, 1, FAIL_SCOPE_MESSAGE, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_BODY, FAIL_T_NONE, 552, 5, 3, 4, FAIL_SCOPE_MESSAGE, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_BODY, FAIL_T_NONE, 451, 4, 3, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_BDAT, FAIL_T_NONE, 554, 0, 0, 0, FAIL_SCOPE_MESSAGE, PERM,
           FAIL_ACT_BOUNCE);
}

static void test_421_in_transaction(void **state)
{
    (void)state;
    const enum fail_phase phs[] = { FAIL_PHASE_MAIL, FAIL_PHASE_RCPT, FAIL_PHASE_DATA,
                                    FAIL_PHASE_BODY, FAIL_PHASE_BDAT };
    for (size_t i = 0; i < sizeof phs / sizeof phs[0]; i++)
        expect(phs[i], FAIL_T_NONE, 421, 4, 7, 0, FAIL_SCOPE_CONNECTION, TEMP,
               FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RSET, FAIL_T_NONE, 421, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
}

static void test_null_mx_reply(void **state)
{
    (void)state;
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 556, 5, 1, 10, FAIL_SCOPE_DOMAIN, PERM,
           FAIL_ACT_BOUNCE);
    expect(FAIL_PHASE_MAIL, FAIL_T_NONE, 550, 5, 1, 10, FAIL_SCOPE_DOMAIN, PERM,
           FAIL_ACT_BOUNCE);
    /* Only with a 5xx reply: the code decides the class. */
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 450, 5, 1, 10, FAIL_SCOPE_RECIPIENT, TEMP,
           FAIL_ACT_RETRY_LATER);
}

static void test_rset_quit(void **state)
{
    (void)state;
    expect(FAIL_PHASE_RSET, FAIL_T_NONE, 500, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
    expect(FAIL_PHASE_QUIT, FAIL_T_TIMEOUT, 0, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
}

static void test_defensive(void **state)
{
    (void)state;
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, 999, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RCPT, FAIL_T_NONE, -5, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE__COUNT, FAIL_T_NONE, 550, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    expect(FAIL_PHASE_RCPT, (enum fail_transport)77, 0, 0, 0, 0, FAIL_SCOPE_MESSAGE, TEMP,
           FAIL_ACT_RETRY_LATER);
    /* A positive code where a failure was reported: out of step, drop the connection. */
    expect(FAIL_PHASE_DATA, FAIL_T_NONE, 250, 0, 0, 0, FAIL_SCOPE_CONNECTION, TEMP,
           FAIL_ACT_NEXT_HOST);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(fail_phase_to_text(FAIL_PHASE_DNS), "dns");
    assert_string_equal(fail_phase_to_text(FAIL_PHASE_BODY), "end-of-data");
    assert_string_equal(fail_phase_to_text(FAIL_PHASE_LOCAL), "local");
    assert_string_equal(fail_phase_to_text(FAIL_PHASE__COUNT), "unknown");
    assert_string_equal(fail_scope_to_text(FAIL_SCOPE_RECIPIENT), "recipient");
    assert_string_equal(fail_scope_to_text(FAIL_SCOPE_SOURCE), "source");
    assert_string_equal(fail_scope_to_text((enum fail_scope)42), "unknown");
    assert_string_equal(fail_action_to_text(FAIL_ACT_NEXT_HOST), "next-host");
    assert_string_equal(fail_action_to_text(FAIL_ACT_DEFER_DOMAIN), "defer-domain");
    assert_string_equal(fail_action_to_text((enum fail_action)42), "unknown");
    for (int p = 0; p < FAIL_PHASE__COUNT; p++)
        assert_string_not_equal(fail_phase_to_text((enum fail_phase)p), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_before_mail),
        cmocka_unit_test(test_transport_in_session),
        cmocka_unit_test(test_dns_and_local),
        cmocka_unit_test(test_greeting_and_helo),
        cmocka_unit_test(test_tls_and_auth_never_bounce),
        cmocka_unit_test(test_transaction),
        cmocka_unit_test(test_421_in_transaction),
        cmocka_unit_test(test_null_mx_reply),
        cmocka_unit_test(test_rset_quit),
        cmocka_unit_test(test_defensive),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
