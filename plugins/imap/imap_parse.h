/*
 * imap_parse: a literal-aware, streaming parser for IMAP4rev1 server
 * responses (RFC 3501 / 9051, with CONDSTORE/QRESYNC RFC 7162, SPECIAL-USE
 * RFC 6154, LITERAL+ RFC 7888, ESEARCH RFC 4731).
 *
 * Bytes go in as they arrive (imap_parser_feed(), any split, one byte at a
 * time included); each complete response (a line with all its literals)
 * comes out through the callback as a small token tree.  Limits, all of which
 * end in a parse error (never a crash, a hang or unbounded memory):
 *  - a line segment (text between literals) over IMAP_MAX_LINE (64 KiB);
 *  - a literal over the configured maximum (default 256 MiB);
 *  - more than IMAP_MAX_LITERALS literals or IMAP_MAX_TEXT bytes of line text
 *    in one response, lists nested deeper than IMAP_MAX_DEPTH;
 *  - syntax that does not parse (a literal that lies about its size shows up
 *    this way: the bytes after it are not a valid response continuation).
 * A literal's memory grows as its bytes arrive, so announcing a huge literal
 * costs nothing until the bytes come.  Only the response being assembled is
 * held: one message body at a time.
 *
 * Ownership: everything in a struct imap_resp belongs to the parser and is
 * valid only during the callback.  Thread: any, one parser per thread.
 */
#ifndef MH_IMAP_PARSE_H
#define MH_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_MAX_LINE ((size_t)64 << 10)
#define IMAP_MAX_TEXT ((size_t)1 << 20)
#define IMAP_MAX_LITERALS 4096
#define IMAP_MAX_DEPTH 32
#define IMAP_DEFAULT_MAX_LITERAL ((uint64_t)256 << 20)

enum imap_val_type {
    IMAP_ATOM = 1,   /* also numbers, flags (\Seen) and section atoms (BODY[HEADER.FIELDS (A B)]<0>) */
    IMAP_STRING = 2, /* quoted string or literal; may contain NULs (use len) */
    IMAP_NIL = 3,
    IMAP_LIST = 4, /* parenthesised list: children in `child`, linked by `next` */
};

struct imap_val {
    enum imap_val_type type;
    const char *s; /* ATOM, STRING: NUL-terminated (a literal's bytes may contain NULs too) */
    size_t len;
    int literal; /* STRING: came as a literal */
    struct imap_val *child;
    size_t n; /* LIST: number of children */
    struct imap_val *next;
};

enum imap_resp_kind {
    IMAP_RESP_TAGGED = 1,
    IMAP_RESP_UNTAGGED = 2,
    IMAP_RESP_CONTINUE = 3, /* "+ ..." */
};

enum imap_status {
    IMAP_ST_NONE = 0, /* not a status response (untagged data) */
    IMAP_ST_OK,
    IMAP_ST_NO,
    IMAP_ST_BAD,
    IMAP_ST_BYE,
    IMAP_ST_PREAUTH,
};

/**
 * One response.  Tagged: tag, status, code, text.  Untagged status
 * ("* OK [UIDVALIDITY 5] ..."): status, code, text.  Untagged data:
 * `word` upper-cased ("CAPABILITY", "LIST", "FETCH", "EXISTS", ...), `num`
 * for "* 12 FETCH (...)" kinds (has_num 1), `args` the tokens after the word.
 * Continuation: text.
 */
struct imap_resp {
    enum imap_resp_kind kind;
    const char *tag;
    enum imap_status status;
    const char *word;
    uint32_t num;
    int has_num;
    const char *code;                 /* response code atom upper-cased ("UIDVALIDITY"), or NULL */
    const struct imap_val *code_args; /* the tokens after it (NULL if none or unparsable) */
    const char *text;                 /* human-readable text after the code, "" if none */
    const struct imap_val *args;      /* untagged data: first token (linked by next), or NULL */
};

/** The callback: return 0 to go on, nonzero to stop feeding (feed then returns that value). */
typedef int (*imap_resp_cb)(void *arg, const struct imap_resp *r);

struct imap_parser;

/** max_literal 0: IMAP_DEFAULT_MAX_LITERAL.  NULL on ENOMEM. */
struct imap_parser *imap_parser_new(uint64_t max_literal, imap_resp_cb cb, void *arg);
void imap_parser_free(struct imap_parser *p);
/** Forget any partial response (after a reconnect). */
void imap_parser_reset(struct imap_parser *p);

/**
 * Feed bytes.  Returns 0, the callback's nonzero value (parsing stopped at
 * that response; the rest of `data` is dropped), or -1 on a parse error
 * (imap_parser_error() says what; the parser stays failed until reset).
 */
int imap_parser_feed(struct imap_parser *p, const char *data, size_t len);
const char *imap_parser_error(const struct imap_parser *p);
/** Bytes of the response being assembled (for back-pressure accounting). */
size_t imap_parser_pending(const struct imap_parser *p);

/* ------------------------------------------------------------- helpers */

/** Case-insensitive comparison of an ATOM (or STRING) to a C string. */
int imap_val_is(const struct imap_val *v, const char *word);
/** An ATOM that is a decimal number within range: 1 and *out, else 0. */
int imap_val_u64(const struct imap_val *v, uint64_t *out);
/** The n-th child of a list, or NULL. */
const struct imap_val *imap_list_at(const struct imap_val *list, size_t n);

/** FETCH data ("* N FETCH (...)"): what the provider asks for. */
struct imap_fetch {
    uint32_t seq;
    uint32_t uid; /* 0 if absent */
    int has_flags;
    char flags[1024];      /* space-separated, as sent (truncated at a flag boundary if longer) */
    uint64_t size;         /* RFC822.SIZE */
    int64_t internal_date; /* seconds since the epoch, 0 if absent or unparsable */
    uint64_t modseq;       /* MODSEQ (n), 0 if absent */
    const char *body;      /* BODY[] (NIL: NULL with has_body 1) */
    size_t body_len;
    int has_body;
};
/** 0, or -1 when r is not a well-formed FETCH. */
int imap_fetch_get(const struct imap_resp *r, struct imap_fetch *f);

/** LIST / LSUB data. */
struct imap_list {
    char delim;           /* hierarchy delimiter, 0 for NIL */
    const char *raw_name; /* the name as the server sent it (for commands) */
    size_t raw_len;
    int noselect;            /* \Noselect or \NonExistent */
    const char *special_use; /* "\Sent", "\Trash", ... (the first one), or NULL */
};
int imap_list_get(const struct imap_resp *r, struct imap_list *l);

/** STATUS data and SELECT/EXAMINE response codes gather into this. */
struct imap_status_data {
    const char *raw_name; /* STATUS only */
    uint64_t messages, uidnext, uidvalidity, unseen, highestmodseq;
    int has_messages, has_uidnext, has_uidvalidity, has_highestmodseq;
};
int imap_status_get(const struct imap_resp *r, struct imap_status_data *s);

/** 1 if the CAPABILITY (data or response code) lists `cap` (case-insensitive). */
int imap_caps_have(const struct imap_val *caps, const char *cap);

/** "1:4,7,9:*" -> cb(lo, hi) per range (lo <= hi; '*' is UINT32_MAX).  0 or -1 on bad syntax. */
int imap_seqset_each(const char *set, size_t len, int (*cb)(void *arg, uint32_t lo, uint32_t hi), void *arg);

/** RFC 3501 date-time "17-Jul-1996 02:44:25 -0700" -> seconds since the epoch, or -1. */
int64_t imap_parse_datetime(const char *s, size_t len);

/**
 * Modified UTF-7 (RFC 3501 5.1.3) -> UTF-8.  Returns the length written
 * (NUL-terminated within cap) or -1 if `in` is not valid modified UTF-7 or
 * does not fit.
 */
long imap_mutf7_decode(const char *in, size_t len, char *out, size_t cap);
/** UTF-8 -> modified UTF-7; same conventions (-1 on invalid UTF-8). */
long imap_mutf7_encode(const char *in, size_t len, char *out, size_t cap);

/**
 * Append `s` to `out` as an IMAP astring argument: a quoted string with \ and "
 * escaped (or an atom-safe quoted form); -1 if s holds CR, LF or NUL, or it does not fit.
 */
long imap_quote(const char *s, size_t len, char *out, size_t cap);

#endif /* MH_IMAP_PARSE_H */
