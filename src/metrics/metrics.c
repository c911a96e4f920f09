/* metrics: Prometheus text format writer and /proc/self process metrics. */
#include "turnkey/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "turnkey/util.h"

void metrics_init(metrics_buf *b)
{
    b->cap = 16384;
    b->n = 0;
    b->p = util_xmalloc(b->cap);
    b->p[0] = '\0';
}

char *metrics_take(metrics_buf *b)
{
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

void metrics_free(metrics_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void metrics_printf(metrics_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = util_xrealloc(b->p, b->cap);
    }
}

void metrics_family(metrics_buf *b, const char *name, const char *type, const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_name(metrics_buf *b, const char *name, const char *labels)
{
    if (labels && *labels)
        metrics_printf(b, "%s{%s} ", name, labels);
    else
        metrics_printf(b, "%s ", name);
}

void metrics_u64(metrics_buf *b, const char *name, const char *labels, uint64_t v)
{
    sample_name(b, name, labels);
    metrics_printf(b, "%llu\n", (unsigned long long)v);
}

void metrics_f64(metrics_buf *b, const char *name, const char *labels, double v)
{
    sample_name(b, name, labels);
    metrics_printf(b, "%.6f\n", v);
}

void metrics_histogram(metrics_buf *b, const char *name, const char *labels, const double *bounds,
                       const uint64_t *counts, size_t n, double sum)
{
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    const char *lab = labels ? labels : "";
    for (size_t i = 0; i <= n; i++) {
        cum += counts[i];
        if (i < n)
            metrics_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep, bounds[i],
                           (unsigned long long)cum);
        else
            metrics_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                           (unsigned long long)cum);
    }
    char suffixed[160];
    snprintf(suffixed, sizeof suffixed, "%s_sum", name);
    metrics_f64(b, suffixed, labels, sum);
    snprintf(suffixed, sizeof suffixed, "%s_count", name);
    metrics_u64(b, suffixed, labels, cum);
}

void metrics_escape(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

static size_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

/* utime, stime (fields 14, 15) and starttime (22) of /proc/self/stat, in clock ticks. */
static int read_stat(unsigned long long *utime, unsigned long long *stime,
                     unsigned long long *start)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) cutime cstime priority nice threads itrealvalue starttime(22) */
    return sscanf(p + 2,
                  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                  "%*d %*d %llu",
                  utime, stime, start) == 3
               ? 0
               : -1;
}

static double boot_time(void)
{
    char line[256];
    double bt = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lf", &bt) == 1)
            break;
    fclose(f);
    return bt;
}

void metrics_process(metrics_buf *b)
{
    double tck = (double)sysconf(_SC_CLK_TCK);
    unsigned long long ut = 0, st = 0, start = 0;
    if (read_stat(&ut, &st, &start) == 0 && tck > 0) {
        metrics_family(b, "turnkey_process_cpu_seconds_total", "counter",
                       "User and system CPU time spent, seconds.");
        metrics_f64(b, "turnkey_process_cpu_seconds_total", NULL, (double)(ut + st) / tck);
        metrics_family(b, "turnkey_process_start_time_seconds", "gauge",
                       "Start time of the process since the epoch, seconds.");
        metrics_f64(b, "turnkey_process_start_time_seconds", NULL,
                    boot_time() + (double)start / tck);
    }
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) == 2) {
            metrics_family(b, "turnkey_process_resident_memory_bytes", "gauge",
                           "Resident memory size, bytes.");
            metrics_u64(b, "turnkey_process_resident_memory_bytes", NULL,
                        (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE));
        }
        fclose(f);
    }
    metrics_family(b, "turnkey_process_open_fds", "gauge", "Open file descriptors.");
    metrics_u64(b, "turnkey_process_open_fds", NULL, count_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        metrics_family(b, "turnkey_process_max_fds", "gauge",
                       "The limit of open file descriptors (RLIMIT_NOFILE, soft).");
        metrics_u64(b, "turnkey_process_max_fds", NULL, (uint64_t)rl.rlim_cur);
    }
}
