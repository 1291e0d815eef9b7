/*
 * Declarative options: validation of a YAML map against a struct mh_option
 * table, typed values, and the accessors behind mh_cfg_*() in plugin.h.
 */
#ifndef MH_OPTIONS_H
#define MH_OPTIONS_H

#include <stdio.h>
#include <mailhub/plugin.h>

struct mh_cfg_node;
struct mh_cfg_errors;

/** Value parsers shared by the whole config (return 0 ok, -1 invalid). */
int mh_parse_bool(const char *s, int *out);
int mh_parse_int(const char *s, int64_t *out);
int mh_parse_duration_ms(const char *s, int64_t *out); /* "250ms" "5s" "2m" "1h" "1d", bare = s */
int mh_parse_size(const char *s, uint64_t *out);       /* "512" "64KB" "30MB" "1GB" (1024-based; KiB etc. too) */
const char *mh_opt_type_name(enum mh_opt_type t);      /* "string", "integer", ... */
/** Compact text for messages: 3600000 -> "1h", 1500 -> "1500ms"; 31457280 -> "30MB". */
void mh_format_duration(int64_t ms, char *buf, size_t cap);
void mh_format_size(uint64_t bytes, char *buf, size_t cap);

/** Levenshtein-based suggestion: the closest of `candidates` (NULL-terminated) or NULL. */
const char *mh_did_you_mean(const char *word, const char *const *candidates);

/**
 * Resolved values of one instance's options.  Begins with the public
 * struct mh_config head so it can be handed to plugins as is.
 */
struct mh_opts;

/**
 * Validate `map` (a YAML map, or NULL for "no options given") against
 * `table`.  Errors are appended to `errs` with file:line:column, the key path
 * (`keypath` + "." + key) and what was expected.  Unknown keys are errors
 * with a did-you-mean.  On success *out holds every option of the table
 * (defaults filled in).  Returns 0, or -1 if any error was added.
 * `host` is stored in the public head (may be NULL in tests).
 */
int mh_opts_build(const struct mh_option *table, const struct mh_cfg_node *map, const char *file,
                  const char *keypath, const struct mh_host *host, struct mh_opts **out,
                  struct mh_cfg_errors *errs);
/**
 * mh_opts_build(), with the position (1-based; 0: the map's own) where a
 * missing required key is reported: pass the position of the key that owns
 * the map (e.g. mh_instance_cfg.options_line/col), which also covers a map
 * that was not written at all.
 */
int mh_opts_build_at(const struct mh_option *table, const struct mh_cfg_node *map, const char *file,
                     const char *keypath, int line, int col, const struct mh_host *host,
                     struct mh_opts **out, struct mh_cfg_errors *errs);
void mh_opts_free(struct mh_opts **o);
const struct mh_config *mh_opts_config(const struct mh_opts *o);
/** 1 if both hold the same values (SIGHUP change detection). */
int mh_opts_equal(const struct mh_opts *a, const struct mh_opts *b);
/** Register every MH_OPT_SECRET value with the logger's redaction list. */
void mh_opts_register_secrets(const struct mh_opts *o);

/* Accessors; `cfg` is mh_opts_config(o).  Unknown names read as NULL / 0. */
const char *mh_opts_str(const struct mh_config *cfg, const char *name);
int64_t mh_opts_int(const struct mh_config *cfg, const char *name);
int mh_opts_bool(const struct mh_config *cfg, const char *name);
int64_t mh_opts_duration_ms(const struct mh_config *cfg, const char *name);
uint64_t mh_opts_size(const struct mh_config *cfg, const char *name);
size_t mh_opts_list_len(const struct mh_config *cfg, const char *name);
const char *mh_opts_list_item(const struct mh_config *cfg, const char *name, size_t i);
int mh_opts_is_set(const struct mh_config *cfg, const char *name);

/**
 * Core-internal option type, for the daemon's own schema only (not part of
 * the plugin ABI): a nested map, kept as a borrowed node; read it with
 * mh_opts_node().
 */
#define MH_OPT_X_MAP ((enum mh_opt_type)100)
/** The node of an MH_OPT_X_MAP option (borrowed from the tree), or NULL. */
const struct mh_cfg_node *mh_opts_node(const struct mh_config *cfg, const char *name);

/** Print a table for --plugin-help: name, type, default, required/secret, help, choices/range. */
void mh_opts_print_help(FILE *out, const struct mh_option *table);

#endif
