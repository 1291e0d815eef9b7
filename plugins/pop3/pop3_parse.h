/*
 * pop3_parse: a streaming parser for POP3 server responses (RFC 1939, 2449).
 *
 * The client tells the parser, in order, what kind of response each command
 * it sent will get (pop3_parser_expect()), then feeds it the bytes read from
 * the socket in chunks of any size (pop3_parser_feed()).  The parser calls
 * back, for every response in turn: `status` once with the +OK/-ERR line,
 * then, for a multi-line +OK response, `line` for each line of a listing
 * (CAPA, UIDL, LIST) or `data` with the bytes of a message (RETR, TOP), then
 * `done`.  A -ERR response, or one of kind POP3_SINGLE, gets `done` right
 * after `status`.
 *
 * Multi-line bodies end at a line holding a single "."; other lines that
 * begin with "." lose that dot (dot-unstuffing).  Lines end with CRLF or a
 * bare LF (both are accepted everywhere).  Listing lines are given without
 * their line end; message data keeps every line end exactly as the server
 * sent it, so a message arrives byte for byte (after unstuffing).
 *
 * Bounded memory: the parser is one fixed-size allocation.  A status or
 * listing line longer than POP3_LINE_MAX bytes, a status line that is neither
 * +OK nor -ERR, bytes that answer no command, or more than POP3_PIPE_MAX
 * expected responses are errors; message data is streamed through without
 * being held, so its size is the client's to limit.  After an error the
 * parser refuses everything (the connection must be dropped).
 *
 * Callbacks return 0 to go on, nonzero to stop: pop3_parser_feed() then
 * returns POP3_ABORT at once.  They may call pop3_parser_expect(), never
 * pop3_parser_free().  Thread: whatever thread owns the parser.
 */
#ifndef MH_PLUGINS_POP3_PARSE_H
#define MH_PLUGINS_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define POP3_LINE_MAX 8192 /* longest status or listing line, without its line end (RFC: 512) */
#define POP3_PIPE_MAX 1024 /* responses that may be expected at once */
#define POP3_UIDL_MAX 255  /* longest unique-id accepted (RFC 1939: 70) */

/** What a command's response looks like. */
enum pop3_kind {
    POP3_SINGLE = 0, /* one status line (USER, PASS, STAT, DELE, NOOP, RSET, QUIT) */
    POP3_LINES = 1,  /* +OK, then lines up to "." (CAPA, UIDL, LIST): the `line` callback */
    POP3_DATA = 2,   /* +OK, then a message up to "." (RETR, TOP): the `data` callback */
};

/** pop3_parser_feed() results. */
enum pop3_result {
    POP3_OK = 0,
    POP3_EPROTO = -1, /* the server broke the protocol: see pop3_parser_error() */
    POP3_ABORT = -2,  /* a callback returned nonzero */
};

/**
 * Callbacks; any may be NULL.  Strings are borrowed for the call.
 *  status: ok 1 for +OK, 0 for -ERR; `text` is what follows the indicator
 *          (leading blanks skipped), NUL-terminated, `len` bytes.
 *  line:   one unstuffed listing line without its line end, NUL-terminated
 *          (it may contain NUL bytes: trust `len`).
 *  data:   the next bytes of a message, unstuffed, line ends as sent.
 *  done:   the response is complete.
 */
struct pop3_callbacks {
    int (*status)(void *arg, enum pop3_kind kind, int ok, const char *text, size_t len);
    int (*line)(void *arg, const char *line, size_t len);
    int (*data)(void *arg, const char *data, size_t len);
    int (*done)(void *arg, enum pop3_kind kind, int ok);
};

struct pop3_parser;

/** A new parser (NULL on ENOMEM).  `cbs` is copied; `arg` is passed to every callback. */
struct pop3_parser *pop3_parser_new(const struct pop3_callbacks *cbs, void *arg);
/** Free; sets *pp to NULL.  NULL-safe. */
void pop3_parser_free(struct pop3_parser **pp);

/** Expect one more response of `kind` after those already expected.  0, or -1 when full. */
int pop3_parser_expect(struct pop3_parser *p, enum pop3_kind kind);
/** Responses expected and not yet complete (the one being parsed included). */
size_t pop3_parser_pending(const struct pop3_parser *p);

/** Parse `len` bytes.  POP3_OK, POP3_EPROTO or POP3_ABORT. */
int pop3_parser_feed(struct pop3_parser *p, const char *buf, size_t len);

/** Why the parser failed (printable ASCII), or NULL. */
const char *pop3_parser_error(const struct pop3_parser *p);

/** Bytes of the body of the current multi-line response so far (after unstuffing). */
uint64_t pop3_parser_body_bytes(const struct pop3_parser *p);

/* ------------------------------------------------------------ helpers */

/**
 * A UIDL listing line (or the text of a "+OK N UID" answer): "N UID".
 * 1 and the message number (> 0) and the unique-id (1..POP3_UIDL_MAX bytes
 * of 0x21..0x7E, pointing into `line`), or 0 when malformed.
 */
int pop3_parse_uidl(const char *line, size_t len, uint32_t *num_out, const char **uid_out,
                    size_t *uid_len_out);

/** A LIST line (or "+OK N SIZE"): "N SIZE[ anything]".  1 and the values, or 0. */
int pop3_parse_list(const char *line, size_t len, uint32_t *num_out, uint64_t *size_out);

/** 1 if the CAPA line's keyword is `name` (case-insensitive), else 0. */
int pop3_capa_is(const char *line, size_t len, const char *name);

/**
 * Copy at most `out_size - 1` bytes of `s` into out for a log line: bytes
 * outside printable ASCII become '?', "..." marks a cut.  Returns out.
 */
char *pop3_printable(const char *s, size_t len, char *out, size_t out_size);

#endif
