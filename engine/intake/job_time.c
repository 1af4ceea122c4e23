/* engine/intake/job_time.c — RFC 3339 §5.6 date-time parsing into epoch ms, with the civil
 * calendar done by hand (timegm would read the environment and accept out-of-range fields). */
#include "engine/intake/job_time.h"

#include <stdbool.h>

static bool jt__digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t jt__days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int jt__month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

#define FAIL(msg) do { *why = (msg); return -1; } while (0)

int job_time_parse(const char *s, size_t len, int64_t *ms, const char **why)
{
    int y, mo, d, h, mi, sec, frac_ms = 0;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
        !jt__digits(s, 4, &y) || !jt__digits(s + 5, 2, &mo) || !jt__digits(s + 8, 2, &d) ||
        !jt__digits(s + 11, 2, &h) || !jt__digits(s + 14, 2, &mi) ||
        !jt__digits(s + 17, 2, &sec))
        FAIL("not an RFC 3339 date-time (2025-03-01T12:00:00Z)");
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        FAIL("not an RFC 3339 date-time (2025-03-01T12:00:00Z)");
    if (mo < 1 || mo > 12 || d < 1 || d > jt__month_days(y, mo))
        FAIL("no such date");
    /* Second 60 is a leap second; it is counted as the next minute's first, as POSIX does. */
    if (h > 23 || mi > 59 || sec > 60)
        FAIL("no such time of day");
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            frac_ms += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (i == start)
            FAIL("empty fraction of a second");
    }
    int64_t off_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z'))
        i++;
    else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i < 6 || s[i + 3] != ':' || !jt__digits(s + i + 1, 2, &oh) ||
            !jt__digits(s + i + 4, 2, &om))
            FAIL("bad UTC offset (Z, +hh:mm or -hh:mm)");
        if (oh > 23 || om > 59)
            FAIL("bad UTC offset (Z, +hh:mm or -hh:mm)");
        off_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else
        FAIL("missing UTC offset (Z, +hh:mm or -hh:mm)");
    if (i != len)
        FAIL("text after the date-time");
    int64_t secs = jt__days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
    int64_t v = secs * 1000 + frac_ms;
    if (v <= 0)
        FAIL("before 1970");
    *ms = v;
    return 0;
}
