/*
 * notify_tpl: helpers shared by the notifier plugins (sms, email, webhook),
 * linked into each as a convenience library.  Nothing here touches the host
 * table: every function is pure (or uses OpenSSL / jansson only), so the unit
 * tests call them directly.
 *
 *  - the fields of an event envelope (docs/events.md) that templates use;
 *  - template rendering with {placeholders}, optionally escaped for a URL
 *    form or a JSON string;
 *  - SMS text: GSM-7 detection and cutting to at most N segments on
 *    character boundaries;
 *  - Standard Webhooks signatures (HMAC-SHA256 over "id.timestamp.body");
 *  - mail header/body encodings: RFC 2047 encoded words, quoted-printable.
 *
 * Ownership: every char * returned is malloc'ed and freed with free() by the
 * caller; NULL means out of memory unless said otherwise.
 */
#ifndef MH_NOTIFY_TPL_H
#define MH_NOTIFY_TPL_H

#include <stddef.h>
#include <stdint.h>

/** The parts of an event that notifiers show.  Missing fields are "" (never NULL after a parse). */
struct ntpl_event {
    char *id, *type, *time, *user;
    char *account, *folder;
    char *from;      /* as in data.from, e.g. "Alice Chen <alice@corp.example>" */
    char *from_name; /* the display name, or the address when there is none */
    char *from_addr; /* the address alone (may be "") */
    char *subject;
    char *phone;      /* data.phone when present (the core adds the user's number later) */
    char *message_id; /* data.message_id */
    int64_t store_id; /* data.store_id, or -1 */
};

/**
 * Parse an envelope.  Returns 0, or -1 when `json` is not a JSON object
 * (then `err` receives a short reason when not NULL).  Clear with ntpl_event_clear().
 */
int ntpl_event_parse(const char *json, size_t len, struct ntpl_event *ev, char *err, size_t err_len);
void ntpl_event_clear(struct ntpl_event *ev);

/** Split "Name <addr>" (quotes removed) into its display name and address; either may be "". */
void ntpl_split_address(const char *from, char **name_out, char **addr_out);

/** How a rendered value is escaped. */
enum ntpl_escape {
    NTPL_RAW = 0,  /* as is */
    NTPL_FORM = 1, /* application/x-www-form-urlencoded (space as %20, UTF-8 bytes as %XX) */
    NTPL_JSON = 2, /* the inside of a JSON string (quotes, backslashes, controls escaped) */
};

/** An extra placeholder (e.g. {text}, {to}) for ntpl_render(). */
struct ntpl_var {
    const char *name;
    const char *value;
};

/**
 * Render `tpl`: {account} {folder} {from} (the display name) {from_addr}
 * {from_full} {subject} {user} {type} {id} {phone} {store_id}, then the
 * `extra` variables (n_extra of them; they win over the built-in names),
 * each escaped per `esc`.  A placeholder is "{" lower-case name "}"; any
 * other brace is literal, so JSON templates need no escaping.  An unknown
 * placeholder is kept literally (ntpl_check() refuses it at configuration time).
 */
char *ntpl_render(const char *tpl, const struct ntpl_event *ev, const struct ntpl_var *extra, size_t n_extra,
                  enum ntpl_escape esc);

/**
 * Check a template: 0 if every placeholder is known (built-in, or one of the
 * `extra_names`, NULL-terminated, may be NULL), else -1 with
 * "unknown placeholder {name}" in `bad`.
 */
int ntpl_check(const char *tpl, const char *const *extra_names, char *bad, size_t bad_len);

/** Escape `s` per `esc` (NTPL_RAW copies). */
char *ntpl_escape(const char *s, enum ntpl_escape esc);

/* ----------------------------------------------------------------- SMS */

/**
 * GSM 03.38 septets `utf8` needs in the default alphabet (an extension-table
 * character counts 2), or -1 if some character is not in it (then UCS-2 is used).
 */
long ntpl_gsm7_septets(const char *utf8);

/** Result of fitting a text into SMS segments. */
struct ntpl_sms_fit {
    int ucs2;      /* 1: needs UCS-2 (coding=2), 0: GSM-7 */
    size_t len;    /* bytes of the UTF-8 text kept (a character boundary) */
    int parts;     /* segments the kept text takes (0 for an empty text) */
    int truncated; /* 1 when characters were cut off */
    size_t units;  /* septets (GSM-7) or UTF-16 code units (UCS-2) of the kept text */
};

/**
 * Fit `utf8` into at most `max_parts` (>= 1) segments: GSM-7 160 septets in
 * one part or 153 per part when concatenated, UCS-2 70 / 67 UTF-16 code units;
 * an extension character (escape + char) and a surrogate pair are never split
 * across two parts.  The text is cut on a character boundary, never inside a
 * UTF-8 sequence.  The encoding is decided on the whole text.  Invalid UTF-8
 * bytes count as one UCS-2 unit each.
 */
void ntpl_sms_fit(const char *utf8, int max_parts, struct ntpl_sms_fit *out);

/* ------------------------------------------------------ Standard Webhooks */

/**
 * Decode a Standard Webhooks secret ("whsec_" + base64; the prefix is
 * optional).  Returns the key length (>= 1), or -1 when it is not valid
 * base64 or longer than `cap`.
 */
long ntpl_whsec_decode(const char *secret, unsigned char *key, size_t cap);

/**
 * The signature "v1,<base64(HMAC-SHA256(key, id "." timestamp "." body))>".
 * Returns a malloc'ed string, or NULL on error.
 */
char *ntpl_webhook_sign(const unsigned char *key, size_t key_len, const char *id, int64_t timestamp,
                        const void *body, size_t body_len);

/** Base64 (standard alphabet, padded) of `len` bytes. */
char *ntpl_base64(const void *data, size_t len);

/* ----------------------------------------------------------------- mail */

/**
 * A header value as RFC 2047 "=?UTF-8?B?...?=" encoded words when it has
 * non-ASCII or control characters (each word at most 75 characters, split on
 * character boundaries, folded with CRLF SPACE), else a copy.
 */
char *ntpl_rfc2047(const char *utf8);

/**
 * "Display Name <addr>" with the display name encoded per RFC 2047 when
 * needed (or quoted when it holds specials); a bare address is copied.
 */
char *ntpl_mail_address(const char *name_addr);

/** Quoted-printable (RFC 2045) of UTF-8 text; LF or CRLF line ends become CRLF; lines <= 76. */
char *ntpl_qp_encode(const char *text);

#endif /* MH_NOTIFY_TPL_H */
