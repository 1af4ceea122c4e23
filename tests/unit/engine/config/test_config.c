/* tests/unit/engine/config/test_config.c — configuration: defaults (and that every field's
 * "(default X)" text matches the real default), JSON files of every field type with errors
 * naming the field, --set for each type, config_finish's cross-field checks and derived
 * values, and the environment. Includes config.c to read its field table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/config/config.c"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct salvo_config C;
static char ERR[CONFIG_ERR_MAX];
static char DIR_[64];

static int setup(void **state)
{
    (void)state;
    config_init(&C);
    ERR[0] = '\0';
    snprintf(DIR_, sizeof DIR_, "/tmp/salvo-config-XXXXXX");
    assert_non_null(mkdtemp(DIR_));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_fini(&C);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* JSON with single quotes for readability. */
static int load(const char *json)
{
    static unsigned n;
    char path[128];
    snprintf(path, sizeof path, "%s/c%u.json", DIR_, n++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (const char *p = json; *p; p++)
        fputc(*p == '\'' ? '"' : *p, f);
    fclose(f);
    ERR[0] = '\0';
    return config_load_file(&C, path, ERR, sizeof ERR);
}

static void load_ok(const char *json)
{
    if (load(json) != 0)
        fail_msg("rejected %s: %s", json, ERR);
}

static void load_bad(const char *json, const char *want)
{
    if (load(json) != -1)
        fail_msg("accepted %s", json);
    if (!strstr(ERR, want))
        fail_msg("%s: error \"%s\" does not contain \"%s\"", json, ERR, want);
}

static void set_ok(const char *path, const char *value)
{
    ERR[0] = '\0';
    if (config_set(&C, path, value, ERR, sizeof ERR) != 0)
        fail_msg("--set %s=%s rejected: %s", path, value, ERR);
}

static void set_bad(const char *path, const char *value, const char *want)
{
    ERR[0] = '\0';
    if (config_set(&C, path, value, ERR, sizeof ERR) != -1)
        fail_msg("--set %s=%s accepted", path, value);
    if (!strstr(ERR, want))
        fail_msg("--set %s=%s: error \"%s\" does not contain \"%s\"", path, value, ERR, want);
}

static int finish(void)
{
    ERR[0] = '\0';
    return config_finish(&C, ERR, sizeof ERR);
}

static void finish_bad(const char *want)
{
    if (finish() != -1)
        fail_msg("config_finish accepted (wanted \"%s\")", want);
    if (!strstr(ERR, want))
        fail_msg("config_finish: error \"%s\" does not contain \"%s\"", ERR, want);
}

/* ------------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
    (void)state;
    assert_non_null(C.ehlo_name);
    assert_true(C.ehlo_name[0]);
    assert_string_equal(C.instance, C.ehlo_name);   /* both the host name */
    assert_string_equal(C.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(C.prefix, "salvo");
    assert_string_equal(C.tls_policy, "opportunistic");
    assert_null(C.dns_servers);
    assert_null(C.source_ip);
    assert_null(C.ca_file);
    assert_null(C.events_file);
    assert_true(C.timeout_scale == 1.0);
    assert_int_equal(C.max_message_bytes, 52428800);
    assert_int_equal(C.max_age_s, 259200);
    assert_int_equal(C.intake.max_in_memory, 5000);
    assert_int_equal(C.intake.tx_reserve, 500);
    assert_int_equal(C.intake.nretry, 7);
    static const unsigned sched[] = {60, 300, 900, 1800, 3600, 7200, 14400};
    assert_memory_equal(C.intake.retry_s, sched, sizeof sched);
    assert_int_equal(C.dlv.mx_port, 25);
    assert_int_equal(C.dlv.session.timeouts.connect_ms, 30000);
    assert_int_equal(C.dlv.session.timeouts.end_ms, 600000);
    assert_true(C.dns.ipv6);
    assert_int_equal(C.nroutes, 0);

    assert_int_equal(finish(), 0);
    assert_int_equal(C.dlv.tls_policy, TLS_POLICY_OPPORTUNISTIC);
    assert_false(C.dlv.has_source);
    assert_ptr_equal(C.dlv.session.ehlo_name, C.ehlo_name);
    assert_ptr_equal(C.intake.redis_url, C.redis_url);
    assert_ptr_equal(C.intake.instance, C.instance);
    assert_ptr_equal(C.intake.prefix, C.prefix);
    assert_null(C.intake.events_file);
    assert_null(C.dns.servers);
    assert_true(C.intake.max_age_ms == 259200ull * 1000);
    assert_int_equal(C.dlv.nroutes, 0);
    assert_int_equal(C.dlv.session.timeouts.connect_ms, 30000);   /* scale 1: unchanged */
}

/* Each field's "(default N)" text (printed by --help and copied into docs) is the default. */
static void test_documented_defaults(void **state)
{
    (void)state;
    unsigned checked = 0, wrong = 0;
    for (size_t i = 0; i < CF_NFIELDS; i++) {
        const struct cf_field *f = &cf__fields[i];
        const char *d = strstr(f->doc, "(default ");
        if (!d)
            continue;
        d += strlen("(default ");
        char *base = (char *)&C;
        char *end;
        switch (f->type) {
        case CF_UINT:
        case CF_SIZE:
        case CF_U16: {
            unsigned long long want = strtoull(d, &end, 10);
            if (end == d || (*end != ')' && *end != ' ' && *end != ';'))
                continue;
            unsigned long long have = f->type == CF_U16 ? *(uint16_t *)(base + f->off)
                                      : f->type == CF_SIZE ? *(size_t *)(base + f->off)
                                                           : *(unsigned *)(base + f->off);
            /* job limits: 0 means the parser's default */
            if (have == 0 && strcmp(f->path, "limits.max_job_bytes") == 0)
                have = JOB_DEFAULT_MAX_JOB_BYTES;
            if (have == 0 && strcmp(f->path, "limits.max_rcpts_per_job") == 0)
                have = JOB_DEFAULT_MAX_RCPTS;
            if (have != want) {
                print_error("%s: documented default %llu, actual %llu\n", f->path, want, have);
                wrong++;
            }
            checked++;
            break;
        }
        case CF_DOUBLE: {
            double want = strtod(d, &end);
            if (end == d)
                continue;
            if (*(double *)(base + f->off) != want) {
                print_error("%s: documented default %g, actual %g\n", f->path, want,
                            *(double *)(base + f->off));
                wrong++;
            }
            checked++;
            break;
        }
        case CF_BOOL: {
            bool want = strncmp(d, "true", 4) == 0;
            if (!want && strncmp(d, "false", 5) != 0)
                continue;
            if (*(bool *)(base + f->off) != want) {
                print_error("%s: documented default %d, actual %d\n", f->path, want,
                            *(bool *)(base + f->off));
                wrong++;
            }
            checked++;
            break;
        }
        default:
            break;
        }
    }
    assert_true(checked > 40);
    assert_int_equal(wrong, 0);
}

/* ------------------------------------------------------------------ files */

static void test_file_every_type(void **state)
{
    (void)state;
    load_ok("{'ehlo_name':'mta1.example.com','timeout_scale':0.5,'max_message_bytes':1000,"
            "'instance':'salvo-b','shutdown_grace_s':0,"
            "'redis':{'url':'redis://127.0.0.25:6380/2','prefix':'pfx'},"
            "'intake':{'max_in_memory':100,'tx_reserve':10,'block_ms':250},"
            "'events':{'stream_max':5,'file':'/tmp/ev.jsonl','dead_max':7},"
            "'retry':{'schedule_s':[1,2,3],'jitter':0,'max_attempts':4,'max_age_s':60},"
            "'limits':{'max_job_bytes':4096,'max_rcpts_per_job':3,'max_reply_line_bytes':512,"
            "'max_reply_lines':9},"
            "'dns':{'servers':'127.0.0.1:5353','ipv6':false,'ttl_min_s':0},"
            "'delivery':{'tls':'required','mx_port':2525,'pipelining':false,"
            "'body_chunk_bytes':8192,'source_ip':'127.0.0.2',"
            "'routes':{'Example.COM':'mx.test:2526','v6.example':'[::1]:2527','plain.example':'relay.test'}},"
            "'timeouts':{'connect_ms':1000,'idle_ms':7}}");
    assert_string_equal(C.ehlo_name, "mta1.example.com");
    assert_true(C.timeout_scale == 0.5);
    assert_int_equal(C.max_message_bytes, 1000);
    assert_string_equal(C.instance, "salvo-b");
    assert_int_equal(C.shutdown_grace_s, 0);
    assert_string_equal(C.redis_url, "redis://127.0.0.25:6380/2");
    assert_string_equal(C.prefix, "pfx");
    assert_int_equal(C.intake.max_in_memory, 100);
    assert_int_equal(C.intake.tx_reserve, 10);
    assert_int_equal(C.intake.block_ms, 250);
    assert_int_equal(C.intake.events_max, 5);
    assert_string_equal(C.events_file, "/tmp/ev.jsonl");
    assert_int_equal(C.intake.dead_max, 7);
    assert_int_equal(C.intake.nretry, 3);
    assert_int_equal(C.intake.retry_s[0], 1);
    assert_int_equal(C.intake.retry_s[2], 3);
    assert_true(C.intake.retry_jitter == 0);
    assert_int_equal(C.intake.max_attempts, 4);
    assert_int_equal(C.max_age_s, 60);
    assert_int_equal(C.intake.job_limits.max_job_bytes, 4096);
    assert_int_equal(C.intake.job_limits.max_rcpts, 3);
    assert_int_equal(C.dlv.session.reply_limits.max_line_bytes, 512);
    assert_int_equal(C.dlv.session.reply_limits.max_lines, 9);
    assert_string_equal(C.dns_servers, "127.0.0.1:5353");
    assert_false(C.dns.ipv6);
    assert_int_equal(C.dns.ttl_min_s, 0);
    assert_string_equal(C.tls_policy, "required");
    assert_int_equal(C.dlv.mx_port, 2525);
    assert_false(C.dlv.session.use_pipelining);
    assert_true(C.dlv.session.use_chunking);
    assert_int_equal(C.dlv.session.body_chunk_bytes, 8192);
    assert_string_equal(C.source_ip, "127.0.0.2");
    assert_int_equal(C.nroutes, 3);
    assert_string_equal(C.routes[0].domain, "example.com");   /* lower-cased */
    assert_string_equal(C.routes[0].host, "mx.test");
    assert_int_equal(C.routes[0].port, 2526);
    assert_string_equal(C.routes[1].host, "::1");
    assert_int_equal(C.routes[1].port, 2527);
    assert_string_equal(C.routes[2].host, "relay.test");
    assert_int_equal(C.routes[2].port, 25);
    assert_int_equal(C.dlv.session.timeouts.connect_ms, 1000);
    assert_int_equal(C.dlv.session.timeouts.idle_ms, 7);

    assert_int_equal(finish(), 0);
    assert_int_equal(C.dlv.tls_policy, TLS_POLICY_REQUIRED);
    /* timeout_scale applies to every timeout, the file's and the defaults */
    assert_int_equal(C.dlv.session.timeouts.connect_ms, 500);
    assert_int_equal(C.dlv.session.timeouts.greeting_ms, 150000);
    assert_int_equal(C.dlv.session.timeouts.idle_ms, 3);
    assert_true(C.dlv.has_source);
    assert_int_equal(C.dlv.source.ss_family, AF_INET);
    char text[64];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&C.dlv.source)->sin_addr, text, sizeof text);
    assert_string_equal(text, "127.0.0.2");
    assert_int_equal(((struct sockaddr_in *)&C.dlv.source)->sin_port, 0);
    assert_ptr_equal(C.dns.servers, C.dns_servers);
    assert_string_equal(C.intake.events_file, "/tmp/ev.jsonl");
    assert_true(C.intake.max_age_ms == 60000);
    assert_ptr_equal(C.dlv.routes, C.routes);
    assert_int_equal(C.dlv.nroutes, 3);
}

static void test_file_dns_servers_forms(void **state)
{
    (void)state;
    load_ok("{'dns':{'servers':['127.0.0.22:53','[::1]:53']}}");
    assert_string_equal(C.dns_servers, "127.0.0.22:53,[::1]:53");
    load_ok("{'dns':{'servers':'127.0.0.23'}}");
    assert_string_equal(C.dns_servers, "127.0.0.23");
    load_ok("{'dns':{'servers':null}}");
    assert_null(C.dns_servers);
    load_bad("{'dns':{'servers':['127.0.0.22',53]}}", "dns.servers[1]: expected a string");
    load_bad("{'dns':{'servers':5}}", "dns.servers: expected a string");
    /* null for any string field: unset */
    load_ok("{'events':{'file':'/x'}}");
    load_ok("{'events':{'file':null},'delivery':{'ca_file':null}}");
    assert_null(C.events_file);
}

static void test_file_errors(void **state)
{
    (void)state;
    /* integers: range and type, the error names the field */
    load_bad("{'delivery':{'mx_port':0}}", "delivery.mx_port: 0 is out of range [1, 65535]");
    load_bad("{'delivery':{'mx_port':65536}}", "delivery.mx_port: 65536 is out of range");
    load_bad("{'delivery':{'mx_port':'25'}}", "delivery.mx_port: expected an integer");
    load_bad("{'delivery':{'mx_port':25.0}}", "delivery.mx_port: expected an integer");
    load_bad("{'intake':{'max_in_memory':-1}}", "intake.max_in_memory: -1 is out of range");
    load_bad("{'intake':{'max_in_memory':99999999999999}}", "intake.max_in_memory:");
    load_bad("{'limits':{'max_job_bytes':1023}}", "limits.max_job_bytes: 1023 is out of range");
    load_bad("{'timeouts':{'rcpt_ms':0}}", "timeouts.rcpt_ms: 0 is out of range");
    load_bad("{'timeout_scale':0}", "timeout_scale: 0 is out of range");
    load_bad("{'timeout_scale':'fast'}", "timeout_scale: expected a number");
    load_bad("{'retry':{'jitter':1.5}}", "retry.jitter: 1.5 is out of range");
    load_bad("{'dns':{'ipv6':1}}", "dns.ipv6: expected true or false");
    load_bad("{'delivery':{'tls':'sometimes'}}", "delivery.tls: expected disabled");
    load_bad("{'delivery':{'tls':null}}", "delivery.tls:");
    load_bad("{'ehlo_name':5}", "ehlo_name: expected a string");
    load_bad("{'retry':{'schedule_s':[]}}", "retry.schedule_s: expected a list of 1 to 32");
    load_bad("{'retry':{'schedule_s':5}}", "retry.schedule_s: expected a list");
    load_bad("{'retry':{'schedule_s':[1,0]}}", "retry.schedule_s[1]: expected an integer in [1, 31536000]");
    load_bad("{'retry':{'schedule_s':[1,'2']}}", "retry.schedule_s[1]:");
    load_bad("{'delivery':{'routes':['a=b']}}", "delivery.routes: expected an object");
    load_bad("{'delivery':{'routes':{'a.example':5}}}", "delivery.routes.a.example: expected");
    load_bad("{'delivery':{'routes':{'a.example':'h:0'}}}", "delivery.routes.a.example: bad port");
    load_bad("{'delivery':{'routes':{'a.example':'h:x'}}}", "bad port");
    load_bad("{'delivery':{'routes':{'a.example':''}}}", "delivery.routes.a.example: bad host");
    load_bad("{'delivery':{'routes':{'a.example':'[::1'}}}", "bad host");
    load_bad("{'delivery':{'routes':{'':'h'}}}", "delivery.routes: bad domain");

    /* unknown fields, at any depth */
    load_bad("{'delivery':{'foo':1}}", "unknown field 'delivery.foo'");
    load_bad("{'bogus':true}", "unknown field 'bogus'");
    load_bad("{'delivery':5}", "unknown field 'delivery'");
    load_bad("{'delivery':{'tls':'verify','mx_prt':25}}", "unknown field 'delivery.mx_prt'");
    load_bad("{'redis':{'url':{'x':1}}}", "redis.url: expected a string");
    load_bad("{'timeouts':{'connect_ms':{'a':1}}}", "timeouts.connect_ms: expected an integer");
    load_bad("{'dns':{'servers':{'a':1}}}", "dns.servers: expected a string");

    /* the file itself */
    load_bad("{'a':1,'a':2}", "duplicate");
    load_bad("[1,2]", "the top level must be a JSON object");
    load_bad("{'delivery':", ":1:");
    ERR[0] = '\0';
    char path[128];
    snprintf(path, sizeof path, "%s/nope.json", DIR_);
    assert_int_equal(config_load_file(&C, path, ERR, sizeof ERR), -1);
    assert_non_null(strstr(ERR, "nope.json"));

    /* a too-long string */
    char big[1200] = "{'ehlo_name':'";
    size_t n = strlen(big);
    memset(big + n, 'a', 1001);
    strcpy(big + n + 1001, "'}");
    load_bad(big, "ehlo_name: too long");
}

/* ------------------------------------------------------------------ --set */

static void test_set_each_type(void **state)
{
    (void)state;
    set_ok("delivery.mx_port", "2525");
    assert_int_equal(C.dlv.mx_port, 2525);
    set_bad("delivery.mx_port", "0", "delivery.mx_port: 0 is out of range");
    set_bad("delivery.mx_port", "abc", "delivery.mx_port: cannot parse 'abc'");
    set_bad("delivery.mx_port", "2.5", "expected an integer");
    set_ok("limits.max_job_bytes", "65536");
    assert_int_equal(C.intake.job_limits.max_job_bytes, 65536);
    set_ok("dns.ipv6", "false");
    assert_false(C.dns.ipv6);
    set_bad("dns.ipv6", "no", "dns.ipv6: cannot parse");
    set_ok("timeout_scale", "0.01");
    assert_true(C.timeout_scale == 0.01);
    set_ok("ehlo_name", "123");                 /* strings are taken literally */
    assert_string_equal(C.ehlo_name, "123");
    char ca[128];
    snprintf(ca, sizeof ca, "%s/ca.pem", DIR_);
    FILE *f = fopen(ca, "w");
    assert_non_null(f);
    fclose(f);
    set_ok("delivery.ca_file", ca);
    assert_string_equal(C.ca_file, ca);
    set_ok("delivery.tls", "verify");
    assert_string_equal(C.tls_policy, "verify");
    set_bad("delivery.tls", "strict", "delivery.tls: expected disabled, opportunistic, required or verify");
    assert_string_equal(C.tls_policy, "verify");  /* unchanged by the error */
    set_bad("no.such.field", "1", "unknown field 'no.such.field'");

    /* lists, with and without brackets */
    set_ok("retry.schedule_s", "1,2,3");
    assert_int_equal(C.intake.nretry, 3);
    assert_int_equal(C.intake.retry_s[0], 1);
    assert_int_equal(C.intake.retry_s[1], 2);
    assert_int_equal(C.intake.retry_s[2], 3);
    set_ok("retry.schedule_s", "[30]");
    assert_int_equal(C.intake.nretry, 1);
    assert_int_equal(C.intake.retry_s[0], 30);
    set_ok("retry.schedule_s", " 5 , 6 ");
    assert_int_equal(C.intake.nretry, 2);
    set_bad("retry.schedule_s", "1,x", "retry.schedule_s: cannot parse");
    set_bad("retry.schedule_s", "1,0", "retry.schedule_s[1]");
    set_bad("retry.schedule_s", "", "retry.schedule_s");
    set_bad("retry.schedule_s",
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33",
            "expected a list of 1 to 32");

    /* routes: each --set adds one */
    set_ok("delivery.routes", "Example.COM=mx.test:2525");
    set_ok("delivery.routes", "v6.example=[2001:db8::1]:26");
    set_ok("delivery.routes", "bare.example=[::1]");
    set_ok("delivery.routes", "host.example=relay.test");
    assert_int_equal(C.nroutes, 4);
    assert_string_equal(C.routes[0].domain, "example.com");
    assert_string_equal(C.routes[0].host, "mx.test");
    assert_int_equal(C.routes[0].port, 2525);
    assert_string_equal(C.routes[1].host, "2001:db8::1");
    assert_int_equal(C.routes[1].port, 26);
    assert_string_equal(C.routes[2].host, "::1");
    assert_int_equal(C.routes[2].port, 25);
    assert_string_equal(C.routes[3].host, "relay.test");
    assert_int_equal(C.routes[3].port, 25);
    set_bad("delivery.routes", "noequals", "delivery.routes: expected DOMAIN=HOST:PORT");
    set_bad("delivery.routes", "=h:25", "bad domain");
    set_bad("delivery.routes", "d.example=", "bad host");
    set_bad("delivery.routes", "d.example=h:", "bad port");
    set_bad("delivery.routes", "d.example=h:65536", "bad port");
    assert_int_equal(C.nroutes, 4);
    ERR[0] = '\0';
    assert_int_equal(config_add_route(&C, "a.example=h:1", ERR, sizeof ERR), 0);
    assert_int_equal(C.nroutes, 5);
    assert_int_equal(config_add_route(&C, "a.example", ERR, sizeof ERR), -1);
    assert_non_null(strstr(ERR, "expected DOMAIN=HOST:PORT"));
    assert_int_equal(config_add_route(&C, "a.example=", ERR, sizeof ERR), -1);

    /* at most CONFIG_MAX_ROUTES */
    for (unsigned i = C.nroutes; i < CONFIG_MAX_ROUTES; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "d%u.example=h:25", i);
        set_ok("delivery.routes", spec);
    }
    set_bad("delivery.routes", "one.more=h:25", "more than 256 routes");
    if (finish() != 0)
        fail_msg("config_finish: %s", ERR);
    assert_int_equal(C.dlv.nroutes, CONFIG_MAX_ROUTES);
}

/* ------------------------------------------------------------------ finish */

static void test_finish_checks(void **state)
{
    (void)state;
    free(C.tls_policy);
    C.tls_policy = strdup("bogus");
    finish_bad("delivery.tls: unknown policy 'bogus'");
    set_ok("delivery.tls", "disabled");
    assert_int_equal(finish(), 0);
    assert_int_equal(C.dlv.tls_policy, TLS_POLICY_DISABLED);

    set_ok("intake.max_in_memory", "100");
    set_ok("intake.tx_reserve", "100");
    finish_bad("intake.tx_reserve: must be smaller than intake.max_in_memory");
    set_ok("intake.tx_reserve", "150");
    finish_bad("intake.tx_reserve");
    set_ok("intake.tx_reserve", "99");
    assert_int_equal(finish(), 0);

    set_ok("delivery.source_ip", "mail.example.com");
    finish_bad("delivery.source_ip: 'mail.example.com' is not an IP address");
    set_ok("delivery.source_ip", "1.2.3");
    finish_bad("delivery.source_ip");
    set_ok("delivery.source_ip", "::1");
    assert_int_equal(finish(), 0);
    assert_true(C.dlv.has_source);
    assert_int_equal(C.dlv.source.ss_family, AF_INET6);
    assert_int_equal(C.dlv.source_len, sizeof(struct sockaddr_in6));
    set_ok("delivery.source_ip", "");
    assert_int_equal(finish(), 0);
    assert_false(C.dlv.has_source);

    set_ok("ehlo_name", "bad name");
    finish_bad("ehlo_name:");
    set_ok("ehlo_name", "<x>");
    finish_bad("ehlo_name:");
    set_ok("ehlo_name", "");
    finish_bad("ehlo_name:");
    set_ok("ehlo_name", "mta.example");

    set_ok("dns.ttl_min_s", "100");
    set_ok("dns.ttl_max_s", "99");
    finish_bad("dns.ttl_min_s: larger than dns.ttl_max_s");
    set_ok("dns.ttl_max_s", "100");
    assert_int_equal(finish(), 0);

    set_ok("instance", "has space");
    finish_bad("instance:");
    set_ok("instance", "i-1");
    set_ok("redis.prefix", "a{b}");
    finish_bad("redis.prefix:");
    set_ok("redis.prefix", "");
    finish_bad("redis.prefix:");
    set_ok("redis.prefix", "ok");
    assert_int_equal(finish(), 0);

    set_ok("redis.url", "http://127.0.0.21");
    finish_bad("redis.url: only redis:// URLs are supported");
    set_ok("redis.url", "redis://127.0.0.21:0");
    finish_bad("redis.url: bad port");
    set_ok("redis.url", "redis://cache.internal:6380/3");   /* a name is fine */
    assert_int_equal(finish(), 0);

    char ca[128];
    snprintf(ca, sizeof ca, "%s/missing-ca.pem", DIR_);
    set_ok("delivery.ca_file", ca);
    finish_bad("delivery.ca_file: cannot read");
    set_ok("delivery.ca_file", "");
    assert_int_equal(finish(), 0);
}

static void test_finish_timeout_scale(void **state)
{
    (void)state;
    set_ok("timeout_scale", "0.01");
    set_ok("timeouts.connect_ms", "50");
    assert_int_equal(finish(), 0);
    const struct smtp_timeouts *t = &C.dlv.session.timeouts;
    assert_int_equal(t->connect_ms, 1);          /* 0.5 is clamped to 1 ms, never 0 */
    assert_int_equal(t->greeting_ms, 3000);
    assert_int_equal(t->ehlo_ms, 3000);
    assert_int_equal(t->data_ms, 1200);
    assert_int_equal(t->data_block_ms, 1800);
    assert_int_equal(t->end_ms, 6000);
    assert_int_equal(t->quit_ms, 300);
    assert_int_equal(t->idle_ms, 50);

    config_fini(&C);
    config_init(&C);
    set_ok("timeout_scale", "1000");
    assert_int_equal(finish(), 0);
    assert_true(C.dlv.session.timeouts.end_ms >= 600000u * 6);   /* saturates, no overflow */
    assert_int_equal(C.dlv.session.timeouts.connect_ms, 30000000);
}

/* Regression (fixed): delivery.source_ip accepts an address with a port ("127.0.0.1:25", "[::1]:587"):
 * config_finish parses it with ring_addr_parse (config.c:407), which takes "host:port". The
 * docs say "IPv4 or IPv6 literal" and ring_sock_connect binds the source "with port 0";
 * with this value every connection would bind local port 25 (EADDRINUSE from the second
 * connection on, EACCES without privileges). Expected: "is not an IP address".
 * Also: a static route "[::1]junk" is taken as host ::1 port 25 (cf__route, config.c:185
 * ignores what follows ']' unless it is ':'). Expected: "bad host"/"bad port". */
static void test_finish_source_ip_with_port(void **state)
{
    (void)state;
    unsigned bad = 0;
    static const char *const with_port[] = {"127.0.0.1:25", "[::1]:587"};
    for (unsigned i = 0; i < 2; i++) {
        set_ok("delivery.source_ip", with_port[i]);
        if (finish() == 0) {
            print_error("delivery.source_ip '%s' accepted (port %u)\n", with_port[i],
                        ntohs(((struct sockaddr_in *)&C.dlv.source)->sin_port));
            bad++;
        }
    }
    ERR[0] = '\0';
    if (config_set(&C, "delivery.routes", "x.example=[::1]junk", ERR, sizeof ERR) == 0) {
        print_error("route 'x.example=[::1]junk' accepted as %s port %u\n",
                    C.routes[C.nroutes - 1].host, C.routes[C.nroutes - 1].port);
        bad++;
    }
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ environment */

static void test_env(void **state)
{
    (void)state;
    unsetenv("SALVO_REDIS_URL");
    unsetenv("SALVO_INSTANCE");
    assert_int_equal(config_apply_env(&C, ERR, sizeof ERR), 0);
    assert_string_equal(C.redis_url, "redis://127.0.0.1:6379");
    char *host = strdup(C.instance);

    setenv("SALVO_REDIS_URL", "redis://:pw@127.1.2.3:7000/1", 1);
    setenv("SALVO_INSTANCE", "salvo-7", 1);
    assert_int_equal(config_apply_env(&C, ERR, sizeof ERR), 0);
    assert_string_equal(C.redis_url, "redis://:pw@127.1.2.3:7000/1");
    assert_string_equal(C.instance, "salvo-7");
    assert_int_equal(finish(), 0);
    assert_string_equal(C.intake.redis_url, "redis://:pw@127.1.2.3:7000/1");
    assert_string_equal(C.intake.instance, "salvo-7");

    /* the environment wins over the file (it is applied after) */
    load_ok("{'instance':'from-file','redis':{'url':'redis://file:1'}}");
    assert_string_equal(C.instance, "from-file");
    assert_int_equal(config_apply_env(&C, ERR, sizeof ERR), 0);
    assert_string_equal(C.instance, "salvo-7");
    assert_string_equal(C.redis_url, "redis://:pw@127.1.2.3:7000/1");

    /* empty means unset */
    config_fini(&C);
    config_init(&C);
    setenv("SALVO_REDIS_URL", "", 1);
    setenv("SALVO_INSTANCE", "", 1);
    assert_int_equal(config_apply_env(&C, ERR, sizeof ERR), 0);
    assert_string_equal(C.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(C.instance, host);

    /* a bad instance from the environment is caught by config_finish */
    setenv("SALVO_INSTANCE", "two words", 1);
    assert_int_equal(config_apply_env(&C, ERR, sizeof ERR), 0);
    finish_bad("instance:");
    unsetenv("SALVO_REDIS_URL");
    unsetenv("SALVO_INSTANCE");
    free(host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_documented_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_dns_servers_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_each_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_timeout_scale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_source_ip_with_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
