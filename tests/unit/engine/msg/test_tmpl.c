/* tests/unit/engine/msg/test_tmpl.c — merge templates: fields, spaces in braces, defaults,
 * missing and empty fields, each escape mode, syntax errors, header injection, and that a
 * failed render leaves the output as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "engine/msg/tmpl.h"

struct field {
    const char *name, *value;
};

static const struct field FIELDS[] = {
    { "first_name", "Ann" },
    { "last.name", "O'Neil & <Sons>" },
    { "empty", "" },
    { "quote", "say \"hi\"" },
    { "crlf", "x\r\nBcc: victim@example.com" },
    { "lf", "x\ny" },
    { "city-name", "Zürich" },
    { NULL, NULL },
};

static const char *lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    const struct field *f = ctx;
    for (; f->name; f++) {
        if (strlen(f->name) == name_len && memcmp(f->name, name, name_len) == 0) {
            *value_len = strlen(f->value);
            return f->value;
        }
    }
    return NULL;
}

/* Renders t after some existing output, so appending (not overwriting) is checked too. */
static int render(const char *t, enum tmpl_escape esc, char *got, size_t cap, const char **err)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_append(&b, "X", 1);
    *err = NULL;
    int rc = tmpl_render(t, strlen(t), lookup, (void *)FIELDS, esc, &b, err);
    if (rc == 0) {
        assert_true(b.len - 1 < cap);
        memcpy(got, b.data + 1, b.len - 1);
        got[b.len - 1] = '\0';
    } else {
        assert_int_equal(b.len, 1); /* untouched on failure */
        assert_non_null(*err);
    }
    buf_fini(&b);
    return rc;
}

static void expect(const char *t, enum tmpl_escape esc, const char *want)
{
    char got[1024];
    const char *err;
    assert_int_equal(render(t, esc, got, sizeof got, &err), 0);
    assert_string_equal(got, want);
    assert_int_equal(tmpl_check(t, strlen(t), &err), 0);
}

static void expect_error(const char *t, enum tmpl_escape esc, const char *want_err)
{
    char got[1024];
    const char *err;
    assert_int_equal(render(t, esc, got, sizeof got, &err), -1);
    assert_string_equal(err, want_err);
}

static void test_fields(void **state)
{
    (void)state;
    expect("Hello {{first_name}}!", TMPL_RAW, "Hello Ann!");
    expect("Hello {{ first_name }}!", TMPL_RAW, "Hello Ann!");
    expect("Hello {{\tfirst_name \t}}!", TMPL_RAW, "Hello Ann!");
    expect("{{first_name}}{{first_name}}", TMPL_RAW, "AnnAnn");
    expect("{{last.name}} in {{city-name}}", TMPL_RAW, "O'Neil & <Sons> in Zürich");
    expect("", TMPL_RAW, "");
    expect("no fields at all", TMPL_RAW, "no fields at all");
    expect("single { brace } and }} close", TMPL_RAW, "single { brace } and }} close");
}

static void test_missing_and_defaults(void **state)
{
    (void)state;
    expect("Hi {{nobody}}.", TMPL_RAW, "Hi .");
    expect("Hi {{nobody|there}}.", TMPL_RAW, "Hi there.");
    expect("Hi {{ nobody | dear friend }}.", TMPL_RAW, "Hi dear friend.");
    expect("Hi {{first_name|there}}.", TMPL_RAW, "Hi Ann.");
    expect("Hi {{empty|there}}.", TMPL_RAW, "Hi there.");
    expect("Hi {{empty}}.", TMPL_RAW, "Hi .");
    expect("Hi {{nobody|}}.", TMPL_RAW, "Hi .");
    expect("{{nobody|a | b}}", TMPL_RAW, "a | b");
    expect("{{nobody|x}y}}", TMPL_RAW, "x}y");
}

static void test_html_escape(void **state)
{
    (void)state;
    expect("<p>{{last.name}}</p>", TMPL_HTML, "<p>O&#39;Neil &amp; &lt;Sons&gt;</p>");
    expect("<a title=\"{{quote}}\">", TMPL_HTML, "<a title=\"say &quot;hi&quot;\">");
    /* Defaults are the author's text, like the rest of the template. */
    expect("{{nobody|<b>you</b>}}", TMPL_HTML, "<b>you</b>");
    expect("{{last.name}}", TMPL_RAW, "O'Neil & <Sons>");
}

static void test_header_mode(void **state)
{
    (void)state;
    expect("Hello {{first_name}} from {{city-name}}", TMPL_HEADER, "Hello Ann from Zürich");
    expect_error("Hi {{crlf}}", TMPL_HEADER, "header injection");
    expect_error("Hi {{lf}}", TMPL_HEADER, "header injection");
    expect_error("Hi\r\nBcc: x@y", TMPL_HEADER, "header injection");
    /* The same values are fine where line breaks are harmless. */
    expect("{{lf}}", TMPL_RAW, "x\ny");
    expect("{{lf}}", TMPL_HTML, "x\ny");
}

static const char *nul_lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    (void)ctx;
    (void)name;
    (void)name_len;
    *value_len = 3;
    return "a\0b";
}

static void test_nul_value(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    const char *err = NULL;
    assert_int_equal(tmpl_render("{{v}}", 5, nul_lookup, NULL, TMPL_HEADER, &b, &err), -1);
    assert_string_equal(err, "header injection");
    assert_int_equal(tmpl_render("{{v}}", 5, nul_lookup, NULL, TMPL_RAW, &b, &err), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 3);
    buf_fini(&b);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Hello {{first_name",
        "Hello {{first_name}",
        "Hello {{",
        "{{}}",
        "{{ }}",
        "{{first name}}",
        "{{first_name!}}",
        "{{nobody|unterminated}",
        "{{a|{{b}}}}",
        "{{{first_name}}}",
        "{{\nfirst_name}}",
        "{{ä}}",
        "{{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}}", /* 65 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        assert_int_equal(tmpl_check(bad[i], strlen(bad[i]), &err), -1);
        assert_string_equal(err, "template syntax error");
        expect_error(bad[i], TMPL_RAW, "template syntax error");
    }
    /* 64 characters is the longest name. */
    const char *ok = "{{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}}";
    const char *err = NULL;
    assert_int_equal(tmpl_check(ok, strlen(ok), &err), 0);
}

static void test_length_not_nul(void **state)
{
    (void)state;
    /* Only len bytes are the template: a tag cut by len is unterminated. */
    const char *t = "Hi {{first_name}}";
    const char *err = NULL;
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(tmpl_render(t, 3, lookup, (void *)FIELDS, TMPL_RAW, &b, &err), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(tmpl_check(t, 10, &err), -1);
    buf_fini(&b);
}

static void test_output_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    const char *err = NULL;
    assert_int_equal(tmpl_render("{{last.name}}", 13, lookup, (void *)FIELDS, TMPL_HTML, &b,
                                 &err), -1);
    assert_string_equal(err, "template output too large");
    assert_int_equal(b.len, 0);
    buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_missing_and_defaults),
        cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_header_mode),
        cmocka_unit_test(test_nul_value),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_length_not_nul),
        cmocka_unit_test(test_output_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
