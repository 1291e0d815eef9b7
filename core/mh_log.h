/* Logging: levels, stderr or syslog, one instance name per line, secret redaction. */
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stdarg.h>
#include <mailhub/plugin.h>

enum mh_log_target { MH_LOGT_STDERR = 0, MH_LOGT_SYSLOG = 1 };

/** Set the minimum level written (MH_LOG_ERROR..MH_LOG_DEBUG). */
void mh_log_set_level(int level);
int mh_log_get_level(void);
/** Parse "error|warn|info|debug"; returns the level or -1. */
int mh_log_level_parse(const char *s);
const char *mh_log_level_name(int level);
/** Switch target.  `ident` is the syslog identity. */
void mh_log_set_target(enum mh_log_target t, const char *ident);
/** Redirect stderr-target output to a stream (tests).  NULL restores stderr. */
void mh_log_set_stream(void *file /* FILE * */);

/**
 * Register a secret: any later log line containing it has it replaced by
 * "***".  Secrets shorter than 4 bytes are ignored (they would mangle text).
 * Ownership: copied.  Thread-safe.
 */
void mh_log_add_secret(const char *secret);
void mh_log_clear_secrets(void);

/**
 * Write one line: "2026-11-28T20:41:00.123Z info  [who] text".
 * `who` names the component or plugin instance ("core", "provider/work").
 * Thread-safe.
 */
void mh_logf(int level, const char *who, const char *fmt, ...) MH_PRINTF(3, 4);
void mh_vlogf(int level, const char *who, const char *fmt, va_list ap);

#define mh_core_error(...) mh_logf(MH_LOG_ERROR, "core", __VA_ARGS__)
#define mh_core_warn(...) mh_logf(MH_LOG_WARN, "core", __VA_ARGS__)
#define mh_core_info(...) mh_logf(MH_LOG_INFO, "core", __VA_ARGS__)
#define mh_core_debug(...) mh_logf(MH_LOG_DEBUG, "core", __VA_ARGS__)

#endif
