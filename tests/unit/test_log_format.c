/* log: structured records in text and JSON; no value can end the line or forge a field. */
#include <jansson.h>
#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/log.h"

static const char evil[] = "x\" level=error msg=\"forged\n2026-01-01T00:00:00.000Z level=error";

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void t_text_escapes_every_value(void)
{
    char line[2048];
    const uint8_t bytes[] = {'a', 0, '\r', 0xff, '"'};
    log_field f[] = {LOG_S("custom_id", evil), LOG_B("username", bytes, sizeof bytes),
                     LOG_I("n", -3), LOG_U("bytes", 18446744073709551615ull)};
    size_t n = log_format_event(line, sizeof line, LOG_TEXT, "T", LOG_INFO, "relay", 0,
                                "allocation ended", f, 4);
    CHECK_INT(n, strlen(line));
    CHECK_INT(count_char(line, '\n'), 1); /* one line, ending the record */
    CHECK(line[n - 1] == '\n');
    CHECK(strstr(line, "T level=info module=\"relay\" msg=\"allocation ended\" ") == line);
    CHECK(strstr(line, "custom_id=\"x\\\" level=error msg=\\\"forged\\n2026") != NULL);
    CHECK(strstr(line, "username=\"a\\x00\\r\\xff\\\"\"") != NULL);
    CHECK(strstr(line, " n=-3 bytes=18446744073709551615\n") != NULL);
    /* the only unescaped quotes are the ones around the 4 quoted values */
    size_t bare = 0;
    for (size_t i = 0; i < n; i++)
        bare += line[i] == '"' && (i == 0 || line[i - 1] != '\\');
    CHECK_INT(bare, 8);
}

static void t_json_is_one_object(void)
{
    char line[2048];
    log_field f[] = {LOG_S("name", evil), LOG_U("bytes", 42)};
    log_format_event(line, sizeof line, LOG_JSON, "2026-01-01T00:00:00.000Z", LOG_WARN, "api", 3,
                     "key renamed", f, 2);
    CHECK_INT(count_char(line, '\n'), 1);
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    CHECK(o != NULL);
    CHECK_STR(json_string_value(json_object_get(o, "level")), "warn");
    CHECK_STR(json_string_value(json_object_get(o, "msg")), "key renamed");
    CHECK_STR(json_string_value(json_object_get(o, "name")), evil);
    CHECK_INT(json_integer_value(json_object_get(o, "bytes")), 42);
    CHECK_INT(json_integer_value(json_object_get(o, "suppressed")), 3);
    json_decref(o);
}

static void t_cut_record_stays_one_line(void)
{
    char line[64];
    log_field f[] = {LOG_S("v", evil)};
    size_t n = log_format_event(line, sizeof line, LOG_TEXT, "T", LOG_INFO, "m", 0, evil, f, 1);
    CHECK(n < sizeof line);
    CHECK_INT(count_char(line, '\n'), 1);
    CHECK(line[n - 1] == '\n');
}

static void t_cut_json_still_parses(void)
{
    for (size_t cap = 16; cap < 200; cap += 7) {
        char line[200];
        log_field f[] = {LOG_S("name", evil), LOG_U("bytes", 42), LOG_S("more", evil)};
        size_t n = log_format_event(line, cap, LOG_JSON, "2026-01-01T00:00:00.000Z", LOG_INFO,
                                    "api", 0, "a message", f, 3);
        CHECK(n > 0 && n < cap);
        CHECK_INT(count_char(line, '\n'), 1);
        json_t *o = json_loads(line, 0, NULL);
        CHECK(o != NULL);
        json_decref(o);
    }
}

static void t_parse_format(void)
{
    CHECK_INT(log_parse_format("text"), LOG_TEXT);
    CHECK_INT(log_parse_format("json"), LOG_JSON);
    CHECK_INT(log_parse_format("xml"), -1);
}

int main(void)
{
    TK_RUN(t_text_escapes_every_value);
    TK_RUN(t_json_is_one_object);
    TK_RUN(t_cut_record_stays_one_line);
    TK_RUN(t_cut_json_still_parses);
    TK_RUN(t_parse_format);
    return tk_test_summary();
}
