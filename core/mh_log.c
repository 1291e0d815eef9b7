#include "config.h"

#include "mh_log.h"
#include "mh_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/*
 * The logger is process-wide by nature (stderr and syslog are), so it keeps
 * its state in statics guarded by one mutex; lines come from the loop and,
 * rarely, from worker threads.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = MH_LOG_INFO;
static enum mh_log_target log_target = MH_LOGT_STDERR;
static FILE *log_stream;
static char **secrets;
static size_t n_secrets;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void mh_log_set_level(int level)
{
    if (level < MH_LOG_ERROR)
        level = MH_LOG_ERROR;
    if (level > MH_LOG_DEBUG)
        level = MH_LOG_DEBUG;
    pthread_mutex_lock(&log_lock);
    log_level = level;
    pthread_mutex_unlock(&log_lock);
}

int mh_log_get_level(void)
{
    pthread_mutex_lock(&log_lock);
    int l = log_level;
    pthread_mutex_unlock(&log_lock);
    return l;
}

int mh_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return MH_LOG_WARN;
    return -1;
}

const char *mh_log_level_name(int level)
{
    if (level < 0 || level > 3)
        return "?";
    return level_names[level];
}

void mh_log_set_target(enum mh_log_target t, const char *ident)
{
    pthread_mutex_lock(&log_lock);
    if (log_target == MH_LOGT_SYSLOG && t != MH_LOGT_SYSLOG)
        closelog();
    if (t == MH_LOGT_SYSLOG)
        openlog(ident ? ident : "mailhubd", LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_target = t;
    pthread_mutex_unlock(&log_lock);
}

void mh_log_set_stream(void *file)
{
    pthread_mutex_lock(&log_lock);
    log_stream = file;
    pthread_mutex_unlock(&log_lock);
}

void mh_log_add_secret(const char *secret)
{
    if (secret == NULL || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < n_secrets; i++) {
        if (strcmp(secrets[i], secret) == 0) {
            pthread_mutex_unlock(&log_lock);
            return;
        }
    }
    char **ns = realloc(secrets, (n_secrets + 1) * sizeof *ns);
    char *copy = strdup(secret);
    if (ns != NULL)
        secrets = ns;
    if (ns != NULL && copy != NULL)
        secrets[n_secrets++] = copy;
    else
        free(copy);
    pthread_mutex_unlock(&log_lock);
}

void mh_log_clear_secrets(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < n_secrets; i++) {
        /* wipe before freeing: the heap may be dumped in a core file */
        memset(secrets[i], 0, strlen(secrets[i]));
        free(secrets[i]);
    }
    free(secrets);
    secrets = NULL;
    n_secrets = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Replace every registered secret in `s` by "***", in place (the result is never longer). */
static void redact(char *s)
{
    for (size_t i = 0; i < n_secrets; i++) {
        size_t sl = strlen(secrets[i]);
        char *p;
        while ((p = strstr(s, secrets[i])) != NULL) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + sl, strlen(p + sl) + 1);
        }
    }
}

/* Control characters would let a remote peer forge log lines; show them escaped. */
static void sanitize(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < outlen; p++) {
        if (*p == '\n' || *p == '\r' || (*p < 0x20 && *p != '\t') || *p == 0x7f)
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

void mh_vlogf(int level, const char *who, const char *fmt, va_list ap)
{
    if (level > mh_log_get_level())
        return;
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char clean[4096 + 64];
    sanitize(msg, clean, sizeof clean);

    pthread_mutex_lock(&log_lock);
    redact(clean);
    if (log_target == MH_LOGT_SYSLOG) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level < 0 ? 0 : level > 3 ? 3 : level], "[%s] %s", who ? who : "core", clean);
    } else {
        char ts[40];
        mh_time_rfc3339(mh_time_now(), ts, sizeof ts);
        FILE *out = log_stream ? log_stream : stderr;
        fprintf(out, "%s %-5s [%s] %s\n", ts, mh_log_level_name(level), who ? who : "core", clean);
        fflush(out);
    }
    pthread_mutex_unlock(&log_lock);
}

void mh_logf(int level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mh_vlogf(level, who, fmt, ap);
    va_end(ap);
}
