/* schedulers/failure_policy.h — the one place that decides what a delivery failure means.
 * Maps (phase, reply code, enhanced status, transport error) to a scope (what the failure
 * applies to), a class (temporary/permanent) and an action for the scheduler.
 * Modelled on Postfix's smtp_trouble.c. Pure: no I/O, no state. */
#ifndef SALVO_SCHEDULERS_FAILURE_POLICY_H
#define SALVO_SCHEDULERS_FAILURE_POLICY_H

#include <stdbool.h>

/* Where in the attempt the failure happened; also names "the command it answered". */
#define FAIL_PHASES(X) \
    X(DNS, "dns") X(CONNECT, "connect") X(GREETING, "greeting") X(EHLO, "ehlo") \
    X(HELO, "helo") X(STARTTLS, "starttls") X(TLS, "tls-handshake") X(AUTH, "auth") \
    X(MAIL, "mail") X(RCPT, "rcpt") X(DATA, "data") X(BODY, "end-of-data") X(BDAT, "bdat") \
    X(RSET, "rset") X(QUIT, "quit") X(LOCAL, "local")
enum fail_phase {
#define X(id, name) FAIL_PHASE_##id,
    FAIL_PHASES(X)
#undef X
    FAIL_PHASE__COUNT
};
const char *fail_phase_to_text(enum fail_phase p);

/* Failures that are not SMTP replies. */
enum fail_transport {
    FAIL_T_NONE = 0,        /* an SMTP reply was received: code is meaningful */
    FAIL_T_TIMEOUT,         /* the state's timeout expired */
    FAIL_T_REFUSED,         /* connection refused */
    FAIL_T_UNREACHABLE,     /* no route / host unreachable / bind failed */
    FAIL_T_RESET,           /* connection reset or closed by the peer mid-dialogue */
    FAIL_T_PROTOCOL,        /* malformed reply, oversized line, too many lines */
    FAIL_T_TLS,             /* handshake failed or certificate did not verify */
    FAIL_T_DNS_TEMP,        /* resolver failure, SERVFAIL, timeout */
    FAIL_T_DNS_PERM,        /* NXDOMAIN, no usable hosts */
    FAIL_T_NULLMX,          /* RFC 7505 null MX */
    FAIL_T_LOCAL_PERM,      /* our own permanent refusal (needs an extension the server lacks) */
    FAIL_T_LOCAL_TEMP,      /* our own temporary condition (shutdown, resource limit) */
};

enum fail_scope {
    FAIL_SCOPE_RECIPIENT,   /* this recipient only */
    FAIL_SCOPE_MESSAGE,     /* every recipient of this transaction */
    FAIL_SCOPE_CONNECTION,  /* this connection is unusable; the transaction may go elsewhere */
    FAIL_SCOPE_HOST,        /* this MX host (try the next one) */
    FAIL_SCOPE_DOMAIN,      /* the whole destination (defer its queue) */
    FAIL_SCOPE_SOURCE,      /* this egress source at this destination (block/reputation) */
};
const char *fail_scope_to_text(enum fail_scope s);

enum fail_class { FAIL_TEMPORARY, FAIL_PERMANENT };

enum fail_action {
    FAIL_ACT_RETRY_LATER,   /* defer these recipients per the retry schedule */
    FAIL_ACT_NEXT_HOST,     /* try the next MX host now; if none left, retry later */
    FAIL_ACT_BOUNCE,        /* final: bounce */
    FAIL_ACT_DEFER_DOMAIN,  /* defer everything queued for the destination */
};
const char *fail_action_to_text(enum fail_action a);

struct fail_verdict {
    enum fail_scope scope;
    enum fail_class cls;
    enum fail_action action;
};

/* Classifies one failure. code is the SMTP reply code (0 for transport failures);
 * enh_class/subject/detail the enhanced status (enh_class 0 when absent). */
struct fail_verdict fail_classify(enum fail_phase phase, enum fail_transport t, int code,
                                  int enh_class, int enh_subject, int enh_detail);

#endif
