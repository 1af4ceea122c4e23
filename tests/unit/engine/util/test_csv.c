/* tests/unit/engine/util/test_csv.c — recipient lists: the in-place record parser (quotes,
 * escaped quotes, CRLF, separators and newlines inside quotes, incomplete vs malformed) and
 * the streaming reader on real temp files (CSV with a header, JSON lines, errors naming the
 * line, a 100,000-row file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/util/csv.h"

/* ------------------------------------------------------------------ csv_parse_record */

struct rec_case {
    const char *in;
    int at_eof;
    long rc;                 /* bytes consumed, 0 incomplete, -1 malformed */
    const char *fields[6];   /* expected when rc > 0 */
    unsigned nfields;
};

static void run_case(const struct rec_case *c, unsigned max_fields)
{
    size_t len = strlen(c->in);
    char *buf = malloc(len + 1);
    memcpy(buf, c->in, len);
    buf[len] = '#';          /* the caller's spare byte */
    char *orig = malloc(len + 1);
    memcpy(orig, buf, len + 1);
    char *fields[8];
    unsigned nf = 12345;
    long rc = csv_parse_record(buf, len, c->at_eof, fields, max_fields, &nf);
    if (rc != c->rc)
        fail_msg("'%s' (eof %d): rc %ld, wanted %ld", c->in, c->at_eof, rc, c->rc);
    if (rc == 0)  /* incomplete: the buffer is left intact for the next read */
        assert_memory_equal(buf, orig, len + 1);
    if (rc > 0) {
        if (nf != c->nfields)
            fail_msg("'%s': %u fields, wanted %u", c->in, nf, c->nfields);
        for (unsigned i = 0; i < nf; i++) {
            assert_true(fields[i] >= buf && fields[i] <= buf + len);
            if (strcmp(fields[i], c->fields[i]) != 0)
                fail_msg("'%s': field %u is '%s', wanted '%s'", c->in, i, fields[i], c->fields[i]);
        }
        /* bytes after the record are untouched */
        assert_memory_equal(buf + rc, orig + rc, len - (size_t)rc);
    }
    free(buf);
    free(orig);
}

static void test_parse_record(void **state)
{
    (void)state;
    static const struct rec_case cases[] = {
        {"a,b,c\n", 0, 6, {"a", "b", "c"}, 3},
        {"a,b,c\nnext", 0, 6, {"a", "b", "c"}, 3},
        {"a,b\r\n", 0, 5, {"a", "b"}, 2},
        {"a,b\r\nc,d\r\n", 0, 5, {"a", "b"}, 2},
        {"\n", 0, 1, {""}, 1},
        {"\r\n", 0, 2, {""}, 1},
        {",,\n", 0, 3, {"", "", ""}, 3},
        {"\"x\",\"\"\n", 0, 7, {"x", ""}, 2},
        {"\"a,b\",c\n", 0, 8, {"a,b", "c"}, 2},
        {"\"say \"\"hi\"\"\",2\n", 0, 15, {"say \"hi\"", "2"}, 2},
        {"\"\"\"\"\n", 0, 5, {"\""}, 1},
        {"\"line1\nline2\",x\n", 0, 16, {"line1\nline2", "x"}, 2},
        {"\"crlf\r\ninside\"\r\n", 0, 16, {"crlf\r\ninside"}, 1},
        {" a , b \n", 0, 8, {" a ", " b "}, 2},            /* spaces are data */
        {"a\rb,c\n", 0, 6, {"a\rb", "c"}, 2},              /* lone CR is data */
        {"caf\xc3\xa9,\xe2\x82\xac\n", 0, 10, {"caf\xc3\xa9", "\xe2\x82\xac"}, 2},
        /* at the end of the file, the last record needs no newline */
        {"a,b", 1, 3, {"a", "b"}, 2},
        {"a,b\r", 1, 4, {"a", "b"}, 2},
        {"\"q\"", 1, 3, {"q"}, 1},
        {"a,\"b\"", 1, 5, {"a", "b"}, 2},
        /* incomplete: no newline yet, or a newline inside open quotes */
        {"a,b", 0, 0, {0}, 0},
        {"", 0, 0, {0}, 0},
        {"\"open\nstill open", 0, 0, {0}, 0},
        {"\"a\"\"\n", 0, 0, {0}, 0},
        /* malformed */
        {"\"open", 1, -1, {0}, 0},
        {"\"open\nmore\n", 1, -1, {0}, 0},
        {"a\"b\",c\n", 0, -1, {0}, 0},
        {"\"a\"b,c\n", 0, -1, {0}, 0},
        {"\"a\" ,c\n", 0, -1, {0}, 0},
        {"x,\"a\"\"\n\"junk\n", 0, -1, {0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i], 6);
}

static void test_parse_record_limits(void **state)
{
    (void)state;
    struct rec_case three = {"a,b,c\n", 0, -1, {0}, 0};
    run_case(&three, 2);                /* more fields than the caller has room for */
    struct rec_case two = {"a,b\n", 0, 4, {"a", "b"}, 2};
    run_case(&two, 2);
    char buf[] = "a\n";
    char *f[1];
    unsigned nf;
    assert_int_equal(csv_parse_record(buf, 2, 0, f, 0, &nf), -1);
}

/* Feeding a file to the parser in pieces gives the same records as in one go. */
static void test_parse_record_incremental(void **state)
{
    (void)state;
    const char *text = "email,name\r\n\"a@x.example\",\"Ann, \"\"A\"\"\"\r\nb@x.example,\"two\nlines\"\r\nc@x.example,C";
    size_t total = strlen(text);
    for (size_t piece = 1; piece <= total; piece++) {
        char buf[256];
        size_t have = 0, fed = 0;
        unsigned records = 0;
        char got[4][2][32];
        for (;;) {
            size_t add = total - fed < piece ? total - fed : piece;
            memcpy(buf + have, text + fed, add);
            have += add;
            fed += add;
            int eof = fed == total;
            char *f[4];
            unsigned nf;
            long rc;
            while (have > 0 && (rc = csv_parse_record(buf, have, eof, f, 4, &nf)) > 0) {
                assert_int_equal(nf, 2);
                assert_true(records < 4);
                snprintf(got[records][0], 32, "%s", f[0]);
                snprintf(got[records][1], 32, "%s", f[1]);
                records++;
                memmove(buf, buf + rc, have - (size_t)rc);
                have -= (size_t)rc;
            }
            assert_true(rc >= 0 || have == 0);
            if (eof)
                break;
        }
        assert_int_equal(records, 4);
        assert_string_equal(got[1][0], "a@x.example");
        assert_string_equal(got[1][1], "Ann, \"A\"");
        assert_string_equal(got[2][1], "two\nlines");
        assert_string_equal(got[3][0], "c@x.example");
        assert_string_equal(got[3][1], "C");
    }
}

/* ------------------------------------------------------------------ reader on files */

static char DIR_[64];
static char PATH[128];

static int setup(void **state)
{
    (void)state;
    snprintf(DIR_, sizeof DIR_, "/tmp/salvo-csv-XXXXXX");
    assert_non_null(mkdtemp(DIR_));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static const char *write_file(const char *name, const char *text)
{
    snprintf(PATH, sizeof PATH, "%s/%s", DIR_, name);
    FILE *f = fopen(PATH, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return PATH;
}

static const char *field(const struct csv_row *row, const char *name)
{
    for (unsigned i = 0; i < row->nfields; i++)
        if (strcmp(row->names[i], name) == 0)
            return row->values[i];
    return NULL;
}

static void test_reader_csv(void **state)
{
    (void)state;
    const char *why = NULL;
    struct csv_reader *r = csv_open(write_file("list.csv",
        "first,Email,city\r\n"
        "Ann,ann@x.example,\"Paris, FR\"\r\n"
        "\r\n"
        "\"Bob \"\"B\"\"\",bob@x.example,\r\n"
        "\n"
        "Eve,eve@x.example,\"Line1\nLine2\"\r\n"
        "Zed,zed@x.example,End"), &why);
    assert_non_null(r);
    struct csv_row row;
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "ann@x.example");
    assert_int_equal(row.nfields, 2);              /* the email column is not a merge field */
    assert_string_equal(row.names[0], "first");
    assert_string_equal(row.values[0], "Ann");
    assert_string_equal(row.names[1], "city");
    assert_string_equal(field(&row, "city"), "Paris, FR");
    assert_int_equal(row.line, 2);
    assert_int_equal(csv_next(r, &row, &why), 1);  /* blank line skipped */
    assert_string_equal(row.email, "bob@x.example");
    assert_string_equal(field(&row, "first"), "Bob \"B\"");
    assert_string_equal(field(&row, "city"), "");
    assert_int_equal(row.line, 4);
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "eve@x.example");
    assert_string_equal(field(&row, "city"), "Line1\nLine2");
    assert_true(csv_progress(r) > 0.0 && csv_progress(r) < 1.0);
    assert_int_equal(csv_next(r, &row, &why), 1);  /* last row without a newline */
    assert_string_equal(row.email, "zed@x.example");
    assert_string_equal(field(&row, "city"), "End");
    assert_int_equal(csv_next(r, &row, &why), 0);
    assert_int_equal(csv_next(r, &row, &why), 0);
    assert_true(csv_progress(r) == 1.0);
    csv_close(r);

    /* email as the last column, and a file holding only a header */
    r = csv_open(write_file("last.csv", "a,b,email\n1,2,x@y.example\n"), &why);
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "x@y.example");
    assert_string_equal(field(&row, "a"), "1");
    assert_string_equal(field(&row, "b"), "2");
    csv_close(r);
    r = csv_open(write_file("empty.csv", "email\n"), &why);
    assert_int_equal(csv_next(r, &row, &why), 0);
    csv_close(r);
    r = csv_open(write_file("zero.csv", ""), &why);
    assert_int_equal(csv_next(r, &row, &why), 0);
    assert_true(csv_progress(r) == 0.0);
    csv_close(r);

    why = NULL;
    snprintf(PATH, sizeof PATH, "%s/missing.csv", DIR_);
    assert_null(csv_open(PATH, &why));
    assert_non_null(why);
}

/* Reads good_rows rows, then expects an error starting with want. Returns NULL when it
 * matched, else a description (static); the reader is closed either way (no leak on failure). */
static const char *check_error(const char *name, const char *text, int good_rows, const char *want)
{
    static char msg[512];
    const char *why = NULL;
    struct csv_reader *r = csv_open(write_file(name, text), &why);
    assert_non_null(r);
    struct csv_row row;
    msg[0] = '\0';
    for (int i = 0; i < good_rows && !msg[0]; i++)
        if (csv_next(r, &row, &why) != 1)
            snprintf(msg, sizeof msg, "%s: row %d: %s", name, i + 1, why);
    if (!msg[0]) {
        why = NULL;
        int rc = csv_next(r, &row, &why);
        if (rc != -1 || !why)
            snprintf(msg, sizeof msg, "%s: rc %d, wanted -1", name, rc);
        else if (strncmp(why, want, strlen(want)) != 0)
            snprintf(msg, sizeof msg, "%s: error \"%s\", wanted it to start with \"%s\"", name, why,
                     want);
    }
    csv_close(r);
    return msg[0] ? msg : NULL;
}

static void expect_error(const char *name, const char *text, int good_rows, const char *want)
{
    const char *m = check_error(name, text, good_rows, want);
    if (m)
        fail_msg("%s", m);
}

/* Runs several checks and reports every mismatch before failing. */
static void expect_errors(const char *const *names, const char *const *texts, const int *good,
                          const char *const *wants, unsigned n)
{
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *m = check_error(names[i], texts[i], good[i], wants[i]);
        if (m) {
            print_error("%s\n", m);
            bad++;
        }
    }
    if (bad)
        fail_msg("%u of %u error messages name the wrong line", bad, n);
}

static void test_reader_errors(void **state)
{
    (void)state;
    /* malformed quotes on line 3 */
    expect_error("quote.csv", "email,n\na@x.example,1\nb@x.example,\"x\"y\n", 1, "line 3: ");
    /* an unterminated quote at the end */
    expect_error("open.csv", "email,n\na@x.example,\"never closed\n", 0, "line 2: ");
    /* a row over 1 MiB */
    size_t big = CSV_MAX_ROW_BYTES + 100;
    char *text = malloc(big + 64);
    int n = snprintf(text, 64, "email,n\na@x.example,");
    memset(text + n, 'z', big);
    strcpy(text + n + big, "\nb@x.example,1\n");
    expect_error("big.csv", text, 0, "line 2: row longer than 1 MiB");
    free(text);
}

/* Regression (fixed): csv.c's errors name the wrong line for a header without "email" and for a row with
 * the wrong number of columns: the record was already counted (csv__record, csv.c:167,
 * r->line++) when csv__fail adds one more (csv.c:179, "line %lu", r->line + 1). The
 * malformed-quote error above (not yet counted) names the right line. */
static void test_reader_error_lines(void **state)
{
    (void)state;
    static const char *const names[] = {"noemail.csv", "columns.csv", "columns2.csv"};
    static const char *const texts[] = {
        "name,city\nAnn,Paris\n",
        "email,name\na@x.example,Ann\nb@x.example\nc@x.example,C\n",
        "email\na@x.example\nb@x.example,extra\n",
    };
    static const int good[] = {0, 1, 1};
    static const char *const wants[] = {
        "line 1: the header row has no 'email' column",
        "line 3: wrong number of columns",
        "line 3: wrong number of columns",
    };
    expect_errors(names, texts, good, wants, 3);
}

static void test_reader_jsonl(void **state)
{
    (void)state;
    const char *why = NULL;
    struct csv_reader *r = csv_open(write_file("list.jsonl",
        "{\"email\":\"ann@x.example\",\"name\":\"Ann\",\"n\":42,\"vip\":true,\"no\":false,"
        "\"ratio\":0.5,\"gone\":null}\r\n"
        "\n"
        "   \n"
        "{\"name\":\"B\\u00e9\",\"email\":\"bob@x.example\"}\n"
        "{\"email\":\"eve@x.example\"}"), &why);
    assert_non_null(r);
    struct csv_row row;
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "ann@x.example");
    assert_int_equal(row.nfields, 6);
    assert_string_equal(field(&row, "name"), "Ann");
    assert_string_equal(field(&row, "n"), "42");
    assert_string_equal(field(&row, "vip"), "true");
    assert_string_equal(field(&row, "no"), "false");
    assert_string_equal(field(&row, "ratio"), "0.5");
    assert_string_equal(field(&row, "gone"), "");
    assert_null(field(&row, "email"));
    assert_int_equal(row.line, 1);
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "bob@x.example");
    assert_string_equal(field(&row, "name"), "B\xc3\xa9");
    assert_int_equal(row.nfields, 1);
    assert_int_equal(row.line, 4);
    assert_int_equal(csv_next(r, &row, &why), 1);
    assert_string_equal(row.email, "eve@x.example");
    assert_int_equal(row.nfields, 0);
    assert_int_equal(csv_next(r, &row, &why), 0);
    csv_close(r);

    /* .ndjson and .json are JSON lines too */
    r = csv_open(write_file("l.ndjson", "{\"email\":\"a@x.example\"}\n"), &why);
    assert_int_equal(csv_next(r, &row, &why), 1);
    csv_close(r);
    r = csv_open(write_file("l.JSON", "{\"email\":\"a@x.example\"}\n"), &why);
    assert_int_equal(csv_next(r, &row, &why), 1);
    csv_close(r);

    /* bad JSON on line 2 */
    expect_error("bad.jsonl", "{\"email\":\"a@x.example\"}\n{\"email\":\n", 1, "line 2: ");
    expect_error("arr.jsonl", "[1,2]\n", 0, "line 1: not a JSON object");
}

/* Regression (fixed): the same off-by-one for JSON lines once the line parsed: "no email" and bad field
 * values name the next line (csv.c:248 r->line++, then csv__fail adds one; only the
 * parse-error path at csv.c:257 undoes the increment). */
static void test_reader_jsonl_error_lines(void **state)
{
    (void)state;
    static const char *const names[] = {"noemail.jsonl", "nested.jsonl", "numemail.jsonl"};
    static const char *const texts[] = {
        "{\"email\":\"a@x.example\"}\n{\"name\":\"x\"}\n",
        "{\"email\":\"a@x.example\",\"o\":{\"a\":1}}\n",
        "{\"email\":7}\n",
    };
    static const int good[] = {1, 0, 0};
    static const char *const wants[] = {
        "line 2: no \"email\" string",
        "line 1: merge field values",
        "line 1: no \"email\" string",
    };
    expect_errors(names, texts, good, wants, 3);
}

static void test_reader_100k(void **state)
{
    (void)state;
    snprintf(PATH, sizeof PATH, "%s/big.csv", DIR_);
    FILE *f = fopen(PATH, "wb");
    assert_non_null(f);
    fprintf(f, "email,first,token\n");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "user%d@x.example,\"Name %d, Jr.\",tok%08x\r\n", i, i, (unsigned)i * 2654435761u);
    fclose(f);
    const char *why = NULL;
    struct csv_reader *r = csv_open(PATH, &why);
    assert_non_null(r);
    struct csv_row row;
    int rc;
    unsigned long rows = 0;
    char want[64];
    while ((rc = csv_next(r, &row, &why)) == 1) {
        if (rows % 9973 == 0) {
            snprintf(want, sizeof want, "user%lu@x.example", rows);
            assert_string_equal(row.email, want);
            snprintf(want, sizeof want, "Name %lu, Jr.", rows);
            assert_string_equal(row.values[0], want);
        }
        rows++;
    }
    if (rc != 0)
        fail_msg("error: %s", why);
    assert_int_equal(rows, 100000);
    assert_string_equal(row.email, "user99999@x.example");
    assert_true(csv_progress(r) == 1.0);
    csv_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_record),
        cmocka_unit_test(test_parse_record_limits),
        cmocka_unit_test(test_parse_record_incremental),
        cmocka_unit_test_setup_teardown(test_reader_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_error_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_jsonl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_jsonl_error_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_100k, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
