/* schedulers/failure_policy.c — the classification table: what one delivery failure means
 * for the scheduler. Owns the rules and the names; does not own retry timing, suspensions
 * or bounce messages (the scheduler and the event writer act on the verdict).
 *
 * Why each rule is what it is (Postfix's smtp_trouble.c is the model):
 *
 *  failure                          scope      class  action        why
 *  -------------------------------  ---------  -----  ------------  -------------------------
 *  timeout/refused/unreachable/     HOST       temp   NEXT_HOST     the host is sick, not the
 *   reset before MAIL                                               mail: another MX may work
 *  same, from MAIL to RSET/QUIT     CONNECTION temp   NEXT_HOST     the dialogue broke; what is
 *                                                                   unsent may go elsewhere now
 *  same, after end-of-data (BODY)   MESSAGE    temp   RETRY_LATER   the server may already have
 *                                                                   it (RFC 1047): no hurry to
 *                                                                   make a duplicate elsewhere
 *  malformed reply (PROTOCOL)       CONNECTION temp   NEXT_HOST     a broken peer; BODY as above
 *  TLS handshake/verify failure     HOST       temp   NEXT_HOST     policy trouble is fixed by
 *                                                                   people: never bounce for it
 *  DNS temp / perm / null MX        DOMAIN     t / p  DEFER / BOUNCE  no host can help
 *   (a timeout at the DNS phase counts as DNS temp)
 *  local temp / local perm          MESSAGE    t / p  RETRY / BOUNCE  our own decision
 *  421 before MAIL                  HOST       temp   NEXT_HOST     "closing channel": try the
 *                                                                   next MX (RFC 5321 §3.8)
 *  421 in a transaction             CONNECTION temp   RETRY_LATER   mostly rate limiting; other
 *                                                                   MXs of the site say the same
 *  4xx/5xx at greeting/EHLO/HELO    HOST       code   NEXT_HOST     554 greeting = "no service
 *                                                                   here"; when every host says
 *                                                                   5xx the message bounces
 *  ... with enhanced x.7.x          SOURCE     code   NEXT_HOST     before MAIL a server can
 *                                                                   only be judging our address
 *  any reply at STARTTLS/AUTH       HOST       temp   NEXT_HOST     as TLS: a configuration
 *                                                                   matter, not the message's
 *  4xx/5xx at MAIL/DATA/BODY/BDAT   MESSAGE    code   RETRY/BOUNCE  refuses the whole message
 *  4xx/5xx at RCPT                  RECIPIENT  code   RETRY/BOUNCE  one address; x.7.x too
 *  552 at RCPT                      RECIPIENT  temp   RETRY_LATER   RFC 5321 §4.5.3.1.10: old
 *                                                                   "too many recipients"
 *  5.1.10 at any phase              DOMAIN     perm   BOUNCE        RFC 7505 null MX
 *  any reply at RSET/QUIT           CONNECTION temp   NEXT_HOST     no recipient is affected
 *  code not 4xx/5xx, unknown input  MESSAGE    temp   RETRY_LATER   never bounce on a doubt
 *
 * The reply code decides the class, not the enhanced code: RFC 3463 requires them to agree
 * and clients act on the reply code (RFC 5321 §4.2.1). */
#include "schedulers/failure_policy.h"

#include <stddef.h>

static const char *const fail__phase_names[] = {
#define X(id, name) name,
    FAIL_PHASES(X)
#undef X
};

const char *fail_phase_to_text(enum fail_phase p)
{
    return (unsigned)p < FAIL_PHASE__COUNT ? fail__phase_names[p] : "unknown";
}

const char *fail_scope_to_text(enum fail_scope s)
{
    switch (s) {
    case FAIL_SCOPE_RECIPIENT: return "recipient";
    case FAIL_SCOPE_MESSAGE: return "message";
    case FAIL_SCOPE_CONNECTION: return "connection";
    case FAIL_SCOPE_HOST: return "host";
    case FAIL_SCOPE_DOMAIN: return "domain";
    case FAIL_SCOPE_SOURCE: return "source";
    }
    return "unknown";
}

const char *fail_action_to_text(enum fail_action a)
{
    switch (a) {
    case FAIL_ACT_RETRY_LATER: return "retry-later";
    case FAIL_ACT_NEXT_HOST: return "next-host";
    case FAIL_ACT_BOUNCE: return "bounce";
    case FAIL_ACT_DEFER_DOMAIN: return "defer-domain";
    }
    return "unknown";
}

/* How an SMTP reply at each phase is read. may_bounce = false keeps 5xx temporary. */
static const struct {
    enum fail_scope scope;
    enum fail_action temp_action, perm_action;
    bool may_bounce;
} fail__reply_rules[FAIL_PHASE__COUNT] = {
    [FAIL_PHASE_DNS] = { FAIL_SCOPE_DOMAIN, FAIL_ACT_DEFER_DOMAIN, FAIL_ACT_DEFER_DOMAIN, false },
    [FAIL_PHASE_CONNECT] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, true },
    [FAIL_PHASE_GREETING] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, true },
    [FAIL_PHASE_EHLO] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, true },
    [FAIL_PHASE_HELO] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, true },
    [FAIL_PHASE_STARTTLS] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, false },
    [FAIL_PHASE_TLS] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, false },
    [FAIL_PHASE_AUTH] = { FAIL_SCOPE_HOST, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, false },
    [FAIL_PHASE_MAIL] = { FAIL_SCOPE_MESSAGE, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
    [FAIL_PHASE_RCPT] = { FAIL_SCOPE_RECIPIENT, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
    [FAIL_PHASE_DATA] = { FAIL_SCOPE_MESSAGE, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
    [FAIL_PHASE_BODY] = { FAIL_SCOPE_MESSAGE, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
    [FAIL_PHASE_BDAT] = { FAIL_SCOPE_MESSAGE, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
    [FAIL_PHASE_RSET] = { FAIL_SCOPE_CONNECTION, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, false },
    [FAIL_PHASE_QUIT] = { FAIL_SCOPE_CONNECTION, FAIL_ACT_NEXT_HOST, FAIL_ACT_NEXT_HOST, false },
    [FAIL_PHASE_LOCAL] = { FAIL_SCOPE_MESSAGE, FAIL_ACT_RETRY_LATER, FAIL_ACT_BOUNCE, true },
};

static struct fail_verdict fail__verdict(enum fail_scope scope, enum fail_class cls,
                                         enum fail_action action)
{
    return (struct fail_verdict){ .scope = scope, .cls = cls, .action = action };
}

/* Before MAIL FROM: nothing of the message has been said yet. These two rely on the order
 * of FAIL_PHASES (session set-up, then the transaction, then RSET/QUIT/LOCAL). */
static bool fail__before_mail(enum fail_phase phase)
{
    return phase <= FAIL_PHASE_AUTH;
}

static bool fail__in_transaction(enum fail_phase phase)
{
    return phase >= FAIL_PHASE_MAIL && phase <= FAIL_PHASE_BDAT;
}

static struct fail_verdict fail__transport(enum fail_phase phase, enum fail_transport t)
{
    switch (t) {
    case FAIL_T_DNS_TEMP:
        return fail__verdict(FAIL_SCOPE_DOMAIN, FAIL_TEMPORARY, FAIL_ACT_DEFER_DOMAIN);
    case FAIL_T_DNS_PERM:
    case FAIL_T_NULLMX:
        return fail__verdict(FAIL_SCOPE_DOMAIN, FAIL_PERMANENT, FAIL_ACT_BOUNCE);
    case FAIL_T_LOCAL_PERM:
        return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_PERMANENT, FAIL_ACT_BOUNCE);
    case FAIL_T_LOCAL_TEMP:
        return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
    case FAIL_T_TLS:
        return fail__verdict(FAIL_SCOPE_HOST, FAIL_TEMPORARY, FAIL_ACT_NEXT_HOST);
    case FAIL_T_TIMEOUT:
    case FAIL_T_REFUSED:
    case FAIL_T_UNREACHABLE:
    case FAIL_T_RESET:
    case FAIL_T_PROTOCOL:
        if (phase == FAIL_PHASE_BODY)
            return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
        if (phase == FAIL_PHASE_DNS)
            return fail__verdict(FAIL_SCOPE_DOMAIN, FAIL_TEMPORARY, FAIL_ACT_DEFER_DOMAIN);
        if (phase == FAIL_PHASE_LOCAL)
            return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
        if (t != FAIL_T_PROTOCOL && fail__before_mail(phase))
            return fail__verdict(FAIL_SCOPE_HOST, FAIL_TEMPORARY, FAIL_ACT_NEXT_HOST);
        return fail__verdict(FAIL_SCOPE_CONNECTION, FAIL_TEMPORARY, FAIL_ACT_NEXT_HOST);
    case FAIL_T_NONE:
        break;
    }
    return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
}

static struct fail_verdict fail__reply(enum fail_phase phase, int code, int enh_class,
                                       int enh_subject, int enh_detail)
{
    if (code >= 500 && code <= 599 && enh_class == 5 && enh_subject == 1 && enh_detail == 10)
        return fail__verdict(FAIL_SCOPE_DOMAIN, FAIL_PERMANENT, FAIL_ACT_BOUNCE);
    if (code == 421 && fail__in_transaction(phase))
        return fail__verdict(FAIL_SCOPE_CONNECTION, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
    if (code == 552 && phase == FAIL_PHASE_RCPT)
        code = 452;
    bool perm = code >= 500 && fail__reply_rules[phase].may_bounce;
    struct fail_verdict v = fail__verdict(fail__reply_rules[phase].scope,
                                          perm ? FAIL_PERMANENT : FAIL_TEMPORARY,
                                          perm ? fail__reply_rules[phase].perm_action
                                               : fail__reply_rules[phase].temp_action);
    if (enh_subject == 7 && enh_class != 0 &&
        (phase == FAIL_PHASE_GREETING || phase == FAIL_PHASE_EHLO || phase == FAIL_PHASE_HELO))
        v.scope = FAIL_SCOPE_SOURCE;
    return v;
}

struct fail_verdict fail_classify(enum fail_phase phase, enum fail_transport t, int code,
                                  int enh_class, int enh_subject, int enh_detail)
{
    if ((unsigned)phase >= FAIL_PHASE__COUNT)
        return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
    if (t != FAIL_T_NONE)
        return fail__transport(phase, t);
    if (code >= 400 && code <= 599)
        return fail__reply(phase, code, enh_class, enh_subject, enh_detail);
    /* 1xx-3xx where a failure was reported: the dialogue is out of step. */
    if (code >= 100 && code <= 399)
        return fail__transport(phase, FAIL_T_PROTOCOL);
    return fail__verdict(FAIL_SCOPE_MESSAGE, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER);
}
